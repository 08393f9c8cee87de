import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DatabaseHandle, openDatabase } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { currentSettings } from '../src/services/settings.ts';
import { adminAuth, botAuth, buildTestApp, miniAppAuth, testConfig } from './helpers/app.ts';
import {
  createPrivateDatabase,
  dropPrivateDatabase,
  freshTelegramId,
  needsPostgres,
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
import { waitFor } from './helpers/pipeline.ts';

// Overrides are global to a database: these tests change them on a database of their own, so
// no other test file (on PostgreSQL they share one database) sees them. Two apps stand for two
// API processes: on PostgreSQL each has its own pool, and a change reaches the other by NOTIFY.

let first: DatabaseHandle;
let second: DatabaseHandle;
let apiA: FastifyInstance;
let apiB: FastifyInstance;
let privateUrl: string | null = null;
const environment = { TRIAL_GENERATIONS: '3', GENERATION_PROVIDER: 'local', ...operatorSettings };

beforeAll(async () => {
  if (onPostgres && testDatabaseUrl) {
    privateUrl = await createPrivateDatabase('settings');
    first = await openDatabase({ kind: 'postgres', url: privateUrl, poolSize: 5 }, silentLogger);
    second = await openDatabase({ kind: 'postgres', url: privateUrl, poolSize: 5 }, silentLogger);
  } else {
    // PGlite is one process's database: both apps share the handle, as they would in one process.
    first = await openTestDatabase.embedded();
    second = first;
  }
  apiA = await buildTestApp(environment, first);
  apiB = await buildTestApp(environment, second);
}, 120_000);

afterAll(async () => {
  await apiA?.close();
  await apiB?.close();
  await first?.close();
  if (second !== first) await second?.close();
  if (privateUrl) {
    await dropPrivateDatabase(privateUrl);
  }
});

async function syncUser(app: FastifyInstance): Promise<number> {
  const telegramId = freshTelegramId();
  const response = await app.inject({
    method: 'POST',
    url: '/api/v1/users/sync',
    headers: botAuth,
    payload: { telegram_id: telegramId, first_name: 'Settings' },
  });
  expect(response.statusCode).toBe(201);
  return telegramId;
}

async function patch(app: FastifyInstance, values: Record<string, unknown>, reason = 'test') {
  return app.inject({
    method: 'PATCH',
    url: '/api/v1/admin/settings',
    headers: adminAuth,
    payload: { values, reason },
  });
}

describe('GET and PATCH /api/v1/admin/settings: access', () => {
  it.each([
    ['GET', undefined],
    ['PATCH', { values: { TRIAL_GENERATIONS: 5 }, reason: 'x' }],
  ] as const)('%s: no token 401, the bot 403, a Mini App user 403', async (method, payload) => {
    const url = '/api/v1/admin/settings';
    expect((await apiA.inject({ method, url, payload })).statusCode).toBe(401);
    expect((await apiA.inject({ method, url, payload, headers: botAuth })).statusCode).toBe(403);
    const miniApp = miniAppAuth(freshTelegramId());
    expect((await apiA.inject({ method, url, payload, headers: miniApp })).statusCode).toBe(403);
  });
});

describe('operators signed in with Telegram', () => {
  it('support reads the settings but may not change them; an admin may', async () => {
    const support = await operatorCookie(apiA, SUPPORT_OPERATOR_ID);
    const url = '/api/v1/admin/settings';
    expect((await apiA.inject({ url, headers: support })).statusCode).toBe(200);
    const payload = { values: { BROADCAST_RATE: 40 }, reason: 'faster' };
    const refused = await apiA.inject({ method: 'PATCH', url, headers: support, payload });
    expect(refused.statusCode).toBe(403);
    const admin = await operatorCookie(apiA, ADMIN_OPERATOR_ID);
    const changed = await apiA.inject({ method: 'PATCH', url, headers: admin, payload });
    expect(changed.statusCode).toBe(200);
    const [audit] = await selectRows<{ actor: string; role: string }>(
      first.db,
      sql`SELECT actor, role FROM audit_log
          WHERE request_id = ${changed.headers['x-request-id'] as string}`,
    );
    expect(audit).toEqual({ actor: `operator:${ADMIN_OPERATOR_ID}`, role: 'admin' });
    await patch(apiA, { BROADCAST_RATE: null });
  });
});

describe('GET /api/v1/admin/settings', () => {
  it('lists every setting with its value, default, source, bounds and meaning', async () => {
    const response = await apiA.inject({ url: '/api/v1/admin/settings', headers: adminAuth });
    expect(response.statusCode).toBe(200);
    const settings = response.json().settings as { key: string }[];
    expect(settings.map((setting) => setting.key)).toEqual([
      'TRIAL_GENERATIONS',
      'MAX_PARALLEL_GENERATIONS_PER_USER',
      'STARS_PACKAGES',
      'REFERRAL_PERCENT',
      'REFERRAL_JOIN_BONUS',
      'GENERATION_TIMEOUT_SECONDS',
      'PROVIDER_CONCURRENCY',
      'MIN_PROVIDER_BALANCE',
      'BROADCAST_RATE',
      'SUPPORT_CONTACT',
      'SUPPORT_CREDIT_LIMIT',
      'ADMIN_TELEGRAM_IDS',
      'SUPPORT_TELEGRAM_IDS',
      'RESULT_RETENTION_DAYS',
    ]);
    const byKey = Object.fromEntries(settings.map((setting) => [setting.key, setting]));
    expect(byKey.MIN_PROVIDER_BALANCE).toEqual({
      key: 'MIN_PROVIDER_BALANCE',
      type: 'integer',
      value: 0,
      default: 0,
      source: 'environment',
      bounds: { minimum: 0, maximum: 1_000_000 },
      meaning: expect.stringContaining('no guard'),
      updated_at: null,
      updated_by: null,
    });
    expect(byKey.BROADCAST_RATE).toMatchObject({ value: 25, default: 25 });
    expect(byKey.STARS_PACKAGES).toMatchObject({
      type: 'stars_packages',
      value: [
        { id: 'starter', credits: 150, stars: 100 },
        { id: 'popular', credits: 500, stars: 300 },
        { id: 'pro', credits: 1500, stars: 800 },
      ],
    });
    expect(byKey.PROVIDER_CONCURRENCY).toMatchObject({ value: { '*': 16 } });
    expect(byKey.SUPPORT_CONTACT).toMatchObject({ value: null, bounds: { nullable: true } });
  });
});

describe('PATCH /api/v1/admin/settings: validation', () => {
  it.each([
    [{ TRIAL_GENERATIONS: -1 }, 'body.values.TRIAL_GENERATIONS'],
    [{ TRIAL_GENERATIONS: 1.5 }, 'body.values.TRIAL_GENERATIONS'],
    [{ TRIAL_GENERATIONS: '4' }, 'body.values.TRIAL_GENERATIONS'],
    [{ MAX_PARALLEL_GENERATIONS_PER_USER: 0 }, 'body.values.MAX_PARALLEL_GENERATIONS_PER_USER'],
    [{ REFERRAL_PERCENT: 101 }, 'body.values.REFERRAL_PERCENT'],
    [{ STARS_PACKAGES: [] }, 'body.values.STARS_PACKAGES'],
    [{ STARS_PACKAGES: [{ id: 'a', credits: 1, stars: 0 }] }, 'body.values.STARS_PACKAGES'],
    [
      {
        STARS_PACKAGES: [
          { id: 'a', credits: 1, stars: 1 },
          { id: 'a', credits: 2, stars: 2 },
        ],
      },
      'body.values.STARS_PACKAGES',
    ],
    [{ PROVIDER_CONCURRENCY: { wavespeed: 4 } }, 'body.values.PROVIDER_CONCURRENCY'],
    [{ PROVIDER_CONCURRENCY: { '*': 1001 } }, 'body.values.PROVIDER_CONCURRENCY'],
    [{ SUPPORT_CONTACT: '' }, 'body.values.SUPPORT_CONTACT'],
    [{ SUPPORT_CONTACT: 42 }, 'body.values.SUPPORT_CONTACT'],
    [{ NO_SUCH_SETTING: 1 }, 'body.values.NO_SUCH_SETTING'],
  ])('%j is refused with 422 naming %s, and nothing changes', async (values, field) => {
    const response = await patch(apiA, { ...values, BROADCAST_RATE: 30 });
    expect(response.statusCode).toBe(422);
    expect(response.json()).toMatchObject({
      code: 'validation_failed',
      errors: [{ field, message: expect.any(String) }],
    });
    const listed = await apiA.inject({ url: '/api/v1/admin/settings', headers: adminAuth });
    const rate = listed.json().settings.find((s: { key: string }) => s.key === 'BROADCAST_RATE');
    expect(rate.value).toBe(25);
  });

  it('needs values and a reason', async () => {
    for (const payload of [
      { values: {}, reason: 'x' },
      { values: { TRIAL_GENERATIONS: 4 } },
      { values: { TRIAL_GENERATIONS: 4 }, reason: '' },
    ]) {
      const response = await apiA.inject({
        method: 'PATCH',
        url: '/api/v1/admin/settings',
        headers: adminAuth,
        payload,
      });
      expect(response.statusCode).toBe(422);
    }
  });
});

describe('PATCH /api/v1/admin/settings: changes', () => {
  it('a change through one process is applied by the other within seconds, audited', async () => {
    const telegramId = await syncUser(apiB);
    const trialOf = async (app: FastifyInstance) =>
      (await app.inject({ url: `/api/v1/users/${telegramId}/trial`, headers: botAuth })).json() as {
        limit: number;
      };
    // B has read the settings before the change: only the announcement can tell it.
    expect((await trialOf(apiB)).limit).toBe(3);

    const response = await patch(apiA, { TRIAL_GENERATIONS: 7 }, 'a promotion');
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body.changes).toEqual([
      {
        key: 'TRIAL_GENERATIONS',
        before: { value: 3, source: 'environment' },
        after: { value: 7, source: 'override' },
      },
    ]);
    expect(body.settings.find((s: { key: string }) => s.key === 'TRIAL_GENERATIONS')).toMatchObject(
      {
        value: 7,
        default: 3,
        source: 'override',
        updated_by: expect.stringMatching(/^admin:/),
        updated_at: expect.any(String),
      },
    );
    // The process that changed it applies it at once; the other within seconds (the fallback
    // re-read takes 10 s, longer than this wait).
    expect((await trialOf(apiA)).limit).toBe(7);
    await waitFor(
      () => trialOf(apiB),
      (trial) => trial.limit === 7,
      5_000,
    );
    const quote = await apiB.inject({
      method: 'POST',
      url: '/api/v1/generations/quote',
      headers: botAuth,
      payload: { telegram_id: telegramId, model: 'nano-banana' },
    });
    expect(quote.json().trial).toMatchObject({ limit: 7, remaining: 7 });

    const [audit] = await selectRows<{
      actor: string;
      role: string;
      action: string;
      before: unknown;
      after: unknown;
      reason: string;
    }>(
      first.db,
      sql`SELECT actor, role, action, before, after, reason FROM audit_log
          WHERE request_id = ${response.headers['x-request-id'] as string}`,
    );
    expect(audit).toEqual({
      actor: expect.stringMatching(/^admin:/),
      role: 'admin',
      action: 'settings.update',
      before: { TRIAL_GENERATIONS: { value: 3, source: 'environment' } },
      after: { TRIAL_GENERATIONS: { value: 7, source: 'override' } },
      reason: 'a promotion',
    });

    // null gives the environment's value back, in both processes.
    const reset = await patch(apiA, { TRIAL_GENERATIONS: null });
    expect(reset.json().changes[0]).toMatchObject({
      before: { value: 7, source: 'override' },
      after: { value: 3, source: 'environment' },
    });
    await waitFor(
      () => trialOf(apiB),
      (trial) => trial.limit === 3,
      5_000,
    );
  });

  it('a process that missed the announcement reads the change within seconds anyway', async (context) => {
    const why = 'PGlite is one process: its apps share one handle and one cache';
    if (needsPostgres(why) || !privateUrl) return context.skip(why);
    // A process whose LISTEN is not there (no watcher on this pool): only the re-read tells it.
    const deaf = await openDatabase(
      { kind: 'postgres', url: privateUrl, poolSize: 2 },
      silentLogger,
    );
    try {
      const ctx = { db: deaf.db, config: testConfig(environment) };
      expect((await currentSettings(ctx)).BROADCAST_RATE).toBe(25);
      expect((await patch(apiA, { BROADCAST_RATE: 50 })).statusCode).toBe(200);
      await waitFor(
        () => currentSettings(ctx),
        (settings) => settings.BROADCAST_RATE === 50,
        15_000,
      );
    } finally {
      await patch(apiA, { BROADCAST_RATE: null });
      await deaf.close();
    }
  }, 30_000);

  it('Stars packages, referral settings and the support contact are read from the registry', async () => {
    const packages = [{ id: 'mega', credits: 5000, stars: 2500 }];
    const response = await patch(apiA, {
      STARS_PACKAGES: packages,
      REFERRAL_PERCENT: 50,
      REFERRAL_JOIN_BONUS: 11,
      SUPPORT_CONTACT: ' @help_desk ',
    });
    expect(response.statusCode).toBe(200);
    try {
      await waitFor(
        async () =>
          (await apiB.inject({ url: '/api/v1/payments/stars/packages' })).json().packages as {
            id: string;
          }[],
        (offered) => offered.length === 1 && offered[0]?.id === 'mega',
        5_000,
      );
      const telegramId = await syncUser(apiB);
      const referrals = await apiB.inject({
        url: `/api/v1/users/${telegramId}/referrals`,
        headers: botAuth,
      });
      expect(referrals.json()).toMatchObject({ percent: 50, join_bonus: 11 });
      const confirm = await apiB.inject({
        method: 'POST',
        url: '/api/v1/payments/stars/confirm',
        headers: botAuth,
        payload: {
          telegram_id: telegramId,
          currency: 'XTR',
          total_amount: 2500,
          invoice_payload: 'stars:mega',
          telegram_payment_charge_id: `charge-${telegramId}`,
        },
      });
      expect(confirm.statusCode).toBe(201);
      expect(confirm.json()).toMatchObject({ credits: 5000 });
      const listed = await apiA.inject({ url: '/api/v1/admin/settings', headers: adminAuth });
      const contact = listed
        .json()
        .settings.find((s: { key: string }) => s.key === 'SUPPORT_CONTACT');
      expect(contact).toMatchObject({ value: '@help_desk', source: 'override' });
      // The bot reads it from GET /info (its /help), as the other process applies it.
      const info = await apiB.inject({ url: '/api/v1/info' });
      expect(info.json().support_contact).toBe('@help_desk');
    } finally {
      await patch(apiA, {
        STARS_PACKAGES: null,
        REFERRAL_PERCENT: null,
        REFERRAL_JOIN_BONUS: null,
        SUPPORT_CONTACT: null,
      });
    }
  });

  it('MAX_PARALLEL_GENERATIONS_PER_USER caps accepting', async () => {
    await patch(apiA, { MAX_PARALLEL_GENERATIONS_PER_USER: 1 });
    try {
      const telegramId = await syncUser(apiA);
      const submit = (n: number) =>
        apiA.inject({
          method: 'POST',
          url: '/api/v1/generations',
          headers: { ...botAuth, 'idempotency-key': `cap-${telegramId}-${n}` },
          payload: { telegram_id: telegramId, model: 'nano-banana', prompt: 'a cat' },
        });
      expect((await submit(1)).statusCode).toBe(202);
      const refused = await submit(2);
      expect(refused.statusCode).toBe(429);
      expect(refused.json()).toMatchObject({ limit: 1 });
    } finally {
      await patch(apiA, { MAX_PARALLEL_GENERATIONS_PER_USER: null });
    }
  });
});
