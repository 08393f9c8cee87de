import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { runHousekeeping } from '../src/jobs/housekeeping.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { LocalResultStore } from '../src/storage/local.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { buildTestApp, testConfig } from './helpers/app.ts';
import { freshTelegramId, sharedDatabase, silentLogger } from './helpers/database.ts';
import {
  balanceOf,
  createTestModel,
  entriesFor,
  generation,
  submit,
  userWithCredits,
} from './helpers/pipeline.ts';

let database: DatabaseHandle;
let app: FastifyInstance;
// Nobody runs this provider's jobs: its generations wait in the queue, as when no worker serves it.
const orphaned = new ScriptedProvider();

function environment() {
  const config = testConfig({ TELEGRAM_BOT_TOKEN: '' });
  const ctx = { db: database.db, config, providers: new ProviderRegistry([], 'catalog') };
  return { ctx, logger: silentLogger, store: new LocalResultStore(config.dataDir) };
}

beforeAll(async () => {
  database = await sharedDatabase();
  app = await buildTestApp({ TRIAL_GENERATIONS: '0', TELEGRAM_BOT_TOKEN: '' }, undefined, {
    providers: new ProviderRegistry([orphaned], 'catalog'),
  });
});

afterAll(async () => {
  await app.close();
});

describe('housekeeping', () => {
  it('deletes Idempotency-Key rows older than their TTL and keeps the others', async () => {
    const scope = `test:${randomUUID()}`;
    await database.db.execute(
      sql`INSERT INTO idempotency_keys (scope, key, request_hash, created_at)
          VALUES (${scope}, 'old', 'h', now() - interval '25 hours'),
                 (${scope}, 'fresh', 'h', now() - interval '1 hour')`,
    );
    await runHousekeeping(environment());
    const left = await selectRows<{ key: string }>(
      database.db,
      sql`SELECT key FROM idempotency_keys WHERE scope = ${scope}`,
    );
    expect(left.map((row) => row.key)).toEqual(['fresh']);
  });

  it('deletes operator sessions ended more than a week ago and keeps the others', async () => {
    const telegramId = freshTelegramId();
    const hashes = [1, 2, 3, 4].map(() => randomUUID().replaceAll('-', '').repeat(2));
    const hash = (n: number) => hashes[n - 1] ?? '';
    await database.db.execute(
      sql`INSERT INTO operator_sessions (token_sha256, telegram_id, role, expires_at, revoked_at)
          VALUES (${hash(1)}, ${telegramId}, 'admin', now() - interval '8 days', NULL),
                 (${hash(2)}, ${telegramId}, 'admin', now() + interval '1 hour', now() - interval '8 days'),
                 (${hash(3)}, ${telegramId}, 'admin', now() - interval '6 days', NULL),
                 (${hash(4)}, ${telegramId}, 'support', now() + interval '1 hour', NULL)`,
    );
    await runHousekeeping(environment());
    const left = await selectRows<{ token_sha256: string }>(
      database.db,
      sql`SELECT token_sha256 FROM operator_sessions WHERE telegram_id = ${telegramId} ORDER BY id`,
    );
    expect(left.map((row) => row.token_sha256)).toEqual([hash(3), hash(4)]);
  });

  it('fails and gives back a generation no worker took long after its deadline', async () => {
    const model = await createTestModel(database.db, { provider: orphaned.name });
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 10);
    const waiting = (
      await submit(app, { telegram_id: telegramId, model: model.key, prompt: 'x' })
    ).json().id as string;
    const recent = (await submit(app, { telegram_id: telegramId, model: model.key, prompt: 'y' }))
      .statusCode;
    expect(recent).toBe(402);
    await database.db.execute(
      sql`UPDATE generation_jobs SET deadline_at = now() - interval '10 minutes'
          WHERE request_id = ${waiting} AND kind = 'generate'`,
    );
    await runHousekeeping(environment());
    expect(await generation(app, waiting)).toMatchObject({
      status: 'failed',
      error: { code: 'deadline_exceeded' },
      payment: { refunded: true },
    });
    expect(await balanceOf(app, telegramId)).toBe(10);
    expect(await entriesFor(database.db, waiting)).toEqual([
      { kind: 'generation_charge', amount: -10 },
      { kind: 'generation_refund', amount: 10 },
    ]);
    // Once is all: a second sweep changes nothing.
    await runHousekeeping(environment());
    expect(await entriesFor(database.db, waiting)).toHaveLength(2);
  });
});
