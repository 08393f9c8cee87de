// The operators' side at scale (issue 9), in two parts, both on the PostgreSQL of this machine:
//
// 1. broadcast: a broadcast to BENCH_RECIPIENTS (100,000) users at BROADCAST_RATE = BENCH_RATE
//    (1,000) messages/s, sent by BENCH_WORKERS (2) real worker processes (src/worker.ts, the job
//    queue, src/jobs/broadcast.ts) to a fake Bot API (bench/broadcast-fake.ts) in this process.
//    The broadcast is started through the service (startBroadcast enqueues one sending job); more
//    jobs for it are enqueued, as test/admin-broadcasts.test.ts does, two per worker process (the
//    most one process runs), so that every worker sends the same broadcast at once and the rate
//    they share is what is measured. Reports the time against the ideal N / rate (goal ≤ 1.2 ×),
//    duplicates and misses (both must be 0) and the most messages the fake saw in any one second
//    (must never be above the rate).
// 2. queries: p99 latency of GET /api/v1/admin/stats and GET /api/v1/admin/users (a realistic mix
//    of searches and filters) served by the real API process (src/server.ts) over HTTP, one request
//    at a time, with BENCH_USERS (1,000,000) users and BENCH_GENERATIONS (5,000,000) generations.
//    Goal: p99 <= 100 ms. The seeded database (BENCH_DATABASE, bench_admin) is kept: a later run
//    with the same sizes uses it as it is (after applying new migrations), so only the first run
//    pays the seed (and a run that applied new migrations to it ends them with VACUUM ANALYZE).
//
//   npm run bench:admin                                        # both parts
//   BENCH_PARTS=queries npm run bench:admin                    # one part (broadcast | queries)
//   BENCH_PARTS=queries BENCH_CASES=users npm run bench:admin  # only the user-list cases
//
// Settings (env): BENCH_PARTS (broadcast,queries), BENCH_RECIPIENTS (100,000), BENCH_RATE (1,000),
// BENCH_WORKERS (2), BENCH_BROADCAST_TIMEOUT (3 × N / rate + 60 s: then the broadcast is reported
// unfinished), BENCH_USERS (1,000,000), BENCH_GENERATIONS (5,000,000), BENCH_SAMPLES (30:
// requests per query case), BENCH_CASES (users,stats: which query cases run), BENCH_DATABASE
// (bench_admin: the queries' database; another name keeps a second seeded copy, e.g. one made
// with `createdb -T bench_admin <name>` plus the seed marker, see docs/benchmarks.md, to measure
// a migration on without touching the shared one), BENCH_RESEED=1 (seed again even if the
// database matches). Tables go to stdout, progress to stderr. One run per database at a time
// (advisory locks on the broadcast's database and on BENCH_DATABASE). Exit code non-zero only on
// errors (a child dying, a refused call, an unexpected answer), never because a goal is missed:
// the report says so.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import type pg from 'pg';
import { loadConfig } from '../src/core/config.ts';
import { createLogger } from '../src/core/logger.ts';
import { openDatabase } from '../src/db/client.ts';
import { enqueue, wakeWorkers } from '../src/db/job-queue.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import {
  broadcastSender,
  createBroadcast,
  getBroadcast,
  startBroadcast,
} from '../src/services/broadcasts.ts';
import { startBroadcastTelegram } from './broadcast-fake.ts';
import {
  adminUrl,
  type Child,
  envInteger,
  fmt,
  freePort,
  hasExited,
  lockRun,
  log,
  recreateDatabase,
  startChild,
  stopChild,
  withClient,
} from './support.ts';

const GOAL_P99_MS = 100;
const parts = new Set(
  (process.env.BENCH_PARTS ?? 'broadcast,queries').split(',').map((p) => p.trim()),
);
for (const part of parts) {
  if (part !== 'broadcast' && part !== 'queries') {
    throw new Error(`BENCH_PARTS: unknown part ${part} (broadcast, queries)`);
  }
}
const caseGroups = new Set(
  (process.env.BENCH_CASES ?? 'users,stats').split(',').map((c) => c.trim()),
);
for (const group of caseGroups) {
  if (group !== 'users' && group !== 'stats') {
    throw new Error(`BENCH_CASES: unknown group ${group} (users, stats)`);
  }
}
const BROADCAST_DATABASE = 'bench_admin_broadcast';
const queriesDatabase = process.env.BENCH_DATABASE ?? 'bench_admin';
if (!/^[a-z_][a-z0-9_]*$/.test(queriesDatabase)) {
  throw new Error(`BENCH_DATABASE: ${queriesDatabase} is not a plain lower-case database name`);
}
if (queriesDatabase === BROADCAST_DATABASE) {
  throw new Error(`BENCH_DATABASE: ${BROADCAST_DATABASE} is the broadcast part's own database`);
}
const out = (text: string): void => {
  process.stdout.write(`${text}\n`);
};
const loadText = (): string =>
  loadavg()
    .map((value) => value.toFixed(2))
    .join(' / ');

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? Number.NaN;
}

/** User and system CPU time of a process so far, in ms (Linux /proc; clock ticks of 10 ms). */
function cpuMs(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

// ---------------------------------------------------------------------------------------------
// Seed data (shared by both parts): users whose ids follow their sign-up time over the last
// 365 days, as a real table fills up.

const FIRST_NAMES = [
  'Alisher',
  'Aziz',
  'Bekzod',
  'Dilnoza',
  'Dilshod',
  'Farrukh',
  'Gulnora',
  'Jasur',
  'Kamola',
  'Laylo',
  'Madina',
  'Nodira',
  'Otabek',
  'Rustam',
  'Sardor',
  'Shahzod',
  'Timur',
  'Umid',
  'Zarina',
  'Anna',
  'Olga',
  'Ivan',
  'Dmitry',
  'Sergey',
  'Elena',
  'Maria',
  'Alexey',
  'Nikita',
  'John',
  'Emma',
  'Oliver',
  'Sophia',
  'Liam',
  'Noah',
  'Mia',
  'Lucas',
  'Aziza',
  'Sevara',
  'Javohir',
  'Ulugbek',
];
const LAST_NAMES = [
  'Karimov',
  'Rakhimov',
  'Yusupov',
  'Aliyev',
  'Tursunov',
  'Ismoilov',
  'Nazarov',
  'Abdullayev',
  'Ivanov',
  'Petrov',
  'Smirnov',
  'Kuznetsov',
  'Popov',
  'Sokolov',
  'Lebedev',
  'Kozlov',
  'Novikov',
  'Morozov',
  'Smith',
  'Johnson',
  'Brown',
  'Taylor',
  'Wilson',
  'Davies',
  'Evans',
  'Thomas',
  'Roberts',
  'Walker',
  'Saidov',
  'Khodjaev',
];
const REFERRAL_ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ';

const sqlArray = (values: readonly string[]): string =>
  `ARRAY[${values.map((v) => `'${v}'`).join(', ')}]`;

const telegramIdOf = (user: number): number => 100_000_000 + user * 7;
const firstNameOf = (user: number): string => FIRST_NAMES[user % FIRST_NAMES.length] ?? '';
const lastNameOf = (user: number): string => LAST_NAMES[user % LAST_NAMES.length] ?? '';

/** `user_created(u)`: when user u signed up (SQL), u = 1 … userCount over the last 365 days. */
const userCreated = (u: string, userCount: number) =>
  `(now() - interval '365 days' * (1 - ${u}::float8 / ${userCount}))`;

/**
 * Users 1 … count: 60 % with a username (`<first name>_<6 hex>`), 70 % with a last name, one in
 * 10 referred, one in 200 banned, one in 40 blocked the bot; last seen somewhere between sign-up
 * and now. Direct SQL in the client's session (FK and trigger checks off for the seed only).
 */
async function seedUsers(client: pg.Client, count: number): Promise<void> {
  const digit = (power: number) =>
    `substr('${REFERRAL_ALPHABET}', ((u / ${31 ** power}::bigint) % 31)::int + 1, 1)`;
  const created = userCreated('u', count);
  await client.query(`
    INSERT INTO users (id, telegram_id, username, first_name, last_name, language_code, language,
                       created_at, updated_at, last_seen_at, referral_code, referred_by,
                       banned_at, ban_reason, blocked_at)
    OVERRIDING SYSTEM VALUE
    SELECT u, ${telegramIdOf(0)} + u * 7,
           CASE WHEN u % 10 < 6
                THEN lower((${sqlArray(FIRST_NAMES)})[1 + u % ${FIRST_NAMES.length}])
                     || '_' || substr(md5(u::text), 1, 6) END,
           (${sqlArray(FIRST_NAMES)})[1 + u % ${FIRST_NAMES.length}],
           CASE WHEN u % 10 < 7 THEN (${sqlArray(LAST_NAMES)})[1 + u % ${LAST_NAMES.length}] END,
           (ARRAY['uz', 'ru', 'en', 'en-US', 'ru-RU'])[1 + u % 5],
           CASE WHEN u % 4 = 0 THEN (ARRAY['uz', 'ru', 'en'])[1 + (u / 4) % 3] END,
           c.at, c.at, c.at + (now() - c.at) * (((u * 7919) % 1000) / 999.0),
           ${[0, 1, 2, 3, 4, 5, 6, 7].map(digit).join(' || ')},
           CASE WHEN u % 10 = 3 AND u > 1000 THEN u - 1000 END,
           CASE WHEN u % 200 = 0 THEN c.at + (now() - c.at) / 2 END,
           CASE WHEN u % 200 = 0 THEN 'spam' END,
           CASE WHEN u % 40 = 7 THEN c.at + (now() - c.at) / 3 END
    FROM generate_series(1::bigint, ${count}) u
    CROSS JOIN LATERAL (SELECT ${created} AS at) c
    ORDER BY u`);
  await client.query(`SELECT setval('users_id_seq', ${count})`);
  // The users' triggers keep stats_user_days (migration 0030); triggers are off while seeding.
  await client.query(`
    INSERT INTO stats_user_days (day, shard, signed_up, referred, last_seen)
    SELECT c.day, c.shard, sum(c.signed_up), sum(c.referred), sum(c.last_seen)
    FROM (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, (id % 16)::smallint AS shard,
                 1 AS signed_up, (referred_by IS NOT NULL)::int AS referred, 0 AS last_seen
          FROM users
          UNION ALL
          SELECT (last_seen_at AT TIME ZONE 'UTC')::date, (id % 16)::smallint, 0, 0, 1
          FROM users WHERE last_seen_at IS NOT NULL) c
    GROUP BY c.day, c.shard`);
}

/**
 * Generations (status 90 % succeeded, 7 % failed, 3 % cancelled; 5 to 60 s to a result), over
 * each user's life from sign-up to now, most soon after sign-up (the k-th of n at the fraction
 * ((k + ~0.5) / n)³ of it), inserted in time order; the first two of each user
 * free (trial, with their trial_uses), the rest charged 10 credits (ledger entries after a first
 * credit: a 100-credit Stars top-up with its payment for one user in 10, a bonus for the others).
 */
async function seedActivity(
  client: pg.Client,
  userCount: number,
  generationCount: number,
): Promise<void> {
  const perUser = Math.ceil(generationCount / userCount);
  const firstCredit = Math.max(10, 10 * (perUser - 2));
  const generations = `
    SELECT g, x.u, x.k,
           uc.at + (now() - uc.at)
                   * power((x.k + 0.1 + 0.8 * ((g * 7919) % 1000) / 999.0) / ${perUser}, 3)
             AS created_at
    FROM generate_series(1::bigint, ${generationCount}) g
    CROSS JOIN LATERAL (SELECT 1 + (g - 1) % ${userCount} AS u, (g - 1) / ${userCount} AS k) x
    CROSS JOIN LATERAL (SELECT ${userCreated('x.u', userCount)} AS at) uc`;
  log('  generations…');
  await client.query(`
    INSERT INTO generation_requests (id, user_id, model_id, prompt, status, payment_method,
                                     price_credits, error_code, error_message, created_at,
                                     started_at, completed_at)
    SELECT md5('g' || s.g)::uuid, s.u, m.ids[1 + s.g % m.n], 'a bench prompt number ' || s.g,
           st.status, CASE WHEN s.k < 2 THEN 'trial' ELSE 'credits' END,
           CASE WHEN s.k < 2 THEN 0 ELSE 10 END,
           CASE WHEN st.status = 'failed' THEN 'provider_failed' END,
           CASE WHEN st.status = 'failed' THEN 'the provider failed' END,
           s.created_at, s.created_at + interval '1 second',
           CASE WHEN st.status <> 'cancelled'
                THEN s.created_at + (5 + s.g % 56) * interval '1 second' END
    FROM (${generations}) s
    CROSS JOIN (SELECT array_agg(id ORDER BY id) AS ids, count(*)::int AS n FROM model_catalog) m
    CROSS JOIN LATERAL (SELECT CASE WHEN s.g % 100 < 90 THEN 'succeeded'
                                    WHEN s.g % 100 < 97 THEN 'failed'
                                    ELSE 'cancelled' END AS status) st
    ORDER BY s.created_at`);
  log('  trial uses…');
  await client.query(`
    INSERT INTO trial_uses (user_id, generation_request_id, used_at)
    SELECT s.u, md5('g' || s.g)::uuid, s.created_at FROM (${generations}) s
    WHERE s.k < 2 ORDER BY s.created_at`);
  log('  ledger…');
  await client.query(`
    INSERT INTO ledger_entries (user_id, amount, user_entry_no, balance_after, kind,
                                reference_type, reference_id, actor, created_at)
    SELECT user_id, amount, entry_no, balance_after, kind, reference_type, reference_id, 'bench',
           created_at
    FROM (
      SELECT u AS user_id,
             CASE WHEN u % 10 = 0 THEN ${firstCredit + 70} ELSE ${firstCredit} END AS amount,
             1 AS entry_no,
             CASE WHEN u % 10 = 0 THEN ${firstCredit + 70} ELSE ${firstCredit} END AS balance_after,
             CASE WHEN u % 10 = 0 THEN 'topup' ELSE 'bonus' END AS kind,
             CASE WHEN u % 10 = 0 THEN 'payment' END AS reference_type,
             CASE WHEN u % 10 = 0 THEN 'seed-' || u END AS reference_id,
             ${userCreated('u', userCount)} + interval '1 minute' AS created_at
      FROM generate_series(1::bigint, ${userCount}) u
      UNION ALL
      SELECT s.u, -10, s.k,
             CASE WHEN s.u % 10 = 0 THEN ${firstCredit + 70} ELSE ${firstCredit} END - 10 * (s.k - 1),
             'generation_charge', 'generation', md5('g' || s.g)::uuid::text, s.created_at
      FROM (${generations}) s WHERE s.k >= 2
    ) e
    ORDER BY created_at`);
  // The ledger's trigger keeps users.balance (migration 0023); triggers are off while seeding.
  await client.query(`
    UPDATE users u SET balance = last.balance_after
    FROM (SELECT DISTINCT ON (user_id) user_id, balance_after
            FROM ledger_entries ORDER BY user_id, user_entry_no DESC) last
    WHERE last.user_id = u.id`);
  log('  payments…');
  await client.query(`
    INSERT INTO payments (user_id, telegram_payment_charge_id, currency, total_amount,
                          invoice_payload, package_id, credits, created_at)
    SELECT u, 'seed-' || u, 'XTR', 100, 'stars:starter', 'starter', ${firstCredit + 70},
           ${userCreated('u', userCount)} + interval '1 minute'
    FROM generate_series(10::bigint, ${userCount}, 10) u ORDER BY u`);
  // The payments' trigger keeps users.paying (migration 0028); triggers are off while seeding.
  await client.query(`
    UPDATE users u SET paying = true
    WHERE EXISTS (SELECT 1 FROM payments p WHERE p.user_id = u.id AND p.status = 'paid')`);
}

/** Seeds in one session with FK and trigger checks off (superuser): the data is built valid. */
async function withSeedSession(url: string, work: (client: pg.Client) => Promise<void>) {
  await withClient(url, async (client) => {
    await client.query(`SET session_replication_role = replica`);
    await client.query(`SET work_mem = '256MB'`);
    await client.query(`SET maintenance_work_mem = '512MB'`);
    await work(client);
    await client.query(`SET session_replication_role = DEFAULT`);
  });
}

// ---------------------------------------------------------------------------------------------
// Part 1: broadcast

/**
 * "time ≈ N / rate" as a number: the pacing spaces slots 1.1 × 1 / rate apart on purpose
 * (SLOT_MARGIN in src/jobs/broadcast.ts), so 1.1 is the design's own best; 1.2 leaves room for
 * the start and the end.
 */
const TIME_GOAL = 1.2;
const BOT_TOKEN = '777000001:bench-admin-broadcast-token-abcdefghij';
const BROADCAST_TEXT = 'Bench broadcast: new models are here ✨';

async function benchBroadcast(): Promise<boolean> {
  const recipients = envInteger('BENCH_RECIPIENTS', 100_000);
  const rate = envInteger('BENCH_RATE', 1_000);
  const workerCount = envInteger('BENCH_WORKERS', 2);
  const database = BROADCAST_DATABASE;
  const url = `postgres://postgres@127.0.0.1:5432/${database}`;
  log(`broadcast: ${fmt(recipients)} recipients at ${fmt(rate)}/s, ${workerCount} workers`);
  await recreateDatabase(database);
  const fake = await startBroadcastTelegram({ token: BOT_TOKEN, text: BROADCAST_TEXT });
  const env = {
    NODE_ENV: 'production',
    DATABASE_URL: url,
    DATABASE_POOL_SIZE: '5',
    LOG_LEVEL: 'info',
    REDIS_URL: '',
    TELEGRAM_BOT_TOKEN: BOT_TOKEN,
    TELEGRAM_API_ROOT: fake.apiRoot,
    BROADCAST_RATE: String(rate),
    DELIVERY_WEBHOOK_URL: '',
  };
  const config = loadConfig(env);
  const handle = await openDatabase(
    config.database,
    createLogger({ logLevel: 'silent', logPretty: false }),
  );
  const workers: Child[] = [];
  try {
    await migrateDatabase(handle);
    await withSeedSession(url, async (client) => {
      await seedUsers(client, recipients);
      await client.query('ANALYZE users');
    });
    for (let i = 0; i < workerCount; i++) {
      workers.push(startChild(`worker ${i + 1}`, 'src/worker.ts', env));
    }
    await Promise.all(workers.map((worker) => started(worker, /"worker started"/)));
    const ctx = { db: handle.db, config };
    const operator = { actor: 'bench', role: 'admin' as const, requestId: null };
    const draft = await createBroadcast(
      ctx,
      {
        text: BROADCAST_TEXT,
        entities: [{ type: 'bold', offset: 0, length: 5 }],
        audience: { filters: [] },
      },
      operator,
    );
    const cpuBefore = workers.map((w) => cpuMs(w.process.pid));
    const loadBefore = loadText();
    const begun = performance.now();
    await startBroadcast(ctx, draft.id, operator, 'bench');
    // A worker process runs up to 2 broadcast jobs at once (BROADCAST_KIND_CAP in
    // src/jobs/worker.ts) and the first to claim could take them all: 2 jobs per process.
    for (let i = 1; i < workerCount * 2; i++) {
      await enqueue(handle.db, {
        kind: 'broadcast',
        provider: broadcastSender(ctx),
        payload: { broadcast_id: draft.id },
        maxAttempts: 1000,
      });
    }
    wakeWorkers(handle.db);
    const idealSeconds = recipients / rate;
    const timeoutSeconds = envInteger('BENCH_BROADCAST_TIMEOUT', Math.ceil(idealSeconds * 3 + 60));
    const deadline = begun + timeoutSeconds * 1000;
    let view = await getBroadcast(ctx, draft.id);
    let lastReport = begun;
    while (view.status === 'running' && performance.now() < deadline) {
      for (const worker of workers) {
        if (hasExited(worker)) throw new Error(`${worker.name} died:\n${worker.output()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      view = await getBroadcast(ctx, draft.id);
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        log(
          `  ${fmt((lastReport - begun) / 1000)} s: ${fmt(fake.arrivals.length)} sent, load ${loadText()}`,
        );
      }
    }
    const finished = view.status === 'completed';
    const cpuAfter = workers.map((w) => cpuMs(w.process.pid));
    if (fake.refused.length > 0) {
      throw new Error(`the fake Bot API refused calls: ${fake.refused.slice(0, 5).join('; ')}`);
    }

    const arrivals = fake.arrivals;
    const lastArrival = arrivals.at(-1) ?? begun;
    const firstArrival = arrivals[0] ?? begun;
    const elapsed = (lastArrival - begun) / 1000;
    let duplicates = 0;
    for (const count of fake.sentPerChat.values()) duplicates += count - 1;
    let misses = 0;
    for (let u = 1; u <= recipients; u++) if (!fake.sentPerChat.has(telegramIdOf(u))) misses++;
    // The most calls in any window of 1 s (sliding, at every arrival), and in any calendar second
    // counted from the first call.
    let maxWindow = 0;
    for (let start = 0, end = 0; end < arrivals.length; end++) {
      while ((arrivals[end] ?? 0) - (arrivals[start] ?? 0) >= 1000) start++;
      maxWindow = Math.max(maxWindow, end - start + 1);
    }
    const perSecond = new Map<number, number>();
    for (const at of arrivals) {
      const second = Math.floor((at - firstArrival) / 1000);
      perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
    }
    const maxSecond = Math.max(0, ...perSecond.values());
    const cpuPerMessage = workers.map(
      (_, i) =>
        ((cpuAfter[i] ?? Number.NaN) - (cpuBefore[i] ?? Number.NaN)) / Math.max(1, arrivals.length),
    );
    const met =
      finished &&
      duplicates === 0 &&
      misses === 0 &&
      maxWindow <= rate &&
      elapsed <= idealSeconds * TIME_GOAL;

    out(
      `\n## Broadcast: ${fmt(recipients)} recipients, BROADCAST_RATE ${fmt(rate)}/s, ${workerCount} worker processes\n`,
    );
    out(`load average (1/5/15 min) before: ${loadBefore}; after: ${loadText()}\n`);
    out('| measure | value | goal |\n| --- | ---: | --- |');
    out(`| broadcast status at the end | ${view.status} | completed |`);
    out(
      `| progress: sent / failed / blocked / remaining | ${fmt(view.progress.sent)} / ${fmt(view.progress.failed)} / ${fmt(view.progress.blocked)} / ${fmt(view.progress.remaining)} | all sent |`,
    );
    out(`| messages the fake received | ${fmt(arrivals.length)} | ${fmt(recipients)} |`);
    out(`| duplicates (a chat's messages beyond its first) | ${fmt(duplicates)} | 0 |`);
    out(
      finished
        ? `| misses (recipients without the message) | ${fmt(misses)} | 0 |`
        : `| misses | not known: stopped unfinished, ${fmt(misses)} recipients not reached yet | 0 |`,
    );
    out(`| time, start → last message, s | ${fmt(elapsed, 1)} | ≈ ${fmt(idealSeconds, 1)} |`);
    out(`| time / ideal (N / rate) | ${fmt(elapsed / idealSeconds, 2)} | ≤ ${fmt(TIME_GOAL, 2)} |`);
    out(`| time, start → first message, s | ${fmt((firstArrival - begun) / 1000, 2)} | |`);
    out(
      `| achieved rate, messages/s | ${fmt(arrivals.length / Math.max(elapsed, 1e-9))} | ≤ ${fmt(rate)} |`,
    );
    out(`| most messages in any 1 s window (sliding) | ${fmt(maxWindow)} | ≤ ${fmt(rate)} |`);
    out(`| most messages in one calendar second | ${fmt(maxSecond)} | ≤ ${fmt(rate)} |`);
    out(
      `| worker CPU ms per 1,000 messages, each | ${cpuPerMessage.map((v) => fmt(v * 1000)).join(' / ')} | |`,
    );
    out(
      met
        ? '\n**Goals met**: completed near N / rate, no duplicate, no miss, never above the rate.'
        : `\n**GOAL MISSED**: ${[
            finished ? null : `not completed within ${fmt(timeoutSeconds)} s`,
            duplicates > 0 ? `${duplicates} duplicates` : null,
            finished && misses > 0 ? `${misses} misses` : null,
            maxWindow > rate ? `${maxWindow} messages in one second` : null,
            finished && elapsed > idealSeconds * TIME_GOAL
              ? `${fmt(elapsed / idealSeconds, 2)} × the ideal time`
              : null,
          ]
            .filter((s) => s !== null)
            .join(', ')}.`,
    );
    return met;
  } finally {
    await Promise.all(workers.map((worker) => stopChild(worker, 15_000)));
    await handle.close();
    await fake.close();
  }
}

/** Resolves when the child writes a line matching `ready`; rejects if it exits first. */
function started(child: Child, ready: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${child.name} did not start within 60 s:\n${child.output()}`));
    }, 60_000);
    const onData = () => {
      if (ready.test(child.output())) {
        cleanup();
        resolve();
      }
    };
    const onExit = () => {
      cleanup();
      reject(new Error(`${child.name} exited during start:\n${child.output()}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.process.stdout?.off('data', onData);
      child.process.stderr?.off('data', onData);
      child.process.off('exit', onExit);
    };
    // After the Child's own listener, which keeps the output this reads.
    child.process.stdout?.on('data', onData);
    child.process.stderr?.on('data', onData);
    child.process.once('exit', onExit);
    onData();
  });
}

// ---------------------------------------------------------------------------------------------
// Part 2: admin queries at scale

const ADMIN_TOKEN = 'bench-admin-token-0123456789abcdef';

async function ensureSeeded(
  database: string,
  userCount: number,
  generationCount: number,
): Promise<void> {
  const url = `postgres://postgres@127.0.0.1:5432/${database}`;
  const marker = `imagegen bench:admin seed v1: ${userCount} users, ${generationCount} generations`;
  const kept = await withClient(adminUrl, async (client) => {
    const { rows } = await client.query<{ comment: string | null }>(
      `SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1`,
      [database],
    );
    return rows[0] !== undefined && rows[0].comment === marker;
  });
  if (kept && process.env.BENCH_RESEED !== '1') {
    const counts = await withClient(url, async (client) => {
      const { rows } = await client.query<{ users: string; generations: string }>(
        `SELECT (SELECT count(*) FROM users) AS users,
                (SELECT count(*) FROM generation_requests) AS generations`,
      );
      return rows[0];
    });
    if (Number(counts?.users) === userCount && Number(counts?.generations) === generationCount) {
      log(`queries: database ${database} kept (its seed and row counts match)`);
      const applied = async () =>
        withClient(url, async (client) => {
          const { rows } = await client.query<{ n: string }>(
            'SELECT count(*) AS n FROM drizzle.__drizzle_migrations',
          );
          return Number(rows[0]?.n);
        });
      const before = await applied();
      await migrate(url);
      if ((await applied()) !== before) {
        // A migration that rewrites rows (a backfill) clears the visibility map of their pages,
        // and index-only scans read the table again until a vacuum; autovacuum may wait long
        // (below its threshold of dead rows). The seed ends with VACUUM ANALYZE; so does this.
        log('  new migrations applied: vacuum analyze…');
        await withClient(url, (client) => client.query('VACUUM ANALYZE'));
      }
      return;
    }
    log(`queries: database ${database} has other row counts: seeding again`);
  }
  log(`queries: seeding ${fmt(userCount)} users and ${fmt(generationCount)} generations…`);
  const begun = performance.now();
  await recreateDatabase(database);
  await migrate(url);
  await withSeedSession(url, async (client) => {
    log('  users…');
    await seedUsers(client, userCount);
    await seedActivity(client, userCount, generationCount);
    log('  vacuum analyze…');
    await client.query('VACUUM ANALYZE');
  });
  await withClient(adminUrl, (client) =>
    client.query(`COMMENT ON DATABASE ${database} IS '${marker}'`),
  );
  log(`  seeded in ${fmt((performance.now() - begun) / 1000)} s`);
}

async function migrate(url: string): Promise<void> {
  const config = loadConfig({ DATABASE_URL: url });
  const handle = await openDatabase(
    config.database,
    createLogger({ logLevel: 'silent', logPretty: false }),
  );
  try {
    await migrateDatabase(handle);
  } finally {
    await handle.close();
  }
}

interface QueryCase {
  name: string;
  /** The path and query string of each request (called with the sample number). */
  path: (sample: number) => string;
}

const dayText = (daysAgo: number): string =>
  new Date(Date.now() - daysAgo * 86_400_000).toISOString().slice(0, 10);

async function benchQueries(): Promise<boolean> {
  const userCount = envInteger('BENCH_USERS', 1_000_000);
  const generationCount = envInteger('BENCH_GENERATIONS', 5_000_000);
  const samples = envInteger('BENCH_SAMPLES', 30);
  const database = queriesDatabase;
  await ensureSeeded(database, userCount, generationCount);
  const port = await freePort('127.0.0.1');
  const api = startChild('api', 'src/server.ts', {
    NODE_ENV: 'production',
    DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${database}`,
    DATABASE_POOL_SIZE: '10',
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    ADMIN_TOKENS: ADMIN_TOKEN,
    RATE_LIMIT_ENABLED: 'false',
    REDIS_URL: '',
    RUN_WORKER_IN_API: 'false',
    TELEGRAM_BOT_TOKEN: '',
  });
  const base = `http://127.0.0.1:${port}/api/v1`;
  try {
    const startBy = performance.now() + 60_000;
    for (;;) {
      if (hasExited(api)) throw new Error(`the API exited:\n${api.output()}`);
      const ok = await fetch(`${base}/health`).then(
        (res) => res.ok,
        () => false,
      );
      if (ok) break;
      if (performance.now() > startBy) throw new Error(`the API did not start:\n${api.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    // A user in the middle of the table, and some spread over it, for lookups by id and name.
    const someUser = (sample: number) => 1 + ((sample * 104_729 + 12_345) % userCount);
    const users = (query: string) => `/admin/users?${query}`;
    const q = (text: string) => `query=${encodeURIComponent(text)}`;
    const userCases: QueryCase[] = [
      { name: 'first page (no query, no filter)', path: () => users('') },
      { name: 'telegram id', path: (s) => users(q(String(telegramIdOf(someUser(s))))) },
      {
        name: 'username prefix, 3 letters (@ali)',
        path: (s) => users(q(`@${firstNameOf(someUser(s)).slice(0, 3).toLowerCase()}`)),
      },
      {
        name: 'username, whole (@name_1a2b3c)',
        path: (s) => {
          const user = Math.min(userCount, someUser(s) - (someUser(s) % 10) + 1); // u % 10 < 6
          const hex = createHash('md5').update(String(user)).digest('hex').slice(0, 6);
          return users(q(`@${firstNameOf(user).toLowerCase()}_${hex}`));
        },
      },
      { name: 'first name (Alisher)', path: (s) => users(q(firstNameOf(someUser(s)))) },
      {
        name: 'full name (Alisher Kar)',
        path: (s) => users(q(`${firstNameOf(someUser(s))} ${lastNameOf(someUser(s)).slice(0, 3)}`)),
      },
      { name: 'last name (Karimov)', path: (s) => users(q(lastNameOf(someUser(s)))) },
      { name: 'no match (zzzq)', path: () => users(q('zzzq')) },
      ...['active_7d', 'active_30d', 'paying', 'with_balance', 'banned', 'blocked', 'new'].map(
        (filter): QueryCase => ({
          name: `filter ${filter}`,
          path: () => users(`filter=${filter}`),
        }),
      ),
      {
        name: 'first name + filter active_30d',
        path: (s) => users(`${q(firstNameOf(someUser(s)))}&filter=active_30d`),
      },
      { name: 'filters paying + active_7d', path: () => users('filter=paying,active_7d') },
    ];
    const statsCases: QueryCase[] = [
      { name: 'default (the last 30 days)', path: () => '/admin/stats' },
      { name: 'today', path: () => `/admin/stats?from=${dayText(0)}&to=${dayText(0)}` },
      { name: 'the last 7 days', path: () => `/admin/stats?from=${dayText(6)}&to=${dayText(0)}` },
      { name: 'the last 90 days', path: () => `/admin/stats?from=${dayText(89)}&to=${dayText(0)}` },
      {
        name: 'the last 366 days (the most)',
        path: () => `/admin/stats?from=${dayText(365)}&to=${dayText(0)}`,
      },
    ];
    const allCases = [
      ...userCases.map((c) => ({ ...c, group: 'users' as const })),
      ...statsCases.map((c) => ({ ...c, group: 'stats' as const })),
    ].filter((c) => caseGroups.has(c.group));
    const times = new Map<string, number[]>(allCases.map((c) => [c.name, []]));
    const matched = new Map<string, number>();
    const request = async (path: string): Promise<{ ms: number; body: unknown }> => {
      const begun = performance.now();
      const res = await fetch(`${base}${path}`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      const body: unknown = await res.json();
      const ms = performance.now() - begun;
      if (res.status !== 200)
        throw new Error(`${path} answered ${res.status}: ${JSON.stringify(body)}`);
      return { ms, body };
    };
    const loadBefore = loadText();
    log(`queries: ${allCases.length} cases × ${samples} samples, one request at a time`);
    // Warm-up: each case once (and the count each matches). The first stats request of a range
    // rolls up the closed days nobody rolled up yet (no worker runs here): timed apart.
    const rolledUp = () =>
      withClient(`postgres://postgres@127.0.0.1:5432/${database}`, async (client) => {
        const { rows } = await client.query<{ days: string }>(
          'SELECT count(*) AS days FROM stats_days',
        );
        return Number(rows[0]?.days ?? 0);
      });
    const rolledBefore = await rolledUp();
    const warmUps: string[] = [];
    for (const c of allCases) {
      const { body, ms } = await request(c.path(0));
      if (c.group === 'stats') warmUps.push(`${c.name} ${fmt(ms / 1000, 1)} s`);
      matched.set(
        c.name,
        c.group === 'users'
          ? (body as { counts: { total: number } }).counts.total
          : (body as { generations: { total: number } }).generations.total,
      );
    }
    // Rounds over every case in turn, so that outside load hits all alike.
    for (let sample = 1; sample <= samples; sample++) {
      for (const c of allCases) times.get(c.name)?.push((await request(c.path(sample))).ms);
      if (sample % 10 === 0) log(`  round ${sample}/${samples}, load ${loadText()}`);
    }
    const loadAfter = loadText();
    const rolledAfter = await rolledUp();

    const summary = (group: 'users' | 'stats') => {
      const all = allCases
        .filter((c) => c.group === group)
        .flatMap((c) => times.get(c.name) ?? [])
        .sort((a, b) => a - b);
      return { p50: percentile(all, 0.5), p99: percentile(all, 0.99), max: all.at(-1) ?? 0 };
    };
    const mixes = (
      [
        ['users', 'GET /admin/users (every case above)'],
        ['stats', 'GET /admin/stats (every range above)'],
      ] as const
    )
      .filter(([group]) => caseGroups.has(group))
      .map(([group, name]) => ({ name, ...summary(group) }));
    out(
      `\n## Admin queries: ${fmt(userCount)} users, ${fmt(generationCount)} generations (database ${database}, cases ${[...caseGroups].join(', ')}); ${samples} requests per case, one at a time, over HTTP\n`,
    );
    out(`load average (1/5/15 min) before: ${loadBefore}; after: ${loadAfter}\n`);
    out(
      '| request | matching users (generations in range) | p50 ms | p99 ms | max ms | p99 ≤ 100 ms |',
    );
    out('| --- | ---: | ---: | ---: | ---: | --- |');
    for (const c of allCases) {
      const sorted = [...(times.get(c.name) ?? [])].sort((a, b) => a - b);
      const p99 = percentile(sorted, 0.99);
      const label =
        c.group === 'users' ? `GET /admin/users: ${c.name}` : `GET /admin/stats: ${c.name}`;
      const count = matched.get(c.name);
      out(
        `| ${label} | ${count === undefined ? '' : fmt(count)} | ${fmt(percentile(sorted, 0.5), 1)} | ${fmt(p99, 1)} | ${fmt(sorted.at(-1) ?? 0, 1)} | ${p99 <= GOAL_P99_MS ? 'yes' : '**no**'} |`,
      );
    }
    out('');
    out(
      '| mix | p50 ms | p99 ms | max ms | goal p99 ≤ 100 ms |\n| --- | ---: | ---: | ---: | --- |',
    );
    for (const s of mixes) {
      out(
        `| ${s.name} | ${fmt(s.p50, 1)} | ${fmt(s.p99, 1)} | ${fmt(s.max, 1)} | ${s.p99 <= GOAL_P99_MS ? 'met' : '**MISSED**'} |`,
      );
    }
    if (warmUps.length > 0) {
      out(
        `\nStats rollups (stats_days): ${fmt(rolledBefore)} days before the run, ${fmt(rolledAfter)} after; the warm-up (first) request of each range, which wrote the missing ones: ${warmUps.join('; ')}.`,
      );
    }
    const met = mixes.every((s) => s.p99 <= GOAL_P99_MS);
    out(met ? '\n**Goals met.**' : '\n**GOAL MISSED**: see the rows marked no.');
    return met;
  } finally {
    await stopChild(api, 15_000);
  }
}

// Per database: a run of one part or on another BENCH_DATABASE does not wait for (or drop the
// database of) a run on other databases.
const locks: pg.Client[] = [];
try {
  if (parts.has('broadcast'))
    locks.push(await lockRun(adminUrl, `bench:admin ${BROADCAST_DATABASE}`));
  if (parts.has('queries')) locks.push(await lockRun(adminUrl, `bench:admin ${queriesDatabase}`));
  out(`# bench:admin, ${new Date().toISOString()}`);
  const results: boolean[] = [];
  if (parts.has('broadcast')) results.push(await benchBroadcast());
  if (parts.has('queries')) results.push(await benchQueries());
  out(results.every(Boolean) ? '\nEvery goal met.' : '\nAt least one goal missed (above).');
} finally {
  for (const lock of locks) await lock.end();
}
