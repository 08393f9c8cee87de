import { sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
import type { Queryable } from '../db/client.ts';
import { selectRows } from '../db/rows.ts';

/**
 * The business at a glance (GET /admin/stats): users, generations, money and referrals over a range
 * of whole UTC days, and a per-day series for charts. Everything is aggregated in SQL, a handful of
 * statements each reading the range through an index on its time column (migration 0017); credits
 * are integers, only rates and percentiles are fractions.
 */

export const MAX_STATS_DAYS = 366;
const DEFAULT_STATS_DAYS = 30;
const DAY_MS = 86_400_000;

export interface StatsRange {
  /** The first day (UTC), inclusive. */
  from: string;
  /** The last day (UTC), inclusive. */
  to: string;
  days: number;
}

const datePattern = /^\d{4}-\d{2}-\d{2}$/;

function parseDay(value: string, name: string): number {
  const time = datePattern.test(value) ? Date.parse(`${value}T00:00:00.000Z`) : Number.NaN;
  if (Number.isNaN(time) || new Date(time).toISOString().slice(0, 10) !== value) {
    throw new AppError('validation_failed', `querystring.${name} must be a date (YYYY-MM-DD)`);
  }
  return time;
}

const dayText = (time: number) => new Date(time).toISOString().slice(0, 10);

/** The range the query asks for: by default the last 30 days up to today (UTC), at most 366. */
export function statsRange(query: { from?: string; to?: string }, now = Date.now()): StatsRange {
  const to = query.to === undefined ? Math.floor(now / DAY_MS) * DAY_MS : parseDay(query.to, 'to');
  const from =
    query.from === undefined
      ? to - (DEFAULT_STATS_DAYS - 1) * DAY_MS
      : parseDay(query.from, 'from');
  if (from > to) throw new AppError('validation_failed', 'from must not be after to');
  const days = (to - from) / DAY_MS + 1;
  if (days > MAX_STATS_DAYS) {
    throw new AppError(
      'validation_failed',
      `the range covers ${days} days; at most ${MAX_STATS_DAYS}`,
    );
  }
  return { from: dayText(from), to: dayText(to), days };
}

export interface AdminStats {
  range: StatsRange;
  users: { total: number; new: number; active: number };
  generations: {
    total: number;
    by_status: Record<string, number>;
    by_model: { model: string; total: number; succeeded: number; failed: number }[];
    success_rate: number | null;
    seconds_p50: number | null;
    seconds_p95: number | null;
  };
  money: {
    stars_received: number;
    payments: number;
    credits_sold: number;
    credits_spent: number;
    credits_refunded: number;
    credits_given_free: number;
    free_generations_used: number;
  };
  referrals: { new_referred_users: number; bonuses_paid: number; bonus_credits: number };
  daily: {
    date: string;
    new_users: number;
    generations_succeeded: number;
    generations_failed: number;
    stars_received: number;
    credits_spent: number;
  }[];
}

const n = (value: unknown): number => Number(value ?? 0);
const fraction = (value: unknown): number | null =>
  value === null || value === undefined ? null : Number(value);

/** The numbers of the range, read in seven statements run concurrently. */
export async function adminStats(db: Queryable, range: StatsRange): Promise<AdminStats> {
  const start = `${range.from}T00:00:00.000Z`;
  const end = new Date(Date.parse(start) + range.days * DAY_MS).toISOString();
  const inRange = (column: string) =>
    sql`${sql.raw(column)} >= ${start}::timestamptz AND ${sql.raw(column)} < ${end}::timestamptz`;

  const usersQuery = selectRows<Record<string, unknown>>(
    db,
    sql`SELECT count(*)::int AS total,
               count(*) FILTER (WHERE ${inRange('created_at')})::int AS new,
               count(*) FILTER (WHERE ${inRange('last_seen_at')})::int AS active,
               count(*) FILTER (WHERE ${inRange('created_at')} AND referred_by IS NOT NULL)::int AS referred
        FROM users`,
  );

  const generationGroupsQuery = selectRows<{
    model: string;
    status: string;
    count: number;
  }>(
    db,
    sql`SELECT m.key AS model, g.status, count(*)::int AS count
        FROM generation_requests g JOIN model_catalog m ON m.id = g.model_id
        WHERE ${inRange('g.created_at')}
        GROUP BY m.key, g.status
        ORDER BY m.key, g.status`,
  );

  const durationsQuery = selectRows<Record<string, unknown>>(
    db,
    sql`SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at)) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at)) AS p95
        FROM generation_requests
        WHERE ${inRange('created_at')} AND status = 'succeeded' AND completed_at IS NOT NULL`,
  );

  const ledgerQuery = selectRows<Record<string, unknown>>(
    db,
    sql`SELECT
          coalesce(sum(amount) FILTER (WHERE kind = 'topup'), 0)::bigint AS sold,
          coalesce(-sum(amount) FILTER (WHERE kind IN ('generation_charge', 'generation_refund')), 0)::bigint AS spent,
          coalesce(-sum(amount) FILTER (WHERE kind IN ('payment_refund', 'referral_clawback')), 0)::bigint AS refunded,
          coalesce(sum(amount) FILTER (WHERE kind IN ('bonus', 'referral_bonus')
                                          OR (kind = 'admin_adjustment' AND amount > 0)), 0)::bigint AS free,
          count(*) FILTER (WHERE kind = 'referral_bonus')::int AS referral_bonuses,
          coalesce(sum(amount) FILTER (WHERE kind = 'referral_bonus'), 0)::bigint AS referral_credits
        FROM ledger_entries
        WHERE ${inRange('created_at')}`,
  );

  const paymentsQuery = selectRows<Record<string, unknown>>(
    db,
    sql`SELECT coalesce(sum(total_amount), 0)::bigint AS stars, count(*)::int AS count
        FROM payments
        WHERE ${inRange('created_at')} AND status = 'paid'`,
  );

  const trialsQuery = selectRows<Record<string, unknown>>(
    db,
    sql`SELECT count(*)::int AS used FROM trial_uses
        WHERE ${inRange('used_at')} AND returned_at IS NULL`,
  );

  const dailyQuery = selectRows<Record<string, unknown>>(
    db,
    sql`WITH days AS (
          SELECT generate_series(${range.from}::date, ${range.to}::date, interval '1 day')::date AS day
        ),
        u AS (
          SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n
          FROM users WHERE ${inRange('created_at')} GROUP BY 1
        ),
        g AS (
          SELECT (created_at AT TIME ZONE 'UTC')::date AS day,
                 count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                 count(*) FILTER (WHERE status = 'failed') AS failed
          FROM generation_requests WHERE ${inRange('created_at')} GROUP BY 1
        ),
        p AS (
          SELECT (created_at AT TIME ZONE 'UTC')::date AS day, sum(total_amount) AS stars
          FROM payments WHERE ${inRange('created_at')} AND status = 'paid' GROUP BY 1
        ),
        l AS (
          SELECT (created_at AT TIME ZONE 'UTC')::date AS day, -sum(amount) AS spent
          FROM ledger_entries
          WHERE ${inRange('created_at')} AND kind IN ('generation_charge', 'generation_refund')
          GROUP BY 1
        )
        SELECT to_char(days.day, 'YYYY-MM-DD') AS date,
               coalesce(u.n, 0)::int AS new_users,
               coalesce(g.succeeded, 0)::int AS generations_succeeded,
               coalesce(g.failed, 0)::int AS generations_failed,
               coalesce(p.stars, 0)::bigint AS stars_received,
               coalesce(l.spent, 0)::bigint AS credits_spent
        FROM days
        LEFT JOIN u ON u.day = days.day
        LEFT JOIN g ON g.day = days.day
        LEFT JOIN p ON p.day = days.day
        LEFT JOIN l ON l.day = days.day
        ORDER BY days.day`,
  );

  // Independent reads: on PostgreSQL each takes a connection of the pool and they run at once, so
  // the answer waits for the slowest statement, not for their sum.
  const [[users], generationGroups, [durations], [ledger], [payments], [trials], daily] =
    await Promise.all([
      usersQuery,
      generationGroupsQuery,
      durationsQuery,
      ledgerQuery,
      paymentsQuery,
      trialsQuery,
      dailyQuery,
    ]);

  const byStatus: Record<string, number> = {
    queued: 0,
    running: 0,
    succeeded: 0,
    failed: 0,
    cancelled: 0,
  };
  const byModel = new Map<
    string,
    { model: string; total: number; succeeded: number; failed: number }
  >();
  for (const row of generationGroups) {
    const count = n(row.count);
    byStatus[row.status] = (byStatus[row.status] ?? 0) + count;
    const model = byModel.get(row.model) ?? { model: row.model, total: 0, succeeded: 0, failed: 0 };
    model.total += count;
    if (row.status === 'succeeded') model.succeeded += count;
    if (row.status === 'failed') model.failed += count;
    byModel.set(row.model, model);
  }
  const settled = (byStatus.succeeded ?? 0) + (byStatus.failed ?? 0);

  return {
    range,
    users: { total: n(users?.total), new: n(users?.new), active: n(users?.active) },
    generations: {
      total: Object.values(byStatus).reduce((a, b) => a + b, 0),
      by_status: byStatus,
      by_model: [...byModel.values()],
      success_rate: settled === 0 ? null : (byStatus.succeeded ?? 0) / settled,
      seconds_p50: fraction(durations?.p50),
      seconds_p95: fraction(durations?.p95),
    },
    money: {
      stars_received: n(payments?.stars),
      payments: n(payments?.count),
      credits_sold: n(ledger?.sold),
      credits_spent: n(ledger?.spent),
      credits_refunded: n(ledger?.refunded),
      credits_given_free: n(ledger?.free),
      free_generations_used: n(trials?.used),
    },
    referrals: {
      new_referred_users: n(users?.referred),
      bonuses_paid: n(ledger?.referral_bonuses),
      bonus_credits: n(ledger?.referral_credits),
    },
    daily: daily.map((row) => ({
      date: String(row.date),
      new_users: n(row.new_users),
      generations_succeeded: n(row.generations_succeeded),
      generations_failed: n(row.generations_failed),
      stars_received: n(row.stars_received),
      credits_spent: n(row.credits_spent),
    })),
  };
}
