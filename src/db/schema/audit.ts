import { sql } from 'drizzle-orm';
import { bigint, check, index, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * Who may act on the admin routes. `admin`: everything (ADMIN_TOKENS, ADMIN_TELEGRAM_IDS);
 * `support`: reads users and adjusts credits within SUPPORT_CREDIT_LIMIT (SUPPORT_TELEGRAM_IDS).
 * `system`: a change the backend makes on its own, recorded in the audit log all the same.
 */
export const auditRoles = ['admin', 'support', 'system'] as const;
export type AuditRole = (typeof auditRoles)[number];

/**
 * What operators did, one row per change, written in the transaction of the change (recordAudit in
 * src/services/audit.ts), so a change and its record commit together or not at all. Append-only:
 * the database refuses UPDATE, DELETE and TRUNCATE (migration 0012), as it does for the ledger.
 */
export const auditLog = pgTable(
  'audit_log',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    /** Who: `admin:<token id>` (ADMIN_TOKENS), `operator:<telegram id>`, `system`. */
    actor: text('actor').notNull(),
    role: text('role', { enum: auditRoles }).notNull(),
    /** What, as `<subject>.<verb>`: `user.ban`, `user.unban`, `user.credits`, `settings.update`… */
    action: text('action').notNull(),
    /** What it was done to, e.g. ('user', '<telegram id>'); null for the service as a whole. */
    subjectType: text('subject_type'),
    subjectId: text('subject_id'),
    /** The subject's state before and after, as much of it as the change touched. */
    before: jsonb('before'),
    after: jsonb('after'),
    reason: text('reason'),
    /** The X-Request-ID of the HTTP request that made the change, to find it in the logs. */
    requestId: text('request_id'),
  },
  (t) => [
    index('audit_log_created_at_idx').on(t.createdAt),
    index('audit_log_actor_idx').on(t.actor, t.id),
    index('audit_log_action_idx').on(t.action, t.id),
    index('audit_log_subject_idx').on(t.subjectType, t.subjectId, t.id),
    check(
      'audit_log_role_valid',
      sql.raw(`role IN (${auditRoles.map((r) => `'${r}'`).join(', ')})`),
    ),
    check('audit_log_action_form', sql`${t.action} ~ '^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$'`),
    check('audit_log_subject_whole', sql`(${t.subjectType} IS NULL) = (${t.subjectId} IS NULL)`),
  ],
);

/** The roles of people who sign in with Telegram (ADMIN_TELEGRAM_IDS, SUPPORT_TELEGRAM_IDS). */
export const operatorRoles = ['admin', 'support'] as const;
export type OperatorRole = (typeof operatorRoles)[number];

/**
 * Operators' sessions, opened by a Telegram Login (POST /admin/auth/telegram). The cookie holds a
 * random token; only its SHA-256 is stored, so a copy of this table opens no session. A session
 * ends at `expires_at` or when revoked (logout); the role it was opened with is only a record: the
 * role in force is read from the settings at every request.
 */
export const operatorSessions = pgTable(
  'operator_sessions',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    /** Hex SHA-256 of the cookie's token. */
    tokenSha256: text('token_sha256').notNull().unique(),
    telegramId: bigint('telegram_id', { mode: 'number' }).notNull(),
    role: text('role', { enum: operatorRoles }).notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (t) => [
    index('operator_sessions_telegram_id_idx').on(t.telegramId),
    index('operator_sessions_expires_at_idx').on(t.expiresAt),
    check(
      'operator_sessions_role_valid',
      sql.raw(`role IN (${operatorRoles.map((r) => `'${r}'`).join(', ')})`),
    ),
    check('operator_sessions_token_form', sql`${t.tokenSha256} ~ '^[0-9a-f]{64}$'`),
  ],
);
