import { queryText } from '../db/rows.ts';
import type { ModelKind, ModelParameter, ReferenceArity, RouteInputs } from '../db/schema/index.ts';
import type { PipelineContext, ServiceContext } from './context.ts';
import { availabilityOf, modelAvailability } from './model-routes.ts';

/**
 * The most a model's max_prompt_length may be: the bound operators can set (PATCH /admin/models)
 * and so the longest prompt a generation request may carry before its model's own limit is checked.
 */
export const PROMPT_LENGTH_CEILING = 10_000;

/** The most reference images a model may take (max_references), and so a request may carry. */
export const REFERENCES_CEILING = 16;

/** A new model's max_prompt_length when its operator gives none (the column's default too). */
export const DEFAULT_MAX_PROMPT_LENGTH = 2_000;

export interface ModelPrice {
  conditions: Record<string, string>;
  credits: number;
}

/** One way to make a model: a provider's model(s) and its request shape (model_routes). */
export interface ModelRoute {
  priority: number;
  provider: string;
  provider_model: string;
  inputs: RouteInputs;
  provider_edit_model: string | null;
  edit_inputs: RouteInputs;
  reference_field: string | null;
  reference_arity: ReferenceArity;
  max_references: number;
}

export interface CatalogModel {
  /** Internal: the row id and the routes that serve it, best first (not part of GET /models). */
  id: number;
  routes: ModelRoute[];
  key: string;
  /** `image`: draws from a prompt; `tool`: works on the one image it is given, prompt optional. */
  kind: ModelKind;
  name: string;
  description: string;
  parameters: ModelParameter[];
  max_prompt_length: number;
  max_references: number;
  typical_seconds: number | null;
  /** The price with every parameter at its default. */
  price_credits: number;
  prices: (ModelPrice & { id: number })[];
}

/**
 * The price of a model for the given parameters: among its open prices whose conditions all match,
 * the most specific one (most conditions). Null when no price applies.
 */
export function resolvePrice<Price extends ModelPrice>(
  prices: readonly Price[],
  parameters: Record<string, string>,
): Price | null {
  let best: Price | null = null;
  let bestSpecificity = -1;
  for (const price of prices) {
    const conditions = Object.entries(price.conditions);
    if (!conditions.every(([name, value]) => parameters[name] === value)) continue;
    if (conditions.length > bestSpecificity) {
      best = price;
      bestSpecificity = conditions.length;
    }
  }
  return best;
}

export function defaultParameters(parameters: readonly ModelParameter[]): Record<string, string> {
  return Object.fromEntries(parameters.map((parameter) => [parameter.name, parameter.default]));
}

/** A model's routes as JSON, best first: for the catalog and for the worker (jobs/generate.ts). */
export const MODEL_ROUTES_JSON = `COALESCE((SELECT json_agg(json_build_object('priority', r.priority,
    'provider', r.provider, 'provider_model', r.provider_model, 'inputs', r.inputs,
    'provider_edit_model', r.provider_edit_model, 'edit_inputs', r.edit_inputs,
    'reference_field', r.reference_field, 'reference_arity', r.reference_arity,
    'max_references', r.max_references) ORDER BY r.priority)
  FROM model_routes r WHERE r.model_id = m.id), '[]'::json)`;

const ACTIVE_MODELS_SQL = `SELECT m.id::int AS id, ${MODEL_ROUTES_JSON} AS routes, m.key, m.kind, m.display_name AS name, m.description,
       m.parameters, m.max_prompt_length, m.max_references, m.typical_seconds, prices.list AS prices
FROM model_catalog m
CROSS JOIN LATERAL (
  SELECT json_agg(json_build_object('id', p.id, 'conditions', p.conditions, 'credits', p.credits)
                  ORDER BY p.id) AS list
  FROM model_prices p
  WHERE p.model_id = m.id AND p.valid_to IS NULL
) prices
WHERE m.is_active AND prices.list IS NOT NULL
ORDER BY m.sort_order, m.key`;

interface CachedCatalog {
  expiresAt: number;
  models: Promise<CatalogModel[]>;
}

const catalogCache = new WeakMap<object, CachedCatalog>();

/**
 * Active models that can be bought, each with its open prices. The catalog changes with an
 * operator's edit, not per request, so each process keeps it CATALOG_CACHE_SECONDS; prices a
 * generation pays are always read fresh inside its own transaction, never from here.
 */
export function listActiveModels(ctx: ServiceContext): Promise<CatalogModel[]> {
  const ttlMs = ctx.config.catalogCacheSeconds * 1000;
  if (ttlMs === 0) return readActiveModels(ctx);
  const now = Date.now();
  const cached = catalogCache.get(ctx.db);
  if (cached && cached.expiresAt > now) return cached.models;
  const models = readActiveModels(ctx);
  catalogCache.set(ctx.db, { expiresAt: now + ttlMs, models });
  // A failed read is not kept: the next request tries again.
  models.catch(() => catalogCache.delete(ctx.db));
  return models;
}

/**
 * An active, priced model by key, from this process's copy of the catalog (`fresh`: read it
 * again first). Null for an unknown key.
 */
export async function findActiveModel(
  ctx: ServiceContext,
  key: string,
  options: { fresh?: boolean } = {},
): Promise<CatalogModel | null> {
  if (options.fresh) forgetCatalog(ctx);
  return (await listActiveModels(ctx)).find((model) => model.key === key) ?? null;
}

/**
 * The active models as GET /models lists them: each marked `available` (a route whose provider is
 * configured and not failing) or not, with the reason. Read per call: breakers change by the second.
 */
export async function listModelsWithAvailability(
  ctx: PipelineContext,
): Promise<(CatalogModel & Awaited<ReturnType<typeof modelAvailability>>)[]> {
  const models = await listActiveModels(ctx);
  const availability = availabilityOf(ctx);
  return Promise.all(
    models.map(async (model) => ({
      ...model,
      ...(await modelAvailability(ctx, model.routes, availability)),
    })),
  );
}

/** Drops this process's copy of the catalog, after changing it. */
export function forgetCatalog(ctx: ServiceContext): void {
  catalogCache.delete(ctx.db);
}

async function readActiveModels(ctx: ServiceContext): Promise<CatalogModel[]> {
  const rows = await queryText<Omit<CatalogModel, 'price_credits'>>(ctx.db, ACTIVE_MODELS_SQL, []);
  const models: CatalogModel[] = [];
  for (const row of rows) {
    const price = resolvePrice(row.prices, defaultParameters(row.parameters));
    // A model whose defaults have no price cannot be quoted; listing it would only confuse users.
    if (!price) continue;
    models.push({ ...row, price_credits: price.credits });
  }
  return models;
}
