import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CopyMismatchError,
  restoreBackup,
  TargetNotEmptyError,
  writeBackup,
} from '../src/db/backup.ts';
import { type DatabaseHandle, openDatabase } from '../src/db/client.ts';
import { lockDataDir } from '../src/db/data-dir-lock.ts';
import { selectRows } from '../src/db/rows.ts';
import { isEmptyDatabase, summarizeDatabase, summaryDifferences } from '../src/db/snapshot.ts';
import { adminAuth, botAuth, buildTestApp } from './helpers/app.ts';
import {
  createPrivateDatabase,
  dropPrivateDatabase,
  onPostgres,
  silentLogger,
  testDatabaseUrl,
} from './helpers/database.ts';
import { nodeArgsFor } from './helpers/entry-points.ts';
import { generation, submit, waitFor } from './helpers/pipeline.ts';
import { startServer, stopProcess } from './helpers/process.ts';

const work = mkdtempSync(join(tmpdir(), 'imagegen-backup-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const embedded = (dataDir: string) => openDatabase({ kind: 'embedded', dataDir }, silentLogger);
const postgres = (url: string) =>
  openDatabase({ kind: 'postgres', url, poolSize: 2 }, silentLogger);

interface Populated {
  users: number[];
  balances: number[];
  generations: string[];
}

/** An app on `database` whose stored images live in `dataDir`; the local provider draws. */
function appOn(
  database: DatabaseHandle,
  dataDir: string,
  worker = false,
): Promise<FastifyInstance> {
  return buildTestApp(
    {
      DATA_DIR: dataDir,
      GENERATION_PROVIDER: 'local',
      TRIAL_GENERATIONS: '1',
      STARS_PACKAGES: 'small:100:50',
    },
    database,
    { worker },
  );
}

/** Users, a Stars payment, an admin credit, generations (free, paid, failed and given back), images. */
async function populate(database: DatabaseHandle, dataDir: string): Promise<Populated> {
  const app = await appOn(database, dataDir, true);
  try {
    const users = [910_000_001, 910_000_002, 910_000_003];
    for (const telegramId of users) {
      const synced = await app.inject({
        method: 'POST',
        url: '/api/v1/users/sync',
        headers: botAuth,
        payload: { telegram_id: telegramId, first_name: `Ada ${telegramId}` },
      });
      expect(synced.statusCode, synced.body).toBe(201);
    }
    const packages = await app.inject({ url: '/api/v1/payments/stars/packages' });
    const paid = await app.inject({
      method: 'POST',
      url: '/api/v1/payments/stars/confirm',
      headers: botAuth,
      payload: {
        telegram_id: users[0],
        telegram_payment_charge_id: 'tg_backup_charge_1',
        provider_payment_charge_id: null,
        total_amount: 50,
        currency: 'XTR',
        invoice_payload: packages.json().packages[0].invoice_payload,
      },
    });
    expect(paid.statusCode, paid.body).toBe(201);
    const credited = await app.inject({
      method: 'POST',
      url: `/api/v1/admin/users/${users[1]}/credits`,
      headers: adminAuth,
      payload: { amount: 40, reason: 'backup test' },
    });
    expect(credited.statusCode, credited.body).toBe(201);

    const generations: string[] = [];
    for (const [index, prompt] of [
      'a lighthouse',
      'a harbour at dawn',
      'please fail now',
    ].entries()) {
      const accepted = await submit(
        app,
        { telegram_id: users[0], model: 'nano-banana', prompt },
        { 'idempotency-key': `backup-test-${index}` },
      );
      expect(accepted.statusCode, accepted.body).toBe(202);
      const id: string = accepted.json().id;
      generations.push(id);
      await waitFor(
        () => generation(app, id),
        (g) => g.status !== 'queued' && g.status !== 'running',
      );
    }
    // More users than one page of the copy holds (2,000 rows), so it reads a table in pages.
    await database.db.execute(
      sql`INSERT INTO users (telegram_id, first_name, language)
          SELECT 911000000 + n, 'Bulk ' || n, (ARRAY['uz', 'ru', 'en'])[1 + n % 3]
          FROM generate_series(1, 4100) AS n`,
    );
    const statuses = await Promise.all(generations.map((id) => generation(app, id)));
    expect(statuses.map((g) => g.status)).toEqual(['succeeded', 'succeeded', 'failed']);
    return { users, balances: await balances(app, users), generations };
  } finally {
    await app.close();
  }
}

async function balances(app: FastifyInstance, users: number[]): Promise<number[]> {
  return Promise.all(
    users.map(async (telegramId) => {
      const response = await app.inject({
        url: `/api/v1/users/${telegramId}/balance`,
        headers: botAuth,
      });
      return response.json().balance as number;
    }),
  );
}

async function image(app: FastifyInstance, generationId: string): Promise<Buffer> {
  const response = await app.inject({ url: `/api/v1/generations/${generationId}/images/0` });
  expect(response.statusCode).toBe(200);
  return response.rawPayload;
}

/** What a copy must keep of the populated data, read through the API, images included. */
async function expectSameData(
  source: { database: DatabaseHandle; dataDir: string },
  copy: { database: DatabaseHandle; dataDir: string },
  populated: Populated,
): Promise<void> {
  expect(
    summaryDifferences(
      await summarizeDatabase(source.database.db),
      await summarizeDatabase(copy.database.db),
    ),
  ).toEqual([]);
  const before = await appOn(source.database, source.dataDir);
  const after = await appOn(copy.database, copy.dataDir);
  try {
    expect(await balances(after, populated.users)).toEqual(populated.balances);
    expect(populated.balances[0]).toBeGreaterThan(0);
    for (const id of populated.generations) {
      expect(await generation(after, id)).toEqual(await generation(before, id));
    }
    for (const id of populated.generations.slice(0, 2)) {
      expect((await image(after, id)).equals(await image(before, id))).toBe(true);
    }
    // The copy goes on where the source stopped: the next entry's running balance and the ids.
    const credited = await after.inject({
      method: 'POST',
      url: `/api/v1/admin/users/${populated.users[1]}/credits`,
      headers: adminAuth,
      payload: { amount: 5, reason: 'after the copy' },
    });
    expect(credited.statusCode, credited.body).toBe(201);
    expect((await balances(after, populated.users))[1]).toBe((populated.balances[1] ?? 0) + 5);
    const [ids] = await selectRows<{ newest: string; entries: string }>(
      copy.database.db,
      sql`SELECT max(id)::text AS newest, count(*)::text AS entries FROM ledger_entries`,
    );
    expect(ids?.newest).toBe(ids?.entries);
  } finally {
    await before.close();
    await after.close();
  }
  // The ledger's rules hold on the copy.
  await expect(
    copy.database.db.execute(sql`UPDATE ledger_entries SET amount = amount + 1`),
  ).rejects.toThrow();
}

/** The embedded database of a new DATA_DIR; on PostgreSQL runs, a database of the test's own. */
async function sourceDatabase(
  name: string,
): Promise<{ database: DatabaseHandle; dataDir: string; drop: () => Promise<void> }> {
  const dataDir = join(work, name);
  if (!onPostgres) {
    const database = await embedded(dataDir);
    return { database, dataDir, drop: () => database.close() };
  }
  const url = await createPrivateDatabase(`move_${name}`);
  const database = await postgres(url);
  return {
    database,
    dataDir,
    drop: async () => {
      await database.close();
      await dropPrivateDatabase(url);
    },
  };
}

describe('backup and restore', () => {
  it('restores a populated database into a fresh DATA_DIR: same rows, balances, images; refuses a used target; finds a changed backup', async () => {
    const source = await sourceDatabase('backup');
    try {
      const populated = await populate(source.database, source.dataDir);
      const out = join(work, 'backup-1');
      const manifest = await writeBackup(source.database.db, source.dataDir, out);
      expect(manifest.database.tables.ledger_entries?.rows).toBeGreaterThanOrEqual(4);
      expect(manifest.database.tables.payments?.rows).toBe(1);
      expect(manifest.database.tables.users?.rows).toBe(4_103);
      expect(manifest.results.files).toBe(2);

      const restoredDir = join(work, 'restored-1');
      const restored = await embedded(restoredDir);
      try {
        await restoreBackup(out, restored, restoredDir);
        await expectSameData(source, { database: restored, dataDir: restoredDir }, populated);
        await expect(restoreBackup(out, restored, restoredDir)).rejects.toThrow(
          TargetNotEmptyError,
        );
      } finally {
        await restored.close();
      }

      // One ledger amount changed in the backup's file: the restore sees it and says where.
      const file = join(out, 'database.ndjson.gz');
      const lines = gunzipSync(readFileSync(file)).toString('utf8').split('\n');
      const ledgerAt = lines.findIndex((line) => line.includes('"name":"ledger_entries"'));
      const row = JSON.parse(lines[ledgerAt + 1] ?? '') as string;
      lines[ledgerAt + 1] = JSON.stringify(
        row.replace(/"amount":(-?\d+)/, (_, n) => `"amount":${Number(n) + 1}`),
      );
      writeFileSync(file, gzipSync(lines.join('\n')));
      const tamperedDir = join(work, 'tampered');
      const tampered = await embedded(tamperedDir);
      try {
        const error = await restoreBackup(out, tampered, tamperedDir).catch(
          (caught: unknown) => caught,
        );
        expect(error).toBeInstanceOf(CopyMismatchError);
        expect((error as CopyMismatchError).differences).toContain(
          'ledger_entries: the rows differ',
        );
      } finally {
        await tampered.close();
      }
    } finally {
      await source.drop();
    }
  }, 120_000);
});

/** Runs `npm run db:<command>` the way an operator does (without npm), answering its exit code and output. */
async function copyCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [...nodeArgsFor('src/db/copy-cli.ts'), ...args], {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const [code] = await once(child, 'exit');
  return { code: code as number | null, output };
}

/** Runs one statement as the test server's superuser. */
async function asSuperuser(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: testDatabaseUrl ?? '' });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/**
 * A role that owns its target but may not set session_replication_role: the move stops before it
 * writes anything (no migrations either), so the target can be used again once the role may.
 */
async function expectRefusedWithoutReplicationRole(dataDir: string): Promise<void> {
  const target = await createPrivateDatabase('move_denied');
  const role = `${new URL(target).pathname.slice(1)}_role`;
  await asSuperuser(`DROP ROLE IF EXISTS ${role}`);
  await asSuperuser(`CREATE ROLE ${role} LOGIN NOSUPERUSER`);
  try {
    await asSuperuser(`ALTER DATABASE ${new URL(target).pathname.slice(1)} OWNER TO ${role}`);
    const asRole = new URL(target);
    asRole.username = role;
    asRole.password = '';
    const denied = await copyCli(['move', '--to', asRole.toString()], { DATA_DIR: dataDir });
    expect(denied.code, denied.output).toBe(77);
    expect(denied.output).toContain('GRANT SET ON PARAMETER session_replication_role');
    const untouched = await postgres(target);
    try {
      expect(await isEmptyDatabase(untouched.db)).toBe(true);
    } finally {
      await untouched.close();
    }
  } finally {
    await dropPrivateDatabase(target);
    await asSuperuser(`DROP ROLE IF EXISTS ${role}`);
  }
}

describe('db:move', () => {
  it('copies an embedded database into an empty PostgreSQL database, byte for byte, and refuses a non-empty one', async (context) => {
    if (!onPostgres) context.skip('db:move needs a PostgreSQL server (set TEST_DATABASE_URL)');
    const dataDir = join(work, 'move-source');
    const source = await embedded(dataDir);
    const populated = await populate(source, dataDir);
    await source.close();
    const url = await createPrivateDatabase('move_target');
    try {
      // While another process holds the embedded database, nothing is copied.
      const lock = lockDataDir(dataDir);
      const locked = await copyCli(['move', '--to', url], { DATA_DIR: dataDir });
      lock.release();
      expect(locked.code, locked.output).toBe(75);

      const resultsTo = join(work, 'move-results');
      const moved = await copyCli(['move', '--to', url, '--results-to', resultsTo], {
        DATA_DIR: dataDir,
      });
      expect(moved.code, moved.output).toBe(0);
      expect(moved.output).toContain('moved and checked');

      const again = await copyCli(['move', '--to', url], { DATA_DIR: dataDir });
      expect(again.code, again.output).toBe(73);
      expect(again.output).toContain('not empty');

      await expectRefusedWithoutReplicationRole(dataDir);

      const before = await embedded(dataDir);
      const after = await postgres(url);
      try {
        const ledger = (db: DatabaseHandle) =>
          db.db.transaction(async (tx) => {
            await tx.execute(sql`SET LOCAL TimeZone = 'UTC'`);
            return selectRows<{ row: string }>(
              tx,
              sql`SELECT row_to_json(l)::text AS row FROM ledger_entries l ORDER BY id`,
            );
          });
        const sourceLedger = await ledger(before);
        expect(sourceLedger.length).toBeGreaterThanOrEqual(4);
        expect(await ledger(after)).toEqual(sourceLedger);
        await expectSameData(
          { database: before, dataDir },
          { database: after, dataDir: resultsTo },
          populated,
        );
        const [triggers] = await selectRows<{ enabled: string }>(
          after.db,
          sql`SELECT string_agg(tgname || ':' || tgenabled::text, ',' ORDER BY tgname) AS enabled FROM pg_trigger
              WHERE tgrelid = 'ledger_entries'::regclass AND NOT tgisinternal`,
        );
        expect(triggers?.enabled).toBe(
          'ledger_entries_keep_user_balance:O,ledger_entries_no_truncate:O,ledger_entries_no_update_or_delete:O,ledger_entries_running_balance:O',
        );
      } finally {
        await before.close();
        await after.close();
      }
    } finally {
      await dropPrivateDatabase(url);
    }
  }, 180_000);
});

describe('db:backup and db:restore as commands', () => {
  it('backs up while the server runs and serves, and restores into a fresh DATA_DIR', async () => {
    const dataDir = join(work, 'live');
    const token = 'backup-test-token-0123456789';
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const adminToken = 'backup-test-admin-token-0123456789';
    const server = startServer({ DATA_DIR: dataDir, API_TOKENS: token, ADMIN_TOKENS: adminToken });
    let generationId: string;
    let sourceImage: Buffer;
    try {
      const url = await server.listening;
      await fetch(`${url}/api/v1/users/sync`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ telegram_id: 920_000_001 }),
      });
      const credited = await fetch(`${url}/api/v1/admin/users/920000001/credits`, {
        method: 'POST',
        headers: { ...headers, authorization: `Bearer ${adminToken}` },
        body: JSON.stringify({ amount: 30, reason: 'backup test' }),
      });
      expect(credited.status).toBe(201);
      const accepted = await fetch(`${url}/api/v1/generations`, {
        method: 'POST',
        headers: { ...headers, 'idempotency-key': 'live-backup-1' },
        body: JSON.stringify({ telegram_id: 920_000_001, model: 'nano-banana', prompt: 'a kite' }),
      });
      expect(accepted.status).toBe(202);
      generationId = ((await accepted.json()) as { id: string }).id;
      await waitFor(
        async () =>
          (await (
            await fetch(`${url}/api/v1/generations/${generationId}`, { headers })
          ).json()) as { status: string },
        (g) => g.status === 'succeeded',
        30_000,
      );
      sourceImage = Buffer.from(
        await (await fetch(`${url}/api/v1/generations/${generationId}/images/0`)).arrayBuffer(),
      );

      const out = join(work, 'live-backup');
      const backup = await copyCli(['backup', '--out', out], { DATA_DIR: dataDir });
      expect(backup.code, backup.output).toBe(0);
      expect(existsSync(join(out, 'manifest.json'))).toBe(true);
      expect(server.output()).toContain('backup written');
      // The server went on serving.
      expect((await fetch(`${url}/api/v1/health`)).status).toBe(200);
    } finally {
      await stopProcess(server);
    }

    // Nobody signalled: a process holding the folder without taking requests is not disturbed.
    const held = lockDataDir(dataDir);
    const refused = await copyCli(['backup', '--out', join(work, 'never')], { DATA_DIR: dataDir });
    held.release();
    expect(refused.code, refused.output).toBe(75);
    expect(refused.output).toContain('does not take backup requests');

    const restoredDir = join(work, 'live-restored');
    const restore = await copyCli(['restore', '--from', join(work, 'live-backup')], {
      DATA_DIR: restoredDir,
    });
    expect(restore.code, restore.output).toBe(0);
    const restored = startServer({ DATA_DIR: restoredDir, API_TOKENS: token });
    try {
      const url = await restored.listening;
      const balance = await fetch(`${url}/api/v1/users/920000001/balance`, { headers });
      expect(await balance.json()).toEqual({ telegram_id: 920_000_001, balance: 30 });
      const done = (await (
        await fetch(`${url}/api/v1/generations/${generationId}`, { headers })
      ).json()) as { status: string };
      expect(done.status).toBe('succeeded');
      const restoredImage = Buffer.from(
        await (await fetch(`${url}/api/v1/generations/${generationId}/images/0`)).arrayBuffer(),
      );
      expect(restoredImage.equals(sourceImage)).toBe(true);
    } finally {
      await stopProcess(restored);
    }
  }, 180_000);
});
