import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from './helpers/app.ts';
import { onPostgres, openTestDatabase } from './helpers/database.ts';

describe('root, health and info', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await buildTestApp();
  });
  afterAll(() => app.close());

  it('GET / names the service and links to health and docs', async () => {
    const response = await app.inject({ url: '/' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({
      name: 'imagegen-backend',
      version: expect.any(String),
      links: { health: '/api/v1/health', docs: '/docs', openapi: '/docs/json' },
    });
  });

  it('GET /api/v1/health reports uptime, this request id, version and the database', async () => {
    const response = await app.inject({
      url: '/api/v1/health',
      headers: { 'x-request-id': 'probe-42' },
    });
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body).toMatchObject({
      status: 'ok',
      request_id: 'probe-42',
      database: { status: 'up', kind: onPostgres ? 'postgres' : 'embedded' },
    });
    expect(body.uptime_seconds).toBeGreaterThanOrEqual(0);
    expect(body.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('GET /api/v1/info tells the database kind and the rate-limit settings', async () => {
    const response = await app.inject({ url: '/api/v1/info' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({
      api_version: 'v1',
      database: onPostgres ? 'postgres' : 'embedded',
      rate_limit: { enabled: true, max: 100000, window_seconds: 60, store: 'memory' },
      trial_generations: 3,
    });
  });
});

describe('health when the database is gone', () => {
  it('answers 503 with the database down, without leaking the driver error', async () => {
    const database = await openTestDatabase();
    const app = await buildTestApp({}, database);
    try {
      await database.close();
      const response = await app.inject({ url: '/api/v1/health' });
      expect(response.statusCode).toBe(503);
      const body = response.json();
      expect(body).toMatchObject({ status: 'unavailable', database: { status: 'down' } });
      expect(body.database.error).toBeUndefined();
    } finally {
      await app.close();
    }
  });

  it('a route that needs the database answers 500 as a problem that hides the cause', async () => {
    const database = await openTestDatabase();
    const app = await buildTestApp({}, database);
    try {
      await database.close();
      const response = await app.inject({
        url: '/api/v1/models',
        headers: { 'x-request-id': 'broken-db-1' },
      });
      expect(response.statusCode).toBe(500);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(response.json()).toEqual({
        type: 'urn:problem:internal_error',
        title: 'Internal server error',
        status: 500,
        detail: 'An unexpected error occurred. Quote the request id when you report it.',
        instance: '/api/v1/models',
        code: 'internal_error',
        requestId: 'broken-db-1',
      });
    } finally {
      await app.close();
    }
  });
});
