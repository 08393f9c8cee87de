import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeTelegram, startFakeTelegram } from './fakes/telegram-api.ts';
import { botAuth, buildTestApp, miniAppAuth, TELEGRAM_BOT_TOKEN } from './helpers/app.ts';
import { freshTelegramId } from './helpers/database.ts';

/**
 * The Mini App's top-up: an invoice link from Telegram's createInvoiceLink for a Stars package,
 * the bot's own invoice (the same payload), so the bot's payment handling credits it; and the
 * referral link, which names the bot.
 */

const PACKAGES = 'small:100:50,big:1000:400';

let telegram: FakeTelegram;
let app: FastifyInstance;

beforeAll(async () => {
  telegram = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
  app = await buildTestApp({ STARS_PACKAGES: PACKAGES, TELEGRAM_API_ROOT: telegram.apiRoot });
});

afterAll(async () => {
  await app?.close();
  await telegram?.close();
});

async function newUser(profile: Record<string, unknown> = {}): Promise<number> {
  const telegramId = freshTelegramId();
  const synced = await app.inject({
    method: 'POST',
    url: '/api/v1/users/sync',
    headers: botAuth,
    payload: { telegram_id: telegramId, ...profile },
  });
  expect(synced.statusCode).toBe(201);
  return telegramId;
}

const invoiceLink = (
  target: FastifyInstance,
  telegramId: number,
  packageId: string,
  headers: Record<string, string> = miniAppAuth(telegramId),
) =>
  target.inject({
    method: 'POST',
    url: '/api/v1/payments/stars/invoice-link',
    headers,
    payload: { telegram_id: telegramId, package_id: packageId },
  });

const invoiceCalls = () => telegram.calls.filter((call) => call.method === 'createInvoiceLink');

describe('POST /api/v1/payments/stars/invoice-link', () => {
  it("answers Telegram's link to the bot's own invoice, in the user's language", async () => {
    const telegramId = await newUser({ language_code: 'ru' });
    const before = invoiceCalls().length;
    const response = await invoiceLink(app, telegramId, 'small');
    expect(response.statusCode, response.body).toBe(200);
    const [made] = telegram.invoiceLinks.slice(-1);
    expect(response.json()).toEqual({
      package_id: 'small',
      credits: 100,
      stars: 50,
      currency: 'XTR',
      invoice_payload: 'stars:small:100:50',
      invoice_link: made?.link,
    });
    // What reached Telegram: Stars (XTR), one price, an empty provider token, Russian texts.
    const calls = invoiceCalls();
    expect(calls).toHaveLength(before + 1);
    expect(calls.at(-1)?.fields).toEqual({
      title: '100 кредитов',
      description: expect.stringContaining('100'),
      payload: 'stars:small:100:50',
      provider_token: '',
      currency: 'XTR',
      prices: [{ label: '100 кредитов', amount: 50 }],
    });
  });

  it('paying it is credited by the payment the bot forwards, as an invoice in the chat is', async () => {
    const telegramId = await newUser();
    const link = (await invoiceLink(app, telegramId, 'big')).json();
    const confirmed = await app.inject({
      method: 'POST',
      url: '/api/v1/payments/stars/confirm',
      headers: botAuth,
      payload: {
        telegram_id: telegramId,
        telegram_payment_charge_id: `tg_${randomUUID()}`,
        total_amount: link.stars,
        currency: 'XTR',
        invoice_payload: link.invoice_payload,
      },
    });
    expect(confirmed.statusCode, confirmed.body).toBe(201);
    expect(confirmed.json()).toMatchObject({
      package_id: 'big',
      credits: 1000,
      balance_after: 1000,
    });
  });

  it('refuses an unknown package (422) and an unknown user (404) without asking Telegram', async () => {
    const telegramId = await newUser();
    const before = invoiceCalls().length;
    const unknown = await invoiceLink(app, telegramId, 'huge');
    expect(unknown.statusCode).toBe(422);
    expect(unknown.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(unknown.json()).toMatchObject({ code: 'unknown_package', status: 422 });
    const stranger = freshTelegramId();
    const missing = await invoiceLink(app, stranger, 'small');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().code).toBe('user_not_found');
    expect(invoiceCalls()).toHaveLength(before);
  });

  it("is a Mini App user's for itself only", async () => {
    const telegramId = await newUser();
    const other = await newUser();
    const response = await invoiceLink(app, other, 'small', miniAppAuth(telegramId));
    expect(response.statusCode).toBe(403);
    expect(response.json().code).toBe('forbidden');
    const anonymous = await app.inject({
      method: 'POST',
      url: '/api/v1/payments/stars/invoice-link',
      payload: { telegram_id: telegramId, package_id: 'small' },
    });
    expect(anonymous.statusCode).toBe(401);
  });

  it('Telegram refusing is 502, Telegram away 503 (with its Retry-After); never the token', async () => {
    const telegramId = await newUser();
    telegram.failNext('createInvoiceLink', {
      error_code: 400,
      description: 'Bad Request: STARS_INVOICE_INVALID',
    });
    const refused = await invoiceLink(app, telegramId, 'small');
    expect(refused.statusCode).toBe(502);
    expect(refused.json()).toMatchObject({
      code: 'invoice_refused',
      telegram_error: 'Bad Request: STARS_INVOICE_INVALID',
    });
    telegram.failNext('createInvoiceLink', {
      error_code: 429,
      description: 'Too Many Requests: retry after 7',
      retry_after: 7,
    });
    const busy = await invoiceLink(app, telegramId, 'small');
    expect(busy.statusCode).toBe(503);
    expect(busy.json().code).toBe('telegram_unavailable');
    expect(busy.headers['retry-after']).toBe('7');

    const offline = await buildTestApp({
      STARS_PACKAGES: PACKAGES,
      TELEGRAM_API_ROOT: 'http://127.0.0.1:9',
    });
    try {
      const unreachable = await invoiceLink(offline, telegramId, 'small');
      expect(unreachable.statusCode).toBe(503);
      expect(unreachable.json().code).toBe('telegram_unavailable');
      for (const answer of [refused, busy, unreachable]) {
        expect(answer.body).not.toContain(TELEGRAM_BOT_TOKEN.split(':')[1]);
      }
    } finally {
      await offline.close();
    }
  });

  it('without a bot token it says so (503), for the bot asking on a user’s behalf', async () => {
    const telegramId = await newUser();
    const tokenless = await buildTestApp({ STARS_PACKAGES: PACKAGES, TELEGRAM_BOT_TOKEN: '' });
    try {
      const response = await invoiceLink(tokenless, telegramId, 'small', botAuth);
      expect(response.statusCode).toBe(503);
      expect(response.json()).toMatchObject({
        code: 'telegram_unavailable',
        detail: expect.stringContaining('TELEGRAM_BOT_TOKEN'),
      });
    } finally {
      await tokenless.close();
    }
  });
});

describe('the referral link', () => {
  const referrals = (target: FastifyInstance, telegramId: number) =>
    target.inject({ url: `/api/v1/users/${telegramId}/referrals`, headers: botAuth });

  it('names the bot getMe tells, asking Telegram once for many requests', async () => {
    const telegramId = await newUser();
    const fresh = await buildTestApp({ TELEGRAM_API_ROOT: telegram.apiRoot });
    try {
      const before = telegram.calls.filter((call) => call.method === 'getMe').length;
      const [first, second] = await Promise.all([
        referrals(fresh, telegramId),
        referrals(fresh, telegramId),
      ]);
      await referrals(fresh, telegramId);
      const code = first.json().code as string;
      expect(first.json().link).toBe(`https://t.me/fake_bot?start=r_${code}`);
      expect(second.json().link).toBe(first.json().link);
      expect(telegram.calls.filter((call) => call.method === 'getMe')).toHaveLength(before + 1);
    } finally {
      await fresh.close();
    }
  });

  it('names TELEGRAM_BOT_USERNAME when set, and is null when the bot is not known', async () => {
    const telegramId = await newUser();
    const named = await buildTestApp({
      TELEGRAM_BOT_USERNAME: 'studio_test_bot',
      TELEGRAM_API_ROOT: 'http://127.0.0.1:9',
    });
    const unknown = await buildTestApp({ TELEGRAM_API_ROOT: 'http://127.0.0.1:9' });
    try {
      const code = (await referrals(named, telegramId)).json().code as string;
      expect((await referrals(named, telegramId)).json().link).toBe(
        `https://t.me/studio_test_bot?start=r_${code}`,
      );
      // getMe unreachable: no link rather than no answer.
      const answer = await referrals(unknown, telegramId);
      expect(answer.statusCode).toBe(200);
      expect(answer.json().link).toBeNull();
    } finally {
      await named.close();
      await unknown.close();
    }
  });
});
