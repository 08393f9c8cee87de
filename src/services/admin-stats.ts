import { type SQL, sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
import type { Queryable } from '../db/client.ts';
import { selectRows } from '../db/rows.ts';
import { withTransaction } from '../db/transaction.ts';

/**
 * The business at a glance (GET /admin/stats): users, generations, money and referrals over a range
 * of whole UTC days, and a per-day series for charts; credits are integers, only rates and
 * percentiles are fractions. Read from rollups (migration 0030), never by reading every row of the
 * range:
 *
 * - Users come from `stats_user_days`, which triggers on `users` keep per UTC day in the statement
 *   that writes the user: sign-ups and referred sign-ups by `created_at`, and users by the day of
 *   their `last_seen_at` (a user moves to today at its first sync of the day). New, referred and
 *   active users of a range are sums over its days, the total a sum over every day: exact, live.
 * - Everything else comes from `stats_days`, one row per closed UTC day, written once in one
 *   statement (INSERT … ON CONFLICT DO NOTHING) when the day ended STATS_DAY_CLOSED_AFTER_MINUTES
 *   ago and none of its generations is still queued or running, by the worker's housekeeping
 *   (rollUpStatsDays, every minute) or by the first request that needs the day. A day without a
 *   row (today, the first minutes after midnight, a day with a generation still running) is read
 *   from `stats_hours` (the same generations and ledger sums per closed, settled hour, written the
 *   same way) and the rest live by the same SQL: its hours without a row, its payments and free
 *   generations (few a day).
 *
 * Which time column keys each figure, so that a row stays true once written:
 * - generations by status and model, and their durations: the generation's `created_at`
 *   (accepted); written only once the day's generations are all settled, and a settled status
 *   never changes (an operator's refund keeps `succeeded`);
 * - ledger sums (credits sold, spent, refunded, given free; referral bonuses): the entry's
 *   `created_at`; entries are append-only, so a refund booked today for an old generation counts
 *   today, as it always did;
 * - Stars and payments: the payment's `created_at`, counted as "still paid". The row keeps every
 *   payment of the day whatever happens to it; those refunded since are subtracted at read time
 *   (partial index `payments_refunded_created_idx`: refunds are few);
 * - free generations: the trial use's `used_at`, counted as "not given back". The row keeps those
 *   not given back on that same day; those given back on a later day (an operator's refund, a
 *   failure after midnight) are subtracted at read time (partial index
 *   `trial_uses_returned_later_idx`).
 *
 * The percentiles of time to result are read from a histogram of whole seconds: percentile_cont
 * over the durations truncated to the second, so each is at most 1 s below the exact one.
 */

export const MAX_STATS_DAYS = 366;
const DEFAULT_STATS_DAYS = 30;
const DAY_MS = 86_400_000;
/**
 * A day is rolled up this long after it ends: every write stamped with a stats time column is one
 * short transaction whose `now()` is its start, so by then each one that began before midnight has
 * committed (or failed).
 */
const STATS_DAY_CLOSED_AFTER_MINUTES = 15;
/** The most days one rollup statement writes (a request or a housekeeping round). */
const ROLLUP_BATCH_DAYS = 31;
/** Any fixed number: the advisory lock that lets one process at a time write stats_days. */
const ROLLUP_LOCK_KEY = 7_305_112_028;

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

/**
 * Figures of one period (a day or an hour) of a day, or some of them: a stats_days row (all), a
 * stats_hours row (generations and ledger), or a part computed live. What a piece lacks is 0.
 */
interface Piece {
  /** The UTC day the period belongs to. */
  day: string;
  /** [model_id, status, count] */
  generations?: [number | string, string, number][];
  /** whole seconds → succeeded generations */
  durations?: Record<string, number>;
  payments?: number | string;
  payment_stars?: number | string;
  credits_sold?: number | string;
  credits_spent?: number | string;
  credits_refunded?: number | string;
  credits_given_free?: number | string;
  referral_bonuses?: number | string;
  referral_credits?: number | string;
  trial_uses?: number | string;
}

const LEDGER_COLUMNS = `credits_sold, credits_spent, credits_refunded, credits_given_free,
  referral_bonuses, referral_credits`;
const DAY_COLUMNS = sql.raw(`to_char(day, 'YYYY-MM-DD') AS day, generations, durations,
  payments, payment_stars, ${LEDGER_COLUMNS}, trial_uses`);
const HOUR_COLUMNS = sql.raw(`to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24') AS hour,
  generations, durations, ${LEDGER_COLUMNS}`);

/**
 * The figures of a period `d` (columns day, start, finish), in four parts (each a subquery for
 * CROSS JOIN LATERAL), each reading the period's rows through the index on its table's time
 * column.
 */
const within = (column: string) =>
  sql`${sql.raw(column)} >= d.start AND ${sql.raw(column)} < d.finish`;
const figureParts = {
  generations: sql`(
      WITH c AS (
        SELECT model_id, status,
               CASE WHEN status = 'succeeded' AND completed_at IS NOT NULL
                    THEN floor(extract(epoch FROM completed_at - created_at))::int END AS seconds,
               count(*)::int AS n
        FROM generation_requests
        WHERE ${within('created_at')}
        GROUP BY 1, 2, 3
      )
      SELECT coalesce((SELECT jsonb_agg(jsonb_build_array(m.model_id, m.status, m.n)
                                        ORDER BY m.model_id, m.status)
                       FROM (SELECT model_id, status, sum(n)::int AS n FROM c GROUP BY 1, 2) m),
                      '[]'::jsonb) AS generations,
             coalesce((SELECT jsonb_object_agg(s.seconds::text, s.n)
                       FROM (SELECT seconds, sum(n)::int AS n FROM c
                             WHERE seconds IS NOT NULL GROUP BY 1) s),
                      '{}'::jsonb) AS durations
    ) g`,
  ledger: sql`(
      SELECT
        coalesce(sum(amount) FILTER (WHERE kind = 'topup'), 0)::bigint AS credits_sold,
        coalesce(-sum(amount) FILTER (WHERE kind IN ('generation_charge', 'generation_refund')), 0)::bigint AS credits_spent,
        coalesce(-sum(amount) FILTER (WHERE kind IN ('payment_refund', 'referral_clawback')), 0)::bigint AS credits_refunded,
        coalesce(sum(amount) FILTER (WHERE kind IN ('bonus', 'referral_bonus')
                                        OR (kind = 'admin_adjustment' AND amount > 0)), 0)::bigint AS credits_given_free,
        count(*) FILTER (WHERE kind = 'referral_bonus')::int AS referral_bonuses,
        coalesce(sum(amount) FILTER (WHERE kind = 'referral_bonus'), 0)::bigint AS referral_credits
      FROM ledger_entries WHERE ${within('created_at')}
    ) l`,
  payments: sql`(
      SELECT count(*)::int AS payments, coalesce(sum(total_amount), 0)::bigint AS payment_stars
      FROM payments WHERE ${within('created_at')}
    ) p`,
  // Whole days only: "not given back that same day".
  trials: sql`(
      SELECT count(*) FILTER (WHERE returned_at IS NULL
                                 OR (returned_at AT TIME ZONE 'UTC')::date > d.day)::int AS trial_uses
      FROM trial_uses WHERE ${within('used_at')}
    ) t`,
};

/** Days as periods: a relation d(day, start, finish) from a relation x(day). */
const asDays = (days: SQL) => sql`(SELECT x.day, x.day::timestamp AT TIME ZONE 'UTC' AS start,
    (x.day + 1)::timestamp AT TIME ZONE 'UTC' AS finish FROM (${days}) x) d`;
/** Hours as periods: a relation d(day, start, finish) from a relation x(hour timestamptz). */
const asHours = (hours: SQL) => sql`(SELECT (x.hour AT TIME ZONE 'UTC')::date AS day,
    x.hour AS start, x.hour + interval '1 hour' AS finish FROM (${hours}) x) d`;

/** No generation accepted in the period (d) is still queued or running. */
const settledPeriod = sql`NOT EXISTS (
    SELECT 1 FROM generation_requests g
    WHERE g.status IN ('queued', 'running') AND g.created_at >= d.start AND g.created_at < d.finish)`;
const closedPeriod = sql`d.finish + make_interval(mins => ${STATS_DAY_CLOSED_AFTER_MINUTES}) <= now()`;

/** Runs `write` under the rollup's advisory lock; without `wait`, not at all while it is taken. */
async function underRollupLock<T>(
  db: Queryable,
  wait: boolean,
  write: (tx: Queryable) => Promise<T[]>,
): Promise<T[]> {
  return withTransaction(db, async (tx) => {
    if (wait) {
      await tx.execute(sql`SELECT pg_advisory_xact_lock(${ROLLUP_LOCK_KEY}::bigint)`);
    } else {
      const [lock] = await selectRows<{ locked: boolean }>(
        tx,
        sql`SELECT pg_try_advisory_xact_lock(${ROLLUP_LOCK_KEY}::bigint) AS locked`,
      );
      if (!lock?.locked) return [];
    }
    // The planner guesses 1,000 rows for generate_series and 25,000 rows a period, so these
    // statements cost enough for JIT compilation: about 0.5 s each, even with nothing to write
    // (the workers' round every minute took 1.1 s); their real work is index range scans.
    await tx.execute(sql`SET LOCAL jit = off`);
    return write(tx);
  });
}

/**
 * Writes the stats_days rows of the closed, settled days between `from` and `to` that have none,
 * newest first, at most `limit`, in one statement under the advisory lock (so two processes do not
 * compute the same days; ON CONFLICT DO NOTHING keeps a day written once even without it).
 * Answers the rows written.
 */
function writeStatsDays(
  db: Queryable,
  from: string,
  to: string,
  options: { wait: boolean; limit: number },
): Promise<Piece[]> {
  const days = sql`SELECT s.t::date AS day
    FROM generate_series(${from}::date, ${to}::date, interval '1 day') AS s(t)`;
  return underRollupLock(db, options.wait, (tx) =>
    selectRows<Piece>(
      tx,
      sql`INSERT INTO stats_days (day, generations, durations, payments, payment_stars,
                                  ${sql.raw(LEDGER_COLUMNS)}, trial_uses)
          SELECT d.day, g.generations, g.durations, p.payments, p.payment_stars,
                 l.credits_sold, l.credits_spent, l.credits_refunded, l.credits_given_free,
                 l.referral_bonuses, l.referral_credits, t.trial_uses
          FROM (SELECT d.* FROM ${asDays(days)}
                WHERE NOT EXISTS (SELECT 1 FROM stats_days r WHERE r.day = d.day)
                  AND ${closedPeriod} AND ${settledPeriod}
                ORDER BY d.day DESC LIMIT ${options.limit}) d
          CROSS JOIN LATERAL ${figureParts.generations}
          CROSS JOIN LATERAL ${figureParts.payments}
          CROSS JOIN LATERAL ${figureParts.ledger}
          CROSS JOIN LATERAL ${figureParts.trials}
          ON CONFLICT (day) DO NOTHING
          RETURNING ${DAY_COLUMNS}`,
    ),
  );
}

/**
 * Writes the stats_hours rows of the closed, settled hours of `day` that have none, unless the day
 * has its stats_days row, in one statement under the advisory lock. Answers the rows written.
 */
function writeStatsHours(db: Queryable, day: string, wait: boolean): Promise<HourRow[]> {
  const hours = sql`SELECT h AS hour FROM generate_series(${day}::date::timestamp AT TIME ZONE 'UTC',
      (${day}::date::timestamp + interval '23 hours') AT TIME ZONE 'UTC', interval '1 hour') AS h`;
  return underRollupLock(db, wait, (tx) =>
    selectRows<HourRow>(
      tx,
      sql`INSERT INTO stats_hours (hour, generations, durations, ${sql.raw(LEDGER_COLUMNS)})
          SELECT d.start, g.generations, g.durations, l.credits_sold, l.credits_spent,
                 l.credits_refunded, l.credits_given_free, l.referral_bonuses, l.referral_credits
          FROM (SELECT d.* FROM ${asHours(hours)}
                WHERE NOT EXISTS (SELECT 1 FROM stats_hours r WHERE r.hour = d.start)
                  AND NOT EXISTS (SELECT 1 FROM stats_days r WHERE r.day = d.day)
                  AND ${closedPeriod} AND ${settledPeriod}) d
          CROSS JOIN LATERAL ${figureParts.generations}
          CROSS JOIN LATERAL ${figureParts.ledger}
          ON CONFLICT (hour) DO NOTHING
          RETURNING ${HOUR_COLUMNS}`,
    ),
  );
}

type HourRow = Omit<Piece, 'day'> & { hour: string };

/**
 * The worker's housekeeping: rolls up the closed days of the longest range a request can ask for
 * that have no row yet, newest first, up to ROLLUP_BATCH_DAYS a round, then the closed hours of
 * today (and of yesterday while it has no row), and deletes the hours of days that have their
 * row; skipped while another process writes. Answers how many days it wrote.
 */
export async function rollUpStatsDays(db: Queryable, now = Date.now()): Promise<number> {
  const today = Math.floor(now / DAY_MS) * DAY_MS;
  const written = await writeStatsDays(
    db,
    dayText(today - MAX_STATS_DAYS * DAY_MS),
    dayText(today - DAY_MS),
    { wait: false, limit: ROLLUP_BATCH_DAYS },
  );
  for (const day of [today - DAY_MS, today]) await writeStatsHours(db, dayText(day), false);
  await db.execute(
    sql`DELETE FROM stats_hours h
        WHERE EXISTS (SELECT 1 FROM stats_days r WHERE r.day = (h.hour AT TIME ZONE 'UTC')::date)`,
  );
  return written.length;
}

/**
 * Percentile as PostgreSQL's percentile_cont computes it over the multiset the histogram holds
 * (value → how many): linear interpolation between the two values around p × (N − 1).
 */
export function histogramPercentile(histogram: Map<number, number>, p: number): number | null {
  const values = [...histogram.entries()]
    .filter(([, count]) => count > 0)
    .sort((a, b) => a[0] - b[0]);
  const total = values.reduce((sum, [, count]) => sum + count, 0);
  if (total === 0) return null;
  const position = p * (total - 1);
  const lowerRank = Math.floor(position);
  const upperRank = Math.ceil(position);
  let seen = 0;
  let lower: number | null = null;
  let upper: number | null = null;
  for (const [value, count] of values) {
    seen += count;
    if (lower === null && lowerRank < seen) lower = value;
    if (upper === null && upperRank < seen) {
      upper = value;
      break;
    }
  }
  if (lower === null || upper === null) return null;
  return lower === upper ? lower : lower + (position - lowerRank) * (upper - lower);
}

/**
 * The stats_days rows each process has read, by day: a row never changes once written, so only
 * days new to the process (or rewritten: another `created_at`) are read in full. A year's rows are
 * about 400 KB of JSON; reading them each time was most of a 366-day answer's time.
 */
const readDays = new WeakMap<object, Map<string, { written: string; piece: Piece }>>();
const READ_DAYS_KEPT = 5_000;

async function storedDays(
  db: Queryable,
  stored: readonly { day: string; written: string }[],
): Promise<Map<string, Piece>> {
  let known = readDays.get(db);
  if (!known || known.size > READ_DAYS_KEPT) {
    known = new Map();
    readDays.set(db, known);
  }
  const cache = known;
  const missing = stored.filter((row) => cache.get(row.day)?.written !== row.written);
  if (missing.length > 0) {
    const rows = await selectRows<Piece & { written: string }>(
      db,
      sql`SELECT ${DAY_COLUMNS}, created_at::text AS written FROM stats_days
          WHERE day = ANY(string_to_array(${missing.map((row) => row.day).join(',')}, ',')::date[])`,
    );
    for (const { written, ...piece } of rows) cache.set(piece.day, { written, piece });
  }
  const days = new Map<string, Piece>();
  for (const row of stored) {
    const entry = cache.get(row.day);
    if (entry) days.set(row.day, entry.piece);
  }
  return days;
}

/** The numbers of the range. */
export async function adminStats(db: Queryable, range: StatsRange): Promise<AdminStats> {
  const start = `${range.from}T00:00:00.000Z`;
  const end = new Date(Date.parse(start) + range.days * DAY_MS).toISOString();
  const inRange = (column: string) =>
    sql`${sql.raw(column)} >= ${start}::timestamptz AND ${sql.raw(column)} < ${end}::timestamptz`;
  const between = sql`day BETWEEN ${range.from}::date AND ${range.to}::date`;

  // Independent reads: on PostgreSQL each takes a connection of the pool and they run at once.
  const [stored, storedHours, [users], userDays, refunds, [returned], models] = await Promise.all([
    selectRows<{ day: string; written: string }>(
      db,
      sql`SELECT to_char(day, 'YYYY-MM-DD') AS day, created_at::text AS written
          FROM stats_days WHERE ${between}`,
    ),
    selectRows<HourRow>(db, sql`SELECT ${HOUR_COLUMNS} FROM stats_hours WHERE ${inRange('hour')}`),
    selectRows<Record<string, unknown>>(
      db,
      sql`SELECT coalesce(sum(signed_up), 0)::bigint AS total,
                 coalesce(sum(signed_up) FILTER (WHERE ${between}), 0)::bigint AS new,
                 coalesce(sum(last_seen) FILTER (WHERE ${between}), 0)::bigint AS active,
                 coalesce(sum(referred) FILTER (WHERE ${between}), 0)::bigint AS referred
          FROM stats_user_days`,
    ),
    selectRows<{ day: string; signed_up: unknown }>(
      db,
      sql`SELECT to_char(day, 'YYYY-MM-DD') AS day, sum(signed_up)::bigint AS signed_up
          FROM stats_user_days WHERE ${between} GROUP BY day`,
    ),
    // Payments of the range refunded since: the days' rows still count them.
    selectRows<{ day: string; payments: unknown; stars: unknown }>(
      db,
      sql`SELECT to_char((created_at AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD') AS day,
                 count(*)::int AS payments, sum(total_amount)::bigint AS stars
          FROM payments WHERE status = 'refunded' AND ${inRange('created_at')}
          GROUP BY 1`,
    ),
    // Free generations of the range given back on a later day than their use: the same.
    selectRows<{ count: unknown }>(
      db,
      sql`SELECT count(*)::int AS count FROM trial_uses
          WHERE (returned_at AT TIME ZONE 'UTC')::date > (used_at AT TIME ZONE 'UTC')::date
            AND ${inRange('used_at')}`,
    ),
    selectRows<{ id: number | string; key: string }>(
      db,
      sql`SELECT id, key FROM model_catalog ORDER BY key`,
    ),
  ]);

  const nowMs = Date.now();
  const closedBy = (finish: number) => finish + STATS_DAY_CLOSED_AFTER_MINUTES * 60_000 <= nowMs;
  const first = Date.parse(start);
  const rangeDays = Array.from({ length: range.days }, (_, i) => dayText(first + i * DAY_MS));
  const rolled = await storedDays(db, stored);
  const missingClosed = rangeDays.filter(
    (day) => !rolled.has(day) && closedBy(Date.parse(day) + DAY_MS),
  );
  if (missingClosed.length > 0) {
    // Days nobody rolled up yet (the worker may be behind): roll them up now, a batch at a time.
    for (;;) {
      const written = await writeStatsDays(
        db,
        missingClosed[0] as string,
        missingClosed.at(-1) as string,
        { wait: true, limit: ROLLUP_BATCH_DAYS },
      );
      for (const row of written) rolled.set(row.day, row);
      if (written.length < ROLLUP_BATCH_DAYS) break;
    }
  }

  // Days without a row (today, mostly): their closed hours from stats_hours, the rest live.
  const open = rangeDays.filter((day) => !rolled.has(day));
  const pieces: Piece[] = [...rolled.values()];
  if (open.length > 0) {
    const hours = new Map<string, HourRow>();
    for (const row of storedHours) {
      if (!rolled.has(row.hour.slice(0, 10))) hours.set(row.hour, row);
    }
    const hourText = (time: number) => new Date(time).toISOString().slice(0, 13);
    const hoursOf = (day: string) =>
      Array.from({ length: 24 }, (_, i) => Date.parse(day) + i * 3_600_000).filter(
        (hour) => hour <= nowMs,
      );
    for (const day of open) {
      if (hoursOf(day).some((hour) => !hours.has(hourText(hour)) && closedBy(hour + 3_600_000))) {
        for (const row of await writeStatsHours(db, day, true)) hours.set(row.hour, row);
      }
    }
    for (const row of hours.values()) pieces.push({ ...row, day: row.hour.slice(0, 10) });
    const liveHours = open.flatMap((day) =>
      hoursOf(day).filter((hour) => !hours.has(hourText(hour))),
    );
    pieces.push(...(await liveFigures(db, open, liveHours)));
  }

  const keyOf = new Map(
    models.map((model, index) => [String(model.id), { key: model.key, index }]),
  );
  const byStatus: Record<string, number> = {
    queued: 0,
    running: 0,
    succeeded: 0,
    failed: 0,
    cancelled: 0,
  };
  const byModel = new Map<
    string,
    { model: string; total: number; succeeded: number; failed: number; order: number }
  >();
  const durations = new Map<number, number>();
  const money = { payments: 0, stars: 0, sold: 0, spent: 0, refunded: 0, free: 0, trials: 0 };
  const referralsPaid = { bonuses: 0, credits: 0 };
  const daily = new Map<string, AdminStats['daily'][number]>(
    rangeDays.map((day) => [
      day,
      {
        date: day,
        new_users: 0,
        generations_succeeded: 0,
        generations_failed: 0,
        stars_received: 0,
        credits_spent: 0,
      },
    ]),
  );
  for (const row of userDays) {
    const item = daily.get(row.day);
    if (item) item.new_users = n(row.signed_up);
  }
  for (const row of refunds) {
    const item = daily.get(row.day);
    if (item) item.stars_received -= n(row.stars);
    money.stars -= n(row.stars);
    money.payments -= n(row.payments);
  }
  for (const piece of pieces) {
    const item = daily.get(piece.day);
    if (!item) continue;
    for (const [modelId, status, count] of piece.generations ?? []) {
      byStatus[status] = (byStatus[status] ?? 0) + count;
      if (status === 'succeeded') item.generations_succeeded += count;
      if (status === 'failed') item.generations_failed += count;
      const known = keyOf.get(String(modelId));
      const key = known?.key ?? String(modelId);
      const model = byModel.get(key) ?? {
        model: key,
        total: 0,
        succeeded: 0,
        failed: 0,
        order: known?.index ?? Number.MAX_SAFE_INTEGER,
      };
      model.total += count;
      if (status === 'succeeded') model.succeeded += count;
      if (status === 'failed') model.failed += count;
      byModel.set(key, model);
    }
    for (const [seconds, count] of Object.entries(piece.durations ?? {})) {
      durations.set(Number(seconds), (durations.get(Number(seconds)) ?? 0) + count);
    }
    item.stars_received += n(piece.payment_stars);
    item.credits_spent += n(piece.credits_spent);
    money.payments += n(piece.payments);
    money.stars += n(piece.payment_stars);
    money.sold += n(piece.credits_sold);
    money.spent += n(piece.credits_spent);
    money.refunded += n(piece.credits_refunded);
    money.free += n(piece.credits_given_free);
    money.trials += n(piece.trial_uses);
    referralsPaid.bonuses += n(piece.referral_bonuses);
    referralsPaid.credits += n(piece.referral_credits);
  }
  const settled = (byStatus.succeeded ?? 0) + (byStatus.failed ?? 0);

  return {
    range,
    users: { total: n(users?.total), new: n(users?.new), active: n(users?.active) },
    generations: {
      total: Object.values(byStatus).reduce((a, b) => a + b, 0),
      by_status: byStatus,
      by_model: [...byModel.values()]
        .sort((a, b) => a.order - b.order)
        .map(({ order: _order, ...model }) => model),
      success_rate: settled === 0 ? null : (byStatus.succeeded ?? 0) / settled,
      seconds_p50: histogramPercentile(durations, 0.5),
      seconds_p95: histogramPercentile(durations, 0.95),
    },
    money: {
      stars_received: money.stars,
      payments: money.payments,
      credits_sold: money.sold,
      credits_spent: money.spent,
      credits_refunded: money.refunded,
      credits_given_free: money.free,
      free_generations_used: money.trials - n(returned?.count),
    },
    referrals: {
      new_referred_users: n(users?.referred),
      bonuses_paid: referralsPaid.bonuses,
      bonus_credits: referralsPaid.credits,
    },
    daily: [...daily.values()],
  };
}

/**
 * The live parts of the open days: generations and ledger of the hours without a row, payments
 * and free generations of the whole days (few a day), as statements run at once (on PostgreSQL
 * each on its own connection), so the answer waits for the slowest part, not for their sum.
 */
async function liveFigures(
  db: Queryable,
  days: readonly string[],
  hours: readonly number[],
): Promise<Piece[]> {
  const dayList = sql`SELECT unnest(string_to_array(${days.join(',')}, ','))::date AS day`;
  const hourList = sql`SELECT unnest(string_to_array(${hours.map((h) => new Date(h).toISOString()).join(',')}, ','))::timestamptz AS hour`;
  const dayColumn = sql.raw(`to_char(d.day, 'YYYY-MM-DD') AS day`);
  const [generations, ledger, others] = await Promise.all([
    hours.length === 0
      ? []
      : selectRows<Piece>(
          db,
          sql`SELECT ${dayColumn}, g.generations, g.durations
              FROM ${asHours(hourList)} CROSS JOIN LATERAL ${figureParts.generations}`,
        ),
    hours.length === 0
      ? []
      : selectRows<Piece>(
          db,
          sql`SELECT ${dayColumn}, l.* FROM ${asHours(hourList)} CROSS JOIN LATERAL ${figureParts.ledger}`,
        ),
    selectRows<Piece>(
      db,
      sql`SELECT ${dayColumn}, p.payments, p.payment_stars, t.trial_uses
          FROM ${asDays(dayList)} CROSS JOIN LATERAL ${figureParts.payments}
          CROSS JOIN LATERAL ${figureParts.trials}`,
    ),
  ]);
  return [...generations, ...ledger, ...others];
}
