// What the benchmarks (http.ts, ledger.ts, pipeline.ts) do alike: settings from the environment,
// child processes, the local PostgreSQL and the report's numbers.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { nodeArgsFor } from '../test/helpers/entry-points.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/** Every benchmark runs against the PostgreSQL on this machine, as its superuser. */
export const adminUrl = 'postgres://postgres@127.0.0.1:5432/postgres';

/** A whole number >= 1 from the environment; unset or empty keeps the default. */
export function envInteger(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${name} must be an integer >= 1`);
  return value;
}

/** Progress goes to stderr so that stdout holds the report alone. */
export const log = (message: string): void => {
  process.stderr.write(`${message}\n`);
};

export const fmt = (value: number, digits = 0): string =>
  value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

// ---------------------------------------------------------------------------------------------
// Processes

export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  /** The end of what it wrote, for error messages. */
  output(): string;
}

/** An entry point of this repository as its own process, as it runs in production (compiled). */
export function startChild(name: string, script: string, env: Record<string, string>): Child {
  const child = spawn(process.execPath, nodeArgsFor(script), {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { name, process: child, output: () => tail };
}

export function hasExited(child: Child): boolean {
  return child.process.exitCode !== null || child.process.signalCode !== null;
}

/** SIGTERM lets a server drain and close its pool; one that hangs past `killAfterMs` is killed. */
export async function stopChild(child: Child, killAfterMs: number): Promise<void> {
  const proc = child.process;
  if (hasExited(child)) return;
  const exited = once(proc, 'exit');
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
  await exited;
  clearTimeout(timer);
}

/** A port nobody listens on now, for a child to listen on. */
export async function freePort(host: string): Promise<number> {
  const server = createServer();
  server.listen(0, host);
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

// ---------------------------------------------------------------------------------------------
// Database

export async function withClient<T>(
  url: string,
  work: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Each run starts from an empty database: what an earlier run left would change the numbers. */
export async function recreateDatabase(database: string): Promise<void> {
  await withClient(adminUrl, async (client) => {
    await client.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${database}`);
  });
}

/**
 * One run of `bench` at a time: a second run would drop the first one's database under it and
 * share its CPU. A session advisory lock, held by a connection that stays open until the end of
 * the run (end the client to let go).
 */
export async function lockRun(url: string, bench: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: 'imagegen-bench-lock' });
  await client.connect();
  const { rows } = await client.query<{ locked: boolean }>(
    'SELECT pg_try_advisory_lock(hashtext($1)) AS locked',
    [`imagegen ${bench}`],
  );
  if (rows[0]?.locked !== true) {
    await client.end();
    throw new Error(`another ${bench} run is in progress on this PostgreSQL; try again after it`);
  }
  return client;
}

// ---------------------------------------------------------------------------------------------
// Goals

/**
 * The goals a benchmark checks. A missed goal is reported — in its table cell and in the summary
 * line — and never makes the run fail: the exit code is for errors.
 */
export class GoalReport {
  private readonly missed: string[] = [];

  /** `met`, or `**MISSED**` (named again in the summary). */
  check(name: string, met: boolean): string {
    if (met) return 'met';
    this.missed.push(name);
    return '**MISSED**';
  }

  summary(): string {
    return this.missed.length === 0
      ? 'Every goal met.'
      : `Goals MISSED (${this.missed.length}): ${this.missed.join('; ')}.`;
  }
}
