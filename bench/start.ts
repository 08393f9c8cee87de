// Start time and memory of the API, each beside a ceiling measured in the same run
// (bench/start-ceiling.ts: node + bare Fastify + the same database, answering /api/v1/health).
//
//   npm run bench:start
//
// For each database (embedded PGlite; PostgreSQL when it is reachable on 127.0.0.1:5432):
//  - time from spawn to the first 200 of /api/v1/health: fresh (empty data folder / database)
//    and warm (the same data again), ours (`node dist/server.js`) and the ceiling, alternating;
//  - the peak RSS of the whole process tree while starting (the sum of the tree's VmHWM from
//    /proc/<pid>/status when health first answers);
//  - a warm `npm start`, to show what the npm wrapper and its shell add;
//  - a light load (reads every 100 ms, a new user and a generation every 2 s, which the in-process
//    worker runs and renders on the embedded database) for BENCH_LOAD_SECONDS: the highest RSS of
//    the tree during it (sampled every 100 ms) and the RSS at its end (steady); the ceiling gets
//    health checks at the same pace.
// Goals (issue 13): warm start ≤ 2 s, fresh ≤ 5 s; embedded ≤ 250 MB peak and under load; the API
// on PostgreSQL ≤ 120 MB. A missed goal is reported, never an error: the exit code is non-zero only
// when something fails (a process that does not start, a request that is refused).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import {
  adminUrl,
  envInteger,
  fmt,
  freePort,
  GoalReport,
  log,
  recreateDatabase,
  withClient,
} from './support.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const rounds = envInteger('BENCH_ROUNDS', 3);
const loadSeconds = envInteger('BENCH_LOAD_SECONDS', 60);
const apiToken = 'bench-start-token-0123456789abcdef';
const pgDatabase = 'imagegen_bench_start';

const goals = {
  warmMs: 2_000,
  freshMs: 5_000,
  embeddedMb: 250,
  postgresMb: 120,
};

// ---------------------------------------------------------------------------------------------
// Process trees and their memory

/** The process and every descendant, from /proc/<pid>/task/<tid>/children. */
function processTree(pid: number): number[] {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    const current = pids[i] as number;
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${current}/task`);
    } catch {
      continue;
    }
    for (const task of tasks) {
      try {
        const children = readFileSync(`/proc/${current}/task/${task}/children`, 'utf8');
        for (const child of children.split(' ').filter(Boolean)) pids.push(Number(child));
      } catch {
        // The task ended between the two reads.
      }
    }
  }
  return pids;
}

interface TreeMemory {
  /** Sum of VmRSS over the tree, MB. */
  readonly rssMb: number;
  /** Sum of VmHWM (each process's own peak) over the tree, MB: its peak, or slightly above. */
  readonly hwmMb: number;
  /** CPU time (user + system) the tree's live processes have used, ms. */
  readonly cpuMs: number;
  readonly processes: number;
}

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ: 100 on Linux). */
const ticksPerSecond = 100;

function treeMemory(pid: number): TreeMemory {
  let rssKb = 0;
  let hwmKb = 0;
  let ticks = 0;
  let processes = 0;
  for (const member of processTree(pid)) {
    try {
      const status = readFileSync(`/proc/${member}/status`, 'utf8');
      // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
      const stat = readFileSync(`/proc/${member}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      rssKb += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      hwmKb += Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
      ticks += Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
      processes += 1;
    } catch {
      // Gone.
    }
  }
  return {
    rssMb: rssKb / 1024,
    hwmMb: hwmKb / 1024,
    cpuMs: (ticks * 1000) / ticksPerSecond,
    processes,
  };
}

// ---------------------------------------------------------------------------------------------
// Starting and stopping

interface Started {
  readonly child: ChildProcess;
  readonly baseUrl: string;
  readonly startMs: number;
  /** CPU time the tree spent until health answered: what the start costs on an idle machine. */
  readonly cpuMs: number;
  readonly peakMb: number;
  readonly processes: number;
  output(): string;
}

function cleanEnv(extra: Record<string, string>): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? tmpdir(),
    ...extra,
  };
}

async function startAndWaitForHealth(
  name: string,
  command: string,
  args: readonly string[],
  env: Record<string, string>,
  port: number,
): Promise<Started> {
  const started = performance.now();
  const child = spawn(command, args, {
    cwd: repoRoot,
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = started + 120_000;
  while (performance.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `${name} exited (${child.exitCode ?? child.signalCode}) before answering:\n${tail}`,
      );
    }
    try {
      const response = await fetch(`${baseUrl}/api/v1/health`, {
        signal: AbortSignal.timeout(1000),
      });
      await response.arrayBuffer();
      if (response.status === 200) {
        const startMs = performance.now() - started;
        const memory = treeMemory(child.pid as number);
        return {
          child,
          baseUrl,
          startMs,
          cpuMs: memory.cpuMs,
          peakMb: memory.hwmMb,
          processes: memory.processes,
          output: () => tail,
        };
      }
    } catch {
      // Not listening yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  child.kill('SIGKILL');
  throw new Error(`${name} did not answer /api/v1/health within 120 s:\n${tail}`);
}

/**
 * SIGTERM to every process of the tree, as Ctrl+C does, then SIGKILL to what is left after 30 s;
 * returns once every one has exited, so that the next start finds the data folder's lock
 * released (a server killed but not yet gone still holds it).
 */
async function stop(started: Started): Promise<void> {
  const { child } = started;
  const members = processTree(child.pid as number);
  const signal = (name: NodeJS.Signals): void => {
    for (const pid of members) {
      try {
        process.kill(pid, name);
      } catch {
        // Already gone.
      }
    }
  };
  signal('SIGTERM');
  const deadline = performance.now() + 30_000;
  let killed = false;
  while (members.some(isRunning)) {
    if (!killed && performance.now() > deadline) {
      signal('SIGKILL');
      killed = true;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
}

/** Running, and not a zombie waiting for its parent (which no longer holds anything). */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// What is started

type Target =
  | { readonly kind: 'embedded'; readonly dataDir: string }
  | { readonly kind: 'postgres'; readonly url: string };

function oursEnv(target: Target, port: number): Record<string, string> {
  return {
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'warn',
    API_TOKENS: apiToken,
    RATE_LIMIT_MAX: '1000000',
    // The offline provider on both databases (the default on PostgreSQL is each model's own).
    GENERATION_PROVIDER: 'local',
    ...(target.kind === 'embedded' ? { DATA_DIR: target.dataDir } : { DATABASE_URL: target.url }),
  };
}

async function startOurs(target: Target, viaNpm = false): Promise<Started> {
  const port = await freePort('127.0.0.1');
  const env = oursEnv(target, port);
  return viaNpm
    ? startAndWaitForHealth('npm start', 'npm', ['start', '--silent'], env, port)
    : startAndWaitForHealth('node dist/server.js', process.execPath, ['dist/server.js'], env, port);
}

let ceilingScript = '';

/** bench/start-ceiling.ts as JavaScript, so that neither side pays for a TypeScript loader. */
async function compileCeiling(): Promise<void> {
  // As deep in the repository as src/db/ and dist/db/, so that the code it bundles finds
  // dist/pglite-template where the app's does (pglite-options.ts resolves it from itself).
  ceilingScript = join(repoRoot, 'node_modules', '.cache', 'imagegen-bench-start-ceiling.mjs');
  await build({
    entryPoints: [join(repoRoot, 'bench', 'start-ceiling.ts')],
    outfile: ceilingScript,
    bundle: true,
    packages: 'external',
    format: 'esm',
    platform: 'node',
    target: 'node20',
    logLevel: 'warning',
  });
}

async function startCeiling(target: Target): Promise<Started> {
  const port = await freePort('127.0.0.1');
  return startAndWaitForHealth(
    'ceiling',
    process.execPath,
    [ceilingScript],
    {
      CEILING_PORT: String(port),
      ...(target.kind === 'embedded'
        ? { CEILING_DATA_DIR: target.dataDir }
        : { CEILING_DATABASE_URL: target.url }),
    },
    port,
  );
}

// ---------------------------------------------------------------------------------------------
// Light load

interface LoadResult {
  readonly peakMb: number;
  readonly steadyMb: number;
  readonly requests: number;
  readonly generations: number;
}

async function request(baseUrl: string, path: string, init: RequestInit = {}): Promise<Response> {
  const response = await fetch(`${baseUrl}${path}`, {
    ...init,
    headers: {
      authorization: `Bearer ${apiToken}`,
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(init.headers as Record<string, string> | undefined),
    },
    signal: AbortSignal.timeout(30_000),
  });
  await response.arrayBuffer();
  if (response.status >= 400)
    throw new Error(`${init.method ?? 'GET'} ${path}: ${response.status}`);
  return response;
}

/**
 * `full`: our API's routes (reads, and a user + a generation every 2 s); otherwise health checks
 * only (the ceiling has no other route). Sequential, one request at a time: light load.
 */
async function lightLoad(started: Started, full: boolean, runId: string): Promise<LoadResult> {
  const pid = started.child.pid as number;
  let peakMb = treeMemory(pid).rssMb;
  const sampler = setInterval(() => {
    peakMb = Math.max(peakMb, treeMemory(pid).rssMb);
  }, 100);
  let requests = 0;
  let generations = 0;
  const end = performance.now() + loadSeconds * 1000;
  let nextGeneration = performance.now();
  let lastUser = 0;
  try {
    while (performance.now() < end) {
      const tickStart = performance.now();
      if (!full) {
        await request(started.baseUrl, '/api/v1/health');
      } else if (tickStart >= nextGeneration) {
        nextGeneration += 2_000;
        lastUser = 7_000_000_000 + generations;
        await request(started.baseUrl, '/api/v1/users/sync', {
          method: 'POST',
          body: JSON.stringify({ telegram_id: lastUser, first_name: 'Bench' }),
        });
        await request(started.baseUrl, '/api/v1/generations', {
          method: 'POST',
          headers: { 'idempotency-key': `bench-start-${runId}-${generations}` },
          body: JSON.stringify({
            telegram_id: lastUser,
            model: 'nano-banana',
            prompt: 'a lighthouse at dusk',
            parameters: { aspect_ratio: '16:9' },
          }),
        });
        generations += 1;
        requests += 2;
      } else {
        const paths = ['/api/v1/models', `/api/v1/users/${lastUser}/generations`, '/api/v1/health'];
        await request(started.baseUrl, paths[requests % paths.length] as string);
      }
      requests += 1;
      const wait = 100 - (performance.now() - tickStart);
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
  } finally {
    clearInterval(sampler);
  }
  const steadyMb = treeMemory(pid).rssMb;
  return { peakMb: Math.max(peakMb, steadyMb), steadyMb, requests, generations };
}

// ---------------------------------------------------------------------------------------------
// Runs

interface StartRow {
  readonly label: string;
  readonly oursMs: number[];
  readonly oursCpuMs: number[];
  readonly oursMb: number[];
  readonly ceilingMs: number[];
  readonly ceilingMb: number[];
  readonly processes: number;
  readonly goalMs: number | null;
  readonly goalMb: number | null;
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? Number.NaN;
};

const goalReport = new GoalReport();

function check(label: string, value: number, goal: number | null, unit: string): string {
  if (goal === null) return '';
  const verdict = goalReport.check(
    `${label}: ${fmt(value)} ${unit} > ${fmt(goal)} ${unit}`,
    value <= goal,
  );
  return `≤ ${fmt(goal)}: ${verdict}`;
}

function startTable(rows: readonly StartRow[]): string {
  const lines = [
    '| start | processes | ours: time to health (ms, median) | its CPU time (ms) | ceiling (ms) | ratio | goal | ours: peak RSS (MB, median) | ceiling (MB) | ratio | goal |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |',
  ];
  for (const row of rows) {
    const ms = median(row.oursMs);
    const mb = median(row.oursMb);
    const ceilingMs = median(row.ceilingMs);
    const ceilingMb = median(row.ceilingMb);
    lines.push(
      `| ${row.label} | ${row.processes} | ${fmt(ms)} | ${fmt(median(row.oursCpuMs))} | ${row.ceilingMs.length ? fmt(ceilingMs) : '–'} | ${row.ceilingMs.length ? fmt(ms / ceilingMs, 2) : '–'} | ${check(`${row.label}, time to health`, ms, row.goalMs, 'ms')} | ${fmt(mb)} | ${row.ceilingMb.length ? fmt(ceilingMb) : '–'} | ${row.ceilingMb.length ? fmt(mb / ceilingMb, 2) : '–'} | ${check(`${row.label}, peak RSS`, mb, row.goalMb, 'MB')} |`,
    );
  }
  return lines.join('\n');
}

interface LoadRow {
  readonly label: string;
  readonly ours: LoadResult;
  readonly ceiling: LoadResult;
  readonly goalMb: number;
}

function loadTable(rows: readonly LoadRow[]): string {
  const lines = [
    `| under light load (${loadSeconds} s) | requests / generations | ours: peak RSS (MB) | goal | ours: steady RSS (MB) | goal | ceiling: peak / steady (MB) | ratio (steady) |`,
    '| --- | ---: | ---: | --- | ---: | --- | ---: | ---: |',
  ];
  for (const row of rows) {
    lines.push(
      `| ${row.label} | ${fmt(row.ours.requests)} / ${fmt(row.ours.generations)} | ${fmt(row.ours.peakMb)} | ${check(`${row.label}, peak RSS under load`, row.ours.peakMb, row.goalMb, 'MB')} | ${fmt(row.ours.steadyMb)} | ${check(`${row.label}, steady RSS`, row.ours.steadyMb, row.goalMb, 'MB')} | ${fmt(row.ceiling.peakMb)} / ${fmt(row.ceiling.steadyMb)} | ${fmt(row.ours.steadyMb / row.ceiling.steadyMb, 2)} |`,
    );
  }
  return lines.join('\n');
}

async function benchEmbedded(startRows: StartRow[], loadRows: LoadRow[]): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'imagegen-bench-start-'));
  try {
    const fresh: StartRow = {
      label: 'embedded, fresh data folder (`node dist/server.js`)',
      oursMs: [],
      oursCpuMs: [],
      oursMb: [],
      ceilingMs: [],
      ceilingMb: [],
      processes: 1,
      goalMs: goals.freshMs,
      goalMb: goals.embeddedMb,
    };
    const warm: StartRow = {
      ...fresh,
      label: 'embedded, warm (`node dist/server.js`)',
      oursMs: [],
      oursCpuMs: [],
      oursMb: [],
      ceilingMs: [],
      ceilingMb: [],
      goalMs: goals.warmMs,
    };
    let npmProcesses = 0;
    const npm: StartRow = {
      ...warm,
      label: 'embedded, warm (`npm start`: npm + node)',
      oursMs: [],
      oursCpuMs: [],
      oursMb: [],
      ceilingMs: [],
      ceilingMb: [],
    };
    let dataDir = '';
    for (let round = 1; round <= rounds; round++) {
      log(`embedded: round ${round}/${rounds}`);
      dataDir = join(scratch, `ours-${round}`);
      const ceilingDir = join(scratch, `ceiling-${round}`);
      const target: Target = { kind: 'embedded', dataDir };
      for (const [row, ours] of [
        [fresh, () => startOurs(target)],
        [warm, () => startOurs(target)],
      ] as const) {
        const a = await ours();
        await stop(a);
        row.oursMs.push(a.startMs);
        row.oursCpuMs.push(a.cpuMs);
        row.oursMb.push(a.peakMb);
        // The fresh ceiling gets an empty folder of its own; the warm one opens ours.
        const b = await startCeiling(
          row === fresh ? { kind: 'embedded', dataDir: ceilingDir } : target,
        );
        await stop(b);
        row.ceilingMs.push(b.startMs);
        row.ceilingMb.push(b.peakMb);
      }
      const viaNpm = await startOurs(target, true);
      await stop(viaNpm);
      npm.oursMs.push(viaNpm.startMs);
      npm.oursCpuMs.push(viaNpm.cpuMs);
      npm.oursMb.push(viaNpm.peakMb);
      npmProcesses = viaNpm.processes;
    }
    startRows.push(fresh, warm, { ...npm, processes: npmProcesses });

    log(`embedded: ${loadSeconds} s of light load, ours then the ceiling`);
    const target: Target = { kind: 'embedded', dataDir };
    const ours = await startOurs(target);
    const oursLoad = await lightLoad(ours, true, `embedded-${Date.now()}`).finally(() =>
      stop(ours),
    );
    const ceiling = await startCeiling(target);
    const ceilingLoad = await lightLoad(ceiling, false, '').finally(() => stop(ceiling));
    loadRows.push({
      label: 'embedded (API + worker + PGlite, one process)',
      ours: oursLoad,
      ceiling: ceilingLoad,
      goalMb: goals.embeddedMb,
    });
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function postgresReachable(): Promise<boolean> {
  try {
    await withClient(adminUrl, async (client) => client.query('SELECT 1'));
    return true;
  } catch {
    return false;
  }
}

async function benchPostgres(startRows: StartRow[], loadRows: LoadRow[]): Promise<void> {
  const url = adminUrl.replace(/\/postgres$/, `/${pgDatabase}`);
  const target: Target = { kind: 'postgres', url };
  const fresh: StartRow = {
    label: 'PostgreSQL API, empty database (migrates)',
    oursMs: [],
    oursCpuMs: [],
    oursMb: [],
    ceilingMs: [],
    ceilingMb: [],
    processes: 1,
    goalMs: goals.freshMs,
    goalMb: goals.postgresMb,
  };
  const warm: StartRow = {
    ...fresh,
    label: 'PostgreSQL API, warm',
    oursMs: [],
    oursCpuMs: [],
    oursMb: [],
    ceilingMs: [],
    ceilingMb: [],
    goalMs: goals.warmMs,
  };
  for (let round = 1; round <= rounds; round++) {
    log(`PostgreSQL: round ${round}/${rounds}`);
    await recreateDatabase(pgDatabase);
    for (const row of [fresh, warm]) {
      const a = await startOurs(target);
      await stop(a);
      row.oursMs.push(a.startMs);
      row.oursCpuMs.push(a.cpuMs);
      row.oursMb.push(a.peakMb);
      const b = await startCeiling(target);
      await stop(b);
      row.ceilingMs.push(b.startMs);
      row.ceilingMb.push(b.peakMb);
    }
  }
  startRows.push(fresh, warm);
  log(`PostgreSQL: ${loadSeconds} s of light load, ours then the ceiling`);
  const ours = await startOurs(target);
  const oursLoad = await lightLoad(ours, true, `postgres-${Date.now()}`).finally(() => stop(ours));
  const ceiling = await startCeiling(target);
  const ceilingLoad = await lightLoad(ceiling, false, '').finally(() => stop(ceiling));
  loadRows.push({
    label: 'PostgreSQL API (no worker in it)',
    ours: oursLoad,
    ceiling: ceilingLoad,
    goalMb: goals.postgresMb,
  });
}

async function main(): Promise<void> {
  await compileCeiling();
  const startRows: StartRow[] = [];
  const loadRows: LoadRow[] = [];
  await benchEmbedded(startRows, loadRows);
  const withPostgres = await postgresReachable();
  if (withPostgres) await benchPostgres(startRows, loadRows);
  else log('PostgreSQL is not reachable on 127.0.0.1:5432: its rows are left out');

  console.log(`## Start (${rounds} rounds; peak RSS = sum of VmHWM over the process tree)\n`);
  console.log(startTable(startRows));
  console.log(`\n## Memory under light load\n`);
  console.log(loadTable(loadRows));
  console.log(`\n${goalReport.summary()}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
