import { sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
import type { Queryable, Transaction } from '../db/client.ts';
import { isoTimeText, selectRows } from '../db/rows.ts';
import type { ModelKind, ModelParameter } from '../db/schema/index.ts';
import { withTransaction } from '../db/transaction.ts';
import { type Operator, recordAudit } from './audit.ts';
import {
  DEFAULT_MAX_PROMPT_LENGTH,
  defaultParameters,
  forgetCatalog,
  MODEL_ROUTES_JSON,
  type ModelRoute,
  resolvePrice,
} from './catalog.ts';
import type { PipelineContext, ServiceContext } from './context.ts';
import { availabilityOf, modelAvailability } from './model-routes.ts';
import type { UnavailableReason } from './provider-availability.ts';

/**
 * The catalog as operators change it: models (inactive ones too) and their prices. A price is
 * never edited: replacing a model's prices closes the open ones (valid_to = now) and opens the
 * new ones in one transaction, so a generation keeps the price row it was accepted at, and
 * accept_generation() refuses a price closed meanwhile (price_changed; the accept retries once
 * with the catalog read again). Every write is audited in its transaction. This process forgets
 * its copy of the catalog at once; the others read it again within CATALOG_CACHE_SECONDS.
 */

export interface PriceInput {
  conditions: Record<string, string>;
  credits: number;
}

export interface AdminPrice extends PriceInput {
  id: number;
  valid_from: string;
}

/** One of the providers that serve a model, best (lowest priority) first. */
export interface AdminRoute {
  priority: number;
  provider: string;
  provider_model: string;
  provider_edit_model: string | null;
}

export interface AdminModel {
  key: string;
  name: string;
  description: string;
  kind: ModelKind;
  provider: string;
  provider_model: string;
  provider_edit_model: string | null;
  parameters: ModelParameter[];
  max_prompt_length: number;
  max_references: number;
  typical_seconds: number | null;
  sort_order: number;
  active: boolean;
  /** The open prices. */
  prices: AdminPrice[];
  /** Every price the model ever had, the open ones included. */
  price_history: number;
  /** Every route; `provider`, `provider_model` and `provider_edit_model` are the first one's. */
  routes: AdminRoute[];
  created_at: string;
  updated_at: string;
}

/** A model as the operators' list shows it: whether a generation could start on it now. */
export interface ListedAdminModel extends AdminModel {
  available: boolean;
  unavailable_reason: UnavailableReason | null;
}

/** A price the model had or has: open while valid_to is null. */
export interface PriceHistoryEntry extends AdminPrice {
  valid_to: string | null;
}

export interface ModelFields {
  name: string;
  description: string;
  provider: string;
  provider_model: string;
  provider_edit_model: string | null;
  parameters: ModelParameter[];
  max_prompt_length: number;
  max_references: number;
  typical_seconds: number | null;
  sort_order: number;
  active: boolean;
}

export interface NewModel extends Partial<ModelFields> {
  key: string;
  name: string;
  kind: ModelKind;
  provider: string;
  provider_model: string;
  prices: PriceInput[];
}

const MODEL_COLUMNS =
  sql.raw(`m.id::int AS id, m.key, m.display_name AS name, m.description, m.kind,
  first_route.provider, first_route.provider_model, first_route.provider_edit_model,
  m.parameters, m.max_prompt_length,
  m.max_references, m.typical_seconds, m.sort_order, m.is_active AS active,
  ${isoTimeText('m.created_at')} AS created_at, ${isoTimeText('m.updated_at')} AS updated_at,
  COALESCE((SELECT json_agg(json_build_object('id', p.id, 'conditions', p.conditions,
                     'credits', p.credits, 'valid_from', ${isoTimeText('p.valid_from')}) ORDER BY p.id)
            FROM model_prices p WHERE p.model_id = m.id AND p.valid_to IS NULL), '[]'::json) AS prices,
  (SELECT count(*)::int FROM model_prices p WHERE p.model_id = m.id) AS price_history,
  COALESCE((SELECT json_agg(json_build_object('priority', r.priority, 'provider', r.provider,
                     'provider_model', r.provider_model, 'provider_edit_model', r.provider_edit_model)
                   ORDER BY r.priority)
            FROM model_routes r WHERE r.model_id = m.id), '[]'::json) AS routes`);

/**
 * The provider fields operators see and edit are the model's first route's (model_routes); the
 * routes after it (failover) and request shapes come with the catalog's migrations.
 */
const FIRST_ROUTE = sql.raw(`LEFT JOIN LATERAL (
  SELECT r.provider, r.provider_model, r.provider_edit_model FROM model_routes r
  WHERE r.model_id = m.id ORDER BY r.priority LIMIT 1) first_route ON true`);

/**
 * Where a route's references go when an operator names only its provider: tools take one `image`;
 * Replicate's image models `image_input`, other providers' `images` (lists). A model whose field
 * differs (qwen-image/edit: one `image`) gets its shape from a migration.
 */
function defaultReferenceShape(
  provider: string,
  kind: ModelKind,
): { field: string; arity: 'string' | 'array' } {
  if (kind === 'tool') return { field: 'image', arity: 'string' };
  return { field: provider === 'replicate' ? 'image_input' : 'images', arity: 'array' };
}

type ModelRow = AdminModel & { id: number };

function toModel({ id: _id, ...row }: ModelRow): AdminModel {
  return { ...row, prices: row.prices.map((price) => ({ ...price, id: Number(price.id) })) };
}

/**
 * Every model, inactive ones too, in the catalog's order, each with whether some provider of it
 * could take a generation now (as GET /models says it; for an inactive one: if it were active).
 */
export async function listModelsForAdmin(ctx: PipelineContext): Promise<ListedAdminModel[]> {
  const rows = await selectRows<ModelRow & { route_shapes: ModelRoute[] }>(
    ctx.db,
    sql`SELECT ${MODEL_COLUMNS}, ${sql.raw(MODEL_ROUTES_JSON)} AS route_shapes
        FROM model_catalog m ${FIRST_ROUTE} ORDER BY m.sort_order, m.key`,
  );
  const availability = availabilityOf(ctx);
  return Promise.all(
    rows.map(async ({ route_shapes, ...row }) => ({
      ...toModel(row),
      ...(await modelAvailability(ctx, route_shapes, availability)),
    })),
  );
}

/** Every price a model had and has, newest first (404 model_not_found for an unknown key). */
export async function priceHistory(ctx: ServiceContext, key: string): Promise<PriceHistoryEntry[]> {
  const [model] = await selectRows<{ id: number }>(
    ctx.db,
    sql`SELECT id::int AS id FROM model_catalog WHERE key = ${key}`,
  );
  if (!model) throw modelNotFound(key);
  const rows = await selectRows<PriceHistoryEntry>(
    ctx.db,
    sql`SELECT p.id::int AS id, p.conditions, p.credits,
               ${sql.raw(isoTimeText('p.valid_from'))} AS valid_from,
               ${sql.raw(isoTimeText('p.valid_to'))} AS valid_to
        FROM model_prices p WHERE p.model_id = ${model.id}
        ORDER BY p.valid_from DESC, p.id`,
  );
  return rows.map((row) => ({ ...row, id: Number(row.id) }));
}

async function findModel(db: Queryable, key: string, lock = false): Promise<ModelRow | null> {
  const [row] = await selectRows<ModelRow>(
    db,
    sql`SELECT ${MODEL_COLUMNS} FROM model_catalog m ${FIRST_ROUTE} WHERE m.key = ${key}
        ${lock ? sql`FOR UPDATE OF m` : sql``}`,
  );
  return row ?? null;
}

function modelNotFound(key: string): AppError {
  return new AppError('model_not_found', `No model with key "${key}".`);
}

interface FieldProblem {
  field: string;
  message: string;
}

function invalid(problems: FieldProblem[]): AppError {
  return new AppError(
    'validation_failed',
    problems.map((problem) => `${problem.field} ${problem.message}`).join('; '),
    { errors: problems },
  );
}

/** What the schema cannot say about parameters: unique names and values, a default among them. */
function parameterProblems(parameters: readonly ModelParameter[], field: string): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const names = new Set<string>();
  parameters.forEach((parameter, index) => {
    if (names.has(parameter.name)) {
      problems.push({ field: `${field}.${index}.name`, message: 'names a parameter twice' });
    }
    names.add(parameter.name);
    if (new Set(parameter.values).size !== parameter.values.length) {
      problems.push({ field: `${field}.${index}.values`, message: 'holds a value twice' });
    }
    if (!parameter.values.includes(parameter.default)) {
      problems.push({ field: `${field}.${index}.default`, message: 'must be one of its values' });
    }
  });
  return problems;
}

/**
 * Prices must fit the model: each condition names one of its parameters and one of that
 * parameter's values, no two prices have the same conditions, and one applies to the defaults
 * (else the model cannot be quoted).
 */
function priceProblems(
  prices: readonly PriceInput[],
  parameters: readonly ModelParameter[],
  field: string,
): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const seen = new Set<string>();
  prices.forEach((price, index) => {
    for (const [name, value] of Object.entries(price.conditions)) {
      const parameter = parameters.find((candidate) => candidate.name === name);
      if (!parameter) {
        problems.push({
          field: `${field}.${index}.conditions.${name}`,
          message: 'is not a parameter of the model',
        });
      } else if (!parameter.values.includes(value)) {
        problems.push({
          field: `${field}.${index}.conditions.${name}`,
          message: `must be one of ${parameter.values.join(', ')}`,
        });
      }
    }
    const canonical = JSON.stringify(Object.entries(price.conditions).sort());
    if (seen.has(canonical)) {
      problems.push({ field: `${field}.${index}.conditions`, message: 'repeats another price' });
    }
    seen.add(canonical);
  });
  if (problems.length === 0 && !resolvePrice(prices, defaultParameters(parameters))) {
    problems.push({ field, message: 'must hold a price for the default parameters' });
  }
  return problems;
}

function kindProblems(kind: ModelKind, maxReferences: number, field: string): FieldProblem[] {
  return kind === 'tool' && maxReferences < 1
    ? [{ field, message: 'must be at least 1 for a tool (it works on the image it is given)' }]
    : [];
}

async function openPrices(tx: Transaction, modelId: number, prices: readonly PriceInput[]) {
  for (const price of prices) {
    await tx.execute(
      sql`INSERT INTO model_prices (model_id, conditions, credits)
          VALUES (${modelId}, ${JSON.stringify(price.conditions)}::jsonb, ${price.credits})`,
    );
  }
}

async function audited(
  ctx: ServiceContext,
  work: (tx: Transaction) => Promise<{ before: AdminModel | null; after: AdminModel }>,
  entry: { operator: Operator; action: string; key: string; reason: string | null },
): Promise<AdminModel> {
  const after = await withTransaction(ctx.db, async (tx) => {
    const change = await work(tx);
    await recordAudit(tx, {
      ...entry.operator,
      action: entry.action,
      subjectType: 'model',
      subjectId: entry.key,
      before: change.before,
      after: change.after,
      reason: entry.reason,
    });
    return change.after;
  });
  forgetCatalog(ctx);
  return after;
}

async function reread(tx: Transaction, key: string): Promise<AdminModel> {
  const row = await findModel(tx, key);
  if (!row) throw modelNotFound(key);
  return toModel(row);
}

/** A new model with its first prices (409 model_exists for a key taken). */
export async function createModel(
  ctx: ServiceContext,
  input: NewModel,
  operator: Operator,
  reason: string | null,
): Promise<AdminModel> {
  const parameters = input.parameters ?? [];
  const maxReferences = input.max_references ?? 0;
  const problems = [
    ...parameterProblems(parameters, 'body.parameters'),
    ...kindProblems(input.kind, maxReferences, 'body.max_references'),
  ];
  if (problems.length === 0)
    problems.push(...priceProblems(input.prices, parameters, 'body.prices'));
  if (problems.length > 0) throw invalid(problems);
  return audited(
    ctx,
    async (tx) => {
      const [row] = await selectRows<{ id: number }>(
        tx,
        sql`INSERT INTO model_catalog (key, display_name, description, kind, parameters,
              max_prompt_length, max_references, typical_seconds, is_active, sort_order)
            VALUES (${input.key}, ${input.name}, ${input.description ?? ''}, ${input.kind},
              ${JSON.stringify(parameters)}::jsonb, ${input.max_prompt_length ?? DEFAULT_MAX_PROMPT_LENGTH},
              ${maxReferences}, ${input.typical_seconds ?? null}, ${input.active ?? true},
              ${input.sort_order ?? 0})
            ON CONFLICT (key) DO NOTHING
            RETURNING id::int AS id`,
      );
      if (!row) {
        throw new AppError('model_exists', `A model with key "${input.key}" exists already.`);
      }
      const shape = defaultReferenceShape(input.provider, input.kind);
      await tx.execute(
        sql`INSERT INTO model_routes (model_id, priority, provider, provider_model, provider_edit_model,
              reference_field, reference_arity, max_references)
            VALUES (${row.id}, 1, ${input.provider}, ${input.provider_model},
              ${input.provider_edit_model ?? null}, ${shape.field}, ${shape.arity},
              ${shape.arity === 'string' ? Math.min(maxReferences, 1) : maxReferences})`,
      );
      await openPrices(tx, Number(row.id), input.prices);
      return { before: null, after: await reread(tx, input.key) };
    },
    { operator, action: 'model.create', key: input.key, reason },
  );
}

/** Changes what is given of a model's fields; its prices must still fit new parameters. */
export async function updateModel(
  ctx: ServiceContext,
  key: string,
  changes: Partial<ModelFields>,
  operator: Operator,
  reason: string | null,
): Promise<AdminModel> {
  return audited(
    ctx,
    async (tx) => {
      const current = await findModel(tx, key, true);
      if (!current) throw modelNotFound(key);
      const before = toModel(current);
      const parameters = changes.parameters ?? before.parameters;
      const problems = [
        ...parameterProblems(parameters, 'body.parameters'),
        ...kindProblems(
          before.kind,
          changes.max_references ?? before.max_references,
          'body.max_references',
        ),
      ];
      if (problems.length === 0 && changes.parameters) {
        const fit = priceProblems(before.prices, parameters, 'body.parameters');
        if (fit.length > 0) {
          problems.push({
            field: 'body.parameters',
            message: `do not fit the current prices (${fit.map((p) => `${p.field.replace('body.parameters', 'prices')} ${p.message}`).join('; ')}); replace the prices first or with them`,
          });
        }
      }
      if (problems.length > 0) throw invalid(problems);
      const next = { ...before, ...changes, parameters };
      await tx.execute(
        sql`UPDATE model_catalog SET display_name = ${next.name}, description = ${next.description},
              parameters = ${JSON.stringify(next.parameters)}::jsonb,
              max_prompt_length = ${next.max_prompt_length}, max_references = ${next.max_references},
              typical_seconds = ${next.typical_seconds}, sort_order = ${next.sort_order},
              is_active = ${next.active}, updated_at = now()
            WHERE key = ${key}`,
      );
      // Another provider takes its references in its own field; the same one keeps its shape.
      const shape = defaultReferenceShape(next.provider, before.kind);
      const providerChanged = next.provider !== before.provider;
      await tx.execute(
        sql`UPDATE model_routes SET provider = ${next.provider}, provider_model = ${next.provider_model},
              provider_edit_model = ${next.provider_edit_model},
              reference_field = CASE WHEN ${providerChanged} THEN ${shape.field} ELSE reference_field END,
              reference_arity = CASE WHEN ${providerChanged} THEN ${shape.arity} ELSE reference_arity END,
              inputs = CASE WHEN ${providerChanged} THEN '{}'::jsonb ELSE inputs END,
              edit_inputs = CASE WHEN ${providerChanged} THEN '{}'::jsonb ELSE edit_inputs END,
              updated_at = now()
            WHERE id = (SELECT id FROM model_routes WHERE model_id = ${current.id}
                        ORDER BY priority LIMIT 1)`,
      );
      // A route takes what the model accepts, and a route of one `image` at most one.
      await tx.execute(
        sql`UPDATE model_routes SET max_references = CASE WHEN reference_arity = 'string'
              THEN LEAST(${next.max_references}::int, 1) ELSE ${next.max_references}::int END
            WHERE model_id = ${current.id}`,
      );
      return { before, after: await reread(tx, key) };
    },
    { operator, action: 'model.update', key, reason },
  );
}

/**
 * The model's prices from now on: its open prices closed (valid_to = now), these opened, in one
 * transaction under the model's row lock. History stays: closed rows are never touched again.
 */
export async function replacePrices(
  ctx: ServiceContext,
  key: string,
  prices: PriceInput[],
  operator: Operator,
  reason: string | null,
): Promise<AdminModel> {
  return audited(
    ctx,
    async (tx) => {
      const current = await findModel(tx, key, true);
      if (!current) throw modelNotFound(key);
      const before = toModel(current);
      const problems = priceProblems(prices, before.parameters, 'body.prices');
      if (problems.length > 0) throw invalid(problems);
      // A price opened at this same instant (valid_to must be after valid_from) closes a
      // microsecond later.
      await tx.execute(
        sql`UPDATE model_prices SET valid_to = greatest(now(), valid_from + interval '1 microsecond')
            WHERE model_id = ${current.id} AND valid_to IS NULL`,
      );
      await openPrices(tx, current.id, prices);
      await tx.execute(sql`UPDATE model_catalog SET updated_at = now() WHERE id = ${current.id}`);
      return { before, after: await reread(tx, key) };
    },
    { operator, action: 'model.prices', key, reason },
  );
}
