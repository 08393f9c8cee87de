import { randomUUID } from 'node:crypto';
import { type SQL, sql } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database, DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { principalLabel, tokenId } from '../src/deps/auth.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { postEntry } from '../src/services/ledger.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { ADMIN_TOKEN, adminAuth, BOT_TOKEN, buildTestApp } from './helpers/app.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';
import {
  balanceOf,
  createTestModel,
  entriesFor,
  submit,
  type TestModel,
  userWithCredits,
} from './helpers/pipeline.ts';

/**
 * Effects and their Idempotency-Key answers are one fact: a process that dies between making the
 * effect and storing the key's answer must not make the effect twice when the client retries.
 */

let database: DatabaseHandle;
let app: FastifyInstance;
let model: TestModel;
const provider = new ScriptedProvider();

beforeAll(async () => {
  database = await sharedDatabase();
  // No worker: what matters is what is accepted and charged.
  app = await buildTestApp(
    { TRIAL_GENERATIONS: '0', MAX_PARALLEL_GENERATIONS_PER_USER: '10' },
    undefined,
    {
      providers: new ProviderRegistry([provider], 'catalog'),
    },
  );
  model = await createTestModel(database.db, { provider: provider.name });
});
afterAll(() => app.close());

const botScope = principalLabel({ kind: 'bot', tokenId: tokenId(BOT_TOKEN) });
const adminScope = principalLabel({ kind: 'admin', tokenId: tokenId(ADMIN_TOKEN) });

/** Leaves the key as a process that died after the effect but before storing its answer does. */
async function crashAfterEffect(scope: string, key: string): Promise<void> {
  await database.db.execute(sql`UPDATE idempotency_keys
    SET completed_at = NULL, response_status = NULL, response_body = NULL,
        locked_until = now() - interval '1 second'
    WHERE scope = ${scope} AND key = ${key}`);
}

async function chargesOf(telegramId: number): Promise<number> {
  const [row] = await selectRows<{ n: number }>(
    database.db,
    sql`SELECT count(*)::int AS n FROM ledger_entries l JOIN users u ON u.id = l.user_id
        WHERE u.telegram_id = ${telegramId} AND l.kind = 'generation_charge'`,
  );
  return row?.n ?? 0;
}

describe('a retry after a crash between the effect and the key’s answer', () => {
  it('POST /generations: the same generation, charged once', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 100);
    const key = randomUUID();
    const body = { telegram_id: telegramId, model: model.key, prompt: 'a lighthouse' };
    const first = await submit(app, body, { 'idempotency-key': key });
    expect(first.statusCode, first.body).toBe(202);
    expect(first.json().balance).toBe(90);

    await crashAfterEffect(botScope, key);
    const retry = await submit(app, body, { 'idempotency-key': key });
    expect(retry.statusCode, retry.body).toBe(202);
    expect(retry.json()).toMatchObject({
      id: first.json().id,
      status: 'queued',
      payment: { method: 'credits', credits: 10, refunded: false },
      balance: 90,
    });
    expect(await chargesOf(telegramId)).toBe(1);
    expect(await entriesFor(database.db, first.json().id)).toEqual([
      { kind: 'generation_charge', amount: -10 },
    ]);
    expect(await balanceOf(app, telegramId)).toBe(90);

    // The answer is now stored: a third attempt replays it.
    const replay = await submit(app, body, { 'idempotency-key': key });
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.json().id).toBe(first.json().id);
  });

  it('POST /generations: another key is another generation', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 100);
    const body = { telegram_id: telegramId, model: model.key, prompt: 'a lighthouse' };
    const a = await submit(app, body, { 'idempotency-key': randomUUID() });
    const b = await submit(app, body, { 'idempotency-key': randomUUID() });
    expect(a.json().id).not.toBe(b.json().id);
    expect(await chargesOf(telegramId)).toBe(2);
  });

  it('a key used again after it expired is a new request, not the old effect', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 100);
    const key = randomUUID();
    const body = { telegram_id: telegramId, model: model.key, prompt: 'a lighthouse' };
    const first = await submit(app, body, { 'idempotency-key': key });
    await database.db.execute(sql`UPDATE idempotency_keys SET created_at = now() - interval '25 hours'
      WHERE scope = ${botScope} AND key = ${key}`);
    const later = await submit(app, body, { 'idempotency-key': key });
    expect(later.statusCode, later.body).toBe(202);
    expect(later.headers['idempotent-replayed']).toBeUndefined();
    expect(later.json().id).not.toBe(first.json().id);
    expect(await chargesOf(telegramId)).toBe(2);
  });

  it('POST /admin/users/{id}/credits: one adjustment', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 0);
    const key = randomUUID();
    const credit = () =>
      app.inject({
        method: 'POST',
        url: `/api/v1/admin/users/${telegramId}/credits`,
        headers: { ...adminAuth, 'idempotency-key': key },
        payload: { amount: 25, reason: 'goodwill' },
      });
    const first = await credit();
    expect(first.statusCode).toBe(201);
    await crashAfterEffect(adminScope, key);
    const retry = await credit();
    expect(retry.statusCode).toBe(201);
    expect(retry.json().entry.id).toBe(first.json().entry.id);
    expect(await balanceOf(app, telegramId)).toBe(25);
  });
});

/**
 * A database whose `ledger_append_many` batch of several entries commits and then loses its
 * answer (the connection drops after COMMIT): what a network failure at the worst moment does.
 */
function losingBatchAnswer(db: Database): { db: Database; lost: () => boolean } {
  const dialect = new PgDialect();
  let lost = false;
  const proxy = new Proxy(db, {
    get(target, property, receiver) {
      if (property !== 'execute') return Reflect.get(target, property, receiver);
      return async (query: SQL) => {
        const result = await target.execute(query);
        const { sql: text, params } = dialect.sqlToQuery(query);
        const batch =
          text.includes('ledger_append_many') && JSON.parse(String(params[0])).length > 1;
        if (batch && !lost) {
          lost = true;
          throw new Error('Connection terminated unexpectedly');
        }
        return result;
      };
    },
  });
  return { db: proxy, lost: () => lost };
}

describe('the ledger group commit after an unclear failure', () => {
  it('sends the batch again without doubling entries that came without a key', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 0);
    const flaky = losingBatchAnswer(database.db);
    // The first two go at once, one each; the rest wait and go together as one batch.
    const amounts = [1, 2, 3, 4, 5, 6];
    const posted = await Promise.all(
      amounts.map((amount) =>
        postEntry(flaky.db, { telegramId }, { kind: 'admin_adjustment', amount, reason: 'test' }),
      ),
    );
    // The batch's answer was lost, so it was sent again.
    expect(flaky.lost()).toBe(true);
    expect(posted.map((p) => p.entry.amount)).toEqual(amounts);
    expect(posted.every((p) => !p.replayed)).toBe(true);
    const rows = await selectRows<{ amount: number }>(
      database.db,
      sql`SELECT l.amount FROM ledger_entries l JOIN users u ON u.id = l.user_id
          WHERE u.telegram_id = ${telegramId} ORDER BY l.amount`,
    );
    expect(rows.map((r) => r.amount)).toEqual(amounts);
    expect(await balanceOf(app, telegramId)).toBe(21);
  });

  it('the database keys every new entry and refuses one without a key', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 0);
    const [written] = await selectRows<{ idempotency_key: string }>(
      database.db,
      sql`INSERT INTO ledger_entries (user_id, amount, kind, actor)
          SELECT id, 5, 'admin_adjustment', 'test' FROM users WHERE telegram_id = ${telegramId}
          RETURNING idempotency_key`,
    );
    expect(written?.idempotency_key).toMatch(/^entry:[0-9a-f-]{36}$/);
    await expect(
      database.db.execute(sql`INSERT INTO ledger_entries (user_id, amount, kind, actor, idempotency_key)
        SELECT id, 5, 'admin_adjustment', 'test', NULL FROM users WHERE telegram_id = ${telegramId}`),
    ).rejects.toThrow();
    expect(await balanceOf(app, telegramId)).toBe(5);
  });
});

/** The shared database, except that storing an Idempotency-Key's answer fails (the database went away). */
function losingKeyAnswers(handle: DatabaseHandle): DatabaseHandle {
  const dialect = new PgDialect();
  const db = new Proxy(handle.db, {
    get(target, property, receiver) {
      if (property !== 'execute') return Reflect.get(target, property, receiver);
      return async (query: SQL) => {
        if (dialect.sqlToQuery(query).sql.includes('UPDATE idempotency_keys')) {
          throw new Error('Connection terminated unexpectedly');
        }
        return target.execute(query);
      };
    },
  });
  return { ...handle, db, close: async () => undefined };
}

describe('an answer that cannot be recorded', () => {
  it('is still sent as it is, and the retry after the lease finds the same effect', async () => {
    const flakyApp = await buildTestApp({}, losingKeyAnswers(database));
    try {
      const telegramId = freshTelegramId();
      await userWithCredits(app, telegramId, 0);
      const key = randomUUID();
      const credit = (on: FastifyInstance) =>
        on.inject({
          method: 'POST',
          url: `/api/v1/admin/users/${telegramId}/credits`,
          headers: { ...adminAuth, 'idempotency-key': key },
          payload: { amount: 7, reason: 'goodwill' },
        });
      const first = await credit(flakyApp);
      expect(first.statusCode, first.body).toBe(201);
      expect(first.headers['content-type']).toMatch(/^application\/json/);
      expect(first.json().entry).toMatchObject({ amount: 7, balance_after: 7 });

      await crashAfterEffect(adminScope, key);
      const retry = await credit(app);
      expect(retry.statusCode).toBe(201);
      expect(retry.json().entry.id).toBe(first.json().entry.id);
      expect(await balanceOf(app, telegramId)).toBe(7);
    } finally {
      await flakyApp.close();
    }
  });
});

describe('the database away', () => {
  it('is a 503 database_unavailable with Retry-After, not a 500', async () => {
    const refuse = async () => {
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), {
        code: 'ECONNREFUSED',
      });
    };
    // Both ways statements reach the driver: Drizzle's execute and the raw client's query.
    const unreachable = new Proxy(database.db, {
      get(target, property, receiver) {
        if (property === 'execute') return refuse;
        if (property === '$client') return { query: refuse };
        return Reflect.get(target, property, receiver);
      },
    });
    const awayApp = await buildTestApp(
      {},
      { ...database, db: unreachable, close: async () => undefined },
    );
    try {
      const response = await awayApp.inject({
        method: 'GET',
        url: '/api/v1/admin/users/42',
        headers: adminAuth,
      });
      expect(response.statusCode).toBe(503);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(response.headers['retry-after']).toBe('5');
      expect(response.json()).toMatchObject({ code: 'database_unavailable', status: 503 });
      expect(response.body).not.toContain('ECONNREFUSED');
    } finally {
      await awayApp.close();
    }
  });
});
