import { randomInt } from 'node:crypto';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../src/core/errors.ts';
import { registerProblemHandlers } from '../src/core/problem.ts';
import { callerMayActFor, registerAuth } from '../src/deps/auth.ts';
import { clientKey } from '../src/deps/auth-failures.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { botAuth, buildTestApp, miniAppAuth, testConfig } from './helpers/app.ts';
import { freshTelegramId, sharedDatabase, testRedisUrl } from './helpers/database.ts';
import { createTestModel, submit, userWithCredits } from './helpers/pipeline.ts';

/** A client address no other test (or earlier run sharing Redis) uses: 10.x.y.z at random. */
function freshAddress(): string {
  return `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;
}

const badToken = { authorization: 'Bearer not-the-token-0123456789' };

function expectProblem(response: LightMyRequestResponse, status: number, code: string) {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toContain('application/problem+json');
  expect(response.json()).toMatchObject({ status, code });
}

describe('failed authentications are limited per client address (AUTH_FAILURE_LIMIT)', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    // The request rate limit is far away: only failed authentications are counted here.
    app = await buildTestApp({ AUTH_FAILURE_LIMIT: '3', REDIS_URL: '' });
  });
  afterAll(() => app.close());

  const call = (remoteAddress: string, headers: Record<string, string>, id = freshTelegramId()) =>
    app.inject({ url: `/api/v1/users/${id}/balance`, headers, remoteAddress });

  it('answers 429 problem+json with Retry-After once an address has failed N times', async () => {
    const address = freshAddress();
    for (let i = 0; i < 3; i++) expectProblem(await call(address, badToken), 401, 'unauthorized');
    const limited = await call(address, badToken);
    expectProblem(limited, 429, 'too_many_failed_authentications');
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(limited.json().retryAfterSeconds).toBe(retryAfter);
    // Blocked before its credentials are looked at: a right guess would not tell.
    expectProblem(await call(address, botAuth), 429, 'too_many_failed_authentications');
  });

  it('counts bad initData too, and never holds back a caller at another address', async () => {
    const address = freshAddress();
    const forged = { authorization: 'tma auth_date=1&user=%7B%22id%22%3A1%7D&hash=00' };
    for (let i = 0; i < 3; i++) expectProblem(await call(address, forged), 401, 'unauthorized');
    expectProblem(await call(address, forged), 429, 'too_many_failed_authentications');
    const elsewhere = freshAddress();
    expect((await call(elsewhere, botAuth)).statusCode).toBe(404);
    const telegramId = freshTelegramId();
    const miniApp = await app.inject({
      method: 'POST',
      url: '/api/v1/users/sync',
      headers: miniAppAuth(telegramId),
      payload: { telegram_id: telegramId },
      remoteAddress: elsewhere,
    });
    expect(miniApp.statusCode).toBe(201);
  });

  it('lets successes through and counts only failures', async () => {
    const address = freshAddress();
    for (let i = 0; i < 2; i++) expectProblem(await call(address, badToken), 401, 'unauthorized');
    for (let i = 0; i < 5; i++) expect((await call(address, botAuth)).statusCode).toBe(404);
    // No credentials at all is no guess: a public route stays open to the address.
    expect((await app.inject({ url: '/api/v1/models', remoteAddress: address })).statusCode).toBe(
      200,
    );
    expectProblem(await call(address, badToken), 401, 'unauthorized');
    expectProblem(await call(address, badToken), 429, 'too_many_failed_authentications');
  });

  it('counts an IPv6 client by its /64, and an IPv4-mapped one as its IPv4 address', async () => {
    const prefix = `2001:db8:${randomInt(0xffff).toString(16)}:${randomInt(0xffff).toString(16)}`;
    for (let i = 1; i <= 3; i++) {
      expectProblem(await call(`${prefix}::${i}`, badToken), 401, 'unauthorized');
    }
    expectProblem(await call(`${prefix}::ffff`, badToken), 429, 'too_many_failed_authentications');
    expect((await call(`2001:db8:1::${randomInt(0xffff).toString(16)}`, botAuth)).statusCode).toBe(
      404,
    );
    const v4 = freshAddress();
    for (let i = 0; i < 3; i++) {
      expectProblem(await call(`::ffff:${v4}`, badToken), 401, 'unauthorized');
    }
    expectProblem(await call(v4, botAuth), 429, 'too_many_failed_authentications');
    expect(clientKey('2001:db8:a:b:c:d:e:f')).toBe('2001:db8:a:b::/64');
    expect(clientKey('::ffff:192.0.2.1')).toBe('192.0.2.1');
  });

  it('is off with AUTH_FAILURE_LIMIT=0', async () => {
    const open = await buildTestApp({ AUTH_FAILURE_LIMIT: '0' });
    try {
      const address = freshAddress();
      for (let i = 0; i < 6; i++) {
        const response = await open.inject({
          url: '/api/v1/models',
          headers: badToken,
          remoteAddress: address,
        });
        expect(response.statusCode).toBe(401);
      }
    } finally {
      await open.close();
    }
  });
});

describe.skipIf(!testRedisUrl)('failed authentications shared through Redis', () => {
  it('two API processes (apps) count one address together; the key lives in Redis', async () => {
    const settings = { REDIS_URL: testRedisUrl ?? '', AUTH_FAILURE_LIMIT: '4' };
    const first = await buildTestApp(settings);
    const second = await buildTestApp(settings);
    try {
      const address = freshAddress();
      const statuses: number[] = [];
      for (const app of [first, second, first, second, first, second]) {
        const response = await app.inject({
          url: '/api/v1/models',
          headers: badToken,
          remoteAddress: address,
        });
        statuses.push(response.statusCode);
      }
      expect(statuses).toEqual([401, 401, 401, 401, 429, 429]);
      for (const app of [first, second]) {
        const response = await app.inject({
          url: '/api/v1/models',
          headers: botAuth,
          remoteAddress: address,
        });
        expect(response.statusCode).toBe(429);
      }
      const other = await second.inject({
        url: '/api/v1/models',
        headers: botAuth,
        remoteAddress: freshAddress(),
      });
      expect(other.statusCode).toBe(200);
      const redis = new Redis(testRedisUrl ?? '');
      try {
        expect(Number(await redis.get(`imagegen:authfail:${address}`))).toBe(5);
        expect(await redis.pttl(`imagegen:authfail:${address}`)).toBeGreaterThan(0);
      } finally {
        await redis.quit();
      }
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('fails open when Redis goes away: failures answer 401, successes pass', async () => {
    // Redis reached through a proxy the test can cut: a real outage for this app only.
    const target = new URL(testRedisUrl ?? '');
    const sockets = new Set<Socket>();
    const proxy = createServer((client) => {
      const upstream = connect(Number(target.port || 6379), target.hostname);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('error', () => socket.destroy());
        socket.on('close', () => sockets.delete(socket));
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const { port } = proxy.address() as AddressInfo;
    const app = await buildTestApp({
      REDIS_URL: `redis://127.0.0.1:${port}`,
      AUTH_FAILURE_LIMIT: '2',
    });
    try {
      await new Promise<void>((resolve) => {
        proxy.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      const address = freshAddress();
      for (let i = 0; i < 4; i++) {
        const response = await app.inject({
          url: '/api/v1/models',
          headers: badToken,
          remoteAddress: address,
        });
        expectProblem(response, 401, 'unauthorized');
      }
      const good = await app.inject({
        url: '/api/v1/models',
        headers: botAuth,
        remoteAddress: address,
      });
      expect(good.statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});

describe('a Mini App user acts only for itself, and where that cannot be checked it is refused', () => {
  let app: FastifyInstance;
  const owner = 4242;
  beforeAll(async () => {
    app = Fastify();
    registerProblemHandlers(app);
    registerAuth(app, testConfig({ AUTH_FAILURE_LIMIT: '0' }));
    // A user route that names no telegram_id and declares nothing.
    app.get('/undeclared', { config: { access: 'user' } }, async () => ({ ok: true }));
    // Declared as checked by its handler, which does check.
    app.get('/checked', { config: { access: 'user', ownership: 'handler' } }, async (request) => {
      if (!callerMayActFor(request, owner)) throw new AppError('not_found', 'No such thing.');
      return { ok: true };
    });
    // Declared as checked by its handler, which forgets to.
    app.get('/forgotten', { config: { access: 'user', ownership: 'handler' } }, async () => ({
      ok: true,
    }));
    await app.ready();
  });
  afterAll(() => app.close());

  it('a user route with no telegram_id to compare refuses a Mini App user with 403', async () => {
    expectProblem(
      await app.inject({ url: '/undeclared', headers: miniAppAuth(owner) }),
      403,
      'forbidden',
    );
    expect((await app.inject({ url: '/undeclared', headers: botAuth })).statusCode).toBe(200);
  });

  it("ownership: 'handler' admits what the handler checked, refuses what it did not", async () => {
    expect((await app.inject({ url: '/checked', headers: miniAppAuth(owner) })).statusCode).toBe(
      200,
    );
    expectProblem(
      await app.inject({ url: '/checked', headers: miniAppAuth(owner + 1) }),
      404,
      'not_found',
    );
    expectProblem(
      await app.inject({ url: '/forgotten', headers: miniAppAuth(owner) }),
      403,
      'forbidden',
    );
    expect((await app.inject({ url: '/forgotten', headers: botAuth })).statusCode).toBe(200);
  });

  it('GET /generations/{id} declares it and keeps working: the owner sees it, others get 404', async () => {
    const provider = new ScriptedProvider();
    const real = await buildTestApp({ TRIAL_GENERATIONS: '0' }, undefined, {
      providers: new ProviderRegistry([provider], 'catalog'),
    });
    try {
      const model = await createTestModel((await sharedDatabase()).db, {
        provider: provider.name,
      });
      const telegramId = freshTelegramId();
      await userWithCredits(real, telegramId, 100);
      const accepted = await submit(real, {
        telegram_id: telegramId,
        model: model.key,
        prompt: 'x',
      });
      expect(accepted.statusCode, accepted.body).toBe(202);
      const url = `/api/v1/generations/${accepted.json().id}`;
      expect((await real.inject({ url, headers: miniAppAuth(telegramId) })).statusCode).toBe(200);
      expectProblem(
        await real.inject({ url, headers: miniAppAuth(telegramId + 1) }),
        404,
        'generation_not_found',
      );
      expect((await real.inject({ url, headers: botAuth })).statusCode).toBe(200);
    } finally {
      await real.close();
    }
  });
});

describe('Mini App initData lifetime', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await buildTestApp();
  });
  afterAll(() => app.close());

  it('is an hour by default: 50 minutes old is accepted, 2 hours old is refused', async () => {
    const telegramId = freshTelegramId();
    const now = Math.floor(Date.now() / 1000);
    const sync = (authDate: number) =>
      app.inject({
        method: 'POST',
        url: '/api/v1/users/sync',
        headers: miniAppAuth(telegramId, authDate),
        payload: { telegram_id: telegramId },
      });
    expect((await sync(now - 50 * 60)).statusCode).toBe(201);
    const stale = await sync(now - 2 * 3600);
    expectProblem(stale, 401, 'unauthorized');
    expect(stale.json().detail).toMatch(/expired/);
  });
});
