import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  createPrivateDatabase,
  dropPrivateDatabase,
  onPostgres,
  testRedisUrl,
} from './helpers/database.ts';
import { waitFor } from './helpers/pipeline.ts';
import { stopProcess } from './helpers/process.ts';

// No Docker engine runs here, so the image is never built in the tests. What can go wrong between
// these files and the code is checked without it: every file the Dockerfile copies exists and is
// in the build context, every package the code loads is installed in the image (production
// dependencies only), and the compose file's own commands, with its own environment, run as
// processes against PostgreSQL and Redis: migrate, the API until its healthcheck passes, the worker,
// and a generation from request to image.

const root = new URL('..', import.meta.url).pathname;
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');

interface Instruction {
  keyword: string;
  args: string;
}

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
function instructions(): Instruction[] {
  const joined = dockerfile
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [keyword = '', ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    });
}

/** The source of a script the image runs: dist/ is src/ compiled file by file (scripts/build.mjs). */
function sourceOf(script: string): string {
  const compiled = /^dist\/(.+)\.js$/.exec(script);
  return compiled ? `src/${compiled[1]}.ts` : script;
}

/** The exec form (a JSON array) at the end of an instruction's arguments. */
function execForm(args: string): string[] {
  const start = args.indexOf('[');
  return JSON.parse(args.slice(start)) as string[];
}

/** `.dockerignore`'s patterns, enough of its syntax for this file: names and `*` globs. */
function ignoredByDocker(path: string): boolean {
  const patterns = readFileSync(join(root, '.dockerignore'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  const first = path.split('/')[0] ?? path;
  return patterns.some((pattern) => {
    const glob = new RegExp(
      `^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`,
    );
    return glob.test(path) || glob.test(first);
  });
}

describe('the Dockerfile', () => {
  it('copies only files that exist and are in the build context', () => {
    const copies = instructions().filter(
      (i) => (i.keyword === 'COPY' || i.keyword === 'ADD') && !i.args.includes('--from='),
    );
    expect(copies.length).toBeGreaterThan(0);
    for (const copy of copies) {
      const parts = copy.args.split(/\s+/).filter((part) => !part.startsWith('--'));
      for (const source of parts.slice(0, -1)) {
        expect(existsSync(join(root, source)), `COPY ${source}: no such file`).toBe(true);
        expect(ignoredByDocker(source), `COPY ${source}: excluded by .dockerignore`).toBe(false);
      }
    }
  });

  it("runs scripts that exist, and its default command is the API's", () => {
    const commands = instructions()
      .filter((i) => i.keyword === 'RUN' || i.keyword === 'CMD')
      .map((i) => (i.args.trimStart().startsWith('[') ? execForm(i.args).join(' ') : i.args));
    const scripts = commands.flatMap(
      (command) => command.match(/[\w./-]+\.(?:ts|js|mjs)\b/g) ?? [],
    );
    expect(scripts.length).toBeGreaterThan(0);
    for (const script of scripts) {
      expect(existsSync(join(root, script)), `${script} is named in the Dockerfile`).toBe(true);
    }
    const cmd = instructions().findLast((i) => i.keyword === 'CMD');
    expect(execForm(cmd?.args ?? '[]').map(sourceOf)).toContain('src/server.ts');
  });

  it('the image has every package its processes load (it installs production dependencies only)', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    const installed = new Set(Object.keys(pkg.dependencies));
    const entries = [
      ...instructions()
        .filter((i) => i.keyword === 'CMD')
        .map((i) => execForm(i.args)),
      ...Object.values(composeFile({}).services).map((service) => service.command ?? []),
    ]
      .flat()
      .map(sourceOf)
      .filter((part) => /^src\/.+\.ts$/.test(part));
    expect(entries).toContain('src/server.ts');
    const loaded = [...packagesLoadedFrom(entries.map((entry) => join(root, entry)))];
    expect(loaded).toEqual(
      expect.arrayContaining(['fastify', 'pg', '@electric-sql/pglite', 'grammy']),
    );
    expect(loaded.filter((name) => !installed.has(name))).toEqual([]);
  });
});

/** The packages the files load, following their relative imports (type-only ones are erased). */
function packagesLoadedFrom(entries: string[]): Set<string> {
  const packages = new Set<string>();
  const seen = new Set<string>();
  const pending = [...entries];
  const importPattern =
    /^\s*(?:import|export)\s+(?!type\b)(?:[^;]*?\sfrom\s*)?'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/gm;
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    for (const match of readFileSync(file, 'utf8').matchAll(importPattern)) {
      const specifier = match[1] ?? match[2] ?? '';
      if (specifier.startsWith('.')) pending.push(join(dirname(file), specifier));
      else if (!specifier.startsWith('node:')) {
        const parts = specifier.split('/');
        packages.add(specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? ''));
      }
    }
  }
  return packages;
}

// ---- compose.yaml, run without Docker ----

interface ComposeService {
  command?: string[];
  environment?: Record<string, string | number | boolean>;
  profiles?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { disable?: boolean; test?: string[] };
}

/** compose.yaml as Compose reads it: anchors and merge keys, then `${NAME:-default}` filled in. */
function composeFile(variables: Record<string, string>): {
  services: Record<string, ComposeService>;
} {
  const text = readFileSync(join(root, 'compose.yaml'), 'utf8')
    .replace(
      /(?<!\$)\$\{(\w+)(?::-([^}]*))?\}/g,
      (_, name: string, fallback?: string) => variables[name] ?? fallback ?? '',
    )
    .replaceAll('$$', '$');
  return parse(text, { merge: true });
}

function environmentOf(service: ComposeService): Record<string, string> {
  return Object.fromEntries(
    Object.entries(service.environment ?? {}).map(([key, value]) => [key, String(value)]),
  );
}

/** The command a service runs: its own, else the image's CMD. `node` is this Node. */
function commandOf(service: ComposeService): string[] {
  const cmd = instructions().findLast((i) => i.keyword === 'CMD');
  const command = service.command ?? execForm(cmd?.args ?? '[]');
  return command[0] === 'node' ? [process.execPath, ...command.slice(1)] : command;
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  return typeof address === 'object' && address ? address.port : 0;
}

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function run(command: string[], env: Record<string, string>): Started {
  const [file = '', ...args] = command;
  const child = spawn(file, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, output: () => output, exited };
}

const dataDir = mkdtempSync(join(tmpdir(), 'imagegen-compose-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('compose.yaml without Docker', () => {
  it('its api, migrate and worker commands, with its environment, serve a generation on PostgreSQL and Redis', async (context) => {
    if (!onPostgres || !testRedisUrl) {
      context.skip(
        'the compose stack is PostgreSQL and Redis (set TEST_DATABASE_URL and TEST_REDIS_URL)',
      );
    }
    const compose = composeFile({});
    const { api, worker, migrate, postgres } = compose.services;
    if (!api || !worker || !migrate || !postgres) throw new Error('compose.yaml lacks a service');
    expect(migrate.profiles).toEqual(['tools']);
    expect(api.depends_on?.postgres?.condition).toBe('service_healthy');
    expect(worker.depends_on?.api?.condition).toBe('service_healthy');

    // The app's DATABASE_URL is the postgres service's own user, password and database.
    const pg = environmentOf(postgres);
    const apiEnvironment = environmentOf(api);
    expect(apiEnvironment.DATABASE_URL).toBe(
      `postgres://${pg.POSTGRES_USER}:${pg.POSTGRES_PASSWORD}@postgres:5432/${pg.POSTGRES_DB}`,
    );
    expect(apiEnvironment.REDIS_URL).toBe('redis://redis:6379');

    const url = await createPrivateDatabase('compose');
    const port = await freePort();
    const token = 'compose-test-token-0123456789';
    // What Docker would give: the image's ENV, the .env file (here: tokens and the offline
    // provider), the service's environment; the containers' host names become this machine's.
    const hostEnvironment = (service: ComposeService): Record<string, string> => ({
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'production',
      API_TOKENS: token,
      GENERATION_PROVIDER: 'local',
      ...environmentOf(service),
      DATABASE_URL: url,
      REDIS_URL: testRedisUrl ?? '',
      DATA_DIR: dataDir,
      HOST: '127.0.0.1',
      PORT: String(port),
    });
    const running: Started[] = [];
    try {
      const migrated = run(commandOf(migrate), hostEnvironment(migrate));
      expect(await migrated.exited, migrated.output()).toBe(0);
      expect(migrated.output()).toContain('migrations applied');

      const apiProcess = run(commandOf(api), hostEnvironment(api));
      running.push(apiProcess);
      // The image's healthcheck, as Docker runs it inside the container.
      const healthcheck = instructions().find((i) => i.keyword === 'HEALTHCHECK');
      expect(healthcheck?.args).toMatch(/\sCMD \[/);
      const probeCommand = execForm(healthcheck?.args ?? '[]');
      await waitFor(
        async () => {
          if (apiProcess.child.exitCode !== null) throw new Error(apiProcess.output());
          const check = run(commandOf({ command: probeCommand }), hostEnvironment(api));
          return check.exited;
        },
        (code) => code === 0,
        60_000,
      );

      const workerProcess = run(commandOf(worker), hostEnvironment(worker));
      running.push(workerProcess);
      await waitFor(
        async () => workerProcess.output(),
        (output) => output.includes('worker started'),
        60_000,
      );

      const base = `http://127.0.0.1:${port}/api/v1`;
      const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      const synced = await fetch(`${base}/users/sync`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ telegram_id: 930_000_001 }),
      });
      expect(synced.status).toBe(201);
      const accepted = await fetch(`${base}/generations`, {
        method: 'POST',
        headers: { ...headers, 'idempotency-key': 'compose-1' },
        body: JSON.stringify({ telegram_id: 930_000_001, model: 'nano-banana', prompt: 'a pier' }),
      });
      expect(accepted.status).toBe(202);
      const { id } = (await accepted.json()) as { id: string };
      const done = await waitFor(
        async () =>
          (await (await fetch(`${base}/generations/${id}`, { headers })).json()) as {
            status: string;
            results: { url: string }[];
          },
        (g) => g.status !== 'queued' && g.status !== 'running',
        60_000,
      );
      expect(done.status).toBe('succeeded');
      // The worker made it (the API runs no worker in this layout) and the API serves the image.
      expect(workerProcess.output()).toContain(id);
      const image = await fetch(`${base}/generations/${id}/images/0`);
      expect(image.headers.get('content-type')).toBe('image/png');

      for (const process of running.reverse()) await stopProcess(process);
      for (const process of running) expect(await process.exited, process.output()).toBe(0);
    } finally {
      for (const process of running) await stopProcess(process);
      await dropPrivateDatabase(url);
    }
  }, 240_000);
});
