import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DatabaseHandle, openDatabase } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { encodePng } from '../src/providers/png.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { histogramPercentile, rollUpStatsDays } from '../src/services/admin-stats.ts';
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

/**
 * What GET /admin/stats answered before the rollups (migration 0030): every figure read straight
 * from its rows over the range. The answer must equal it for any range, whatever was rolled up and
 * whatever changed since; only the percentiles are over whole seconds (the rollup's histogram).
 */
async function fromTheRows(from: string, to: string) {
  const start = `${from}T00:00:00.000Z`;
  const end = new Date(Date.parse(`${to}T00:00:00.000Z`) + DAY_MS).toISOString();
  const within = (column: string) =>
    sql`${sql.raw(column)} >= ${start}::timestamptz AND ${sql.raw(column)} < ${end}::timestamptz`;
  const one = async (query: ReturnType<typeof sql>) =>
    (await selectRows<Record<string, unknown>>(database.db, query))[0] ?? {};
  const num = (value: unknown) => Number(value ?? 0);
  const users = await one(
    sql`SELECT count(*) AS total, count(*) FILTER (WHERE ${within('created_at')}) AS new,
               count(*) FILTER (WHERE ${within('last_seen_at')}) AS active,
               count(*) FILTER (WHERE ${within('created_at')} AND referred_by IS NOT NULL) AS referred
        FROM users`,
  );
  const groups = await selectRows<{ model: string; status: string; count: unknown }>(
    database.db,
    sql`SELECT m.key AS model, g.status, count(*) AS count
        FROM generation_requests g JOIN model_catalog m ON m.id = g.model_id
        WHERE ${within('g.created_at')} GROUP BY 1, 2 ORDER BY 1, 2`,
  );
  const seconds = `floor(extract(epoch FROM completed_at - created_at))`;
  const durations = await one(
    sql`SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ${sql.raw(seconds)}) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY ${sql.raw(seconds)}) AS p95
        FROM generation_requests
        WHERE ${within('created_at')} AND status = 'succeeded' AND completed_at IS NOT NULL`,
  );
  const ledger = await one(
    sql`SELECT coalesce(sum(amount) FILTER (WHERE kind = 'topup'), 0) AS sold,
               coalesce(-sum(amount) FILTER (WHERE kind IN ('generation_charge', 'generation_refund')), 0) AS spent,
               coalesce(-sum(amount) FILTER (WHERE kind IN ('payment_refund', 'referral_clawback')), 0) AS refunded,
               coalesce(sum(amount) FILTER (WHERE kind IN ('bonus', 'referral_bonus')
                                               OR (kind = 'admin_adjustment' AND amount > 0)), 0) AS free,
               count(*) FILTER (WHERE kind = 'referral_bonus') AS bonuses,
               coalesce(sum(amount) FILTER (WHERE kind = 'referral_bonus'), 0) AS bonus_credits
        FROM ledger_entries WHERE ${within('created_at')}`,
  );
  const paid = await one(
    sql`SELECT coalesce(sum(total_amount), 0) AS stars, count(*) AS count FROM payments
        WHERE ${within('created_at')} AND status = 'paid'`,
  );
  const trials = await one(
    sql`SELECT count(*) AS used FROM trial_uses WHERE ${within('used_at')} AND returned_at IS NULL`,
  );
  const daily = await selectRows<Record<string, unknown>>(
    database.db,
    sql`SELECT to_char(d.day, 'YYYY-MM-DD') AS date,
          (SELECT count(*) FROM users u WHERE (u.created_at AT TIME ZONE 'UTC')::date = d.day) AS new_users,
          (SELECT count(*) FROM generation_requests g WHERE (g.created_at AT TIME ZONE 'UTC')::date = d.day
             AND g.status = 'succeeded') AS generations_succeeded,
          (SELECT count(*) FROM generation_requests g WHERE (g.created_at AT TIME ZONE 'UTC')::date = d.day
             AND g.status = 'failed') AS generations_failed,
          (SELECT coalesce(sum(total_amount), 0) FROM payments p
             WHERE (p.created_at AT TIME ZONE 'UTC')::date = d.day AND p.status = 'paid') AS stars_received,
          (SELECT coalesce(-sum(amount), 0) FROM ledger_entries l
             WHERE (l.created_at AT TIME ZONE 'UTC')::date = d.day
               AND l.kind IN ('generation_charge', 'generation_refund')) AS credits_spent
        FROM generate_series(${from}::date, ${to}::date, interval '1 day') AS s(t)
        CROSS JOIN LATERAL (SELECT s.t::date AS day) d ORDER BY d.day`,
  );
  const byStatus: Record<string, number> = {
    queued: 0,
    running: 0,
    succeeded: 0,
    failed: 0,
    cancelled: 0,
  };
  const byModel: { model: string; total: number; succeeded: number; failed: number }[] = [];
  for (const row of groups) {
    byStatus[row.status] = (byStatus[row.status] ?? 0) + num(row.count);
    let model = byModel.find((m) => m.model === row.model);
    if (!model) {
      model = { model: row.model, total: 0, succeeded: 0, failed: 0 };
      byModel.push(model);
    }
    model.total += num(row.count);
    if (row.status === 'succeeded') model.succeeded += num(row.count);
    if (row.status === 'failed') model.failed += num(row.count);
  }
  const settled = (byStatus.succeeded ?? 0) + (byStatus.failed ?? 0);
  const fraction = (value: unknown) =>
    value === null || value === undefined ? null : Number(value);
  return {
    users: { total: num(users.total), new: num(users.new), active: num(users.active) },
    generations: {
      total: Object.values(byStatus).reduce((a, b) => a + b, 0),
      by_status: byStatus,
      by_model: byModel,
      success_rate: settled === 0 ? null : (byStatus.succeeded ?? 0) / settled,
      seconds_p50: fraction(durations.p50),
      seconds_p95: fraction(durations.p95),
    },
    money: {
      stars_received: num(paid.stars),
      payments: num(paid.count),
      credits_sold: num(ledger.sold),
      credits_spent: num(ledger.spent),
      credits_refunded: num(ledger.refunded),
      credits_given_free: num(ledger.free),
      free_generations_used: num(trials.used),
    },
    referrals: {
      new_referred_users: num(users.referred),
      bonuses_paid: num(ledger.bonuses),
      bonus_credits: num(ledger.bonus_credits),
    },
    daily: daily.map((row) => ({
      date: String(row.date),
      new_users: num(row.new_users),
      generations_succeeded: num(row.generations_succeeded),
      generations_failed: num(row.generations_failed),
      stars_received: num(row.stars_received),
      credits_spent: num(row.credits_spent),
    })),
  };
}

const rolledUpDays = async () =>
  (
    await selectRows<{ day: string }>(
      database.db,
      sql`SELECT to_char(day, 'YYYY-MM-DD') AS day FROM stats_days ORDER BY day`,
    )
  ).map((row) => row.day);

/** Moves a generation (and its trial use) `days` back in time, keeping how long it took. */
async function backdate(id: string, days: number): Promise<void> {
  const shift = sql`make_interval(days => ${days})`;
  await database.db.execute(
    sql`UPDATE generation_requests
        SET created_at = created_at - ${shift}, started_at = started_at - ${shift},
            completed_at = completed_at - ${shift}
        WHERE id = ${id}`,
  );
  await database.db.execute(
    sql`UPDATE trial_uses SET used_at = used_at - ${shift}, returned_at = returned_at - ${shift}
        WHERE generation_request_id = ${id}`,
  );
}

async function expectAsFromTheRows(from: string, to: string): Promise<void> {
  const response = await stats(`?from=${from}&to=${to}`);
  expect(response.statusCode, response.body).toBe(200);
  const { range: _range, ...body } = response.json();
  expect(body, `${from} … ${to}`).toEqual(await fromTheRows(from, to));
}

describe('GET /admin/stats: rolled-up days answer what the rows say', () => {
  it('closed days are rolled up once; late refunds, returns and syncs still count where they belong', async () => {
    // Earlier tests rolled up days this test now writes history into: forget those rows.
    await database.db.execute(sql`DELETE FROM stats_days`);
    // Past activity, placed before anything rolls those days up: a trial generation 5 days ago
    // that took 12.4 s, a paid one 4 days ago (20.9 s), a failed one 4 days ago, a payment 5 days
    // ago, a user who signed up (referred) 6 days ago and was last seen 3 days ago.
    const referrer = await sync();
    const old = await sync({ referral_code: referrer.code });
    const buyer = await sync();
    await database.db.execute(
      sql`UPDATE users SET created_at = now() - interval '6 days', last_seen_at = now() - interval '3 days'
          WHERE telegram_id = ${old.telegramId}`,
    );
    const oldPayment = payment(buyer.telegramId);
    expect((await post('/api/v1/payments/stars/confirm', oldPayment)).statusCode).toBe(201);
    await database.db.execute(
      sql`UPDATE payments SET created_at = created_at - interval '5 days'
          WHERE telegram_payment_charge_id = ${oldPayment.telegram_payment_charge_id}`,
    );
    const trial = await accepted(old.telegramId, 'trial');
    await succeeded(trial, 12.4);
    await backdate(trial, 5);
    const paid = await accepted(buyer.telegramId, 'credits');
    await succeeded(paid, 20.9);
    await backdate(paid, 4);
    const failed = await accepted(buyer.telegramId, 'credits');
    expect(
      await recordGenerationFailure(settle(), failed, { code: 'provider_failed', message: 'no' }),
    ).toBe(true);
    await backdate(failed, 4);
    // One still running 7 days ago: its day cannot be rolled up until it settles.
    const running = await accepted(buyer.telegramId, 'credits');
    await backdate(running, 7);

    // The worker's rounds (31 days each) roll up every closed day of the last year but the
    // unsettled one, once.
    const rounds: number[] = [];
    for (let written = -1; written !== 0; ) {
      written = await rollUpStatsDays(database.db);
      rounds.push(written);
    }
    expect(Math.max(...rounds)).toBe(31);
    expect(rounds.reduce((a, b) => a + b, 0)).toBe(365);
    const rolled = await rolledUpDays();
    for (const offset of [-1, -3, -4, -5, -6]) expect(rolled).toContain(day(offset));
    expect(rolled).not.toContain(day(-7));
    expect(rolled).not.toContain(day(0));
    for (const [from, to] of [
      [day(-8), day(0)],
      [day(-5), day(-4)],
      [day(-7), day(-7)],
      [day(-29), day(0)],
      [day(-365), day(0)],
    ] as const) {
      await expectAsFromTheRows(from, to);
    }

    // Now the late changes, all booked today: the old payment is refunded, the old trial
    // generation and the old paid one are given back by an operator, the old user syncs again.
    const refund = await post('/api/v1/payments/stars/refund', {
      telegram_id: buyer.telegramId,
      telegram_payment_charge_id: oldPayment.telegram_payment_charge_id,
      total_amount: 50,
      currency: 'XTR',
    });
    expect(refund.statusCode, refund.body).toBe(200);
    for (const id of [trial, paid]) {
      const given = await post(
        `/api/v1/admin/generations/${id}/refund`,
        { reason: 'stats test' },
        adminAuth,
      );
      expect(given.statusCode, given.body).toBe(200);
    }
    const again = await post('/api/v1/users/sync', { telegram_id: old.telegramId });
    expect(again.statusCode, again.body).toBe(200);
    // The running one settles: its day can be rolled up from now on.
    expect(
      await recordGenerationFailure(settle(), running, { code: 'provider_failed', message: 'no' }),
    ).toBe(true);
    const beforeRefunds = await rolledUpDays();
    for (const [from, to] of [
      [day(-8), day(0)],
      [day(-5), day(-5)],
      [day(-4), day(-3)],
      [day(-7), day(-7)],
      [day(0), day(0)],
      [day(-365), day(0)],
    ] as const) {
      await expectAsFromTheRows(from, to);
    }
    // The rows written before the changes were not rewritten; the settled day got its row.
    expect(await rolledUpDays()).toEqual([...beforeRefunds, day(-7)].sort());
    const fiveDaysAgo = (await stats(`?from=${day(-5)}&to=${day(-5)}`)).json();
    expect(fiveDaysAgo.money.stars_received).toBe(0);
    expect(fiveDaysAgo.money.free_generations_used).toBe(0);
    expect(fiveDaysAgo.generations.by_status.succeeded).toBe(1);
    const threeDaysAgo = (await stats(`?from=${day(-3)}&to=${day(-3)}`)).json();
    expect(threeDaysAgo.users.active).toBe(0);
  });

  it('two processes rolling up the same days at once write each day once, with the same numbers', async () => {
    await database.db.execute(sql`DELETE FROM stats_days`);
    const range = `?from=${day(-40)}&to=${day(0)}`;
    const answers = await Promise.all([
      stats(range),
      stats(range),
      rollUpStatsDays(database.db),
      stats(range),
    ]);
    const bodies = [answers[0], answers[1], answers[3]].map((answer) => {
      const response = answer as Awaited<ReturnType<typeof stats>>;
      expect(response.statusCode, response.body).toBe(200);
      return response.json();
    });
    expect(bodies[1]).toEqual(bodies[0]);
    expect(bodies[2]).toEqual(bodies[0]);
    const [counts] = await selectRows<{ rows: unknown; days: unknown }>(
      database.db,
      sql`SELECT count(*) AS rows, count(DISTINCT day) AS days FROM stats_days`,
    );
    expect(Number(counts?.rows)).toBe(Number(counts?.days));
    await expectAsFromTheRows(day(-40), day(0));
  });
});

describe('GET /admin/stats: a day without its row', () => {
  it('is read from its closed hours, the unsettled hour live, until it settles', async () => {
    const yesterday = day(-1);
    await database.db.execute(sql`DELETE FROM stats_days WHERE day >= ${yesterday}::date`);
    await database.db.execute(sql`DELETE FROM stats_hours`);
    const user = await sync();
    await post(
      `/api/v1/admin/users/${user.telegramId}/credits`,
      { amount: 100, reason: 'stats test' },
      adminAuth,
    );
    // Moves a generation to a time of yesterday, keeping how long it took.
    const moveTo = async (id: string, time: string) => {
      await database.db.execute(
        sql`UPDATE generation_requests
            SET completed_at = ${time}::timestamptz + (completed_at - created_at),
                started_at = ${time}::timestamptz + (started_at - created_at),
                created_at = ${time}::timestamptz
            WHERE id = ${id}`,
      );
    };
    const early = await accepted(user.telegramId, 'credits');
    await succeeded(early, 7.5);
    await moveTo(early, `${yesterday}T03:20:00Z`);
    const stuck = await accepted(user.telegramId, 'credits');
    await moveTo(stuck, `${yesterday}T10:20:00Z`);

    await expectAsFromTheRows(yesterday, day(0));
    await expectAsFromTheRows(day(-3), yesterday);
    const hours = async () =>
      (
        await selectRows<{ hour: string }>(
          database.db,
          sql`SELECT to_char(hour AT TIME ZONE 'UTC', 'HH24') AS hour FROM stats_hours
              WHERE (hour AT TIME ZONE 'UTC')::date = ${yesterday}::date ORDER BY hour`,
        )
      ).map((row) => row.hour);
    expect(await rolledUpDays()).not.toContain(yesterday);
    const written = await hours();
    expect(written).toHaveLength(23);
    expect(written).not.toContain('10');
    const early3 = (await stats(`?from=${yesterday}&to=${yesterday}`)).json();
    expect(early3.generations.by_status).toMatchObject({ succeeded: 1, queued: 1 });
    expect(early3.generations.seconds_p50).toBe(7);

    // It settles: the day gets its row, and the worker's round deletes its hours.
    expect(
      await recordGenerationFailure(settle(), stuck, { code: 'provider_failed', message: 'no' }),
    ).toBe(true);
    await expectAsFromTheRows(yesterday, day(0));
    expect(await rolledUpDays()).toContain(yesterday);
    await rollUpStatsDays(database.db);
    expect(await hours()).toEqual([]);
    await expectAsFromTheRows(day(-3), day(0));
  });
});

describe('GET /admin/stats: the percentiles of whole seconds', () => {
  it('are percentile_cont over the durations truncated to the second', () => {
    const histogram = (values: number[]) => {
      const map = new Map<number, number>();
      for (const value of values) map.set(value, (map.get(value) ?? 0) + 1);
      return map;
    };
    expect(histogramPercentile(new Map(), 0.5)).toBeNull();
    expect(histogramPercentile(histogram([7]), 0.95)).toBe(7);
    expect(histogramPercentile(histogram([4, 8]), 0.5)).toBe(6);
    expect(histogramPercentile(histogram([4, 8]), 0.95)).toBe(7.8);
    expect(histogramPercentile(histogram([1, 2, 2, 2, 9]), 0.5)).toBe(2);
    // 20 values 1…20: position 0.95 × 19 = 18.05 → 19 + 0.05 × (20 − 19).
    const twenty = histogram(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(histogramPercentile(twenty, 0.95)).toBeCloseTo(19.05, 10);
    expect(histogramPercentile(twenty, 0.5)).toBe(10.5);
  });
});
