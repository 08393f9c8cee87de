// The operators' user list (GET /admin/users: listUsers) on PostgreSQL with many users: the
// time of one page (50 users and the count of all that match) for a search and for each filter.
//
//   npm run bench:admin-users
//
// Seeds BENCH_USERS (200,000) users: names and usernames of random hex, last seen and created over
// the last 90 days, one in 10 with a ledger entry (one in 20 of those with a balance left), one in
// 50 with a paid Stars payment, one in 100 banned, one in 200 blocked. Each case is run
// BENCH_REPEAT (9) times after a warm-up; the median is reported. No goal: this is what an operator
// waits for, to be compared with later runs.
import { sql } from 'drizzle-orm';
import { loadConfig } from '../src/core/config.ts';
import { createLogger } from '../src/core/logger.ts';
import { openDatabase } from '../src/db/client.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import { listUsers, type UserFilter } from '../src/services/admin-users.ts';
import { envInteger, fmt, lockRun, log, recreateDatabase } from './support.ts';

const benchDatabase = 'imagegen_bench_admin_users';
const benchUrl = `postgres://postgres@127.0.0.1:5432/${benchDatabase}`;
const userCount = envInteger('BENCH_USERS', 200_000);
const repeat = envInteger('BENCH_REPEAT', 9);

const lock = await lockRun('postgres://postgres@127.0.0.1:5432/postgres', 'bench:admin-users');
try {
  await recreateDatabase(benchDatabase);
  const config = loadConfig({ DATABASE_URL: benchUrl });
  if (config.database.kind !== 'postgres') throw new Error('the benchmark runs on PostgreSQL');
  const handle = await openDatabase(
    config.database,
    createLogger({ logLevel: 'silent', logPretty: false }),
  );
  try {
    await migrateDatabase(handle);
    log(`seeding ${fmt(userCount)} users…`);
    const started = performance.now();
    await handle.db.execute(
      sql`INSERT INTO users (telegram_id, username, first_name, last_name, last_seen_at, created_at,
                             banned_at, ban_reason, blocked_at)
          SELECT 5000000000 + g, 'u' || substr(md5(g::text), 1, 10),
                 initcap(substr(md5((g * 3)::text), 1, 6)), initcap(substr(md5((g * 7)::text), 1, 8)),
                 now() - (g % 90) * interval '1 day' - (g % 1440) * interval '1 minute',
                 now() - (g % 90) * interval '1 day',
                 CASE WHEN g % 100 = 0 THEN now() END, CASE WHEN g % 100 = 0 THEN 'spam' END,
                 CASE WHEN g % 200 = 1 THEN now() END
          FROM generate_series(1, ${userCount}) g`,
    );
    // A credit to one user in 10; one in 20 of them spends it all again.
    await handle.db.execute(
      sql`INSERT INTO ledger_entries (user_id, amount, kind, idempotency_key, actor)
          SELECT id, 100, 'bonus', 'seed:' || id, 'bench' FROM users WHERE id % 10 = 0`,
    );
    await handle.db.execute(
      sql`INSERT INTO ledger_entries (user_id, amount, kind, idempotency_key, actor)
          SELECT id, -100, 'admin_adjustment', 'spend:' || id, 'bench'
          FROM users WHERE id % 10 = 0 AND id % 200 <> 0`,
    );
    await handle.db.execute(
      sql`INSERT INTO payments (user_id, telegram_payment_charge_id, currency, total_amount,
                                invoice_payload, package_id, credits)
          SELECT id, 'seed-' || id, 'XTR', 100, 'stars:starter', 'starter', 150
          FROM users WHERE id % 50 = 7`,
    );
    await handle.db.execute(sql`ANALYZE`);
    log(`seeded in ${fmt((performance.now() - started) / 1000, 1)} s`);

    const ctx = { db: handle.db, config };
    const cases: [string, { query?: string; filters: UserFilter[] }][] = [
      ['first page, no query or filter', { filters: [] }],
      [
        'query: a telegram id',
        { query: String(5_000_000_000 + Math.floor(userCount / 2)), filters: [] },
      ],
      ['query: a username prefix (3 characters)', { query: '@uab', filters: [] }],
      ['query: a name prefix (2 characters)', { query: 'ab', filters: [] }],
      ...(
        ['active_7d', 'active_30d', 'paying', 'with_balance', 'banned', 'blocked', 'new'] as const
      ).map((filter): [string, { filters: UserFilter[] }] => [
        `filter: ${filter}`,
        { filters: [filter] },
      ]),
      ['query "ab" and filter active_30d', { query: 'ab', filters: ['active_30d'] }],
    ];
    process.stdout.write(
      `GET /admin/users (listUsers, limit 50) on ${fmt(userCount)} users, PostgreSQL; median of ${repeat}\n\n`,
    );
    process.stdout.write('| case | matching | median ms |\n| --- | ---: | ---: |\n');
    for (const [name, options] of cases) {
      await listUsers(ctx, { ...options, limit: 50 });
      const times: number[] = [];
      let total = 0;
      for (let i = 0; i < repeat; i++) {
        const begun = performance.now();
        const page = await listUsers(ctx, { ...options, limit: 50 });
        times.push(performance.now() - begun);
        total = page.counts.total;
      }
      times.sort((a, b) => a - b);
      const median = times[Math.floor(times.length / 2)] ?? 0;
      process.stdout.write(`| ${name} | ${fmt(total)} | ${fmt(median, 1)} |\n`);
    }
  } finally {
    await handle.close();
  }
} finally {
  await lock.end();
}
