import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DatabaseHandle, openDatabase } from '../src/db/client.ts';
import { claim, enqueue, releaseUnheld } from '../src/db/job-queue.ts';
import { selectRows } from '../src/db/rows.ts';
import { JobWorker } from '../src/jobs/worker.ts';
import { LocalProvider } from '../src/providers/local.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { LocalResultStore } from '../src/storage/local.ts';
import { buildTestApp, testConfig } from './helpers/app.ts';
import {
  freshTelegramId,
  needsPostgres,
  onPostgres,
  sharedDatabase,
  silentLogger,
  testDatabaseUrl,
} from './helpers/database.ts';
import {
  createTestModel,
  entriesFor,
  generation,
  submit,
  userWithCredits,
  waitFor,
} from './helpers/pipeline.ts';

/**
 * PostgreSQL connections of a worker are cut from the server side (pg_terminate_backend, what a
 * restart or a failover does to every connection): the worker must keep running, LISTEN again and
 * keep working; a pooled connection that dies must be dropped and replaced, never crash the process.
 *
 * The connections under test carry an application_name of this file's own (set in the URL), so
 * only they are terminated, never another test's or another database's.
 */

const applicationName = `resilience-${randomUUID().slice(0, 8)}`;

function ownUrl(): string {
  const url = new URL(testDatabaseUrl as string);
  url.searchParams.set('application_name', applicationName);
  return url.toString();
}

/** This file's backends on this database, and the last statement each ran. */
async function ownBackends(): Promise<{ pid: number; query: string; state: string | null }[]> {
  const shared = await sharedDatabase();
  return selectRows(
    shared.db,
    sql`SELECT pid, query, state FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = ${applicationName}
          AND pid <> pg_backend_pid()
        ORDER BY pid`,
  );
}

async function listenerPids(): Promise<number[]> {
  return (
    (await ownBackends())
      // The jobs' LISTEN; the worker holds one for settings_changed as well.
      .filter((backend) => backend.query.startsWith('LISTEN generation_jobs'))
      .map((backend) => backend.pid)
  );
}

async function terminate(pids: readonly number[]): Promise<void> {
  const shared = await sharedDatabase();
  for (const pid of pids) await shared.db.execute(sql`SELECT pg_terminate_backend(${pid})`);
  // Gone from the server: its client has been told (or its socket closed) by then.
  await waitFor(ownBackends, (backends) => backends.every((b) => !pids.includes(b.pid)));
}

describe('connections cut from the server side', () => {
  let handle: DatabaseHandle | null = null;
  beforeAll(async () => {
    if (onPostgres) {
      handle = await openDatabase({ kind: 'postgres', url: ownUrl(), poolSize: 4 }, silentLogger);
    }
  });
  afterAll(async () => {
    await handle?.close();
  });

  it('a worker whose LISTEN connection is terminated keeps running, LISTENs again and is woken by the next generation', async (context) => {
    const why = 'LISTEN holds a pool connection only on PostgreSQL';
    if (needsPostgres(why)) context.skip(why);
    const database = handle as DatabaseHandle;
    const shared = await sharedDatabase();
    // A name of this test's own: no other test's worker claims its jobs.
    const local = new LocalProvider({ name: `local-${freshTelegramId()}` });
    const providers = new ProviderRegistry([local], 'catalog');
    const config = testConfig({ TRIAL_GENERATIONS: '0' });
    const worker = new JobWorker({
      ctx: { db: database.db, config, providers },
      database,
      store: new LocalResultStore(config.dataDir),
      delivery: { telegram: null, telegramFiles: null, webhook: null },
      logger: silentLogger,
      // Far longer than the test: only a NOTIFY can bring the generation to this worker in time.
      pollIntervalMs: 600_000,
    });
    let app: FastifyInstance | null = null;
    try {
      app = await buildTestApp({ TRIAL_GENERATIONS: '0' }, undefined, { providers });
      const model = await createTestModel(shared.db, { provider: local.name });
      const telegramId = freshTelegramId();
      await userWithCredits(app, telegramId, 10);
      await worker.start();

      const [first] = await waitFor(listenerPids, (pids) => pids.length === 1);
      await terminate([first as number]);
      // A new LISTEN backend, not the old one.
      const again = await waitFor(listenerPids, (pids) => pids.length === 1 && pids[0] !== first);
      expect(again).not.toContain(first);

      const accepted = await submit(app, {
        telegram_id: telegramId,
        model: model.key,
        prompt: 'woken after the LISTEN connection was cut',
      });
      expect(accepted.statusCode, accepted.body).toBe(202);
      const id: string = accepted.json().id;
      const done = await waitFor(
        () => generation(app as FastifyInstance, id),
        (g) => g.status !== 'queued' && g.status !== 'running',
        10_000,
      );
      expect(done.status).toBe('succeeded');
      expect(await entriesFor(shared.db, id)).toEqual([{ kind: 'generation_charge', amount: -10 }]);
    } finally {
      await worker.stop(1000);
      await app?.close();
    }
  });

  it('pooled connections that die, idle or inside a transaction, are dropped and replaced', async (context) => {
    const why = 'needs a pool of PostgreSQL connections';
    if (needsPostgres(why)) context.skip(why);
    const database = handle as DatabaseHandle;
    // A connection held by a transaction between two statements (the driver has no query running
    // on it when the server cuts it), and idle ones in the pool.
    const inTransaction = database.db.transaction(async (tx) => {
      const [own] = await selectRows<{ pid: number }>(tx, sql`SELECT pg_backend_pid() AS pid`);
      await Promise.all([1, 2, 3].map(() => database.db.execute(sql`SELECT pg_sleep(0.05)`)));
      await terminate((await ownBackends()).map((backend) => backend.pid));
      expect(own?.pid).toBeGreaterThan(0);
      await tx.execute(sql`SELECT 1`);
    });
    await expect(inTransaction).rejects.toThrow();
    // The pool carries on with new connections.
    const rows = await selectRows<{ pid: number }>(
      database.db,
      sql`SELECT pg_backend_pid() AS pid`,
    );
    expect(rows).toHaveLength(1);
    await Promise.all([1, 2, 3, 4].map(() => database.db.execute(sql`SELECT 1`)));
  });
});

describe('jobs the database holds for a worker that does not run them', () => {
  it('are handed back at once, without counting the attempt; held ones and other workers’ stay', async () => {
    const shared = await sharedDatabase();
    // A provider of this test's own: no worker claims these jobs.
    const provider = `unheld-${randomUUID()}`;
    const ids: number[] = [];
    for (let i = 0; i < 4; i++) {
      const id = await enqueue(shared.db, { kind: 'generate', provider });
      if (id !== null) ids.push(id);
    }
    const claimFor = (workerId: string, limit: number) =>
      claim(shared.db, { kinds: ['generate'], provider, workerId, leaseSeconds: 60, limit });
    // Worker a claims three (say the answer to two of the claims was lost), worker b one.
    const mine = await claimFor('worker-a', 3);
    const theirs = await claimFor('worker-b', 1);
    expect(mine).toHaveLength(3);
    expect(theirs).toHaveLength(1);
    const [held, ...lost] = mine.map((job) => job.id).sort((x, y) => x - y);

    const released = await releaseUnheld(shared.db, 'worker-a', [held as number]);
    expect(released.sort((x, y) => x - y)).toEqual(lost);
    const rows = await selectRows<{
      id: number;
      status: string;
      locked_by: string | null;
      attempts: number;
    }>(
      shared.db,
      sql`SELECT id::int AS id, status, locked_by, attempts FROM generation_jobs
          WHERE provider = ${provider} ORDER BY id`,
    );
    const byId = new Map(rows.map((row) => [row.id, row]));
    expect(byId.get(held as number)).toMatchObject({ status: 'running', locked_by: 'worker-a' });
    for (const id of lost) {
      expect(byId.get(id)).toMatchObject({ status: 'pending', locked_by: null, attempts: 0 });
    }
    expect(byId.get(theirs[0]?.id as number)).toMatchObject({
      status: 'running',
      locked_by: 'worker-b',
    });
    // Due again at once: the next claim takes them.
    expect((await claimFor('worker-c', 10)).map((job) => job.id).sort((x, y) => x - y)).toEqual(
      lost,
    );
    // With nothing held, every job of the worker goes back.
    expect(await releaseUnheld(shared.db, 'worker-a', [])).toEqual([held]);
  });
});
