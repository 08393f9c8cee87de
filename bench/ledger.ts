// Ledger benchmark on PostgreSQL: charges per second spread over 1,000 users and on one hot user,
// each beside a baseline measured in the same run (one INSERT and one commit per charge through
// the raw pg driver: what a ledger without group commit can do), and the balance read's p50 for a
// user with 10 entries and with 1,000,000.
//
//   npm run bench:ledger
//
// Goals (issue "Credits that are never lost…"): >= 5,000 charges/s across users, >= 1,000/s on one
// user, p50 at 1M entries <= 1.2x p50 at 10. Settings (env): BENCH_SECONDS (8) per measurement,
// BENCH_CONCURRENCY (64) charges in flight, BENCH_POOL_SIZE (20), BENCH_ROUNDS (2).
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { loadConfig } from '../src/core/config.ts';
import { createLogger } from '../src/core/logger.ts';
import { type DatabaseHandle, openDatabase } from '../src/db/client.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import { selectRows } from '../src/db/rows.ts';
import { postEntry } from '../src/services/ledger.ts';
import { getBalance } from '../src/services/users.ts';
import { envInteger, fmt, GoalReport, log, recreateDatabase } from './support.ts';

const benchDatabase = 'imagegen_bench_ledger';
const benchUrl = `postgres://postgres@127.0.0.1:5432/${benchDatabase}`;

const seconds = envInteger('BENCH_SECONDS', 8);
const concurrency = envInteger('BENCH_CONCURRENCY', 64);
const poolSize = envInteger('BENCH_POOL_SIZE', 20);
const rounds = envInteger('BENCH_ROUNDS', 2);
const userCount = 1_000;
const bigLedger = 1_000_000;

/** Runs `operation` with `concurrency` in flight for `seconds`; answers operations per second. */
async function throughput(operation: (i: number) => Promise<unknown>): Promise<number> {
  let done = 0;
  let next = 0;
  const stopAt = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < stopAt) {
        await operation(next++);
        done++;
      }
    }),
  );
  return done / ((performance.now() - started) / 1000);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function main(): Promise<void> {
  await recreateDatabase(benchDatabase);
  const logger = createLogger({ logLevel: 'warn', logPretty: false });
  const handle: DatabaseHandle = await openDatabase(
    { kind: 'postgres', url: benchUrl, poolSize },
    logger,
  );
  const raw = new pg.Pool({ connectionString: benchUrl, max: poolSize });
  try {
    await migrateDatabase(handle);
    const config = loadConfig({ DATABASE_URL: benchUrl });
    const ctx = { db: handle.db, config };

    log('seeding 1,000 users (1e9 credits each), a user with 10 entries and one with 1,000,000…');
    await handle.db.execute(
      sql`INSERT INTO users (telegram_id) SELECT 9000000000 + g FROM generate_series(1, ${userCount + 2}) g`,
    );
    await handle.db.execute(
      sql`INSERT INTO ledger_entries (user_id, amount, kind) SELECT id, 1000000000, 'topup' FROM users ORDER BY id`,
    );
    const users = (
      await selectRows<{ id: string }>(handle.db, sql`SELECT id FROM users ORDER BY id`)
    ).map((r) => Number(r.id));
    const [smallUser, bigUser] = [users[userCount]!, users[userCount + 1]!];
    const spread = users.slice(0, userCount);
    const hot = spread[0]!;
    for (let i = 0; i < 9; i++) {
      await handle.db.execute(
        sql`INSERT INTO ledger_entries (user_id, amount, kind) VALUES (${smallUser}, 1, 'bonus')`,
      );
    }
    // A million entries through the triggers would take minutes; the seed writes the running
    // balance and entry numbers they would have computed, and the user's balance (migration 0023),
    // with the triggers off for this one statement.
    const balanceTriggers = ['ledger_entries_running_balance', 'ledger_entries_keep_user_balance'];
    for (const trigger of balanceTriggers) {
      await handle.db.execute(sql.raw(`ALTER TABLE ledger_entries DISABLE TRIGGER ${trigger}`));
    }
    await handle.db.execute(sql`
      INSERT INTO ledger_entries (user_id, amount, kind, user_entry_no, balance_after)
      SELECT ${bigUser}, 1, 'bonus', g + 1, 1000000000 + g FROM generate_series(1, ${bigLedger - 1}) g`);
    for (const trigger of balanceTriggers) {
      await handle.db.execute(sql.raw(`ALTER TABLE ledger_entries ENABLE TRIGGER ${trigger}`));
    }
    await handle.db.execute(sql`
      UPDATE users SET balance = (SELECT balance_after FROM ledger_entries
                                  WHERE user_id = ${bigUser} ORDER BY user_entry_no DESC LIMIT 1)
      WHERE id = ${bigUser}`);
    await handle.db.execute(sql`ANALYZE`);

    const rawCharge = (userId: number) =>
      raw.query(
        `INSERT INTO ledger_entries (user_id, amount, kind, reference_type, reference_id, idempotency_key, reason, actor, metadata)
         SELECT id, $1, $2, $3, $4, $5, $6, $7, $8::jsonb FROM (SELECT id FROM users WHERE id = $9) AS target
         ON CONFLICT (idempotency_key) DO NOTHING
         RETURNING id, user_entry_no, amount, balance_after, kind, reference_type, reference_id, reason, actor,
                   to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS created_at`,
        [
          -1,
          'generation_charge',
          null,
          null,
          `entry:${randomUUID()}`,
          null,
          'system',
          null,
          userId,
        ],
      );
    // Through the ledger's group commit, as every entry posted outside a transaction goes.
    const ourCharge = (userId: number) =>
      postEntry(handle.db, { userId }, { kind: 'generation_charge', amount: -1 });

    const results: Record<string, number[]> = {
      spreadOurs: [],
      spreadRaw: [],
      hotOurs: [],
      hotRaw: [],
    };
    for (let round = 0; round < rounds; round++) {
      log(`round ${round + 1}/${rounds}`);
      results.spreadOurs!.push(await throughput((i) => ourCharge(spread[i % userCount]!)));
      results.spreadRaw!.push(await throughput((i) => rawCharge(spread[i % userCount]!)));
      results.hotOurs!.push(await throughput(() => ourCharge(hot)));
      results.hotRaw!.push(await throughput(() => rawCharge(hot)));
    }

    const telegramOf = async (userId: number) =>
      Number(
        (
          await selectRows<{ t: string }>(
            handle.db,
            sql`SELECT telegram_id AS t FROM users WHERE id = ${userId}`,
          )
        )[0]?.t,
      );
    const [smallTelegram, bigTelegram] = [await telegramOf(smallUser), await telegramOf(bigUser)];
    const small = (await getBalance(ctx, smallTelegram)).balance;
    const big = (await getBalance(ctx, bigTelegram)).balance;
    const [sums] = await selectRows<{ small: string; big: string }>(
      handle.db,
      sql`
      SELECT (SELECT sum(amount) FROM ledger_entries WHERE user_id = ${smallUser}) AS small,
             (SELECT sum(amount) FROM ledger_entries WHERE user_id = ${bigUser}) AS big`,
    );
    if (small !== Number(sums?.small) || big !== Number(sums?.big)) {
      throw new Error(`balance != SUM: ${small}/${sums?.small}, ${big}/${sums?.big}`);
    }
    const latencies: Record<'small' | 'big', number[]> = { small: [], big: [] };
    for (let i = 0; i < 4000; i++) {
      const which = i % 2 === 0 ? 'small' : 'big';
      const started = performance.now();
      await getBalance(ctx, which === 'small' ? smallTelegram : bigTelegram);
      if (i >= 400) latencies[which].push(performance.now() - started);
    }
    const p50 = (values: number[]) =>
      percentile(
        [...values].sort((a, b) => a - b),
        50,
      );
    const best = (values: number[]) => Math.max(...values);
    const smallP50 = p50(latencies.small);
    const bigP50 = p50(latencies.big);

    console.log(
      `\nLedger benchmark — ${new Date().toISOString()}, node ${process.version}, ${os.cpus().length} cores, PostgreSQL at 127.0.0.1`,
    );
    console.log(
      `${seconds} s per measurement, ${concurrency} in flight, pool ${poolSize}, best of ${rounds} rounds\n`,
    );
    const goals = new GoalReport();
    const spreadRate = best(results.spreadOurs!);
    const hotRate = best(results.hotOurs!);
    const growth = bigP50 / smallP50;
    console.log(
      '| measurement | ours (group commit) | one INSERT per charge, raw driver | ratio | goal |',
    );
    console.log('|---|---|---|---|---|');
    console.log(
      `| charges/s over 1,000 users | ${fmt(best(results.spreadOurs!))} | ${fmt(best(results.spreadRaw!))} | ${(best(results.spreadOurs!) / best(results.spreadRaw!)).toFixed(2)} | ≥ 5,000/s: ${goals.check('charges/s over 1,000 users', spreadRate >= 5_000)} |`,
    );
    console.log(
      `| charges/s on one hot user | ${fmt(best(results.hotOurs!))} | ${fmt(best(results.hotRaw!))} | ${(best(results.hotOurs!) / best(results.hotRaw!)).toFixed(2)} | ≥ 1,000/s: ${goals.check('charges/s on one hot user', hotRate >= 1_000)} |`,
    );
    console.log(`| balance read p50, 10 entries | ${smallP50.toFixed(3)} ms | | | |`);
    console.log(
      `| balance read p50, 1,000,000 entries | ${bigP50.toFixed(3)} ms | | ${growth.toFixed(2)} × the 10-entry p50 | ≤ 1.2×: ${goals.check('balance read with 1,000,000 entries', growth <= 1.2)} |`,
    );
    console.log(`\n${goals.summary()}`);
    console.log(
      `\nall rounds (charges/s): ${JSON.stringify(Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.map((n) => fmt(n))])))}`,
    );
  } finally {
    await raw.end();
    await handle.close();
  }
}

await main();
