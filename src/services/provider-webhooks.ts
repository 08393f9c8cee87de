import { sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { selectRows } from '../db/rows.ts';
import { ProviderError, type ProviderWebhook, WebhookSignatureError } from '../providers/types.ts';
import type { ResultStore } from '../storage/results.ts';
import type { PipelineContext } from './context.ts';
import { recordGenerationFailure, recordGenerationSuccess } from './generation-outcomes.ts';

export interface WebhookOutcome {
  /** settled: this call finished the generation; duplicate: it was already finished; ignored: not ours or not final. */
  outcome: 'settled' | 'duplicate' | 'ignored';
  generation_id: string | null;
}

/**
 * A provider tells us a job finished. Only a correctly signed call is read; it settles the
 * generation through the same guarded transaction as the worker, so a duplicate webhook, or a
 * webhook racing the worker's poll, finishes it once. Polling continues regardless: a webhook
 * that never comes only costs time.
 */
export async function handleProviderWebhook(
  ctx: PipelineContext,
  store: ResultStore,
  providerName: string,
  webhook: ProviderWebhook,
  logger: Pick<Logger, 'info'>,
): Promise<WebhookOutcome> {
  const provider = ctx.providers.get(providerName);
  if (!provider?.readWebhook) {
    throw new AppError(
      'provider_not_found',
      `No provider "${providerName}" with webhooks is configured.`,
    );
  }
  let event: ReturnType<NonNullable<typeof provider.readWebhook>>;
  try {
    event = provider.readWebhook(webhook);
  } catch (error) {
    if (error instanceof WebhookSignatureError) {
      throw new AppError(
        'invalid_signature',
        `The webhook signature was refused: ${error.message}.`,
      );
    }
    throw new AppError('invalid_webhook', (error as Error).message);
  }
  const [job] = await selectRows<{ request_id: string; http_request_id: string | null }>(
    ctx.db,
    sql`SELECT j.request_id, g.http_request_id
        FROM generation_jobs j JOIN generation_requests g ON g.id = j.request_id
        WHERE j.kind = 'generate' AND j.provider = ${provider.name}
          AND j.provider_job_id = ${event.providerJobId}`,
  );
  if (!job) return { outcome: 'ignored', generation_id: null };
  const { status } = event;
  if (status.state === 'pending') return { outcome: 'ignored', generation_id: job.request_id };
  let settled: boolean;
  try {
    settled =
      status.state === 'succeeded'
        ? await recordGenerationSuccess(ctx, store, job.request_id, status)
        : await recordGenerationFailure(ctx, job.request_id, {
            code: 'provider_failed',
            message: status.error,
          });
  } catch (error) {
    // A result we cannot copy (not an image, too big, its URL refusing us) is left to the job's
    // own poll, which retries or fails (and refunds) it by the same rules as any other.
    if (error instanceof ProviderError)
      return { outcome: 'ignored', generation_id: job.request_id };
    throw error;
  }
  if (settled) {
    // The same line of the generation's story as the worker's (jobs/generate.ts) when it settles.
    const story = { generationId: job.request_id, requestId: job.http_request_id, by: 'webhook' };
    if (status.state === 'succeeded') logger.info(story, 'generation succeeded');
    else
      logger.info(
        { ...story, code: 'provider_failed', message: status.error },
        'generation failed',
      );
  }
  return { outcome: settled ? 'settled' : 'duplicate', generation_id: job.request_id };
}
