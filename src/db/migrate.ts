import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import { drizzle as drizzleNodePg } from 'drizzle-orm/node-postgres';
import { migrate as migrateNodePg } from 'drizzle-orm/node-postgres/migrator';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import type { DatabaseHandle } from './client.ts';
import { selectRows } from './rows.ts';

export const migrationsFolder = fileURLToPath(new URL('../../drizzle', import.meta.url));

/** Any fixed number: every process that migrates takes this PostgreSQL advisory lock first. */
const MIGRATION_LOCK_KEY = 7_305_112_001;

/**
 * Applies pending migrations. On PostgreSQL several API processes may start at once: they queue
 * on an advisory lock and all but the first find nothing left to do.
 */
export async function migrateDatabase(handle: DatabaseHandle): Promise<void> {
  if (handle.pglite) {
    await migratePglite(drizzlePglite({ client: handle.pglite }), { migrationsFolder });
    return;
  }
  if (!handle.pool) throw new Error('database handle has neither a pool nor PGlite');
  const client = await handle.pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await migrateNodePg(drizzleNodePg({ client }), { migrationsFolder });
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  } finally {
    client.release();
  }
}

export class SchemaNotReadyError extends Error {
  constructor(detail: string) {
    super(
      `${detail} RUN_MIGRATIONS=false, so this process does not change the schema: run ` +
        '`npm run db:migrate` (or start one process with RUN_MIGRATIONS=true) first.',
    );
    this.name = 'SchemaNotReadyError';
  }
}

/** With RUN_MIGRATIONS=false: refuse to serve on a schema older than this code expects. */
export async function assertSchemaCurrent(handle: DatabaseHandle): Promise<void> {
  const expected = readMigrationFiles({ migrationsFolder });
  const latest = expected.at(-1);
  if (!latest) return;
  const [registry] = await selectRows<{ present: boolean }>(
    handle.db,
    sql`SELECT to_regclass('drizzle.__drizzle_migrations') IS NOT NULL AS present`,
  );
  if (!registry?.present) {
    throw new SchemaNotReadyError('The database has no schema yet (no migrations applied).');
  }
  const [applied] = await selectRows<{ last: string | null }>(
    handle.db,
    sql`SELECT max(created_at)::text AS last FROM drizzle.__drizzle_migrations`,
  );
  const lastApplied = Number(applied?.last ?? 0);
  if (lastApplied < latest.folderMillis) {
    const missing = expected.filter((m) => m.folderMillis > lastApplied).length;
    throw new SchemaNotReadyError(
      `The database schema is behind this code: ${missing} migration(s) not applied.`,
    );
  }
}
