import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { createLogger } from '../src/core/logger.ts';
import { embeddedHandle, openDatabase } from '../src/db/client.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import { buildIfStale } from './helpers/entry-points.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    embeddedTemplatePath: string;
  }
}

/** Whether a process with this id is running (the template's owner; another run's, maybe). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes templates left by runs that were killed before their teardown (their process is gone). */
function removeStaleTemplates(dir: string): void {
  for (const name of readdirSync(dir)) {
    const match = /^template-(\d+)\.tar$/.exec(name);
    if (match && !isRunning(Number(match[1]))) rmSync(join(dir, name), { force: true });
  }
}

/**
 * Prepares the database every test worker starts from. On PostgreSQL (TEST_DATABASE_URL): the
 * database is wiped and migrated once. On PGlite: one database is migrated and saved as a template
 * that each worker loads in a fraction of a fresh start's time. Answers the teardown, which
 * deletes the template (tens of MB) when the run ends.
 */
export default async function setup(project: TestProject): Promise<() => void> {
  // The process tests run the build, as `npm start` does; a few ms when dist/ is current.
  buildIfStale();
  const url = process.env.TEST_DATABASE_URL;
  if (url) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(
      'DROP SCHEMA IF EXISTS drizzle CASCADE; DROP SCHEMA public CASCADE; CREATE SCHEMA public;',
    );
    await client.end();
    const handle = await openDatabase(
      { kind: 'postgres', url, poolSize: 2 },
      createLogger({ logLevel: 'silent', logPretty: false }),
    );
    await migrateDatabase(handle);
    await handle.close();
  }
  // Built on PostgreSQL runs too: a test compares the two migrated schemas.
  const pglite = new PGlite();
  const handle = embeddedHandle(pglite);
  await migrateDatabase(handle);
  const dump = await pglite.dumpDataDir('none');
  const dir = join(process.cwd(), 'node_modules', '.cache', 'imagegen-tests');
  mkdirSync(dir, { recursive: true });
  removeStaleTemplates(dir);
  const path = join(dir, `template-${process.pid}.tar`);
  writeFileSync(path, Buffer.from(await dump.arrayBuffer()));
  await handle.close();
  project.provide('embeddedTemplatePath', path);
  return () => rmSync(path, { force: true });
}
