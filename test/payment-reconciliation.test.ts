import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { TelegramStars } from '../src/delivery/telegram-stars.ts';
import { reconcileIfDue } from '../src/services/payment-reconciliation.ts';
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

// Reconciling our Stars payments with the Star transactions a fake Bot API holds: a payment the
// bot never confirmed is credited once, a refund it never heard of is applied once, however often
// the reconciliation runs. Each test has its own fake Telegram; the reconciliation's progress row
// is reset before each (no other test file touches it).

const CREDITS = 150;
const STARS = 100;
const PAYLOAD = 'stars:starter';
const settings = { STARS_PACKAGES: `starter:${CREDITS}:${STARS}`, ...operatorSettings };
let database: DatabaseHandle;
let telegram: FakeTelegram;
let app: FastifyInstance;

beforeAll(async () => {
  database = await sharedDatabase();
});

beforeEach(async () => {
  await database.db.execute(
    sql`UPDATE payment_reconciliation
        SET reconciled_until = NULL, transactions_seen = 0, last_run_at = NULL WHERE id = 1`,
  );
  telegram = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
  app = await buildTestApp({ ...settings, TELEGRAM_API_ROOT: telegram.apiRoot });
});

afterEach(async () => {
  await app.close();
  await telegram.close();
});

const reconcile = (headers: Record<string, string> = adminAuth) =>
  app.inject({ method: 'POST', url: '/api/v1/admin/payments/reconcile', headers });

async function confirmByBot(telegramId: number, chargeId: string) {
  return app.inject({
    method: 'POST',
    url: '/api/v1/payments/stars/confirm',
    headers: botAuth,
    payload: {
      telegram_id: telegramId,
      telegram_payment_charge_id: chargeId,
      total_amount: STARS,
      currency: 'XTR',
      invoice_payload: PAYLOAD,
    },
  });
}

/** Telegram refunds the payment (e.g. from the bot's owner account), and the bot never hears. */
async function refundAtTelegram(telegramId: number, chargeId: string) {
  const response = await fetch(`${telegram.apiRoot}/bot${TELEGRAM_BOT_TOKEN}/refundStarPayment`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user_id: telegramId, telegram_payment_charge_id: chargeId }),
  });
  expect(await response.json()).toEqual({ ok: true, result: true });
}

async function corrections(chargeId: string) {
  return selectRows<{ kind: string; actor: string }>(
    database.db,
    sql`SELECT kind, actor FROM payment_corrections WHERE telegram_payment_charge_id = ${chargeId}`,
  );
}

async function audits(chargeId: string) {
  return selectRows<{ action: string; role: string }>(
    database.db,
    sql`SELECT action, role FROM audit_log WHERE subject_type = 'payment' AND subject_id = ${chargeId}`,
  );
}

const transactionCalls = () =>
  telegram.calls.filter((call) => call.method === 'getStarTransactions').length;

describe('access', () => {
  it('reconciling is for admins; its record is for support too', async () => {
    expect((await reconcile({})).statusCode).toBe(401);
    expect((await reconcile(botAuth)).statusCode).toBe(403);
    expect((await reconcile(miniAppAuth(freshTelegramId()))).statusCode).toBe(403);
    const support = await operatorCookie(app, SUPPORT_OPERATOR_ID);
    expect((await reconcile(support)).statusCode).toBe(403);
    const url = '/api/v1/admin/payments/reconciliation';
    expect((await app.inject({ url })).statusCode).toBe(401);
    expect((await app.inject({ url, headers: botAuth })).statusCode).toBe(403);
    const read = await app.inject({ url, headers: support });
    expect(read.statusCode, read.body).toBe(200);
    const bad = await app.inject({ url: `${url}?cursor=eDE`, headers: support });
    expect(bad.statusCode).toBe(400);
  });
});

describe('POST /admin/payments/reconcile', () => {
  it('credits a payment the bot never confirmed, once, however often it runs; the late confirm changes nothing', async () => {
    const known = freshTelegramId();
    const knownCharge = `charge-${randomUUID()}`;
    telegram.addStarPayment({
      chargeId: knownCharge,
      userId: known,
      amount: STARS,
      invoicePayload: PAYLOAD,
    });
    expect((await confirmByBot(known, knownCharge)).statusCode).toBe(201);
    const missed = freshTelegramId();
    const missedCharge = `charge-${randomUUID()}`;
    telegram.addStarPayment({
      chargeId: missedCharge,
      userId: missed,
      amount: STARS,
      invoicePayload: PAYLOAD,
    });

    const first = await reconcile();
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toMatchObject({ transactions: 2, pages: 1, complete: true });
    expect(first.json().corrections).toEqual([
      expect.objectContaining({
        kind: 'payment_credited',
        telegram_payment_charge_id: missedCharge,
        telegram_id: missed,
        stars: STARS,
        details: expect.objectContaining({ package_id: 'starter', credits: CREDITS }),
        actor: expect.stringMatching(/^admin:/),
      }),
    ]);
    expect(await balanceOf(app, missed)).toBe(CREDITS);
    expect(await balanceOf(app, known)).toBe(CREDITS);

    for (let run = 0; run < 3; run++) {
      const again = await reconcile();
      expect(again.statusCode).toBe(200);
      expect(again.json().corrections).toEqual([]);
    }
    expect(await balanceOf(app, missed)).toBe(CREDITS);
    expect(await corrections(missedCharge)).toHaveLength(1);
    expect(await audits(missedCharge)).toEqual([
      { action: 'payment.reconcile.payment_credited', role: 'admin' },
    ]);
    // The bot's confirm arrives at last: the same charge id, a replay.
    const late = await confirmByBot(missed, missedCharge);
    expect(late.statusCode).toBe(200);
    expect(await balanceOf(app, missed)).toBe(CREDITS);

    const listed = await app.inject({
      url: '/api/v1/admin/payments/reconciliation?limit=100',
      headers: adminAuth,
    });
    expect(listed.statusCode).toBe(200);
    expect(listed.json().last_run_at).not.toBeNull();
    expect(listed.json().corrections).toContainEqual(
      expect.objectContaining({
        kind: 'payment_credited',
        telegram_payment_charge_id: missedCharge,
      }),
    );
  });

  it('applies a refund the bot never heard of, once; the late refunded_payment changes nothing', async () => {
    const payer = freshTelegramId();
    const chargeId = `charge-${randomUUID()}`;
    telegram.addStarPayment({ chargeId, userId: payer, amount: STARS, invoicePayload: PAYLOAD });
    expect((await confirmByBot(payer, chargeId)).statusCode).toBe(201);
    await refundAtTelegram(payer, chargeId);

    const first = await reconcile();
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json().corrections).toEqual([
      expect.objectContaining({
        kind: 'refund_applied',
        telegram_payment_charge_id: chargeId,
        telegram_id: payer,
        details: expect.objectContaining({ clawed_back: CREDITS, shortfall: 0 }),
      }),
    ]);
    expect(await balanceOf(app, payer)).toBe(0);
    expect((await reconcile()).json().corrections).toEqual([]);
    expect(await corrections(chargeId)).toEqual([
      { kind: 'refund_applied', actor: expect.stringMatching(/^admin:/) },
    ]);
    const late = await app.inject({
      method: 'POST',
      url: '/api/v1/payments/stars/refund',
      headers: botAuth,
      payload: {
        telegram_id: payer,
        telegram_payment_charge_id: chargeId,
        total_amount: STARS,
        currency: 'XTR',
      },
    });
    expect(late.statusCode, late.body).toBe(200);
    expect(await balanceOf(app, payer)).toBe(0);
  });

  it('records a payment that fits no package once, and credits nothing', async () => {
    const payer = freshTelegramId();
    const chargeId = `charge-${randomUUID()}`;
    telegram.addStarPayment({ chargeId, userId: payer, amount: 7, invoicePayload: 'stars:gone' });
    const first = await reconcile();
    expect(first.json().corrections).toEqual([
      expect.objectContaining({
        kind: 'payment_unmatched',
        details: expect.objectContaining({ code: 'unknown_package' }),
      }),
    ]);
    expect((await reconcile()).json().corrections).toEqual([]);
    expect(await corrections(chargeId)).toHaveLength(1);
  });

  it('pages newest first back to where the last run got, and chronologically to the end', async () => {
    const payer = freshTelegramId();
    const base = Math.floor(Date.now() / 1000) - 10_000;
    for (let i = 0; i < 150; i++) {
      telegram.addStarPayment({
        chargeId: `charge-${randomUUID()}`,
        userId: payer,
        amount: STARS,
        invoicePayload: PAYLOAD,
        date: base + i,
      });
    }
    telegram.starOrder = 'newest_first';
    const first = await reconcile();
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toMatchObject({ transactions: 150, pages: 2, complete: true });
    expect(first.json().corrections).toHaveLength(150);
    expect(await balanceOf(app, payer)).toBe(150 * CREDITS);
    // One more payment: the next run reads the newest page, sees it is past the last run, stops.
    const newest = `charge-${randomUUID()}`;
    telegram.addStarPayment({
      chargeId: newest,
      userId: payer,
      amount: STARS,
      invoicePayload: PAYLOAD,
    });
    const before = transactionCalls();
    const second = await reconcile();
    expect(second.json()).toMatchObject({ pages: 1, complete: true });
    expect(
      second
        .json()
        .corrections.map(
          (c: { telegram_payment_charge_id: string }) => c.telegram_payment_charge_id,
        ),
    ).toEqual([newest]);
    expect(transactionCalls() - before).toBe(1);

    telegram.starOrder = 'chronological';
    const third = await reconcile();
    expect(third.json()).toMatchObject({
      transactions: 151,
      pages: 2,
      complete: true,
      corrections: [],
    });
    expect(await balanceOf(app, payer)).toBe(151 * CREDITS);
  });

  it('Telegram away is 503 and changes nothing', async () => {
    telegram.failNext('getStarTransactions', { error_code: 502, description: 'Bad Gateway' });
    const away = await reconcile();
    expect(away.statusCode).toBe(503);
    expect(away.json().code).toBe('telegram_unavailable');
    expect(away.body).not.toContain(TELEGRAM_BOT_TOKEN);
  });

  it('concurrent runs credit a missed payment once', async (context) => {
    if (needsPostgres('concurrent runs need several connections')) return context.skip();
    const payer = freshTelegramId();
    const chargeId = `charge-${randomUUID()}`;
    telegram.addStarPayment({ chargeId, userId: payer, amount: STARS, invoicePayload: PAYLOAD });
    const runs = await Promise.all(Array.from({ length: 5 }, () => reconcile()));
    expect(runs.map((run) => run.statusCode)).toEqual(Array(5).fill(200));
    expect(runs.flatMap((run) => run.json().corrections)).toHaveLength(1);
    expect(await balanceOf(app, payer)).toBe(CREDITS);
    expect(await corrections(chargeId)).toHaveLength(1);
  });
});

describe("the worker's schedule", () => {
  it('runs when RECONCILE_MINUTES have passed since the last run, as the system', async () => {
    const payer = freshTelegramId();
    const chargeId = `charge-${randomUUID()}`;
    telegram.addStarPayment({ chargeId, userId: payer, amount: STARS, invoicePayload: PAYLOAD });
    const ctx = {
      db: database.db,
      config: testConfig({
        ...settings,
        TELEGRAM_API_ROOT: telegram.apiRoot,
        RECONCILE_MINUTES: '60',
      }),
    };
    const stars = new TelegramStars({ botToken: TELEGRAM_BOT_TOKEN, apiRoot: telegram.apiRoot });
    // On PostgreSQL another file's app may run a reconciliation (of its own fake, with nothing
    // to correct) at any time, which also counts as the last run: try until this one is due.
    let run = null;
    for (let attempt = 0; attempt < 5 && run === null; attempt++) {
      await database.db.execute(
        sql`UPDATE payment_reconciliation SET last_run_at = NULL WHERE id = 1`,
      );
      run = await reconcileIfDue(ctx, stars);
    }
    expect(run?.corrections.map((c) => c.kind)).toEqual(['payment_credited']);
    expect(await reconcileIfDue(ctx, stars)).toBeNull();
    expect(await corrections(chargeId)).toEqual([{ kind: 'payment_credited', actor: 'system' }]);
    expect(await audits(chargeId)).toEqual([
      { action: 'payment.reconcile.payment_credited', role: 'system' },
    ]);
    expect(await balanceOf(app, payer)).toBe(CREDITS);
    const off = { ...ctx, config: testConfig({ ...settings, RECONCILE_MINUTES: '0' }) };
    await database.db.execute(
      sql`UPDATE payment_reconciliation SET last_run_at = NULL WHERE id = 1`,
    );
    expect(await reconcileIfDue(off, stars)).toBeNull();
  });
});
