import { sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
import { isoTimeText, selectRows } from '../db/rows.ts';
import type { GenerationStatus } from '../db/schema/index.ts';
import { withTransaction } from '../db/transaction.ts';
import { type Operator, recordAudit } from './audit.ts';
import type { ServiceContext } from './context.ts';
import { generationCursor } from './cursor.ts';
import {
  type GenerationRow,
  type GenerationView,
  generationColumns,
  generationSource,
  toView,
} from './generation-views.ts';
import { refundCharge } from './ledger.ts';

/**
 * Generations and the queue as operators see them: every user's generations with filters, the
 * queue's state, and giving back a generation that succeeded (the user was unhappy with it).
 */

export interface AdminGenerationView extends GenerationView {
  /** The generate job: which provider has it, its job id there, how many attempts it took. */
  job: { provider: string | null; provider_job_id: string | null; attempts: number } | null;
  /** Seconds from accepted to finished (null while not finished). */
  duration_seconds: number | null;
}

interface AdminGenerationRow extends GenerationRow {
  job_provider: string | null;
  job_provider_job_id: string | null;
  job_attempts: number | null;
  duration_seconds: string | number | null;
}

export interface GenerationFilter {
  status?: GenerationStatus;
  model?: string;
  user?: number;
  from?: string;
  to?: string;
}

const adminColumns = sql.raw(`j.provider AS job_provider, j.provider_job_id AS job_provider_job_id,
  j.attempts AS job_attempts,
  round(extract(epoch FROM g.completed_at - g.created_at)::numeric, 3) AS duration_seconds`);

function toAdminView(row: AdminGenerationRow, publicBaseUrl: string | null): AdminGenerationView {
  return {
    ...toView(row, publicBaseUrl),
    job:
      row.job_attempts === null
        ? null
        : {
            provider: row.job_provider,
            provider_job_id: row.job_provider_job_id,
            attempts: row.job_attempts,
          },
    duration_seconds: row.duration_seconds === null ? null : Number(row.duration_seconds),
  };
}

/** Every user's generations, newest first, by keyset on (created_at, id), filtered. */
export async function listAllGenerations(
  ctx: ServiceContext,
  filter: GenerationFilter,
  options: { limit: number; cursor?: string },
): Promise<{ generations: AdminGenerationView[]; next_cursor: string | null }> {
  const after = options.cursor === undefined ? null : generationCursor.decode(options.cursor);
  const rows = await selectRows<AdminGenerationRow>(
    ctx.db,
    sql`SELECT ${generationColumns}, ${adminColumns}
        FROM ${generationSource}
        LEFT JOIN generation_jobs j ON j.request_id = g.id AND j.kind = 'generate'
        WHERE true
          ${filter.status === undefined ? sql`` : sql`AND g.status = ${filter.status}`}
          ${filter.model === undefined ? sql`` : sql`AND m.key = ${filter.model}`}
          ${filter.user === undefined ? sql`` : sql`AND u.telegram_id = ${filter.user}`}
          ${filter.from === undefined ? sql`` : sql`AND g.created_at >= ${filter.from}::timestamptz`}
          ${filter.to === undefined ? sql`` : sql`AND g.created_at < ${filter.to}::timestamptz`}
          ${after ? sql`AND (g.created_at, g.id) < (${after.createdAt}::timestamptz, ${after.id}::uuid)` : sql``}
        ORDER BY g.created_at DESC, g.id DESC
        LIMIT ${options.limit + 1}`,
  );
  const page = rows.slice(0, options.limit);
  const last = page.at(-1);
  return {
    generations: page.map((row) => toAdminView(row, ctx.config.publicBaseUrl)),
    next_cursor:
      rows.length > options.limit && last
        ? generationCursor.encode({ createdAt: last.cursor_at, id: last.id })
        : null,
  };
}

export interface QueueJobs {
  kind: string;
  provider: string | null;
  waiting: number;
  running: number;
}

export interface QueueState {
  jobs: QueueJobs[];
  /** Age of the oldest job waiting to run (pending and due), in seconds; null: none waits. */
  oldest_waiting_seconds: number | null;
  /** Jobs that ended failed in the last hour. */
  failed_last_hour: number;
  /** Generations queued or running now. */
  active_generations: number;
}

/** The queue now: waiting and running jobs by kind and provider, its oldest wait, recent failures. */
export async function queueState(ctx: ServiceContext): Promise<QueueState> {
  // A generate job has its provider from acceptance on (the route chosen then, or the next one a
  // failover handed it to); the model's first route stands in for a job that has none.
  const jobs = await selectRows<{
    kind: string;
    provider: string | null;
    waiting: number;
    running: number;
  }>(
    ctx.db,
    sql`SELECT j.kind, COALESCE(j.provider, (SELECT r.provider FROM model_routes r
                 WHERE r.model_id = m.id ORDER BY r.priority LIMIT 1)) AS provider,
               count(*) FILTER (WHERE j.status = 'pending')::int AS waiting,
               count(*) FILTER (WHERE j.status = 'running')::int AS running
        FROM generation_jobs j
        LEFT JOIN generation_requests g ON g.id = j.request_id AND j.kind = 'generate'
        LEFT JOIN model_catalog m ON m.id = g.model_id
        WHERE j.status IN ('pending', 'running')
        GROUP BY 1, 2
        ORDER BY 1, 2 NULLS FIRST`,
  );
  const [summary] = await selectRows<{
    oldest: string | number | null;
    failed: number;
    active: number;
  }>(
    ctx.db,
    sql`SELECT (SELECT round(extract(epoch FROM now() - min(created_at))::numeric, 3)
                FROM generation_jobs WHERE status = 'pending' AND run_at <= now()) AS oldest,
               (SELECT count(*)::int FROM generation_jobs
                WHERE status = 'failed' AND updated_at > now() - interval '1 hour') AS failed,
               (SELECT count(*)::int FROM generation_requests
                WHERE status IN ('queued', 'running')) AS active`,
  );
  return {
    jobs: jobs.map((row) => ({
      kind: row.kind,
      provider: row.provider,
      waiting: row.waiting,
      running: row.running,
    })),
    oldest_waiting_seconds:
      summary?.oldest === null || summary?.oldest === undefined
        ? null
        : Math.max(0, Number(summary.oldest)),
    failed_last_hour: summary?.failed ?? 0,
    active_generations: summary?.active ?? 0,
  };
}

export interface GenerationRefund {
  generation: AdminGenerationView;
  /** What was given back: credits (the refund's ledger entry) or the free generation. */
  refund: { method: 'credits' | 'trial'; credits: number; entry_id: number | null };
}

/**
 * Gives back what a succeeded generation cost, once. Under the generation's row lock: concurrent
 * refunds queue there and see it done. The credits go back through refundCharge, whose key is the
 * charge's (`refund-of-entry:<charge>`), the same key a failure's refund uses; and a failure's
 * refund needs the generation queued or running, this one succeeded: the two never both happen.
 * `record` runs in the same transaction (the audit entry).
 */
export async function refundSucceededGeneration(
  ctx: ServiceContext,
  id: string,
  operator: Operator,
  reason: string,
): Promise<GenerationRefund> {
  const refund = await withTransaction(ctx.db, async (tx) => {
    const [row] = await selectRows<{
      status: GenerationStatus;
      payment_method: 'credits' | 'trial';
      price_credits: number;
      charge_entry_id: string | number | null;
      refund_entry_id: string | number | null;
      trial_returned: boolean;
      completed_at: string | null;
    }>(
      tx,
      sql`SELECT g.status, g.payment_method, g.price_credits, g.charge_entry_id, g.refund_entry_id,
                 EXISTS (SELECT 1 FROM trial_uses t
                         WHERE t.generation_request_id = g.id AND t.returned_at IS NOT NULL)
                   AS trial_returned,
                 ${sql.raw(isoTimeText('g.completed_at'))} AS completed_at
          FROM generation_requests g WHERE g.id = ${id} FOR UPDATE`,
    );
    if (!row) throw new AppError('generation_not_found', `No generation ${id}.`);
    if (row.status === 'queued' || row.status === 'running') {
      throw new AppError(
        'generation_not_finished',
        `Generation ${id} is ${row.status}: only a succeeded generation can be given back by an operator.`,
        { generation_status: row.status },
      );
    }
    if (row.status === 'failed') {
      throw new AppError(
        'generation_already_refunded',
        `Generation ${id} failed and was given back automatically when it failed.`,
        { generation_status: row.status, refunded_by: 'failure' },
      );
    }
    if (row.status !== 'succeeded') {
      throw new AppError(
        'generation_not_finished',
        `Generation ${id} is ${row.status}: only a succeeded generation can be given back by an operator.`,
        { generation_status: row.status },
      );
    }
    if (row.refund_entry_id !== null || row.trial_returned) {
      throw new AppError(
        'generation_already_refunded',
        `Generation ${id} was already given back by an operator.`,
        { generation_status: row.status, refunded_by: 'admin' },
      );
    }
    const ledgerReason = `admin refund: ${reason}`;
    let entryId: number | null = null;
    if (row.payment_method === 'credits' && row.charge_entry_id !== null) {
      const { entry } = await refundCharge(tx, Number(row.charge_entry_id), {
        reason: ledgerReason,
        actor: operator.actor,
      });
      entryId = entry.id;
      await tx.execute(
        sql`UPDATE generation_requests SET refund_entry_id = ${entry.id} WHERE id = ${id}`,
      );
    } else if (row.payment_method === 'trial') {
      await tx.execute(
        sql`UPDATE trial_uses SET returned_at = now(), return_reason = ${ledgerReason.slice(0, 1000)}
            WHERE generation_request_id = ${id} AND returned_at IS NULL`,
      );
    }
    const given: GenerationRefund['refund'] = {
      method: row.payment_method,
      credits: row.payment_method === 'credits' ? row.price_credits : 0,
      entry_id: entryId,
    };
    await recordAudit(tx, {
      ...operator,
      action: 'generation.refund',
      subjectType: 'generation',
      subjectId: id,
      before: { refunded: false },
      after: { refunded: true, ...given },
      reason,
    });
    return given;
  });
  return { generation: await getAdminGeneration(ctx, id), refund };
}

async function getAdminGeneration(ctx: ServiceContext, id: string): Promise<AdminGenerationView> {
  const [row] = await selectRows<AdminGenerationRow>(
    ctx.db,
    sql`SELECT ${generationColumns}, ${adminColumns}
        FROM ${generationSource}
        LEFT JOIN generation_jobs j ON j.request_id = g.id AND j.kind = 'generate'
        WHERE g.id = ${id}`,
  );
  if (!row) throw new AppError('generation_not_found', `No generation ${id}.`);
  return toAdminView(row, ctx.config.publicBaseUrl);
}
