import { sql } from 'drizzle-orm';
import type { Database } from '../db/client.ts';
import { selectRows } from '../db/rows.ts';

/**
 * What GET /metrics reads from the database at scrape time, right across every process: the
 * queue by kind and status (and the oldest waiting job's age), generations by outcome (failures by
 * provider and code), and the ledger's volume by kind. Three statements.
 */
export async function readMetricsSnapshot(db: Database) {
  const [queue, outcomes, ledger] = await Promise.all([
    selectRows<{ kind: string; status: string; count: number; oldest: number | string | null }>(
      db,
      sql`SELECT kind, status, count(*)::int AS count,
                 extract(epoch FROM now() - min(created_at)
                   FILTER (WHERE status = 'pending' AND run_at <= now()))::float8 AS oldest
          FROM generation_jobs WHERE status IN ('pending', 'running')
          GROUP BY kind, status`,
    ),
    selectRows<{ status: string; provider: string | null; code: string | null; count: number }>(
      db,
      sql`SELECT g.status,
                 CASE WHEN g.status = 'failed' THEN j.provider END AS provider,
                 CASE WHEN g.status = 'failed' THEN coalesce(g.error_code, 'unknown') END AS code,
                 count(*)::int AS count
          -- The provider that had the job (a model may fail over from one to another).
          FROM generation_requests g
          LEFT JOIN generation_jobs j ON j.request_id = g.id AND j.kind = 'generate'
          GROUP BY 1, 2, 3`,
    ),
    selectRows<{ kind: string; count: number; credits: number | string }>(
      db,
      sql`SELECT kind, count(*)::int AS count, sum(amount)::bigint AS credits
          FROM ledger_entries GROUP BY kind`,
    ),
  ]);
  return { queue, outcomes, ledger };
}
