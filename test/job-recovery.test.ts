import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { GroupCommit } from '../src/db/group-commit.ts';
import { claim, type Job, recordSteps, type StepRecord } from '../src/db/job-queue.ts';
import { selectRows } from '../src/db/rows.ts';
import { runGenerateJob, startGenerations } from '../src/jobs/generate.ts';
import { runHousekeeping } from '../src/jobs/housekeeping.ts';
import type { JobEnvironment } from '../src/jobs/types.ts';
import { JobWorker } from '../src/jobs/worker.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { settleSuccesses } from '../src/services/generation-outcomes.ts';
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
  waitFor,
} from './helpers/pipeline.ts';

// What happens when something fails mid-job: nothing done at the provider is refunded, nothing is
// submitted twice for a passing database hiccup, and no claim outlives its handler.

let database: DatabaseHandle;
let app: FastifyInstance;
const provider = new ScriptedProvider();
let modelKey: string;
const config = testConfig({
  TRIAL_GENERATIONS: '0',
  TELEGRAM_BOT_TOKEN: '',
  JOB_LEASE_SECONDS: '2',
});

class FullDisk extends LocalResultStore {
  override async save(): Promise<string> {
    throw new Error('ENOSPC: no space left on device');
  }
}

function environment(
  store: LocalResultStore,
  steps?: GroupCommit<StepRecord, boolean>,
): JobEnvironment {
  const ctx = { db: database.db, config, providers: new ProviderRegistry([provider], 'catalog') };
  return {
    ctx,
    store,
    delivery: { telegram: null, webhook: null, telegramFiles: null },
    logger: silentLogger,
    steps: steps ?? new GroupCommit((records) => recordSteps(database.db, records)),
    successes: new GroupCommit((successes) => settleSuccesses(ctx, successes)),
  };
}

const freshStore = () => new LocalResultStore(mkdtempSync(join(tmpdir(), 'job-recovery-')));

async function claimOwn(id: string, workerId: string, leaseSeconds = 60): Promise<Job> {
  for (;;) {
    const [job] = await claim(database.db, {
      kinds: ['generate'],
      provider: provider.name,
      workerId,
      leaseSeconds,
      limit: 1,
    });
    if (!job) throw new Error(`job of ${id} not claimable`);
    if (job.requestId === id) return job;
  }
}

async function run(id: string, env: JobEnvironment, workerId = 'recovery-worker') {
  const job = await claimOwn(id, workerId);
  const work = await startGenerations(database.db, [id]);
  await runGenerateJob(env, job, work.get(id) ?? null, new AbortController().signal);
}

async function accepted(prompt: string): Promise<{ telegramId: number; id: string }> {
  const telegramId = freshTelegramId();
  await userWithCredits(app, telegramId, 10);
  const response = await submit(app, { telegram_id: telegramId, model: modelKey, prompt });
  expect(response.statusCode, response.body).toBe(202);
  return { telegramId, id: response.json().id };
}

/** A paid generation whose image is done at the provider, its job due and past its deadline. */
async function doneAtProviderPastDeadline() {
  const { telegramId, id } = await accepted('never done late');
  const { providerJobId } = await provider.submit({
    generationId: id,
    model: 'm',
    prompt: 'never done late',
    parameters: {},
    referenceUrls: [],
  });
  provider.finish(id);
  await database.db.execute(
    sql`UPDATE generation_jobs SET step = 'poll', provider_job_id = ${providerJobId},
          deadline_at = now() - interval '10 minutes', run_at = now() - interval '10 minutes'
        WHERE request_id = ${id} AND kind = 'generate'`,
  );
  return { telegramId, id };
}

beforeAll(async () => {
  database = await sharedDatabase();
  app = await buildTestApp({ TRIAL_GENERATIONS: '0', TELEGRAM_BOT_TOKEN: '' }, undefined, {
    providers: new ProviderRegistry([provider], 'catalog'),
  });
  modelKey = (await createTestModel(database.db, { provider: provider.name })).key;
});

afterAll(async () => {
  await app.close();
});

describe('recovery from failures mid-job', () => {
  it('never refunds an image the final query found, when storing it fails: it retries', async () => {
    const { telegramId, id } = await doneAtProviderPastDeadline();
    await run(id, environment(new FullDisk(tmpdir())));
    expect((await generation(app, id)).status).toBe('running');
    expect(await balanceOf(app, telegramId)).toBe(0);
    await database.db.execute(
      sql`UPDATE generation_jobs SET run_at = now() WHERE request_id = ${id} AND kind = 'generate'`,
    );
    await run(id, environment(freshStore()));
    expect(await generation(app, id)).toMatchObject({
      status: 'succeeded',
      payment: { refunded: false },
    });
    expect(await entriesFor(database.db, id)).toEqual([{ kind: 'generation_charge', amount: -10 }]);
  });

  it('records the provider job id through a passing database error, submitting once', async () => {
    const { id } = await accepted('never flaky database');
    let failures = 1;
    const flaky = new GroupCommit<StepRecord, boolean>(async (records) => {
      if (failures-- > 0) throw new Error('connection terminated unexpectedly');
      return recordSteps(database.db, records);
    });
    await run(id, environment(freshStore(), flaky));
    expect(provider.submissionsFor(id)).toBe(1);
    const [job] = await selectRows<{ provider_job_id: string | null }>(
      database.db,
      sql`SELECT provider_job_id FROM generation_jobs WHERE request_id = ${id} AND kind = 'generate'`,
    );
    expect(job?.provider_job_id).not.toBeNull();
  });

  it("housekeeping leaves a submitted generation to its provider's final query", async () => {
    const { telegramId, id } = await doneAtProviderPastDeadline();
    await runHousekeeping(environment(freshStore()));
    expect((await generation(app, id)).status).toBe('queued');
    expect(await entriesFor(database.db, id)).toEqual([{ kind: 'generation_charge', amount: -10 }]);
    expect(await balanceOf(app, telegramId)).toBe(0);
    // A worker of its provider then finds the image.
    await run(id, environment(freshStore()));
    expect((await generation(app, id)).status).toBe('succeeded');
  });

  it('takes back a claim whose handler is gone even while its worker keeps heartbeating others', async () => {
    const { id: orphan } = await accepted('never orphaned');
    const workerId = `recovery-${Date.now()}`;
    await claimOwn(orphan, workerId, 2);
    const worker = new JobWorker({
      ctx: { db: database.db, config, providers: new ProviderRegistry([provider], 'catalog') },
      database,
      store: freshStore(),
      delivery: { telegram: null, webhook: null, telegramFiles: null },
      logger: silentLogger,
      workerId,
      pollIntervalMs: 200,
    });
    provider.hangStatus = true;
    await worker.start();
    try {
      // The worker is busy with another job all along, heartbeating it.
      const { id: busy } = await accepted('never keeps the worker busy');
      const orphanJob = async () => {
        const [row] = await selectRows<{ attempts: number; last_error: string | null }>(
          database.db,
          sql`SELECT attempts, last_error FROM generation_jobs
              WHERE request_id = ${orphan} AND kind = 'generate'`,
        );
        return row;
      };
      // The orphan's 2 s lease runs out although the worker heartbeats all along, and it is
      // claimed again (by this worker, which then runs it).
      const row = await waitFor(
        orphanJob,
        (job) => /lease expired/.test(job?.last_error ?? '') && (job?.attempts ?? 0) >= 2,
        15_000,
      );
      expect(row?.last_error).toMatch(/lease expired/);
      // The job the worker does run kept its claim: heartbeats renewed it past its lease.
      const [held] = await selectRows<{ status: string; locked_by: string | null }>(
        database.db,
        sql`SELECT status, locked_by FROM generation_jobs
            WHERE request_id = ${busy} AND kind = 'generate'`,
      );
      expect(held).toMatchObject({ status: 'running', locked_by: workerId });
    } finally {
      worker.halt();
      provider.hangStatus = false;
    }
  }, 20_000);
});
