import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initDataSecret, signInitData, verifyInitData } from '../src/deps/telegram-init-data.ts';
import {
  adminAuth,
  BOT_TOKEN,
  botAuth,
  buildTestApp,
  miniAppAuth,
  TELEGRAM_BOT_TOKEN,
} from './helpers/app.ts';
import { freshTelegramId } from './helpers/database.ts';

const secret = initDataSecret(TELEGRAM_BOT_TOKEN);

let app: FastifyInstance;
let telegramId: number;
beforeAll(async () => {
  app = await buildTestApp();
  telegramId = freshTelegramId();
  const created = await app.inject({
    method: 'POST',
    url: '/api/v1/users/sync',
    headers: botAuth,
    payload: { telegram_id: telegramId },
  });
  expect(created.statusCode).toBe(201);
});
afterAll(() => app.close());

const balance = (id: number, headers: Record<string, string> = {}) =>
  app.inject({ url: `/api/v1/users/${id}/balance`, headers });

function expectProblem(
  response: Awaited<ReturnType<typeof balance>>,
  status: number,
  code: string,
) {
  expect(response.statusCode).toBe(status);
  expect(response.headers['content-type']).toContain('application/problem+json');
  expect(response.json()).toMatchObject({ status, code });
}

describe('public routes', () => {
  it.each(['/', '/api/v1/health', '/api/v1/info', '/api/v1/models', '/docs/json'])(
    '%s needs no credentials',
    async (url) => {
      const response = await app.inject({ url });
      expect(response.statusCode).toBe(200);
    },
  );
});

describe('bot tokens', () => {
  it('no Authorization on a user route → 401 with WWW-Authenticate', async () => {
    const response = await balance(telegramId);
    expectProblem(response, 401, 'unauthorized');
    expect(response.headers['www-authenticate']).toContain('Bearer');
  });

  it('an unknown or malformed token → 401', async () => {
    expectProblem(
      await balance(telegramId, { authorization: 'Bearer not-a-real-token-at-all' }),
      401,
      'unauthorized',
    );
    expectProblem(
      await balance(telegramId, { authorization: `Bearer ${BOT_TOKEN}x` }),
      401,
      'unauthorized',
    );
    expectProblem(await balance(telegramId, { authorization: BOT_TOKEN }), 401, 'unauthorized');
    expectProblem(
      await balance(telegramId, { authorization: 'Basic dXNlcjpwYXNz' }),
      401,
      'unauthorized',
    );
  });

  it('a bot token acts for any user', async () => {
    expect((await balance(telegramId, botAuth)).statusCode).toBe(200);
  });

  it('a bad credential is refused even on a public route', async () => {
    const response = await app.inject({
      url: '/api/v1/models',
      headers: { authorization: 'Bearer wrong-token-0000000000' },
    });
    expectProblem(response, 401, 'unauthorized');
  });
});

describe('admin tokens', () => {
  const url = () => `/api/v1/admin/users/${telegramId}`;
  it('admin routes: none → 401, bot → 403, admin → 200', async () => {
    expectProblem(await app.inject({ url: url() }), 401, 'unauthorized');
    expectProblem(await app.inject({ url: url(), headers: botAuth }), 403, 'forbidden');
    const response = await app.inject({ url: url(), headers: adminAuth });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({
      telegram_id: telegramId,
      balance: 0,
      trial: { limit: 3 },
    });
  });

  it('a Mini App user is no admin', async () => {
    expectProblem(
      await app.inject({ url: url(), headers: miniAppAuth(telegramId) }),
      403,
      'forbidden',
    );
  });

  it('an admin can do what the bot can', async () => {
    expect((await balance(telegramId, adminAuth)).statusCode).toBe(200);
  });
});

describe('Telegram Mini App initData', () => {
  it('reaches its own telegram_id', async () => {
    const response = await balance(telegramId, miniAppAuth(telegramId));
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ telegram_id: telegramId, balance: 0 });
  });

  it("is refused another user's telegram_id with 403, on paths and in bodies", async () => {
    const other = telegramId + 1;
    expectProblem(await balance(other, miniAppAuth(telegramId)), 403, 'forbidden');
    expectProblem(
      await app.inject({ url: `/api/v1/users/${other}/trial`, headers: miniAppAuth(telegramId) }),
      403,
      'forbidden',
    );
    const sync = await app.inject({
      method: 'POST',
      url: '/api/v1/users/sync',
      headers: miniAppAuth(telegramId),
      payload: { telegram_id: other },
    });
    expectProblem(sync, 403, 'forbidden');
    const own = await app.inject({
      method: 'POST',
      url: '/api/v1/users/sync',
      headers: miniAppAuth(telegramId),
      payload: { telegram_id: telegramId, first_name: 'Mini' },
    });
    expect(own.statusCode).toBe(200);
  });

  it('refuses tampered, expired, future and unsigned initData with 401', async () => {
    const good = miniAppAuth(telegramId).authorization;
    const tampered = good.replace(
      encodeURIComponent(`"id":${telegramId}`),
      encodeURIComponent(`"id":${telegramId + 1}`),
    );
    expect(tampered).not.toBe(good);
    expectProblem(await balance(telegramId + 1, { authorization: tampered }), 401, 'unauthorized');
    const dayAndMore = Math.floor(Date.now() / 1000) - 86_400 - 60;
    expectProblem(
      await balance(telegramId, miniAppAuth(telegramId, dayAndMore)),
      401,
      'unauthorized',
    );
    const future = Math.floor(Date.now() / 1000) + 3600;
    expectProblem(await balance(telegramId, miniAppAuth(telegramId, future)), 401, 'unauthorized');
    expectProblem(
      await balance(telegramId, { authorization: 'tma auth_date=1&user=%7B%22id%22%3A1%7D' }),
      401,
      'unauthorized',
    );
  });

  it('signed with another bot token → 401', async () => {
    const initData = signInitData(
      {
        user: JSON.stringify({ id: telegramId }),
        auth_date: String(Math.floor(Date.now() / 1000)),
      },
      initDataSecret('987654321:AAanother-bot-token-abcdefghij'),
    );
    expectProblem(
      await balance(telegramId, { authorization: `tma ${initData}` }),
      401,
      'unauthorized',
    );
  });

  it('is refused when TELEGRAM_BOT_TOKEN is not configured', async () => {
    const other = await buildTestApp({ TELEGRAM_BOT_TOKEN: '' });
    try {
      const response = await other.inject({
        url: `/api/v1/users/${telegramId}/balance`,
        headers: miniAppAuth(telegramId),
      });
      expectProblem(response, 401, 'unauthorized');
      expect(response.json().detail).toMatch(/TELEGRAM_BOT_TOKEN/);
    } finally {
      await other.close();
    }
  });
});

describe('verifyInitData', () => {
  it('accepts what Telegram signs, field order and encoding notwithstanding', () => {
    const authDate = Math.floor(Date.now() / 1000);
    const raw = signInitData(
      {
        auth_date: String(authDate),
        user: JSON.stringify({ id: 42, first_name: 'Ä & B' }),
        chat_type: 'private',
      },
      secret,
    );
    const reordered = raw.split('&').reverse().join('&');
    expect(verifyInitData(reordered, secret, 60)).toEqual({
      telegramId: 42,
      authDate: new Date(authDate * 1000),
    });
  });
});
