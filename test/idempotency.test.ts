import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { principalLabel, tokenId } from '../src/deps/auth.ts';
import { claimIdempotencyKey, requestFingerprint } from '../src/services/idempotency.ts';
import { ADMIN_TOKEN, adminAuth, botAuth, buildTestApp } from './helpers/app.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';

let app: FastifyInstance;
let database: DatabaseHandle;
beforeAll(async () => {
  database = await sharedDatabase();
  app = await buildTestApp();
});
afterAll(() => app.close());

async function newUser(): Promise<number> {
  const telegramId = freshTelegramId();
  await app.inject({
    method: 'POST',
    url: '/api/v1/users/sync',
    headers: botAuth,
    payload: { telegram_id: telegramId },
  });
  return telegramId;
}

const adjust = (telegramId: number, body: Record<string, unknown>, key?: string) =>
  app.inject({
    method: 'POST',
    url: `/api/v1/admin/users/${telegramId}/credits`,
    headers: { ...adminAuth, ...(key ? { 'idempotency-key': key } : {}) },
    payload: body,
  });

async function entryCount(telegramId: number): Promise<number> {
  const [row] = await selectRows<{ n: number }>(
    database.db,
    sql`SELECT count(*)::int AS n FROM ledger_entries l JOIN users u ON u.id = l.user_id WHERE u.telegram_id = ${telegramId}`,
  );
  return row?.n ?? 0;
}

describe('POST /api/v1/admin/users/{telegram_id}/credits', () => {
  it('records the adjustment with who made it and why', async () => {
    const telegramId = await newUser();
    const response = await adjust(telegramId, {
      amount: 250,
      reason: 'support: failed generation on 1 May',
    });
    expect(response.statusCode).toBe(201);
    expect(response.json().entry).toMatchObject({
      amount: 250,
      balance_after: 250,
      kind: 'admin_adjustment',
      reason: 'support: failed generation on 1 May',
      actor: `admin:${tokenId(ADMIN_TOKEN)}`,
    });
  });

  it('refuses a debit beyond the balance with 402 and the numbers', async () => {
    const telegramId = await newUser();
    await adjust(telegramId, { amount: 10, reason: 'gift' });
    const response = await adjust(telegramId, { amount: -11, reason: 'take back' });
    expect(response.statusCode).toBe(402);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(response.json()).toMatchObject({
      code: 'insufficient_credits',
      balance: 10,
      required: 11,
      shortfall: 1,
    });
  });

  it('refuses a zero amount or a missing reason with 422', async () => {
    const telegramId = await newUser();
    expect((await adjust(telegramId, { amount: 0, reason: 'x' })).statusCode).toBe(422);
    expect((await adjust(telegramId, { amount: 5 })).statusCode).toBe(422);
    expect((await adjust(telegramId, { amount: 5.5, reason: 'x' })).statusCode).toBe(422);
  });

  it('is for admins only', async () => {
    const telegramId = await newUser();
    const response = await app.inject({
      method: 'POST',
      url: `/api/v1/admin/users/${telegramId}/credits`,
      headers: botAuth,
      payload: { amount: 5, reason: 'x' },
    });
    expect(response.statusCode).toBe(403);
  });
});

describe('Idempotency-Key', () => {
  it('one key replayed 1,000 times in series: one entry, identical responses', async () => {
    const telegramId = await newUser();
    const key = randomUUID();
    const first = await adjust(telegramId, { amount: 7, reason: 'bonus' }, key);
    expect(first.statusCode).toBe(201);
    for (let i = 0; i < 999; i++) {
      const again = await adjust(telegramId, { amount: 7, reason: 'bonus' }, key);
      expect(again.statusCode).toBe(201);
      expect(again.body).toBe(first.body);
      expect(again.headers['idempotent-replayed']).toBe('true');
    }
    expect(await entryCount(telegramId)).toBe(1);
  });

  it('one key sent 1,000 times in parallel: one entry, identical responses', async () => {
    const telegramId = await newUser();
    const key = randomUUID();
    const responses = await Promise.all(
      Array.from({ length: 1000 }, () => adjust(telegramId, { amount: 9, reason: 'bonus' }, key)),
    );
    expect(responses.map((r) => r.statusCode)).toEqual(Array(1000).fill(201));
    expect(new Set(responses.map((r) => r.body)).size).toBe(1);
    expect(await entryCount(telegramId)).toBe(1);
  });

  it('a retry while the first request is still running is told so (409, Retry-After)', async () => {
    const key = randomUUID();
    const input = { scope: 'bot:test', key, fingerprint: 'f', ttlHours: 24 };
    expect(await claimIdempotencyKey(database.db, input)).toMatchObject({ outcome: 'claimed' });
    await expect(claimIdempotencyKey(database.db, { ...input, waitMs: 300 })).rejects.toMatchObject(
      {
        status: 409,
        code: 'idempotency_request_in_progress',
        headers: { 'retry-after': '1' },
      },
    );
  });

  it('the same key with another body → 409 idempotency_key_reused, nothing recorded', async () => {
    const telegramId = await newUser();
    const key = randomUUID();
    await adjust(telegramId, { amount: 5, reason: 'bonus' }, key);
    const other = await adjust(telegramId, { amount: 500, reason: 'bonus' }, key);
    expect(other.statusCode).toBe(409);
    expect(other.json().code).toBe('idempotency_key_reused');
    expect(await entryCount(telegramId)).toBe(1);
  });

  it('replays an error answer too (Stripe semantics)', async () => {
    const telegramId = await newUser();
    const key = randomUUID();
    const first = await adjust(telegramId, { amount: -5, reason: 'take' }, key);
    expect(first.statusCode).toBe(402);
    await adjust(telegramId, { amount: 50, reason: 'gift' });
    const again = await adjust(telegramId, { amount: -5, reason: 'take' }, key);
    expect(again.statusCode).toBe(402);
    expect(again.body).toBe(first.body);
    expect(again.headers['content-type']).toContain('application/problem+json');
  });

  it('a key is per caller: another token with the same key is a new request', async () => {
    const telegramId = await newUser();
    const key = randomUUID();
    await adjust(telegramId, { amount: 5, reason: 'gift' }, key);
    const fingerprint = requestFingerprint('POST', `/api/v1/admin/users/${telegramId}/credits`, {
      amount: 5,
      reason: 'gift',
    });
    const claim = await claimIdempotencyKey(database.db, {
      scope: 'bot:other',
      key,
      fingerprint,
      ttlHours: 24,
    });
    expect(claim.outcome).toBe('claimed');
  });

  it('a claim left running past its lease (a crashed process) is taken over without doubling the effect', async () => {
    const telegramId = await newUser();
    const key = randomUUID();
    const body = { amount: 11, reason: 'gift' };
    const scope = principalLabel({ kind: 'admin', tokenId: tokenId(ADMIN_TOKEN) });
    // The first attempt recorded its effect, then died before storing its response.
    const first = await adjust(telegramId, body, key);
    await database.db.execute(sql`UPDATE idempotency_keys SET completed_at = NULL, response_status = NULL,
      response_body = NULL, locked_until = now() - interval '1 second' WHERE scope = ${scope} AND key = ${key}`);
    const retry = await adjust(telegramId, body, key);
    expect(retry.statusCode).toBe(201);
    expect(retry.json().entry.id).toBe(first.json().entry.id);
    expect(await entryCount(telegramId)).toBe(1);
  });

  it('refuses a malformed key with 422', async () => {
    const telegramId = await newUser();
    const response = await adjust(telegramId, { amount: 1, reason: 'x' }, 'x'.repeat(300));
    expect(response.statusCode).toBe(422);
    expect(response.json().code).toBe('invalid_idempotency_key');
  });
});

describe('GET /api/v1/users/{telegram_id}/ledger', () => {
  it('pages newest first with an opaque cursor', async () => {
    const telegramId = await newUser();
    for (const amount of [10, 20, 30]) await adjust(telegramId, { amount, reason: 'gift' });
    const url = `/api/v1/users/${telegramId}/ledger`;
    const first = (await app.inject({ url: `${url}?limit=2`, headers: botAuth })).json();
    expect(first.entries.map((e: { amount: number }) => e.amount)).toEqual([30, 20]);
    expect(first.entries[0]).toMatchObject({ balance_after: 60, entry_no: 3 });
    const second = (
      await app.inject({ url: `${url}?limit=2&cursor=${first.next_cursor}`, headers: botAuth })
    ).json();
    expect(second.entries.map((e: { amount: number }) => e.amount)).toEqual([10]);
    expect(second.next_cursor).toBeNull();
  });

  it('refuses a forged cursor with 400 invalid_cursor and an unknown user with 404', async () => {
    const telegramId = await newUser();
    const bad = await app.inject({
      url: `/api/v1/users/${telegramId}/ledger?cursor=abc`,
      headers: botAuth,
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ status: 400, code: 'invalid_cursor' });
    const unknown = await app.inject({
      url: `/api/v1/users/${freshTelegramId()}/ledger`,
      headers: botAuth,
    });
    expect(unknown.statusCode).toBe(404);
  });
});
