import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminAuth, botAuth, buildTestApp, miniAppAuth } from './helpers/app.ts';
import { freshTelegramId } from './helpers/database.ts';

let app: FastifyInstance;
beforeAll(async () => {
  app = await buildTestApp();
});
afterAll(() => app.close());

const sync = (telegramId: number, extra: Record<string, unknown> = {}) =>
  app.inject({
    method: 'POST',
    url: '/api/v1/users/sync',
    headers: botAuth,
    payload: { telegram_id: telegramId, ...extra },
  });

const patch = (telegramId: number, payload: unknown, headers: Record<string, string> = botAuth) =>
  app.inject({
    method: 'PATCH',
    url: `/api/v1/users/${telegramId}`,
    headers,
    payload: payload as Record<string, unknown>,
  });

async function newUser(): Promise<number> {
  const telegramId = freshTelegramId();
  expect((await sync(telegramId)).statusCode).toBe(201);
  return telegramId;
}

const fieldsOf = (response: { json: () => { errors?: { field: string }[] } }) =>
  (response.json().errors ?? []).map((e) => e.field);

describe('the user object of sync', () => {
  it('adds language, preferences, referral_code and banned to what it answered', async () => {
    const telegramId = freshTelegramId();
    const created = await sync(telegramId, { first_name: 'Ada', language_code: 'ru' });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toEqual({
      telegram_id: telegramId,
      username: null,
      first_name: 'Ada',
      last_name: null,
      language_code: 'ru',
      is_premium: false,
      created_at: expect.any(String),
      updated_at: expect.any(String),
      balance: 0,
      trial: { available: true, used: 0, limit: 3, remaining: 3 },
      language: null,
      preferences: {},
      referral_code: expect.stringMatching(/^[2-9A-HJKMNP-Z]{8}$/),
      banned: null,
    });
    const again = await sync(telegramId);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({
      language: null,
      preferences: {},
      referral_code: created.json().referral_code,
    });
  });

  it('records when the bot last saw the user', async () => {
    const telegramId = freshTelegramId();
    const before = Date.now();
    await sync(telegramId);
    const view = async () =>
      (await app.inject({ url: `/api/v1/admin/users/${telegramId}`, headers: adminAuth })).json();
    const first = (await view()).last_seen_at as string;
    expect(Date.parse(first)).toBeGreaterThanOrEqual(before - 1000);
    await sync(telegramId);
    expect(Date.parse((await view()).last_seen_at)).toBeGreaterThanOrEqual(Date.parse(first));
    // Other reads do not count as being seen.
    const seen = (await view()).last_seen_at;
    await app.inject({ url: `/api/v1/users/${telegramId}/balance`, headers: botAuth });
    expect((await view()).last_seen_at).toBe(seen);
  });
});

describe('PATCH /api/v1/users/{telegram_id}', () => {
  it('sets the language and the preferences, answering the user as sync does', async () => {
    const telegramId = await newUser();
    const preferences = {
      model: 'nano-banana-pro',
      parameters: {
        'nano-banana-pro': { aspect_ratio: '16:9', resolution: '2k' },
        'seedream-v4': { size: '2048*2048' },
      },
    };
    const response = await patch(telegramId, { language: 'uz', preferences });
    expect(response.statusCode, response.body).toBe(200);
    const synced = (await sync(telegramId)).json();
    expect(response.json()).toEqual({ ...synced, updated_at: response.json().updated_at });
    expect(synced).toMatchObject({ telegram_id: telegramId, language: 'uz', preferences });
  });

  it('keeps what it is not sent; null clears the language; preferences are replaced whole', async () => {
    const telegramId = await newUser();
    await patch(telegramId, {
      language: 'ru',
      preferences: { model: 'a', parameters: { a: { x: '1' } } },
    });
    expect((await patch(telegramId, {})).json()).toMatchObject({
      language: 'ru',
      preferences: { model: 'a', parameters: { a: { x: '1' } } },
    });
    expect((await patch(telegramId, { preferences: { model: 'b' } })).json()).toMatchObject({
      language: 'ru',
      preferences: { model: 'b' },
    });
    expect((await patch(telegramId, { language: null })).json()).toMatchObject({
      language: null,
      preferences: { model: 'b' },
    });
    expect((await patch(telegramId, { preferences: {} })).json().preferences).toEqual({});
  });

  it.each([
    ['a language it does not speak', { language: 'de' }, 'body.language'],
    ['a field it does not know', { lang: 'uz' }, 'body.lang'],
    ['a preference it does not know', { preferences: { theme: 'dark' } }, 'body.preferences.theme'],
    [
      'a model key over 64 characters',
      { preferences: { model: 'm'.repeat(65) } },
      'body.preferences.model',
    ],
    [
      'a value that is not a string',
      { preferences: { parameters: { m: { n: 4 } } } },
      'body.preferences.parameters.m.n',
    ],
    [
      'a value over 64 characters',
      { preferences: { parameters: { m: { n: 'v'.repeat(65) } } } },
      'body.preferences.parameters.m.n',
    ],
    [
      'a parameter name over 64 characters',
      { preferences: { parameters: { m: { ['n'.repeat(65)]: 'v' } } } },
      'body.preferences.parameters.m',
    ],
    [
      'a model key of the parameters over 64 characters',
      { preferences: { parameters: { ['m'.repeat(65)]: {} } } },
      'body.preferences.parameters',
    ],
    [
      'parameters that are not an object',
      { preferences: { parameters: ['x'] } },
      'body.preferences.parameters',
    ],
    [
      'more than 32 models',
      {
        preferences: {
          parameters: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`m${i}`, {}])),
        },
      },
      'body.preferences.parameters',
    ],
  ])('refuses %s with 422 naming it, and stores nothing', async (_label, body, field) => {
    const telegramId = await newUser();
    await patch(telegramId, { language: 'en' });
    const response = await patch(telegramId, body);
    expect(response.statusCode, response.body).toBe(422);
    expect(response.json().code).toBe('validation_failed');
    expect(fieldsOf(response)).toContain(field);
    expect((await sync(telegramId)).json()).toMatchObject({ language: 'en', preferences: {} });
  });

  it('refuses preferences over 4 KB as JSON, each part within its own limits', async () => {
    const telegramId = await newUser();
    const many = Object.fromEntries(
      Array.from({ length: 6 }, (_, m) => [
        `model-${m}`.padEnd(64, 'x'),
        Object.fromEntries(
          Array.from({ length: 16 }, (_, p) => [`p${p}`.padEnd(20, 'y'), 'v'.repeat(20)]),
        ),
      ]),
    );
    const response = await patch(telegramId, { preferences: { parameters: many } });
    expect(response.statusCode, response.body).toBe(422);
    expect(response.json().errors).toEqual([
      { field: 'body.preferences', message: expect.stringMatching(/at most 4096 bytes/) },
    ]);
    expect((await sync(telegramId)).json().preferences).toEqual({});
    // Just under the limit is kept.
    const fewer = Object.fromEntries(Object.entries(many).slice(0, 1));
    expect((await patch(telegramId, { preferences: { parameters: fewer } })).statusCode).toBe(200);
  });

  it('answers 404 for a user never synced', async () => {
    const response = await patch(freshTelegramId(), { language: 'ru' });
    expect(response.statusCode).toBe(404);
    expect(response.json().code).toBe('user_not_found');
  });

  it('a Mini App user may change itself only; the bot and an admin anyone', async () => {
    const telegramId = await newUser();
    const other = await newUser();
    expect((await patch(telegramId, { language: 'ru' }, miniAppAuth(telegramId))).statusCode).toBe(
      200,
    );
    const refused = await patch(other, { language: 'ru' }, miniAppAuth(telegramId));
    expect(refused.statusCode).toBe(403);
    expect(refused.json().code).toBe('forbidden');
    expect((await sync(other)).json().language).toBeNull();
    expect((await patch(other, { language: 'en' }, adminAuth)).statusCode).toBe(200);
    expect((await patch(other, { language: 'en' }, {})).statusCode).toBe(401);
  });
});
