import { createHash, randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
import type { Queryable } from '../db/client.ts';
import { wakeWorkers } from '../db/job-queue.ts';
import { isoTimeText, queryText, selectRows } from '../db/rows.ts';
import type { ProviderRegistry } from '../providers/registry.ts';
import type { ResultStore } from '../storage/results.ts';
import { type CatalogModel, findActiveModel, resolvePrice } from './catalog.ts';
import type { ServiceContext } from './context.ts';
import { generationCursor } from './cursor.ts';
import {
  checkAgainstModel,
  checkReferences,
  type FieldProblem,
  type GenerationInput,
  invalidGeneration,
  type Reference,
} from './generation-input.ts';
import { InsufficientCreditsError } from './ledger.ts';
import { type TrialSummary, trialSummary, userNotFound } from './users.ts';

/** What the generation verbs need beyond the database and settings: who can make images. */
export interface PipelineContext extends ServiceContext {
  readonly providers: ProviderRegistry;
}

export type PaymentMethod = 'credits' | 'trial';

export interface GenerationView {
  id: string;
  telegram_id: number;
  model: string;
  prompt: string;
  parameters: Record<string, string>;
  references: Reference[];
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  payment: { method: PaymentMethod; credits: number; refunded: boolean };
  error: { code: string; message: string | null } | null;
  results: GenerationResultView[];
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  deadline_at: string | null;
}

export interface GenerationResultView {
  position: number;
  url: string;
  mime_type: string;
  width: number | null;
  height: number | null;
  seed: number | null;
}

export interface AcceptedGeneration extends GenerationView {
  /** 1 = next to be taken by a worker. */
  queue_position: number;
  balance: number;
  trial: TrialSummary;
}

export interface Quote {
  model: string;
  parameters: Record<string, string>;
  price_credits: number;
  balance: number;
  trial: TrialSummary;
  /** How the generation would be paid now; null when neither a free generation nor the balance covers it. */
  payment_method: PaymentMethod | null;
}

/** What a quote needs of the user: free generations used and the balance. */
async function userFacts(
  db: Queryable,
  telegramId: number,
): Promise<{ trials_used: number; balance: string | number }> {
  const [row] = await selectRows<{ trials_used: number; balance: string | number }>(
    db,
    sql`SELECT (SELECT count(*)::int FROM trial_uses t
                WHERE t.user_id = u.id AND t.returned_at IS NULL) AS trials_used,
               COALESCE((SELECT balance_after FROM ledger_entries l WHERE l.user_id = u.id
                         ORDER BY l.user_entry_no DESC LIMIT 1), 0) AS balance
        FROM users u WHERE u.telegram_id = ${telegramId}`,
  );
  if (!row) throw userNotFound(telegramId);
  return row;
}

async function userIdOf(db: Queryable, telegramId: number): Promise<number> {
  const [row] = await selectRows<{ id: string | number }>(
    db,
    sql`SELECT id FROM users WHERE telegram_id = ${telegramId}`,
  );
  if (!row) throw userNotFound(telegramId);
  return Number(row.id);
}

const unknownModel = (key: string): FieldProblem => ({
  field: 'model',
  message: `"${key}" is not an active model (GET /api/v1/models lists them)`,
});

/** The price for these parameters, with what is wrong with the request for this model. */
function priceFor(
  model: CatalogModel,
  input: Pick<GenerationInput, 'prompt' | 'parameters' | 'references'>,
): {
  parameters: Record<string, string>;
  price: { id: number; credits: number } | null;
  problems: FieldProblem[];
} {
  const { parameters, problems } = checkAgainstModel(model, input);
  const price = resolvePrice(model.prices, parameters);
  if (!price && problems.length === 0) {
    problems.push({
      field: 'parameters',
      message: `${model.key} has no price for these parameters`,
    });
  }
  return { parameters, price, problems };
}

export async function quoteGeneration(
  ctx: ServiceContext,
  input: Pick<GenerationInput, 'telegramId' | 'model' | 'parameters'>,
): Promise<Quote> {
  const facts = await userFacts(ctx.db, input.telegramId);
  const model = await findActiveModel(ctx, input.model);
  if (!model) throw invalidGeneration([unknownModel(input.model)]);
  const { parameters, price, problems } = priceFor(model, {
    prompt: 'quote',
    parameters: input.parameters,
    references: [],
  });
  if (problems.length > 0 || !price) throw invalidGeneration(problems);
  const limit = ctx.config.trialGenerations;
  const balance = Number(facts.balance);
  const trialsLeft = facts.trials_used < limit;
  return {
    model: model.key,
    parameters,
    price_credits: price.credits,
    balance,
    trial: trialSummary(facts.trials_used, limit),
    payment_method: trialsLeft ? 'trial' : balance >= price.credits ? 'credits' : null,
  };
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
FROM accept_generation($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10, $11::timestamptz, $12, $13)`;

/**
 * Accepts a generation: the prompt, parameters and references are checked here (reference URLs
 * resolved before anything is written), then one statement (accept_generation(), migration 0005)
 * does all that depends on the user under the user's row lock, in one transaction: the cap, the
 * free generation or the charge, the request, its references and its job. Nothing here waits on
 * the outside world while holding a lock, and a refusal writes nothing.
 */
export async function acceptGeneration(
  ctx: PipelineContext,
  input: GenerationInput,
  actor: string,
  /** Names the request across retries (an Idempotency-Key's effect id): the same one is accepted once. */
  effectId?: string,
): Promise<AcceptedGeneration> {
  const { references, problems: referenceProblems } = await checkReferences(input.references);
  const id = effectId === undefined ? randomUUID() : uuidFrom(`generation:${effectId}`);
  for (let attempt = 0; ; attempt++) {
    // The cached catalog may hold a price closed since: accept_generation() checks it under the
    // lock, and a changed price is answered once more with the catalog read again.
    const model = await findActiveModel(ctx, input.model, { fresh: attempt > 0 });
    if (!model) throw invalidGeneration([unknownModel(input.model), ...referenceProblems]);
    const { parameters, price, problems } = priceFor(model, input);
    problems.push(...referenceProblems);
    if (problems.length > 0 || !price) throw invalidGeneration(problems);
    const providerName = ctx.providers.nameFor(model.provider);
    if (!ctx.providers.get(providerName)) {
      throw new AppError(
        'provider_unavailable',
        `${model.key} is served by ${providerName}, which this deployment has no account for.`,
      );
    }
    const prompt = input.prompt.trim();
    const deadlineAt = new Date(Date.now() + ctx.config.generations.timeoutSeconds * 1000);
    const [result] = await queryText<AcceptOutcome>(ctx.db, ACCEPT_SQL, [
      id,
      input.telegramId,
      model.id,
      price.id,
      prompt,
      JSON.stringify(parameters),
      JSON.stringify(references),
      input.payment ?? 'auto',
      ctx.config.trialGenerations,
      ctx.config.generations.maxParallelPerUser,
      deadlineAt.toISOString(),
      providerName,
      actor,
    ]);
    if (result?.outcome === 'price_changed' && attempt === 0) continue;
    if (result?.outcome === 'already_accepted') {
      return {
        ...(await getGenerationById(ctx, id)),
        queue_position: Math.max(1, result.queue_position ?? 1),
        balance: Number(result.balance ?? 0),
        trial: trialSummary(result.trials_used ?? 0, ctx.config.trialGenerations),
      };
    }
    if (result?.outcome !== 'accepted') throw refusal(ctx, input, result, price.credits);
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
      trial: trialSummary(result.trials_used ?? 0, ctx.config.trialGenerations),
    };
  }
}

/** A UUID (version 8, RFC 9562's custom layout) made of the SHA-256 of `name`. */
function uuidFrom(name: string): string {
  const hex = createHash('sha256').update(name).digest('hex');
  const variant = ((Number.parseInt(hex[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

function refusal(
  ctx: ServiceContext,
  input: GenerationInput,
  result: AcceptOutcome | undefined,
  price: number,
): Error {
  const limit = ctx.config.trialGenerations;
  switch (result?.outcome) {
    case 'no_user':
      return userNotFound(input.telegramId);
    case 'too_many_active': {
      const cap = ctx.config.generations.maxParallelPerUser;
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

interface GenerationRow {
  id: string;
  telegram_id: string | number;
  model: string;
  prompt: string;
  parameters: Record<string, string>;
  references: Reference[] | null;
  status: GenerationView['status'];
  payment_method: PaymentMethod;
  price_credits: number;
  refunded: boolean;
  error_code: string | null;
  error_message: string | null;
  results: (Omit<GenerationResultView, 'url'> & { url: string | null; stored: boolean })[] | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  deadline_at: string | null;
  /** created_at to the microsecond, for the keyset cursor. */
  cursor_at: string;
}

const generationColumns = sql.raw(`g.id, u.telegram_id, m.key AS model, g.prompt, g.parameters,
  (SELECT json_agg(json_build_object('kind', r.kind, 'value', r.value) ORDER BY r.position)
   FROM generation_references r WHERE r.request_id = g.id) AS "references",
  g.status, g.payment_method, g.price_credits,
  (g.refund_entry_id IS NOT NULL OR EXISTS (
     SELECT 1 FROM trial_uses t WHERE t.generation_request_id = g.id AND t.returned_at IS NOT NULL)
  ) AS refunded,
  g.error_code, g.error_message,
  (SELECT json_agg(json_build_object('position', s.position, 'url', s.url,
                                     'stored', s.storage_path IS NOT NULL, 'mime_type', s.mime_type,
                                     'width', s.width, 'height', s.height, 'seed', s.seed)
                   ORDER BY s.position)
   FROM generation_results s WHERE s.request_id = g.id) AS results,
  ${isoTimeText('g.created_at')} AS created_at, ${isoTimeText('g.started_at')} AS started_at,
  ${isoTimeText('g.completed_at')} AS completed_at, ${isoTimeText('g.deadline_at')} AS deadline_at,
  to_char(g.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_at`);

const generationSource = sql.raw(`generation_requests g
  JOIN users u ON u.id = g.user_id
  JOIN model_catalog m ON m.id = g.model_id`);

/** Where a stored image is served: by this API, under the generation's unguessable id. */
function storedImagePath(generationId: string, position: number): string {
  return `/api/v1/generations/${generationId}/images/${position}`;
}

function toView(row: GenerationRow, publicBaseUrl: string | null): GenerationView {
  return {
    id: row.id,
    telegram_id: Number(row.telegram_id),
    model: row.model,
    prompt: row.prompt,
    parameters: row.parameters,
    references: row.references ?? [],
    status: row.status,
    payment: { method: row.payment_method, credits: row.price_credits, refunded: row.refunded },
    error: row.error_code ? { code: row.error_code, message: row.error_message } : null,
    results: (row.results ?? []).map((result) => ({
      position: result.position,
      url: result.stored
        ? `${publicBaseUrl ?? ''}${storedImagePath(row.id, result.position)}`
        : (result.url ?? ''),
      mime_type: result.mime_type,
      width: result.width,
      height: result.height,
      seed: result.seed === null ? null : Number(result.seed),
    })),
    created_at: row.created_at,
    started_at: row.started_at,
    completed_at: row.completed_at,
    deadline_at: row.deadline_at,
  };
}

export async function getGenerationById(ctx: ServiceContext, id: string): Promise<GenerationView> {
  const [row] = await selectRows<GenerationRow>(
    ctx.db,
    sql`SELECT ${generationColumns} FROM ${generationSource} WHERE g.id = ${id}`,
  );
  if (!row) {
    throw new AppError('generation_not_found', `No generation ${id}.`);
  }
  return toView(row, ctx.config.publicBaseUrl);
}

export interface GenerationPage {
  generations: GenerationView[];
  next_cursor: string | null;
}

/** The user's generations, newest first, by keyset on (created_at, id). */
export async function listGenerations(
  ctx: ServiceContext,
  telegramId: number,
  options: { limit: number; cursor?: string },
): Promise<GenerationPage> {
  const userId = await userIdOf(ctx.db, telegramId);
  const after = options.cursor === undefined ? null : generationCursor.decode(options.cursor);
  const rows = await selectRows<GenerationRow>(
    ctx.db,
    sql`SELECT ${generationColumns} FROM ${generationSource}
        WHERE g.user_id = ${userId}
          ${after ? sql`AND (g.created_at, g.id) < (${after.createdAt}::timestamptz, ${after.id}::uuid)` : sql``}
        ORDER BY g.created_at DESC, g.id DESC
        LIMIT ${options.limit + 1}`,
  );
  const page = rows.slice(0, options.limit);
  const last = page.at(-1);
  return {
    generations: page.map((row) => toView(row, ctx.config.publicBaseUrl)),
    next_cursor:
      rows.length > options.limit && last
        ? generationCursor.encode({ createdAt: last.cursor_at, id: last.id })
        : null,
  };
}

/** The user's queued and running generations, oldest first. */
export async function listActiveGenerations(
  ctx: ServiceContext,
  telegramId: number,
): Promise<GenerationView[]> {
  const userId = await userIdOf(ctx.db, telegramId);
  const rows = await selectRows<GenerationRow>(
    ctx.db,
    sql`SELECT ${generationColumns} FROM ${generationSource}
        WHERE g.user_id = ${userId} AND g.status IN ('queued', 'running')
        ORDER BY g.created_at, g.id`,
  );
  return rows.map((row) => toView(row, ctx.config.publicBaseUrl));
}

export const imageNotFound = () => new AppError('image_not_found', 'No such stored image.');

/** A stored image of a generation: its file and type, or 404 when there is none. */
export async function storedImage(
  ctx: ServiceContext,
  store: ResultStore,
  generationId: string,
  position: number,
): Promise<{ path: string; mimeType: string }> {
  const [row] = await selectRows<{ storage_path: string | null; mime_type: string }>(
    ctx.db,
    sql`SELECT storage_path, mime_type FROM generation_results
        WHERE request_id = ${generationId} AND position = ${position}`,
  );
  if (!row?.storage_path) throw imageNotFound();
  return { path: store.absolute(row.storage_path), mimeType: row.mime_type };
}
