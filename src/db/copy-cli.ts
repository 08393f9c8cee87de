// `npm run db:backup`, `npm run db:restore` and `npm run db:move`: one entry, the command its first
// argument. See README, "Backup, restore and moving to PostgreSQL".
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type Config, loadConfigOrExit } from '../core/config.ts';
import { createLogger, type Logger } from '../core/logger.ts';
import { StartFailure, unreachableService } from '../core/start-failure.ts';
import {
  type BackupManifest,
  CopyMismatchError,
  copyDatabase,
  copyResults,
  restoreBackup,
  TargetNotEmptyError,
  writeBackup,
} from './backup.ts';
import { NoBackupListenerError, requestBackup } from './backup-requests.ts';
import { type DatabaseHandle, openDatabase } from './client.ts';
import { DataDirLockedError } from './data-dir-lock.ts';
import { migrateDatabase } from './migrate.ts';
import { CopyNotPermittedError, type DatabaseSummary, SnapshotMismatchError } from './snapshot.ts';

/** sysexits(3): 64 a wrong command line, 65 a copy that does not match, 75 try again later. */
class UsageError extends Error {}

const [command, ...rest] = process.argv.slice(2);
const config = loadConfigOrExit();
const logger = createLogger(config);

try {
  if (command === 'backup') await backup(rest);
  else if (command === 'restore') await restore(rest);
  else if (command === 'move') await move(rest);
  else throw new UsageError('usage: copy-cli.ts backup|restore|move [options]');
} catch (error) {
  fail(error);
}

async function withDatabase<T>(
  database: Config['database'],
  use: (handle: DatabaseHandle) => Promise<T>,
): Promise<T> {
  const handle = await openDatabase(database, logger);
  try {
    return await use(handle);
  } finally {
    await handle.close();
  }
}

async function backup(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { out: { type: 'string' }, 'timeout-seconds': { type: 'string', default: '600' } },
  });
  const stamp = new Date().toISOString().replaceAll(':', '-').replace(/\..*/, '');
  const out = resolve(values.out ?? join('backups', `backup-${stamp}`));
  if (config.database.kind === 'embedded' && config.database.dataDir === null) {
    throw new UsageError('DATABASE_URL=memory:// keeps nothing to back up');
  }
  let manifest: BackupManifest | null = null;
  if (config.database.kind === 'embedded' && config.database.dataDir !== null) {
    // The server holds the folder: it writes the backup itself, while it serves.
    const timeoutMs = Number(values['timeout-seconds']) * 1000;
    manifest = await requestBackup(config.database.dataDir, out, timeoutMs);
  }
  manifest ??= await withDatabase(config.database, (handle) =>
    writeBackup(handle.db, config.dataDir, out),
  );
  logger.info(
    { out, ...totals(manifest.database), images: manifest.results.files },
    'backup written',
  );
}

async function restore(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { from: { type: 'string' } } });
  if (!values.from) throw new UsageError('usage: npm run db:restore -- --from <backup folder>');
  const from = resolve(values.from);
  const restored = await withDatabase(config.database, (handle) =>
    restoreBackup(from, handle, config.dataDir),
  );
  logger.info(
    {
      from,
      database: config.database.kind,
      ...totals(restored.summary),
      images: restored.results.files,
    },
    'backup restored and checked: same rows, sequences and balances',
  );
}

async function move(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { to: { type: 'string' }, 'results-to': { type: 'string' } },
  });
  const to = values.to;
  if (!to || !/^postgres(ql)?:\/\//.test(to)) {
    throw new UsageError('usage: npm run db:move -- --to postgres://user:password@host:5432/db');
  }
  if (config.database.kind !== 'embedded' || config.database.dataDir === null) {
    throw new UsageError('db:move copies the embedded database in DATA_DIR: unset DATABASE_URL');
  }
  const target: Config['database'] = { kind: 'postgres', url: to, poolSize: 2 };
  const summary = await withDatabase(config.database, async (source) => {
    // The copy loads only into the same schema, and the target gets this code's migrations.
    await migrateDatabase(source);
    return withDatabase(target, (handle) => copyDatabase(source, handle)).catch((error) => {
      throw unreachableService('the database', 'db:move --to', to, error) ?? error;
    });
  });
  const images = values['results-to']
    ? await copyResults(config.dataDir, resolve(values['results-to']))
    : null;
  logger.info(
    {
      ...totals(summary),
      users: summary.tables.users?.rows ?? 0,
      ledgerEntries: summary.tables.ledger_entries?.rows ?? 0,
      images: images?.files ?? `left in ${config.dataDir}`,
    },
    'moved and checked: same rows, ids, sequences and triggers; every balance is the sum of its ledger. ' +
      'Run with DATABASE_URL set to the target and DATA_DIR holding the images.',
  );
}

function totals(summary: DatabaseSummary): { tables: number; rows: number } {
  const tables = Object.values(summary.tables);
  return { tables: tables.length, rows: tables.reduce((sum, table) => sum + table.rows, 0) };
}

function fail(error: unknown): never {
  const log: Logger = logger;
  if (error instanceof UsageError) {
    log.fatal(error.message);
    process.exit(64);
  }
  if (error instanceof CopyMismatchError || error instanceof SnapshotMismatchError) {
    log.fatal(error.message);
    process.exit(65);
  }
  if (error instanceof DataDirLockedError) {
    log.fatal(
      `${error.message} ${command === 'backup' ? '' : 'Stop the server first: this copies a database nobody writes to.'}`,
    );
    process.exit(75);
  }
  if (error instanceof NoBackupListenerError) {
    log.fatal(error.message);
    process.exit(75);
  }
  if (error instanceof CopyNotPermittedError) {
    log.fatal(error.message);
    process.exit(77);
  }
  if (error instanceof TargetNotEmptyError) {
    log.fatal(error.message);
    process.exit(73);
  }
  const unreachable =
    config.database.kind === 'postgres'
      ? unreachableService('the database', 'DATABASE_URL', config.database.url, error)
      : null;
  if (unreachable) {
    log.fatal(unreachable.message);
    process.exit(unreachable.exitCode);
  }
  if (error instanceof StartFailure) {
    log.fatal(error.message);
    process.exit(error.exitCode);
  }
  log.fatal({ err: error }, `db:${command} failed`);
  process.exit(1);
}
