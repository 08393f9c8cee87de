import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { pgError } from '../src/db/errors.ts';
import {
  backoffSeconds,
  claim,
  complete,
  enqueue,
  heartbeatAll,
  listenForJobs,
  recordStep,
  recoverExpired,
  runLater,
} from '../src/db/job-queue.ts';
import { selectRows } from '../src/db/rows.ts';
import { needsPostgres, sharedDatabase } from './helpers/database.ts';

let database: DatabaseHandle;
beforeAll(async () => {
  database = await sharedDatabase();
});

/**
 * Each test's jobs are generate jobs of a provider named after the test's tag: workers claim
 * generate jobs only for providers they have, so no other test's worker takes them.
 */
const providerOf = (tag: string) => `queue-${tag}`;

async function enqueueTagged(tag: string, count: number): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 0; i < count; i++) {
    const id = await enqueue(database.db, {
      kind: 'generate',
      provider: providerOf(tag),
      payload: { tag, i },
    });
    if (id !== null) ids.push(id);
  }
  return ids;
}

function claimTagged(tag: string, workerId: string, leaseSeconds = 30, limit = 50) {
  return claim(database.db, {
    kinds: ['generate'],
    provider: providerOf(tag),
    workerId,
    leaseSeconds,
    limit,
  });
}

describe('queue', () => {
  it('claims a due job once, under a lease, counting the attempt', async () => {
    const tag = randomUUID();
    const [id] = await enqueueTagged(tag, 1);
    const [job] = await claimTagged(tag, 'worker-a');
    expect(job).toMatchObject({
      id,
      kind: 'generate',
      provider: providerOf(tag),
      attempts: 1,
      step: 'submit',
      lockedBy: 'worker-a',
    });
    expect(await claimTagged(tag, 'worker-b')).toEqual([]);
    expect(await complete(database.db, job!)).toBe(true);
    const [row] = await selectRows<{ status: string }>(
      database.db,
      sql`SELECT status FROM generation_jobs WHERE id = ${id}`,
    );
    expect(row?.status).toBe('succeeded');
  });

  it('only the claimant may heartbeat, record steps or finish', async () => {
    const tag = randomUUID();
    await enqueueTagged(tag, 1);
    const [job] = await claimTagged(tag, 'worker-a', 5);
    const impostor = { ...job!, lockedBy: 'worker-b' };
    expect(await heartbeatAll(database.db, 'worker-b', [job!.id], 30)).toEqual(new Set());
    // The claimant's heartbeat extends the lease it was given (5 s) by the one asked for.
    expect(await heartbeatAll(database.db, 'worker-a', [job!.id], 60)).toEqual(new Set([job!.id]));
    const [lease] = await selectRows<{ left: number }>(
      database.db,
      sql`SELECT extract(epoch FROM locked_until - now())::int AS left FROM generation_jobs WHERE id = ${job!.id}`,
    );
    expect(lease?.left).toBeGreaterThan(30);
    expect(await recordStep(database.db, impostor, { step: 'poll' })).toBe(false);
    expect(await complete(database.db, impostor)).toBe(false);
    expect(
      await recordStep(database.db, job!, {
        step: 'poll',
        provider: providerOf(tag),
        providerJobId: `p-${tag}`,
      }),
    ).toBe(true);
    expect(await complete(database.db, job!)).toBe(true);
  });

  it('runLater makes a job wait; a lease that runs out hands the job to the next worker, step kept', async () => {
    const tag = randomUUID();
    await enqueueTagged(tag, 1);
    const [first] = await claimTagged(tag, 'worker-a');
    await runLater(database.db, first!, { delaySeconds: 3600, countsAsAttempt: false });
    expect(await claimTagged(tag, 'worker-b')).toEqual([]);
    await database.db.execute(
      sql`UPDATE generation_jobs SET run_at = now() WHERE id = ${first!.id}`,
    );
    const [second] = await claimTagged(tag, 'worker-b');
    expect(second?.attempts).toBe(1);
    await recordStep(database.db, second!, {
      step: 'poll',
      provider: providerOf(tag),
      providerJobId: `p-${tag}`,
    });
    // worker-b dies: its lease runs out.
    await database.db.execute(
      sql`UPDATE generation_jobs SET locked_until = now() - interval '1 second' WHERE id = ${second!.id}`,
    );
    expect(await recoverExpired(database.db)).toContain(second!.id);
    const [third] = await claimTagged(tag, 'worker-c');
    expect(third).toMatchObject({
      step: 'poll',
      providerJobId: `p-${tag}`,
      attempts: 2,
      lockedBy: 'worker-c',
    });
    // The dead worker, come back, can no longer finish it.
    expect(await complete(database.db, second!)).toBe(false);
    expect(await complete(database.db, third!)).toBe(true);
  });

  it('one job per request and kind', async () => {
    const [user] = await selectRows<{ id: number }>(
      database.db,
      sql`INSERT INTO users (telegram_id) VALUES (${Math.floor(Math.random() * 2 ** 40) + 1}) RETURNING id`,
    );
    const [model] = await selectRows<{ id: number }>(
      database.db,
      sql`SELECT id FROM model_catalog LIMIT 1`,
    );
    const [request] = await selectRows<{ id: string }>(
      database.db,
      sql`INSERT INTO generation_requests (user_id, model_id, prompt, payment_method, price_credits)
          VALUES (${user?.id}, ${model?.id}, 'x', 'trial', 0) RETURNING id`,
    );
    expect(await enqueue(database.db, { kind: 'generate', requestId: request!.id })).not.toBeNull();
    expect(await enqueue(database.db, { kind: 'generate', requestId: request!.id })).toBeNull();
    expect(await enqueue(database.db, { kind: 'deliver', requestId: request!.id })).not.toBeNull();
  });

  it('refuses a kind no worker runs', async () => {
    const refused = await database.db
      .execute(
        sql`INSERT INTO generation_jobs (kind, provider) VALUES ('reap', ${providerOf(randomUUID())})`,
      )
      .then(
        () => null,
        (error: unknown) => pgError(error),
      );
    // 23514: check_violation (of generation_jobs_kind_valid, the only check on that row).
    expect(refused).toMatchObject({ code: '23514' });
  });

  it('wakes listeners when a job is enqueued', async () => {
    let woken = 0;
    const stop = await listenForJobs(database, () => {
      woken++;
    });
    try {
      await enqueueTagged(randomUUID(), 1);
      for (let i = 0; i < 100 && woken === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(woken).toBeGreaterThan(0);
    } finally {
      await stop();
    }
  });

  it('backoff grows and is capped', () => {
    expect(backoffSeconds(1)).toBeLessThan(backoffSeconds(6));
    expect(backoffSeconds(30, 300)).toBeLessThanOrEqual(375);
  });

  it('concurrent workers claim each job exactly once', async (context) => {
    if (needsPostgres('needs several connections claiming at the same time')) return context.skip();
    const tag = randomUUID();
    const ids = await enqueueTagged(tag, 200);
    const claimed: number[] = [];
    await Promise.all(
      Array.from({ length: 6 }, async (_, w) => {
        for (;;) {
          const jobs = await claimTagged(tag, `w${w}`, 30, 7);
          if (jobs.length === 0) return;
          for (const job of jobs) {
            claimed.push(job.id);
            await complete(database.db, job);
          }
        }
      }),
    );
    expect(claimed.sort((a, b) => a - b)).toEqual(ids.sort((a, b) => a - b));
  });
});
