import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

/** One parameter a model accepts, e.g. aspect_ratio with its allowed values. */
export interface ModelParameter {
  name: string;
  label: string;
  type: 'enum';
  values: string[];
  default: string;
}

/**
 * `image`: makes a picture from a prompt (and, optionally, reference images to edit). `tool`: works
 * on exactly one image the user sends (upscale, remove a watermark, denoise…); its prompt may be empty.
 */
export const modelKinds = ['image', 'tool'] as const;
export type ModelKind = (typeof modelKinds)[number];

export const modelCatalog = pgTable(
  'model_catalog',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    /** Our stable public name for the model, e.g. 'nano-banana-pro'. */
    key: text('key').notNull().unique(),
    displayName: text('display_name').notNull(),
    kind: text('kind', { enum: modelKinds }).notNull().default('image'),
    description: text('description').notNull().default(''),
    parameters: jsonb('parameters').$type<ModelParameter[]>().notNull().default(sql`'[]'::jsonb`),
    maxPromptLength: integer('max_prompt_length').notNull().default(2000),
    /** What the API accepts; each route may take fewer (a route is only used when it takes them all). */
    maxReferences: integer('max_references').notNull().default(0),
    typicalSeconds: integer('typical_seconds'),
    isActive: boolean('is_active').notNull().default(true),
    sortOrder: integer('sort_order').notNull().default(0),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    check('model_catalog_key_format', sql`${t.key} ~ '^[a-z0-9][a-z0-9._-]{0,63}$'`),
    check('model_catalog_max_prompt_length_positive', sql`${t.maxPromptLength} > 0`),
    check('model_catalog_max_references_not_negative', sql`${t.maxReferences} >= 0`),
    check('model_catalog_kind_valid', sql`${t.kind} IN ('image', 'tool')`),
    // A tool works on the image it is given: it must accept one.
    check('model_catalog_tool_takes_an_image', sql`${t.kind} <> 'tool' OR ${t.maxReferences} >= 1`),
  ],
);

/** How a parameter's value (always text in our API) is sent in a provider's JSON. */
export const inputValueTypes = ['string', 'integer', 'number', 'boolean'] as const;
export type InputValueType = (typeof inputValueTypes)[number];

/**
 * Per parameter, how one route sends it: under another `field` name, as another `type`, or not
 * at all (`null`). A parameter not listed goes under its own name, as text.
 */
export type RouteInputs = Record<string, { field?: string; type?: InputValueType } | null>;

/** How a route's model takes reference images: one URL (`string`) or a list of them (`array`). */
export const referenceArities = ['string', 'array'] as const;
export type ReferenceArity = (typeof referenceArities)[number];

/**
 * Where a model is made: one provider's model and the shape of its request, as the provider
 * documents it. A model may have several routes; the lowest `priority` whose provider is
 * configured and healthy takes new generations (src/services/model-routes.ts).
 */
export const modelRoutes = pgTable(
  'model_routes',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    modelId: bigint('model_id', { mode: 'number' })
      .notNull()
      .references(() => modelCatalog.id),
    priority: integer('priority').notNull(),
    provider: text('provider').notNull(),
    /** The provider's model for text→image (a tool's only model). */
    providerModel: text('provider_model').notNull(),
    inputs: jsonb('inputs').$type<RouteInputs>().notNull().default(sql`'{}'::jsonb`),
    /** The provider's model for edits with reference images; null: `provider_model` takes them. */
    providerEditModel: text('provider_edit_model'),
    editInputs: jsonb('edit_inputs').$type<RouteInputs>().notNull().default(sql`'{}'::jsonb`),
    /** The JSON field the references go in (`images`, `image`, `image_input`…); null: none taken. */
    referenceField: text('reference_field'),
    referenceArity: text('reference_arity', { enum: referenceArities }).notNull().default('array'),
    maxReferences: integer('max_references').notNull().default(0),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('model_routes_priority_uq').on(t.modelId, t.priority),
    uniqueIndex('model_routes_provider_uq').on(t.modelId, t.provider),
    check('model_routes_reference_arity_valid', sql`${t.referenceArity} IN ('string', 'array')`),
    check('model_routes_max_references_not_negative', sql`${t.maxReferences} >= 0`),
    // One URL in a string field: a route that takes more must take a list.
    check(
      'model_routes_string_takes_one',
      sql`${t.referenceArity} = 'array' OR ${t.maxReferences} <= 1`,
    ),
    check(
      'model_routes_references_need_a_field',
      sql`${t.maxReferences} = 0 OR ${t.referenceField} IS NOT NULL`,
    ),
    check('model_routes_inputs_object', sql`jsonb_typeof(${t.inputs}) = 'object'`),
    check('model_routes_edit_inputs_object', sql`jsonb_typeof(${t.editInputs}) = 'object'`),
  ],
);

/**
 * Prices keep their history: a price is never edited, it is closed (`valid_to`) and a new row
 * opened, and a generation request points at the row it paid. `conditions` narrows a price to
 * parameter values ({"resolution": "4k"}); the most specific open price that matches wins.
 */
export const modelPrices = pgTable(
  'model_prices',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    modelId: bigint('model_id', { mode: 'number' })
      .notNull()
      .references(() => modelCatalog.id),
    conditions: jsonb('conditions')
      .$type<Record<string, string>>()
      .notNull()
      .default(sql`'{}'::jsonb`),
    credits: integer('credits').notNull(),
    validFrom: timestamp('valid_from', { withTimezone: true }).notNull().defaultNow(),
    validTo: timestamp('valid_to', { withTimezone: true }),
  },
  (t) => [
    check('model_prices_credits_positive', sql`${t.credits} > 0`),
    check('model_prices_conditions_object', sql`jsonb_typeof(${t.conditions}) = 'object'`),
    check('model_prices_valid_range', sql`${t.validTo} IS NULL OR ${t.validTo} > ${t.validFrom}`),
    uniqueIndex('model_prices_one_open_price_uq')
      .on(t.modelId, t.conditions)
      .where(sql`${t.validTo} IS NULL`),
    index('model_prices_model_idx').on(t.modelId),
  ],
);
