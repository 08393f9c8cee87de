import { sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
import type { Transaction } from '../db/client.ts';
import { pgError, SQLSTATE } from '../db/errors.ts';
import { isoTimeText, selectRows } from '../db/rows.ts';
import { withTransaction } from '../db/transaction.ts';
import { type Operator, recordAudit } from './audit.ts';
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

/** A user's ban as the audit log records it, before and after a change. */
interface BanState {
  banned_at: string | null;
  ban_reason: string | null;
}

const banColumns = sql.raw(`${isoTimeText('banned_at')} AS banned_at, ban_reason`);

/**
 * Changes the user's ban with `change` (an UPDATE of the locked row answering the ban after it)
 * and records it in the audit log, in one transaction. The row lock is the one a generation's
 * accept takes (migration 0011), so a ban and an accept are one before the other.
 */
async function changeBan(
  ctx: ServiceContext,
  telegramId: number,
  entry: { operator: Operator; action: 'user.ban' | 'user.unban'; reason: string | null },
  change: (tx: Transaction) => Promise<BanState[]>,
): Promise<void> {
  await withTransaction(ctx.db, async (tx) => {
    const [before] = await selectRows<BanState>(
      tx,
      sql`SELECT ${banColumns} FROM users WHERE telegram_id = ${telegramId} FOR NO KEY UPDATE`,
    );
    if (!before) throw userNotFound(telegramId);
    const [after] = await change(tx);
    await recordAudit(tx, {
      ...entry.operator,
      action: entry.action,
      subjectType: 'user',
      subjectId: telegramId,
      before,
      after,
      reason: entry.reason,
    });
  });
}

/**
 * Bans the user (a ban already in force keeps its start and takes the new reason), recorded in
 * the audit log, and answers the user as the operator sees it.
 */
export async function banUser(
  ctx: ServiceContext,
  telegramId: number,
  reason: string,
  operator: Operator,
): Promise<AdminUserView> {
  await changeBan(ctx, telegramId, { operator, action: 'user.ban', reason }, (tx) =>
    selectRows<BanState>(
      tx,
      sql`UPDATE users SET banned_at = COALESCE(banned_at, now()), ban_reason = ${reason},
                           updated_at = now()
          WHERE telegram_id = ${telegramId} RETURNING ${banColumns}`,
    ),
  );
  return getAdminUserView(ctx, telegramId);
}

/** Lifts the user's ban (nothing changes for a user not banned), recorded in the audit log. */
export async function unbanUser(
  ctx: ServiceContext,
  telegramId: number,
  reason: string | null,
  operator: Operator,
): Promise<AdminUserView> {
  await changeBan(ctx, telegramId, { operator, action: 'user.unban', reason }, (tx) =>
    selectRows<BanState>(
      tx,
      sql`UPDATE users SET banned_at = NULL, ban_reason = NULL,
                           updated_at = CASE WHEN banned_at IS NULL THEN updated_at ELSE now() END
          WHERE telegram_id = ${telegramId} RETURNING ${banColumns}`,
    ),
  );
  return getAdminUserView(ctx, telegramId);
}
