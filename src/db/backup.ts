import { once } from 'node:events';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { appVersion } from '../core/version.ts';
import type { Database, DatabaseHandle } from './client.ts';
import { migrateDatabase } from './migrate.ts';
import {
  assertCanLoadRowsAsTheyAre,
  type DatabaseSummary,
  dumpDatabase,
  isEmptyDatabase,
  SnapshotLoader,
  SnapshotMismatchError,
  type SnapshotRecord,
  SnapshotTally,
  summarizeDatabase,
  summaryDifferences,
} from './snapshot.ts';

/**
 * A backup is a folder: `database.ndjson.gz` (the snapshot, one JSON value a line), `results/`
 * (the images kept in DATA_DIR, see storage/results.ts) and `manifest.json`, written last, so a
 * folder without it is an unfinished backup.
 */
const DATABASE_FILE = 'database.ndjson.gz';
const MANIFEST_FILE = 'manifest.json';
const RESULTS_FOLDER = 'results';

export interface BackupManifest {
  appVersion: string;
  createdAt: string;
  /** What the snapshot holds, tallied as it was written; a restore must find the same. */
  database: DatabaseSummary;
  results: FileCount;
}

export interface FileCount {
  files: number;
  bytes: number;
}

export class TargetNotEmptyError extends Error {
  constructor() {
    super(
      'The target database is not empty: it must have no tables at all (this command applies ' +
        'the migrations itself). Create a new database, or drop and recreate this one.',
    );
    this.name = 'TargetNotEmptyError';
  }
}

export class CopyMismatchError extends Error {
  constructor(readonly differences: string[]) {
    super(`The copy does not match its source: ${differences.join('; ')}`);
    this.name = 'CopyMismatchError';
  }
}

/**
 * Writes a backup of `db` (in one consistent snapshot, while others keep writing) and of the
 * images under `dataDir` into the new folder `out`. Images are copied after the snapshot, so every
 * image a copied row names is there (a stored image is never changed; only RESULT_RETENTION_DAYS
 * deletes old ones).
 */
export async function writeBackup(
  db: Database,
  dataDir: string,
  out: string,
): Promise<BackupManifest> {
  if (existsSync(out) && (await readdir(out)).length > 0) {
    throw new Error(`${out} already exists and is not empty; name a new folder`);
  }
  await mkdir(out, { recursive: true });
  const tally = new SnapshotTally();
  const gzip = createGzip();
  const temporary = join(out, `${DATABASE_FILE}.partial`);
  const written = pipeline(gzip, createWriteStream(temporary));
  const writeLine = async (line: string) => {
    if (!gzip.write(`${line}\n`)) await once(gzip, 'drain');
  };
  try {
    await dumpDatabase(db, async (record) => {
      tally.add(record);
      if (record.kind !== 'rows') return writeLine(JSON.stringify(record));
      // A row is written as a JSON string of its row_to_json text: read back exactly, byte for byte.
      for (const row of record.rows) await writeLine(JSON.stringify(row));
    });
  } finally {
    gzip.end();
    await written;
  }
  await rename(temporary, join(out, DATABASE_FILE));
  const results = await copyResults(dataDir, out);
  const manifest: BackupManifest = {
    appVersion,
    createdAt: new Date().toISOString(),
    database: tally.summary(),
    results,
  };
  await writeFile(join(out, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

export async function readManifest(from: string): Promise<BackupManifest> {
  const path = join(from, MANIFEST_FILE);
  if (!existsSync(path)) {
    throw new Error(`${from} is not a finished backup (it has no ${MANIFEST_FILE})`);
  }
  return JSON.parse(await readFile(path, 'utf8')) as BackupManifest;
}

/** The snapshot of a backup, record by record, as `dumpDatabase` gave them. */
async function* readSnapshot(from: string): AsyncGenerator<SnapshotRecord> {
  const lines = createInterface({
    input: createReadStream(join(from, DATABASE_FILE)).pipe(createGunzip()),
    crlfDelay: Number.POSITIVE_INFINITY,
  });
  let table: string | null = null;
  let rowsLeft = 0;
  let chunk: string[] = [];
  for await (const line of lines) {
    if (rowsLeft > 0 && table !== null) {
      chunk.push(JSON.parse(line) as string);
      rowsLeft -= 1;
      if (chunk.length === 2_000 || rowsLeft === 0) {
        yield { kind: 'rows', table, rows: chunk };
        chunk = [];
      }
      continue;
    }
    const record = JSON.parse(line) as SnapshotRecord;
    if (record.kind === 'table') {
      table = record.name;
      rowsLeft = record.rows;
    }
    yield record;
  }
  if (rowsLeft > 0) throw new SnapshotMismatchError(`the backup ends inside table ${table}`);
}

/**
 * Applies the migrations to an empty database and loads records into it in one transaction, then
 * checks it against `expected` after the commit, from a fresh read. Refuses a database that is
 * not empty, before changing anything.
 */
async function loadIntoEmpty(
  target: DatabaseHandle,
  records: (apply: (record: SnapshotRecord) => Promise<void>) => Promise<void>,
  expected: () => DatabaseSummary,
): Promise<DatabaseSummary> {
  if (!(await isEmptyDatabase(target.db))) throw new TargetNotEmptyError();
  await assertCanLoadRowsAsTheyAre(target.db);
  await migrateDatabase(target);
  await target.db.transaction(async (tx) => {
    const loader = await SnapshotLoader.start(tx);
    await records((record) => loader.apply(record));
    await loader.finish();
  });
  const copy = await summarizeDatabase(target.db);
  const differences = summaryDifferences(expected(), copy);
  if (differences.length > 0) throw new CopyMismatchError(differences);
  return copy;
}

/** Restores a backup into an empty database (embedded or PostgreSQL) and its images into `dataDir`. */
export async function restoreBackup(
  from: string,
  target: DatabaseHandle,
  dataDir: string,
): Promise<{ manifest: BackupManifest; summary: DatabaseSummary; results: FileCount }> {
  const manifest = await readManifest(from);
  const summary = await loadIntoEmpty(
    target,
    async (apply) => {
      for await (const record of readSnapshot(from)) await apply(record);
    },
    () => manifest.database,
  );
  const results = await copyResults(from, dataDir);
  if (results.files !== manifest.results.files || results.bytes !== manifest.results.bytes) {
    throw new CopyMismatchError([
      `images: ${manifest.results.files} files (${manifest.results.bytes} bytes) in the backup, ` +
        `${results.files} (${results.bytes} bytes) restored`,
    ]);
  }
  return { manifest, summary, results };
}

/**
 * Copies the database `source` into the empty database `target` (the move from the embedded
 * database to PostgreSQL): the records go straight from one to the other, and the target is then
 * checked against what passed.
 */
export async function copyDatabase(
  source: DatabaseHandle,
  target: DatabaseHandle,
): Promise<DatabaseSummary> {
  const tally = new SnapshotTally();
  return loadIntoEmpty(
    target,
    (apply) =>
      dumpDatabase(source.db, async (record) => {
        tally.add(record);
        await apply(record);
      }),
    () => tally.summary(),
  );
}

/** Copies the stored images of one data folder into another (never overwriting), and counts them. */
export async function copyResults(fromDataDir: string, toDataDir: string): Promise<FileCount> {
  const from = join(fromDataDir, RESULTS_FOLDER);
  if (!existsSync(from)) return { files: 0, bytes: 0 };
  const to = join(toDataDir, RESULTS_FOLDER);
  await cp(from, to, {
    recursive: true,
    force: false,
    errorOnExist: true,
    // A half-written image (its atomic rename still to come) is not an image yet.
    filter: (path) => !path.endsWith('.tmp'),
  });
  return countFiles(to);
}

async function countFiles(folder: string): Promise<FileCount> {
  const count: FileCount = { files: 0, bytes: 0 };
  for (const entry of await readdir(folder, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    count.files += 1;
    count.bytes += (await stat(join(entry.parentPath, entry.name))).size;
  }
  return count;
}
