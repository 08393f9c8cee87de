import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { recordGenerationFailure } from '../src/services/generation-outcomes.ts';
import { isPrivateAddress, referenceUrlProblem } from '../src/services/reference-urls.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { botAuth, buildTestApp, miniAppAuth, testConfig } from './helpers/app.ts';
import { freshTelegramId, needsPostgres, sharedDatabase } from './helpers/database.ts';
import {
  balanceOf,
  createTestModel,
  entriesFor,
  generation,
  submit,
  type TestModel,
  userWithCredits,
} from './helpers/pipeline.ts';

let database: DatabaseHandle;
let app: FastifyInstance;
let trialApp: FastifyInstance;
let model: TestModel;
const provider = new ScriptedProvider();
const registry = new ProviderRegistry([provider], 'catalog');

beforeAll(async () => {
  database = await sharedDatabase();
  // No worker runs here: these tests look at what is accepted, queued and refused.
  app = await buildTestApp(
    { TRIAL_GENERATIONS: '0', MAX_PARALLEL_GENERATIONS_PER_USER: '2' },
    undefined,
    {
      providers: registry,
    },
  );
  trialApp = await buildTestApp(
    { TRIAL_GENERATIONS: '1', MAX_PARALLEL_GENERATIONS_PER_USER: '10' },
    undefined,
    { providers: registry },
  );
  model = await createTestModel(database.db, { provider: provider.name, maxPromptLength: 40 });
});

afterAll(async () => {
  await app.close();
  await trialApp.close();
});

describe('POST /api/v1/generations/quote', () => {
  it('prices the parameters, says whether a free generation applies, and shows the balance', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 12);
    const quote = (parameters: Record<string, string>, on = app) =>
      on.inject({
        method: 'POST',
        url: '/api/v1/generations/quote',
        headers: botAuth,
        payload: { telegram_id: telegramId, model: model.key, parameters },
      });
    const square = await quote({});
    expect(square.statusCode, square.body).toBe(200);
    expect(square.json()).toMatchObject({
      model: model.key,
      parameters: { aspect_ratio: '1:1' },
      price_credits: 10,
      balance: 12,
      payment_method: 'credits',
    });
    const wide = (await quote({ aspect_ratio: '16:9' })).json();
    expect(wide).toMatchObject({ price_credits: 15, payment_method: null });
    const withTrial = (await quote({}, trialApp)).json();
    expect(withTrial).toMatchObject({
      payment_method: 'trial',
      trial: { available: true, remaining: 1 },
    });

    const bad = await quote({ aspect_ratio: '4:3' });
    expect(bad.statusCode).toBe(422);
    expect(bad.json().errors).toEqual([
      { field: 'body.parameters.aspect_ratio', message: 'must be one of 1:1, 16:9, 9:16' },
    ]);
    const unknownUser = await app.inject({
      method: 'POST',
      url: '/api/v1/generations/quote',
      headers: botAuth,
      payload: { telegram_id: freshTelegramId(), model: model.key },
    });
    expect(unknownUser.statusCode).toBe(404);
  });
});

describe('POST /api/v1/generations', () => {
  it('charges the price and queues the request, its references and its job in one go', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 40);
    const response = await submit(app, {
      telegram_id: telegramId,
      model: model.key,
      prompt: '  a lighthouse at dusk  ',
      parameters: { aspect_ratio: '16:9' },
      references: ['https://93.184.215.14/ref.png', 'AgACAgIAAxkBAAIBQ2ZzYXNkZmFzZGZhc2Rm'],
    });
    expect(response.statusCode, response.body).toBe(202);
    const body = response.json();
    expect(body).toMatchObject({
      telegram_id: telegramId,
      model: model.key,
      prompt: 'a lighthouse at dusk',
      parameters: { aspect_ratio: '16:9' },
      references: [
        { kind: 'url', value: 'https://93.184.215.14/ref.png' },
        { kind: 'telegram_file', value: 'AgACAgIAAxkBAAIBQ2ZzYXNkZmFzZGZhc2Rm' },
      ],
      status: 'queued',
      payment: { method: 'credits', credits: 15, refunded: false },
      balance: 25,
      results: [],
      error: null,
    });
    expect(body.queue_position).toBeGreaterThanOrEqual(1);
    expect(Date.parse(body.deadline_at)).toBeGreaterThan(Date.parse(body.created_at));
    expect(await balanceOf(app, telegramId)).toBe(25);
    expect(await entriesFor(database.db, body.id)).toEqual([
      { kind: 'generation_charge', amount: -15 },
    ]);
    expect((await generation(app, body.id)).status).toBe('queued');
  });

  it('uses a free generation while one is left, then credits', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(trialApp, telegramId, 10);
    const first = await submit(trialApp, {
      telegram_id: telegramId,
      model: model.key,
      prompt: 'one',
    });
    expect(first.statusCode, first.body).toBe(202);
    expect(first.json()).toMatchObject({
      payment: { method: 'trial', credits: 0 },
      balance: 10,
      trial: { used: 1, remaining: 0, available: false },
    });
    expect(await entriesFor(database.db, first.json().id)).toEqual([]);
    const second = await submit(trialApp, {
      telegram_id: telegramId,
      model: model.key,
      prompt: 'two',
    });
    expect(second.json()).toMatchObject({
      payment: { method: 'credits', credits: 10 },
      balance: 0,
    });
    const asked = await submit(trialApp, {
      telegram_id: telegramId,
      model: model.key,
      prompt: 'three',
      payment: 'trial',
    });
    expect(asked.statusCode).toBe(409);
    expect(asked.json().code).toBe('trial_unavailable');
  });

  it('refuses what the balance does not cover with 402 and stores nothing', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 14);
    const response = await submit(app, {
      telegram_id: telegramId,
      model: model.key,
      prompt: 'too dear',
      parameters: { aspect_ratio: '16:9' },
    });
    expect(response.statusCode).toBe(402);
    expect(response.json()).toMatchObject({
      code: 'insufficient_credits',
      balance: 14,
      required: 15,
    });
    const list = await app.inject({
      method: 'GET',
      url: `/api/v1/users/${telegramId}/generations`,
      headers: botAuth,
    });
    expect(list.json().generations).toEqual([]);
    expect(await balanceOf(app, telegramId)).toBe(14);
  });

  it("names every field that breaks the model's rules", async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 100);
    const response = await submit(app, {
      telegram_id: telegramId,
      model: model.key,
      prompt: 'x'.repeat(41),
      parameters: { aspect_ratio: '5:4', style: 'noir' },
      references: [
        'https://93.184.215.14/a.png',
        'https://93.184.215.14/b.png',
        'https://93.184.215.14/c.png',
      ],
    });
    expect(response.statusCode).toBe(422);
    expect(response.headers['content-type']).toContain('application/problem+json');
    const fields = response.json().errors.map((error: { field: string }) => error.field);
    expect(fields.sort()).toEqual([
      'body.parameters.aspect_ratio',
      'body.parameters.style',
      'body.prompt',
      'body.references',
    ]);

    const unknownModel = await submit(app, {
      telegram_id: telegramId,
      model: 'no-such-model',
      prompt: 'x',
    });
    expect(unknownModel.statusCode).toBe(422);
    expect(unknownModel.json().errors[0].field).toBe('body.model');
    expect(await balanceOf(app, telegramId)).toBe(100);
  });

  it('refuses reference URLs that reach private or loopback networks', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 100);
    for (const url of [
      'https://127.0.0.1/a.png',
      'https://localhost/a.png',
      'https://10.0.0.8/a.png',
      'https://192.168.1.1/a.png',
      'https://169.254.169.254/latest/meta-data',
      'https://[::1]/a.png',
      'https://[::ffff:127.0.0.1]/a.png',
      'https://metadata.internal/x',
      'http://93.184.215.14/not-https.png',
      'https://user:secret@93.184.215.14/a.png',
    ]) {
      const response = await submit(app, {
        telegram_id: telegramId,
        model: model.key,
        prompt: 'ref',
        references: [url],
      });
      expect(response.statusCode, url).toBe(422);
      expect(response.json().errors).toEqual([
        { field: 'body.references.0', message: expect.any(String) },
      ]);
    }
    expect(await balanceOf(app, telegramId)).toBe(100);
  });

  it('resolves names and refuses one that points inside', async () => {
    expect(
      await referenceUrlProblem('https://cdn.example.com/a.png', async () => ['10.1.2.3']),
    ).toMatch(/private/);
    expect(
      await referenceUrlProblem('https://cdn.example.com/a.png', async () => ['93.184.215.14']),
    ).toBeNull();
    expect(
      await referenceUrlProblem('https://cdn.example.com/a.png', async () => [
        '93.184.215.14',
        '::1',
      ]),
    ).toMatch(/private/);
    expect(isPrivateAddress('172.31.255.255')).toBe(true);
    expect(isPrivateAddress('172.32.0.1')).toBe(false);
    expect(isPrivateAddress('fd00::1')).toBe(true);
    expect(isPrivateAddress('2606:4700::1111')).toBe(false);
  });

  it('caps active generations per user (429) and frees the slot when one ends', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 100);
    const accepted = [];
    for (const prompt of ['a', 'b']) {
      const response = await submit(app, { telegram_id: telegramId, model: model.key, prompt });
      expect(response.statusCode).toBe(202);
      accepted.push(response.json().id as string);
    }
    const third = await submit(app, { telegram_id: telegramId, model: model.key, prompt: 'c' });
    expect(third.statusCode).toBe(429);
    expect(third.json()).toMatchObject({
      code: 'too_many_active_generations',
      active: 2,
      limit: 2,
    });
    expect(third.headers['retry-after']).toBeDefined();
    expect(await balanceOf(app, telegramId)).toBe(80);

    const active = await app.inject({
      method: 'GET',
      url: `/api/v1/users/${telegramId}/generations/active`,
      headers: botAuth,
    });
    expect(active.json().generations.map((g: { id: string }) => g.id)).toEqual(accepted);

    await recordGenerationFailure(
      { db: database.db, config: testConfig() },
      accepted[0] as string,
      {
        code: 'provider_failed',
        message: 'test',
      },
    );
    const fourth = await submit(app, { telegram_id: telegramId, model: model.key, prompt: 'd' });
    expect(fourth.statusCode).toBe(202);
  });

  it('holds the cap under concurrent submits', async (context) => {
    if (needsPostgres('concurrent transactions need several connections')) return context.skip();
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 1000);
    const responses = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        submit(app, { telegram_id: telegramId, model: model.key, prompt: `p${i}` }),
      ),
    );
    const codes = responses.map((response) => response.statusCode).sort();
    expect(codes.filter((code) => code === 202)).toHaveLength(2);
    expect(codes.filter((code) => code === 429)).toHaveLength(10);
    expect(await balanceOf(app, telegramId)).toBe(980);
  });

  it('answers a retry with the same Idempotency-Key with the first generation, charged once', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 50);
    const key = randomUUID();
    const payload = { telegram_id: telegramId, model: model.key, prompt: 'once' };
    const first = await submit(app, payload, { 'idempotency-key': key });
    const again = await submit(app, payload, { 'idempotency-key': key });
    expect(first.statusCode).toBe(202);
    expect(again.statusCode).toBe(202);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json().id).toBe(first.json().id);
    expect(await balanceOf(app, telegramId)).toBe(40);
  });

  it('charges the new price when it changed after this process cached the model', async () => {
    const cached = await buildTestApp(
      { TRIAL_GENERATIONS: '0', CATALOG_CACHE_SECONDS: '3600' },
      undefined,
      { providers: registry },
    );
    try {
      const repriced = await createTestModel(database.db, {
        provider: provider.name,
        prices: [{ conditions: {}, credits: 10 }],
      });
      const telegramId = freshTelegramId();
      await userWithCredits(cached, telegramId, 100);
      const first = await submit(cached, {
        telegram_id: telegramId,
        model: repriced.key,
        prompt: 'a',
      });
      expect(first.json().payment.credits).toBe(10);
      // The operator closes the price and opens a new one; this process still holds the old.
      await database.db.execute(
        sql`UPDATE model_prices SET valid_to = now() WHERE model_id = ${repriced.id} AND valid_to IS NULL`,
      );
      await database.db.execute(
        sql`INSERT INTO model_prices (model_id, conditions, credits) VALUES (${repriced.id}, '{}'::jsonb, 12)`,
      );
      const second = await submit(cached, {
        telegram_id: telegramId,
        model: repriced.key,
        prompt: 'b',
      });
      expect(second.statusCode, second.body).toBe(202);
      expect(second.json()).toMatchObject({ payment: { credits: 12 }, balance: 78 });
      expect(await entriesFor(database.db, second.json().id)).toEqual([
        { kind: 'generation_charge', amount: -12 },
      ]);
    } finally {
      await cached.close();
    }
  });

  it('answers 503 when no provider account serves the model', async () => {
    const orphan = await createTestModel(database.db, { provider: 'nobody-has-this' });
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 50);
    const response = await submit(app, { telegram_id: telegramId, model: orphan.key, prompt: 'x' });
    expect(response.statusCode).toBe(503);
    expect(response.json().code).toBe('provider_unavailable');
    expect(await balanceOf(app, telegramId)).toBe(50);
  });
});

describe('reading generations', () => {
  it("pages through a user's generations newest first", async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 1000);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const response = await submit(app, {
        telegram_id: telegramId,
        model: model.key,
        prompt: `n${i}`,
      });
      ids.push(response.json().id);
      // Two may be active at once: end each so the next is accepted.
      await recordGenerationFailure({ db: database.db, config: testConfig() }, response.json().id, {
        code: 'provider_failed',
        message: 'test',
      });
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `?limit=2&cursor=${cursor}` : '?limit=2';
      const page = await app.inject({
        method: 'GET',
        url: `/api/v1/users/${telegramId}/generations${query}`,
        headers: botAuth,
      });
      expect(page.statusCode).toBe(200);
      seen.push(...page.json().generations.map((g: { id: string }) => g.id));
      cursor = page.json().next_cursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
    const bad = await app.inject({
      method: 'GET',
      url: `/api/v1/users/${telegramId}/generations?cursor=bm9wZQ`,
      headers: botAuth,
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ status: 400, code: 'invalid_cursor' });
  });

  it("shows a failed generation with its error and refund, and hides others' from a Mini App user", async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 10);
    const id = (
      await submit(app, { telegram_id: telegramId, model: model.key, prompt: 'x' })
    ).json().id;
    await recordGenerationFailure({ db: database.db, config: testConfig() }, id, {
      code: 'provider_failed',
      message: 'content policy',
    });
    const failed = await generation(app, id);
    expect(failed).toMatchObject({
      status: 'failed',
      error: { code: 'provider_failed', message: 'content policy' },
      payment: { method: 'credits', credits: 10, refunded: true },
    });
    expect(failed.completed_at).not.toBeNull();
    expect(await balanceOf(app, telegramId)).toBe(10);

    const asOwner = await app.inject({
      method: 'GET',
      url: `/api/v1/generations/${id}`,
      headers: miniAppAuth(telegramId),
    });
    expect(asOwner.statusCode).toBe(200);
    const asStranger = await app.inject({
      method: 'GET',
      url: `/api/v1/generations/${id}`,
      headers: miniAppAuth(freshTelegramId()),
    });
    expect(asStranger.statusCode).toBe(404);
    const missing = await app.inject({
      method: 'GET',
      url: `/api/v1/generations/${randomUUID()}`,
      headers: botAuth,
    });
    expect(missing.statusCode).toBe(404);
    // A failed generation has no image to serve.
    const noImage = await app.inject({ method: 'GET', url: `/api/v1/generations/${id}/images/0` });
    expect(noImage.statusCode).toBe(404);
    expect(noImage.json().code).toBe('image_not_found');
  });
});
