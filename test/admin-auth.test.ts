import { createHash, randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/core/config.ts';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import {
  TelegramLoginError,
  telegramLoginSecret,
  verifyTelegramLogin,
} from '../src/deps/telegram-login.ts';
import { listAudit } from '../src/services/audit.ts';
import { adminAuth, botAuth, buildTestApp, miniAppAuth } from './helpers/app.ts';
import { freshTelegramId, openTestDatabase, sharedDatabase } from './helpers/database.ts';
import {
  ADMIN_OPERATOR_ID,
  operatorCookie,
  operatorSettings,
  SUPPORT_OPERATOR_ID,
  signIn,
  widgetLogin,
} from './helpers/operators.ts';

let database: DatabaseHandle;
let app: FastifyInstance;
let userId: number;

beforeAll(async () => {
  database = await sharedDatabase();
  app = await buildTestApp(operatorSettings);
  userId = freshTelegramId();
  await app.inject({
    method: 'POST',
    url: '/api/v1/users/sync',
    headers: botAuth,
    payload: { telegram_id: userId },
  });
});
afterAll(() => app.close());

const me = (headers: Record<string, string>) =>
  app.inject({ url: '/api/v1/admin/auth/me', headers });

const ban = (headers: Record<string, string>) =>
  app.inject({
    method: 'POST',
    url: `/api/v1/admin/users/${userId}/ban`,
    headers,
    payload: { reason: 'test' },
  });

const credit = (headers: Record<string, string>, amount = 5) =>
  app.inject({
    method: 'POST',
    url: `/api/v1/admin/users/${userId}/credits`,
    headers,
    payload: { amount, reason: 'test' },
  });

describe('the Telegram Login Widget check', () => {
  // The published vector of aiogram's tests (tests/test_utils/test_auth_widget.py).
  const token = '123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11';
  const published = {
    id: 42,
    first_name: 'John',
    last_name: 'Smith',
    username: 'username',
    photo_url: 'https://t.me/i/userpic/320/picname.jpg',
    auth_date: 1565810688,
    hash: 'c303db2b5a06fe41d23a9b14f7c545cfc11dcc7473c07c9c5034ae60062461ce',
  };
  const then = new Date((published.auth_date + 60) * 1000);

  it('accepts the published vector', () => {
    expect(verifyTelegramLogin(published, telegramLoginSecret(token), 86_400, then)).toEqual({
      telegramId: 42,
      authDate: new Date(published.auth_date * 1000),
    });
  });

  it('refuses a forged hash, a changed field, a field left out, another bot and an old one', () => {
    const secret = telegramLoginSecret(token);
    const forged = `${published.hash.slice(0, -1)}${published.hash.endsWith('e') ? 'f' : 'e'}`;
    const { username: _username, ...withoutUsername } = published;
    for (const fields of [
      { ...published, hash: forged },
      { ...published, id: 43 },
      withoutUsername,
      { ...published, hash: 'not hex' },
    ]) {
      expect(() => verifyTelegramLogin(fields, secret, 86_400, then)).toThrow(TelegramLoginError);
    }
    expect(() =>
      verifyTelegramLogin(published, telegramLoginSecret(`${token}x`), 86_400, then),
    ).toThrow(/signature/);
    const dayLater = new Date((published.auth_date + 86_401) * 1000);
    expect(() => verifyTelegramLogin(published, secret, 86_400, dayLater)).toThrow(/expired/);
  });
});

describe('POST /api/v1/admin/auth/telegram', () => {
  it('opens a session: the cookie is HttpOnly, Secure, SameSite=Strict, for the admin routes', async () => {
    const before = Date.now();
    const response = await signIn(app, widgetLogin(ADMIN_OPERATOR_ID));
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toEqual({
      actor: `operator:${ADMIN_OPERATOR_ID}`,
      telegram_id: ADMIN_OPERATOR_ID,
      role: 'admin',
      expires_at: expect.any(String),
    });
    const expiresAt = Date.parse(response.json().expires_at);
    expect(expiresAt).toBeGreaterThanOrEqual(before + 43_200_000 - 2000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 43_200_000 + 2000);
    const setCookie = response.headers['set-cookie'];
    expect(setCookie).toMatch(
      /^operator_session=[A-Za-z0-9_-]{43}; Max-Age=43200; Path=\/api\/v1\/admin; HttpOnly; Secure; SameSite=Strict$/,
    );
    // Only the token's SHA-256 is stored.
    const token = String(setCookie).split(';')[0]?.split('=')[1] ?? '';
    const [stored] = await selectRows<{ raw: number; hashed: number }>(
      database.db,
      sql`SELECT count(*) FILTER (WHERE token_sha256 = ${token})::int AS raw,
                 count(*) FILTER (WHERE token_sha256 = ${sha256(token)})::int AS hashed
          FROM operator_sessions`,
    );
    expect(stored).toEqual({ raw: 0, hashed: 1 });
  });

  it('a support operator gets the support role; anyone else is refused (403)', async () => {
    const support = await signIn(app, widgetLogin(SUPPORT_OPERATOR_ID));
    expect(support.statusCode, support.body).toBe(200);
    expect(support.json().role).toBe('support');
    const stranger = await signIn(app, widgetLogin(freshTelegramId()));
    expect(stranger.statusCode).toBe(403);
    expect(stranger.json().code).toBe('forbidden');
    expect(stranger.headers['set-cookie']).toBeUndefined();
  });

  it('refuses a forged hash and an expired authorization (401), with no cookie', async () => {
    const fields = widgetLogin(ADMIN_OPERATOR_ID);
    const forged = await signIn(app, { ...fields, first_name: 'Someone else' });
    expect(forged.statusCode).toBe(401);
    expect(forged.json().detail).toMatch(/signature/);
    const dayAgo = Math.floor(Date.now() / 1000) - 86_401;
    const expired = await signIn(app, widgetLogin(ADMIN_OPERATOR_ID, dayAgo));
    expect(expired.statusCode).toBe(401);
    expect(expired.json().detail).toMatch(/expired/);
    const otherBot = await signIn(
      app,
      widgetLogin(ADMIN_OPERATOR_ID, undefined, '987654321:AAother-bot-token-0123456789'),
    );
    expect(otherBot.statusCode).toBe(401);
    for (const response of [forged, expired, otherBot]) {
      expect(response.headers['set-cookie']).toBeUndefined();
    }
  });

  it('counts refused logins as failed authentications: past AUTH_FAILURE_LIMIT, 429', async () => {
    const strict = await buildTestApp({ ...operatorSettings, AUTH_FAILURE_LIMIT: '2' });
    try {
      const forged = { ...widgetLogin(ADMIN_OPERATOR_ID), first_name: 'Mallory' };
      const octet = () => Math.floor(Math.random() * 250) + 1;
      const address = { remoteAddress: `10.${octet()}.${octet()}.${octet()}` };
      const attempt = (payload: object) =>
        strict.inject({ method: 'POST', url: '/api/v1/admin/auth/telegram', payload, ...address });
      expect((await attempt(forged)).statusCode).toBe(401);
      expect((await attempt(forged)).statusCode).toBe(401);
      const blocked = await attempt(forged);
      expect(blocked.statusCode).toBe(429);
      expect(blocked.json().code).toBe('too_many_failed_authentications');
      // Even a good login waits out the minute from that address.
      expect((await attempt(widgetLogin(ADMIN_OPERATOR_ID))).statusCode).toBe(429);
    } finally {
      await strict.close();
    }
  });

  it('takes the age limit from OPERATOR_LOGIN_MAX_AGE_SECONDS', async () => {
    const strict = await buildTestApp({
      ...operatorSettings,
      OPERATOR_LOGIN_MAX_AGE_SECONDS: '60',
    });
    try {
      const twoMinutesAgo = Math.floor(Date.now() / 1000) - 120;
      const response = await signIn(strict, widgetLogin(ADMIN_OPERATOR_ID, twoMinutesAgo));
      expect(response.statusCode).toBe(401);
      expect((await signIn(strict, widgetLogin(ADMIN_OPERATOR_ID))).statusCode).toBe(200);
    } finally {
      await strict.close();
    }
  });

  it('refuses a field the widget does not send (422)', async () => {
    const response = await signIn(app, { ...widgetLogin(ADMIN_OPERATOR_ID), role: 'admin' });
    expect(response.statusCode).toBe(422);
  });

  it('records the login in the audit log', async () => {
    const operator = freshTelegramId();
    const local = await buildTestApp({ ADMIN_TELEGRAM_IDS: String(operator) });
    try {
      const response = await local.inject({
        method: 'POST',
        url: '/api/v1/admin/auth/telegram',
        headers: { 'x-request-id': 'login-request-1' },
        payload: widgetLogin(operator),
      });
      expect(response.statusCode).toBe(200);
      const { items } = await listAudit(database.db, { actor: `operator:${operator}`, limit: 5 });
      expect(items).toEqual([
        expect.objectContaining({
          role: 'admin',
          action: 'operator.login',
          subject_type: 'operator_session',
          after: { role: 'admin', expires_at: response.json().expires_at },
          request_id: 'login-request-1',
        }),
      ]);
    } finally {
      await local.close();
    }
  });
});

describe('operator sessions on the admin routes', () => {
  it('GET /admin/auth/me tells who the operator is, its role and when the session ends', async () => {
    const cookie = await operatorCookie(app, SUPPORT_OPERATOR_ID);
    const response = await me(cookie);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toEqual({
      actor: `operator:${SUPPORT_OPERATOR_ID}`,
      telegram_id: SUPPORT_OPERATOR_ID,
      role: 'support',
      expires_at: expect.any(String),
    });
    expect((await me(adminAuth)).json()).toEqual({
      actor: expect.stringMatching(/^admin:[0-9a-f]{12}$/),
      telegram_id: null,
      role: 'admin',
      expires_at: null,
    });
  });

  it('a support operator reads users and adjusts credits but cannot ban (403) or read the audit log', async () => {
    const support = await operatorCookie(app, SUPPORT_OPERATOR_ID);
    expect(
      (await app.inject({ url: `/api/v1/admin/users/${userId}`, headers: support })).statusCode,
    ).toBe(200);
    expect((await credit(support)).statusCode).toBe(201);
    const banned = await ban(support);
    expect(banned.statusCode).toBe(403);
    expect(banned.json()).toMatchObject({
      code: 'forbidden',
      detail: expect.stringMatching(/support/),
    });
    expect((await app.inject({ url: '/api/v1/admin/audit', headers: support })).statusCode).toBe(
      403,
    );
    const admin = await operatorCookie(app, ADMIN_OPERATOR_ID);
    expect((await ban(admin)).statusCode).toBe(200);
    expect((await app.inject({ url: '/api/v1/admin/audit', headers: admin })).statusCode).toBe(200);
  });

  it('logout revokes the session on the server and clears the cookie', async () => {
    const cookie = await operatorCookie(app, ADMIN_OPERATOR_ID);
    const out = await app.inject({
      method: 'POST',
      url: '/api/v1/admin/auth/logout',
      headers: cookie,
    });
    expect(out.statusCode, out.body).toBe(200);
    expect(out.json()).toEqual({ revoked: true });
    expect(out.headers['set-cookie']).toBe(
      'operator_session=; Max-Age=0; Path=/api/v1/admin; HttpOnly; Secure; SameSite=Strict',
    );
    // The browser may keep sending the old cookie: the server refuses it.
    const after = await me(cookie);
    expect(after.statusCode).toBe(401);
    expect(after.json().detail).toMatch(/ended/);
    const { items } = await listAudit(database.db, {
      actor: `operator:${ADMIN_OPERATOR_ID}`,
      action: 'operator.logout',
      limit: 1,
    });
    expect(items).toHaveLength(1);
    // A token caller has no session to end.
    const token = await app.inject({
      method: 'POST',
      url: '/api/v1/admin/auth/logout',
      headers: adminAuth,
    });
    expect(token.json()).toEqual({ revoked: false });
  });

  it('refuses an expired session', async () => {
    const cookie = await operatorCookie(app, ADMIN_OPERATOR_ID);
    expect((await me(cookie)).statusCode).toBe(200);
    await database.db.execute(
      // This session only: other test files sign the same operator in.
      sql`UPDATE operator_sessions SET expires_at = now() - interval '1 second'
          WHERE token_sha256 = ${sha256(cookie.cookie.split('=')[1] ?? '')}`,
    );
    expect((await me(cookie)).statusCode).toBe(401);
  });

  it('a role taken off the settings stops working at the next request; a changed role applies at once', async () => {
    const operator = freshTelegramId();
    const before = await buildTestApp({ ADMIN_TELEGRAM_IDS: String(operator) });
    const cookie = await operatorCookie(before, operator);
    await before.close();
    // The same database, the settings changed (a restart with other lists).
    const demoted = await buildTestApp({ SUPPORT_TELEGRAM_IDS: String(operator) });
    try {
      expect((await me(cookie)).statusCode).toBe(401); // this app does not know the id at all
      const view = await demoted.inject({ url: '/api/v1/admin/auth/me', headers: cookie });
      expect(view.json().role).toBe('support');
      const refused = await demoted.inject({
        method: 'POST',
        url: `/api/v1/admin/users/${userId}/ban`,
        headers: cookie,
        payload: { reason: 'x' },
      });
      expect(refused.statusCode).toBe(403);
    } finally {
      await demoted.close();
    }
    const removed = await me(cookie);
    expect(removed.statusCode).toBe(401);
    expect(removed.json().detail).toMatch(/no longer an operator/);
  });

  it('the role lists are runtime settings: a change applies at the next request', async () => {
    // A database of its own: the lists it changes are every app's on a shared database.
    const own = await openTestDatabase.embedded();
    const local = await buildTestApp({ ...operatorSettings, DATABASE_URL: 'memory://' }, own);
    const patch = (values: Record<string, unknown>) =>
      local.inject({
        method: 'PATCH',
        url: '/api/v1/admin/settings',
        headers: adminAuth,
        payload: { values, reason: 'staffing' },
      });
    try {
      const newcomer = freshTelegramId();
      expect((await signIn(local, widgetLogin(newcomer))).statusCode).toBe(403);
      expect(
        (await patch({ SUPPORT_TELEGRAM_IDS: [SUPPORT_OPERATOR_ID, newcomer] })).statusCode,
      ).toBe(200);
      const cookie = await operatorCookie(local, newcomer);
      const meNow = () => local.inject({ url: '/api/v1/admin/auth/me', headers: cookie });
      expect((await meNow()).json().role).toBe('support');
      // Promoted: an admin at its next request, with the same session.
      expect((await patch({ ADMIN_TELEGRAM_IDS: [ADMIN_OPERATOR_ID, newcomer] })).statusCode).toBe(
        200,
      );
      expect((await meNow()).json().role).toBe('admin');
      // Taken off both lists: refused at its next request.
      expect(
        (await patch({ ADMIN_TELEGRAM_IDS: null, SUPPORT_TELEGRAM_IDS: null })).statusCode,
      ).toBe(200);
      const refused = await meNow();
      expect(refused.statusCode).toBe(401);
      expect(refused.json().detail).toMatch(/no longer an operator/);
      expect((await patch({ SUPPORT_TELEGRAM_IDS: [0] })).statusCode).toBe(422);
      expect((await patch({ ADMIN_TELEGRAM_IDS: [5, 5] })).statusCode).toBe(422);
    } finally {
      await local.close();
      await own.close();
    }
  });

  it('reads the cookie on the admin routes only; an Authorization header wins over it', async () => {
    const cookie = await operatorCookie(app, ADMIN_OPERATOR_ID);
    const balance = await app.inject({ url: `/api/v1/users/${userId}/balance`, headers: cookie });
    expect(balance.statusCode).toBe(401);
    const withBot = await me({ ...cookie, ...botAuth });
    expect(withBot.statusCode).toBe(403);
    const garbage = await me({ cookie: 'operator_session=not-a-token' });
    expect(garbage.statusCode).toBe(401);
  });

  it('refuses a cookie-authenticated write from another site (CSRF); reads and same-origin writes pass', async () => {
    const cookie = await operatorCookie(app, ADMIN_OPERATOR_ID);
    const crossSite: Record<string, string>[] = [
      { 'sec-fetch-site': 'cross-site' },
      { origin: 'https://evil.example' },
      { origin: 'null' },
    ];
    for (const headers of crossSite) {
      const response = await credit({ ...cookie, ...headers });
      expect(response.statusCode, JSON.stringify(headers)).toBe(403);
      expect(response.json().code).toBe('forbidden');
    }
    const sameOrigin = await credit({
      ...cookie,
      origin: 'http://admin.local',
      host: 'admin.local',
      'sec-fetch-site': 'same-origin',
    });
    expect(sameOrigin.statusCode, sameOrigin.body).toBe(201);
    const crossSiteRead = await me({ ...cookie, 'sec-fetch-site': 'cross-site' });
    expect(crossSiteRead.statusCode).toBe(200);
    // A token is no ambient credential: no such check.
    expect((await credit({ ...adminAuth, origin: 'https://evil.example' })).statusCode).toBe(201);
  });

  it('a Mini App user and the bot reach no admin route (every one the OpenAPI document lists)', async () => {
    const document = (await app.inject({ url: '/docs/json' })).json() as {
      paths: Record<string, Record<string, unknown>>;
    };
    const routes = Object.entries(document.paths)
      .filter(([path]) => path.startsWith('/api/v1/admin/') && !SIGN_IN_ROUTES.includes(path))
      .flatMap(([path, methods]) => Object.keys(methods).map((method) => [method, path] as const));
    expect(routes.length).toBeGreaterThanOrEqual(8);
    for (const headers of [miniAppAuth(userId), botAuth]) {
      for (const [method, path] of routes) {
        const url = path.replaceAll(/\{(\w+)\}/g, (_, name: string) =>
          name === 'telegram_id' ? String(userId) : name === 'id' ? randomUUID() : 'x',
        );
        const response = await app.inject({
          method: method.toUpperCase() as 'GET' | 'POST',
          url,
          headers,
          ...(method === 'get' ? {} : { payload: { amount: 1, reason: 'x' } }),
        });
        expect(response.statusCode, `${method} ${url}`).toBe(403);
        expect(response.json().code).toBe('forbidden');
      }
    }
  });
});

describe('GET /api/v1/admin/auth/options', () => {
  it('names the bot of the Telegram Login Widget only when the widget can be checked too', async () => {
    const named = await buildTestApp({ TELEGRAM_BOT_USERNAME: '@panel_test_bot' });
    const unnamed = await buildTestApp({});
    const unchecked = await buildTestApp({
      TELEGRAM_BOT_USERNAME: 'panel_test_bot',
      TELEGRAM_BOT_TOKEN: '',
    });
    try {
      const options = async (of: FastifyInstance) => {
        const response = await of.inject({ url: '/api/v1/admin/auth/options' });
        expect(response.statusCode).toBe(200);
        return response.json();
      };
      expect(await options(named)).toEqual({ telegram_login: { bot_username: 'panel_test_bot' } });
      expect(await options(unnamed)).toEqual({ telegram_login: null });
      expect(await options(unchecked)).toEqual({ telegram_login: null });
    } finally {
      await Promise.all([named.close(), unnamed.close(), unchecked.close()]);
    }
  });

  it("refuses a TELEGRAM_BOT_USERNAME that is not a bot's username", () => {
    expect(() => loadConfig({ TELEGRAM_BOT_USERNAME: 'https://t.me/x' })).toThrow(
      /TELEGRAM_BOT_USERNAME must be the bot's username/,
    );
    expect(() => loadConfig({ TELEGRAM_BOT_USERNAME: 'someone' })).toThrow(ConfigError);
  });
});

describe('the operators settings', () => {
  it('default to no operators, a day for the login, 12 hours of session and 1000 credits for support', () => {
    expect(loadConfig({}).operators).toEqual({
      adminTelegramIds: [],
      supportTelegramIds: [],
      loginMaxAgeSeconds: 86_400,
      sessionSeconds: 43_200,
      supportCreditLimit: 1000,
      adminChatId: null,
      dailyReportHour: 6,
      loginBotUsername: null,
    });
    expect(
      loadConfig({
        ADMIN_TELEGRAM_IDS: '1, 22',
        SUPPORT_TELEGRAM_IDS: '333',
        OPERATOR_LOGIN_MAX_AGE_SECONDS: '600',
        OPERATOR_SESSION_SECONDS: '3600',
        SUPPORT_CREDIT_LIMIT: '0',
      }).operators,
    ).toEqual({
      adminTelegramIds: [1, 22],
      supportTelegramIds: [333],
      loginMaxAgeSeconds: 600,
      sessionSeconds: 3600,
      supportCreditLimit: 0,
      adminChatId: null,
      dailyReportHour: 6,
      loginBotUsername: null,
    });
  });

  it('refuse an id that is not a Telegram id, and an id in both lists', () => {
    expect(() => loadConfig({ ADMIN_TELEGRAM_IDS: '12,@someone' })).toThrow(
      /ADMIN_TELEGRAM_IDS must be a comma list of Telegram user ids, got "@someone"/,
    );
    expect(() => loadConfig({ ADMIN_TELEGRAM_IDS: '5', SUPPORT_TELEGRAM_IDS: '5' })).toThrow(
      ConfigError,
    );
    expect(() => loadConfig({ OPERATOR_SESSION_SECONDS: '10' })).toThrow(
      /OPERATOR_SESSION_SECONDS/,
    );
  });
});

/** The admin routes anyone may call: signing in, and how to. */
const SIGN_IN_ROUTES = ['/api/v1/admin/auth/telegram', '/api/v1/admin/auth/options'];

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
