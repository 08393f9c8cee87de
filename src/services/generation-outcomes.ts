import { sql } from 'drizzle-orm';
import type { Config } from '../core/config.ts';
import type { Queryable, Transaction } from '../db/client.ts';
import { selectRows } from '../db/rows.ts';
import { enqueue, wakeWorkers } from '../jobs/queue.ts';
import type { ProviderImage } from '../providers/types.ts';
import type { ResultStore } from '../storage/results.ts';
import { type ServiceContext, withTransaction } from './context.ts';
import { refundCharge } from './ledger.ts';

/**
 * How a generation ends. Each ending is one transaction guarded by the request's status
 * (queued/running → succeeded/failed): whoever gets there first (the worker, a webhook, a
 * duplicate webhook, a takeover after a crash) settles it; everyone after is told it was already
 * settled and changes nothing. A failure gives back what was paid in that same transaction.
 */

export interface GenerationFailure {
  /** Stable: provider_failed, provider_rejected, provider_unavailable, deadline_exceeded, … */
  code: string;
  message: string;
}

/** Whether finished generations get a delivery job (Telegram and/or the signed webhook). */
export function deliveryWanted(config: Config): boolean {
  return config.telegramBotToken !== null || config.delivery.webhookUrl !== null;
}

async function endGenerateJob(
  tx: Transaction,
  requestId: string,
  status: 'succeeded' | 'failed',
  error: string | null,
): Promise<void> {
  await tx.execute(
    sql`UPDATE generation_jobs SET status = ${status}, step = 'done', locked_by = NULL,
               locked_until = NULL, last_error = ${error}, updated_at = now()
        WHERE request_id = ${requestId} AND kind = 'generate' AND status IN ('pending', 'running')`,
  );
}

/**
 * Stores the images and marks the generation succeeded. Image bytes are written before the
 * transaction (a file write is no reason to hold row locks); a settle that loses the race leaves
 * the same files, at the same paths, as the winner.
 */
export async function recordGenerationSuccess(
  ctx: ServiceContext,
  store: ResultStore,
  requestId: string,
  outcome: { images: ProviderImage[]; metadata?: Record<string, unknown> },
): Promise<boolean> {
  const results = await Promise.all(
    outcome.images.map(async (image, position) => ({
      position,
      url: image.data ? null : (image.url ?? null),
      storage_path: image.data
        ? await store.save(requestId, position, image.data, image.mimeType)
        : null,
      mime_type: image.mimeType,
      width: image.width ?? null,
      height: image.height ?? null,
      seed: image.seed ?? null,
    })),
  );
  const metadata = outcome.metadata ? JSON.stringify(outcome.metadata) : null;
  // One statement: the status guard, the results and the job's end commit together.
  const settle = async (db: Queryable) =>
    (
      await selectRows<{ id: string }>(
        db,
        sql`WITH settled AS (
              UPDATE generation_requests
              SET status = 'succeeded', completed_at = now(), started_at = COALESCE(started_at, now())
              WHERE id = ${requestId} AND status IN ('queued', 'running')
              RETURNING id),
            stored AS (
              INSERT INTO generation_results
                (request_id, position, url, storage_path, mime_type, width, height, seed, provider_metadata)
              SELECT settled.id, r.position, r.url, r.storage_path, r.mime_type, r.width, r.height,
                     r.seed, ${metadata}::jsonb
              FROM settled, jsonb_to_recordset(${JSON.stringify(results)}::jsonb)
                   AS r(position smallint, url text, storage_path text, mime_type text,
                        width integer, height integer, seed bigint)),
            ended AS (
              UPDATE generation_jobs SET status = 'succeeded', step = 'done', locked_by = NULL,
                     locked_until = NULL, last_error = NULL, updated_at = now()
              WHERE request_id IN (SELECT id FROM settled) AND kind = 'generate'
                AND status IN ('pending', 'running'))
            SELECT id FROM settled`,
      )
    ).length === 1;
  if (!deliveryWanted(ctx.config)) return settle(ctx.db);
  const settled = await withTransaction(ctx.db, async (tx) => {
    if (!(await settle(tx))) return false;
    await enqueue(tx, { kind: 'deliver', requestId });
    return true;
  });
  if (settled) wakeWorkers(ctx.db);
  return settled;
}

/** Marks the generation failed and gives back its credits or its free generation, once. */
export async function recordGenerationFailure(
  ctx: ServiceContext,
  requestId: string,
  failure: GenerationFailure,
): Promise<boolean> {
  const settled = await withTransaction(ctx.db, async (tx) => {
    const [settled] = await selectRows<{
      payment_method: 'credits' | 'trial';
      charge_entry_id: string | number | null;
    }>(
      tx,
      sql`UPDATE generation_requests
          SET status = 'failed', error_code = ${failure.code},
              error_message = ${failure.message.slice(0, 1000)}, completed_at = now()
          WHERE id = ${requestId} AND status IN ('queued', 'running')
          RETURNING payment_method, charge_entry_id`,
    );
    if (!settled) return false;
    const reason = `generation failed: ${failure.code}`;
    if (settled.payment_method === 'credits' && settled.charge_entry_id !== null) {
      const { entry } = await refundCharge(tx, Number(settled.charge_entry_id), { reason });
      await tx.execute(
        sql`UPDATE generation_requests SET refund_entry_id = ${entry.id} WHERE id = ${requestId}`,
      );
    } else if (settled.payment_method === 'trial') {
      await tx.execute(
        sql`UPDATE trial_uses SET returned_at = now(), return_reason = ${reason}
            WHERE generation_request_id = ${requestId} AND returned_at IS NULL`,
      );
    }
    await endGenerateJob(tx, requestId, 'failed', `${failure.code}: ${failure.message}`);
    if (deliveryWanted(ctx.config)) await enqueue(tx, { kind: 'deliver', requestId });
    return true;
  });
  if (settled && deliveryWanted(ctx.config)) wakeWorkers(ctx.db);
  return settled;
}
