import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderApiTypes } from '../src/api-client/render.ts';
import { buildTestApp } from './helpers/app.ts';

let app: FastifyInstance;
beforeAll(async () => {
  app = await buildTestApp();
});
afterAll(() => app.close());

describe('the typed API client', () => {
  it('is generated from the API as it is now (run `npm run api:client` after changing a route)', async () => {
    const committed = readFileSync(new URL('../src/api-client/schema.ts', import.meta.url), 'utf8');
    const current = await renderApiTypes(app.swagger());
    expect(committed === current, 'src/api-client/schema.ts is stale: run npm run api:client').toBe(
      true,
    );
  });
});
