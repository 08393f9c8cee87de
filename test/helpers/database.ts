import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { inject } from 'vitest';
import { createLogger } from '../../src/core/logger.ts';
import { type DatabaseHandle, embeddedHandle, openDatabase } from '../../src/db/client.ts';

export const testDatabaseUrl = process.env.TEST_DATABASE_URL ?? null;
export const testRedisUrl = process.env.TEST_REDIS_URL ?? null;
export const onPostgres = testDatabaseUrl !== null;

export const silentLogger = createLogger({ logLevel: 'silent', logPretty: false });

let shared: Promise<DatabaseHandle> | null = null;

/** The worker's migrated database, opened once and shared by every test file in the worker. */
export function sharedDatabase(): Promise<DatabaseHandle> {
  shared ??= openTestDatabase();
  return shared;
}

/** A database of its own (for tests that close or break it): a new pool, or a template copy. */
export async function openTestDatabase(): Promise<DatabaseHandle> {
  if (testDatabaseUrl) {
    return openDatabase({ kind: 'postgres', url: testDatabaseUrl, poolSize: 10 }, silentLogger);
  }
  return openEmbeddedCopy();
}

/** A copy of the migrated embedded template, whichever database the suite runs on. */
async function openEmbeddedCopy(): Promise<DatabaseHandle> {
  const template = readFileSync(inject('embeddedTemplatePath'));
  const pglite = new PGlite({ loadDataDir: new Blob([template]) });
  await pglite.waitReady;
  return embeddedHandle(pglite);
}
openTestDatabase.embedded = openEmbeddedCopy;

/** A Telegram id no other test uses, so tests share a database without touching each other. */
export function freshTelegramId(): number {
  return randomInt(1, 2 ** 47);
}

/** Skips a test outside PostgreSQL, saying why in the output. */
export function needsPostgres(why: string): boolean {
  if (!onPostgres) {
    console.info(`skipped on PGlite (set TEST_DATABASE_URL to run): ${why}`);
    return true;
  }
  return false;
}

/** Runs one statement on the PostgreSQL server of the tests, outside any test database's pool. */
async function onTestServer(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: testDatabaseUrl ?? '' });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

/**
 * A PostgreSQL database of the test file's own, `<test database>_<suffix>`, made anew (empty: the
 * app migrates it): for tests that change what is global to a database (runtime settings) or count
 * everything in it (stats, metrics). Answers its URL; `dropPrivateDatabase` removes it.
 */
export async function createPrivateDatabase(suffix: string): Promise<string> {
  const url = new URL(testDatabaseUrl ?? '');
  const name = `${url.pathname.slice(1)}_${suffix}`;
  await onTestServer(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await onTestServer(`CREATE DATABASE ${name}`);
  url.pathname = `/${name}`;
  return url.toString();
}

export async function dropPrivateDatabase(url: string): Promise<void> {
  await onTestServer(`DROP DATABASE IF EXISTS ${new URL(url).pathname.slice(1)} WITH (FORCE)`);
}
