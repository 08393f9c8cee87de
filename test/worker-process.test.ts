import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { selectRows } from '../src/db/rows.ts';
import { TelegramDelivery } from '../src/delivery/telegram.ts';
import { JobWorker } from '../src/jobs/worker.ts';
import { loadTexts } from '../src/locales/index.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { WavespeedProvider } from '../src/providers/wavespeed.ts';
import { LocalResultStore } from '../src/storage/local.ts';
import { type FakeTelegram, startFakeTelegram } from './fakes/telegram-api.ts';
import { type FakeWavespeed, startFakeWavespeed } from './fakes/wavespeed-server.ts';
import { buildTestApp, TELEGRAM_BOT_TOKEN, testConfig } from './helpers/app.ts';
import {
  freshTelegramId,
  needsPostgres,
  sharedDatabase,
  silentLogger,
  testDatabaseUrl,
} from './helpers/database.ts';
import { nodeArgsFor } from './helpers/entry-points.ts';
import {
  createTestModel,
  entriesFor,
  generation,
  submit,
  userWithCredits,
  waitFor,
} from './helpers/pipeline.ts';

/**
 * A real worker process (src/worker.ts, the way operators run it) is SIGKILLed while it holds a
 * generation whose provider job it has already submitted; a worker in this process takes the job
 * over once the lease runs out and finishes it from the recorded provider job id.
 *
 * The child builds its providers from the configuration, so its Wavespeed adapter is named plainly
 * `wavespeed`: this is the one test whose model and takeover worker use that name, and no other
 * test may run a worker with a provider named `wavespeed` (it would claim this job).
 */

interface WorkerProcess {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the worker id once the process logs `worker started`. */
  started: Promise<string>;
  exited: Promise<number | null>;
}

function startWorkerProcess(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, nodeArgsFor('src/worker.ts'), {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const started = new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      for (const line of output.split('\n')) {
        if (!line.includes('"worker started"')) continue;
        try {
          const entry = JSON.parse(line) as { worker?: string };
          if (entry.worker) resolve(entry.worker);
        } catch {
          // a line still being written
        }
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code, signal) =>
      reject(new Error(`worker exited (${code ?? signal}) before starting:\n${output}`)),
    );
  });
  started.catch(() => undefined);
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, output: () => output, started, exited };
}

async function jobOf(id: string) {
  const database = await sharedDatabase();
  const [job] = await selectRows<{
    status: string;
    step: string;
    provider: string | null;
    provider_job_id: string | null;
    locked_by: string | null;
    attempts: number;
  }>(
    database.db,
    sql`SELECT status, step, provider, provider_job_id, locked_by, attempts FROM generation_jobs
        WHERE request_id = ${id} AND kind = 'generate'`,
  );
  return job;
}

async function deliverJobOf(id: string) {
  const database = await sharedDatabase();
  const [job] = await selectRows<{ status: string; locked_by: string | null }>(
    database.db,
    sql`SELECT status, locked_by FROM generation_jobs WHERE request_id = ${id} AND kind = 'deliver'`,
  );
  return job;
}

describe('a worker process killed mid-job', () => {
  it('is taken over: one provider submission, one charge, the result delivered', async (context) => {
    if (needsPostgres('the worker runs as its own process only on PostgreSQL'))
      return context.skip();
    const database = await sharedDatabase();
    const dataDir = mkdtempSync(join(tmpdir(), 'imagegen-worker-'));
    // Every call waits 4 s: the child is then sure to be inside its first status query (job
    // claimed, provider job id recorded) when it is killed, not between two polls.
    const fake: FakeWavespeed = await startFakeWavespeed({
      delayMs: 4_000,
      completeAfterPolls: 1_000_000,
      webhookDeliveries: 0,
    });
    const telegram: FakeTelegram = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
    const registry = () =>
      new ProviderRegistry(
        [new WavespeedProvider({ apiKey: fake.apiKey, baseUrl: fake.baseUrl, name: 'wavespeed' })],
        'catalog',
      );
    let app: FastifyInstance | null = null;
    let worker: WorkerProcess | null = null;
    let takeover: JobWorker | null = null;
    try {
      const model = await createTestModel(database.db, { provider: 'wavespeed' });
      app = await buildTestApp({ TRIAL_GENERATIONS: '0' }, undefined, { providers: registry() });
      worker = startWorkerProcess({
        DATABASE_URL: testDatabaseUrl as string,
        DATA_DIR: dataDir,
        WAVESPEED_API_KEY: fake.apiKey,
        WAVESPEED_API_BASE: fake.baseUrl,
        GENERATION_PROVIDER: 'catalog',
        JOB_LEASE_SECONDS: '2',
        PROVIDER_POLL_SECONDS: '1',
        PROVIDER_CONCURRENCY: 'wavespeed=4',
        RUN_MIGRATIONS: 'false',
      });
      const childId = await worker.started;
      expect(childId).toContain(`:${worker.child.pid}:`);

      const telegramId = freshTelegramId();
      await userWithCredits(app, telegramId, 10);
      const prompt = `survive a kill ${telegramId}`;
      const accepted = await submit(app, { telegram_id: telegramId, model: model.key, prompt });
      expect(accepted.statusCode, accepted.body).toBe(202);
      const id: string = accepted.json().id;

      const held = await waitFor(
        () => jobOf(id),
        (job) => job?.provider_job_id != null && job.status === 'running',
        20_000,
      );
      expect(held).toMatchObject({ provider: 'wavespeed', locked_by: childId, attempts: 1 });
      expect(fake.submissions.filter((s) => s.body.prompt === prompt)).toHaveLength(1);
      const providerJobId = held?.provider_job_id as string;

      worker.child.kill('SIGKILL');
      await worker.exited;
      expect(worker.child.signalCode).toBe('SIGKILL');
      // Dead without a word: the job is still the child's until its lease runs out.
      expect(await jobOf(id)).toMatchObject({ status: 'running', locked_by: childId });

      // The image is made while nobody is looking.
      fake.setBehaviour({ delayMs: 0 });
      await fake.finish(providerJobId);

      const config = testConfig({ TRIAL_GENERATIONS: '0', JOB_LEASE_SECONDS: '2' });
      takeover = new JobWorker({
        ctx: { db: database.db, config, providers: registry() },
        database,
        store: new LocalResultStore(dataDir),
        delivery: {
          telegram: new TelegramDelivery({
            botToken: TELEGRAM_BOT_TOKEN,
            apiRoot: telegram.apiRoot,
          }),
          webhook: null,
          telegramFiles: null,
        },
        logger: silentLogger,
      });
      await takeover.start();

      const done = await waitFor(
        () => generation(app as FastifyInstance, id),
        (g) => g.status === 'succeeded' || g.status === 'failed',
        20_000,
      );
      const outputUrl = `${fake.baseUrl}/outputs/${providerJobId}.png`;
      expect(done).toMatchObject({
        status: 'succeeded',
        error: null,
        payment: { method: 'credits', credits: 10, refunded: false },
        // Served from our copy, never from the provider's expiring link.
        results: [
          { position: 0, url: `/api/v1/generations/${id}/images/0`, mime_type: 'image/png' },
        ],
      });
      // One submission in all: the takeover polled the recorded job instead of submitting again.
      expect(fake.submissions.filter((s) => s.body.prompt === prompt)).toHaveLength(1);
      expect(fake.submissions).toHaveLength(1);
      expect(await entriesFor(database.db, id)).toEqual([
        { kind: 'generation_charge', amount: -10 },
      ]);
      const [result] = await selectRows<{ url: string | null; storage_path: string | null }>(
        database.db,
        sql`SELECT url, storage_path FROM generation_results WHERE request_id = ${id}`,
      );
      // The provider's link is kept for the record; the image is our stored copy.
      expect(result?.url).toBe(outputUrl);
      expect(result?.storage_path).toEqual(expect.any(String));
      // Claimed twice: by the child, then once more after its lease ran out.
      expect(await jobOf(id)).toMatchObject({ status: 'succeeded', step: 'done', attempts: 2 });

      // Delivered (the child has no bot token, so only a worker with Telegram could).
      const delivered = await waitFor(
        () => deliverJobOf(id),
        (job) => job?.status === 'succeeded' || job?.status === 'failed',
        20_000,
      );
      expect(delivered?.status).toBe('succeeded');
      if (delivered?.locked_by === takeover.workerId) {
        const photos = telegram.calls.filter((call) => call.chatId === telegramId);
        // The user's own chat, in DEFAULT_LANGUAGE (the user chose none).
        const language = config.defaultLanguage;
        const texts = loadTexts(language);
        const caption = texts.t(language, 'delivery-result-caption', {
          model: model.key,
          cost: texts.t(language, 'delivery-cost-credits', { credits: 10 }),
        });
        // Our stored copy is uploaded (the provider's link may have expired by now).
        expect(photos).toMatchObject([{ method: 'sendPhoto', fields: { caption } }]);
        const [photo] = photos;
        expect(photo?.fields.photo).toBe(`attach://${photo?.files[0]?.field}`);
        expect(photo?.files).toEqual([expect.objectContaining({ size: expect.any(Number) })]);
        expect(photo?.files[0]?.size).toBeGreaterThan(0);
      } else {
        // Deliver jobs are not tied to a provider: a worker of a test file running alongside
        // (with its own fake Telegram) may take it first. The delivery still happened once.
        console.info(
          `delivery of ${id} was made by another test's worker (${delivered?.locked_by})`,
        );
      }
      expect(worker.output()).not.toMatch(/"level":(50|60)/);
    } finally {
      if (worker && worker.child.exitCode === null && worker.child.signalCode === null) {
        worker.child.kill('SIGKILL');
        await worker.exited;
      }
      await takeover?.stop(1_000);
      await app?.close();
      await telegram.close();
      await fake.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
