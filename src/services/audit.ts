import { type SQL, sql } from 'drizzle-orm';
import type { Queryable, Transaction } from '../db/client.ts';
import { selectRows } from '../db/rows.ts';
import type { AuditRole } from '../db/schema/index.ts';
import { auditCursor } from './cursor.ts';

/**
 * The audit log: what operators did. Every admin write records one entry with recordAudit() in
 * the transaction of the change, so the change and its record commit together or not at all; the
 * database refuses to change or remove an entry (migration 0013).
 */

/** Who acts, as the routes name the caller (deps/auth.ts operatorOf). */
export interface Operator {
  /** `admin:<token id>` (ADMIN_TOKENS) or `operator:<telegram id>` (a Telegram Login session). */
  actor: string;
  role: AuditRole;
  /** The X-Request-ID of the request that makes the change. */
  requestId: string | null;
}

export interface AuditEntry extends Operator {
  /** `<subject>.<verb>`: `user.ban`, `user.unban`, `user.credits`, `settings.update`… */
  action: string;
  /** What the change was made to, e.g. ('user', telegram id); leave out for the service as a whole. */
  subjectType?: string | null;
  subjectId?: string | number | null;
  /** The subject's state before and after (as much as the change touched); JSON. */
  before?: unknown;
  after?: unknown;
  reason?: string | null;
}

export interface AuditRecord {
  id: number;
  created_at: string;
  actor: string;
  role: AuditRole;
  action: string;
  subject_type: string | null;
  subject_id: string | null;
  before: unknown;
  after: unknown;
  reason: string | null;
  request_id: string | null;
}

interface AuditRow extends Omit<AuditRecord, 'id'> {
  id: string | number;
}

/** Microseconds, so that entries of one transaction keep their order in what the API shows. */
const auditColumns = sql.raw(
  `id, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at,
   actor, role, action, subject_type, subject_id, before, after, reason, request_id`,
);

const toRecord = (row: AuditRow): AuditRecord => ({ ...row, id: Number(row.id) });

const asJson = (value: unknown) => (value === undefined ? null : JSON.stringify(value));

/**
 * Records what an operator did. Takes the transaction of the change (never the database): the
 * entry commits with the change, or neither does.
 */
export async function recordAudit(tx: Transaction, entry: AuditEntry): Promise<AuditRecord> {
  const subjectId = entry.subjectId ?? null;
  const [row] = await selectRows<AuditRow>(
    tx,
    sql`INSERT INTO audit_log
          (actor, role, action, subject_type, subject_id, before, after, reason, request_id)
        VALUES (${entry.actor}, ${entry.role}, ${entry.action}, ${entry.subjectType ?? null},
                ${subjectId === null ? null : String(subjectId)}, ${asJson(entry.before)}::jsonb,
                ${asJson(entry.after)}::jsonb, ${entry.reason ?? null}, ${entry.requestId})
        RETURNING ${auditColumns}`,
  );
  if (!row) throw new Error('audit_log insert returned no row');
  return toRecord(row);
}

export interface AuditFilter {
  actor?: string;
  action?: string;
  subjectType?: string;
  subjectId?: string;
  /** From this instant (inclusive) to that one (exclusive), ISO 8601. */
  from?: string;
  to?: string;
  cursor?: string;
  limit: number;
}

export interface AuditPage {
  items: AuditRecord[];
  /** Pass as `cursor` for the next (older) page; null on the last page. */
  next_cursor: string | null;
}

/** Entries, newest first, keyset-paginated on the id. */
export async function listAudit(db: Queryable, filter: AuditFilter): Promise<AuditPage> {
  const conditions: SQL[] = [];
  if (filter.actor !== undefined) conditions.push(sql`actor = ${filter.actor}`);
  if (filter.action !== undefined) conditions.push(sql`action = ${filter.action}`);
  if (filter.subjectType !== undefined) conditions.push(sql`subject_type = ${filter.subjectType}`);
  if (filter.subjectId !== undefined) conditions.push(sql`subject_id = ${filter.subjectId}`);
  if (filter.from !== undefined) conditions.push(sql`created_at >= ${filter.from}::timestamptz`);
  if (filter.to !== undefined) conditions.push(sql`created_at < ${filter.to}::timestamptz`);
  if (filter.cursor !== undefined) conditions.push(sql`id < ${auditCursor.decode(filter.cursor)}`);
  const where = conditions.length === 0 ? sql`` : sql`WHERE ${sql.join(conditions, sql` AND `)}`;
  const rows = await selectRows<AuditRow>(
    db,
    sql`SELECT ${auditColumns} FROM audit_log ${where} ORDER BY id DESC LIMIT ${filter.limit + 1}`,
  );
  const items = rows.slice(0, filter.limit).map(toRecord);
  const last = items.at(-1);
  return {
    items,
    next_cursor: rows.length > filter.limit && last ? auditCursor.encode(last.id) : null,
  };
}
