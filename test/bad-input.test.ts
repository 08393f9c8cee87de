import { randomUUID } from 'node:crypto';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminAuth, botAuth, buildTestApp } from './helpers/app.ts';
import { freshTelegramId } from './helpers/database.ts';

let app: FastifyInstance;
beforeAll(async () => {
  app = await buildTestApp({ STARS_PACKAGES: 'small:100:50' });
});
afterAll(() => app.close());

const NUL_MESSAGE = 'must not contain NUL characters (\\u0000)';
const SURROGATE_MESSAGE = 'must be valid Unicode text (it has an unpaired UTF-16 surrogate)';

const post = (url: string, payload: unknown, headers: Record<string, string> = botAuth) =>
  app.inject({ method: 'POST', url, headers, payload: payload as Record<string, unknown> });

const get = (url: string, headers: Record<string, string> = botAuth) =>
  app.inject({ method: 'GET', url, headers });

async function newUser(): Promise<number> {
  const telegramId = freshTelegramId();
  expect((await post('/api/v1/users/sync', { telegram_id: telegramId })).statusCode).toBe(201);
  return telegramId;
}

function expectValidationProblem(
  response: LightMyRequestResponse,
  errors: { field: string; message: string }[],
): void {
  expect(response.statusCode).toBe(422);
  expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8');
  const body = response.json();
  expect(body).toMatchObject({
    type: 'urn:problem:validation_failed',
    title: 'Validation failed',
    status: 422,
    code: 'validation_failed',
    requestId: response.headers['x-request-id'],
  });
  expect(body.errors).toEqual(errors);
}

function payment(telegramId: number, overrides: Record<string, unknown> = {}) {
  return {
    telegram_id: telegramId,
    telegram_payment_charge_id: `tg_${randomUUID()}`,
    provider_payment_charge_id: null,
    total_amount: 50,
    currency: 'XTR',
    invoice_payload: 'stars:small',
    ...overrides,
  };
}

describe('text PostgreSQL cannot store (NUL, unpaired surrogates) is a 422 naming the field', () => {
  it.each([
    ['first_name', 'Ada\u0000'],
    ['last_name', '\u0000'],
    ['username', 'a\u0000b'],
  ])('users/sync %s with NUL', async (field, value) => {
    const telegramId = freshTelegramId();
    const response = await post('/api/v1/users/sync', { telegram_id: telegramId, [field]: value });
    expectValidationProblem(response, [{ field: `body.${field}`, message: NUL_MESSAGE }]);
    // Nothing was stored.
    expect((await get(`/api/v1/users/${telegramId}/balance`)).statusCode).toBe(404);
  });

  it('users/sync first_name with an unpaired surrogate', async () => {
    const response = await post('/api/v1/users/sync', {
      telegram_id: freshTelegramId(),
      first_name: 'Ada \ud800',
    });
    expectValidationProblem(response, [{ field: 'body.first_name', message: SURROGATE_MESSAGE }]);
  });

  it('keeps text with paired surrogates (emoji) and other control characters', async () => {
    const telegramId = freshTelegramId();
    const response = await post('/api/v1/users/sync', {
      telegram_id: telegramId,
      first_name: 'Ada 🦄\t\u0001',
    });
    expect(response.statusCode).toBe(201);
    expect(response.json().first_name).toBe('Ada 🦄\t\u0001');
  });

  it('a Stars charge id with NUL', async () => {
    const telegramId = await newUser();
    const response = await post(
      '/api/v1/payments/stars/confirm',
      payment(telegramId, { telegram_payment_charge_id: 'tg_\u0000' }),
    );
    expectValidationProblem(response, [
      { field: 'body.telegram_payment_charge_id', message: NUL_MESSAGE },
    ]);
    expect((await get(`/api/v1/users/${telegramId}/balance`)).json().balance).toBe(0);
  });

  it.each([
    ['NUL', 'bonus\u0000', NUL_MESSAGE],
    ['an unpaired surrogate', 'bonus \ud800', SURROGATE_MESSAGE],
    ['an unpaired low surrogate', '\udc00 bonus', SURROGATE_MESSAGE],
  ])('an admin credit reason with %s', async (_what, reason, message) => {
    const telegramId = await newUser();
    const response = await post(
      `/api/v1/admin/users/${telegramId}/credits`,
      { amount: 5, reason },
      adminAuth,
    );
    expectValidationProblem(response, [{ field: 'body.reason', message }]);
    expect((await get(`/api/v1/users/${telegramId}/balance`)).json().balance).toBe(0);
  });

  it('a generation prompt with NUL, and a parameter name with NUL', async () => {
    const telegramId = await newUser();
    const prompt = await post('/api/v1/generations', {
      telegram_id: telegramId,
      model: 'nano-banana',
      prompt: 'a cat\u0000',
    });
    expectValidationProblem(prompt, [{ field: 'body.prompt', message: NUL_MESSAGE }]);
    const parameterName = await post('/api/v1/generations/quote', {
      telegram_id: telegramId,
      model: 'nano-banana',
      parameters: { 'aspect\u0000ratio': '1:1' },
    });
    expectValidationProblem(parameterName, [
      { field: 'body.parameters', message: `has a property name that ${NUL_MESSAGE}` },
    ]);
    const active = await get(`/api/v1/users/${telegramId}/generations/active`);
    expect(active.json().generations).toEqual([]);
  });

  it('a query value with NUL', async () => {
    const telegramId = await newUser();
    const response = await get(`/api/v1/users/${telegramId}/ledger?cursor=%00`);
    expectValidationProblem(response, [{ field: 'querystring.cursor', message: NUL_MESSAGE }]);
  });
});

describe('numbers: Infinity is not an integer, and JSON bodies are not coerced', () => {
  it.each([
    '/api/v1/users/Infinity/balance',
    '/api/v1/users/-Infinity/balance',
    '/api/v1/users/1e400/trial',
    '/api/v1/admin/users/Infinity',
  ])('GET %s is 422 naming params.telegram_id', async (url) => {
    const response = await get(url, url.includes('/admin/') ? adminAuth : botAuth);
    expectValidationProblem(response, [
      { field: 'params.telegram_id', message: 'must be a finite number' },
    ]);
  });

  it.each(['Infinity', '-Infinity', '1e400'])('?limit=%s is 422', async (limit) => {
    const telegramId = await newUser();
    for (const listing of ['ledger', 'generations']) {
      const response = await get(`/api/v1/users/${telegramId}/${listing}?limit=${limit}`);
      expectValidationProblem(response, [
        { field: 'querystring.limit', message: 'must be a finite number' },
      ]);
    }
  });

  it('an image position of Infinity is 422', async () => {
    const response = await app.inject({
      url: `/api/v1/generations/${randomUUID()}/images/Infinity`,
    });
    expectValidationProblem(response, [
      { field: 'params.position', message: 'must be a finite number' },
    ]);
  });

  it.each([
    ['"Infinity"', '"Infinity"'],
    ['"-Infinity"', '"-Infinity"'],
    ['a string of digits', '"123456"'],
    ['1e400', '1e400'],
    ['true', 'true'],
  ])('a body telegram_id of %s is 422 must be integer', async (_what, json) => {
    const response = await app.inject({
      method: 'POST',
      url: '/api/v1/users/sync',
      headers: { ...botAuth, 'content-type': 'application/json' },
      payload: `{"telegram_id": ${json}}`,
    });
    expectValidationProblem(response, [{ field: 'body.telegram_id', message: 'must be integer' }]);
  });

  it('an admin credit of amount true credits nothing (it was coerced to 1)', async () => {
    const telegramId = await newUser();
    const response = await post(
      `/api/v1/admin/users/${telegramId}/credits`,
      { amount: true, reason: 'typo' },
      adminAuth,
    );
    expectValidationProblem(response, [{ field: 'body.amount', message: 'must be integer' }]);
    expect((await get(`/api/v1/users/${telegramId}/balance`)).json().balance).toBe(0);
  });

  it('a null name still clears it (null is not coerced to "")', async () => {
    const telegramId = freshTelegramId();
    await post('/api/v1/users/sync', { telegram_id: telegramId, username: 'ada' });
    const response = await post('/api/v1/users/sync', { telegram_id: telegramId, username: null });
    expect(response.statusCode).toBe(200);
    expect(response.json().username).toBeNull();
  });
});

describe('cursors are decoded strictly: a bad one is 400 invalid_cursor on every listing', () => {
  const cursorOf = (text: string) => Buffer.from(text).toString('base64url');

  async function expectInvalidCursor(url: string): Promise<void> {
    const response = await get(url);
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(response.json()).toEqual({
      type: 'urn:problem:invalid_cursor',
      title: 'Invalid cursor',
      status: 400,
      detail:
        'cursor is not a next_cursor this API gave: pass back the next_cursor of the previous page, or leave it out for the first page.',
      instance: url.split('?')[0],
      code: 'invalid_cursor',
      requestId: response.headers['x-request-id'],
    });
  }

  it.each([
    ['beyond int4', cursorOf('e2147483648')],
    ['ten nines', cursorOf('e9999999999')],
    ['zero', cursorOf('e0')],
    ['a leading zero', cursorOf('e01')],
    ['not base64url', 'e1!'],
    ['non-canonical base64url', `${cursorOf('e5')}=`],
    ['empty', ''],
    ['text', 'abc'],
  ])('ledger cursor: %s', async (_what, cursor) => {
    const telegramId = await newUser();
    await expectInvalidCursor(
      `/api/v1/users/${telegramId}/ledger?cursor=${encodeURIComponent(cursor)}`,
    );
  });

  const id = randomUUID();
  it.each([
    ['31 February', `2024-02-31T00:00:00.000000Z|${id}`],
    ['hour 24', `2024-02-01T24:00:00.000000Z|${id}`],
    ['year 0', `0000-01-01T00:00:00.000000Z|${id}`],
    ['a date Date.parse takes', `99999|${id}`],
    ['no microseconds', `2024-02-01T00:00:00Z|${id}`],
    ['a uuid of dashes', '2024-02-01T00:00:00.000000Z|------------------------------------'],
    ['a uuid with a non-hex digit', `2024-02-01T00:00:00.000000Z|${id.slice(0, -1)}g`],
    ['an extra part', `2024-02-01T00:00:00.000000Z|${id}|x`],
    ['empty', ''],
  ])('generations cursor: %s', async (_what, text) => {
    const telegramId = await newUser();
    await expectInvalidCursor(
      `/api/v1/users/${telegramId}/generations?cursor=${text === '' ? '' : cursorOf(text)}`,
    );
  });

  it('a well-formed generations cursor is taken (an empty page after it)', async () => {
    const telegramId = await newUser();
    const response = await get(
      `/api/v1/users/${telegramId}/generations?cursor=${cursorOf(`2024-02-29T23:59:59.999999Z|${id}`)}`,
    );
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      telegram_id: telegramId,
      generations: [],
      next_cursor: null,
    });
  });
});

describe('what the router refuses is problem+json too', () => {
  it('a path parameter over 100 characters is 414 uri_too_long', async () => {
    const url = `/api/v1/users/${'1'.repeat(101)}/balance`;
    const response = await get(url);
    expect(response.statusCode).toBe(414);
    expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(response.json()).toEqual({
      type: 'urn:problem:uri_too_long',
      title: 'URI too long',
      status: 414,
      detail: 'A path segment is longer than 100 characters.',
      instance: url,
      code: 'uri_too_long',
      requestId: response.headers['x-request-id'],
    });
    expect(response.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('a path that is not percent-encoded UTF-8 is 400 invalid_url', async () => {
    const response = await app.inject({
      url: '/api/v1/users/%FF%FE/balance',
      headers: { ...botAuth, 'x-request-id': 'fuzz-1' },
    });
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(response.headers['x-request-id']).toBe('fuzz-1');
    expect(response.json()).toEqual({
      type: 'urn:problem:invalid_url',
      title: 'Bad request',
      status: 400,
      detail: 'The path is not valid percent-encoded UTF-8.',
      instance: '/api/v1/users/%FF%FE/balance',
      code: 'invalid_url',
      requestId: 'fuzz-1',
    });
  });
});

describe('unknown body fields are refused with 422 naming them', () => {
  it.each([
    [
      'quote',
      '/api/v1/generations/quote',
      (tg: number) => ({ telegram_id: tg, model: 'nano-banana', parameter: { size: '1k' } }),
      'body.parameter',
    ],
    [
      'generation',
      '/api/v1/generations',
      (tg: number) => ({ telegram_id: tg, model: 'nano-banana', prompt: 'x', parameter: {} }),
      'body.parameter',
    ],
    [
      'Stars confirm',
      '/api/v1/payments/stars/confirm',
      (tg: number) => payment(tg, { amount: 50 }),
      'body.amount',
    ],
    [
      'Stars refund',
      '/api/v1/payments/stars/refund',
      (tg: number) => payment(tg, { refund_reason: 'x' }),
      'body.refund_reason',
    ],
  ])('%s', async (_name, url, body, field) => {
    const telegramId = await newUser();
    const response = await post(url, body(telegramId));
    expectValidationProblem(response, [{ field, message: 'is not a known field' }]);
    const balance = await get(`/api/v1/users/${telegramId}/balance`);
    expect(balance.json().balance).toBe(0);
    const active = await get(`/api/v1/users/${telegramId}/generations/active`);
    expect(active.json().generations).toEqual([]);
  });

  it('admin credits', async () => {
    const telegramId = await newUser();
    const response = await post(
      `/api/v1/admin/users/${telegramId}/credits`,
      { amount: 5, reason: 'bonus', reson: 'typo' },
      adminAuth,
    );
    expectValidationProblem(response, [{ field: 'body.reson', message: 'is not a known field' }]);
    expect((await get(`/api/v1/users/${telegramId}/balance`)).json().balance).toBe(0);
  });

  it("Stars confirm takes Telegram's whole successful_payment object", async () => {
    const telegramId = await newUser();
    const response = await post(
      '/api/v1/payments/stars/confirm',
      payment(telegramId, {
        provider_payment_charge_id: '',
        subscription_expiration_date: 1_900_000_000,
        is_recurring: true,
        is_first_recurring: true,
        shipping_option_id: 'none',
        order_info: { name: 'Ada', shipping_address: { country_code: 'GB' } },
      }),
    );
    expect(response.statusCode).toBe(201);
    expect(response.json()).toMatchObject({ telegram_id: telegramId, credits: 100 });
    expect((await get(`/api/v1/users/${telegramId}/balance`)).json().balance).toBe(100);
  });
});
