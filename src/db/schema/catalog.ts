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
    provider: text('provider').notNull(),
    /** The provider's model for text→image, and for edits with reference images. */
    providerModel: text('provider_model').notNull(),
    providerEditModel: text('provider_edit_model'),
    parameters: jsonb('parameters').$type<ModelParameter[]>().notNull().default(sql`'[]'::jsonb`),
    maxPromptLength: integer('max_prompt_length').notNull().default(2000),
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
