import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { operatorOf } from '../../deps/auth.ts';
import { problemResponses } from '../../schemas/problem.ts';
import {
  DEFAULT_MAX_PROMPT_LENGTH,
  PROMPT_LENGTH_CEILING,
  REFERENCES_CEILING,
} from '../../services/catalog.ts';
import {
  createModel,
  listModelsForAdmin,
  priceHistory,
  replacePrices,
  updateModel,
} from '../../services/catalog-admin.ts';

const ModelKey = Type.String({
  pattern: '^[a-z0-9][a-z0-9._-]{0,63}$',
  description: 'Our stable name for the model, e.g. nano-banana-pro',
  examples: ['nano-banana-pro'],
});

const ModelKeyParams = Type.Object({ key: ModelKey });

const Parameter = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z][a-z0-9_]{0,31}$' }),
    label: Type.String({ minLength: 1, maxLength: 64 }),
    type: Type.Literal('enum'),
    values: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
      minItems: 1,
      maxItems: 50,
    }),
    default: Type.String({ minLength: 1, maxLength: 64, description: 'One of the values' }),
  },
  { additionalProperties: false },
);

const Parameters = Type.Array(Parameter, {
  maxItems: 16,
  description: 'What a user may choose, each an enum with its default among its values',
});

const Conditions = Type.Record(Type.String({ maxLength: 32 }), Type.String({ maxLength: 64 }), {
  maxProperties: 16,
  description: 'Parameter values the price applies to; {} = any. The most specific match wins',
});

const PriceInput = Type.Object(
  {
    conditions: Conditions,
    credits: Type.Integer({ minimum: 1, maximum: 1_000_000_000 }),
  },
  { additionalProperties: false },
);

const PriceList = Type.Array(PriceInput, { minItems: 1, maxItems: 200 });

const Provider = Type.String({
  pattern: '^[a-z0-9_-]{1,32}$',
  description: 'The provider that serves the model, e.g. wavespeed or replicate',
});
const ProviderModel = Type.String({ minLength: 1, maxLength: 200 });
const Reason = Type.String({ minLength: 1, maxLength: 500, description: 'Why; audited' });

/** The fields a model has besides its key, kind and prices, as they are written. */
const editable = {
  name: Type.String({ minLength: 1, maxLength: 100 }),
  description: Type.String({ maxLength: 2000 }),
  provider: Provider,
  provider_model: ProviderModel,
  provider_edit_model: Type.Union([Type.Null(), ProviderModel], {
    description: "The provider's model for edits with reference images; null: none",
  }),
  parameters: Parameters,
  max_prompt_length: Type.Integer({
    minimum: 1,
    maximum: PROMPT_LENGTH_CEILING,
    description: `The longest prompt the model takes, in characters (default ${DEFAULT_MAX_PROMPT_LENGTH})`,
  }),
  max_references: Type.Integer({ minimum: 0, maximum: REFERENCES_CEILING }),
  typical_seconds: Type.Union([Type.Null(), Type.Integer({ minimum: 1, maximum: 86_400 })]),
  sort_order: Type.Integer({ minimum: -1_000_000, maximum: 1_000_000 }),
  active: Type.Boolean({ description: 'Offered to users (GET /models); inactive: hidden' }),
};

const Kind = Type.Union([Type.Literal('image'), Type.Literal('tool')]);

const adminModelFields = {
  key: Type.String(),
  name: Type.String(),
  description: Type.String(),
  kind: Kind,
  provider: Type.String({ description: "The first route's provider" }),
  provider_model: Type.String({ description: "The first route's provider model" }),
  provider_edit_model: Type.Union([Type.Null(), Type.String()]),
  parameters: Type.Array(
    Type.Object({
      name: Type.String(),
      label: Type.String(),
      type: Type.Literal('enum'),
      values: Type.Array(Type.String()),
      default: Type.String(),
    }),
  ),
  max_prompt_length: Type.Integer(),
  max_references: Type.Integer(),
  typical_seconds: Type.Union([Type.Null(), Type.Integer()]),
  sort_order: Type.Integer(),
  active: Type.Boolean(),
  prices: Type.Array(
    Type.Object({
      id: Type.Integer(),
      conditions: Type.Record(Type.String(), Type.String()),
      credits: Type.Integer(),
      valid_from: Type.String({ format: 'date-time' }),
    }),
    { description: 'The current (open) prices' },
  ),
  price_history: Type.Integer({
    description:
      'Prices the model ever had, current ones included (GET /admin/models/{key}/prices lists them)',
  }),
  routes: Type.Array(
    Type.Object({
      priority: Type.Integer(),
      provider: Type.String(),
      provider_model: Type.String(),
      provider_edit_model: Type.Union([Type.Null(), Type.String()]),
    }),
    {
      description:
        'The providers that serve the model, tried in this order (failover); PATCH changes the first',
    },
  ),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
};

const AdminModel = Type.Object(adminModelFields);

const ListedAdminModel = Type.Object({
  ...adminModelFields,
  available: Type.Boolean({
    description:
      'Whether a generation could start now: some provider of it is configured, not failing and ' +
      'above its minimum balance (for an inactive model: if it were active)',
  }),
  unavailable_reason: Type.Union(
    [Type.Literal('no_account'), Type.Literal('failing'), Type.Literal('low_balance'), Type.Null()],
    { description: 'Why not, when not available (as GET /models says it)' },
  ),
});

const PriceHistoryEntry = Type.Object({
  id: Type.Integer(),
  conditions: Type.Record(Type.String(), Type.String(), {
    description: 'Parameter values the price applied to; {} = any',
  }),
  credits: Type.Integer(),
  valid_from: Type.String({ format: 'date-time' }),
  valid_to: Type.Union([Type.Null(), Type.String({ format: 'date-time' })], {
    description: 'When it was replaced; null: current',
  }),
});

/** Catalog administration: models and their prices (with history). Every write is audited. */
export const adminModelRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/admin/models',
    {
      config: { access: 'support' },
      schema: {
        operationId: 'adminListModels',
        summary:
          'Every model, inactive ones too, with its routes, current prices, price history count and availability',
        tags: ['admin'],
        response: {
          200: Type.Object({ models: Type.Array(ListedAdminModel) }),
          ...problemResponses(401, 403, 429),
        },
      },
    },
    async () => ({ models: await listModelsForAdmin(app.deps.pipeline) }),
  );

  app.get(
    '/admin/models/:key/prices',
    {
      config: { access: 'support' },
      schema: {
        operationId: 'adminModelPriceHistory',
        summary: 'Every price a model had and has, newest first',
        description:
          'Current prices have valid_to null; a replaced one keeps the time it was replaced. ' +
          'Who replaced them and why: the audit log (subject_id = the key, action model.prices).',
        tags: ['admin'],
        params: ModelKeyParams,
        response: {
          200: Type.Object({ prices: Type.Array(PriceHistoryEntry) }),
          ...problemResponses(401, 403, 404, 422, 429),
        },
      },
    },
    async (request) => ({ prices: await priceHistory(app.deps.services, request.params.key) }),
  );

  app.post(
    '/admin/models',
    {
      config: { access: 'admin' },
      schema: {
        operationId: 'adminCreateModel',
        summary: 'Add a model with its first prices',
        description:
          'Parameters are enums whose default is among their values; prices name only parameters ' +
          'and values of the model, and one must apply to the defaults. A tool takes at least one ' +
          'reference. Audited as model.create. Every API process offers it within ' +
          'CATALOG_CACHE_SECONDS.',
        tags: ['admin'],
        body: Type.Object(
          {
            key: ModelKey,
            kind: Kind,
            name: editable.name,
            description: Type.Optional(editable.description),
            provider: editable.provider,
            provider_model: editable.provider_model,
            provider_edit_model: Type.Optional(editable.provider_edit_model),
            parameters: Type.Optional(editable.parameters),
            max_prompt_length: Type.Optional(editable.max_prompt_length),
            max_references: Type.Optional(editable.max_references),
            typical_seconds: Type.Optional(editable.typical_seconds),
            sort_order: Type.Optional(editable.sort_order),
            active: Type.Optional(editable.active),
            prices: PriceList,
            reason: Type.Optional(Reason),
          },
          { additionalProperties: false },
        ),
        response: { 201: AdminModel, ...problemResponses(401, 403, 409, 422, 429) },
      },
    },
    async (request, reply) => {
      const { reason, ...input } = request.body;
      const model = await createModel(
        app.deps.services,
        input,
        operatorOf(request),
        reason ?? null,
      );
      return reply.code(201).send(model);
    },
  );

  app.patch(
    '/admin/models/:key',
    {
      config: { access: 'admin' },
      schema: {
        operationId: 'adminUpdateModel',
        summary: "Change a model's name, description, activity, order, provider or parameters",
        description:
          'Only the fields given change. New parameters must fit the current prices (replace ' +
          'the prices first when they would not). Audited as model.update, before and after.',
        tags: ['admin'],
        params: ModelKeyParams,
        body: Type.Object(
          {
            name: Type.Optional(editable.name),
            description: Type.Optional(editable.description),
            provider: Type.Optional(editable.provider),
            provider_model: Type.Optional(editable.provider_model),
            provider_edit_model: Type.Optional(editable.provider_edit_model),
            parameters: Type.Optional(editable.parameters),
            max_prompt_length: Type.Optional(editable.max_prompt_length),
            max_references: Type.Optional(editable.max_references),
            typical_seconds: Type.Optional(editable.typical_seconds),
            sort_order: Type.Optional(editable.sort_order),
            active: Type.Optional(editable.active),
            reason: Type.Optional(Reason),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
        response: { 200: AdminModel, ...problemResponses(401, 403, 404, 422, 429) },
      },
    },
    async (request) => {
      const { reason, ...changes } = request.body;
      return updateModel(
        app.deps.services,
        request.params.key,
        changes,
        operatorOf(request),
        reason ?? null,
      );
    },
  );

  app.put(
    '/admin/models/:key/prices',
    {
      config: { access: 'admin' },
      schema: {
        operationId: 'adminReplaceModelPrices',
        summary: "Replace a model's prices from now on (the old ones are kept as history)",
        description:
          'In one transaction the open prices close (valid_to = now) and these open. A ' +
          'generation keeps the price it was accepted at; one being accepted at the old price ' +
          'is retried at the new one. Audited as model.prices.',
        tags: ['admin'],
        params: ModelKeyParams,
        body: Type.Object(
          { prices: PriceList, reason: Type.Optional(Reason) },
          { additionalProperties: false },
        ),
        response: { 200: AdminModel, ...problemResponses(401, 403, 404, 422, 429) },
      },
    },
    async (request) =>
      replacePrices(
        app.deps.services,
        request.params.key,
        request.body.prices,
        operatorOf(request),
        request.body.reason ?? null,
      ),
  );
};
