import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { adminAuth, botAuth, buildTestApp, miniAppAuth } from './helpers/app.ts';
import {
  freshTelegramId,
  onPostgres,
  openTestDatabase,
  sharedDatabase,
} from './helpers/database.ts';
import {
  ADMIN_OPERATOR_ID,
  operatorCookie,
  operatorSettings,
  SUPPORT_OPERATOR_ID,
} from './helpers/operators.ts';
import { waitFor } from './helpers/pipeline.ts';

// Test models get keys of their own: other files share the database and its catalog.

let app: FastifyInstance;
let database: DatabaseHandle;

beforeAll(async () => {
  database = await sharedDatabase();
  app = await buildTestApp({ GENERATION_PROVIDER: 'local', ...operatorSettings });
});

afterAll(async () => {
  await app?.close();
});

const newKey = () => `t-${randomUUID().slice(0, 8)}`;

function modelBody(key: string, overrides: Record<string, unknown> = {}) {
  return {
    key,
    kind: 'image',
    name: 'Test model',
    description: 'For tests',
    provider: 'wavespeed',
    provider_model: 'test/text-to-image',
    provider_edit_model: 'test/edit',
    parameters: [
      { name: 'size', label: 'Size', type: 'enum', values: ['small', 'large'], default: 'small' },
    ],
    max_references: 2,
    typical_seconds: 10,
    sort_order: 900,
    prices: [
      { conditions: {}, credits: 10 },
      { conditions: { size: 'large' }, credits: 25 },
    ],
    reason: 'launch',
    ...overrides,
  };
}

async function createModel(key = newKey(), overrides: Record<string, unknown> = {}) {
  const response = await app.inject({
    method: 'POST',
    url: '/api/v1/admin/models',
    headers: adminAuth,
    payload: modelBody(key, overrides),
  });
  expect(response.statusCode).toBe(201);
  return key;
}

async function auditOf(requestId: string) {
  return selectRows<{
    action: string;
    actor: string;
    subject_type: string;
    subject_id: string;
    before: unknown;
    after: unknown;
    reason: string | null;
  }>(
    database.db,
    sql`SELECT action, actor, subject_type, subject_id, before, after, reason FROM audit_log
        WHERE request_id = ${requestId}`,
  );
}

async function publicModel(target: FastifyInstance, key: string) {
  const response = await target.inject({ url: '/api/v1/models' });
  return (response.json().models as { key: string; price_credits: number }[]).find(
    (model) => model.key === key,
  );
}

async function adminModel(key: string) {
  const response = await app.inject({ url: '/api/v1/admin/models', headers: adminAuth });
  expect(response.statusCode).toBe(200);
  return (response.json().models as Record<string, unknown>[]).find((model) => model.key === key);
}

describe('admin catalog routes: access', () => {
  it.each([
    ['GET', '/api/v1/admin/models', undefined],
    ['GET', '/api/v1/admin/models/nano-banana/prices', undefined],
    ['POST', '/api/v1/admin/models', modelBody('t-access')],
    ['PATCH', '/api/v1/admin/models/nano-banana', { active: false }],
    [
      'PUT',
      '/api/v1/admin/models/nano-banana/prices',
      { prices: [{ conditions: {}, credits: 1 }] },
    ],
  ] as const)(
    '%s %s: no token 401, the bot 403, a Mini App user 403',
    async (method, url, payload) => {
      expect((await app.inject({ method, url, payload })).statusCode).toBe(401);
      expect((await app.inject({ method, url, payload, headers: botAuth })).statusCode).toBe(403);
      const miniApp = miniAppAuth(freshTelegramId());
      expect((await app.inject({ method, url, payload, headers: miniApp })).statusCode).toBe(403);
    },
  );
});

describe('operators signed in with Telegram', () => {
  it('support reads the catalog but may not change it; an admin may', async () => {
    const support = await operatorCookie(app, SUPPORT_OPERATOR_ID);
    const listed = await app.inject({ url: '/api/v1/admin/models', headers: support });
    expect(listed.statusCode).toBe(200);
    const key = await createModel();
    const history = await app.inject({
      url: `/api/v1/admin/models/${key}/prices`,
      headers: support,
    });
    expect(history.statusCode).toBe(200);
    for (const [method, url, payload] of [
      ['POST', '/api/v1/admin/models', modelBody(newKey())],
      ['PATCH', `/api/v1/admin/models/${key}`, { active: false }],
      ['PUT', `/api/v1/admin/models/${key}/prices`, { prices: [{ conditions: {}, credits: 1 }] }],
    ] as const) {
      expect((await app.inject({ method, url, payload, headers: support })).statusCode).toBe(403);
    }
    const admin = await operatorCookie(app, ADMIN_OPERATOR_ID);
    const changed = await app.inject({
      method: 'PATCH',
      url: `/api/v1/admin/models/${key}`,
      headers: admin,
      payload: { description: 'by an operator' },
    });
    expect(changed.statusCode).toBe(200);
    const [audit] = await auditOf(changed.headers['x-request-id'] as string);
    expect(audit).toMatchObject({ actor: `operator:${ADMIN_OPERATOR_ID}`, action: 'model.update' });
  });
});

describe('POST /api/v1/admin/models', () => {
  it('adds a model with its prices, offered at once, audited; a taken key is 409', async () => {
    const key = newKey();
    const response = await app.inject({
      method: 'POST',
      url: '/api/v1/admin/models',
      headers: adminAuth,
      payload: modelBody(key),
    });
    expect(response.statusCode).toBe(201);
    const model = response.json();
    expect(model).toMatchObject({
      key,
      kind: 'image',
      name: 'Test model',
      provider: 'wavespeed',
      provider_model: 'test/text-to-image',
      provider_edit_model: 'test/edit',
      max_prompt_length: 2000,
      max_references: 2,
      typical_seconds: 10,
      sort_order: 900,
      active: true,
      price_history: 2,
      prices: [
        { conditions: {}, credits: 10, id: expect.any(Number), valid_from: expect.any(String) },
        { conditions: { size: 'large' }, credits: 25 },
      ],
    });
    expect(await publicModel(app, key)).toMatchObject({ price_credits: 10 });
    const [audit] = await auditOf(response.headers['x-request-id'] as string);
    expect(audit).toMatchObject({
      action: 'model.create',
      actor: expect.stringMatching(/^admin:/),
      subject_type: 'model',
      subject_id: key,
      before: null,
      after: { key, prices: [{ credits: 10 }, { credits: 25 }] },
      reason: 'launch',
    });

    const again = await app.inject({
      method: 'POST',
      url: '/api/v1/admin/models',
      headers: adminAuth,
      payload: modelBody(key),
    });
    expect(again.statusCode).toBe(409);
    expect(again.json().code).toBe('model_exists');
  });

  const parameter = { name: 'size', label: 'Size', type: 'enum', values: ['a', 'b'] };
  it.each([
    ['a key of the wrong shape', { key: 'Bad Key' }, 'body.key'],
    [
      'a default not among the values',
      { parameters: [{ ...parameter, default: 'c' }] },
      'body.parameters.0.default',
    ],
    [
      'a parameter named twice',
      {
        parameters: [
          { ...parameter, default: 'a' },
          { ...parameter, default: 'b' },
        ],
        prices: [{ conditions: {}, credits: 1 }],
      },
      'body.parameters.1.name',
    ],
    [
      'a parameter of another type',
      { parameters: [{ ...parameter, type: 'text', default: 'a' }] },
      'body.parameters.0.type',
    ],
    [
      'a price for an unknown parameter',
      {
        prices: [
          { conditions: {}, credits: 1 },
          { conditions: { colour: 'red' }, credits: 2 },
        ],
      },
      'body.prices.1.conditions.colour',
    ],
    [
      'a price for an unknown value',
      {
        prices: [
          { conditions: {}, credits: 1 },
          { conditions: { size: 'huge' }, credits: 2 },
        ],
      },
      'body.prices.1.conditions.size',
    ],
    [
      'no price for the defaults',
      { prices: [{ conditions: { size: 'large' }, credits: 2 }] },
      'body.prices',
    ],
    [
      'two prices with the same conditions',
      {
        prices: [
          { conditions: {}, credits: 1 },
          { conditions: {}, credits: 2 },
        ],
      },
      'body.prices.1.conditions',
    ],
    ['no prices', { prices: [] }, 'body.prices'],
    ['a price of 0 credits', { prices: [{ conditions: {}, credits: 0 }] }, 'body.prices.0.credits'],
    ['a tool without references', { kind: 'tool', max_references: 0 }, 'body.max_references'],
    ['an unknown field', { colour: 'red' }, 'body.colour'],
  ])('refuses %s with 422 naming it', async (_what, overrides, field) => {
    const key = newKey();
    const response = await app.inject({
      method: 'POST',
      url: '/api/v1/admin/models',
      headers: adminAuth,
      payload: modelBody(key, overrides),
    });
    expect(response.statusCode).toBe(422);
    const errors = response.json().errors as { field: string }[];
    expect(errors.some((error) => error.field === field)).toBe(true);
    expect(await adminModel(key)).toBeUndefined();
  });
});

describe('PATCH /api/v1/admin/models/{key}', () => {
  it('changes the fields given, audited before and after; inactive models are not offered', async () => {
    const key = await createModel();
    const response = await app.inject({
      method: 'PATCH',
      url: `/api/v1/admin/models/${key}`,
      headers: adminAuth,
      payload: {
        name: 'Renamed',
        active: false,
        sort_order: 901,
        provider: 'replicate',
        provider_model: 'owner/model',
        provider_edit_model: null,
        reason: 'moving providers',
      },
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({
      key,
      name: 'Renamed',
      description: 'For tests',
      active: false,
      sort_order: 901,
      provider: 'replicate',
      provider_model: 'owner/model',
      provider_edit_model: null,
      price_history: 2,
    });
    expect(await publicModel(app, key)).toBeUndefined();
    expect(await adminModel(key)).toMatchObject({ active: false, name: 'Renamed' });
    const [audit] = await auditOf(response.headers['x-request-id'] as string);
    expect(audit).toMatchObject({
      action: 'model.update',
      subject_id: key,
      before: { name: 'Test model', active: true, provider: 'wavespeed' },
      after: { name: 'Renamed', active: false, provider: 'replicate' },
      reason: 'moving providers',
    });

    const back = await app.inject({
      method: 'PATCH',
      url: `/api/v1/admin/models/${key}`,
      headers: adminAuth,
      payload: { active: true },
    });
    expect(back.statusCode).toBe(200);
    expect(await publicModel(app, key)).toMatchObject({ price_credits: 10 });
  });

  it('takes new parameters that fit the prices; refuses those that do not, and bad ones', async () => {
    const key = await createModel();
    const patch = (payload: Record<string, unknown>) =>
      app.inject({
        method: 'PATCH',
        url: `/api/v1/admin/models/${key}`,
        headers: adminAuth,
        payload,
      });
    const fits = await patch({
      parameters: [
        {
          name: 'size',
          label: 'Size',
          type: 'enum',
          values: ['small', 'large', 'huge'],
          default: 'large',
        },
      ],
    });
    expect(fits.statusCode).toBe(200);
    expect(await publicModel(app, key)).toMatchObject({ price_credits: 25 });

    const unfit = await patch({
      parameters: [
        { name: 'size', label: 'Size', type: 'enum', values: ['small'], default: 'small' },
      ],
    });
    expect(unfit.statusCode).toBe(422);
    expect(unfit.json().errors[0]).toMatchObject({ field: 'body.parameters' });

    const badDefault = await patch({
      parameters: [
        { name: 'size', label: 'Size', type: 'enum', values: ['small', 'large'], default: 'x' },
      ],
    });
    expect(badDefault.statusCode).toBe(422);
    expect(badDefault.json().errors[0]).toMatchObject({ field: 'body.parameters.0.default' });

    expect((await patch({})).statusCode).toBe(422);
    expect((await patch({ max_references: -1 })).statusCode).toBe(422);
  });

  it('answers 404 for an unknown model', async () => {
    const response = await app.inject({
      method: 'PATCH',
      url: `/api/v1/admin/models/${newKey()}`,
      headers: adminAuth,
      payload: { active: false },
    });
    expect(response.statusCode).toBe(404);
    expect(response.json().code).toBe('model_not_found');
  });
});

describe('GET /api/v1/admin/models', () => {
  it('lists inactive models too, each with its routes and whether it could be generated now', async () => {
    const key = await createModel(newKey(), { active: false });
    expect(await adminModel(key)).toMatchObject({
      active: false,
      routes: [
        {
          priority: 1,
          provider: 'wavespeed',
          provider_model: 'test/text-to-image',
          provider_edit_model: 'test/edit',
        },
      ],
      // This app runs every model on the offline provider (GENERATION_PROVIDER=local).
      available: true,
      unavailable_reason: null,
    });
    const noAccount = await buildTestApp({ ...operatorSettings, GENERATION_PROVIDER: 'catalog' });
    try {
      const response = await noAccount.inject({ url: '/api/v1/admin/models', headers: adminAuth });
      expect(
        (response.json().models as { key: string }[]).find((model) => model.key === key),
      ).toMatchObject({ available: false, unavailable_reason: 'no_account' });
    } finally {
      await noAccount.close();
    }
  });
});

describe('GET /api/v1/admin/models/{key}/prices', () => {
  it('lists every price the model had, newest first, the replaced ones with when; 404 for an unknown model', async () => {
    const key = await createModel();
    const replaced = await app.inject({
      method: 'PUT',
      url: `/api/v1/admin/models/${key}/prices`,
      headers: adminAuth,
      payload: { prices: [{ conditions: {}, credits: 12 }], reason: 'costs went up' },
    });
    expect(replaced.statusCode).toBe(200);
    const response = await app.inject({
      url: `/api/v1/admin/models/${key}/prices`,
      headers: adminAuth,
    });
    expect(response.statusCode).toBe(200);
    const { prices } = response.json() as {
      prices: { credits: number; valid_from: string; valid_to: string | null }[];
    };
    expect(prices.map((price) => price.credits)).toEqual([12, 10, 25]);
    const [current, ...old] = prices;
    expect(current).toMatchObject({ conditions: {}, valid_to: null, id: expect.any(Number) });
    expect(old.map((price) => price.valid_to)).toEqual([expect.any(String), expect.any(String)]);
    for (const price of old) {
      expect(Date.parse(price.valid_to as string)).toBeGreaterThan(Date.parse(price.valid_from));
      expect(Date.parse(price.valid_to as string)).toBeLessThanOrEqual(
        Date.parse(current?.valid_from as string) + 1,
      );
    }
    expect(old[1]).toMatchObject({ conditions: { size: 'large' } });

    const missing = await app.inject({
      url: `/api/v1/admin/models/${newKey()}/prices`,
      headers: adminAuth,
    });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().code).toBe('model_not_found');
  });
});

describe('PUT /api/v1/admin/models/{key}/prices', () => {
  it('closes the open prices and opens the new ones, keeping history, audited', async () => {
    const key = await createModel();
    const response = await app.inject({
      method: 'PUT',
      url: `/api/v1/admin/models/${key}/prices`,
      headers: adminAuth,
      payload: { prices: [{ conditions: {}, credits: 12 }], reason: 'costs went up' },
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({
      prices: [{ conditions: {}, credits: 12 }],
      price_history: 3,
    });
    expect(await publicModel(app, key)).toMatchObject({ price_credits: 12 });
    const history = await selectRows<{
      credits: number;
      open: boolean;
      closed_after_opened: boolean;
    }>(
      database.db,
      sql`SELECT p.credits, p.valid_to IS NULL AS open,
                 (p.valid_to IS NULL OR p.valid_to > p.valid_from) AS closed_after_opened
          FROM model_prices p JOIN model_catalog m ON m.id = p.model_id
          WHERE m.key = ${key} ORDER BY p.id`,
    );
    expect(history).toEqual([
      { credits: 10, open: false, closed_after_opened: true },
      { credits: 25, open: false, closed_after_opened: true },
      { credits: 12, open: true, closed_after_opened: true },
    ]);
    const [audit] = await auditOf(response.headers['x-request-id'] as string);
    expect(audit).toMatchObject({
      action: 'model.prices',
      subject_id: key,
      before: { prices: [{ credits: 10 }, { credits: 25 }] },
      after: { prices: [{ credits: 12 }] },
      reason: 'costs went up',
    });
  });

  it('refuses prices that do not fit the model (422) and unknown models (404)', async () => {
    const key = await createModel();
    const put = (target: string, prices: unknown) =>
      app.inject({
        method: 'PUT',
        url: `/api/v1/admin/models/${target}/prices`,
        headers: adminAuth,
        payload: { prices },
      });
    expect((await put(key, [{ conditions: { size: 'large' }, credits: 5 }])).statusCode).toBe(422);
    expect((await put(key, [{ conditions: { size: 'x' }, credits: 5 }])).statusCode).toBe(422);
    expect((await put(key, [{ conditions: {}, credits: -5 }])).statusCode).toBe(422);
    expect((await put(key, [])).statusCode).toBe(422);
    const missing = await put(newKey(), [{ conditions: {}, credits: 5 }]);
    expect(missing.statusCode).toBe(404);
    expect(missing.json().code).toBe('model_not_found');
    expect(await adminModel(key)).toMatchObject({ price_history: 2 });
  });

  it('a generation keeps the price it was accepted at; the next one pays the new price', async () => {
    const key = await createModel();
    const telegramId = freshTelegramId();
    await app.inject({
      method: 'POST',
      url: '/api/v1/users/sync',
      headers: botAuth,
      payload: { telegram_id: telegramId, first_name: 'Price' },
    });
    const credited = await app.inject({
      method: 'POST',
      url: `/api/v1/admin/users/${telegramId}/credits`,
      headers: adminAuth,
      payload: { amount: 100, reason: 'test credits' },
    });
    expect(credited.statusCode).toBe(201);
    const submit = (n: number) =>
      app.inject({
        method: 'POST',
        url: '/api/v1/generations',
        headers: { ...botAuth, 'idempotency-key': `price-${telegramId}-${n}` },
        payload: { telegram_id: telegramId, model: key, prompt: 'a cat', payment: 'credits' },
      });
    const first = await submit(1);
    expect(first.statusCode).toBe(202);
    expect(first.json().payment).toMatchObject({ method: 'credits', credits: 10 });

    const changed = await app.inject({
      method: 'PUT',
      url: `/api/v1/admin/models/${key}/prices`,
      headers: adminAuth,
      payload: { prices: [{ conditions: {}, credits: 15 }] },
    });
    expect(changed.statusCode).toBe(200);

    const kept = await app.inject({
      url: `/api/v1/generations/${first.json().id}`,
      headers: botAuth,
    });
    expect(kept.json().payment).toMatchObject({ method: 'credits', credits: 10 });
    const [paid] = await selectRows<{ credits: number; open: boolean }>(
      database.db,
      sql`SELECT p.credits, p.valid_to IS NULL AS open FROM generation_requests g
          JOIN model_prices p ON p.id = g.price_id WHERE g.id = ${first.json().id}`,
    );
    expect(paid).toEqual({ credits: 10, open: false });

    const second = await submit(2);
    expect(second.statusCode).toBe(202);
    expect(second.json().payment).toMatchObject({ credits: 15 });
    expect(second.json().balance).toBe(75);
  });
});

describe('the catalog in other API processes', () => {
  // On PostgreSQL the other process has a pool of its own (its own catalog cache); PGlite is one
  // process's database, so there the apps share one handle.
  let other: DatabaseHandle;
  let cached: FastifyInstance;

  beforeAll(async () => {
    other = onPostgres ? await openTestDatabase() : database;
    cached = await buildTestApp(
      { GENERATION_PROVIDER: 'local', CATALOG_CACHE_SECONDS: '2' },
      other,
    );
  });

  afterAll(async () => {
    await cached?.close();
    if (other !== database) await other?.close();
  });

  it('see a change within CATALOG_CACHE_SECONDS; one accepted meanwhile pays the new price', async () => {
    const key = await createModel();
    expect(await publicModel(cached, key)).toMatchObject({ price_credits: 10 });
    const telegramId = freshTelegramId();
    await cached.inject({
      method: 'POST',
      url: '/api/v1/users/sync',
      headers: botAuth,
      payload: { telegram_id: telegramId, first_name: 'Cached' },
    });
    await app.inject({
      method: 'POST',
      url: `/api/v1/admin/users/${telegramId}/credits`,
      headers: adminAuth,
      payload: { amount: 100, reason: 'test credits' },
    });

    const changed = await app.inject({
      method: 'PUT',
      url: `/api/v1/admin/models/${key}/prices`,
      headers: adminAuth,
      payload: { prices: [{ conditions: {}, credits: 30 }] },
    });
    expect(changed.statusCode).toBe(200);
    // The other process may still offer the old price from its copy, but accepting checks the
    // price under the lock: a closed one is refused and tried again with the catalog read anew.
    const accepted = await cached.inject({
      method: 'POST',
      url: '/api/v1/generations',
      headers: { ...botAuth, 'idempotency-key': `cached-${telegramId}` },
      payload: { telegram_id: telegramId, model: key, prompt: 'a dog', payment: 'credits' },
    });
    expect(accepted.statusCode).toBe(202);
    expect(accepted.json().payment).toMatchObject({ credits: 30 });
    await waitFor(
      () => publicModel(cached, key),
      (model) => model?.price_credits === 30,
      5_000,
    );

    await app.inject({
      method: 'PATCH',
      url: `/api/v1/admin/models/${key}`,
      headers: adminAuth,
      payload: { active: false },
    });
    await waitFor(
      () => publicModel(cached, key),
      (model) => model === undefined,
      5_000,
    );
  });
});
