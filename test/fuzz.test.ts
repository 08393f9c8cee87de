import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeTelegram, startFakeTelegram } from './fakes/telegram-api.ts';
import {
  ADMIN_TOKEN,
  adminAuth,
  BOT_TOKEN,
  botAuth,
  buildTestApp,
  TELEGRAM_BOT_TOKEN,
} from './helpers/app.ts';
import { freshTelegramId } from './helpers/database.ts';

/**
 * Every operation of the OpenAPI document gets a bounded, deterministic set of malformed requests
 * (wrong types, huge and empty values, NUL and unpaired surrogates, non-finite and out-of-range
 * numbers, path tricks, bad content types and JSON, broken credentials, odd headers), sent with
 * valid credentials where the route needs them. None may fail with a 5xx, and every refusal must
 * be application/problem+json with a `code`. Malformed HTTP itself is in malformed-http.test.ts.
 */

interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  minLength?: number;
  format?: string;
  default?: unknown;
}

interface Operation {
  security?: Record<string, string[]>[];
  parameters?: { in: string; name: string; schema?: Schema }[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
}

interface Probe {
  what: string;
  request: InjectOptions;
}

/** mulberry32: a small seeded PRNG, so every run sends the same requests. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = prng(20_240_229);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

/** A short string of code units from troublesome ranges: controls, NUL, surrogates, RTL, emoji. */
function garbageText(): string {
  const ranges: [number, number][] = [
    [0x00, 0x1f],
    [0x20, 0x7e],
    [0x80, 0xff],
    [0x200b, 0x202e],
    [0xd800, 0xdfff],
    [0xfff0, 0xffff],
  ];
  let text = '';
  const length = 1 + Math.floor(random() * 12);
  for (let i = 0; i < length; i++) {
    const [low, high] = pick(ranges);
    text += String.fromCharCode(low + Math.floor(random() * (high - low + 1)));
  }
  return random() < 0.3 ? `${text}😀` : text;
}

/** Random bytes, percent-encoded: mostly not UTF-8. */
function garbageSegment(): string {
  const length = 1 + Math.floor(random() * 6);
  return Array.from(
    { length },
    () =>
      `%${Math.floor(random() * 256)
        .toString(16)
        .padStart(2, '0')
        .toUpperCase()}`,
  ).join('');
}

/** Values for path and query parameters, as they appear in the URL (already encoded). */
const urlValues = [
  '',
  '0',
  '-0',
  '-1',
  '1.5',
  '1e3',
  '0x10',
  'Infinity',
  '-Infinity',
  'NaN',
  '1e400',
  '9223372036854775808',
  '-9223372036854775809',
  '9007199254740993',
  '2147483648',
  'true',
  'null',
  '%20',
  '%00',
  'a%00b',
  '%ED%A0%80',
  '%FF%FE',
  '%C0%AF',
  '..%2F..%2Fetc%2Fpasswd',
  '%2e%2e',
  '..',
  '%F0%9F%98%80',
  "1'%20OR%20'1'%3D'1",
  '%5B%5D',
  '%7B%7D',
  'a'.repeat(100),
  '1'.repeat(101),
];

/** Opaque values (cursors) that decode to what a listing's keyset query could choke on. */
const opaqueValues = [
  'e2147483648',
  'e-1',
  'e1.5',
  '2024-02-31T00:00:00.000000Z|00000000-0000-4000-8000-000000000000',
  '99999|------------------------------------',
  '294277-01-01T00:00:00.000000Z|00000000-0000-4000-8000-000000000000',
  '\u0000|\ud800',
].map((text) => Buffer.from(text).toString('base64url'));

/** Values for body fields: each is put in place of one field, the rest left valid. */
const RAW = '__raw_json__';
const rawLiterals = ['1e400', '-1e400', '-0', '9223372036854775808', '1.0', '1E2', '-0.0'];
const jsonValues: unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  2 ** 31,
  2 ** 53 + 2,
  -(2 ** 63),
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  '',
  ' ',
  '0',
  '42',
  'Infinity',
  '-Infinity',
  'NaN',
  'true',
  'null',
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udfff',
  '\u202e\u200b',
  '😀'.repeat(200),
  'x'.repeat(300),
  'x'.repeat(100_001),
  "'; DROP TABLE users; --",
  '../../etc/passwd',
  [],
  [null],
  ['\u0000'],
  Array.from({ length: 40 }, (_, i) => `x${i}`),
  {},
  { $gt: '' },
  { 'k\u0000': 'v' },
  { nested: { deeper: [1, { a: '\ud800' }] } },
  ...rawLiterals.map((literal) => `${RAW}${literal}`),
];

/** A JSON text of `body` in which `"__raw_json__<literal>"` strings become bare literals. */
function toJson(body: unknown): string {
  return JSON.stringify(body).replaceAll(new RegExp(`"${RAW}([^"]*)"`, 'g'), '$1');
}

const credentialHeaders: (string | undefined)[] = [
  undefined,
  '',
  'Bearer',
  'Bearer ',
  'Bearer  ',
  `Bearer ${BOT_TOKEN}x`,
  `Bearer ${BOT_TOKEN.slice(0, -1)}`,
  `Bearer ${BOT_TOKEN} ${BOT_TOKEN}`,
  `bearer ${ADMIN_TOKEN}`,
  `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}`,
  'Token abc',
  'tma',
  'tma ',
  'tma garbage',
  'tma =&=&&',
  'tma hash=00&auth_date=1&user=%7B%7D',
  'tma user=%FF%FE&hash=zz',
  `tma auth_date=${'9'.repeat(400)}&hash=${'a'.repeat(64)}`,
  `tma ${'a=b&'.repeat(2_000)}`,
  'Bearer café',
  'Bearer Ã©Ã¨',
  'Bearer \u00ff\u00fe',
  `${' '.repeat(50)}Bearer ${BOT_TOKEN}`,
];

const oddHeaders: Record<string, string>[] = [
  { 'x-request-id': 'ö'.repeat(10) },
  { 'x-request-id': 'a'.repeat(500) },
  { 'x-request-id': '../../x' },
  { 'idempotency-key': '' },
  { 'idempotency-key': 'ключ' },
  { 'idempotency-key': 'k'.repeat(300) },
  { 'idempotency-key': 'a b' },
  { accept: 'application/xml' },
  { accept: '*/*;q=abc' },
  { 'accept-encoding': 'gzip;q=x, br' },
  { 'accept-version': '99' },
  { origin: 'null' },
  { 'x-forwarded-for': 'not-an-ip, ::ffff:999.1.1.1' },
  { 'content-type': 'application/json; charset=latin1' },
];

const badBodies: { what: string; contentType?: string; payload: string | Buffer }[] = [
  { what: 'no body', contentType: 'application/json', payload: '' },
  { what: 'truncated JSON', contentType: 'application/json', payload: '{"telegram_id": 1,' },
  { what: 'trailing comma', contentType: 'application/json', payload: '{"a": 1,}' },
  { what: 'single quotes', contentType: 'application/json', payload: "{'a': 1}" },
  { what: 'bare NaN', contentType: 'application/json', payload: 'NaN' },
  { what: 'null', contentType: 'application/json', payload: 'null' },
  { what: 'a number', contentType: 'application/json', payload: '1e400' },
  { what: 'a string', contentType: 'application/json', payload: '"\\ud800"' },
  { what: 'an array', contentType: 'application/json', payload: '[{}]' },
  { what: 'a NUL byte', contentType: 'application/json', payload: '{"a":"\u0000"}' },
  {
    what: 'invalid UTF-8',
    contentType: 'application/json',
    payload: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]),
  },
  { what: 'a BOM', contentType: 'application/json', payload: '\ufeff{}' },
  {
    what: 'UTF-16',
    contentType: 'application/json; charset=utf-16',
    payload: Buffer.from('{}', 'utf16le'),
  },
  { what: '__proto__', contentType: 'application/json', payload: '{"__proto__": {"admin": true}}' },
  {
    what: 'constructor.prototype',
    contentType: 'application/json',
    payload: '{"constructor": {"prototype": {"x": 1}}}',
  },
  {
    what: 'deep nesting',
    contentType: 'application/json',
    payload: `${'['.repeat(50_000)}${']'.repeat(50_000)}`,
  },
  {
    what: 'deep objects',
    contentType: 'application/json',
    payload: `${'{"a":'.repeat(5_000)}1${'}'.repeat(5_000)}`,
  },
  {
    what: 'over the body limit',
    contentType: 'application/json',
    payload: `{"a":"${'x'.repeat(1_100_000)}"}`,
  },
  { what: 'text/plain', contentType: 'text/plain', payload: 'hello' },
  { what: 'form', contentType: 'application/x-www-form-urlencoded', payload: 'telegram_id=1' },
  { what: 'multipart without boundary', contentType: 'multipart/form-data', payload: 'x' },
  { what: 'xml', contentType: 'application/xml', payload: '<a/>' },
  { what: 'a made-up type', contentType: 'application/json-patch+json', payload: '[]' },
  { what: 'a malformed type', contentType: ';;;/', payload: '{}' },
  { what: 'no content type', payload: '{}' },
];

let app: FastifyInstance;
let telegram: FakeTelegram;
let document: { paths: Record<string, Record<string, Operation>> };
const fixture = { telegramId: 0, generationId: '00000000-0000-4000-8000-000000000000' };

beforeAll(async () => {
  // The offline provider on both databases: generations are accepted, not refused for want of an
  // account (503 provider_unavailable), so the fuzz reaches the accepting statement.
  // A fake Bot API (no Star transactions): the routes that ask Telegram get an answer, not a 503.
  telegram = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
  // The fuzz signs in with forged Telegram Logins on purpose: without AUTH_FAILURE_LIMIT its
  // address would be refused (429) for everything after the first few.
  app = await buildTestApp({
    STARS_PACKAGES: 'small:100:50',
    GENERATION_PROVIDER: 'local',
    TELEGRAM_API_ROOT: telegram.apiRoot,
    AUTH_FAILURE_LIMIT: '0',
  });
  const docs = await app.inject({ url: '/docs/json' });
  expect(docs.statusCode).toBe(200);
  document = docs.json();
  fixture.telegramId = freshTelegramId();
  const synced = await app.inject({
    method: 'POST',
    url: '/api/v1/users/sync',
    headers: botAuth,
    payload: { telegram_id: fixture.telegramId, first_name: 'Fuzz' },
  });
  expect(synced.statusCode).toBe(201);
  const credited = await app.inject({
    method: 'POST',
    url: `/api/v1/admin/users/${fixture.telegramId}/credits`,
    headers: adminAuth,
    payload: { amount: 1_000, reason: 'fuzz' },
  });
  expect(credited.statusCode).toBe(201);
});
afterAll(async () => {
  await app.close();
  await telegram.close();
});

/** A valid value for a field, by name where the schema alone cannot tell (ids, package, …). */
function sampleOf(schema: Schema | undefined, name = ''): unknown {
  const byName: Record<string, unknown> = {
    telegram_id: fixture.telegramId,
    model: 'nano-banana',
    prompt: 'a lighthouse at dusk',
    invoice_payload: 'stars:small',
    currency: 'XTR',
    total_amount: 50,
    amount: 1,
    reason: 'fuzz',
    telegram_payment_charge_id: 'fuzz-charge',
  };
  if (name in byName) return byName[name];
  if (!schema) return 'x';
  const variant = schema.anyOf ?? schema.oneOf;
  if (variant) return sampleOf(variant.find((s) => s.type !== 'null') ?? variant[0], name);
  if (schema.const !== undefined) return schema.const;
  if (schema.enum) return schema.enum[0];
  if (schema.default !== undefined) return schema.default;
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  switch (type) {
    case 'object':
      return Object.fromEntries(
        (schema.required ?? []).map((key) => [key, sampleOf(schema.properties?.[key], key)]),
      );
    case 'array':
      return [sampleOf(schema.items)];
    case 'integer':
    case 'number':
      return Math.max(schema.minimum ?? 1, 1);
    case 'boolean':
      return true;
    default:
      return schema.format === 'uuid'
        ? fixture.generationId
        : 'x'.repeat(Math.max(schema.minLength ?? 1, 1));
  }
}

const pathValues = (): Record<string, string> => ({
  telegram_id: String(fixture.telegramId),
  id: fixture.generationId,
  broadcast_id: '1',
  position: '0',
  provider: 'local',
});

function credentialsFor(operation: Operation): Record<string, string> {
  const schemes = (operation.security ?? [{ admin: [] }]).flatMap((s) => Object.keys(s));
  if (schemes.length === 0) return {};
  return schemes.includes('bot') ? botAuth : adminAuth;
}

let addresses = 0;

/** The malformed requests for one operation. */
function probesFor(method: string, path: string, operation: Operation): Probe[] {
  const params = operation.parameters ?? [];
  const pathParams = params.filter((p) => p.in === 'path').map((p) => p.name);
  const queryParams = params.filter((p) => p.in === 'query').map((p) => p.name);
  const bodySchema = operation.requestBody?.content?.['application/json']?.schema;
  const auth = credentialsFor(operation);
  const upper = method.toUpperCase() as InjectOptions['method'];
  const urlWith = (values: Record<string, string> = {}, query = '') =>
    path.replaceAll(/\{(\w+)\}/g, (_, name: string) => values[name] ?? pathValues()[name] ?? 'x') +
    query;
  const validBody = bodySchema ? sampleOf(bodySchema) : undefined;
  const send = (
    what: string,
    overrides: Partial<InjectOptions> & { headers?: Record<string, string> } = {},
  ): Probe => ({
    what: `${upper} ${path}: ${what}`,
    request: {
      method: upper,
      url: urlWith(),
      ...(validBody === undefined
        ? {}
        : { payload: toJson(validBody), headers: { 'content-type': 'application/json' } }),
      ...overrides,
      headers: {
        ...(validBody === undefined ? {} : { 'content-type': 'application/json' }),
        ...auth,
        ...overrides.headers,
      },
    },
  });

  const probes: Probe[] = [send('as documented')];
  for (const name of pathParams) {
    for (const value of [...urlValues, garbageSegment(), garbageSegment()]) {
      probes.push(send(`path ${name}=${value.slice(0, 40)}`, { url: urlWith({ [name]: value }) }));
    }
  }
  for (const name of queryParams) {
    for (const value of [...urlValues, ...opaqueValues, garbageSegment()]) {
      probes.push(
        send(`query ${name}=${value.slice(0, 40)}`, { url: urlWith({}, `?${name}=${value}`) }),
      );
    }
    probes.push(send(`query ${name} twice`, { url: urlWith({}, `?${name}=1&${name}=2`) }));
    probes.push(send(`query ${name}[]`, { url: urlWith({}, `?${name}[]=1&${name}[a]=2`) }));
  }
  probes.push(send('unknown query', { url: urlWith({}, '?unknown=%00&__proto__=1') }));
  probes.push(send('a query of 4,000 names', { url: urlWith({}, `?${'a=1&'.repeat(4_000)}`) }));
  for (const variant of ['/', '//', '/..', '/%2e%2e/', '/%00', ';x=1', '%2F']) {
    probes.push(send(`path suffix ${variant}`, { url: `${urlWith()}${variant}` }));
  }
  probes.push(send('upper-case path', { url: urlWith().toUpperCase() }));
  probes.push(send('double slashes', { url: urlWith().replaceAll('/', '//') }));

  if (bodySchema && typeof validBody === 'object' && validBody !== null) {
    const fields = Object.keys(bodySchema.properties ?? {});
    for (const field of fields) {
      for (const value of [...jsonValues, garbageText(), garbageText()]) {
        probes.push(
          send(`body ${field}=${JSON.stringify(value)?.slice(0, 40)}`, {
            payload: toJson({ ...validBody, [field]: value }),
          }),
        );
      }
      const without = { ...(validBody as Record<string, unknown>) };
      delete without[field];
      probes.push(send(`body without ${field}`, { payload: toJson(without) }));
    }
    probes.push(send('body with an unknown field', { payload: toJson({ ...validBody, zzz: 1 }) }));
    probes.push(send('body {}', { payload: '{}' }));
  }
  for (const body of badBodies) {
    probes.push(
      send(`body: ${body.what}`, {
        payload: body.payload,
        headers: body.contentType === undefined ? {} : { 'content-type': body.contentType },
      }),
    );
  }
  for (const headers of oddHeaders) {
    probes.push(send(`header ${JSON.stringify(headers).slice(0, 60)}`, { headers }));
  }
  for (const other of ['PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const) {
    probes.push(send(`method ${other}`, { method: other }));
  }
  // Each from an address of its own: refused credentials are counted against the address, and
  // a lockout would turn the rest of the run into 429s.
  for (const authorization of credentialHeaders) {
    const probe = send(`authorization ${JSON.stringify(authorization)?.slice(0, 40)}`, {
      remoteAddress: `198.18.${Math.floor(addresses / 250)}.${(addresses % 250) + 1}`,
    });
    addresses++;
    const headers = probe.request.headers as Record<string, string>;
    if (authorization === undefined) delete headers.authorization;
    else headers.authorization = authorization;
    probes.push(probe);
  }
  return probes;
}

/** What is wrong with an answer, or null. */
function complaint(response: LightMyRequestResponse): string | null {
  if (response.statusCode >= 500) {
    return `${response.statusCode} ${response.body.slice(0, 200)}`;
  }
  if (response.statusCode < 400) return null;
  const type = response.headers['content-type'];
  if (typeof type !== 'string' || !type.startsWith('application/problem+json')) {
    return `${response.statusCode} as ${String(type)}: ${response.body.slice(0, 200)}`;
  }
  let problem: { code?: unknown; status?: unknown };
  try {
    problem = response.json();
  } catch {
    return `${response.statusCode} problem+json that is not JSON: ${response.body.slice(0, 200)}`;
  }
  if (typeof problem.code !== 'string' || problem.status !== response.statusCode) {
    return `${response.statusCode} problem without a code or with another status: ${response.body.slice(0, 200)}`;
  }
  // A field is named by where it was sent, the same way by Ajv and by the services' own checks.
  const fields = (problem as { errors?: { field?: unknown }[] }).errors?.map((e) => e.field) ?? [];
  const unplaced = fields.filter(
    (field) => typeof field !== 'string' || !/^(body|params|querystring|headers)(\.|$)/.test(field),
  );
  if (unplaced.length > 0) {
    return `${response.statusCode} names fields without their part of the request: ${unplaced.join(', ')}`;
  }
  return null;
}

describe('fuzzing every documented operation', () => {
  it('never answers 5xx, and every refusal is problem+json with a code', async () => {
    const started = performance.now();
    const operations = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, operation]) => ({ method, path, operation })),
    );
    expect(operations.length).toBeGreaterThanOrEqual(20);
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    let sent = 0;
    for (const { method, path, operation } of operations) {
      for (const probe of probesFor(method, path, operation)) {
        const response = await app.inject(probe.request);
        sent++;
        statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
        const wrong = complaint(response);
        if (wrong) failures.push(`${probe.what} → ${wrong}`);
      }
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.info(
      `fuzz: ${sent} requests to ${operations.length} operations in ${seconds} s; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`,
    );
    expect(failures).toEqual([]);
    // Bounded: a change that multiplies the requests per operation should be a deliberate one.
    expect(sent).toBeGreaterThan(1_000);
    expect(sent / operations.length).toBeLessThan(300);
  }, 120_000);

  it('every JSON object body refuses a field it does not know, naming it', async () => {
    let bodies = 0;
    for (const [path, methods] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        const schema = operation.requestBody?.content?.['application/json']?.schema;
        // The providers' webhook takes any body (it is read raw and its signature checked).
        if (schema?.type !== 'object') continue;
        bodies++;
        const response = await app.inject({
          method: method.toUpperCase() as InjectOptions['method'],
          url: path.replaceAll(/\{(\w+)\}/g, (_, name: string) => pathValues()[name] ?? 'x'),
          headers: credentialsFor(operation),
          payload: { ...(sampleOf(schema) as object), parametres: {} },
        });
        expect(response.statusCode, `${method} ${path}`).toBe(422);
        expect(response.json().errors, `${method} ${path}`).toContainEqual({
          field: 'body.parametres',
          message: 'is not a known field',
        });
      }
    }
    expect(bodies).toBeGreaterThanOrEqual(6);
  });
});
