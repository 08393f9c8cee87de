// HTTP benchmark: req/s and p99 of our endpoints, each beside its ceiling measured in the same run,
// a bare Fastify route sending the same SQL through the raw pg driver (bench/ceiling-server.ts).
// The goal is ours >= 0.8x ceiling for each endpoint; see docs/benchmarks.md.
//
//   npm run bench:http
//
// Settings (env): BENCH_DATABASE_URL (an existing database to use as is; by default the database
// imagegen_bench is dropped and created again), BENCH_CONNECTIONS (50), BENCH_SECONDS (10),
// BENCH_WARMUP_SECONDS (2), BENCH_ROUNDS (3: how many times each ours/ceiling pair is measured,
// alternating, so that a burst of outside load hits both alike).
// Exits non-zero on errors only (failed setup, connection errors, timeouts, non-2xx answers),
// never because an endpoint misses the goal.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import autocannon from 'autocannon';
import type pg from 'pg';
import { loadConfig } from '../src/core/config.ts';
import { createLogger } from '../src/core/logger.ts';
import { openDatabase } from '../src/db/client.ts';
import { listActiveModels } from '../src/services/catalog.ts';
import type { ServiceContext } from '../src/services/context.ts';
import { currentSettings } from '../src/services/settings.ts';
import { getBalance, getTrialStatus, syncUser, syncUserParameters } from '../src/services/users.ts';
import type { CeilingQueries } from './ceiling-server.ts';
import {
  adminUrl,
  type Child,
  envInteger,
  fmt,
  freePort,
  GoalReport,
  hasExited,
  lockRun,
  log,
  recreateDatabase,
  startChild,
  stopChild,
  withClient,
} from './support.ts';

const benchDatabase = 'imagegen_bench';
const host = '127.0.0.1';
const poolSize = 10;
const token = 'bench-token-0123456789abcdefghij';
const userCount = 1_000;
const firstTelegramId = 7_000_000_001;
const ledgerEntriesPerUser = 3;

const connections = envInteger('BENCH_CONNECTIONS', 50);
const seconds = envInteger('BENCH_SECONDS', 10);
const warmupSeconds = envInteger('BENCH_WARMUP_SECONDS', 2);
const rounds = envInteger('BENCH_ROUNDS', 3);

const telegramIds = Array.from({ length: userCount }, (_, i) => firstTelegramId + i);

interface SyncBody {
  telegram_id: number;
  username: string;
  first_name: string;
}

function syncBody(telegramId: number): SyncBody {
  return { telegram_id: telegramId, username: `bench_${telegramId}`, first_name: 'Bench' };
}

function randomTelegramId(): number {
  return telegramIds[Math.floor(Math.random() * telegramIds.length)] ?? firstTelegramId;
}

// ---------------------------------------------------------------------------------------------
// Processes

const children: Child[] = [];

function startTrackedChild(name: string, script: string, env: Record<string, string>): Child {
  const handle = startChild(name, script, env);
  children.push(handle);
  return handle;
}

async function stopChildren(): Promise<void> {
  await Promise.all(children.map((child) => stopChild(child, 10_000)));
}

async function waitFor200(child: Child, url: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (hasExited(child)) {
      const { exitCode, signalCode } = child.process;
      throw new Error(`${child.name} exited (${exitCode ?? signalCode}):\n${child.output()}`);
    }
    try {
      const response = await fetch(url);
      await response.arrayBuffer();
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${child.name} did not answer 200 on ${url} within 60 s:\n${child.output()}`);
}

// ---------------------------------------------------------------------------------------------
// Database

async function prepareDatabase(): Promise<string> {
  const override = process.env.BENCH_DATABASE_URL;
  if (override) return override;
  await recreateDatabase(benchDatabase);
  return `postgres://postgres@${host}:5432/${benchDatabase}`;
}

async function seed(baseUrl: string, databaseUrl: string): Promise<void> {
  const queue = [...telegramIds];
  const worker = async (): Promise<void> => {
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
      const response = await fetch(`${baseUrl}/api/v1/users/sync`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(syncBody(id)),
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`seeding ${id}: ${response.status} ${text}`);
    }
  };
  await Promise.all(Array.from({ length: 20 }, worker));
  await withClient(databaseUrl, async (client) => {
    for (let i = 0; i < ledgerEntriesPerUser; i++) {
      // The ledger trigger computes balance_after; the ledger is append-only.
      await client.query(
        `INSERT INTO ledger_entries (user_id, amount, kind) SELECT id, 100, 'topup' FROM users`,
      );
    }
    await client.query('ANALYZE');
  });
}

/**
 * The SQL our services send, byte for byte: calls each service once through the app's own database
 * handle and records what reaches pg's Pool.query. Also checks that the parameters are the ones
 * the ceiling builds from the request, so both servers run the same statement with the same
 * values.
 */
async function captureServiceSql(databaseUrl: string): Promise<CeilingQueries> {
  const config = loadConfig({ DATABASE_URL: databaseUrl, DATABASE_POOL_SIZE: '1' });
  const database = await openDatabase(
    config.database,
    createLogger({ ...config, logLevel: 'warn' }),
  );
  const pool = database.pool;
  if (!pool) throw new Error('expected a PostgreSQL pool');
  const captured: { text: string; values: unknown[] }[] = [];
  type Query = (query: string | pg.QueryConfig, values?: unknown[]) => Promise<pg.QueryResult>;
  const send = pool.query.bind(pool) as Query;
  const recording: Query = (query, values) => {
    const text = typeof query === 'string' ? query : query.text;
    const sent = values ?? (typeof query === 'string' ? undefined : query.values);
    captured.push({ text, values: sent ?? [] });
    return send(query, values);
  };
  pool.query = recording as typeof pool.query;

  const ctx: ServiceContext = { db: database.db, config };
  const sqlOf = async (
    name: string,
    run: () => Promise<unknown>,
    expected: unknown[],
  ): Promise<string> => {
    captured.length = 0;
    await run();
    const [query, ...more] = captured;
    if (!query || more.length > 0) {
      throw new Error(`${name}: expected one statement, the service sent ${captured.length}`);
    }
    if (JSON.stringify(query.values) !== JSON.stringify(expected)) {
      throw new Error(
        `${name}: the service sent parameters ${JSON.stringify(query.values)}, the ceiling would send ${JSON.stringify(expected)}; update bench/ceiling-server.ts`,
      );
    }
    return query.text;
  };

  const id = firstTelegramId;
  const body = syncBody(id);
  try {
    // The runtime settings are read once and then kept (services/settings.ts): read them before
    // capturing, as a server under load has them already.
    await currentSettings(ctx);
    return {
      balance: await sqlOf('balance', () => getBalance(ctx, id), [id]),
      trial: await sqlOf('trial', () => getTrialStatus(ctx, id), [id]),
      models: await sqlOf('models', () => listActiveModels(ctx), []),
      sync: await sqlOf('sync', () => syncUser(ctx, body), syncUserParameters(body)),
    };
  } finally {
    await database.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Load

interface Endpoint {
  readonly label: string;
  readonly request: (telegramId: number) => autocannon.Request;
}

const endpoints: readonly Endpoint[] = [
  {
    label: 'GET /api/v1/users/:telegram_id/balance',
    request: (id) => ({ method: 'GET', path: `/api/v1/users/${id}/balance` }),
  },
  {
    label: 'GET /api/v1/users/:telegram_id/trial',
    request: (id) => ({ method: 'GET', path: `/api/v1/users/${id}/trial` }),
  },
  {
    label: 'GET /api/v1/models',
    request: () => ({ method: 'GET', path: '/api/v1/models' }),
  },
  {
    label: 'POST /api/v1/users/sync',
    request: (id) => ({
      method: 'POST',
      path: '/api/v1/users/sync',
      body: JSON.stringify(syncBody(id)),
    }),
  },
];

/** One measured run of one endpoint on one server. */
interface Run {
  requests: number;
  seconds: number;
  p99: number;
  /** CPU the server process used during the run; null where /proc is not available. */
  cpuSeconds: number | null;
}

interface Target {
  readonly name: 'ours' | 'ceiling';
  readonly baseUrl: string;
  readonly child: Child;
}

/**
 * CPU time (user + system) a process has used, from /proc (Linux); null elsewhere. Less sensitive
 * to outside load than req/s: it is what the requests cost the server, whatever else runs.
 */
function processCpuSeconds(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks / 100 : null; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

interface Problems {
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodes: Map<string, number>;
}

/** Everything that went wrong, by endpoint and server; any entry makes the exit code 1. */
const problems = new Map<string, Problems>();

function recordProblems(key: string, result: autocannon.Result): void {
  const entry = problems.get(key) ?? { errors: 0, timeouts: 0, non2xx: 0, statusCodes: new Map() };
  entry.errors += result.errors;
  entry.timeouts += result.timeouts;
  entry.non2xx += result.non2xx;
  for (const [code, stats] of Object.entries(result.statusCodeStats ?? {})) {
    if (code.startsWith('2')) continue;
    entry.statusCodes.set(code, (entry.statusCodes.get(code) ?? 0) + (stats.count ?? 0));
  }
  if (entry.errors + entry.timeouts + entry.non2xx > 0) problems.set(key, entry);
}

async function load(target: Target, endpoint: Endpoint, duration: number) {
  const result = await autocannon({
    url: target.baseUrl,
    connections,
    duration,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    // A fresh uniformly random seeded user for every request, the same for ours and the ceiling.
    requests: [
      { setupRequest: (request) => ({ ...request, ...endpoint.request(randomTelegramId()) }) },
    ],
  });
  recordProblems(`${endpoint.label} (${target.name})`, result);
  return result;
}

async function measure(target: Target, endpoint: Endpoint): Promise<Run> {
  const pid = target.child.process.pid;
  const cpuBefore = processCpuSeconds(pid);
  const result = await load(target, endpoint, seconds);
  const cpuAfter = processCpuSeconds(pid);
  return {
    requests: result.requests.total,
    seconds: result.duration,
    p99: result.latency.p99,
    cpuSeconds: cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore,
  };
}

async function smokeTest(baseUrl: string, endpoint: Endpoint): Promise<void> {
  const request = endpoint.request(firstTelegramId);
  const init: RequestInit = {
    method: request.method ?? 'GET',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
  };
  if (typeof request.body === 'string') init.body = request.body;
  const response = await fetch(`${baseUrl}${request.path ?? '/'}`, init);
  const text = await response.text();
  if (!response.ok) throw new Error(`${endpoint.label} on ${baseUrl}: ${response.status} ${text}`);
}

// ---------------------------------------------------------------------------------------------
// Report

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

interface Summary {
  /** All requests of all rounds over all their seconds. */
  reqPerSecond: number;
  /** The median of the rounds' p99. */
  p99: number;
  /** Server CPU per request in microseconds, or null. */
  cpuMicros: number | null;
}

function summarize(runs: readonly Run[]): Summary {
  const requests = sum(runs.map((run) => run.requests));
  const cpu = runs.map((run) => run.cpuSeconds);
  return {
    reqPerSecond: requests / sum(runs.map((run) => run.seconds)),
    p99: median(runs.map((run) => run.p99)),
    cpuMicros: cpu.every((value) => value !== null) ? (sum(cpu) / requests) * 1e6 : null,
  };
}

async function postgresVersion(databaseUrl: string): Promise<string> {
  return withClient(databaseUrl, async (client) => {
    const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
    return rows[0]?.server_version ?? 'unknown';
  });
}

interface EndpointRuns {
  readonly endpoint: Endpoint;
  readonly ours: Run[];
  readonly ceiling: Run[];
}

async function report(databaseUrl: string, measured: readonly EndpointRuns[]): Promise<string> {
  const cpus = os.cpus();
  const lines = [
    `Date: ${new Date().toISOString()}`,
    `Machine: ${cpus.length} CPU (${cpus[0]?.model.trim() ?? 'unknown'}), ${fmt(os.totalmem() / 2 ** 30, 1)} GiB RAM, ${os.type()} ${os.release()} ${os.arch()}`,
    `Node ${process.version}, PostgreSQL ${await postgresVersion(databaseUrl)} on ${host}, pool of ${poolSize} in each server`,
    `Load: autocannon, ${connections} connections, ${warmupSeconds} s warm-up, then ${rounds} x ${seconds} s per server (alternating), users picked at random among ${userCount}`,
    '',
    '| endpoint | ours req/s | ours p99 ms | ceiling req/s | ceiling p99 ms | ratio | goal ≥ 0.8 |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  const goals = new GoalReport();
  for (const { endpoint, ours, ceiling } of measured) {
    const o = summarize(ours);
    const c = summarize(ceiling);
    const ratio = o.reqPerSecond / c.reqPerSecond;
    lines.push(
      `| ${endpoint.label} | ${fmt(o.reqPerSecond)} | ${fmt(o.p99)} | ${fmt(c.reqPerSecond)} | ${fmt(c.p99)} | ${fmt(ratio, 2)} | ${goals.check(`${endpoint.label} ratio ${fmt(ratio, 2)} < 0.8`, ratio >= 0.8)} |`,
    );
  }
  lines.push('', goals.summary());
  lines.push(
    '',
    'req/s: all rounds together; p99: median of the rounds; ratio: ours req/s / ceiling req/s.',
    '',
    '| endpoint | ratio per round | ours server CPU µs/req | ceiling server CPU µs/req | ours extra µs/req |',
    '| --- | --- | ---: | ---: | ---: |',
  );
  for (const { endpoint, ours, ceiling } of measured) {
    const ratios = ours.map((run, i) => {
      const other = ceiling[i];
      return other ? run.requests / run.seconds / (other.requests / other.seconds) : Number.NaN;
    });
    const o = summarize(ours).cpuMicros;
    const c = summarize(ceiling).cpuMicros;
    const cpu = (value: number | null): string => (value === null ? 'n/a' : fmt(value));
    lines.push(
      `| ${endpoint.label} | ${ratios.map((ratio) => fmt(ratio, 2)).join(', ')} | ${cpu(o)} | ${cpu(c)} | ${o === null || c === null ? 'n/a' : fmt(o - c)} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

function problemReport(): string {
  const lines = ['', 'Errors:'];
  for (const [key, p] of problems) {
    const codes = [...p.statusCodes].map(([code, count]) => `${code} x${count}`).join(', ');
    lines.push(
      `- ${key}: ${p.errors} connection errors, ${p.timeouts} timeouts, ${p.non2xx} non-2xx${codes ? ` (${codes})` : ''}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const lock = await lockRun(process.env.BENCH_DATABASE_URL || adminUrl, 'bench:http');
  try {
    return await run();
  } finally {
    await stopChildren();
    await lock.end();
  }
}

async function run(): Promise<number> {
  const databaseUrl = await prepareDatabase();
  const [apiPort, ceilingPort] = [await freePort(host), await freePort(host)];
  const ours = `http://${host}:${apiPort}`;
  const ceiling = `http://${host}:${ceilingPort}`;

  log(`starting the API on ${ours} (it migrates ${databaseUrl})`);
  const api = startTrackedChild('API', 'src/server.ts', {
    DATABASE_URL: databaseUrl,
    PORT: String(apiPort),
    HOST: host,
    API_TOKENS: token,
    LOG_LEVEL: 'warn',
    LOG_PRETTY: 'false',
    RUN_MIGRATIONS: 'true',
    // Rate limit on, in memory (no Redis even if a .env names one), at the largest max the config
    // accepts (per key, per 60 s window), so that it costs what it costs but never trips.
    RATE_LIMIT_ENABLED: 'true',
    RATE_LIMIT_MAX: '1000000',
    REDIS_URL: '',
    DATABASE_POOL_SIZE: String(poolSize),
  });
  await waitFor200(api, `${ours}/api/v1/health`);

  log(`seeding ${userCount} users through POST /api/v1/users/sync`);
  await seed(ours, databaseUrl);
  const queries = await captureServiceSql(databaseUrl);

  log(`starting the ceiling on ${ceiling}`);
  const bare = startTrackedChild('ceiling', 'bench/ceiling-server.ts', {
    CEILING_DATABASE_URL: databaseUrl,
    CEILING_PORT: String(ceilingPort),
    CEILING_HOST: host,
    CEILING_POOL_SIZE: String(poolSize),
    CEILING_QUERIES: JSON.stringify(queries),
  });
  await waitFor200(bare, `${ceiling}/api/v1/models`);

  for (const endpoint of endpoints) {
    await smokeTest(ours, endpoint);
    await smokeTest(ceiling, endpoint);
  }

  const targets: readonly Target[] = [
    { name: 'ours', baseUrl: ours, child: api },
    { name: 'ceiling', baseUrl: ceiling, child: bare },
  ];
  const measured: EndpointRuns[] = [];
  for (const endpoint of endpoints) {
    const runs: EndpointRuns = { endpoint, ours: [], ceiling: [] };
    for (const target of targets) {
      log(`${endpoint.label} — ${target.name}: ${warmupSeconds} s warm-up`);
      await load(target, endpoint, warmupSeconds);
    }
    for (let round = 1; round <= rounds; round++) {
      for (const target of targets) {
        log(`${endpoint.label} — ${target.name}: round ${round}/${rounds}, ${seconds} s`);
        runs[target.name].push(await measure(target, endpoint));
      }
    }
    measured.push(runs);
  }

  for (const child of [api, bare]) {
    if (hasExited(child)) throw new Error(`${child.name} died during the run:\n${child.output()}`);
  }
  process.stdout.write(await report(databaseUrl, measured));
  if (problems.size === 0) return 0;
  process.stdout.write(problemReport());
  return 1;
}

let exitCode = 1;
const interrupted = (signal: NodeJS.Signals): void => {
  log(`${signal}: stopping the servers`);
  void stopChildren().finally(() => process.exit(130));
};
process.once('SIGINT', interrupted);
process.once('SIGTERM', interrupted);
try {
  exitCode = await main();
} catch (error) {
  log(`benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : error}`);
}
process.exit(exitCode);
