import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DatabaseHandle, openDatabase } from '../src/db/client.ts';
import { encodePng } from '../src/providers/png.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import {
  recordGenerationFailure,
  recordGenerationSuccess,
} from '../src/services/generation-outcomes.ts';
import { LocalResultStore } from '../src/storage/local.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { adminAuth, botAuth, buildTestApp, miniAppAuth, testConfig } from './helpers/app.ts';
import {
  createPrivateDatabase,
  dropPrivateDatabase,
  freshTelegramId,
  onPostgres,
  openTestDatabase,
  silentLogger,
  testDatabaseUrl,
} from './helpers/database.ts';
import {
  ADMIN_OPERATOR_ID,
  operatorCookie,
  operatorSettings,
  SUPPORT_OPERATOR_ID,
} from './helpers/operators.ts';
import { createTestModel, submit, type TestModel } from './helpers/pipeline.ts';

// GET /admin/stats. The numbers are exact, so the scenario runs on a database of its own (on
// PostgreSQL every test file shares one): whatever it holds, this file put there.

const PRICE = 10;
const DAY_MS = 86_400_000;
let database: DatabaseHandle;
let app: FastifyInstance;
let model: TestModel;
let privateUrl: string | null = null;
const provider = new ScriptedProvider();
const registry = new ProviderRegistry([provider], 'catalog');
const store = new LocalResultStore(tmpdir());
const settle = () => ({ db: database.db, config: testConfig({ TELEGRAM_BOT_TOKEN: '' }) });

beforeAll(async () => {
  if (onPostgres && testDatabaseUrl) {
    privateUrl = await createPrivateDatabase('stats');
    database = await openDatabase({ kind: 'postgres', url: privateUrl, poolSize: 5 }, silentLogger);
  } else {
    database = await openTestDatabase.embedded();
  }
  app = await buildTestApp(
    {
      STARS_PACKAGES: 'small:100:50',
      REFERRAL_PERCENT: '10',
      REFERRAL_JOIN_BONUS: '0',
      TRIAL_GENERATIONS: '3',
      MAX_PARALLEL_GENERATIONS_PER_USER: '100',
      ...operatorSettings,
    },
    database,
    { providers: registry },
  );
  model = await createTestModel(database.db, {
    provider: provider.name,
    prices: [{ conditions: {}, credits: PRICE }],
  });
}, 120_000);

afterAll(async () => {
  await app?.close();
  await database?.close();
  if (privateUrl) {
    await dropPrivateDatabase(privateUrl);
  }
});

const post = (url: string, payload: Record<string, unknown>, headers = botAuth) =>
  app.inject({ method: 'POST', url, headers, payload });

async function sync(extra: Record<string, unknown> = {}) {
  const telegramId = freshTelegramId();
  const response = await post('/api/v1/users/sync', { telegram_id: telegramId, ...extra });
  expect(response.statusCode, response.body).toBe(201);
  return { telegramId, code: response.json().referral_code as string };
}

function payment(telegramId: number) {
  return {
    telegram_id: telegramId,
    telegram_payment_charge_id: `tg_${randomUUID()}`,
    provider_payment_charge_id: null,
    total_amount: 50,
    currency: 'XTR',
    invoice_payload: 'stars:small',
  };
}

async function accepted(telegramId: number, payment: 'credits' | 'trial'): Promise<string> {
  const response = await submit(app, {
    telegram_id: telegramId,
    model: model.key,
    prompt: 'a lighthouse',
    payment,
  });
  expect(response.statusCode, response.body).toBe(202);
  return response.json().id;
}

async function succeeded(id: string, seconds: number): Promise<void> {
  expect(
    await recordGenerationSuccess(settle(), store, id, {
      images: [{ data: encodePng(4, 4, new Uint8Array(48).fill(200)), mimeType: 'image/png' }],
    }),
  ).toBe(true);
  // How long it took is what the percentiles read: set it exactly.
  await database.db.execute(
    sql`UPDATE generation_requests SET created_at = completed_at - make_interval(secs => ${seconds})
        WHERE id = ${id}`,
  );
}

const stats = (query = '', headers: Record<string, string> = adminAuth) =>
  app.inject({ method: 'GET', url: `/api/v1/admin/stats${query}`, headers });

const day = (offset: number) => new Date(Date.now() + offset * DAY_MS).toISOString().slice(0, 10);

describe('GET /admin/stats: the numbers of a seeded scenario', () => {
  it('counts users, generations, money and referrals exactly, with a daily series', async () => {
    const referrer = await sync();
    const referee = await sync({ referral_code: referrer.code });
    const payer = await sync();
    // The payer joined two days ago (in the three-day range, not in today's).
    await database.db.execute(
      sql`UPDATE users SET created_at = now() - interval '2 days' WHERE telegram_id = ${payer.telegramId}`,
    );

    // Stars: the referee pays once (its referrer earns 10%), the payer twice, one refunded.
    expect(
      (await post('/api/v1/payments/stars/confirm', payment(referee.telegramId))).statusCode,
    ).toBe(201);
    const kept = payment(payer.telegramId);
    const refunded = payment(payer.telegramId);
    expect((await post('/api/v1/payments/stars/confirm', kept)).statusCode).toBe(201);
    expect((await post('/api/v1/payments/stars/confirm', refunded)).statusCode).toBe(201);
    const refund = await post('/api/v1/payments/stars/refund', {
      telegram_id: payer.telegramId,
      telegram_payment_charge_id: refunded.telegram_payment_charge_id,
      total_amount: 50,
      currency: 'XTR',
    });
    expect(refund.statusCode, refund.body).toBe(200);

    // An operator gives the payer 30 credits and takes back 5.
    for (const amount of [30, -5]) {
      const adjusted = await post(
        `/api/v1/admin/users/${payer.telegramId}/credits`,
        { amount, reason: 'stats test' },
        adminAuth,
      );
      expect(adjusted.statusCode, adjusted.body).toBeLessThan(300);
    }

    // Generations: the payer's three paid ones (one succeeds in 4 s, one fails and is refunded,
    // one stays queued), the referee's trial succeeds in 8 s.
    const ok = await accepted(payer.telegramId, 'credits');
    const failed = await accepted(payer.telegramId, 'credits');
    await accepted(payer.telegramId, 'credits');
    const trial = await accepted(referee.telegramId, 'trial');
    await succeeded(ok, 4);
    await succeeded(trial, 8);
    expect(
      await recordGenerationFailure(settle(), failed, {
        code: 'provider_failed',
        message: 'the provider said no',
      }),
    ).toBe(true);

    const response = await stats(`?from=${day(-2)}&to=${day(0)}`);
    expect(response.statusCode, response.body).toBe(200);
    const body = response.json();
    expect(body.range).toEqual({ from: day(-2), to: day(0), days: 3 });
    expect(body.users).toEqual({ total: 3, new: 3, active: 3 });
    expect(body.generations).toEqual({
      total: 4,
      by_status: { queued: 1, running: 0, succeeded: 2, failed: 1, cancelled: 0 },
      by_model: [{ model: model.key, total: 4, succeeded: 2, failed: 1 }],
      success_rate: 2 / 3,
      seconds_p50: 6,
      seconds_p95: 7.8,
    });
    expect(body.money).toEqual({
      stars_received: 100,
      payments: 2,
      credits_sold: 300,
      credits_spent: 20,
      credits_refunded: 100,
      credits_given_free: 40,
      free_generations_used: 1,
    });
    expect(body.referrals).toEqual({ new_referred_users: 1, bonuses_paid: 1, bonus_credits: 10 });
    expect(body.daily).toEqual([
      {
        date: day(-2),
        new_users: 1,
        generations_succeeded: 0,
        generations_failed: 0,
        stars_received: 0,
        credits_spent: 0,
      },
      {
        date: day(-1),
        new_users: 0,
        generations_succeeded: 0,
        generations_failed: 0,
        stars_received: 0,
        credits_spent: 0,
      },
      {
        date: day(0),
        new_users: 2,
        generations_succeeded: 2,
        generations_failed: 1,
        stars_received: 100,
        credits_spent: 20,
      },
    ]);

    // Today only: the payer is not new; by default the last 30 days, today last.
    const today = (await stats(`?from=${day(0)}&to=${day(0)}`)).json();
    expect(today.users).toEqual({ total: 3, new: 2, active: 3 });
    expect(today.daily).toHaveLength(1);
    const byDefault = (await stats()).json();
    expect(byDefault.range).toEqual({ from: day(-29), to: day(0), days: 30 });
    expect(byDefault.daily).toHaveLength(30);
    expect(byDefault.money).toEqual(body.money);
    // A range before anything happened: zeros, and no rates.
    const empty = (await stats('?from=2020-01-01&to=2020-01-31')).json();
    expect(empty.users).toEqual({ total: 3, new: 0, active: 0 });
    expect(empty.generations.total).toBe(0);
    expect(empty.generations.success_rate).toBeNull();
    expect(empty.generations.seconds_p50).toBeNull();
    expect(empty.money.credits_spent).toBe(0);
    expect(empty.daily).toHaveLength(31);
  });
});

describe('GET /admin/stats: range validation', () => {
  it.each([
    ['?from=2026-13-01', 'a month that does not exist'],
    ['?from=2026-02-30&to=2026-03-01', 'a day that does not exist'],
    ['?from=yesterday', 'not a date'],
    ['?from=2026-03-02&to=2026-03-01', 'from after to'],
    ['?from=2024-01-01&to=2025-01-01', '367 days'],
  ])('%s (%s): 422', async (query) => {
    const response = await stats(query);
    expect(response.statusCode, response.body).toBe(422);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(response.json().code).toBe('validation_failed');
  });

  it('366 days is allowed', async () => {
    expect((await stats('?from=2024-01-01&to=2024-12-31')).json().range.days).toBe(366);
  });
});

describe('GET /admin/stats: access', () => {
  it('401 without a token, 403 for the bot and a Mini App user, 200 for support and admin operators', async () => {
    const none = await app.inject({ url: '/api/v1/admin/stats' });
    expect(none.statusCode).toBe(401);
    expect((await stats('', botAuth)).statusCode).toBe(403);
    expect((await stats('', miniAppAuth(freshTelegramId()))).statusCode).toBe(403);
    const support = await stats('', await operatorCookie(app, SUPPORT_OPERATOR_ID));
    expect(support.statusCode, support.body).toBe(200);
    const admin = await stats('', await operatorCookie(app, ADMIN_OPERATOR_ID));
    expect(admin.statusCode, admin.body).toBe(200);
  });
});
