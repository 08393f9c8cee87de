import { sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
import type { Queryable } from '../db/client.ts';
import { enqueue, wakeWorkers } from '../db/job-queue.ts';
import { isoTimeText, selectRows } from '../db/rows.ts';
import type { BroadcastStatus } from '../db/schema/index.ts';
import { withTransaction } from '../db/transaction.ts';
import { type UserFilter, usersMatching } from './admin-users.ts';
import { type Operator, recordAudit } from './audit.ts';
import type { ServiceContext } from './context.ts';
import { notifyOperators } from './operator-notices.ts';

/**
 * Broadcasts: a message operators send to an audience (the filters of GET /admin/users). Starting
 * one snapshots its audience into broadcast_recipients (one row per recipient, in one statement)
 * and enqueues a `broadcast` job; the workers send (src/jobs/broadcast.ts) at BROADCAST_RATE
 * messages per second across all of them. Every change is audited in its transaction.
 */

export interface BroadcastAudience {
  filters: UserFilter[];
  query?: string;
}

export interface NewBroadcast {
  text?: string;
  entities?: unknown[];
  copy?: { from_chat_id: number; message_id: number };
  button?: { text: string; url: string } | null;
  audience: BroadcastAudience;
}

export interface BroadcastView {
  id: number;
  status: BroadcastStatus;
  text: string | null;
  entities: unknown[] | null;
  copy: { from_chat_id: number; message_id: number } | null;
  button: { text: string; url: string } | null;
  audience: BroadcastAudience;
  created_by: string;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  progress: {
    total: number;
    sent: number;
    failed: number;
    blocked: number;
    /** Not sent yet (pending), and being sent right now. */
    remaining: number;
  };
}

interface BroadcastRow {
  id: string | number;
  status: BroadcastStatus;
  text: string | null;
  entities: unknown[] | null;
  copy_from_chat_id: string | number | null;
  copy_message_id: string | number | null;
  button: { text: string; url: string } | null;
  audience: BroadcastAudience;
  created_by: string;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  total: number;
  sent: number;
  failed: number;
  blocked: number;
  remaining: number;
}

const columns = sql.raw(`b.id, b.status, b.text, b.entities, b.copy_from_chat_id, b.copy_message_id,
  b.button, b.audience, b.created_by, ${isoTimeText('b.created_at')} AS created_at,
  ${isoTimeText('b.started_at')} AS started_at, ${isoTimeText('b.completed_at')} AS completed_at,
  b.total_recipients AS total,
  (SELECT count(*) FILTER (WHERE r.status = 'sent') FROM broadcast_recipients r WHERE r.broadcast_id = b.id)::int AS sent,
  (SELECT count(*) FILTER (WHERE r.status = 'failed') FROM broadcast_recipients r WHERE r.broadcast_id = b.id)::int AS failed,
  (SELECT count(*) FILTER (WHERE r.status = 'blocked') FROM broadcast_recipients r WHERE r.broadcast_id = b.id)::int AS blocked,
  (SELECT count(*) FILTER (WHERE r.status IN ('pending', 'sending')) FROM broadcast_recipients r WHERE r.broadcast_id = b.id)::int AS remaining`);

function toView(row: BroadcastRow): BroadcastView {
  return {
    id: Number(row.id),
    status: row.status,
    text: row.text,
    entities: row.entities,
    copy:
      row.copy_from_chat_id === null || row.copy_message_id === null
        ? null
        : { from_chat_id: Number(row.copy_from_chat_id), message_id: Number(row.copy_message_id) },
    button: row.button,
    audience: row.audience,
    created_by: row.created_by,
    created_at: row.created_at,
    started_at: row.started_at,
    completed_at: row.completed_at,
    progress: {
      total: row.total,
      sent: row.sent,
      failed: row.failed,
      blocked: row.blocked,
      remaining: row.remaining,
    },
  };
}

const notFound = (id: number) =>
  new AppError('broadcast_not_found', `There is no broadcast ${id}.`, { broadcast_id: id });

async function readBroadcast(db: Queryable, id: number, lock = false): Promise<BroadcastView> {
  const [row] = await selectRows<BroadcastRow>(
    db,
    lock
      ? sql`SELECT ${columns} FROM broadcasts b WHERE b.id = ${id} FOR UPDATE OF b`
      : sql`SELECT ${columns} FROM broadcasts b WHERE b.id = ${id}`,
  );
  if (!row) throw notFound(id);
  return toView(row);
}

export function getBroadcast(ctx: ServiceContext, id: number): Promise<BroadcastView> {
  return readBroadcast(ctx.db, id);
}

/** The newest broadcasts first (at most `limit`), with their progress. */
export async function listBroadcasts(
  ctx: ServiceContext,
  options: { limit: number; before?: number },
): Promise<BroadcastView[]> {
  const rows = await selectRows<BroadcastRow>(
    ctx.db,
    sql`SELECT ${columns} FROM broadcasts b
        ${options.before === undefined ? sql`` : sql`WHERE b.id < ${options.before}`}
        ORDER BY b.id DESC LIMIT ${options.limit}`,
  );
  return rows.map(toView);
}

export async function createBroadcast(
  ctx: ServiceContext,
  input: NewBroadcast,
  operator: Operator,
): Promise<BroadcastView> {
  const hasText = input.text !== undefined;
  if (hasText === (input.copy !== undefined) || (input.entities !== undefined && !hasText)) {
    throw new AppError(
      'validation_failed',
      'A broadcast is either a `text` (with optional `entities`) or a `copy` of a message, not both.',
      { errors: [{ field: 'body.text', message: 'give either text or copy' }] },
    );
  }
  return withTransaction(ctx.db, async (tx) => {
    const [row] = await selectRows<{ id: string | number }>(
      tx,
      sql`INSERT INTO broadcasts (text, entities, copy_from_chat_id, copy_message_id, button,
                                  audience, created_by)
          VALUES (${input.text ?? null},
                  ${input.entities === undefined ? null : JSON.stringify(input.entities)}::jsonb,
                  ${input.copy?.from_chat_id ?? null}, ${input.copy?.message_id ?? null},
                  ${input.button ? JSON.stringify(input.button) : null}::jsonb,
                  ${JSON.stringify(input.audience)}::jsonb, ${operator.actor})
          RETURNING id`,
    );
    const id = Number(row?.id);
    const view = await readBroadcast(tx, id);
    await recordAudit(tx, {
      ...operator,
      action: 'broadcast.create',
      subjectType: 'broadcast',
      subjectId: id,
      after: {
        text: view.text,
        entities: view.entities,
        copy: view.copy,
        button: view.button,
        audience: view.audience,
      },
    });
    return view;
  });
}

/**
 * How many users an audience selects now: what a start would snapshot (the composer counts an
 * audience before its broadcast exists). Exact, unlike GET /admin/users' capped count.
 */
export async function countAudience(
  ctx: ServiceContext,
  audience: BroadcastAudience,
): Promise<number> {
  const [row] = await selectRows<{ n: number }>(
    ctx.db,
    sql`SELECT count(*)::int AS n FROM users u WHERE ${usersMatching(audience)}`,
  );
  return row?.n ?? 0;
}

/** How many users its audience selects now (what a start would snapshot). */
export async function previewBroadcast(
  ctx: ServiceContext,
  id: number,
): Promise<{ id: number; recipients: number }> {
  const broadcast = await readBroadcast(ctx.db, id);
  return { id, recipients: await countAudience(ctx, broadcast.audience) };
}

/** The Bot API server a job sends through: only workers configured for it claim the job. */
export function broadcastSender(ctx: Pick<ServiceContext, 'config'>): string {
  return `telegram ${ctx.config.delivery.telegramApiRoot.replace(/\/+$/, '')}`;
}

function wrongStatus(view: BroadcastView, action: string): AppError {
  return new AppError(
    'broadcast_wrong_status',
    `Broadcast ${view.id} is ${view.status}: it cannot be ${action}.`,
    { broadcast_id: view.id, status: view.status },
  );
}

async function enqueueSending(ctx: ServiceContext, tx: Queryable, id: number): Promise<void> {
  await enqueue(tx, {
    kind: 'broadcast',
    provider: broadcastSender(ctx),
    payload: { broadcast_id: id },
    maxAttempts: 1000,
  });
}

/**
 * Snapshots the audience into broadcast_recipients in one statement and enqueues the sending job;
 * an audience of nobody completes the broadcast at once.
 */
export async function startBroadcast(
  ctx: ServiceContext,
  id: number,
  operator: Operator,
  reason: string,
): Promise<BroadcastView> {
  const view = await withTransaction(ctx.db, async (tx) => {
    const before = await readBroadcast(tx, id, true);
    if (before.status !== 'draft') throw wrongStatus(before, 'started');
    const [snapshot] = await selectRows<{ n: number }>(
      tx,
      sql`WITH inserted AS (
            INSERT INTO broadcast_recipients (broadcast_id, user_id, telegram_id)
            SELECT ${id}, u.id, u.telegram_id FROM users u WHERE ${usersMatching(before.audience)}
            ON CONFLICT DO NOTHING
            RETURNING 1)
          SELECT count(*)::int AS n FROM inserted`,
    );
    const total = snapshot?.n ?? 0;
    await tx.execute(
      sql`UPDATE broadcasts SET total_recipients = ${total}, started_at = now(),
                 status = ${total === 0 ? 'completed' : 'running'},
                 completed_at = CASE WHEN ${total} = 0 THEN now() END
          WHERE id = ${id}`,
    );
    if (total > 0) await enqueueSending(ctx, tx, id);
    const after = await readBroadcast(tx, id);
    await recordAudit(tx, {
      ...operator,
      action: 'broadcast.start',
      subjectType: 'broadcast',
      subjectId: id,
      before: { status: before.status },
      after: { status: after.status, recipients: total },
      reason,
    });
    return after;
  });
  wakeWorkers(ctx.db);
  return view;
}

const transitions = {
  pause: { from: ['running'], to: 'paused', verb: 'paused' },
  resume: { from: ['paused'], to: 'running', verb: 'resumed' },
  cancel: { from: ['draft', 'running', 'paused'], to: 'cancelled', verb: 'cancelled' },
} as const;

/**
 * Pause (the workers stop before their next send batch), resume (sending goes on where it
 * stopped: a new job), cancel (nothing more is sent; what was not sent stays counted remaining).
 */
export async function changeBroadcast(
  ctx: ServiceContext,
  id: number,
  action: keyof typeof transitions,
  operator: Operator,
  reason: string,
): Promise<BroadcastView> {
  const rule = transitions[action];
  const view = await withTransaction(ctx.db, async (tx) => {
    const before = await readBroadcast(tx, id, true);
    if (!(rule.from as readonly string[]).includes(before.status)) {
      throw wrongStatus(before, rule.verb);
    }
    await tx.execute(
      sql`UPDATE broadcasts SET status = ${rule.to},
                 completed_at = CASE WHEN ${rule.to} = 'cancelled' THEN now() ELSE completed_at END
          WHERE id = ${id}`,
    );
    if (action === 'resume') await enqueueSending(ctx, tx, id);
    const after = await readBroadcast(tx, id);
    await recordAudit(tx, {
      ...operator,
      action: `broadcast.${action}`,
      subjectType: 'broadcast',
      subjectId: id,
      before: { status: before.status, progress: before.progress },
      after: { status: after.status },
      reason,
    });
    return after;
  });
  if (action === 'resume') wakeWorkers(ctx.db);
  return view;
}

/** A broadcast that ended longer ago than this gets no summary (ADMIN_CHAT_ID set up later). */
const SUMMARY_WITHIN_HOURS = 24;

/**
 * Tells the operators' chat how each broadcast that ended (completed, or cancelled after it
 * started) went: sent, blocked, failed and, when cancelled, not sent. Once per broadcast (notice
 * key `broadcast-summary:<id>`), whoever asks: the sending job when it completes one, and every
 * worker's housekeeping for the others (cancelled ones, and a completion whose summary a crash
 * lost). A cancelled broadcast waits until no recipient is being sent to (rows `sending` within
 * the job lease), so its numbers are final. `id`: that broadcast only.
 */
export async function sendBroadcastSummaries(ctx: ServiceContext, id?: number): Promise<number> {
  // Answers how many summaries it sent.
  if (ctx.config.operators.adminChatId === null) return 0;
  const lease = ctx.config.worker.leaseSeconds;
  const ended = await selectRows<{ id: string | number }>(
    ctx.db,
    sql`SELECT b.id FROM broadcasts b
        WHERE b.status IN ('completed', 'cancelled') AND b.started_at IS NOT NULL
          AND b.completed_at > now() - make_interval(hours => ${SUMMARY_WITHIN_HOURS})
          ${id === undefined ? sql`` : sql`AND b.id = ${id}`}
          AND NOT EXISTS (SELECT 1 FROM operator_notices n
                          WHERE n.key = 'broadcast-summary:' || b.id AND n.status <> 'failed')
          AND NOT EXISTS (SELECT 1 FROM broadcast_recipients r
                          WHERE r.broadcast_id = b.id AND r.status = 'sending'
                            AND r.claimed_at > now() - make_interval(secs => ${lease}))
        ORDER BY b.id LIMIT 20`,
  );
  let summaries = 0;
  for (const row of ended) {
    const broadcastId = Number(row.id);
    const notice = await notifyOperators(ctx, `broadcast-summary:${broadcastId}`, async (t) => {
      const view = await readBroadcast(ctx.db, broadcastId);
      const { total, sent, blocked, failed, remaining } = view.progress;
      // The id as text: Fluent would group a number's digits (#1,234).
      const named = { id: String(broadcastId), total, sent, blocked, failed };
      return view.status === 'cancelled'
        ? t('notice-broadcast-cancelled', { ...named, remaining })
        : t('notice-broadcast-completed', named);
    });
    if (notice.outcome === 'sent') summaries++;
  }
  return summaries;
}
