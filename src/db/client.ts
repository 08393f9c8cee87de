import { PGlite } from '@electric-sql/pglite';
import type { ExtractTablesWithRelations } from 'drizzle-orm';
import { sql } from 'drizzle-orm';
import { drizzle as drizzleNodePg } from 'drizzle-orm/node-postgres';
import type { PgDatabase, PgQueryResultHKT, PgTransaction } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import pg from 'pg';
import type { DatabaseConfig } from '../core/config.ts';
import type { Logger } from '../core/logger.ts';
import { type DataDirLock, lockDataDir } from './data-dir-lock.ts';
import { pgliteOptions } from './pglite-options.ts';
import * as schema from './schema/index.ts';

export type Schema = typeof schema;
/** The Drizzle database, whichever driver is under it; the same queries run on both. */
export type Database = PgDatabase<PgQueryResultHKT, Schema>;
export type Transaction = PgTransaction<
  PgQueryResultHKT,
  Schema,
  ExtractTablesWithRelations<Schema>
>;
/** Either the database or an open transaction: what a service verb runs its queries on. */
export type Queryable = Database | Transaction;

export type DatabaseKind = 'embedded' | 'postgres';

export interface DatabaseHandle {
  readonly kind: DatabaseKind;
  readonly db: Database;
  /** The PostgreSQL pool (server mode), for what Drizzle does not do: advisory locks, LISTEN. */
  readonly pool: pg.Pool | null;
  /** The PGlite instance (embedded mode). */
  readonly pglite: PGlite | null;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export async function openDatabase(
  config: DatabaseConfig,
  logger: Logger,
): Promise<DatabaseHandle> {
  return config.kind === 'postgres'
    ? openPostgres(config.url, config.poolSize, logger)
    : openEmbedded(config.dataDir, logger);
}

async function openPostgres(
  url: string,
  poolSize: number,
  logger: Logger,
): Promise<DatabaseHandle> {
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    // Generous: under a burst, waiting for a connection beats failing the request.
    connectionTimeoutMillis: 15_000,
    idleTimeoutMillis: 30_000,
    application_name: 'imagegen-backend',
    // A connection whose server vanished without a word (a failover, a cut network) is found out
    // by TCP keepalive instead of waiting on it forever.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  });
  // A connection the server cuts (a restart, a failover, pg_terminate_backend) makes its client
  // emit 'error', and an 'error' nobody listens to crashes the process. The pool listens only while
  // a client is idle (it then drops it and emits 'error' here); a client that is checked out (a
  // transaction between two statements, the LISTEN connection) gets a listener of its own: its
  // next query fails instead, and the pool drops it when it is released. New connections replace
  // the dropped ones on demand.
  pool.on('error', (error) => logger.warn({ err: error }, 'idle PostgreSQL connection failed'));
  pool.on('connect', (client) => {
    client.on('error', (error) =>
      logger.debug({ err: error }, 'PostgreSQL connection failed while checked out'),
    );
  });
  const db = drizzleNodePg({ client: pool, schema, casing: 'snake_case' }) as unknown as Database;
  let closed = false;
  return {
    kind: 'postgres',
    db,
    pool,
    pglite: null,
    ping: async () => {
      await pool.query('SELECT 1');
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}

async function openEmbedded(dataDir: string | null, logger: Logger): Promise<DatabaseHandle> {
  const lock: DataDirLock | null = dataDir === null ? null : lockDataDir(dataDir);
  try {
    const pgDataDir = dataDir === null ? undefined : `${dataDir}/pglite`;
    const pglite = new PGlite(pgDataDir, pgliteOptions(pgDataDir));
    await pglite.waitReady;
    logger.debug({ dataDir: dataDir ?? 'memory' }, 'embedded database ready');
    return embeddedHandle(pglite, lock);
  } catch (error) {
    lock?.release();
    throw error;
  }
}

/** Wraps an open PGlite; tests use it to share one migrated in-memory database. */
export function embeddedHandle(pglite: PGlite, lock: DataDirLock | null = null): DatabaseHandle {
  const db = drizzlePglite({ client: pglite, schema, casing: 'snake_case' }) as unknown as Database;
  let closed = false;
  return {
    kind: 'embedded',
    db,
    pool: null,
    pglite,
    ping: async () => {
      await db.execute(sql`SELECT 1`);
    },
    close: async () => {
      if (closed) return;
      closed = true;
      try {
        if (!pglite.closed) await pglite.close();
      } finally {
        lock?.release();
      }
    },
  };
}
