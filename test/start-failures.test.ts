import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeArgsFor } from './helpers/entry-points.ts';
import { startServer, startWorkerProcess } from './helpers/process.ts';

/**
 * A process that cannot start says why in one line naming the setting to change, exits non-zero,
 * and leaves nothing behind (the embedded data folder's lock included). No stack traces.
 */

const dataDir = mkdtempSync(join(tmpdir(), 'imagegen-start-'));
let busy: Server;
let busyPort: number;
/** A port nothing listens on: taken, then given back. */
let closedPort: number;

async function listenOnFreePort(): Promise<Server> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

beforeAll(async () => {
  busy = await listenOnFreePort();
  busyPort = (busy.address() as { port: number }).port;
  const spare = await listenOnFreePort();
  closedPort = (spare.address() as { port: number }).port;
  await new Promise((resolve) => spare.close(resolve));
});
afterAll(() => {
  busy.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** The lines a process printed, as pino wrote them (one JSON object a line). */
function fatalLines(output: string): string[] {
  return output
    .split('\n')
    .filter((line) => line.includes('"level":60'))
    .map((line) => JSON.parse(line).msg as string);
}

function expectNoStack(output: string): void {
  expect(output).not.toMatch(/\n\s+at /);
  expect(output).not.toContain('"stack"');
}

describe('the API process cannot start', () => {
  it('on a port in use: one line naming PORT, exit 69, the data folder unlocked', async () => {
    const server = startServer({ DATA_DIR: dataDir, PORT: String(busyPort) });
    expect(await server.exited).toBe(69);
    expect(fatalLines(server.output())).toEqual([
      `cannot listen on 127.0.0.1:${busyPort}: the port is already in use by another process (PORT)`,
    ]);
    expectNoStack(server.output());
    expect(existsSync(join(dataDir, 'backend.lock'))).toBe(false);
    // The worker never started: it would have logged so.
    expect(server.output()).not.toContain('worker started');
  }, 60_000);

  it('on a HOST that does not resolve: one line naming HOST, exit 78', async () => {
    const server = startServer({ DATA_DIR: dataDir, HOST: 'no-such-host.invalid' });
    expect(await server.exited).toBe(78);
    expect(fatalLines(server.output())).toEqual([
      'cannot listen on no-such-host.invalid: the host name does not resolve (HOST, e.g. 0.0.0.0 or 127.0.0.1)',
    ]);
    expectNoStack(server.output());
    expect(existsSync(join(dataDir, 'backend.lock'))).toBe(false);
  }, 60_000);

  it('on an unreachable database: names where and DATABASE_URL, never the password', async () => {
    const server = startServer({
      DATABASE_URL: `postgres://app:s3cret-pass@127.0.0.1:${closedPort}/imagegen`,
    });
    expect(await server.exited).toBe(69);
    expect(fatalLines(server.output())).toEqual([
      `cannot reach the database at 127.0.0.1:${closedPort}: connection refused (DATABASE_URL)`,
    ]);
    expect(server.output()).not.toContain('s3cret-pass');
    expectNoStack(server.output());
  }, 60_000);

  it('on an unreachable Redis: names where and REDIS_URL', async () => {
    const server = startServer({
      DATABASE_URL: 'memory://',
      REDIS_URL: `redis://:hidden-pass@127.0.0.1:${closedPort}`,
    });
    expect(await server.exited).toBe(69);
    expect(fatalLines(server.output())).toEqual([
      `cannot reach Redis at 127.0.0.1:${closedPort}: connection refused (REDIS_URL)`,
    ]);
    expect(server.output()).not.toContain('hidden-pass');
    expectNoStack(server.output());
  }, 60_000);
});

describe('the worker process cannot start', () => {
  it('on an unreachable database: one line naming DATABASE_URL, exit 69', async () => {
    const worker = startWorkerProcess({
      DATABASE_URL: `postgres://app@127.0.0.1:${closedPort}/imagegen`,
    });
    expect(await worker.exited).toBe(69);
    expect(fatalLines(worker.output())).toEqual([
      `cannot reach the database at 127.0.0.1:${closedPort}: connection refused (DATABASE_URL)`,
    ]);
    expectNoStack(worker.output());
  }, 60_000);
});

function migrate(env: Record<string, string>) {
  const child = spawn(process.execPath, nodeArgsFor('src/db/migrate-cli.ts'), {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return once(child, 'exit').then(([code]) => ({ code: code as number | null, output }));
}

describe('npm run db:migrate', () => {
  it('with a bad setting: the setting and what it expects, exit 78, no stack', async () => {
    const { code, output } = await migrate({ DATABASE_URL: 'mysql://nope' });
    expect(code).toBe(78);
    expect(output).toContain('DATABASE_URL');
    expect(output).toContain('See .env.example');
    expectNoStack(output);
    expect(output).not.toContain('ConfigError');
  }, 60_000);

  it('with an unreachable database: one line naming DATABASE_URL, exit 69', async () => {
    const { code, output } = await migrate({
      DATABASE_URL: `postgres://app@127.0.0.1:${closedPort}/imagegen`,
    });
    expect(code).toBe(69);
    expect(fatalLines(output)).toEqual([
      `cannot reach the database at 127.0.0.1:${closedPort}: connection refused (DATABASE_URL)`,
    ]);
    expectNoStack(output);
  }, 60_000);
});
