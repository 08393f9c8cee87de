// Pipeline benchmark on PostgreSQL: generations per second from submit to done with an instant
// provider, beside a ceiling measured in the same run, and the p99 of a submit while 10,000 jobs
// wait in the queue, beside the p99 of a submit into an empty queue.
//
//   npm run bench:pipeline
//
// Our side is the production topology of server mode: `src/server.ts` as its own process serving
// POST /api/v1/generations (charged on the ledger), and a job worker (the JobWorker of
// `src/worker.ts`) in this process, whose provider is instant: it answers every submit and every
// status query at once, in memory, so what is measured is our pipeline, not a provider. The
// ceiling (bench/pipeline-ceiling.ts) is the least any durable submit → done pipeline does: one
// INSERT per submit, a SKIP LOCKED drainer, one UPDATE per job.
//
// Then (issue 12) generations through a provider that returns its image by URL: each copied into
// our storage (a folder, then S3 through a local s3rver) before a signed webhook delivers it; the
// report gives the storage step's share of the time from submit to delivery
// (BENCH_STORAGE_GENERATIONS, 300; BENCH_STORAGE_CONNECTIONS, 8).
//
// Goals (issue "Generations from prompt to delivered image"): >= 1,000 generations/s; submit p99
// <= 20 ms with 10,000 queued. Settings (env): BENCH_SECONDS (10) per measurement,
// BENCH_CONNECTIONS (64) for throughput, BENCH_LATENCY_CONNECTIONS (8) for the submit latency,
// BENCH_ROUNDS (2). Exits non-zero on errors only, never because a goal is missed.
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { loadConfig } from '../src/core/config.ts';
import { createLogger } from '../src/core/logger.ts';
import { openDatabase } from '../src/db/client.ts';
import { WebhookDelivery } from '../src/delivery/webhook.ts';
import { JobWorker } from '../src/jobs/worker.ts';
import { encodePng } from '../src/providers/png.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import type { ImageProvider, ProviderStatus } from '../src/providers/types.ts';
import { createResultStore } from '../src/storage/create.ts';
import { LocalResultStore } from '../src/storage/local.ts';
import { startFakeS3 } from '../test/fakes/s3-server.ts';
import {
  percentile,
  providerLikeImage,
  startCdn,
  startDeliveryReceiver,
  TimedStore,
  UrlResultProvider,
} from './pipeline-storage.ts';
import {
  adminUrl,
  type Child,
  envInteger,
  fmt,
  freePort,
  GoalReport,
  lockRun,
  log,
  recreateDatabase,
  startChild,
  stopChild,
  withClient,
} from './support.ts';

/**
 * Answers at once: the image (a tiny PNG, in memory) is ready on the first status query. Bytes,
 * not a URL: every result is copied into our storage, and a URL would be downloaded (the storage
 * run below measures that).
 */
class InstantProvider implements ImageProvider {
  readonly name = 'wavespeed';
  readonly acceptsWebhooks = false;
  async submit(): Promise<{ providerJobId: string }> {
    return { providerJobId: `instant-${randomUUID()}` };
  }
  async status(): Promise<ProviderStatus> {
    return {
      state: 'succeeded',
      images: [{ data: INSTANT_IMAGE, mimeType: 'image/png', width: 4, height: 4 }],
    };
  }
}

const INSTANT_IMAGE = encodePng(4, 4, new Uint8Array(48).fill(200));

const benchDatabase = 'imagegen_bench_pipeline';
const databaseUrl = `postgres://postgres@127.0.0.1:5432/${benchDatabase}`;
const host = '127.0.0.1';
const token = 'bench-token-0123456789abcdefghij';
const userCount = 1_000;
const firstTelegramId = 8_000_000_001;
const modelKey = 'bench-instant';
const queuedTarget = 10_000;

const seconds = envInteger('BENCH_SECONDS', 10);
const connections = envInteger('BENCH_CONNECTIONS', 64);
const latencyConnections = envInteger('BENCH_LATENCY_CONNECTIONS', 8);
const rounds = envInteger('BENCH_ROUNDS', 2);

// ---------------------------------------------------------------------------------------------
// Processes

async function waitUntilListening(child: Child, url: string, method = 'GET'): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.process.exitCode !== null) {
      throw new Error(`${child.name} exited (${child.process.exitCode}):\n${child.output()}`);
    }
    try {
      const response = await fetch(url, { method });
      await response.arrayBuffer();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  throw new Error(`${child.name} did not listen on ${url} within 60 s:\n${child.output()}`);
}

// ---------------------------------------------------------------------------------------------
// Database

/** Users with plenty of credits and a one-credit model served by `wavespeed`. */
async function seed(): Promise<void> {
  await withClient(databaseUrl, async (client) => {
    await client.query(
      `INSERT INTO users (telegram_id, first_name)
       SELECT ${firstTelegramId} + n, 'Bench' FROM generate_series(0, ${userCount - 1}) AS n`,
    );
    await client.query(
      `INSERT INTO ledger_entries (user_id, amount, kind) SELECT id, 100000000, 'topup' FROM users`,
    );
    await client.query(
      `INSERT INTO model_catalog (key, display_name, parameters, max_references)
       VALUES ('${modelKey}', 'Bench instant', '[]'::jsonb, 0)`,
    );
    await client.query(
      `INSERT INTO model_routes (model_id, priority, provider, provider_model)
       SELECT id, 1, 'wavespeed', 'bench/instant' FROM model_catalog WHERE key = '${modelKey}'`,
    );
    await client.query(
      `INSERT INTO model_prices (model_id, credits) SELECT id, 1 FROM model_catalog WHERE key = '${modelKey}'`,
    );
    await client.query('ANALYZE');
  });
}

/** Generations finished, and the span from the first accepted to the last finished. */
async function finishedSpan(
  since: Date,
): Promise<{ done: number; failed: number; seconds: number }> {
  return withClient(databaseUrl, async (client) => {
    const { rows } = await client.query<{ done: string; failed: string; seconds: number | null }>(
      `SELECT count(*) FILTER (WHERE status = 'succeeded') AS done,
              count(*) FILTER (WHERE status = 'failed') AS failed,
              extract(epoch FROM max(completed_at) - min(created_at))::float8 AS seconds
       FROM generation_requests WHERE created_at >= $1`,
      [since],
    );
    const row = rows[0];
    return { done: Number(row?.done), failed: Number(row?.failed), seconds: row?.seconds ?? 0 };
  });
}

async function countActive(): Promise<number> {
  return withClient(databaseUrl, async (client) => {
    const { rows } = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM generation_requests WHERE status IN ('queued', 'running')`,
    );
    return rows[0]?.n ?? 0;
  });
}

async function ceilingSpan(
  since: Date,
): Promise<{ done: number; seconds: number; pending: number }> {
  return withClient(databaseUrl, async (client) => {
    const { rows } = await client.query<{ done: string; pending: string; seconds: number | null }>(
      `SELECT count(*) FILTER (WHERE status = 'succeeded') AS done,
              count(*) FILTER (WHERE status <> 'succeeded') AS pending,
              extract(epoch FROM max(done_at) - min(created_at))::float8 AS seconds
       FROM ceiling_jobs WHERE created_at >= $1`,
      [since],
    );
    const row = rows[0];
    return { done: Number(row?.done), pending: Number(row?.pending), seconds: row?.seconds ?? 0 };
  });
}

// ---------------------------------------------------------------------------------------------
// Load

let problems = 0;

function submitLoad(
  baseUrl: string,
  connectionCount: number,
  options: { duration?: number; amount?: number },
) {
  let sequence = 0;
  return autocannon({
    url: baseUrl,
    connections: connectionCount,
    ...(options.amount ? { amount: options.amount } : { duration: options.duration ?? seconds }),
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    requests: [
      {
        method: 'POST',
        path: '/api/v1/generations',
        setupRequest: (request) => ({
          ...request,
          body: JSON.stringify({
            telegram_id: firstTelegramId + Math.floor(Math.random() * userCount),
            model: modelKey,
            prompt: `bench ${sequence++}`,
          }),
        }),
      },
    ],
  }).then((result) => {
    const bad = result.errors + result.timeouts + result.non2xx;
    if (bad > 0) {
      problems += bad;
      log(`  ! ${bad} failed submits (${JSON.stringify(result.statusCodeStats)})`);
    }
    return result;
  });
}

async function waitForDrain(read: () => Promise<number>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await read()) > 0) {
    if (Date.now() > deadline) throw new Error('the queue did not drain within 120 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

interface Throughput {
  perSecond: number;
  done: number;
  failed: number;
  submitP99: number;
}

/**
 * Each measurement writes tens of thousands of rows: vacuum and checkpoint between measurements,
 * so none pays for the cleanup of the one before it.
 */
async function quiesce(): Promise<void> {
  await withClient(databaseUrl, async (client) => {
    await client.query('VACUUM ANALYZE');
    await client.query('CHECKPOINT');
  });
}

async function ours(): Promise<Throughput> {
  await quiesce();
  const port = await freePort(host);
  const api = startChild('api', 'src/server.ts', apiEnv(port, false));
  const config = loadConfig({
    ...apiEnv(port, false),
    DATABASE_POOL_SIZE: '10',
    PROVIDER_CONCURRENCY: '256',
  });
  const logger = createLogger({ logLevel: 'warn', logPretty: false });
  const database = await openDatabase(config.database, logger);
  const worker = new JobWorker({
    ctx: {
      db: database.db,
      config,
      providers: new ProviderRegistry([new InstantProvider()], 'catalog'),
    },
    database,
    store: new LocalResultStore(config.dataDir),
    delivery: { telegram: null, webhook: null, telegramFiles: null },
    logger,
  });
  await worker.start();
  try {
    await waitUntilListening(api, `http://${host}:${port}/api/v1/health`);
    const since = new Date();
    const cpuBefore = process.cpuUsage();
    const load = await submitLoad(`http://${host}:${port}`, connections, {});
    const drainStarted = performance.now();
    await waitForDrain(countActive);
    const span = await finishedSpan(since);
    const cpu = process.cpuUsage(cpuBefore);
    log(
      `    submits ${fmt(load.requests.average)}/s (p99 ${load.latency.p99} ms), drained ${fmt((performance.now() - drainStarted) / 1000, 1)} s after; bench process CPU ${fmt((cpu.user + cpu.system) / 1e6, 1)} s`,
    );
    return {
      perSecond: span.done / span.seconds,
      done: span.done,
      failed: span.failed,
      submitP99: load.latency.p99,
    };
  } finally {
    await worker.stop(5_000);
    await database.close();
    await stopChild(api, 15_000);
  }
}

async function ceiling(): Promise<Throughput> {
  await quiesce();
  const port = await freePort(host);
  const child = startChild('ceiling', 'bench/pipeline-ceiling.ts', {
    CEILING_DATABASE_URL: databaseUrl,
    CEILING_PORT: String(port),
  });
  try {
    await waitUntilListening(child, `http://${host}:${port}/`);
    const since = new Date();
    const load = await submitLoad(`http://${host}:${port}`, connections, {});
    await waitForDrain(async () => (await ceilingSpan(since)).pending);
    const span = await ceilingSpan(since);
    return {
      perSecond: span.done / span.seconds,
      done: span.done,
      failed: 0,
      submitP99: load.latency.p99,
    };
  } finally {
    await stopChild(child, 15_000);
  }
}

function apiEnv(port: number, worker: boolean): Record<string, string> {
  return {
    NODE_ENV: 'production',
    DATABASE_URL: databaseUrl,
    DATABASE_POOL_SIZE: '20',
    PORT: String(port),
    HOST: host,
    LOG_LEVEL: 'warn',
    API_TOKENS: token,
    RATE_LIMIT_ENABLED: 'false',
    TRIAL_GENERATIONS: '0',
    MAX_PARALLEL_GENERATIONS_PER_USER: '100',
    GENERATION_PROVIDER: 'catalog',
    // The API only checks that the model's provider has an account; the worker here serves it.
    WAVESPEED_API_KEY: 'bench-not-used',
    PROVIDER_CONCURRENCY: '256',
    WORKER_CONCURRENCY: '256',
    RUN_WORKER_IN_API: String(worker),
    TELEGRAM_BOT_TOKEN: '',
    DELIVERY_WEBHOOK_URL: '',
  };
}

interface StorageRun {
  backend: string;
  delivered: number;
  failed: number;
  imageBytes: number;
  storage: { p50: number; p95: number; mean: number };
  delivery: { p50: number; p95: number; mean: number };
  share: number;
}

const storageGenerations = envInteger('BENCH_STORAGE_GENERATIONS', 300);
const storageConnections = envInteger('BENCH_STORAGE_CONNECTIONS', 8);

/**
 * Generations through a provider that returns its image by URL, copied into our storage (a
 * folder, or S3 through a local s3rver) before a signed webhook delivers each: the storage
 * step's share of the time from submit to delivery, at BENCH_STORAGE_CONNECTIONS submitters.
 */
async function storageRun(backend: 'local' | 's3'): Promise<StorageRun> {
  await quiesce();
  const image = await providerLikeImage();
  const cdn = await startCdn(image);
  const receiver = await startDeliveryReceiver();
  const s3 = backend === 's3' ? await startFakeS3() : null;
  const port = await freePort(host);
  const api = startChild('api', 'src/server.ts', apiEnv(port, false));
  const config = loadConfig({
    ...apiEnv(port, false),
    ...(s3?.env ?? {}),
    DATA_DIR: mkdtempSync(join(os.tmpdir(), 'bench-storage-')),
    DATABASE_POOL_SIZE: '10',
    DELIVERY_WEBHOOK_URL: receiver.url,
    DELIVERY_WEBHOOK_SECRET: 'bench-delivery-secret-0123456789',
  });
  const logger = createLogger({ logLevel: 'warn', logPretty: false });
  const database = await openDatabase(config.database, logger);
  const provider = new UrlResultProvider(cdn.base);
  const store = new TimedStore(await createResultStore(config));
  const worker = new JobWorker({
    ctx: { db: database.db, config, providers: new ProviderRegistry([provider], 'catalog') },
    database,
    store,
    delivery: {
      telegram: null,
      webhook: new WebhookDelivery({
        url: receiver.url,
        secret: 'bench-delivery-secret-0123456789',
      }),
      telegramFiles: null,
    },
    logger,
  });
  await worker.start();
  try {
    await waitUntilListening(api, `http://${host}:${port}/api/v1/health`);
    const since = new Date();
    // autocannon refuses more connections than requests (BENCH_STORAGE_GENERATIONS may be small).
    await submitLoad(`http://${host}:${port}`, Math.min(storageConnections, storageGenerations), {
      amount: storageGenerations,
    });
    await waitForDrain(countActive);
    const rows = await withClient(
      databaseUrl,
      async (client) =>
        (
          await client.query<{ id: string; created: number; status: string }>(
            `SELECT id, extract(epoch FROM created_at)::float8 * 1000 AS created, status
           FROM generation_requests WHERE created_at >= $1`,
            [since],
          )
        ).rows,
    );
    const done = rows.filter((row) => row.status === 'succeeded');
    const deadline = Date.now() + 60_000;
    while (done.some((row) => !receiver.deliveredAt.has(row.id)) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const jobOf = new Map([...provider.generationOf].map(([job, generation]) => [generation, job]));
    const storage: number[] = [];
    const delivery: number[] = [];
    for (const row of done) {
      const started = cdn.downloadStarted.get(jobOf.get(row.id) ?? '');
      const saved = store.savedAt.get(row.id);
      const delivered = receiver.deliveredAt.get(row.id);
      if (started === undefined || saved === undefined || delivered === undefined) continue;
      storage.push(saved - started);
      delivery.push(delivered - row.created);
    }
    const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);
    const summary = (values: number[]) => ({
      p50: percentile(values, 0.5),
      p95: percentile(values, 0.95),
      mean: sum(values) / Math.max(values.length, 1),
    });
    return {
      backend: backend === 's3' ? 'S3 (s3rver)' : 'folder under DATA_DIR',
      delivered: delivery.length,
      failed: rows.length - done.length,
      imageBytes: image.length,
      storage: summary(storage),
      delivery: summary(delivery),
      share: sum(storage) / Math.max(sum(delivery), 1),
    };
  } finally {
    await worker.stop(5_000);
    await database.close();
    await stopChild(api, 15_000);
    await cdn.close();
    await receiver.close();
    await s3?.close();
  }
}

const goals = new GoalReport();

/** Submit latency with no worker running: into an empty queue, then with 10,000 waiting. */
async function latency(): Promise<{
  empty: autocannon.Result;
  full: autocannon.Result;
  queued: number;
}> {
  const port = await freePort(host);
  const api = startChild('api (no worker)', 'src/server.ts', apiEnv(port, false));
  const baseUrl = `http://${host}:${port}`;
  try {
    await waitUntilListening(api, `${baseUrl}/api/v1/health`);
    const empty = await submitLoad(baseUrl, latencyConnections, {});
    const waiting = await countActive();
    // autocannon refuses more connections than requests: a few missing get as many connections.
    const missing = queuedTarget - waiting;
    if (missing > 0) await submitLoad(baseUrl, Math.min(32, missing), { amount: missing });
    const queued = await countActive();
    const full = await submitLoad(baseUrl, latencyConnections, {});
    return { empty, full, queued };
  } finally {
    await stopChild(api, 15_000);
  }
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const lock = await lockRun(adminUrl, 'bench:pipeline');
  try {
    await recreateDatabase(benchDatabase);
    // The API migrates the fresh database at its first start; seed after that.
    const port = await freePort(host);
    const first = startChild('migrate', 'src/server.ts', apiEnv(port, false));
    await waitUntilListening(first, `http://${host}:${port}/api/v1/health`);
    await stopChild(first, 15_000);
    await seed();
    log(`seeded ${userCount} users; ${rounds} rounds of ${seconds} s, ${connections} connections`);

    const ourRuns: Throughput[] = [];
    const ceilingRuns: Throughput[] = [];
    for (let round = 1; round <= rounds; round++) {
      const a = await ours();
      log(
        `  round ${round} ours:    ${fmt(a.perSecond)} generations/s (${a.done} done, ${a.failed} failed)`,
      );
      ourRuns.push(a);
      const c = await ceiling();
      log(`  round ${round} ceiling: ${fmt(c.perSecond)} jobs/s (${c.done} done)`);
      ceilingRuns.push(c);
    }
    const best = (runs: Throughput[]) => Math.max(...runs.map((run) => run.perSecond));
    const failed = ourRuns.reduce((sum, run) => sum + run.failed, 0);
    if (failed > 0) problems += failed;

    const storageRuns: StorageRun[] = [];
    for (const backend of ['local', 's3'] as const) {
      const run = await storageRun(backend);
      log(
        `  storage (${run.backend}): ${run.delivered} delivered, ${run.failed} failed; storage step p50 ${fmt(run.storage.p50, 1)} ms of ${fmt(run.delivery.p50, 1)} ms to delivery (share ${fmt(run.share * 100, 1)} %)`,
      );
      if (run.failed > 0 || run.delivered < storageGenerations) {
        problems += Math.max(run.failed, storageGenerations - run.delivered);
      }
      storageRuns.push(run);
    }

    await quiesce();
    const { empty, full, queued } = await latency();
    const version = await withClient(
      databaseUrl,
      async (client) =>
        (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]
          ?.server_version ?? '?',
    );
    const lines = [
      `## bench:pipeline — ${new Date().toISOString()}`,
      '',
      `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, Node ${process.version}, PostgreSQL ${version}`,
      `Throughput: autocannon, ${connections} connections, ${seconds} s of submits per round, then until drained; ${rounds} rounds alternating (best round of each shown)`,
      '',
      '| submit → done | ours (generations/s) | ceiling (jobs/s) | ratio | goal |',
      '|---|---:|---:|---:|---|',
      `| instant provider | ${fmt(best(ourRuns))} | ${fmt(best(ceilingRuns))} | ${fmt(best(ourRuns) / best(ceilingRuns), 2)} | ≥ 1,000/s: ${goals.check('throughput', best(ourRuns) >= 1_000)} |`,
      '',
      `Rounds: ours ${ourRuns.map((r) => fmt(r.perSecond)).join(', ')}; ceiling ${ceilingRuns.map((r) => fmt(r.perSecond)).join(', ')}`,
      '',
      `| submit latency (${latencyConnections} connections, no worker) | req/s | p50 ms | p99 ms | goal |`,
      '|---|---:|---:|---:|---|',
      `| empty queue | ${fmt(empty.requests.average)} | ${fmt(empty.latency.p50, 1)} | ${fmt(empty.latency.p99, 1)} | |`,
      `| ${fmt(queued)} queued | ${fmt(full.requests.average)} | ${fmt(full.latency.p50, 1)} | ${fmt(full.latency.p99, 1)} | p99 ≤ 20 ms: ${goals.check('submit p99 with the queue full', full.latency.p99 <= 20)} |`,
      '',
      `p99 ratio (queued / empty): ${fmt(full.latency.p99 / Math.max(empty.latency.p99, 0.001), 2)}`,
      '',
      `Results by URL (a ${fmt((storageRuns[0]?.imageBytes ?? 0) / 1024)} KB JPEG from a local HTTP server), copied into storage, then delivered by a signed webhook; ${storageGenerations} generations, ${storageConnections} submitting connections. Storage step: the download, the magic-byte check and the write; time to delivery: submit accepted → webhook received.`,
      '',
      '| storage | delivered | storage step p50 / p95 ms | time to delivery p50 / p95 ms | storage share of time to delivery |',
      '|---|---:|---:|---:|---:|',
      ...storageRuns.map(
        (run) =>
          `| ${run.backend} | ${run.delivered} | ${fmt(run.storage.p50, 1)} / ${fmt(run.storage.p95, 1)} | ${fmt(run.delivery.p50, 1)} / ${fmt(run.delivery.p95, 1)} | ${fmt(run.share * 100, 1)} % |`,
      ),
      '',
      goals.summary(),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await lock.end();
  }
  if (problems > 0) {
    log(`${problems} problems (failed submits or failed generations): see above`);
    process.exit(1);
  }
}

await main();
