import type { SQL } from 'drizzle-orm';
import type { Queryable } from './client.ts';

/**
 * Runs raw SQL and returns its rows. Both drivers answer with `{ rows }`, but the shared Drizzle
 * type cannot say so; this is the one place that bridges it.
 */
export async function selectRows<Row>(db: Queryable, query: SQL): Promise<Row[]> {
  const result = (await db.execute(query)) as unknown as { rows: Row[] };
  return result.rows;
}
