import { sql } from 'drizzle-orm';
import { backoffSeconds, complete, fail, type Job, recordStep, runLater } from '../db/job-queue.ts';
import { selectRows } from '../db/rows.ts';
import {
  type ChatOutcome,
  DeliveryError,
  type DeliveryImage,
  failureReasonFor,
} from '../delivery/telegram.ts';
import type { DeliveryWebhookEvent } from '../delivery/webhook.ts';
import { type GenerationView, getGenerationById } from '../services/generation-views.ts';
import { chatTarget, TELEGRAM_DESTINATION_SQL, type TelegramDestination } from './destination.ts';
import type { JobEnvironment } from './types.ts';

type Channel = 'telegram' | 'webhook';

/**
 * Sends a finished generation to the user's chat and/or the bot's webhook. Each channel that
 * succeeded is recorded in the job's step, so a retry does not send it twice. Delivery never
 * touches the generation: a failed delivery does not refund and does not generate again.
 */
export async function runDeliverJob(
  env: JobEnvironment,
  job: Job,
  signal: AbortSignal,
): Promise<void> {
  const { ctx, delivery } = env;
  const generation = job.requestId ? await getGenerationById(ctx, job.requestId) : null;
  if (!generation || (generation.status !== 'succeeded' && generation.status !== 'failed')) {
    await fail(ctx.db, job, 'nothing to deliver: the generation is not finished');
    return;
  }
  const done = new Set(
    job.step.split(',').filter((part) => part === 'telegram' || part === 'webhook'),
  );
  const channels: Channel[] = [];
  if (delivery.telegram) channels.push('telegram');
  if (delivery.webhook) channels.push('webhook');
  const refused: string[] = [];
  for (const channel of channels) {
    if (done.has(channel) || signal.aborted) continue;
    /** The user's own private chat, when that is where this delivery goes. */
    let privateChat: number | null = null;
    let delivered = false;
    try {
      if (channel === 'telegram' && delivery.telegram) {
        const destination = await destinationOf(env, generation.id);
        if (destination.telegram.chat_id === generation.telegram_id) {
          privateChat = generation.telegram_id;
        }
        await delivery.telegram.deliverToChat(
          chatTarget(destination.telegram, ctx.config.defaultLanguage),
          await chatOutcome(env, generation, destination.model_name),
        );
        if (privateChat !== null) await recordBlocked(env, privateChat, false);
      } else if (channel === 'webhook' && delivery.webhook) {
        await delivery.webhook.deliver(webhookEvent(generation));
      }
      delivered = true;
    } catch (error) {
      const failure =
        error instanceof DeliveryError
          ? error
          : new DeliveryError(error instanceof Error ? error.message : String(error), {
              retryable: true,
            });
      if (failure.retryable && job.attempts < job.maxAttempts) {
        const wait = Math.max(backoffSeconds(job.attempts), failure.retryAfterSeconds ?? 0);
        await runLater(ctx.db, job, {
          delaySeconds: wait,
          error: `${channel}: ${failure.message}`,
        });
        return;
      }
      env.logger.warn(
        { generationId: generation.id, channel, err: failure },
        'delivery given up: the generation stays as it is',
      );
      // Telegram refuses a private chat with 403 when its user blocked the bot (or is gone).
      if (privateChat !== null && failure.status === 403) {
        await recordBlocked(env, privateChat, true);
      }
      refused.push(`${channel}: ${failure.message}`);
    }
    done.add(channel);
    await recordStep(ctx.db, job, { step: [...done].join(',') });
    if (delivered) {
      const requestId = await httpRequestIdOf(env, generation.id);
      env.logger.info({ generationId: generation.id, requestId, channel }, 'generation delivered');
    }
  }
  if (refused.length > 0) await fail(ctx.db, job, refused.join('; ').slice(0, 1000));
  else await complete(ctx.db, job);
}

/** The HTTP request that accepted the generation, for the delivery's log line. */
async function httpRequestIdOf(env: JobEnvironment, generationId: string): Promise<string | null> {
  const [row] = await selectRows<{ http_request_id: string | null }>(
    env.ctx.db,
    sql`SELECT http_request_id FROM generation_requests WHERE id = ${generationId}`,
  );
  return row?.http_request_id ?? null;
}

/**
 * users.blocked_at, which operators filter on: set when Telegram refused the user's private chat
 * (403), cleared when a delivery there got through again. Writes only when it changes.
 */
async function recordBlocked(
  env: JobEnvironment,
  telegramId: number,
  blocked: boolean,
): Promise<void> {
  await env.ctx.db.execute(
    blocked
      ? sql`UPDATE users SET blocked_at = now() WHERE telegram_id = ${telegramId} AND blocked_at IS NULL`
      : sql`UPDATE users SET blocked_at = NULL WHERE telegram_id = ${telegramId} AND blocked_at IS NOT NULL`,
  );
}

/**
 * Where this generation's news goes (the bot's chat from POST /generations `telegram`, else the
 * user's own private chat; see destination.ts) and its model's name.
 */
async function destinationOf(
  env: JobEnvironment,
  requestId: string,
): Promise<{ telegram: TelegramDestination; model_name: string }> {
  const [row] = await selectRows<{ telegram: TelegramDestination | null; model_name: string }>(
    env.ctx.db,
    sql`SELECT ${TELEGRAM_DESTINATION_SQL} AS telegram, m.display_name AS model_name
        FROM generation_requests g JOIN model_catalog m ON m.id = g.model_id
        WHERE g.id = ${requestId}`,
  );
  if (!row?.telegram) {
    throw new DeliveryError(`generation ${requestId} has no chat to deliver to`, {
      retryable: false,
    });
  }
  return { telegram: row.telegram, model_name: row.model_name };
}

/** The generation as the bot's chat is told of it: what it cost, or why it failed. */
async function chatOutcome(
  env: JobEnvironment,
  generation: GenerationView,
  modelName: string,
): Promise<ChatOutcome> {
  if (generation.status === 'succeeded') {
    return {
      status: 'succeeded',
      generationId: generation.id,
      modelName,
      cost:
        generation.payment.method === 'trial'
          ? { free: true }
          : { credits: generation.payment.credits },
      images: await deliveryImages(env, generation),
    };
  }
  return {
    status: 'failed',
    generationId: generation.id,
    reason: failureReasonFor(generation.error?.code ?? null),
    refunded: refundOf(generation),
  };
}

/**
 * The results to send: our stored copies (a file on this host, or the bytes from S3), else the
 * provider's URL (results stored before every result was copied).
 */
async function deliveryImages(
  env: JobEnvironment,
  generation: GenerationView,
): Promise<DeliveryImage[]> {
  const stored = await selectRows<{ position: number; storage_path: string | null }>(
    env.ctx.db,
    sql`SELECT position, storage_path FROM generation_results WHERE request_id = ${generation.id}`,
  );
  const keys = new Map(stored.map((row) => [row.position, row.storage_path]));
  return Promise.all(
    generation.results.map(async (result): Promise<DeliveryImage> => {
      const key = keys.get(result.position);
      if (!key) return { url: result.url };
      const path = env.store.localFile(key);
      if (path) return { path, mimeType: result.mime_type };
      const data = await env.store.read(key);
      if (!data) {
        throw new DeliveryError(`stored image ${result.position + 1} is missing`, {
          retryable: false,
        });
      }
      return { data, mimeType: result.mime_type };
    }),
  );
}

function refundOf(generation: GenerationView): { credits: number } | { trial: true } | null {
  if (!generation.payment.refunded) return null;
  return generation.payment.method === 'trial'
    ? { trial: true }
    : { credits: generation.payment.credits };
}

function webhookEvent(generation: GenerationView): DeliveryWebhookEvent {
  const base = {
    generation_id: generation.id,
    telegram_id: generation.telegram_id,
    model: generation.model,
    occurred_at: generation.completed_at ?? new Date().toISOString(),
    results: generation.results.map((result) => ({
      url: result.url,
      mime_type: result.mime_type,
      width: result.width,
      height: result.height,
    })),
  };
  return generation.status === 'succeeded'
    ? { ...base, type: 'generation.succeeded', status: 'succeeded', error: null, refunded: null }
    : {
        ...base,
        type: 'generation.failed',
        status: 'failed',
        error: generation.error?.code ?? 'failed',
        refunded: refundOf(generation),
      };
}
