import { sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
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
  const [job] = await selectRows<{ request_id: string }>(
    ctx.db,
    sql`SELECT request_id FROM generation_jobs
        WHERE kind = 'generate' AND provider = ${provider.name}
          AND provider_job_id = ${event.providerJobId}`,
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
  return { outcome: settled ? 'settled' : 'duplicate', generation_id: job.request_id };
}
