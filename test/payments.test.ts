import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initDataSecret, signInitData } from '../src/deps/telegram-init-data.ts';
import { botAuth, buildTestApp, TELEGRAM_BOT_TOKEN } from './helpers/app.ts';
import { freshTelegramId } from './helpers/database.ts';

let app: FastifyInstance;
beforeAll(async () => {
  app = await buildTestApp({ STARS_PACKAGES: 'small:100:50,big:1000:400' });
});
afterAll(() => app.close());

const post = (
  url: string,
  payload: Record<string, unknown>,
  headers: Record<string, string> = botAuth,
) => app.inject({ method: 'POST', url, headers, payload });

async function newUser(): Promise<number> {
  const telegramId = freshTelegramId();
  await post('/api/v1/users/sync', { telegram_id: telegramId });
  return telegramId;
}

const balanceOf = async (telegramId: number) =>
  (await app.inject({ url: `/api/v1/users/${telegramId}/balance`, headers: botAuth })).json()
    .balance as number;

function payment(telegramId: number, overrides: Record<string, unknown> = {}) {
  return {
    telegram_id: telegramId,
    telegram_payment_charge_id: `tg_${randomUUID()}`,
    provider_payment_charge_id: null,
    total_amount: 50,
    currency: 'XTR',
    invoice_payload: 'stars:small',
    ...overrides,
  };
}

describe('GET /api/v1/payments/stars/packages', () => {
  it('lists the configured packages with the invoice_payload the bot must use', async () => {
    const response = await app.inject({ url: '/api/v1/payments/stars/packages' });
    expect(response.json()).toEqual({
      packages: [
        {
          id: 'small',
          title: '100 credits',
          credits: 100,
          stars: 50,
          currency: 'XTR',
          invoice_payload: 'stars:small:100:50',
        },
        {
          id: 'big',
          title: '1000 credits',
          credits: 1000,
          stars: 400,
          currency: 'XTR',
          invoice_payload: 'stars:big:1000:400',
        },
      ],
    });
  });
});

describe('POST /api/v1/payments/stars/confirm', () => {
  it('credits what the invoice promised, even if the package changed or is gone since', async () => {
    const telegramId = await newUser();
    const response = await app.inject({
      method: 'POST',
      url: '/api/v1/payments/stars/confirm',
      headers: botAuth,
      payload: {
        ...payment(telegramId),
        total_amount: 70,
        invoice_payload: 'stars:retired:150:70',
      },
    });
    expect(response.statusCode, response.body).toBe(201);
    expect(response.json()).toMatchObject({ package_id: 'retired', credits: 150, stars: 70 });
    const mismatch = await app.inject({
      method: 'POST',
      url: '/api/v1/payments/stars/confirm',
      headers: botAuth,
      payload: {
        ...payment(telegramId),
        telegram_payment_charge_id: `other-${telegramId}`,
        total_amount: 69,
        invoice_payload: 'stars:retired:150:70',
      },
    });
    expect(mismatch.statusCode).toBe(422);
    expect(mismatch.json().code).toBe('amount_mismatch');
  });

  it('credits the package once (201), and a repeat returns the first result (200)', async () => {
    const telegramId = await newUser();
    const body = payment(telegramId);
    const first = await post('/api/v1/payments/stars/confirm', body);
    expect(first.statusCode).toBe(201);
    expect(first.json()).toMatchObject({
      telegram_id: telegramId,
      package_id: 'small',
      credits: 100,
      stars: 50,
      status: 'paid',
      balance_after: 100,
    });
    const again = await post('/api/v1/payments/stars/confirm', body);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(first.json());
    expect(await balanceOf(telegramId)).toBe(100);
  });

  it('the same charge id confirmed 1,000 times in parallel credits once', async () => {
    const telegramId = await newUser();
    const body = payment(telegramId, { total_amount: 400, invoice_payload: 'stars:big' });
    const responses = await Promise.all(
      Array.from({ length: 1000 }, () => post('/api/v1/payments/stars/confirm', body)),
    );
    const statuses = responses.map((r) => r.statusCode);
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(999);
    expect(new Set(responses.map((r) => r.json().payment_id)).size).toBe(1);
    expect(await balanceOf(telegramId)).toBe(1000);
    const ledger = await app.inject({
      url: `/api/v1/users/${telegramId}/ledger`,
      headers: botAuth,
    });
    expect(ledger.json().entries).toHaveLength(1);
    expect(ledger.json().entries[0]).toMatchObject({
      kind: 'topup',
      amount: 1000,
      reference_type: 'payment',
    });
  });

  it.each([
    ['a currency other than XTR', { currency: 'USD' }, 'unsupported_currency'],
    ['an amount that does not match the package', { total_amount: 49 }, 'amount_mismatch'],
    ['an unknown invoice_payload', { invoice_payload: 'stars:nope' }, 'unknown_package'],
  ])('refuses %s with 422 and credits nothing', async (_label, overrides, code) => {
    const telegramId = await newUser();
    const response = await post('/api/v1/payments/stars/confirm', payment(telegramId, overrides));
    expect(response.statusCode).toBe(422);
    expect(response.json().code).toBe(code);
    expect(await balanceOf(telegramId)).toBe(0);
  });

  it('refuses a charge id already recorded for another user (409)', async () => {
    const body = payment(await newUser());
    await post('/api/v1/payments/stars/confirm', body);
    const response = await post('/api/v1/payments/stars/confirm', {
      ...body,
      telegram_id: await newUser(),
    });
    expect(response.statusCode).toBe(409);
    expect(response.json().code).toBe('payment_conflict');
  });

  it('credits a paying user the bot never synced', async () => {
    const telegramId = freshTelegramId();
    const response = await post('/api/v1/payments/stars/confirm', payment(telegramId));
    expect(response.statusCode).toBe(201);
    expect(await balanceOf(telegramId)).toBe(100);
  });

  it('is for the bot only: a Mini App user cannot assert its own payment', async () => {
    const telegramId = await newUser();
    const initData = signInitData(
      {
        user: JSON.stringify({ id: telegramId }),
        auth_date: String(Math.floor(Date.now() / 1000)),
      },
      initDataSecret(TELEGRAM_BOT_TOKEN),
    );
    const response = await post('/api/v1/payments/stars/confirm', payment(telegramId), {
      authorization: `tma ${initData}`,
    });
    expect(response.statusCode).toBe(403);
    expect(await balanceOf(telegramId)).toBe(0);
  });
});

describe('POST /api/v1/payments/stars/refund', () => {
  const refundOf = (body: ReturnType<typeof payment>) => ({
    telegram_id: body.telegram_id,
    telegram_payment_charge_id: body.telegram_payment_charge_id,
    total_amount: body.total_amount,
    currency: 'XTR',
    invoice_payload: body.invoice_payload,
  });

  it('takes the credits back once, however often Telegram says so', async () => {
    const telegramId = await newUser();
    const body = payment(telegramId);
    await post('/api/v1/payments/stars/confirm', body);
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => post('/api/v1/payments/stars/refund', refundOf(body))),
    );
    for (const response of responses) {
      expect(response.statusCode).toBe(200);
      expect(response.json()).toMatchObject({
        status: 'refunded',
        credits: 100,
        clawed_back: 100,
        shortfall: 0,
        balance: 0,
      });
    }
    expect(await balanceOf(telegramId)).toBe(0);
    const ledger = (
      await app.inject({ url: `/api/v1/users/${telegramId}/ledger`, headers: botAuth })
    ).json();
    expect(ledger.entries.map((e: { kind: string; amount: number }) => [e.kind, e.amount])).toEqual(
      [
        ['payment_refund', -100],
        ['topup', 100],
      ],
    );
  });

  it('never takes the balance below zero: what was spent is the shortfall', async () => {
    const telegramId = await newUser();
    const body = payment(telegramId);
    await post('/api/v1/payments/stars/confirm', body);
    const spent = await post(
      `/api/v1/admin/users/${telegramId}/credits`,
      { amount: -70, reason: 'spent elsewhere' },
      {
        authorization: 'Bearer test-admin-token-0123456789',
      },
    );
    expect(spent.statusCode).toBe(201);
    const response = await post('/api/v1/payments/stars/refund', refundOf(body));
    expect(response.json()).toMatchObject({ clawed_back: 30, shortfall: 70, balance: 0 });
    const second = await post('/api/v1/payments/stars/refund', refundOf(body));
    expect(second.json()).toMatchObject({ clawed_back: 30, shortfall: 70, balance: 0 });
    expect(await balanceOf(telegramId)).toBe(0);
  });

  it('answers 404 for an unknown charge and 422 for one that does not match', async () => {
    const telegramId = await newUser();
    const unknown = await post('/api/v1/payments/stars/refund', refundOf(payment(telegramId)));
    expect(unknown.statusCode).toBe(404);
    const body = payment(telegramId);
    await post('/api/v1/payments/stars/confirm', body);
    const mismatch = await post('/api/v1/payments/stars/refund', {
      ...refundOf(body),
      total_amount: 1,
    });
    expect(mismatch.statusCode).toBe(422);
    expect(await balanceOf(telegramId)).toBe(100);
  });
});
