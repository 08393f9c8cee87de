import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { botAuth, buildTestApp } from './helpers/app.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';

let app: FastifyInstance;
let database: DatabaseHandle;
beforeAll(async () => {
  database = await sharedDatabase();
  app = await buildTestApp();
});
afterAll(() => app.close());

const sync = (body: Record<string, unknown>) =>
  app.inject({ method: 'POST', url: '/api/v1/users/sync', headers: botAuth, payload: body });

async function internalId(telegramId: number): Promise<number> {
  const [row] = await selectRows<{ id: string | number }>(
    database.db,
    sql`SELECT id FROM users WHERE telegram_id = ${telegramId}`,
  );
  return Number(row?.id);
}

describe('POST /api/v1/users/sync', () => {
  it('creates the user (201), then refreshes it (200) with balance and trial', async () => {
    const telegramId = freshTelegramId();
    const created = await sync({
      telegram_id: telegramId,
      username: 'alice',
      first_name: 'Alice',
      language_code: 'uz',
      is_premium: true,
    });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({
      telegram_id: telegramId,
      username: 'alice',
      first_name: 'Alice',
      last_name: null,
      language_code: 'uz',
      is_premium: true,
      balance: 0,
      trial: { available: true, used: 0, limit: 3, remaining: 3 },
    });

    const updated = await sync({ telegram_id: telegramId, username: 'alice_new', last_name: 'A.' });
    expect(updated.statusCode).toBe(200);
    const body = updated.json();
    expect(body).toMatchObject({
      username: 'alice_new',
      last_name: 'A.',
      // Left out of the second call: kept.
      first_name: 'Alice',
      language_code: 'uz',
      is_premium: true,
    });
    expect(Date.parse(body.updated_at)).toBeGreaterThanOrEqual(Date.parse(body.created_at));
  });

  it('clears a field sent as null (a user who removed their username)', async () => {
    const telegramId = freshTelegramId();
    await sync({ telegram_id: telegramId, username: 'temp' });
    const response = await sync({ telegram_id: telegramId, username: null });
    expect(response.json().username).toBeNull();
  });

  it('is safe under concurrent calls for one id: one 201, the rest 200, one row', async () => {
    const telegramId = freshTelegramId();
    const responses = await Promise.all(
      Array.from({ length: 25 }, (_, i) => sync({ telegram_id: telegramId, first_name: `n${i}` })),
    );
    const statuses = responses.map((r) => r.statusCode).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(24);
    const [count] = await selectRows<{ n: number }>(
      database.db,
      sql`SELECT count(*)::int AS n FROM users WHERE telegram_id = ${telegramId}`,
    );
    expect(count?.n).toBe(1);
  });

  it.each([
    [{}, 'body.telegram_id'],
    [{ telegram_id: 0 }, 'body.telegram_id'],
    [{ telegram_id: -5 }, 'body.telegram_id'],
    [{ telegram_id: 1.5 }, 'body.telegram_id'],
    [{ telegram_id: 'abc' }, 'body.telegram_id'],
    [{ telegram_id: 2 ** 60 }, 'body.telegram_id'],
    [{ telegram_id: 7, username: 'x'.repeat(65) }, 'body.username'],
    [{ telegram_id: 7, is_premium: 'maybe' }, 'body.is_premium'],
  ])('refuses %j with 422 naming %s', async (body, field) => {
    const response = await sync(body);
    expect(response.statusCode).toBe(422);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(response.json().code).toBe('validation_failed');
    expect(response.json().errors.map((e: { field: string }) => e.field)).toContain(field);
  });

  it('refuses malformed JSON with 400 problem+json, not 500', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/api/v1/users/sync',
      headers: { ...botAuth, 'content-type': 'application/json' },
      payload: '{"telegram_id": 1,',
    });
    expect(response.statusCode).toBe(400);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(response.json()).toMatchObject({ status: 400, code: 'bad_request' });
  });

  it("accepts the rest of Telegram's User object without keeping it", async () => {
    const telegramId = freshTelegramId();
    const response = await sync({
      telegram_id: telegramId,
      first_name: 'Ada',
      is_bot: false,
      is_premium: true,
      added_to_attachment_menu: true,
      can_join_groups: null,
      can_read_all_group_messages: false,
      supports_inline_queries: false,
      can_connect_to_business: false,
      has_main_web_app: true,
    });
    expect(response.statusCode).toBe(201);
    expect(response.json()).not.toHaveProperty('is_bot');
  });

  it('refuses a field it does not know with 422 naming it, and stores nothing', async () => {
    const telegramId = freshTelegramId();
    const response = await sync({ telegram_id: telegramId, firstname: 'Ada', lang: 'en' });
    expect(response.statusCode).toBe(422);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(response.json()).toMatchObject({
      code: 'validation_failed',
      errors: [
        { field: 'body.firstname', message: 'is not a known field' },
        { field: 'body.lang', message: 'is not a known field' },
      ],
    });
    const balance = await app.inject({
      url: `/api/v1/users/${telegramId}/balance`,
      headers: botAuth,
    });
    expect(balance.statusCode).toBe(404);
  });
});

describe('GET /api/v1/users/{telegram_id}/balance', () => {
  it('is derived from the ledger entries', async () => {
    const telegramId = freshTelegramId();
    await sync({ telegram_id: telegramId });
    const balance = async () =>
      (await app.inject({ url: `/api/v1/users/${telegramId}/balance`, headers: botAuth })).json();
    expect(await balance()).toEqual({ telegram_id: telegramId, balance: 0 });

    const userId = await internalId(telegramId);
    await database.db.execute(
      sql`INSERT INTO ledger_entries (user_id, amount, kind) VALUES (${userId}, 100, 'topup'), (${userId}, -27, 'generation_charge'), (${userId}, 27, 'generation_refund'), (${userId}, -38, 'generation_charge')`,
    );
    expect(await balance()).toEqual({ telegram_id: telegramId, balance: 62 });
    const [sum] = await selectRows<{ total: number }>(
      database.db,
      sql`SELECT sum(amount)::int AS total FROM ledger_entries WHERE user_id = ${userId}`,
    );
    expect(sum?.total).toBe(62);
  });

  it('answers 404 problem for an unknown user', async () => {
    const response = await app.inject({
      url: `/api/v1/users/${freshTelegramId()}/balance`,
      headers: botAuth,
    });
    expect(response.statusCode).toBe(404);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(response.json()).toMatchObject({ code: 'user_not_found', status: 404 });
  });

  it.each(['abc', '0', '-3', '1.5', '99999999999999999999'])(
    'refuses telegram_id %s with 422, never 500',
    async (bad) => {
      const response = await app.inject({ url: `/api/v1/users/${bad}/balance`, headers: botAuth });
      expect(response.statusCode).toBe(422);
      expect(response.json().errors[0].field).toBe('params.telegram_id');
    },
  );
});

describe('GET /api/v1/users/{telegram_id}/trial', () => {
  it('counts used trials that were not given back, against TRIAL_GENERATIONS', async () => {
    const telegramId = freshTelegramId();
    await sync({ telegram_id: telegramId });
    const trial = async () =>
      (await app.inject({ url: `/api/v1/users/${telegramId}/trial`, headers: botAuth })).json();
    expect(await trial()).toEqual({
      telegram_id: telegramId,
      available: true,
      used: 0,
      limit: 3,
      remaining: 3,
    });

    const userId = await internalId(telegramId);
    await database.db.execute(
      sql`INSERT INTO trial_uses (user_id) VALUES (${userId}), (${userId})`,
    );
    await database.db.execute(
      sql`INSERT INTO trial_uses (user_id, returned_at, return_reason) VALUES (${userId}, now(), 'generation failed')`,
    );
    expect(await trial()).toEqual({
      telegram_id: telegramId,
      available: true,
      used: 2,
      limit: 3,
      remaining: 1,
    });
    await database.db.execute(sql`INSERT INTO trial_uses (user_id) VALUES (${userId})`);
    expect(await trial()).toEqual({
      telegram_id: telegramId,
      available: false,
      used: 3,
      limit: 3,
      remaining: 0,
    });
  });

  it('follows TRIAL_GENERATIONS', async () => {
    const telegramId = freshTelegramId();
    await sync({ telegram_id: telegramId });
    const other = await buildTestApp({ TRIAL_GENERATIONS: '0' });
    try {
      const response = await other.inject({
        url: `/api/v1/users/${telegramId}/trial`,
        headers: botAuth,
      });
      expect(response.json()).toMatchObject({ available: false, limit: 0, remaining: 0 });
    } finally {
      await other.close();
    }
  });

  it('answers 404 for an unknown user', async () => {
    const response = await app.inject({
      url: `/api/v1/users/${freshTelegramId()}/trial`,
      headers: botAuth,
    });
    expect(response.statusCode).toBe(404);
  });
});
