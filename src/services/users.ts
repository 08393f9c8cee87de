import { AppError } from '../core/errors.ts';
import { isoTimeText, queryText } from '../db/rows.ts';
import type { UserLanguage, UserPreferences } from '../db/schema/index.ts';
import type { ServiceContext } from './context.ts';
import { currentSettings } from './settings.ts';

export interface TelegramUserInput {
  telegram_id: number;
  username?: string | null;
  first_name?: string | null;
  last_name?: string | null;
  language_code?: string | null;
  is_premium?: boolean | null;
  /** Someone's referral code: kept only when this call creates the user (unknown codes are ignored). */
  referral_code?: string | null;
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
  /** The language the user chose for the bot; null until it chooses (then Telegram's language_code). */
  language: UserLanguage | null;
  preferences: UserPreferences;
  /** The user's own code to invite others with. */
  referral_code: string;
  banned: { reason: string | null; since: string } | null;
}

/**
 * A user's balance as SQL (of the users row id `userId`, e.g. `u.id`): the newest ledger entry's
 * running balance, one index probe whatever the size.
 */
export function balanceSql(userId: string): string {
  return `COALESCE((SELECT l.balance_after FROM ledger_entries l
    WHERE l.user_id = ${userId} ORDER BY l.user_entry_no DESC LIMIT 1), 0)`;
}

/** Trial uses not given back. */
function trialsUsedBy(userId: string): string {
  return `(SELECT count(*)::int FROM trial_uses t WHERE t.user_id = ${userId} AND t.returned_at IS NULL)`;
}

/** A profile as the statements below return it, before the trial summary is made. */
type ProfileRow = Omit<UserProfile, 'telegram_id' | 'balance' | 'trial' | 'banned'> & {
  telegram_id: string | number;
  balance: string | number;
  trial_used: number;
  banned_at: string | null;
  ban_reason: string | null;
};

/** The columns of a profile (ProfileRow) of the user row `u` (with `u.id`). */
function profileColumns(u: string): string {
  return `${u}.telegram_id, ${u}.username, ${u}.first_name, ${u}.last_name, ${u}.language_code,
       ${u}.is_premium, ${isoTimeText(`${u}.created_at`)} AS created_at,
       ${isoTimeText(`${u}.updated_at`)} AS updated_at, ${u}.language, ${u}.preferences,
       ${u}.referral_code, ${isoTimeText(`${u}.banned_at`)} AS banned_at, ${u}.ban_reason,
       ${balanceSql(`${u}.id`)} AS balance, ${trialsUsedBy(`${u}.id`)} AS trial_used`;
}

function toProfile(row: ProfileRow, trialLimit: number): UserProfile {
  const { trial_used, telegram_id, balance, banned_at, ban_reason, ...fields } = row;
  return {
    ...fields,
    telegram_id: Number(telegram_id),
    balance: Number(balance),
    trial: trialSummary(trial_used, trialLimit),
    banned: banned_at === null ? null : { reason: ban_reason, since: banned_at },
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
 * flags say which were sent); a null clears one. The referral code ($11) names the referrer only
 * in the INSERT: an existing user's referred_by is never touched, so it is set once, at creation,
 * and never to the user itself (whose row, and so whose code, does not exist before it). The
 * database makes the user's own code (new_referral_code(), migration 0008).
 */
const SYNC_USER_SQL = `WITH synced AS (
  INSERT INTO users AS u (telegram_id, username, first_name, last_name, language_code, is_premium,
                          referred_by, last_seen_at)
  VALUES ($1, $2, $3, $4, $5, COALESCE($6::boolean, false),
          (SELECT r.id FROM users r WHERE r.referral_code = upper(btrim($11::text))), now())
  ON CONFLICT (telegram_id) DO UPDATE SET
    username = CASE WHEN $7::boolean THEN EXCLUDED.username ELSE u.username END,
    first_name = CASE WHEN $8::boolean THEN EXCLUDED.first_name ELSE u.first_name END,
    last_name = CASE WHEN $9::boolean THEN EXCLUDED.last_name ELSE u.last_name END,
    language_code = CASE WHEN $10::boolean THEN EXCLUDED.language_code ELSE u.language_code END,
    is_premium = CASE WHEN $6::boolean IS NULL THEN u.is_premium ELSE EXCLUDED.is_premium END,
    updated_at = now(),
    last_seen_at = now()
  RETURNING u.*, (u.xmax = 0) AS created
)
SELECT ${profileColumns('synced')}, synced.created FROM synced`;

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
    input.referral_code ?? null,
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
  return { created, user: toProfile(profile, (await currentSettings(ctx)).TRIAL_GENERATIONS) };
}

const BALANCE_SQL = `SELECT ${balanceSql('u.id')} AS balance FROM users u WHERE u.telegram_id = $1`;

const TRIAL_SQL = `SELECT ${trialsUsedBy('u.id')} AS used FROM users u WHERE u.telegram_id = $1`;

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
  return {
    telegram_id: telegramId,
    ...trialSummary(row.used, (await currentSettings(ctx)).TRIAL_GENERATIONS),
  };
}

export function userNotFound(telegramId: number) {
  return new AppError(
    'user_not_found',
    `No user with telegram_id ${telegramId}; sync it first (POST /api/v1/users/sync).`,
  );
}

/** What PATCH /users/{telegram_id} changes; a field left out keeps its value. */
export interface UserSettingsInput {
  language?: UserLanguage | null;
  /** Replaces the stored preferences whole. */
  preferences?: UserPreferences;
}

/** The most a user's preferences may take as JSON (the database allows a little more: 8 KB). */
export const MAX_PREFERENCES_BYTES = 4096;

/** Why these preferences cannot be kept, or null; their shape is the route schema's. */
function preferencesProblem(preferences: UserPreferences): string | null {
  const bytes = Buffer.byteLength(JSON.stringify(preferences));
  return bytes > MAX_PREFERENCES_BYTES
    ? `must take at most ${MAX_PREFERENCES_BYTES} bytes as JSON (these take ${bytes})`
    : null;
}

const UPDATE_SETTINGS_SQL = `WITH updated AS (
  UPDATE users u SET
    language = CASE WHEN $2::boolean THEN $3::text ELSE u.language END,
    preferences = CASE WHEN $4::boolean THEN $5::jsonb ELSE u.preferences END,
    updated_at = now()
  WHERE u.telegram_id = $1
  RETURNING u.*
)
SELECT ${profileColumns('updated')} FROM updated`;

/** Sets the user's chosen language and preferences; answers the profile, as sync does. */
export async function updateUserSettings(
  ctx: ServiceContext,
  telegramId: number,
  input: UserSettingsInput,
): Promise<UserProfile> {
  if (input.preferences !== undefined) {
    const problem = preferencesProblem(input.preferences);
    if (problem !== null) {
      throw new AppError('validation_failed', `body.preferences ${problem}`, {
        errors: [{ field: 'body.preferences', message: problem }],
      });
    }
  }
  const [row] = await queryText<ProfileRow>(ctx.db, UPDATE_SETTINGS_SQL, [
    telegramId,
    input.language !== undefined,
    input.language ?? null,
    input.preferences !== undefined,
    input.preferences === undefined ? null : JSON.stringify(input.preferences),
  ]);
  if (!row) throw userNotFound(telegramId);
  return toProfile(row, (await currentSettings(ctx)).TRIAL_GENERATIONS);
}

/** A user as the operator sees it: the profile, who invited it, whom it invited, when last seen. */
export interface AdminUserView extends UserProfile {
  /** The telegram_id of the user whose referral code it was created with. */
  referred_by: number | null;
  /** Users created with this user's referral code. */
  referrals: number;
  last_seen_at: string | null;
}

const ADMIN_VIEW_SQL = `SELECT ${profileColumns('u')}, u.id AS user_id,
       (SELECT json_build_object('telegram_id', r.telegram_id, 'username', r.username,
                                 'first_name', r.first_name, 'last_name', r.last_name)
        FROM users r WHERE r.id = u.referred_by) AS referrer,
       (SELECT count(*)::int FROM users j WHERE j.referred_by = u.id) AS referrals,
       ${isoTimeText('u.last_seen_at')} AS last_seen_at, ${isoTimeText('u.blocked_at')} AS blocked_at
FROM users u WHERE u.telegram_id = $1`;

/** The user who referred another: whose referral code it was created with. */
export interface Referrer {
  telegram_id: number;
  username: string | null;
  first_name: string | null;
  last_name: string | null;
}

/** What operators see of a user, and what reading more of it needs: in one statement. */
export interface AdminUserRecord {
  view: AdminUserView;
  userId: number;
  referrer: Referrer | null;
  blockedAt: string | null;
}

export async function readAdminUser(
  ctx: ServiceContext,
  telegramId: number,
): Promise<AdminUserRecord> {
  const [row] = await queryText<
    ProfileRow & {
      user_id: string | number;
      referrer: Referrer | null;
      referrals: number;
      last_seen_at: string | null;
      blocked_at: string | null;
    }
  >(ctx.db, ADMIN_VIEW_SQL, [telegramId]);
  if (!row) throw userNotFound(telegramId);
  const { user_id, referrer, referrals, last_seen_at, blocked_at, ...profile } = row;
  const referredBy = referrer === null ? null : Number(referrer.telegram_id);
  return {
    view: {
      ...toProfile(profile, (await currentSettings(ctx)).TRIAL_GENERATIONS),
      referred_by: referredBy,
      referrals,
      last_seen_at,
    },
    userId: Number(user_id),
    referrer: referrer === null ? null : { ...referrer, telegram_id: Number(referrer.telegram_id) },
    blockedAt: blocked_at,
  };
}

export async function getAdminUserView(
  ctx: ServiceContext,
  telegramId: number,
): Promise<AdminUserView> {
  return (await readAdminUser(ctx, telegramId)).view;
}
