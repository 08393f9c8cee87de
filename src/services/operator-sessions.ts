import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Queryable } from '../db/client.ts';
import { isoTimeText, selectRows } from '../db/rows.ts';
import type { OperatorRole } from '../db/schema/index.ts';
import { withTransaction } from '../db/transaction.ts';
import { type Operator, recordAudit } from './audit.ts';
import type { ServiceContext } from './context.ts';
import type { RuntimeSettings } from './settings.ts';

/**
 * Operators' sessions: a person in ADMIN_TELEGRAM_IDS or SUPPORT_TELEGRAM_IDS who signed in with
 * the Telegram Login Widget holds a random token in a cookie; the table keeps its SHA-256 only.
 * The role in force is read from the settings at every request (operatorRole), so an id taken off
 * the lists is refused at its next request, whatever sessions it holds.
 */

export interface OperatorSession {
  id: number;
  telegramId: number;
  /** The role it was opened with (a record; the role in force is operatorRole's). */
  role: OperatorRole;
  createdAt: string;
  expiresAt: string;
}

/**
 * The operator's role by the runtime settings ADMIN_TELEGRAM_IDS and SUPPORT_TELEGRAM_IDS as they
 * are now (an id on both lists is an admin), or null when the id is on neither.
 */
export function operatorRole(
  settings: Pick<RuntimeSettings, 'ADMIN_TELEGRAM_IDS' | 'SUPPORT_TELEGRAM_IDS'>,
  telegramId: number,
): OperatorRole | null {
  if (settings.ADMIN_TELEGRAM_IDS.includes(telegramId)) return 'admin';
  if (settings.SUPPORT_TELEGRAM_IDS.includes(telegramId)) return 'support';
  return null;
}

const sha256 = (token: string) => createHash('sha256').update(token).digest('hex');

/** A cookie's token: 32 random bytes as base64url (43 characters). */
const TOKEN_FORM = /^[A-Za-z0-9_-]{43}$/;

interface SessionRow {
  id: string | number;
  telegram_id: string | number;
  role: OperatorRole;
  created_at: string;
  expires_at: string;
}

const sessionColumns = sql.raw(
  `id, telegram_id, role, ${isoTimeText('created_at')} AS created_at,
   ${isoTimeText('expires_at')} AS expires_at`,
);

const toSession = (row: SessionRow): OperatorSession => ({
  id: Number(row.id),
  telegramId: Number(row.telegram_id),
  role: row.role,
  createdAt: row.created_at,
  expiresAt: row.expires_at,
});

/**
 * Opens a session for a signed-in operator and records the login in the audit log, together.
 * Answers the token for the cookie (never stored) and the session.
 */
export async function openSession(
  ctx: ServiceContext,
  input: { telegramId: number; role: OperatorRole; requestId: string | null },
): Promise<{ token: string; session: OperatorSession }> {
  const token = randomBytes(32).toString('base64url');
  const session = await withTransaction(ctx.db, async (tx) => {
    const [row] = await selectRows<SessionRow>(
      tx,
      sql`INSERT INTO operator_sessions (token_sha256, telegram_id, role, expires_at)
          VALUES (${sha256(token)}, ${input.telegramId}, ${input.role},
                  now() + make_interval(secs => ${ctx.config.operators.sessionSeconds}))
          RETURNING ${sessionColumns}`,
    );
    if (!row) throw new Error('operator_sessions insert returned no row');
    const opened = toSession(row);
    await recordAudit(tx, {
      actor: `operator:${input.telegramId}`,
      role: input.role,
      requestId: input.requestId,
      action: 'operator.login',
      subjectType: 'operator_session',
      subjectId: opened.id,
      after: { role: opened.role, expires_at: opened.expiresAt },
    });
    return opened;
  });
  return { token, session };
}

/** The session a cookie's token opens: known, not revoked, not expired; else null. */
export async function findSession(db: Queryable, token: string): Promise<OperatorSession | null> {
  if (!TOKEN_FORM.test(token)) return null;
  const [row] = await selectRows<SessionRow>(
    db,
    sql`SELECT ${sessionColumns} FROM operator_sessions
        WHERE token_sha256 = ${sha256(token)} AND revoked_at IS NULL AND expires_at > now()`,
  );
  return row ? toSession(row) : null;
}

/** How long an ended session (expired or revoked) is kept before housekeeping deletes it. */
const ENDED_SESSIONS_KEPT_DAYS = 7;

/**
 * Deletes sessions ended more than a week ago (the audit log keeps the logins and logouts);
 * answers how many.
 */
export async function deleteEndedSessions(db: Queryable): Promise<number> {
  const rows = await selectRows<{ id: string | number }>(
    db,
    sql`DELETE FROM operator_sessions
        WHERE expires_at < now() - make_interval(days => ${ENDED_SESSIONS_KEPT_DAYS})
           OR revoked_at < now() - make_interval(days => ${ENDED_SESSIONS_KEPT_DAYS})
        RETURNING id`,
  );
  return rows.length;
}

/** Ends a session (logout), recorded in the audit log; ending an ended session changes nothing. */
export async function revokeSession(
  ctx: ServiceContext,
  sessionId: number,
  operator: Operator,
): Promise<void> {
  await withTransaction(ctx.db, async (tx) => {
    const [row] = await selectRows<{ id: string | number }>(
      tx,
      sql`UPDATE operator_sessions SET revoked_at = now()
          WHERE id = ${sessionId} AND revoked_at IS NULL RETURNING id`,
    );
    if (!row) return;
    await recordAudit(tx, {
      ...operator,
      action: 'operator.logout',
      subjectType: 'operator_session',
      subjectId: sessionId,
    });
  });
}
