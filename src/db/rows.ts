import type { SQL } from 'drizzle-orm';
import type { Database, Queryable } from './client.ts';

/**
 * Runs raw SQL and returns its rows. Both drivers answer with `{ rows }`, but the shared Drizzle
 * type cannot say so; this is the one place that bridges it.
 */
export async function selectRows<Row>(db: Queryable, query: SQL): Promise<Row[]> {
  const result = (await db.execute(query)) as unknown as { rows: Row[] };
  return result.rows;
}

/**
 * Hot-path statements: a fixed SQL text and its parameters straight to the driver (pg's Pool or
 * PGlite, both `query(text, params) → { rows }`), skipping Drizzle's query building, which cost
 * about 50 µs a request in the HTTP benchmark. Outside transactions only.
 */
export async function queryText<Row>(
  db: Database,
  text: string,
  params: readonly unknown[],
): Promise<Row[]> {
  const client = (
    db as unknown as {
      $client: { query(text: string, params: unknown[]): Promise<{ rows: Row[] }> };
    }
  ).$client;
  return (await client.query(text, [...params])).rows;
}

/**
 * A timestamptz column as an ISO-8601 UTC string. Raw queries get timestamps as Date from pg but as
 * text from PGlite; formatting in SQL gives both drivers the same answer.
 */
export function isoTimeText(column: string): string {
  return `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
}
