import { randomUUID } from 'node:crypto';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { botAuth, buildTestApp } from './helpers/app.ts';
import { freshTelegramId, testRedisUrl } from './helpers/database.ts';

describe('X-Request-ID', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await buildTestApp();
  });
  afterAll(() => app.close());

  it('keeps a sane incoming id and echoes it, on success and on errors', async () => {
    const ok = await app.inject({
      url: '/api/v1/info',
      headers: { 'x-request-id': 'bot-update-991:a.b_c' },
    });
    expect(ok.headers['x-request-id']).toBe('bot-update-991:a.b_c');
    const missing = await app.inject({ url: '/nowhere', headers: { 'x-request-id': 'trace-7' } });
    expect(missing.statusCode).toBe(404);
    expect(missing.headers['x-request-id']).toBe('trace-7');
    expect(missing.json()).toMatchObject({ requestId: 'trace-7', code: 'not_found' });
    const refused = await app.inject({
      url: '/api/v1/users/1/balance',
      headers: { 'x-request-id': 'trace-8' },
    });
    expect(refused.statusCode).toBe(401);
    expect(refused.headers['x-request-id']).toBe('trace-8');
  });

  it.each([
    ['too long', 'a'.repeat(129)],
    ['spaces and quotes', 'hello "world"'],
    ['a log-injection attempt', 'x\\n{"level":60}'],
  ])('replaces an id with %s by a fresh UUID', async (_label, value) => {
    const response = await app.inject({ url: '/api/v1/info', headers: { 'x-request-id': value } });
    expect(response.headers['x-request-id']).not.toBe(value);
    expect(response.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('makes a different id for each request that brings none', async () => {
    const a = await app.inject({ url: '/api/v1/info' });
    const b = await app.inject({ url: '/api/v1/info' });
    expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id']);
  });
});

describe('CORS from CORS_ORIGINS', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await buildTestApp({
      CORS_ORIGINS: 'https://mini.example.com, https://admin.example.com',
    });
  });
  afterAll(() => app.close());

  it('allows a listed origin and exposes the request id', async () => {
    const response = await app.inject({
      url: '/api/v1/models',
      headers: { origin: 'https://admin.example.com' },
    });
    expect(response.headers['access-control-allow-origin']).toBe('https://admin.example.com');
    expect(response.headers['access-control-expose-headers']).toContain('x-request-id');
  });

  it('answers a preflight for a listed origin, without credentials', async () => {
    const response = await app.inject({
      method: 'OPTIONS',
      url: '/api/v1/users/sync',
      headers: {
        origin: 'https://mini.example.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    });
    expect(response.statusCode).toBe(204);
    expect(response.headers['access-control-allow-origin']).toBe('https://mini.example.com');
    expect(response.headers['access-control-allow-headers']).toContain('authorization');
  });

  it('gives no CORS headers to an origin not listed', async () => {
    const response = await app.inject({
      url: '/api/v1/models',
      headers: { origin: 'https://evil.example.net' },
    });
    expect(response.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('gives none at all when CORS_ORIGINS is empty', async () => {
    const closed = await buildTestApp();
    try {
      const response = await closed.inject({
        url: '/api/v1/models',
        headers: { origin: 'https://mini.example.com' },
      });
      expect(response.headers['access-control-allow-origin']).toBeUndefined();
    } finally {
      await closed.close();
    }
  });
});

async function exhaust(app: FastifyInstance, url: string, times: number, headers = botAuth) {
  const statuses: number[] = [];
  for (let i = 0; i < times; i++) statuses.push((await app.inject({ url, headers })).statusCode);
  return statuses;
}

describe('rate limit from RATE_LIMIT_*', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await buildTestApp({ RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_SECONDS: '60' });
  });
  afterAll(() => app.close());

  it('answers 429 problem+json with Retry-After and RateLimit headers past the limit', async () => {
    const telegramId = freshTelegramId();
    const url = `/api/v1/users/${telegramId}/trial`;
    const first = await app.inject({ url, headers: botAuth });
    expect(first.headers['ratelimit-limit']).toBe('3');
    expect(first.headers['ratelimit-remaining']).toBe('2');
    expect(await exhaust(app, url, 2)).toEqual([404, 404]);
    const limited = await app.inject({ url, headers: botAuth });
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['content-type']).toContain('application/problem+json');
    expect(limited.json()).toMatchObject({ status: 429, code: 'rate_limited' });
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(limited.headers['ratelimit-remaining']).toBe('0');
    expect(limited.headers['x-request-id']).toBeDefined();
  });

  it('on user routes keys by token and telegram_id: one heavy user does not throttle another', async () => {
    const heavy = freshTelegramId();
    const other = freshTelegramId();
    await exhaust(app, `/api/v1/users/${heavy}/balance`, 3);
    expect(
      (await app.inject({ url: `/api/v1/users/${heavy}/balance`, headers: botAuth })).statusCode,
    ).toBe(429);
    expect(
      (await app.inject({ url: `/api/v1/users/${other}/balance`, headers: botAuth })).statusCode,
    ).toBe(404);
  });

  it('keys users/sync by the telegram_id in the body', async () => {
    const heavy = freshTelegramId();
    const sync = (telegram_id: number) =>
      app.inject({
        method: 'POST',
        url: '/api/v1/users/sync',
        headers: botAuth,
        payload: { telegram_id },
      });
    for (let i = 0; i < 3; i++) expect((await sync(heavy)).statusCode).toBeLessThan(300);
    expect((await sync(heavy)).statusCode).toBe(429);
    expect((await sync(freshTelegramId())).statusCode).toBe(201);
  });

  it('never throttles the health check', async () => {
    expect(await exhaust(app, '/api/v1/health', 6, {} as typeof botAuth)).toEqual([
      200, 200, 200, 200, 200, 200,
    ]);
  });

  it('is off with RATE_LIMIT_ENABLED=false', async () => {
    const open = await buildTestApp({ RATE_LIMIT_ENABLED: 'false', RATE_LIMIT_MAX: '1' });
    try {
      const statuses = await exhaust(open, '/api/v1/models', 4, {} as typeof botAuth);
      expect(statuses).toEqual([200, 200, 200, 200]);
    } finally {
      await open.close();
    }
  });
});

describe('rate limit shared through Redis', () => {
  it('two API processes (apps) share one budget when REDIS_URL is set', async (context) => {
    if (!testRedisUrl) {
      console.info('skipped: set TEST_REDIS_URL to run the Redis-backed rate-limit test');
      context.skip();
      return;
    }
    const settings = {
      REDIS_URL: testRedisUrl,
      RATE_LIMIT_MAX: '4',
      RATE_LIMIT_WINDOW_SECONDS: '60',
    };
    const first = await buildTestApp(settings);
    const second = await buildTestApp(settings);
    try {
      // (Not through /api/v1/info: that is keyed by IP, and other runs may have spent that budget.)
      expect(first.deps.rateLimitStore).toBe('redis');
      const url = `/api/v1/users/${freshTelegramId()}/balance`;
      const statuses = [];
      for (const app of [first, second, first, second, first, second]) {
        statuses.push((await app.inject({ url, headers: botAuth })).statusCode);
      }
      expect(statuses).toEqual([404, 404, 404, 404, 429, 429]);
      const redis = new Redis(testRedisUrl);
      const keys = await redis.keys('imagegen:ratelimit:*');
      await redis.quit();
      expect(keys.length).toBeGreaterThan(0);
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('keeps serving when Redis goes away', async (context) => {
    if (!testRedisUrl) {
      console.info('skipped: set TEST_REDIS_URL to run the Redis-outage test');
      context.skip();
      return;
    }
    // Redis reached through a proxy the test can cut: a real outage for this app only.
    const target = new URL(testRedisUrl);
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
      RATE_LIMIT_MAX: '100',
    });
    try {
      expect(app.deps.rateLimitStore).toBe('redis');
      const before = await app.inject({ url: '/api/v1/models' });
      // Counted in Redis (other tests share this caller's key, so only "below the limit" is sure).
      expect(Number(before.headers['ratelimit-remaining'])).toBeLessThan(100);
      await new Promise<void>((resolve) => {
        proxy.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      const response = await app.inject({
        url: '/api/v1/models',
        headers: { 'x-request-id': randomUUID() },
      });
      expect(response.statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});

describe('security headers (helmet)', () => {
  it('are on every response, errors included', async () => {
    const app = await buildTestApp();
    try {
      for (const url of ['/api/v1/info', '/nowhere', '/api/v1/users/1/balance']) {
        const response = await app.inject({ url });
        expect(response.headers['x-content-type-options']).toBe('nosniff');
        expect(response.headers['strict-transport-security']).toContain('max-age=');
        expect(response.headers['cross-origin-resource-policy']).toBe('cross-origin');
        expect(response.headers['x-frame-options']).toBe('SAMEORIGIN');
        expect(response.headers['content-security-policy']).toBeUndefined();
      }
    } finally {
      await app.close();
    }
  });
});
