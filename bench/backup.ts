// Backup benchmark: how long `db:backup` holds the embedded database (while it runs, the server's
// queries wait), beside two ceilings measured in the same run on the same rows: reading every row
// as the copy does (`row_to_json`, one transaction, nothing written) and PGlite's own physical
// dump (`dumpDataDir`); then how long a restore into a fresh DATA_DIR and a move into PostgreSQL
// take, checks included.
//
//   npm run bench:backup
//
// Goal: the backup holds the database at most 3x as long as reading its rows does. Settings (env):
// BENCH_USERS (20,000) users, each with BENCH_ENTRIES (5) ledger entries.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { createLogger } from '../src/core/logger.ts';
import { copyDatabase, restoreBackup, writeBackup } from '../src/db/backup.ts';
import { type DatabaseHandle, openDatabase } from '../src/db/client.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import { selectRows } from '../src/db/rows.ts';
import { envInteger, fmt, log, recreateDatabase } from './support.ts';

const users = envInteger('BENCH_USERS', 20_000);
const entriesPerUser = envInteger('BENCH_ENTRIES', 5);
const moveDatabase = 'imagegen_bench_move';
const logger = createLogger({ logLevel: 'warn', logPretty: false });
const work = mkdtempSync(join(tmpdir(), 'imagegen-bench-backup-'));

async function timed<T>(
  what: string,
  run: () => Promise<T>,
): Promise<{ value: T; seconds: number }> {
  log(`${what}…`);
  const started = performance.now();
  const value = await run();
  return { value, seconds: (performance.now() - started) / 1000 };
}

const embedded = (dataDir: string) => openDatabase({ kind: 'embedded', dataDir }, logger);

try {
  const sourceDir = join(work, 'source');
  const source = await embedded(sourceDir);
  await migrateDatabase(source);
  log(`seeding ${fmt(users)} users with ${entriesPerUser} ledger entries each…`);
  await source.db.execute(
    sql`INSERT INTO users (telegram_id, first_name) SELECT 800000000 + n, 'User ' || n
        FROM generate_series(1, ${users}) AS n`,
  );
  for (let entry = 0; entry < entriesPerUser; entry++) {
    await source.db.execute(
      sql`INSERT INTO ledger_entries (user_id, amount, kind) SELECT id, 100, 'topup' FROM users`,
    );
  }
  const [counted] = await selectRows<{ rows: string }>(
    source.db,
    sql`SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM ledger_entries) AS rows`,
  );
  const rows = Number(counted?.rows ?? 0);

  const read = await timed('reading every row (ceiling)', () => readEveryRow(source));
  const physical = await timed("PGlite's dumpDataDir (ceiling)", async () => {
    const pglite = source.pglite;
    if (!pglite) throw new Error('not embedded');
    return (await pglite.dumpDataDir('gzip')).size;
  });
  const out = join(work, 'backup');
  const backup = await timed('db:backup', () => writeBackup(source.db, sourceDir, out));
  const backupBytes = statSync(join(out, 'database.ndjson.gz')).size;

  const restoredDir = join(work, 'restored');
  const restoredDb = await embedded(restoredDir);
  const restore = await timed('db:restore into a fresh DATA_DIR', () =>
    restoreBackup(out, restoredDb, restoredDir),
  );
  await restoredDb.close();

  await recreateDatabase(moveDatabase);
  const target = await openDatabase(
    { kind: 'postgres', url: `postgres://postgres@127.0.0.1:5432/${moveDatabase}`, poolSize: 2 },
    logger,
  );
  const move = await timed('db:move into PostgreSQL', () => copyDatabase(source, target));
  await target.close();
  await source.close();

  const ratio = backup.seconds / read.seconds;
  const line = (what: string, seconds: number, extra = '') =>
    `| ${what} | ${fmt(seconds, 2)} | ${fmt(rows / seconds)} | ${extra} |`;
  console.log(
    [
      `${fmt(users)} users, ${fmt(users * entriesPerUser)} ledger entries (${fmt(rows)} rows in these two tables)`,
      '',
      '| step | seconds | rows/s | |',
      '| --- | ---: | ---: | --- |',
      line('read every row (ceiling)', read.seconds, `${fmt(read.value)} rows read`),
      line(
        "PGlite's dumpDataDir (ceiling)",
        physical.seconds,
        `${fmt(physical.value / 1e6, 1)} MB`,
      ),
      line('db:backup (the database is held)', backup.seconds, `${fmt(backupBytes / 1e6, 1)} MB`),
      line('db:restore, checked', restore.seconds),
      line('db:move to PostgreSQL, checked', move.seconds),
      '',
      `backup / read = ${fmt(ratio, 2)} (goal <= 3): ${ratio <= 3 ? 'met' : 'MISSED'}`,
    ].join('\n'),
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}

/** Every row of every table as `row_to_json` text, in one transaction: what a copy must read. */
async function readEveryRow(handle: DatabaseHandle): Promise<number> {
  return handle.db.transaction(async (tx) => {
    const tables = await selectRows<{ name: string }>(
      tx,
      sql`SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'`,
    );
    let total = 0;
    for (const { name } of tables) {
      const result = await selectRows<{ row: string }>(
        tx,
        sql.raw(`SELECT row_to_json(t)::text AS row FROM public."${name}" t`),
      );
      total += result.length;
    }
    return total;
  });
}
