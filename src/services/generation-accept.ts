import { createHash, randomUUID } from 'node:crypto';
import { AppError } from '../core/errors.ts';
import { wakeWorkers } from '../db/job-queue.ts';
import { isoTimeText, queryText } from '../db/rows.ts';
import type { ResultStore } from '../storage/results.ts';
import { bannedOr } from './bans.ts';
import { findActiveModel } from './catalog.ts';
import type { PipelineContext } from './context.ts';
import {
  checkReferences,
  checkTelegram,
  type GenerationInput,
  invalidGeneration,
  type TelegramContext,
} from './generation-input.ts';
import { priceFor, unknownModel } from './generation-quote.ts';
import { type GenerationView, getGenerationById, type PaymentMethod } from './generation-views.ts';
import { InsufficientCreditsError } from './ledger.ts';
import { chooseRoute, type NoRoute } from './model-routes.ts';
import { currentSettings, type RuntimeSettings } from './settings.ts';
import { missingUploads } from './uploads.ts';
import { type TrialSummary, trialSummary, userNotFound } from './users.ts';

export interface AcceptedGeneration extends GenerationView {
  /** 1 = next to be taken by a worker. */
  queue_position: number;
  balance: number;
  trial: TrialSummary;
}

interface AcceptOutcome {
  outcome:
    | 'accepted'
    | 'already_accepted'
    | 'no_user'
    | 'price_changed'
    | 'too_many_active'
    | 'trial_unavailable'
    | 'insufficient';
  payment_method: PaymentMethod | null;
  price_credits: number | null;
  balance: string | number | null;
  trials_used: number | null;
  active: number | null;
  job_id: string | number | null;
  created_at: string | null;
  queue_position: number | null;
}

const ACCEPT_SQL = `SELECT outcome, payment_method, price_credits, balance, trials_used, active,
  job_id, ${isoTimeText('created_at')} AS created_at, queue_position
FROM accept_generation($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10, $11::timestamptz, $12, $13, $14::jsonb, $15)`;

/**
 * Accepts a generation: the prompt, parameters and references are checked here (reference URLs
 * resolved before anything is written), then one statement (accept_generation(), migration 0010)
 * does all that depends on the user under the user's row lock, in one transaction: the cap, the
 * free generation or the charge, the request, its references, its Telegram context and its job.
 * Nothing here waits on the outside world while holding a lock, and a refusal writes nothing.
 */
export async function acceptGeneration(
  ctx: PipelineContext,
  input: GenerationInput,
  actor: string,
  origin: {
    /** Names the request across retries (an Idempotency-Key's effect id): the same one is accepted once. */
    effectId?: string | undefined;
    /** The HTTP request asking: stored with the generation, named in its jobs' log lines. */
    requestId?: string | undefined;
    /** Where uploaded references (`upload:<name>`) are looked up, in the user's own folder. */
    uploads?: ResultStore | undefined;
  } = {},
): Promise<AcceptedGeneration> {
  const { effectId } = origin;
  const { references, problems: inputProblems } = await checkReferences(input.references);
  inputProblems.push(...checkTelegram(input.telegram));
  inputProblems.push(...(await missingUploads(origin.uploads, input.telegramId, references)));
  const id = effectId === undefined ? randomUUID() : uuidFrom(`generation:${effectId}`);
  for (let attempt = 0; ; attempt++) {
    // The cached catalog may hold a price closed since: accept_generation() checks it under the
    // lock, and a changed price is answered once more with the catalog read again.
    const model = await findActiveModel(ctx, input.model, { fresh: attempt > 0 });
    if (!model) throw invalidGeneration([unknownModel(input.model), ...inputProblems]);
    const { parameters, price, problems } = priceFor(model, input);
    problems.push(...inputProblems);
    if (problems.length > 0 || !price) throw invalidGeneration(problems);
    const choice = await chooseRoute(ctx, model.routes, references.length);
    if ('unavailable' in choice) throw unavailable(model.key, choice);
    const providerName = choice.providerName;
    const prompt = input.prompt.trim();
    const settings = await currentSettings(ctx);
    const deadlineAt = new Date(Date.now() + settings.GENERATION_TIMEOUT_SECONDS * 1000);
    // A banned user's request is refused by the database (migration 0011), its charge undone.
    const [result] = await queryText<AcceptOutcome>(ctx.db, ACCEPT_SQL, [
      id,
      input.telegramId,
      model.id,
      price.id,
      prompt,
      JSON.stringify(parameters),
      JSON.stringify(references),
      input.payment ?? 'auto',
      settings.TRIAL_GENERATIONS,
      settings.MAX_PARALLEL_GENERATIONS_PER_USER,
      deadlineAt.toISOString(),
      providerName,
      actor,
      input.telegram ? JSON.stringify(telegramRow(input.telegram)) : null,
      origin.requestId ?? null,
    ]).catch((error: unknown) => {
      throw bannedOr(error, input.telegramId);
    });
    if (result?.outcome === 'price_changed' && attempt === 0) continue;
    if (result?.outcome === 'already_accepted') {
      return {
        ...(await getGenerationById(ctx, id)),
        queue_position: Math.max(1, result.queue_position ?? 1),
        balance: Number(result.balance ?? 0),
        trial: trialSummary(result.trials_used ?? 0, settings.TRIAL_GENERATIONS),
      };
    }
    if (result?.outcome !== 'accepted') throw refusal(settings, input, result, price.credits);
    wakeWorkers(ctx.db);
    const method = result.payment_method ?? 'credits';
    return {
      id,
      telegram_id: input.telegramId,
      model: model.key,
      prompt,
      parameters,
      references,
      status: 'queued',
      payment: { method, credits: result.price_credits ?? 0, refunded: false },
      error: null,
      results: [],
      created_at: result.created_at ?? new Date().toISOString(),
      started_at: null,
      completed_at: null,
      deadline_at: deadlineAt.toISOString(),
      queue_position: Math.max(1, result.queue_position ?? 1),
      balance: Number(result.balance ?? 0),
      trial: trialSummary(result.trials_used ?? 0, settings.TRIAL_GENERATIONS),
    };
  }
}

/** 503: no route of the model can take a generation now; nothing was charged. */
function unavailable(key: string, why: NoRoute): AppError {
  return new AppError('provider_unavailable', `${key} cannot be generated now: ${why.detail}.`, {
    provider: why.provider,
    reason: why.unavailable,
  });
}

/** The Telegram context as accept_generation() stores it (generation_telegram's columns). */
function telegramRow(telegram: TelegramContext): Record<string, number | string | null> {
  return {
    chat_id: telegram.chatId,
    reply_to_message_id: telegram.replyToMessageId ?? null,
    status_message_id: telegram.statusMessageId ?? null,
    language: telegram.language ?? null,
  };
}

/** A UUID (version 8, RFC 9562's custom layout) made of the SHA-256 of `name`. */
function uuidFrom(name: string): string {
  const hex = createHash('sha256').update(name).digest('hex');
  const variant = ((Number.parseInt(hex[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

function refusal(
  settings: RuntimeSettings,
  input: GenerationInput,
  result: AcceptOutcome | undefined,
  price: number,
): Error {
  const limit = settings.TRIAL_GENERATIONS;
  switch (result?.outcome) {
    case 'no_user':
      return userNotFound(input.telegramId);
    case 'too_many_active': {
      const cap = settings.MAX_PARALLEL_GENERATIONS_PER_USER;
      return new AppError(
        'too_many_active_generations',
        `At most ${cap} generations can be in progress at once; wait for one to finish.`,
        { active: result.active, limit: cap },
        { 'retry-after': '5' },
      );
    }
    case 'trial_unavailable':
      return new AppError('trial_unavailable', `All ${limit} free generations are used.`, {
        trial: trialSummary(result.trials_used ?? limit, limit),
      });
    case 'insufficient':
      return new InsufficientCreditsError(Number(result.balance ?? 0), price);
    default:
      return new AppError(
        'price_changed',
        "The model's price changed while the request was accepted; try again.",
      );
  }
}
