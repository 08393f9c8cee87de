import { AppError } from '../core/errors.ts';
import { pgError, SQLSTATE } from '../db/errors.ts';
import { isoTimeText, queryText } from '../db/rows.ts';
import type { ServiceContext } from './context.ts';
import { type AdminUserView, getAdminUserView, userNotFound } from './users.ts';

/**
 * Bans. A banned user cannot quote or start generations (403 user_banned, its reason in the
 * problem); everything that concerns its money still works (Stars confirm and refund, the
 * balance, the ledger), and the bot still syncs it, which is how it learns of the ban.
 */

export function userBanned(telegramId: number, reason: string | null): AppError {
  return new AppError(
    'user_banned',
    `The user with telegram_id ${telegramId} is banned${reason ? `: ${reason}` : ''}.`,
    { reason },
  );
}

/**
 * The error to throw for a failed statement: user_banned when the database refused a generation
 * request of a banned user (SQLSTATE C0002, migration 0011), else the error itself.
 */
export function bannedOr(error: unknown, telegramId: number): unknown {
  const cause = pgError(error);
  if (cause?.code !== SQLSTATE.userBanned) return error;
  let reason: string | null = null;
  try {
    reason = (JSON.parse(cause.detail ?? '{}') as { reason?: string | null }).reason ?? null;
  } catch {
    // A DETAIL that is not ours: the ban stands, without its reason.
  }
  return userBanned(telegramId, reason);
}

/**
 * Bans the user (a ban already in force keeps its start and takes the new reason) and answers the
 * user as the operator sees it.
 */
export async function banUser(
  ctx: ServiceContext,
  telegramId: number,
  reason: string,
): Promise<AdminUserView> {
  const rows = await queryText<{ banned_at: string }>(
    ctx.db,
    `UPDATE users SET banned_at = COALESCE(banned_at, now()), ban_reason = $2, updated_at = now()
     WHERE telegram_id = $1 RETURNING ${isoTimeText('banned_at')} AS banned_at`,
    [telegramId, reason],
  );
  if (rows.length === 0) throw userNotFound(telegramId);
  return getAdminUserView(ctx, telegramId);
}

/** Lifts the user's ban (nothing happens to a user not banned). */
export async function unbanUser(ctx: ServiceContext, telegramId: number): Promise<AdminUserView> {
  const rows = await queryText<{ id: string | number }>(
    ctx.db,
    `UPDATE users SET banned_at = NULL, ban_reason = NULL,
                      updated_at = CASE WHEN banned_at IS NULL THEN updated_at ELSE now() END
     WHERE telegram_id = $1 RETURNING id`,
    [telegramId],
  );
  if (rows.length === 0) throw userNotFound(telegramId);
  return getAdminUserView(ctx, telegramId);
}
