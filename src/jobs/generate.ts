import { sql } from 'drizzle-orm';
import type { Queryable } from '../db/client.ts';
import { backoffSeconds, complete, type Job, moveToProvider, runLater } from '../db/job-queue.ts';
import { selectRows } from '../db/rows.ts';
import type { ModelKind } from '../db/schema/index.ts';
import { LocalProvider } from '../providers/local.ts';
import {
  type ImageProvider,
  ProviderError,
  type ProviderImage,
  type ProviderStatus,
} from '../providers/types.ts';
import { MODEL_ROUTES_JSON, type ModelRoute } from '../services/catalog.ts';
import type { Reference } from '../services/generation-input.ts';
import {
  type GenerationFailure,
  recordGenerationFailure,
  storeImages,
} from '../services/generation-outcomes.ts';
import { chooseRoute, routeRequest, routeServedBy } from '../services/model-routes.ts';
import { referenceUrlFor } from '../services/provider-references.ts';
import { readUpload } from '../services/uploads.ts';
import { sniffImageType } from '../storage/image-type.ts';
import { chatTarget, TELEGRAM_DESTINATION_SQL, type TelegramDestination } from './destination.ts';
import type { JobEnvironment } from './types.ts';

/**
 * One run of a generation's job. The provider is only ever called outside a transaction, and its
 * job id is recorded before anything else happens, so whoever runs the job next (a retry, a
 * takeover after a crash) polls that id instead of submitting (and paying the provider) again.
 */

export interface GenerationWork {
  status: string;
  kind: ModelKind;
  prompt: string;
  parameters: Record<string, string>;
  /** The model's routes, best first: the job's provider's route shapes the request. */
  routes: ModelRoute[];
  references: Reference[] | null;
  /** The user's: uploaded references live in their folder. */
  telegram_id: string | number;
  /** Where the news goes (destination.ts): the bot's chat, else the user's own, and its language. */
  telegram: TelegramDestination;
  /** The HTTP request that accepted it, named in the log lines of its work. */
  http_request_id: string | null;
}

/** What every log line of a generation's story names: the generation and the request that asked. */
interface StoryFields {
  generationId: string;
  requestId: string | null;
}

/**
 * Marks the claimed generations running and reads what their jobs need, for a whole claimed batch
 * in one statement. Generations already running (a takeover) or finished are returned unchanged.
 */
export async function startGenerations(
  db: Queryable,
  requestIds: readonly string[],
): Promise<Map<string, GenerationWork>> {
  if (requestIds.length === 0) return new Map();
  const rows = await selectRows<GenerationWork & { id: string }>(
    db,
    sql`UPDATE generation_requests g
        SET status = CASE WHEN g.status = 'queued' THEN 'running' ELSE g.status END,
            started_at = COALESCE(g.started_at, now())
        FROM model_catalog m
        WHERE m.id = g.model_id AND g.id IN (${sql.join(
          requestIds.map((id) => sql`${id}::uuid`),
          sql`, `,
        )})
        RETURNING g.id, g.status, m.kind, g.prompt, g.parameters,
          ${sql.raw(MODEL_ROUTES_JSON)} AS routes,
          (SELECT json_agg(json_build_object('kind', r.kind, 'value', r.value) ORDER BY r.position)
           FROM generation_references r WHERE r.request_id = g.id) AS "references",
          (SELECT u.telegram_id FROM users u WHERE u.id = g.user_id) AS telegram_id,
          ${TELEGRAM_DESTINATION_SQL} AS telegram, g.http_request_id`,
  );
  return new Map(rows.map(({ id, ...work }) => [id, work]));
}

class JobAbandoned extends Error {}

export async function runGenerateJob(
  env: JobEnvironment,
  job: Job,
  work: GenerationWork | null,
  signal: AbortSignal,
): Promise<void> {
  const { ctx } = env;
  const requestId = job.requestId;
  if (!requestId || !work || (work.status !== 'queued' && work.status !== 'running')) {
    await complete(ctx.db, job);
    return;
  }
  const story: StoryFields = { generationId: requestId, requestId: work.http_request_id };
  const provider = job.provider ? ctx.providers.get(job.provider) : undefined;
  if (!provider) {
    await settleFailure(env, story, {
      code: 'provider_unavailable',
      message: `provider ${job.provider ?? '(none)'} is not configured`,
    });
    return;
  }
  const deadline = job.deadlineAt ? Date.parse(job.deadlineAt) : Number.POSITIVE_INFINITY;
  // The status message's "running" edit, sent once the provider has the job; awaited (it is
  // bounded and never throws) before the generation is settled, so it cannot land after "done".
  let announced: Promise<void> = Promise.resolve();
  try {
    if (Date.now() >= deadline) {
      await finalCheck(env, job, provider, story, deadline);
      return;
    }
    let providerJobId = job.providerJobId;
    if (providerJobId === null) {
      const references = work.references ?? [];
      // Nothing was sent yet: a provider whose breaker is open hands the job to the next route.
      if (
        job.step === 'submit' &&
        !ctx.providers.breaker(provider.name).allowsNewWork() &&
        (await moveToNextRoute(env, job, work, provider.name))
      ) {
        return;
      }
      const route = routeServedBy(ctx, work.routes, provider.name);
      if (!route) {
        await settleFailure(env, story, {
          code: 'provider_unavailable',
          message: `the catalog no longer routes this model to ${provider.name}`,
        });
        return;
      }
      const { model, shape } = routeRequest(route, references.length > 0);
      const submitted = await observed(
        env,
        provider,
        provider.submit(
          {
            generationId: requestId,
            model,
            kind: work.kind,
            prompt: work.prompt,
            parameters: work.parameters,
            referenceUrls: await referenceUrls(env, provider, work, references, signal),
            shape,
            ...webhookFor(env, provider),
          },
          signal,
        ),
      );
      providerJobId = submitted.providerJobId;
      const recorded = await recordSubmission(env, job, provider.name, providerJobId);
      if (!recorded) throw new JobAbandoned();
      env.logger.info(
        { ...story, provider: provider.name, model, providerJobId },
        'generation submitted to its provider',
      );
      announced = announceRunning(env, requestId, work.telegram);
    }
    const status = await observed(env, provider, provider.status(providerJobId, signal));
    await announced;
    await act(env, job, story, status, deadline);
  } catch (error) {
    if (error instanceof JobAbandoned || signal.aborted) return;
    await announced;
    if (job.providerJobId === null && (await afterFailedSubmit(env, job, work, provider, error))) {
      return;
    }
    await retryOrFail(env, job, story, error, deadline);
  }
}

/**
 * Feeds the provider's circuit breaker with a call's outcome: an answer is health; a failure
 * worth retrying (5xx, 429, timeouts, unreachable) counts against it; a refusal of our request
 * (4xx) says nothing about the provider.
 */
async function observed<T>(
  env: JobEnvironment,
  provider: ImageProvider,
  call: Promise<T>,
): Promise<T> {
  const breaker = env.ctx.providers.breaker(provider.name);
  try {
    const result = await call;
    breaker.recordSuccess();
    return result;
  } catch (error) {
    if (error instanceof ProviderError && error.retryable) breaker.recordFailure();
    throw error;
  }
}

/**
 * A submit failed. If it may have reached the provider (its answer was lost), the job stays
 * there for good: its step says so, and a retry goes to the same provider only. If it surely did
 * not and the provider's breaker is now open, the job goes to the next route at once. Answers
 * whether the job was handed on (nothing more to do here).
 */
async function afterFailedSubmit(
  env: JobEnvironment,
  job: Job,
  work: GenerationWork,
  provider: ImageProvider,
  error: unknown,
): Promise<boolean> {
  if (!(error instanceof ProviderError) || !error.retryable) return false;
  if (error.unconfirmed) {
    await env.steps.add({ job, step: 'submit_unconfirmed', provider: provider.name });
    return false;
  }
  if (job.step !== 'submit' || !env.ctx.providers.breaker(provider.name).isOpen()) {
    return false;
  }
  return moveToNextRoute(env, job, work, provider.name);
}

/**
 * Hands the job to the model's next usable route. False when there is none: the job stays and
 * goes on with its provider. True when it was handed on, or was no longer this worker's to hand.
 */
async function moveToNextRoute(
  env: JobEnvironment,
  job: Job,
  work: GenerationWork,
  from: string,
): Promise<boolean> {
  const choice = await chooseRoute(env.ctx, work.routes, work.references?.length ?? 0, {
    takeTrial: true,
    excluding: from,
  });
  if ('unavailable' in choice) return false;
  const moved = await moveToProvider(
    env.ctx.db,
    job,
    choice.providerName,
    `${from} is failing: handed to ${choice.providerName}`,
  );
  if (moved) {
    env.logger.warn(
      { jobId: job.id, generationId: job.requestId, from, to: choice.providerName },
      'provider failing: generation handed to the next route',
    );
  }
  return true;
}

/** How long the "running" edit may hold up settling a generation the provider finished at once. */
const ANNOUNCE_TIMEOUT_MS = 5_000;

/**
 * Edits the bot's status message to "running", best effort: any failure (Telegram down, the
 * message deleted, 429) is logged and forgotten, and it gives up waiting after
 * ANNOUNCE_TIMEOUT_MS. Never inside a transaction; never fails or delays the provider's work.
 */
async function announceRunning(
  env: JobEnvironment,
  requestId: string,
  destination: TelegramDestination,
): Promise<void> {
  const telegram = env.delivery.telegram;
  if (!telegram || destination.status_message_id === null) return;
  const target = chatTarget(destination, env.ctx.config.defaultLanguage);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ANNOUNCE_TIMEOUT_MS);
  });
  const edit = telegram.showRunning(target).catch((error: unknown) => {
    env.logger.info(
      { generationId: requestId, err: error },
      'the status message could not be set to running',
    );
  });
  await Promise.race([edit, timeout]);
  clearTimeout(timer);
}

async function act(
  env: JobEnvironment,
  job: Job,
  story: StoryFields,
  status: ProviderStatus,
  deadline: number,
): Promise<void> {
  switch (status.state) {
    case 'pending': {
      const untilDeadline = (deadline - Date.now()) / 1000;
      await runLater(env.ctx.db, job, {
        delaySeconds: Math.max(0, Math.min(env.ctx.config.providers.pollSeconds, untilDeadline)),
        countsAsAttempt: false,
      });
      return;
    }
    case 'succeeded':
      await settleSuccess(env, story, status);
      return;
    case 'failed':
      await settleFailure(env, story, { code: 'provider_failed', message: status.error });
      return;
  }
}

async function retryOrFail(
  env: JobEnvironment,
  job: Job,
  story: StoryFields,
  error: unknown,
  deadline: number,
): Promise<void> {
  const providerError = error instanceof ProviderError ? error : null;
  const message = error instanceof Error ? error.message : String(error);
  if (providerError && !providerError.retryable) {
    await settleFailure(env, story, {
      code: providerError.failureCode ?? 'provider_rejected',
      message,
    });
    return;
  }
  if (!providerError) env.logger.error({ err: error, jobId: job.id }, 'generation job error');
  if (job.attempts >= job.maxAttempts) {
    await settleFailure(env, story, {
      code: providerError ? 'provider_unavailable' : 'internal_error',
      message: `gave up after ${job.attempts} attempts: ${message}`,
    });
    return;
  }
  const wait = Math.max(backoffSeconds(job.attempts), providerError?.retryAfterSeconds ?? 0);
  // Before the deadline a retry never sleeps past it; after it (the final check), it backs off.
  const untilDeadline = (deadline - Date.now()) / 1000;
  await runLater(env.ctx.db, job, {
    delaySeconds: untilDeadline > 0 ? Math.min(wait, untilDeadline) : wait,
    error: message.slice(0, 500),
  });
}

const RECORD_RETRIES_MS = [200, 1_000, 3_000];

/**
 * Records the provider's job id, trying again if the database does not take it at once: the id
 * exists only in this process until it is stored, and a retry of the job without it would submit
 * (and pay the provider) a second time. Answers false if the job is no longer ours.
 */
async function recordSubmission(
  env: JobEnvironment,
  job: Job,
  provider: string,
  providerJobId: string,
): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await env.steps.add({ job, step: 'poll', provider, providerJobId });
    } catch (error) {
      const pause = RECORD_RETRIES_MS[attempt];
      if (pause === undefined) throw error;
      env.logger.warn(
        { err: error, jobId: job.id },
        'recording the provider job id failed; retrying',
      );
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}

/** How long after the deadline a provider that cannot answer the final query is asked again. */
const FINAL_CHECK_GRACE_MS = 120_000;

/**
 * The deadline has passed: ask the provider one last time (the image may have been made while we
 * were not looking), and only if it has nothing, fail the generation and give back what it cost.
 * A provider that cannot answer that query is asked again (with backoff) for a short grace; an
 * error in storing a found image goes to the job's retry, never to a refund.
 */
async function finalCheck(
  env: JobEnvironment,
  job: Job,
  provider: ImageProvider,
  story: StoryFields,
  deadline: number,
): Promise<void> {
  if (job.providerJobId !== null) {
    let status: ProviderStatus;
    try {
      status = await provider.status(job.providerJobId, AbortSignal.timeout(30_000));
    } catch (error) {
      const retryable = !(error instanceof ProviderError) || error.retryable;
      if (retryable && Date.now() < deadline + FINAL_CHECK_GRACE_MS) {
        await runLater(env.ctx.db, job, {
          delaySeconds: backoffSeconds(job.attempts, 30),
          error: `final query failed: ${error instanceof Error ? error.message : String(error)}`,
          countsAsAttempt: false,
        });
        return;
      }
      env.logger.warn({ err: error, jobId: job.id }, 'final query of the provider failed');
      status = { state: 'pending' };
    }
    if (status.state === 'succeeded') {
      await settleSuccess(env, story, status);
      return;
    }
    if (status.state === 'failed') {
      await settleFailure(env, story, { code: 'provider_failed', message: status.error });
      return;
    }
  }
  await settleFailure(env, story, {
    code: 'deadline_exceeded',
    // The deadline the generation was accepted with (GENERATION_TIMEOUT_SECONDS may have changed since).
    message: `no image by its deadline, ${new Date(deadline).toISOString()}`,
  });
}

async function settleSuccess(
  env: JobEnvironment,
  story: StoryFields,
  outcome: { images: ProviderImage[]; metadata?: Record<string, unknown> },
): Promise<void> {
  const results = await storeImages(
    env.store,
    story.generationId,
    outcome.images,
    env.ctx.config.storage.resultMaxBytes,
  );
  const settled = await env.successes.add({
    requestId: story.generationId,
    results,
    ...(outcome.metadata ? { metadata: outcome.metadata } : {}),
  });
  if (settled) env.logger.info({ ...story, images: results.length }, 'generation succeeded');
}

async function settleFailure(
  env: JobEnvironment,
  story: StoryFields,
  failure: GenerationFailure,
): Promise<void> {
  const settled = await recordGenerationFailure(env.ctx, story.generationId, failure);
  if (settled) env.logger.info({ ...story, ...failure }, 'generation failed');
}

/** Where the provider should post the result: only when it signs webhooks and we are reachable. */
function webhookFor(env: JobEnvironment, provider: ImageProvider): { webhookUrl?: string } {
  const base = env.ctx.config.publicBaseUrl;
  if (!base || !provider.acceptsWebhooks) return {};
  return { webhookUrl: `${base}/api/v1/providers/${provider.name}/webhook` };
}

/**
 * URLs go to the provider as they are. An uploaded image is read from the store and, like a
 * Telegram file, handed over as services/provider-references.ts decides. A Telegram file is downloaded (its download link embeds
 * the bot token, which must never leave this process) and handed over as
 * services/provider-references.ts decides: our own short-lived URL, the provider's upload, or a
 * small data URI. The offline provider draws without its references, but a tool works on its
 * image: it gets it as a data URI when the bot token is set (else the file_id, which it refuses
 * as bad input).
 */
async function referenceUrls(
  env: JobEnvironment,
  provider: ImageProvider,
  work: Pick<GenerationWork, 'kind' | 'telegram_id'>,
  references: readonly Reference[],
  signal: AbortSignal,
): Promise<string[]> {
  const { kind } = work;
  const files = env.delivery.telegramFiles;
  const offline = provider instanceof LocalProvider;
  return Promise.all(
    references.map(async (reference) => {
      if (reference.kind === 'url') return reference.value;
      if (reference.kind === 'upload') {
        const data = await readUpload(env.store, Number(work.telegram_id), reference.value);
        // Checked to be an image when it was uploaded.
        const mimeType = sniffImageType(data) ?? 'application/octet-stream';
        if (offline) return `data:${mimeType};base64,${data.toString('base64')}`;
        return referenceUrlFor(env.ctx.config, env.store, provider, { data, mimeType }, signal);
      }
      if (offline && (kind !== 'tool' || !files)) return reference.value;
      if (!files) {
        throw new ProviderError(
          'a Telegram file reference needs TELEGRAM_BOT_TOKEN to be downloaded',
          false,
        );
      }
      if (offline) return files.dataUri(reference.value, signal);
      const image = await files.download(reference.value, signal);
      return referenceUrlFor(env.ctx.config, env.store, provider, image, signal);
    }),
  );
}
