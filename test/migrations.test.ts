import { randomUUID } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { type DatabaseHandle, embeddedHandle, openDatabase } from '../src/db/client.ts';
import { migrateDatabase, migrationsFolder, SchemaNotReadyError } from '../src/db/migrate.ts';
import { selectRows } from '../src/db/rows.ts';
import { testConfig } from './helpers/app.ts';
import {
  needsPostgres,
  onPostgres,
  openTestDatabase,
  silentLogger,
  testDatabaseUrl,
} from './helpers/database.ts';

const expectedMigrations = readMigrationFiles({ migrationsFolder }).length;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

/** An empty database: a fresh PGlite, or a new database on the PostgreSQL server. */
async function emptyDatabase(): Promise<DatabaseHandle> {
  if (!testDatabaseUrl) {
    const handle = embeddedHandle(new PGlite());
    cleanups.push(() => handle.close());
    return handle;
  }
  const handle = await openDatabase(
    { kind: 'postgres', url: await emptyPostgresDatabase(testDatabaseUrl), poolSize: 4 },
    silentLogger,
  );
  cleanups.push(() => handle.close());
  return handle;
}

/** Creates a database beside the test one (dropped after the test) and returns its URL. */
async function emptyPostgresDatabase(serverUrl: string): Promise<string> {
  const name = `imagegen_migrations_${randomUUID().slice(0, 8)}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  cleanups.unshift(async () => {
    const dropper = new pg.Client({ connectionString: serverUrl });
    await dropper.connect();
    await dropper.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await dropper.end();
  });
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function appliedCount(handle: DatabaseHandle): Promise<number> {
  const [row] = await selectRows<{ n: number }>(
    handle.db,
    sql`SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations`,
  );
  return row?.n ?? 0;
}

describe('migrations at start', () => {
  it('RUN_MIGRATIONS=true (default) applies them; running again changes nothing', async () => {
    const database = await emptyDatabase();
    const app = await buildApp(testConfig(), { database, logger: silentLogger });
    await app.close();
    expect(await appliedCount(database)).toBe(expectedMigrations);
    await migrateDatabase(database);
    expect(await appliedCount(database)).toBe(expectedMigrations);
    const [models] = await selectRows<{ n: number }>(
      database.db,
      sql`SELECT count(*)::int AS n FROM model_catalog`,
    );
    // The starting catalog: five image models (0002) and five tools (0009).
    expect(models?.n).toBe(10);
  });

  it('RUN_MIGRATIONS=false leaves an empty database alone and says what to do', async () => {
    const database = await emptyDatabase();
    const start = buildApp(testConfig({ RUN_MIGRATIONS: 'false' }), {
      database,
      logger: silentLogger,
    });
    await expect(start).rejects.toBeInstanceOf(SchemaNotReadyError);
    await expect(start).rejects.toThrow(/no schema yet.*npm run db:migrate/s);
    const [table] = await selectRows<{ present: boolean }>(
      database.db,
      sql`SELECT to_regclass('public.users') IS NOT NULL AS present`,
    );
    expect(table?.present).toBe(false);
  });

  it('RUN_MIGRATIONS=false refuses a schema that is behind, and starts on a current one', async () => {
    const database = await emptyDatabase();
    await migrateDatabase(database);
    const app = await buildApp(testConfig({ RUN_MIGRATIONS: 'false' }), {
      database,
      logger: silentLogger,
    });
    await app.close();
    await database.db.execute(
      sql`DELETE FROM drizzle.__drizzle_migrations WHERE created_at = (SELECT max(created_at) FROM drizzle.__drizzle_migrations)`,
    );
    await expect(
      buildApp(testConfig({ RUN_MIGRATIONS: 'false' }), { database, logger: silentLogger }),
    ).rejects.toThrow(/behind this code: 1 migration/);
  });

  it('several processes migrating one PostgreSQL database at once apply each migration once', async (context) => {
    if (needsPostgres('needs several connections migrating one database concurrently'))
      return context.skip();
    const url = await emptyPostgresDatabase(testDatabaseUrl ?? '');
    const database = await openDatabase({ kind: 'postgres', url, poolSize: 2 }, silentLogger);
    cleanups.push(() => database.close());
    const others = await Promise.all(
      [1, 2, 3].map(() => openDatabase({ kind: 'postgres', url, poolSize: 2 }, silentLogger)),
    );
    try {
      await Promise.all(others.map((handle) => migrateDatabase(handle)));
    } finally {
      await Promise.all(others.map((handle) => handle.close()));
    }
    expect(await appliedCount(database)).toBe(expectedMigrations);
  });
});

async function describeSchema(handle: DatabaseHandle) {
  const columns = await selectRows(
    handle.db,
    sql`
    SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity
    FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2`,
  );
  const constraints = await selectRows(
    handle.db,
    sql`
    SELECT conrelid::regclass::text AS table_name, conname, contype, pg_get_constraintdef(oid) AS definition
    FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND contype IN ('c', 'f', 'p', 'u')
    ORDER BY 1, 2`,
  );
  const indexes = await selectRows(
    handle.db,
    sql`
    SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1`,
  );
  const triggers = await selectRows(
    handle.db,
    sql`
    SELECT tgrelid::regclass::text AS table_name, tgname, tgtype FROM pg_trigger
    WHERE NOT tgisinternal ORDER BY 1, 2`,
  );
  return { columns, constraints, indexes, triggers };
}

describe('one schema on both databases', () => {
  it('PGlite and PostgreSQL 15 end up with identical tables, constraints, indexes and triggers', async (context) => {
    if (needsPostgres('compares the PGlite schema with a PostgreSQL one')) return context.skip();
    const embedded = await openTestDatabase.embedded();
    cleanups.push(() => embedded.close());
    const postgres = await openTestDatabase();
    cleanups.push(() => postgres.close());
    const [a, b] = await Promise.all([describeSchema(embedded), describeSchema(postgres)]);
    expect(a.columns.length).toBeGreaterThan(50);
    expect(a).toEqual(b);
  });

  it('the nine tables of the spec exist', async () => {
    const handle = await openTestDatabase();
    cleanups.push(() => handle.close());
    const tables = await selectRows<{ table_name: string }>(
      handle.db,
      sql`
      SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
    );
    expect(tables.map((t) => t.table_name)).toEqual(
      expect.arrayContaining([
        'users',
        'ledger_entries',
        'model_catalog',
        'model_prices',
        'generation_requests',
        'generation_references',
        'generation_results',
        'generation_jobs',
        'trial_uses',
      ]),
    );
    // And they were read where the suite runs: PostgreSQL when TEST_DATABASE_URL is set.
    expect(handle.kind).toBe(onPostgres ? 'postgres' : 'embedded');
  });
});
