import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { forgetCatalog, type ModelPrice, resolvePrice } from '../src/services/catalog.ts';
import { buildTestApp } from './helpers/app.ts';
import { sharedDatabase } from './helpers/database.ts';

let app: FastifyInstance;
let database: DatabaseHandle;
beforeAll(async () => {
  database = await sharedDatabase();
  app = await buildTestApp();
});
afterAll(() => app.close());

interface ListedModel {
  key: string;
  kind: 'image' | 'tool';
  price_credits: number;
  prices: { conditions: Record<string, string>; credits: number }[];
  parameters: { name: string; values: string[]; default: string }[];
  max_references: number;
  available: boolean;
  unavailable_reason: string | null;
}

async function listModels(): Promise<ListedModel[]> {
  const response = await app.inject({ url: '/api/v1/models' });
  expect(response.statusCode).toBe(200);
  return response.json().models;
}

async function addModel(options: { active: boolean; prices: [string, number, boolean][] }) {
  const key = `test-${randomUUID().slice(0, 8)}`;
  await database.db.execute(sql`
    WITH model AS (
      INSERT INTO model_catalog (key, display_name, parameters, is_active)
      VALUES (${key}, 'Test model',
              '[{"name":"style","label":"Style","type":"enum","values":["photo","anime"],"default":"photo"}]'::jsonb,
              ${options.active})
      RETURNING id
    ), route AS (
      INSERT INTO model_routes (model_id, priority, provider, provider_model)
      SELECT id, 1, 'local', 'local/test' FROM model
    )
    INSERT INTO model_prices (model_id, conditions, credits, valid_from, valid_to)
    SELECT model.id, p.conditions::jsonb, p.credits, now() - interval '2 days',
           CASE WHEN p.closed THEN now() - interval '1 day' END
    FROM model, json_to_recordset(${JSON.stringify(
      options.prices.map(([conditions, credits, closed]) => ({ conditions, credits, closed })),
    )}::json) AS p(conditions text, credits int, closed boolean)`);
  return key;
}

describe('GET /api/v1/models', () => {
  it('is public and lists the starting catalog with prices and allowed parameters', async () => {
    const models = await listModels();
    const byKey = new Map(models.map((m) => [m.key, m]));
    for (const key of [
      'seedream-v4',
      'nano-banana',
      'nano-banana-pro',
      'gpt-image-1.5',
      'qwen-image',
    ]) {
      expect(byKey.has(key), key).toBe(true);
    }
    expect(byKey.get('seedream-v4')?.price_credits).toBe(27);
    expect(byKey.get('nano-banana')?.price_credits).toBe(38);
    const pro = byKey.get('nano-banana-pro');
    expect(pro?.price_credits).toBe(140);
    expect(pro?.prices).toContainEqual({ conditions: { resolution: '4k' }, credits: 240 });
    expect(pro?.parameters.map((p) => p.name)).toEqual(['aspect_ratio', 'resolution']);
    expect(pro?.parameters[0]?.values).toContain('21:9');
    // gpt-image-1.5's price depends on size and quality: defaults are 1024*1024, medium.
    expect(byKey.get('gpt-image-1.5')?.price_credits).toBe(45);
  });

  it('lists the tools as kind tool, each taking one image, with their prices and parameters', async () => {
    const models = await listModels();
    const byKey = new Map(models.map((m) => [m.key, m]));
    for (const key of [
      'seedream-v4',
      'nano-banana',
      'nano-banana-pro',
      'gpt-image-1.5',
      'qwen-image',
    ]) {
      expect(byKey.get(key)?.kind, key).toBe('image');
    }
    const tools = models
      // The starting catalog's, not the test models other files add to the shared database.
      .filter((m) => m.kind === 'tool' && !m.key.startsWith('test-'))
      .map((m) => ({
        key: m.key,
        price: m.price_credits,
        max_references: m.max_references,
        parameters: m.parameters.map((p) => [p.name, p.values, p.default]),
      }));
    expect(tools).toEqual([
      {
        key: 'upscale',
        price: 60,
        max_references: 1,
        parameters: [['target_resolution', ['2k', '4k', '8k'], '4k']],
      },
      { key: 'remove-watermark', price: 12, max_references: 1, parameters: [] },
      {
        key: 'denoise',
        price: 20,
        max_references: 1,
        parameters: [['model', ['Normal', 'Strong', 'Extreme'], 'Normal']],
      },
      {
        key: 'restore',
        price: 20,
        max_references: 1,
        parameters: [['model', ['Dust-Scratch', 'Dust-Scratch V2'], 'Dust-Scratch']],
      },
      { key: 'enhance', price: 30, max_references: 1, parameters: [] },
    ]);
  });

  it('refuses a tool that takes no image (the database checks it)', async () => {
    const refused = await database.db
      .execute(sql`
        INSERT INTO model_catalog (key, kind, display_name, max_references)
        VALUES (${`test-${randomUUID().slice(0, 8)}`}, 'tool', 'No image', 0)`)
      .then(
        () => null,
        (error: Error) => error,
      );
    expect(String(refused?.cause ?? refused)).toMatch(/model_catalog_tool_takes_an_image/);
  });

  it('leaves out inactive models and closed prices', async () => {
    const inactive = await addModel({ active: false, prices: [['{}', 10, false]] });
    const repriced = await addModel({
      active: true,
      prices: [
        ['{}', 10, true],
        ['{}', 12, false],
        ['{"style":"anime"}', 15, false],
      ],
    });
    const unpriced = await addModel({ active: true, prices: [['{}', 10, true]] });
    const models = await listModels();
    const keys = models.map((m) => m.key);
    expect(keys).not.toContain(inactive);
    expect(keys).not.toContain(unpriced);
    const model = models.find((m) => m.key === repriced);
    expect(model?.price_credits).toBe(12);
    expect(model?.prices).toEqual([
      { conditions: {}, credits: 12 },
      { conditions: { style: 'anime' }, credits: 15 },
    ]);
  });
});

describe('the starting catalog, as the providers document it', () => {
  async function routes(key: string) {
    return selectRows<{
      priority: number;
      provider: string;
      provider_model: string;
      provider_edit_model: string | null;
      reference_field: string | null;
      reference_arity: string;
      max_references: number;
      edit_inputs: Record<string, unknown>;
    }>(
      database.db,
      sql`SELECT r.priority, r.provider, r.provider_model, r.provider_edit_model, r.reference_field,
                 r.reference_arity, r.max_references, r.edit_inputs
          FROM model_routes r JOIN model_catalog m ON m.id = r.model_id
          WHERE m.key = ${key} ORDER BY r.priority`,
    );
  }

  it('routes nano-banana to Wavespeed first and Replicate google/nano-banana second', async () => {
    expect(await routes('nano-banana')).toEqual([
      expect.objectContaining({
        priority: 1,
        provider: 'wavespeed',
        provider_model: 'google/nano-banana/text-to-image',
        provider_edit_model: 'google/nano-banana/edit',
        reference_field: 'images',
        reference_arity: 'array',
        max_references: 10,
      }),
      expect.objectContaining({
        priority: 2,
        provider: 'replicate',
        provider_model: 'google/nano-banana',
        provider_edit_model: null,
        reference_field: 'image_input',
        reference_arity: 'array',
      }),
    ]);
  });

  it('sends qwen-image edits one `image` string and no size; tools one `image`', async () => {
    expect(await routes('qwen-image')).toEqual([
      expect.objectContaining({
        provider_edit_model: 'wavespeed-ai/qwen-image/edit',
        reference_field: 'image',
        reference_arity: 'string',
        max_references: 1,
        edit_inputs: { size: null },
      }),
    ]);
    const models = await listModels();
    expect(models.find((m) => m.key === 'qwen-image')?.max_references).toBe(1);
    for (const tool of ['upscale', 'remove-watermark', 'denoise', 'restore', 'enhance']) {
      expect(await routes(tool)).toEqual([
        expect.objectContaining({ reference_field: 'image', reference_arity: 'string' }),
      ]);
    }
  });

  it('offers only documented sizes: Seedream 4.0 within 1024–4096 per side, GPT Image 1.5 without auto', async () => {
    const models = await listModels();
    const seedream = models.find((m) => m.key === 'seedream-v4')?.parameters[0];
    expect(seedream?.values.length).toBeGreaterThan(0);
    for (const size of seedream?.values ?? []) {
      const sides = size.split('*').map(Number);
      expect(sides, size).toHaveLength(2);
      for (const side of sides) {
        expect(side, size).toBeGreaterThanOrEqual(1024);
        expect(side, size).toBeLessThanOrEqual(4096);
      }
    }
    const gpt = models.find((m) => m.key === 'gpt-image-1.5');
    expect(gpt?.parameters.find((p) => p.name === 'size')?.values).toEqual([
      '1024*1024',
      '1024*1536',
      '1536*1024',
    ]);
  });
});

describe('availability', () => {
  it('the offline provider serves every model: all available', async () => {
    const offline = await buildTestApp({ GENERATION_PROVIDER: 'local' });
    try {
      const models: ListedModel[] = (await offline.inject({ url: '/api/v1/models' })).json().models;
      expect(models.length).toBeGreaterThan(0);
      for (const model of models) {
        expect(model, model.key).toMatchObject({ available: true, unavailable_reason: null });
      }
    } finally {
      await offline.close();
    }
  });

  it('without provider accounts every model is marked unavailable, and generating one is 503', async () => {
    const noKeys = await buildTestApp({ GENERATION_PROVIDER: 'catalog' });
    try {
      const models: ListedModel[] = (await noKeys.inject({ url: '/api/v1/models' })).json().models;
      const nanoBanana = models.find((m) => m.key === 'nano-banana');
      expect(nanoBanana).toMatchObject({
        available: false,
        unavailable_reason: 'no_account',
      });
    } finally {
      await noKeys.close();
    }
    const withReplicate = await buildTestApp({
      GENERATION_PROVIDER: 'catalog',
      REPLICATE_API_TOKEN: 'r8_test_token_not_used',
    });
    try {
      const models: ListedModel[] = (await withReplicate.inject({ url: '/api/v1/models' })).json()
        .models;
      // Its second route is Replicate: available; a Wavespeed-only model is not.
      expect(models.find((m) => m.key === 'nano-banana')).toMatchObject({ available: true });
      expect(models.find((m) => m.key === 'seedream-v4')).toMatchObject({
        available: false,
        unavailable_reason: 'no_account',
      });
    } finally {
      await withReplicate.close();
    }
  });
});

describe('resolvePrice', () => {
  const prices: ModelPrice[] = [
    { conditions: { quality: 'high' }, credits: 255 },
    { conditions: { quality: 'high', size: '1024*1024' }, credits: 170 },
    { conditions: {}, credits: 50 },
  ];
  it('takes the most specific matching price', () => {
    expect(resolvePrice(prices, { quality: 'high', size: '1024*1024' })?.credits).toBe(170);
    expect(resolvePrice(prices, { quality: 'high', size: '1536*1024' })?.credits).toBe(255);
    expect(resolvePrice(prices, { quality: 'low', size: '1024*1024' })?.credits).toBe(50);
  });
  it('answers null when nothing matches', () => {
    expect(resolvePrice(prices.slice(0, 2), { quality: 'low' })).toBeNull();
  });
});

describe('catalog cache', () => {
  it('keeps the list CATALOG_CACHE_SECONDS, and forgets it on demand', async () => {
    const cached = await buildTestApp({ CATALOG_CACHE_SECONDS: '3600' });
    try {
      const keys = async () =>
        ((await cached.inject({ url: '/api/v1/models' })).json().models as ListedModel[]).map(
          (m) => m.key,
        );
      const before = await keys();
      const added = await addModel({ active: true, prices: [['{}', 10, false]] });
      expect(await keys()).toEqual(before);
      forgetCatalog(cached.deps.services);
      expect(await keys()).toContain(added);
    } finally {
      await cached.close();
    }
  });
});
