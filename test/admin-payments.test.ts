import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { type FakeTelegram, startFakeTelegram } from './fakes/telegram-api.ts';
import {
  adminAuth,
  botAuth,
  buildTestApp,
  miniAppAuth,
  TELEGRAM_BOT_TOKEN,
  testConfig,
} from './helpers/app.ts';
import { freshTelegramId, needsPostgres, sharedDatabase } from './helpers/database.ts';
import { operatorCookie, operatorSettings, SUPPORT_OPERATOR_ID } from './helpers/operators.ts';
import { balanceOf } from './helpers/pipeline.ts';

// GET /admin/payments and POST /admin/payments/{charge_id}/refund against a fake Bot API that
// holds the bot's Star transactions and answers refundStarPayment as Telegram does.

const CREDITS = 150;
const STARS = 100;
const PAYLOAD = 'stars:starter';
let database: DatabaseHandle;
let telegram: FakeTelegram;
let app: FastifyInstance;

beforeAll(async () => {
  database = await sharedDatabase();
  telegram = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
  app = await buildTestApp({
    TELEGRAM_API_ROOT: telegram.apiRoot,
    STARS_PACKAGES: `starter:${CREDITS}:${STARS}`,
    REFERRAL_PERCENT: '10',
    REFERRAL_JOIN_BONUS: '0',
    ...operatorSettings,
  });
});

afterAll(async () => {
  await app.close();
  await telegram.close();
});

const post = (url: string, payload: Record<string, unknown>, headers = adminAuth) =>
  app.inject({ method: 'POST', url, headers, payload });

async function sync(telegramId: number, extra: Record<string, unknown> = {}) {
  const response = await post('/api/v1/users/sync', { telegram_id: telegramId, ...extra }, botAuth);
  expect(response.statusCode, response.body).toBeLessThan(300);
  return response.json();
}

/** A Stars payment Telegram took and the bot confirmed. */
async function paid(telegramId: number): Promise<string> {
  const chargeId = `charge-${randomUUID()}`;
  telegram.addStarPayment({ chargeId, userId: telegramId, amount: STARS, invoicePayload: PAYLOAD });
  const confirmed = await post(
    '/api/v1/payments/stars/confirm',
    {
      telegram_id: telegramId,
      telegram_payment_charge_id: chargeId,
      total_amount: STARS,
      currency: 'XTR',
      invoice_payload: PAYLOAD,
    },
    botAuth,
  );
  expect(confirmed.statusCode, confirmed.body).toBe(201);
  return chargeId;
}

const refund = (chargeId: string, headers = {}) =>
  post(
    `/api/v1/admin/payments/${chargeId}/refund`,
    { reason: 'asked for it back' },
    {
      ...adminAuth,
      ...headers,
    },
  );

const refundCalls = (chargeId: string) =>
  telegram.calls.filter(
    (call) =>
      call.method === 'refundStarPayment' && call.fields.telegram_payment_charge_id === chargeId,
  );

async function auditsOf(chargeId: string) {
  return selectRows<{ action: string; actor: string; reason: string; after: unknown }>(
    database.db,
    sql`SELECT action, actor, reason, after FROM audit_log
        WHERE subject_type = 'payment' AND subject_id = ${chargeId} ORDER BY id`,
  );
}

async function paymentStatus(chargeId: string) {
  const [row] = await selectRows<{ status: string }>(
    database.db,
    sql`SELECT status FROM payments WHERE telegram_payment_charge_id = ${chargeId}`,
  );
  return row?.status;
}

describe('access', () => {
  it.each([
    { method: 'GET' as const, url: '/api/v1/admin/payments' },
    {
      method: 'POST' as const,
      url: '/api/v1/admin/payments/some-charge/refund',
      payload: { reason: 'x' },
    },
  ])('$method $url: 401 without a token, 403 for the bot and a Mini App user', async (route) => {
    expect((await app.inject(route)).statusCode).toBe(401);
    expect((await app.inject({ ...route, headers: botAuth })).statusCode).toBe(403);
    const mini = await app.inject({ ...route, headers: miniAppAuth(freshTelegramId()) });
    expect(mini.statusCode).toBe(403);
    // Support reads payments; refunding money back out is for admins only.
    const support = await app.inject({
      ...route,
      headers: await operatorCookie(app, SUPPORT_OPERATOR_ID),
    });
    expect(support.statusCode, support.body).toBe(route.method === 'GET' ? 200 : 403);
  });
});

describe('GET /admin/payments', () => {
  it('lists payments newest first with the totals of the filter, paged by cursor', async () => {
    const telegramId = freshTelegramId();
    await sync(telegramId);
    const first = await paid(telegramId);
    const second = await paid(telegramId);
    const third = await paid(telegramId);
    expect((await refund(second)).statusCode).toBe(200);

    const all = await app.inject({
      url: `/api/v1/admin/payments?user=${telegramId}`,
      headers: adminAuth,
    });
    expect(all.statusCode, all.body).toBe(200);
    const body = all.json();
    expect(
      body.payments.map(
        (p: { telegram_payment_charge_id: string }) => p.telegram_payment_charge_id,
      ),
    ).toEqual([third, second, first]);
    expect(body.payments[1]).toMatchObject({
      telegram_id: telegramId,
      package_id: 'starter',
      stars: STARS,
      credits: CREDITS,
      status: 'refunded',
      refund_shortfall: 0,
    });
    expect(body.payments[0]).toMatchObject({ status: 'paid', refunded_at: null });
    expect(body.totals).toEqual({
      count: 3,
      stars: 3 * STARS,
      credits: 3 * CREDITS,
      refunded: 1,
      refunded_stars: STARS,
    });
    expect(body.next_cursor).toBeNull();

    const refunded = await app.inject({
      url: `/api/v1/admin/payments?user=${telegramId}&status=refunded`,
      headers: adminAuth,
    });
    expect(refunded.json().totals).toMatchObject({ count: 1, refunded: 1 });

    const future = new Date(Date.now() + 3_600_000).toISOString();
    const none = await app.inject({
      url: `/api/v1/admin/payments?user=${telegramId}&from=${future}`,
      headers: adminAuth,
    });
    expect(none.json()).toMatchObject({ payments: [], totals: { count: 0, stars: 0 } });

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Awaited<ReturnType<typeof app.inject>> = await app.inject({
        url: `/api/v1/admin/payments?user=${telegramId}&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        headers: adminAuth,
      });
      expect(page.statusCode, page.body).toBe(200);
      expect(page.json().totals.count).toBe(3);
      seen.push(
        ...page
          .json()
          .payments.map(
            (p: { telegram_payment_charge_id: string }) => p.telegram_payment_charge_id,
          ),
      );
      cursor = page.json().next_cursor;
    } while (cursor);
    expect(seen).toEqual([third, second, first]);
  });

  it('refuses a cursor it did not give (400) and bad filters (422)', async () => {
    const bad = await app.inject({ url: '/api/v1/admin/payments?cursor=cDA', headers: adminAuth });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().code).toBe('invalid_cursor');
    for (const query of ['status=done', 'user=-1', 'to=tomorrow', 'limit=500']) {
      const response = await app.inject({
        url: `/api/v1/admin/payments?${query}`,
        headers: adminAuth,
      });
      expect(response.statusCode, query).toBe(422);
    }
  });
});

describe('POST /admin/payments/{charge_id}/refund', () => {
  it('refunds through Telegram, takes the credits and the referral earnings back, reports the shortfall; the bot’s later refunded_payment changes nothing', async () => {
    const referrer = freshTelegramId();
    const { referral_code: code } = await sync(referrer);
    const payer = freshTelegramId();
    await sync(payer, { referral_code: code });
    const chargeId = await paid(payer);
    expect(await balanceOf(app, referrer)).toBe(CREDITS / 10);
    // The payer spent 100 of the 150 credits.
    const spent = await post(`/api/v1/admin/users/${payer}/credits`, {
      amount: -100,
      reason: 'spent',
    });
    expect(spent.statusCode, spent.body).toBe(201);

    const response = await refund(chargeId);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toMatchObject({
      telegram: 'refunded',
      applied: true,
      refund: {
        telegram_payment_charge_id: chargeId,
        status: 'refunded',
        credits: CREDITS,
        clawed_back: CREDITS - 100,
        shortfall: 100,
        balance: 0,
        referral: { telegram_id: referrer, clawed_back: CREDITS / 10, shortfall: 0 },
      },
    });
    expect(refundCalls(chargeId).map((call) => Number(call.fields.user_id))).toEqual([payer]);
    expect(await balanceOf(app, payer)).toBe(0);
    expect(await balanceOf(app, referrer)).toBe(0);
    expect(await auditsOf(chargeId)).toEqual([
      {
        action: 'payment.refund',
        actor: expect.stringMatching(/^admin:/),
        reason: 'asked for it back',
        after: expect.objectContaining({
          status: 'refunded',
          telegram: 'refunded',
          shortfall: 100,
        }),
      },
    ]);

    // Telegram's refunded_payment reaches the bot afterwards: the same keys, nothing more happens.
    const fromBot = await post(
      '/api/v1/payments/stars/refund',
      {
        telegram_id: payer,
        telegram_payment_charge_id: chargeId,
        total_amount: STARS,
        currency: 'XTR',
      },
      botAuth,
    );
    expect(fromBot.statusCode, fromBot.body).toBe(200);
    expect(fromBot.json()).toMatchObject({ shortfall: 100, clawed_back: CREDITS - 100 });
    expect(await balanceOf(app, payer)).toBe(0);

    // Asked again: our side is done, Telegram is not asked, nothing is recorded twice.
    const again = await refund(chargeId);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ telegram: 'not_asked', applied: false });
    expect(refundCalls(chargeId)).toHaveLength(1);
    expect(await auditsOf(chargeId)).toHaveLength(1);
  });

  it('Telegram already refunded (CHARGE_ALREADY_REFUNDED): our side is applied once', async () => {
    const payer = freshTelegramId();
    await sync(payer);
    const chargeId = await paid(payer);
    telegram.failNext('refundStarPayment', {
      error_code: 400,
      description: 'Bad Request: CHARGE_ALREADY_REFUNDED',
    });
    const response = await refund(chargeId);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toMatchObject({
      telegram: 'already_refunded',
      applied: true,
      refund: { clawed_back: CREDITS, shortfall: 0 },
    });
    expect(await balanceOf(app, payer)).toBe(0);
    expect(await auditsOf(chargeId)).toHaveLength(1);
  });

  it('Telegram refusing is 422 and Telegram away is 503; neither changes anything nor shows the token', async () => {
    const payer = freshTelegramId();
    await sync(payer);
    const chargeId = await paid(payer);
    telegram.failNext('refundStarPayment', {
      error_code: 400,
      description: 'Bad Request: CHARGE_NOT_FOUND',
    });
    const refused = await refund(chargeId);
    expect(refused.statusCode).toBe(422);
    expect(refused.json()).toMatchObject({
      code: 'star_refund_refused',
      telegram_error: 'Bad Request: CHARGE_NOT_FOUND',
    });
    telegram.failNext('refundStarPayment', {
      error_code: 500,
      description: 'Internal Server Error',
    });
    const away = await refund(chargeId);
    expect(away.statusCode).toBe(503);
    expect(away.json().code).toBe('telegram_unavailable');

    const offline = await buildTestApp({ TELEGRAM_API_ROOT: 'http://127.0.0.1:9' });
    try {
      const unreachable = await offline.inject({
        method: 'POST',
        url: `/api/v1/admin/payments/${chargeId}/refund`,
        headers: adminAuth,
        payload: { reason: 'x' },
      });
      expect(unreachable.statusCode).toBe(503);
      expect(unreachable.json().code).toBe('telegram_unavailable');
      for (const answer of [refused, away, unreachable]) {
        expect(answer.body).not.toContain(TELEGRAM_BOT_TOKEN);
        expect(answer.body).not.toContain(TELEGRAM_BOT_TOKEN.split(':')[1]);
      }
    } finally {
      await offline.close();
    }
    expect(await paymentStatus(chargeId)).toBe('paid');
    expect(await balanceOf(app, payer)).toBe(CREDITS);
    expect(await auditsOf(chargeId)).toEqual([]);
  });

  it('never writes the bot token into its logs, whatever Telegram answers', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logged = await buildApp(
      testConfig({ TELEGRAM_API_ROOT: telegram.apiRoot, LOG_LEVEL: 'debug' }),
      { database, logger: pino({ level: 'debug' }, sink), worker: false },
    );
    const offline = await buildApp(
      testConfig({ TELEGRAM_API_ROOT: 'http://127.0.0.1:9', LOG_LEVEL: 'debug' }),
      { database, logger: pino({ level: 'debug' }, sink), worker: false },
    );
    try {
      const payer = freshTelegramId();
      await sync(payer);
      const chargeId = await paid(payer);
      const call = (on: FastifyInstance) =>
        on.inject({
          method: 'POST',
          url: `/api/v1/admin/payments/${chargeId}/refund`,
          headers: adminAuth,
          payload: { reason: 'x' },
        });
      telegram.failNext('refundStarPayment', { error_code: 500, description: 'Internal' });
      expect((await call(logged)).statusCode).toBe(503);
      expect((await call(offline)).statusCode).toBe(503);
      telegram.failNext('refundStarPayment', { error_code: 400, description: 'Bad Request: X' });
      expect((await call(logged)).statusCode).toBe(422);
      expect((await call(logged)).statusCode).toBe(200);
    } finally {
      await logged.close();
      await offline.close();
    }
    expect(lines.length).toBeGreaterThan(0);
    const secret = TELEGRAM_BOT_TOKEN.split(':')[1] ?? TELEGRAM_BOT_TOKEN;
    expect(lines.filter((line) => line.includes(secret))).toEqual([]);
  });

  it('an unknown charge is 404; a body without a reason is 422; a repeated Idempotency-Key replays', async () => {
    const unknown = await refund('no-such-charge');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().code).toBe('payment_not_found');
    const payer = freshTelegramId();
    await sync(payer);
    const chargeId = await paid(payer);
    const bad = await post(`/api/v1/admin/payments/${chargeId}/refund`, {});
    expect(bad.statusCode).toBe(422);
    const key = { 'idempotency-key': `refund-${chargeId}` };
    const first = await refund(chargeId, key);
    const second = await refund(chargeId, key);
    expect(first.statusCode).toBe(200);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.json()).toEqual(first.json());
    expect(refundCalls(chargeId)).toHaveLength(1);
  });

  it('10 concurrent refunds of one payment take the credits back once', async (context) => {
    if (needsPostgres('concurrent refunds need several connections')) return context.skip();
    const payer = freshTelegramId();
    await sync(payer);
    const chargeId = await paid(payer);
    const responses = await Promise.all(Array.from({ length: 10 }, () => refund(chargeId)));
    expect(responses.map((response) => response.statusCode)).toEqual(Array(10).fill(200));
    expect(responses.filter((response) => response.json().applied)).toHaveLength(1);
    const entries = await selectRows<{ count: number }>(
      database.db,
      sql`SELECT count(*)::int AS count FROM ledger_entries WHERE idempotency_key = ${`stars-refund:${chargeId}`}`,
    );
    expect(entries[0]?.count).toBe(1);
    expect(await balanceOf(app, payer)).toBe(0);
    expect(await auditsOf(chargeId)).toHaveLength(1);
  });
});
