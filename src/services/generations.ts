import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
import type { Queryable, Transaction } from '../db/client.ts';
import { isoTimeText, selectRows } from '../db/rows.ts';
import type { ModelParameter } from '../db/schema/index.ts';
import { enqueue } from '../jobs/queue.ts';
import type { ProviderRegistry } from '../providers/registry.ts';
import { resolvePrice } from './catalog.ts';
import { type ServiceContext, withTransaction } from './context.ts';
import {
  checkAgainstModel,
  checkReferences,
  type FieldProblem,
  type GenerationInput,
  invalidGeneration,
  type Reference,
} from './generation-input.ts';
import { charge, lockUser } from './ledger.ts';
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

/** The model, its open prices and the user's counts, read in one statement. */
interface Facts {
  model_id: string | number;
  key: string;
  provider: string;
  parameters: ModelParameter[];
  max_prompt_length: number;
  max_references: number;
  prices: { id: number; conditions: Record<string, string>; credits: number }[] | null;
  active: number;
  trials_used: number;
  balance: string | number;
}

async function readFacts(db: Queryable, userId: number, modelKey: string): Promise<Facts | null> {
  const [row] = await selectRows<Facts>(
    db,
    sql`SELECT m.id AS model_id, m.key, m.provider, m.parameters, m.max_prompt_length,
               m.max_references,
               (SELECT json_agg(json_build_object('id', p.id, 'conditions', p.conditions,
                                                  'credits', p.credits) ORDER BY p.id)
                FROM model_prices p WHERE p.model_id = m.id AND p.valid_to IS NULL) AS prices,
               (SELECT count(*)::int FROM generation_requests g
                WHERE g.user_id = ${userId} AND g.status IN ('queued', 'running')) AS active,
               (SELECT count(*)::int FROM trial_uses t
                WHERE t.user_id = ${userId} AND t.returned_at IS NULL) AS trials_used,
               COALESCE((SELECT balance_after FROM ledger_entries
                         WHERE user_id = ${userId} ORDER BY user_entry_no DESC LIMIT 1), 0) AS balance
        FROM model_catalog m WHERE m.key = ${modelKey} AND m.is_active`,
  );
  return row ?? null;
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
  facts: Facts,
  input: Pick<GenerationInput, 'prompt' | 'parameters' | 'references'>,
): {
  parameters: Record<string, string>;
  price: { id: number; credits: number } | null;
  problems: FieldProblem[];
} {
  const { parameters, problems } = checkAgainstModel(facts, input);
  const price = resolvePrice(facts.prices ?? [], parameters);
  if (!price && problems.length === 0) {
    problems.push({
      field: 'parameters',
      message: `${facts.key} has no price for these parameters`,
    });
  }
  return { parameters, price: price as { id: number; credits: number } | null, problems };
}

function choosePayment(preference: GenerationInput['payment'], trialsLeft: boolean): PaymentMethod {
  if (preference === 'credits') return 'credits';
  if (preference === 'trial' || trialsLeft) return 'trial';
  return 'credits';
}

export async function quoteGeneration(
  ctx: ServiceContext,
  input: Pick<GenerationInput, 'telegramId' | 'model' | 'parameters'>,
): Promise<Quote> {
  const userId = await userIdOf(ctx.db, input.telegramId);
  const facts = await readFacts(ctx.db, userId, input.model);
  if (!facts) throw invalidGeneration([unknownModel(input.model)]);
  const { parameters, price, problems } = priceFor(facts, {
    prompt: 'quote',
    parameters: input.parameters,
    references: [],
  });
  if (problems.length > 0 || !price) throw invalidGeneration(problems);
  const limit = ctx.config.trialGenerations;
  const balance = Number(facts.balance);
  const trialsLeft = facts.trials_used < limit;
  return {
    model: facts.key,
    parameters,
    price_credits: price.credits,
    balance,
    trial: trialSummary(facts.trials_used, limit),
    payment_method: trialsLeft ? 'trial' : balance >= price.credits ? 'credits' : null,
  };
}

/**
 * Accepts a generation in one transaction: the user's row is locked (the same lock the ledger and
 * trials take), the cap and the price are read under it, the credits are charged or a free
 * generation used, and the request, its references and its job are stored. Nothing here waits on
 * the outside world: reference URLs are checked before the transaction opens.
 */
export async function acceptGeneration(
  ctx: PipelineContext,
  input: GenerationInput,
  actor: string,
): Promise<AcceptedGeneration> {
  const { references, problems: referenceProblems } = await checkReferences(input.references);
  const id = randomUUID();
  const accepted = await withTransaction(ctx.db, async (tx) => {
    const userId = await lockUser(tx, { telegramId: input.telegramId });
    const facts = await readFacts(tx, userId, input.model);
    if (!facts) throw invalidGeneration([unknownModel(input.model), ...referenceProblems]);
    const { parameters, price, problems } = priceFor(facts, input);
    problems.push(...referenceProblems);
    if (problems.length > 0 || !price) throw invalidGeneration(problems);

    const providerName = ctx.providers.nameFor(facts.provider);
    if (!ctx.providers.get(providerName)) {
      throw new AppError(
        'provider_unavailable',
        503,
        'Model unavailable',
        `${facts.key} is served by ${providerName}, which this deployment has no account for.`,
      );
    }
    const cap = ctx.config.generations.maxParallelPerUser;
    if (facts.active >= cap) {
      throw new AppError(
        'too_many_active_generations',
        429,
        'Too many generations at once',
        `At most ${cap} generations can be in progress at once; wait for one to finish.`,
        { active: facts.active, limit: cap },
        { 'retry-after': '5' },
      );
    }
    const limit = ctx.config.trialGenerations;
    const method = choosePayment(input.payment, facts.trials_used < limit);
    if (method === 'trial' && facts.trials_used >= limit) {
      throw new AppError(
        'trial_unavailable',
        409,
        'No free generation left',
        `All ${limit} free generations are used.`,
        { trial: trialSummary(facts.trials_used, limit) },
      );
    }
    let balance = Number(facts.balance);
    let chargeEntryId: number | null = null;
    if (method === 'credits') {
      const { entry } = await charge(
        tx,
        { userId },
        {
          amount: price.credits,
          reference: { type: 'generation', id },
          idempotencyKey: `generation-charge:${id}`,
          reason: `generation ${facts.key}`,
          actor,
        },
      );
      chargeEntryId = entry.id;
      balance = entry.balance_after;
    }
    const deadlineAt = new Date(Date.now() + ctx.config.generations.timeoutSeconds * 1000);
    await insertRequest(tx, {
      id,
      userId,
      modelId: Number(facts.model_id),
      priceId: price.id,
      prompt: input.prompt.trim(),
      parameters,
      method,
      credits: method === 'credits' ? price.credits : 0,
      chargeEntryId,
      references,
      deadlineAt,
    });
    await enqueue(tx, { kind: 'generate', requestId: id, provider: providerName, deadlineAt });
    const [position] = await selectRows<{ ahead: number }>(
      tx,
      sql`SELECT count(*)::int AS ahead FROM generation_jobs
          WHERE status = 'pending' AND kind = 'generate' AND run_at <= now()`,
    );
    return {
      balance,
      trial: trialSummary(facts.trials_used + (method === 'trial' ? 1 : 0), limit),
      queuePosition: Math.max(1, position?.ahead ?? 1),
    };
  });
  const view = await getGenerationById(ctx, id);
  return {
    ...view,
    queue_position: accepted.queuePosition,
    balance: accepted.balance,
    trial: accepted.trial,
  };
}

async function insertRequest(
  tx: Transaction,
  request: {
    id: string;
    userId: number;
    modelId: number;
    priceId: number;
    prompt: string;
    parameters: Record<string, string>;
    method: PaymentMethod;
    credits: number;
    chargeEntryId: number | null;
    references: Reference[];
    deadlineAt: Date;
  },
): Promise<void> {
  await tx.execute(
    sql`WITH request AS (
          INSERT INTO generation_requests
            (id, user_id, model_id, price_id, prompt, parameters, payment_method, price_credits,
             charge_entry_id, deadline_at)
          VALUES (${request.id}, ${request.userId}, ${request.modelId}, ${request.priceId},
                  ${request.prompt}, ${JSON.stringify(request.parameters)}::jsonb, ${request.method},
                  ${request.credits}, ${request.chargeEntryId},
                  ${request.deadlineAt.toISOString()}::timestamptz)
          RETURNING id),
        refs AS (
          INSERT INTO generation_references (request_id, position, kind, value)
          SELECT request.id, (r.n - 1)::smallint, r.item->>'kind', r.item->>'value'
          FROM request, jsonb_array_elements(${JSON.stringify(request.references)}::jsonb)
               WITH ORDINALITY AS r(item, n))
        INSERT INTO trial_uses (user_id, generation_request_id)
        SELECT ${request.userId}, request.id FROM request WHERE ${request.method === 'trial'}`,
  );
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
export function storedImagePath(generationId: string, position: number): string {
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
    throw new AppError('generation_not_found', 404, 'Generation not found', `No generation ${id}.`);
  }
  return toView(row, ctx.config.publicBaseUrl);
}

export interface GenerationPage {
  generations: GenerationView[];
  next_cursor: string | null;
}

function encodeCursor(row: Pick<GenerationRow, 'cursor_at' | 'id'>): string {
  return Buffer.from(`${row.cursor_at}|${row.id}`).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: string; id: string } {
  const [createdAt, id] = Buffer.from(cursor, 'base64url').toString().split('|');
  if (!createdAt || !id || Number.isNaN(Date.parse(createdAt)) || !/^[0-9a-f-]{36}$/.test(id)) {
    throw new AppError(
      'validation_failed',
      422,
      'Validation failed',
      'cursor is not a next_cursor this API gave',
      { errors: [{ field: 'cursor', message: 'is not a next_cursor this API gave' }] },
    );
  }
  return { createdAt, id };
}

/** The user's generations, newest first, by keyset on (created_at, id). */
export async function listGenerations(
  ctx: ServiceContext,
  telegramId: number,
  options: { limit: number; cursor?: string },
): Promise<GenerationPage> {
  const userId = await userIdOf(ctx.db, telegramId);
  const after = options.cursor ? decodeCursor(options.cursor) : null;
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
    next_cursor: rows.length > options.limit && last ? encodeCursor(last) : null,
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
