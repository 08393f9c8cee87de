import { eq, sql } from 'drizzle-orm';
import { notFound } from '../core/errors.ts';
import { isoTimeText, queryText } from '../db/rows.ts';
import { users } from '../db/schema/index.ts';
import type { ServiceContext } from './context.ts';

export interface TelegramUserInput {
  telegram_id: number;
  username?: string | null;
  first_name?: string | null;
  last_name?: string | null;
  language_code?: string | null;
  is_premium?: boolean | null;
}

export interface TrialSummary {
  available: boolean;
  used: number;
  limit: number;
  remaining: number;
}

export interface UserProfile {
  telegram_id: number;
  username: string | null;
  first_name: string | null;
  last_name: string | null;
  language_code: string | null;
  is_premium: boolean;
  created_at: string;
  updated_at: string;
  balance: number;
  trial: TrialSummary;
}

// Written out rather than built from column objects: in a one-table select Drizzle leaves the
// outer column unqualified, and inside the subquery "id" would then mean the ledger entry's id.

/** The balance is the newest ledger entry's running balance: one index probe, whatever the size. */
const balanceOfUser = sql<number>`COALESCE((
  SELECT l.balance_after FROM ledger_entries l
  WHERE l.user_id = "users"."id"
  ORDER BY l.user_entry_no DESC LIMIT 1), 0)`.mapWith(Number);

const trialsUsedByUser = sql<number>`(
  SELECT count(*) FROM trial_uses t
  WHERE t.user_id = "users"."id" AND t.returned_at IS NULL)`.mapWith(Number);

export function trialSummary(used: number, limit: number): TrialSummary {
  const remaining = Math.max(0, limit - used);
  return { available: remaining > 0, used, limit, remaining };
}

/**
 * Creates the user or refreshes what Telegram says about it, in one constant statement (so the
 * driver can send it without rebuilding it): concurrent syncs of one id meet in ON CONFLICT, never
 * in a duplicate-key error. Fields left out of the input keep their stored value (the $7–$10
 * flags say which were sent); a null clears one.
 */
const SYNC_USER_SQL = `WITH synced AS (
  INSERT INTO users AS u (telegram_id, username, first_name, last_name, language_code, is_premium)
  VALUES ($1, $2, $3, $4, $5, COALESCE($6::boolean, false))
  ON CONFLICT (telegram_id) DO UPDATE SET
    username = CASE WHEN $7::boolean THEN EXCLUDED.username ELSE u.username END,
    first_name = CASE WHEN $8::boolean THEN EXCLUDED.first_name ELSE u.first_name END,
    last_name = CASE WHEN $9::boolean THEN EXCLUDED.last_name ELSE u.last_name END,
    language_code = CASE WHEN $10::boolean THEN EXCLUDED.language_code ELSE u.language_code END,
    is_premium = CASE WHEN $6::boolean IS NULL THEN u.is_premium ELSE EXCLUDED.is_premium END,
    updated_at = now()
  RETURNING u.id, u.telegram_id, u.username, u.first_name, u.last_name, u.language_code, u.is_premium,
            ${isoTimeText('u.created_at')} AS created_at, ${isoTimeText('u.updated_at')} AS updated_at,
            (u.xmax = 0) AS created
)
SELECT synced.telegram_id, synced.username, synced.first_name, synced.last_name,
       synced.language_code, synced.is_premium, synced.created_at, synced.updated_at, synced.created,
       COALESCE((SELECT l.balance_after FROM ledger_entries l
                 WHERE l.user_id = synced.id ORDER BY l.user_entry_no DESC LIMIT 1), 0) AS balance,
       (SELECT count(*)::int FROM trial_uses t
         WHERE t.user_id = synced.id AND t.returned_at IS NULL) AS trial_used
FROM synced`;

/** The parameters of SYNC_USER_SQL for an input (exported for the benchmark's ceiling). */
export function syncUserParameters(input: TelegramUserInput): unknown[] {
  return [
    input.telegram_id,
    input.username ?? null,
    input.first_name ?? null,
    input.last_name ?? null,
    input.language_code ?? null,
    input.is_premium ?? null,
    input.username !== undefined,
    input.first_name !== undefined,
    input.last_name !== undefined,
    input.language_code !== undefined,
  ];
}

export async function syncUser(
  ctx: ServiceContext,
  input: TelegramUserInput,
): Promise<{ created: boolean; user: UserProfile }> {
  const [row] = await queryText<{
    telegram_id: string | number;
    username: string | null;
    first_name: string | null;
    last_name: string | null;
    language_code: string | null;
    is_premium: boolean;
    created_at: string;
    updated_at: string;
    created: boolean;
    balance: string | number;
    trial_used: number;
  }>(ctx.db, SYNC_USER_SQL, syncUserParameters(input));
  if (!row) throw new Error('user upsert returned no row');
  return {
    created: row.created,
    user: {
      telegram_id: Number(row.telegram_id),
      username: row.username,
      first_name: row.first_name,
      last_name: row.last_name,
      language_code: row.language_code,
      is_premium: row.is_premium,
      created_at: row.created_at,
      updated_at: row.updated_at,
      balance: Number(row.balance),
      trial: trialSummary(row.trial_used, ctx.config.trialGenerations),
    },
  };
}

const BALANCE_SQL = `SELECT COALESCE((SELECT l.balance_after FROM ledger_entries l
  WHERE l.user_id = u.id ORDER BY l.user_entry_no DESC LIMIT 1), 0) AS balance
FROM users u WHERE u.telegram_id = $1`;

const TRIAL_SQL = `SELECT (SELECT count(*)::int FROM trial_uses t
  WHERE t.user_id = u.id AND t.returned_at IS NULL) AS used
FROM users u WHERE u.telegram_id = $1`;

export async function getBalance(
  ctx: ServiceContext,
  telegramId: number,
): Promise<{ telegram_id: number; balance: number }> {
  const [row] = await queryText<{ balance: string | number }>(ctx.db, BALANCE_SQL, [telegramId]);
  if (!row) throw userNotFound(telegramId);
  return { telegram_id: telegramId, balance: Number(row.balance) };
}

export async function getTrialStatus(
  ctx: ServiceContext,
  telegramId: number,
): Promise<TrialSummary & { telegram_id: number }> {
  const [row] = await queryText<{ used: number }>(ctx.db, TRIAL_SQL, [telegramId]);
  if (!row) throw userNotFound(telegramId);
  return { telegram_id: telegramId, ...trialSummary(row.used, ctx.config.trialGenerations) };
}

export function userNotFound(telegramId: number) {
  return notFound(
    'user',
    `No user with telegram_id ${telegramId}; sync it first (POST /api/v1/users/sync).`,
  );
}

export async function getUserProfile(
  ctx: ServiceContext,
  telegramId: number,
): Promise<UserProfile> {
  const [row] = await ctx.db
    .select({
      telegram_id: users.telegramId,
      username: users.username,
      first_name: users.firstName,
      last_name: users.lastName,
      language_code: users.languageCode,
      is_premium: users.isPremium,
      created_at: users.createdAt,
      updated_at: users.updatedAt,
      balance: balanceOfUser,
      trial_used: trialsUsedByUser,
    })
    .from(users)
    .where(eq(users.telegramId, telegramId));
  if (!row) throw userNotFound(telegramId);
  const { trial_used, created_at, updated_at, ...profile } = row;
  return {
    ...profile,
    created_at: created_at.toISOString(),
    updated_at: updated_at.toISOString(),
    trial: trialSummary(trial_used, ctx.config.trialGenerations),
  };
}
