import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { BOT_TOKEN, buildTestApp } from './helpers/app.ts';

// Validators and serializers are compiled when a request first needs them (core/lazy-compilation.ts),
// so a start does not compile every route's schemas. These tests make sure that every one still
// compiles, and that a start really leaves them for later.

let apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.map((app) => app.close()));
  apps = [];
});

async function readyApp(): Promise<FastifyInstance> {
  const app = await buildTestApp({ API_TOKENS: BOT_TOKEN });
  apps.push(app);
  await app.ready();
  return app;
}

describe('schemas compiled on first use', () => {
  it('every route validator and serializer compiles', async () => {
    const app = await readyApp();
    const compiled = app.compileAllSchemas();
    // Each route has at least one validator or response serializer; there are dozens of routes.
    expect(compiled).toBeGreaterThan(50);
    expect(app.compileAllSchemas()).toBe(0);
  });

  it('a ready app has compiled none; a request compiles only what it needs', async () => {
    const untouched = await readyApp();
    const all = untouched.compileAllSchemas();

    const app = await readyApp();
    const response = await app.inject({
      method: 'GET',
      url: '/api/v1/models',
      headers: { authorization: `Bearer ${BOT_TOKEN}` },
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toContain('application/json');
    expect(JSON.parse(response.body)).toBeTypeOf('object');
    const invalid = await app.inject({
      method: 'GET',
      url: '/api/v1/users/not-a-number/balance',
      headers: { authorization: `Bearer ${BOT_TOKEN}` },
    });
    expect(invalid.statusCode).toBe(422);
    expect(invalid.headers['content-type']).toContain('application/problem+json');
    const rest = app.compileAllSchemas();
    expect(rest).toBeLessThan(all);
    expect(rest).toBeGreaterThan(all - 10);
  });
});
