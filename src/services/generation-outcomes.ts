import { sql } from 'drizzle-orm';
import type { Config } from '../core/config.ts';
import type { Transaction } from '../db/client.ts';
import { enqueue, wakeWorkers } from '../db/job-queue.ts';
import { selectRows } from '../db/rows.ts';
import { withTransaction } from '../db/transaction.ts';
import { ProviderError, type ProviderImage } from '../providers/types.ts';
import { type CheckedImage, checkImage, downloadImage, ImageRefused } from '../storage/download.ts';
import type { ResultStore } from '../storage/results.ts';
import type { ServiceContext } from './context.ts';
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
function deliveryWanted(config: Config): boolean {
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

export interface StoredResult {
  position: number;
  url: string | null;
  storage_path: string | null;
  mime_type: string;
  width: number | null;
  height: number | null;
  seed: number | null;
}

export interface Success {
  requestId: string;
  results: StoredResult[];
  metadata?: Record<string, unknown>;
}

/**
 * Copies every result into our store before anything is recorded or delivered (provider URLs
 * expire: Replicate's within an hour): bytes as given, URLs downloaded; each checked to be an
 * image by its magic bytes and at most RESULT_MAX_MB. Outside any transaction (a download is no
 * reason to hold row locks). A settle that loses the race leaves the same objects, under the same
 * keys, as the winner. The provider's URL is kept beside the copy, for the record only.
 */
export async function storeImages(
  store: ResultStore,
  requestId: string,
  images: readonly ProviderImage[],
  maxBytes: number,
  signal?: AbortSignal,
): Promise<StoredResult[]> {
  return Promise.all(
    images.map(async (image, position) => {
      let checked: CheckedImage;
      try {
        if (image.data) checked = checkImage(image.data, maxBytes);
        else if (image.url) checked = await downloadImage(image.url, maxBytes, signal);
        else throw new ImageRefused('the provider gave a result with no image', false);
      } catch (error) {
        // Told like a provider's failure: retried, or final (the generation fails, refunded).
        if (error instanceof ImageRefused) throw new ProviderError(error.message, error.retryable);
        throw error;
      }
      return {
        position,
        url: image.url ?? null,
        storage_path: await store.save(requestId, position, checked.data, checked.mimeType),
        mime_type: checked.mimeType,
        width: image.width ?? null,
        height: image.height ?? null,
        seed: image.seed ?? null,
      };
    }),
  );
}

/**
 * Marks generations succeeded, with their results, in one statement: the status guard, the
 * results, the end of each generate job and (when deliveries are wanted) each deliver job commit
 * together. Requests are taken in id order, so two batches never lock rows in opposite orders.
 * Answers, per success, whether it settled the generation (false: it was already settled).
 */
export async function settleSuccesses(
  ctx: ServiceContext,
  successes: readonly Success[],
): Promise<boolean[]> {
  const payload = [...successes]
    .sort((a, b) => (a.requestId < b.requestId ? -1 : 1))
    .map((success) => ({
      request_id: success.requestId,
      results: success.results,
      metadata: success.metadata ?? null,
    }));
  const deliver = deliveryWanted(ctx.config);
  const rows = await selectRows<{ id: string }>(
    ctx.db,
    sql`WITH input AS (
          SELECT * FROM jsonb_to_recordset(${JSON.stringify(payload)}::jsonb)
                        AS x(request_id uuid, results jsonb, metadata jsonb)),
        settled AS (
          UPDATE generation_requests g
          SET status = 'succeeded', completed_at = now(), started_at = COALESCE(g.started_at, now())
          FROM input
          WHERE g.id = input.request_id AND g.status IN ('queued', 'running')
          RETURNING g.id),
        stored AS (
          INSERT INTO generation_results
            (request_id, position, url, storage_path, mime_type, width, height, seed, provider_metadata)
          SELECT settled.id, r.position, r.url, r.storage_path, r.mime_type, r.width, r.height,
                 r.seed, input.metadata
          FROM settled JOIN input ON input.request_id = settled.id,
               jsonb_to_recordset(input.results)
                 AS r(position smallint, url text, storage_path text, mime_type text,
                      width integer, height integer, seed bigint)),
        ended AS (
          UPDATE generation_jobs SET status = 'succeeded', step = 'done', locked_by = NULL,
                 locked_until = NULL, last_error = NULL, updated_at = now()
          WHERE request_id IN (SELECT id FROM settled) AND kind = 'generate'
            AND status IN ('pending', 'running')),
        -- The queue's enqueue, for a whole batch at once (see db/job-queue.ts).
        deliveries AS (
          INSERT INTO generation_jobs (kind, request_id)
          SELECT 'deliver', id FROM settled WHERE ${deliver}
          ON CONFLICT (request_id, kind) DO NOTHING)
        SELECT id FROM settled`,
  );
  if (deliver && rows.length > 0) wakeWorkers(ctx.db);
  const settled = new Set(rows.map((row) => row.id));
  return successes.map((success) => settled.has(success.requestId));
}

/** Stores the images and marks the generation succeeded; false if it was already settled. */
export async function recordGenerationSuccess(
  ctx: ServiceContext,
  store: ResultStore,
  requestId: string,
  outcome: { images: ProviderImage[]; metadata?: Record<string, unknown> },
): Promise<boolean> {
  const results = await storeImages(
    store,
    requestId,
    outcome.images,
    ctx.config.storage.resultMaxBytes,
  );
  const [settled] = await settleSuccesses(ctx, [
    { requestId, results, ...(outcome.metadata ? { metadata: outcome.metadata } : {}) },
  ]);
  return settled === true;
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
