import { execFile, execFileSync } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

/**
 * A PostgreSQL cluster of a test's own: initdb in a temporary folder, its own port on 127.0.0.1,
 * its own socket folder. A test may restart or stop it without touching the machine's shared
 * server (or anyone's backends on it). Durability is off (fsync, synchronous_commit): it is thrown
 * away after the test.
 *
 * PostgreSQL refuses to run as root; tests run as root in CI, so the cluster's commands then run
 * as the `postgres` user (runuser), which owns the folder.
 */

const run = promisify(execFile);

/** The folder holding initdb and pg_ctl, or null if this machine has none. */
export function postgresBinaries(): string | null {
  const candidates: string[] = [];
  if (process.env.PG_BIN) candidates.push(process.env.PG_BIN);
  const versions = existsSync('/usr/lib/postgresql')
    ? readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a))
    : [];
  for (const version of versions) candidates.push(`/usr/lib/postgresql/${version}/bin`);
  candidates.push('/usr/local/bin', '/usr/bin');
  for (const folder of (process.env.PATH ?? '').split(':')) if (folder) candidates.push(folder);
  for (const folder of candidates) {
    if (existsSync(join(folder, 'initdb')) && existsSync(join(folder, 'pg_ctl'))) return folder;
  }
  return null;
}

export interface PrivateCluster {
  readonly port: number;
  /** A connection URL for `database` (superuser `postgres`, no password). */
  url(database?: string): string;
  createDatabase(name: string): Promise<void>;
  /** `pg_ctl restart -m fast`: every connection is cut, the server is back when this resolves. */
  restart(): Promise<void>;
  /** Stops the server at once and deletes its folder; safe to call twice. */
  destroy(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

export async function startPrivateCluster(binaries: string): Promise<PrivateCluster> {
  const asRoot = process.getuid?.() === 0;
  const folder = mkdtempSync(join(tmpdir(), 'imagegen-pg-'));
  const data = join(folder, 'data');
  const log = join(folder, 'server.log');
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(folder, uid, gid);
  }
  const command = (name: string, args: string[]) => {
    const file = join(binaries, name);
    return asRoot
      ? run('runuser', ['-u', 'postgres', '--', file, ...args], { timeout: 120_000 })
      : run(file, args, { timeout: 120_000 });
  };
  const pgCtl = (...args: string[]) => command('pg_ctl', ['-D', data, '-l', log, '-w', ...args]);

  let destroyed = false;
  const destroy = async () => {
    if (destroyed) return;
    destroyed = true;
    await pgCtl('-m', 'immediate', 'stop').catch(() => undefined);
    rmSync(folder, { recursive: true, force: true });
  };
  try {
    await command('initdb', [
      '-D',
      data,
      '-A',
      'trust',
      '-U',
      'postgres',
      '-E',
      'UTF8',
      '--no-locale',
      '--no-sync',
    ]);
    const port = await freePort();
    // In the configuration file, so a restart keeps them.
    appendFileSync(
      join(data, 'postgresql.conf'),
      [
        `port = ${port}`,
        `listen_addresses = '127.0.0.1'`,
        `unix_socket_directories = '${folder}'`,
        'fsync = off',
        'synchronous_commit = off',
        'full_page_writes = off',
        'max_connections = 100',
        'shared_buffers = 32MB',
        '',
      ].join('\n'),
    );
    await pgCtl('-t', '60', 'start');
    const url = (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`;
    return {
      port,
      url,
      createDatabase: async (name) => {
        const client = new pg.Client({ connectionString: url() });
        await client.connect();
        try {
          await client.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
        } finally {
          await client.end();
        }
      },
      restart: async () => {
        await pgCtl('-t', '60', '-m', 'fast', 'restart');
      },
      destroy,
    };
  } catch (error) {
    await destroy();
    throw error;
  }
}
