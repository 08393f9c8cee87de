import { randomUUID } from 'node:crypto';
import { Ajv } from 'ajv';
import ajvFormats from 'ajv-formats';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, BOT_TOKEN, buildTestApp, miniAppAuth } from './helpers/app.ts';
import { freshTelegramId } from './helpers/database.ts';
import { ADMIN_OPERATOR_ID, operatorCookie, operatorSettings } from './helpers/operators.ts';

// The document is checked against the app itself: the routes come from the router (not from the
// document), and what each route lets in and answers comes from requests to it. A route added
// without docs, or whose docs disagree with what it does, fails here.

interface Media {
  schema?: unknown;
  example?: unknown;
  examples?: Record<string, { summary?: string; value: unknown }>;
}

interface Operation {
  operationId?: string;
  summary?: string;
  tags?: string[];
  security?: Record<string, string[]>[];
  parameters?: { in: string; name: string; required?: boolean; schema?: unknown }[];
  requestBody?: { content?: Record<string, Media> };
  responses: Record<string, { description?: string; content?: Record<string, Media> }>;
}

interface Route {
  method: string;
  /** As the router has it: /api/v1/users/:telegram_id/balance */
  path: string;
}

let app: FastifyInstance;
let document: {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, unknown>; schemas: Record<string, unknown> };
};
let routes: Route[];

/**
 * Every route the router holds, read from printRoutes' tree (one node a line, four columns of
 * indentation a level; a node's path is its parent's followed by its own segment).
 */
function registeredRoutes(instance: FastifyInstance): Route[] {
  const found: Route[] = [];
  const parents: string[] = [];
  for (const line of instance.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^((?:[│ ] {3})*)[├└]── (.+?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!match) continue;
    const depth = (match[1] ?? '').length / 4;
    const path = (depth === 0 ? '' : (parents[depth - 1] ?? '')) + match[2];
    parents[depth] = path;
    parents.length = depth + 1;
    for (const method of (match[3] ?? '').split(', ').filter(Boolean)) {
      found.push({ method, path });
    }
  }
  return found;
}

const toOpenApiPath = (path: string) => path.replaceAll(/:(\w+)/g, '{$1}');

const pathParameters = (path: string): string[] =>
  [...path.matchAll(/:(\w+)/g)].map((match) => match[1] ?? '');

/**
 * What the API is for this test: every route but HEAD twins, the docs' own pages and the web apps'
 * files and pages (/admin/…, /app/…).
 */
const documentable = (route: Route) =>
  route.method !== 'HEAD' &&
  route.path !== '/docs' &&
  !route.path.startsWith('/docs/') &&
  !/^\/(admin|app)(\/|$)/.test(route.path);

const miniAppUser = freshTelegramId();

/** A URL for the route with well-formed parameters (a Mini App user's own telegram_id). */
function concreteUrl(path: string, values: Record<string, string> = {}): string {
  const defaults: Record<string, string> = {
    telegram_id: String(miniAppUser),
    id: randomUUID(),
    position: '0',
    provider: 'no-such-provider',
    key: 'no-such-model',
    charge_id: 'no-such-charge',
    broadcast_id: '999999999',
    name: `${'A'.repeat(43)}.png`,
  };
  return path.replaceAll(/:(\w+)/g, (_, name: string) => {
    const value = values[name] ?? defaults[name];
    if (value === undefined) throw new Error(`no test value for path parameter :${name}`);
    return value;
  });
}

/** Path parameters that no route's schema accepts. */
const malformed: Record<string, string> = {
  telegram_id: 'not-a-number',
  id: 'not-a-uuid',
  position: '-1',
  provider: 'NOT A NAME!',
  name: 'not-a-reference.txt',
};

const WEBHOOK_SECRET = 'openapi-test-webhook-secret';

const credentials: Record<
  'none' | 'bot' | 'admin' | 'miniApp' | 'operatorSession' | 'telegramWebhook',
  Record<string, string>
> = {
  none: {},
  telegramWebhook: { 'x-telegram-bot-api-secret-token': WEBHOOK_SECRET },
  bot: { authorization: `Bearer ${BOT_TOKEN}` },
  admin: { authorization: `Bearer ${ADMIN_TOKEN}` },
  miniApp: miniAppAuth(miniAppUser),
  // An operator whose role is admin, signed in with Telegram (set in beforeAll).
  operatorSession: {},
};

async function probe(route: Route, headers: Record<string, string>, url = concreteUrl(route.path)) {
  const response = await app.inject({
    method: route.method as 'GET' | 'POST',
    url,
    headers,
    ...(route.method === 'GET' ? {} : { payload: {} }),
  });
  // Logging out ends the operator's session: the next probes get a new one.
  if (headers === credentials.operatorSession && response.statusCode < 400) {
    if (route.path.endsWith('/auth/logout')) {
      credentials.operatorSession = await operatorCookie(app, ADMIN_OPERATOR_ID);
    }
  }
  return response;
}

/** Whether the caller was turned away for who it is (not for what it asked). */
function refusedAccess(response: { statusCode: number; json: () => { code?: string } }): boolean {
  if (response.statusCode !== 401 && response.statusCode !== 403) return false;
  const code = response.json().code;
  return code === 'unauthorized' || code === 'forbidden';
}

beforeAll(async () => {
  // With Telegram's webhook on the API, so its route is documented like every other.
  app = await buildTestApp({
    ...operatorSettings,
    BOT_WEBHOOK_URL: 'https://bot.example.com/telegram/webhook',
    BOT_WEBHOOK_SECRET: WEBHOOK_SECRET,
  });
  credentials.operatorSession = await operatorCookie(app, ADMIN_OPERATOR_ID);
  const response = await app.inject({ url: '/docs/json' });
  expect(response.statusCode).toBe(200);
  document = response.json();
  routes = registeredRoutes(app).filter(documentable);
});
afterAll(() => app.close());

describe('OpenAPI document', () => {
  it('reads the routes from the router', () => {
    // A guard on the parsing itself: the routes the README lists, at least.
    expect(routes.length).toBeGreaterThanOrEqual(20);
    expect(routes).toContainEqual({ method: 'GET', path: '/api/v1/users/:telegram_id/balance' });
    expect(routes).toContainEqual({
      method: 'POST',
      path: '/api/v1/admin/users/:telegram_id/credits',
    });
    expect(routes).toContainEqual({ method: 'GET', path: '/' });
  });

  it('documents every route the app serves, and no other, each with a summary and tags', () => {
    expect(document.openapi).toMatch(/^3\./);
    const served = routes.map((r) => `${r.method} ${toOpenApiPath(r.path)}`).sort();
    const documented = Object.entries(document.paths)
      .flatMap(([path, operations]) =>
        Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`),
      )
      .sort();
    expect(documented).toEqual(served);
    for (const route of routes) {
      const operation = document.paths[toOpenApiPath(route.path)]?.[route.method.toLowerCase()];
      expect(operation?.summary, `${route.method} ${route.path}: summary`).toMatch(/\w{3}/);
      expect(operation?.tags?.length, `${route.method} ${route.path}: tags`).toBeGreaterThan(0);
    }
  });

  it('states who may call each operation, as the route enforces it', async () => {
    const schemes = Object.keys(document.components.securitySchemes).sort();
    expect(schemes).toEqual(['admin', 'bot', 'miniApp', 'operatorSession', 'telegramWebhook']);
    for (const route of routes) {
      const name = `${route.method} ${route.path}`;
      const operation = document.paths[toOpenApiPath(route.path)]?.[route.method.toLowerCase()];
      expect(operation?.security, `${name}: security`).toBeDefined();
      const admitted = (operation?.security ?? []).flatMap((requirement) => {
        expect(Object.values(requirement), `${name}: scopes`).toEqual([[]]);
        return Object.keys(requirement);
      });
      for (const scheme of admitted) expect(schemes, `${name}: ${scheme}`).toContain(scheme);

      const anonymous = await probe(route, credentials.none);
      expect(refusedAccess(anonymous), `${name} without credentials: ${anonymous.body}`).toBe(
        admitted.length > 0,
      );
      if (admitted.length === 0) continue;
      for (const scheme of [
        'bot',
        'admin',
        'miniApp',
        'operatorSession',
        'telegramWebhook',
      ] as const) {
        const response = await probe(route, credentials[scheme]);
        expect(refusedAccess(response), `${name} as ${scheme}: ${response.body}`).toBe(
          !admitted.includes(scheme),
        );
      }
    }
  });

  it('documents the parameters and body each operation reads', async () => {
    for (const route of routes) {
      const name = `${route.method} ${route.path}`;
      const operation = document.paths[toOpenApiPath(route.path)]?.[route.method.toLowerCase()];
      for (const parameter of pathParameters(route.path)) {
        const documented = operation?.parameters?.find(
          (p) => p.in === 'path' && p.name === parameter,
        );
        expect(documented, `${name}: path parameter ${parameter}`).toMatchObject({
          required: true,
          schema: expect.any(Object),
        });
        expect(
          Object.keys(documented?.schema as object),
          `${name}: ${parameter}'s schema`,
        ).not.toEqual([]);
        // The schema is the one enforced: a malformed value is refused.
        const response = await probe(
          route,
          credentials.admin,
          concreteUrl(route.path, { [parameter]: malformed[parameter] ?? '' }),
        );
        expect(response.statusCode, `${name} with a malformed ${parameter}`).toBe(422);
        expect(response.json().errors, `${name}: ${response.body}`).toEqual(
          expect.arrayContaining([
            expect.objectContaining({ field: expect.stringMatching(parameter) }),
          ]),
        );
      }
      const documentedPath = (operation?.parameters ?? []).filter((p) => p.in === 'path');
      expect(documentedPath.map((p) => p.name).sort(), `${name}: no other path parameters`).toEqual(
        pathParameters(route.path).sort(),
      );
      if (route.method === 'POST') {
        const content = operation?.requestBody?.content ?? {};
        // JSON, but an upload's bytes.
        const body = content['application/json'] ?? content['application/octet-stream'];
        expect(body?.schema, `${name}: request body`).toBeDefined();
      }
    }
  });

  it('documents the success and every problem each operation answers', async () => {
    for (const route of routes) {
      const name = `${route.method} ${route.path}`;
      const operation = document.paths[toOpenApiPath(route.path)]?.[route.method.toLowerCase()];
      const responses = operation?.responses ?? {};
      const successes = Object.keys(responses).filter((status) => /^2\d\d$/.test(status));
      expect(successes, `${name}: a 2xx response`).not.toEqual([]);
      for (const status of successes) {
        const content = Object.values(responses[status]?.content ?? {});
        expect(content.length, `${name} ${status}: content`).toBeGreaterThan(0);
        for (const media of content)
          expect(media.schema, `${name} ${status}: schema`).toBeDefined();
      }
      for (const [status, response] of Object.entries(responses)) {
        if (Number(status) < 400 || (route.path.endsWith('/health') && status === '503')) continue;
        expect(Object.keys(response.content ?? {}), `${name} ${status}: problem+json`).toEqual([
          'application/problem+json',
        ]);
        expect(response.content?.['application/problem+json']?.schema).toEqual({
          $ref: '#/components/schemas/Problem',
        });
      }

      // Whatever the route answers these requests is documented: refusals of the caller, missing
      // resources, invalid input, and the rate limit where it applies.
      const answered = new Set<string>();
      for (const headers of Object.values(credentials)) {
        const response = await probe(route, headers);
        answered.add(String(response.statusCode));
        if (response.headers['ratelimit-limit'] !== undefined) answered.add('429');
      }
      for (const status of answered) {
        expect(Object.keys(responses), `${name} answered ${status}`).toContain(status);
      }
      if ((operation?.parameters?.length ?? 0) > 0 || operation?.requestBody) {
        expect(Object.keys(responses), `${name}: 422 for invalid input`).toContain('422');
      }
      const takesKey = operation?.parameters?.some(
        (p) => p.in === 'header' && p.name === 'idempotency-key',
      );
      if (takesKey)
        expect(Object.keys(responses), `${name}: 409 for a reused key`).toContain('409');
    }
  });

  it('names every operation and response, with examples that fit their schemas', () => {
    const ajv = new Ajv({ strict: false, allErrors: true });
    // A CommonJS module: its default export is the module.
    ajvFormats.default(ajv);
    ajv.addFormat('binary', true);
    /** Validates against a schema of the document ($refs to its components resolve). */
    const check = (schema: unknown, value: unknown): string | null => {
      const validate = ajv.compile({
        ...(schema as object),
        components: document.components,
      });
      return validate(value) ? null : ajv.errorsText(validate.errors);
    };
    const operationIds = new Map<string, string>();
    for (const route of routes) {
      const name = `${route.method} ${route.path}`;
      const operation = document.paths[toOpenApiPath(route.path)]?.[route.method.toLowerCase()];
      expect.soft(operation, name).toBeDefined();
      if (operation === undefined) continue;
      // The generated clients name their calls after it: present, a camelCase word, unique.
      expect.soft(operation.operationId, `${name}: operationId`).toMatch(/^[a-z][a-zA-Z0-9]{2,}$/);
      const id = operation.operationId ?? '';
      expect.soft(operationIds.get(id), `${name}: operationId ${id} also names`).toBeUndefined();
      operationIds.set(id, name);
      expect.soft(operation.summary, `${name}: summary`).toMatch(/\w{3}/);
      expect.soft(operation.security, `${name}: security`).toBeDefined();

      for (const [type, media] of Object.entries(operation.requestBody?.content ?? {})) {
        // An upload's body is the image's bytes: nothing to give as an example.
        if (operation.operationId === 'uploadReference') {
          expect
            .soft(type, `${name}: request body type`)
            .toMatch(/^(image\/|application\/octet-stream$)/);
          continue;
        }
        expect.soft(type, `${name}: request body type`).toBe('application/json');
        // One example, or named ones (a webhook's senders).
        const examples =
          media.examples === undefined
            ? [media.example]
            : Object.values(media.examples).map((example) => example.value);
        expect.soft(examples.length, `${name}: request examples`).toBeGreaterThan(0);
        for (const example of examples) {
          expect.soft(example, `${name}: request example`).toBeDefined();
          expect.soft(check(media.schema, example), `${name}: request example`).toBeNull();
        }
      }
      for (const [status, response] of Object.entries(operation.responses)) {
        expect.soft(response.description, `${name} ${status}: named`).toMatch(/\w{2}/);
        expect.soft(response.description, `${name} ${status}: named`).not.toBe('Default Response');
        for (const [type, media] of Object.entries(response.content ?? {})) {
          // Images and the metrics' text are shown as what they are; JSON has an example.
          if (!type.includes('json')) continue;
          expect.soft(media.example, `${name} ${status}: example`).toBeDefined();
          expect.soft(check(media.schema, media.example), `${name} ${status}: example`).toBeNull();
          if (type === 'application/problem+json') {
            expect.soft(media.example, `${name} ${status}: the problem's status`).toMatchObject({
              status: Number(status),
            });
          }
        }
      }
    }
  });

  it("bounds a generation's prompt and references as the models do", async () => {
    type Bounded = { maxLength?: number; maxItems?: number; maximum?: number };
    const bodyOf = (path: string, method: string) =>
      document.paths[path]?.[method]?.requestBody?.content?.['application/json']?.schema as {
        properties: Record<string, Bounded>;
      };
    const request = bodyOf('/api/v1/generations', 'post').properties;
    const model = bodyOf('/api/v1/admin/models', 'post').properties;
    // What a request may carry is what an operator may let a model take, no less, no more.
    expect(request.prompt?.maxLength).toBeDefined();
    expect(request.prompt?.maxLength).toBe(model.max_prompt_length?.maximum);
    expect(request.references?.maxItems).toBeDefined();
    expect(request.references?.maxItems).toBe(model.max_references?.maximum);
    const catalog = await app.inject({ url: '/api/v1/models' });
    const models: { key: string; max_prompt_length: number; max_references: number }[] =
      catalog.json().models;
    expect(models.length).toBeGreaterThan(0);
    for (const entry of models) {
      expect(entry.max_prompt_length, entry.key).toBeLessThanOrEqual(
        request.prompt?.maxLength ?? 0,
      );
      expect(entry.max_references, entry.key).toBeLessThanOrEqual(
        request.references?.maxItems ?? 0,
      );
    }
  });

  it('serves a docs page at /docs', async () => {
    const response = await app.inject({ url: '/docs/' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toContain('text/html');
    expect(response.body).toContain('swagger');
  });
});
