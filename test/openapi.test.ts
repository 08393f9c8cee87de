import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp } from './helpers/app.ts';

let app: FastifyInstance;
beforeAll(async () => {
  app = await buildTestApp();
});
afterAll(() => app.close());

describe('OpenAPI', () => {
  it('documents every endpoint of the spec at /docs/json', async () => {
    const response = await app.inject({ url: '/docs/json' });
    expect(response.statusCode).toBe(200);
    const document = response.json();
    expect(document.openapi).toMatch(/^3\./);
    const paths = document.paths as Record<string, Record<string, unknown>>;
    const expected: [string, string][] = [
      ['/', 'get'],
      ['/api/v1/health', 'get'],
      ['/api/v1/info', 'get'],
      ['/api/v1/users/sync', 'post'],
      ['/api/v1/users/{telegram_id}/balance', 'get'],
      ['/api/v1/users/{telegram_id}/trial', 'get'],
      ['/api/v1/models', 'get'],
    ];
    for (const [path, method] of expected) {
      expect(paths[path]?.[method], `${method.toUpperCase()} ${path}`).toBeDefined();
    }
    const balance = paths['/api/v1/users/{telegram_id}/balance']?.get as {
      responses: Record<string, unknown>;
    };
    expect(Object.keys(balance.responses)).toEqual(
      expect.arrayContaining(['200', '401', '404', '422', '429']),
    );
  });

  it('serves a docs page at /docs', async () => {
    const response = await app.inject({ url: '/docs/' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toContain('text/html');
    expect(response.body).toContain('swagger');
  });
});
