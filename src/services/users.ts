import { AppError } from '../core/errors.ts';
import { isoTimeText, queryText } from '../db/rows.ts';
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

/** A user's balance: the newest ledger entry's running balance, one index probe whatever the size. */
function balanceOf(userId: string): string {
  return `COALESCE((SELECT l.balance_after FROM ledger_entries l
    WHERE l.user_id = ${userId} ORDER BY l.user_entry_no DESC LIMIT 1), 0)`;
}

/** Trial uses not given back. */
function trialsUsedBy(userId: string): string {
  return `(SELECT count(*)::int FROM trial_uses t WHERE t.user_id = ${userId} AND t.returned_at IS NULL)`;
}

/** A profile as the statements below return it, before the trial summary is made. */
type ProfileRow = Omit<UserProfile, 'telegram_id' | 'balance' | 'trial'> & {
  telegram_id: string | number;
  balance: string | number;
  trial_used: number;
};

function toProfile(row: ProfileRow, trialLimit: number): UserProfile {
  const { trial_used, telegram_id, balance, ...fields } = row;
  return {
    ...fields,
    telegram_id: Number(telegram_id),
    balance: Number(balance),
    trial: trialSummary(trial_used, trialLimit),
  };
}

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
       ${balanceOf('synced.id')} AS balance, ${trialsUsedBy('synced.id')} AS trial_used
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
  const [row] = await queryText<ProfileRow & { created: boolean }>(
    ctx.db,
    SYNC_USER_SQL,
    syncUserParameters(input),
  );
  if (!row) throw new Error('user upsert returned no row');
  const { created, ...profile } = row;
  return { created, user: toProfile(profile, ctx.config.trialGenerations) };
}

const BALANCE_SQL = `SELECT ${balanceOf('u.id')} AS balance FROM users u WHERE u.telegram_id = $1`;

const TRIAL_SQL = `SELECT ${trialsUsedBy('u.id')} AS used FROM users u WHERE u.telegram_id = $1`;

const PROFILE_SQL = `SELECT u.telegram_id, u.username, u.first_name, u.last_name, u.language_code,
       u.is_premium, ${isoTimeText('u.created_at')} AS created_at,
       ${isoTimeText('u.updated_at')} AS updated_at,
       ${balanceOf('u.id')} AS balance, ${trialsUsedBy('u.id')} AS trial_used
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
  return new AppError(
    'user_not_found',
    `No user with telegram_id ${telegramId}; sync it first (POST /api/v1/users/sync).`,
  );
}

export async function getUserProfile(
  ctx: ServiceContext,
  telegramId: number,
): Promise<UserProfile> {
  const [row] = await queryText<ProfileRow>(ctx.db, PROFILE_SQL, [telegramId]);
  if (!row) throw userNotFound(telegramId);
  return toProfile(row, ctx.config.trialGenerations);
}
