// Bot benchmark: updates per second handled by ONE bot process (src/bot.ts, as `npm run start:bot`
// runs it) long-polling a fake Bot API, and the p99 of the time from an update's arrival at the
// bot to the bot's first Bot API call for it, each beside its ceiling measured in the same run: a
// minimal grammY bot with the same runner setup making the same Bot API calls per update and no
// calls to our API (bench/bot-ceiling.ts). See docs/benchmarks.md.
//
//   npm run bench:bot
//
// Processes: the API (src/server.ts on PostgreSQL, no worker, no bot of its own, rate limit on but
// never tripping), our bot, the ceiling bot, each its own child; the fake Bot APIs
// (bench/telegram-fake.ts, one per bot) and the load in this process. Each user of the workload
// sends, one after the other (the next when the bot has answered the previous): /start, a tap on
// menu:balance, a text prompt (the bot answers with a settings card: catalog + quote), a tap on the
// card's start button g:<message id>:go (the bot submits a generation). An update is done when the
// last Bot API call expected for it arrives; any other call, or a call the fake refuses, is an
// error.
//
// Each round, for each bot (ours, ceiling, alternating, after a warm-up round of each), three
// phases, each with users of its own (new to the bot process, known to the API):
//   - throughput: BENCH_USERS (1,000) users at once, each sending its next update as soon as the
//     previous one is done; updates/s = their 4 x BENCH_USERS updates / (last done - first push);
//   - goal load: BENCH_USERS users, updates pushed at BENCH_RATE (1,000) per second (the next of a
//     user's updates waits its turn in the queue of users, about a second); p50/p99 of push -> the
//     bot's first Bot API call for that update (answerCallbackQuery: for that callback query);
//   - light load: the same at BENCH_LIGHT_RATE (250) per second, with proportionally fewer users:
//     the latency when the bot is not queueing.
// Settings (env): BENCH_USERS, BENCH_RATE, BENCH_LIGHT_RATE, BENCH_ROUNDS (3), BENCH_BOT_CPU_PROF (a
// directory: both bots run with --cpu-prof and write their profiles to its ours/ and ceiling/ when
// stopped). Exits non-zero on errors only (a child dying, a refused or unexpected Bot API call, an
// update not done within 30 s), never because a goal is missed.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Message, Update, User } from 'grammy/types';
import { nodeArgsFor } from '../test/helpers/entry-points.ts';
import {
  adminUrl,
  type Child,
  envInteger,
  fmt,
  freePort,
  GoalReport,
  hasExited,
  lockRun,
  log,
  recreateDatabase,
  startChild,
  stopChild,
  withClient,
} from './support.ts';
import { type BenchTelegram, type FakeCall, startBenchTelegram } from './telegram-fake.ts';

const benchDatabase = 'imagegen_bench_bot';
const databaseUrl = `postgres://postgres@127.0.0.1:5432/${benchDatabase}`;
const host = '127.0.0.1';
const apiToken = 'bench-token-0123456789abcdefghij';
const oursBotToken = '7000000001:bench-ours-0123456789abcdefghijkl';
const ceilingBotToken = '7000000002:bench-ceiling-0123456789abcdefgh';
const firstTelegramId = 9_100_000_001;
const stallMs = 30_000;

const userCount = envInteger('BENCH_USERS', 1_000);
const rate = envInteger('BENCH_RATE', 1_000);
const lightRate = envInteger('BENCH_LIGHT_RATE', 250);
const rounds = envInteger('BENCH_ROUNDS', 3);
const cpuProfDir = process.env.BENCH_BOT_CPU_PROF ? resolve(process.env.BENCH_BOT_CPU_PROF) : null;

// ---------------------------------------------------------------------------------------------
// The workload

type Step = 'start' | 'balance' | 'prompt' | 'go';
const SCRIPT: readonly Step[] = ['start', 'balance', 'prompt', 'go'];
/** The Bot API calls each update must cause, in order; the first one is timed. */
const EXPECTED: Readonly<Record<Step, readonly string[]>> = {
  start: ['sendMessage'],
  balance: ['answerCallbackQuery', 'sendMessage'],
  prompt: ['sendMessage'],
  go: ['answerCallbackQuery', 'editMessageText'],
};

interface BenchUser {
  readonly user: User;
  step: number;
  menuMessageId: number;
  promptMessageId: number;
  cardMessageId: number;
  startData: string;
  inflight: { step: Step; pushedAt: number; calls: number } | null;
}

type Markup = { inline_keyboard?: { callback_data?: string }[][] } | undefined;
const buttons = (markup: unknown): string[] =>
  ((markup as Markup)?.inline_keyboard ?? []).flat().map((button) => button.callback_data ?? '');

let updateId = 0;

function updateFor(fake: BenchTelegram, u: BenchUser, step: Step): Update {
  const chat = { id: u.user.id, type: 'private' as const, first_name: u.user.first_name };
  const date = Math.floor(Date.now() / 1000);
  const id = ++updateId;
  const text = (value: string): Update => {
    const message_id = fake.nextMessageId(u.user.id);
    if (step === 'prompt') u.promptMessageId = message_id;
    const command = value.startsWith('/');
    return {
      update_id: id,
      message: {
        message_id,
        date,
        chat,
        from: u.user,
        text: value,
        ...(command
          ? { entities: [{ type: 'bot_command', offset: 0, length: value.length }] }
          : {}),
      },
    };
  };
  const tap = (data: string, messageId: number): Update => ({
    update_id: id,
    callback_query: {
      id: `cb-${id}`,
      from: u.user,
      chat_instance: `ci-${u.user.id}`,
      data,
      message: fake.message(u.user.id, messageId) as Message,
    },
  });
  switch (step) {
    case 'start':
      return text('/start');
    case 'balance':
      return tap('menu:balance', u.menuMessageId);
    case 'prompt':
      return text(`a lighthouse at dusk, oil painting, number ${id}`);
    case 'go':
      return tap(u.startData, u.cardMessageId);
  }
}

/** What is wrong with the `index`-th call for an update of `step`, or null. */
function callProblem(u: BenchUser, step: Step, index: number, call: FakeCall): string | null {
  const expected = EXPECTED[step][index];
  if (call.method !== expected) {
    const text = typeof call.fields.text === 'string' ? `: ${call.fields.text.slice(0, 120)}` : '';
    return `${step}: call ${index + 1} was ${call.method}, expected ${expected ?? 'none'}${text}`;
  }
  const result = call.result as Message;
  if (step === 'start') {
    if (!buttons(call.fields.reply_markup).includes('menu:balance')) {
      return 'start: the reply has no menu:balance button';
    }
    u.menuMessageId = result.message_id;
  } else if (step === 'balance' && index === 1) {
    if (!buttons(call.fields.reply_markup).includes('menu:topup')) {
      return `balance: the reply is not the balance: ${String(call.fields.text).slice(0, 120)}`;
    }
  } else if (step === 'prompt') {
    const start = buttons(call.fields.reply_markup).find((data) => data.endsWith(':go'));
    if (start !== `g:${u.promptMessageId}:go`) {
      return `prompt: the reply is not a settings card with g:${u.promptMessageId}:go: ${String(call.fields.text).slice(0, 120)}`;
    }
    u.cardMessageId = result.message_id;
    u.startData = start;
  } else if (step === 'go' && index === 1) {
    if (Number(call.fields.message_id) !== u.cardMessageId) return 'go: edited another message';
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// One phase: a set of users through the script, all at once or paced

interface PhaseResult {
  updates: number;
  seconds: number;
  /** Push → first call, ms, all updates. */
  latencies: number[];
  byStep: Record<Step, number[]>;
  cpu: CpuUse;
  /** TCP connections the bot opened to the fake Bot API during the phase. */
  connections: number;
}

interface CpuUse {
  bot: number | null;
  api: number | null;
  postgres: number | null;
  bench: number;
}

const problems: string[] = [];
const problem = (message: string): void => {
  if (problems.length < 50) problems.push(message);
  if (problems.length <= 5) log(`  ! ${message}`);
};

interface Target {
  readonly name: 'ours' | 'ceiling';
  readonly fake: BenchTelegram;
  readonly bot: Child;
  readonly firstUserId: number;
}

let apiChild: Child | null = null;

type PhaseName = 'throughput' | 'goal' | 'light';
interface Phase {
  readonly name: PhaseName;
  readonly users: number;
  /** Updates pushed per second; null: each user's next update as soon as the previous is done. */
  readonly rate: number | null;
}
const PHASES: readonly Phase[] = [
  { name: 'throughput', users: userCount, rate: null },
  { name: 'goal', users: userCount, rate },
  {
    name: 'light',
    users: Math.max(1, Math.round((userCount * lightRate) / rate)),
    rate: lightRate,
  },
];

function runPhase(target: Target, firstUserId: number, phase: Phase): Promise<PhaseResult> {
  const { fake } = target;
  const mode = phase.name;
  const pace = phase.rate;
  const users = new Map<number, BenchUser>();
  for (let i = 0; i < phase.users; i++) {
    const id = firstUserId + i;
    users.set(id, {
      user: { id, is_bot: false, first_name: 'Ada', language_code: 'en' },
      step: 0,
      menuMessageId: 0,
      promptMessageId: 0,
      cardMessageId: 0,
      startData: '',
      inflight: null,
    });
  }
  const total = phase.users * SCRIPT.length;
  const latencies: number[] = [];
  const byStep: Record<Step, number[]> = { start: [], balance: [], prompt: [], go: [] };
  let finished = 0;
  let firstPush = 0;
  let lastDone = 0;
  let lastProgress = performance.now();
  /** Users whose next update may be pushed (paced phases): a queue. */
  const ready: BenchUser[] = [];
  let readyHead = 0;
  let pushed = 0;

  const push = (u: BenchUser): void => {
    const step = SCRIPT[u.step] as Step;
    const update = updateFor(fake, u, step);
    const now = performance.now();
    if (pushed === 0) firstPush = now;
    pushed++;
    u.inflight = { step, pushedAt: now, calls: 0 };
    fake.pushUpdate(update);
  };

  return new Promise<PhaseResult>((resolvePhase, rejectPhase) => {
    const cpuBefore = sampleCpu(target);
    const connectionsBefore = fake.connections();
    let ticker: NodeJS.Timeout | null = null;
    const watchdog = setInterval(() => {
      const dead = [target.bot, apiChild].find((child) => child !== null && hasExited(child));
      if (dead) fail(`${dead.name} exited during the run:\n${dead.output()}`);
      else if (performance.now() - lastProgress > stallMs) {
        const waiting = [...users.values()].filter((u) => u.inflight !== null).length;
        fail(
          `${target.name} ${mode}: no update done for ${stallMs / 1000} s (${finished}/${total} done, ${waiting} waiting for the bot, ${fake.pending()} not fetched)`,
        );
      }
    }, 500);
    const end = (): void => {
      clearInterval(watchdog);
      if (ticker) clearTimeout(ticker);
      fake.onCall = () => undefined;
    };
    const fail = (message: string): void => {
      end();
      rejectPhase(new Error(message));
    };
    const done = (): void => {
      end();
      resolvePhase({
        updates: finished,
        seconds: (lastDone - firstPush) / 1000,
        latencies,
        byStep,
        cpu: difference(sampleCpu(target), cpuBefore),
        connections: fake.connections() - connectionsBefore,
      });
    };
    /** The user is through (or failed): count its remaining updates out. */
    const retire = (u: BenchUser, counted: number): void => {
      u.inflight = null;
      finished += counted;
      if (finished >= total) done();
    };

    fake.onCall = (call: FakeCall) => {
      if (call.chatId === undefined) {
        if (call.error) problem(`${target.name}: ${call.method} refused: ${call.error}`);
        return;
      }
      const u = users.get(call.chatId);
      const flight = u?.inflight;
      if (!u || !flight) {
        problem(
          `${target.name}: ${call.method} for chat ${call.chatId} with no update of its pending`,
        );
        return;
      }
      const index = flight.calls++;
      if (index === 0) {
        const ms = call.arrivedAt - flight.pushedAt;
        latencies.push(ms);
        byStep[flight.step].push(ms);
      }
      const wrong = call.error
        ? `${flight.step}: ${call.method} refused by the Bot API: ${call.error}`
        : callProblem(u, flight.step, index, call);
      if (wrong) {
        problem(`${target.name} user ${u.user.id}: ${wrong}`);
        retire(u, SCRIPT.length - u.step); // the rest of its script cannot go on
        return;
      }
      if (flight.calls < EXPECTED[flight.step].length) return;
      lastProgress = lastDone = performance.now();
      u.step++;
      if (u.step >= SCRIPT.length) {
        retire(u, 1);
        return;
      }
      finished++;
      u.inflight = null;
      if (pace === null) push(u);
      else ready.push(u);
    };

    if (pace === null) {
      for (const u of users.values()) push(u);
      return;
    }
    ready.push(...users.values());
    const started = performance.now();
    let offered = 0;
    const tick = (): void => {
      const due = Math.floor(((performance.now() - started) / 1000) * pace);
      while (offered < due && readyHead < ready.length) {
        const u = ready[readyHead++] as BenchUser;
        push(u);
        offered++;
      }
      // Arrivals the users could not make (every one waiting for the bot) are not made up later.
      if (readyHead >= ready.length) offered = due;
      if (readyHead > 4096) {
        ready.splice(0, readyHead);
        readyHead = 0;
      }
      if (pushed < total) ticker = setTimeout(tick, 1);
    };
    tick();
  });
}

// ---------------------------------------------------------------------------------------------
// CPU time, from /proc (Linux)

function processCpuSeconds(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks / 100 : null; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

/** The PostgreSQL backends serving the benchmark's database (their title names it). */
function postgresCpuSeconds(): number | null {
  let total = 0;
  try {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
        if (!cmdline.startsWith('postgres: ') || !cmdline.includes(` ${benchDatabase} `)) continue;
        total += processCpuSeconds(Number(entry)) ?? 0;
      } catch {
        // gone
      }
    }
  } catch {
    return null;
  }
  return total;
}

function sampleCpu(target: Target): CpuUse {
  const own = process.cpuUsage();
  return {
    bot: processCpuSeconds(target.bot.process.pid),
    api: target.name === 'ours' ? processCpuSeconds(apiChild?.process.pid) : null,
    postgres: target.name === 'ours' ? postgresCpuSeconds() : null,
    bench: (own.user + own.system) / 1e6,
  };
}

function difference(after: CpuUse, before: CpuUse): CpuUse {
  const minus = (a: number | null, b: number | null) => (a === null || b === null ? null : a - b);
  return {
    bot: minus(after.bot, before.bot),
    api: minus(after.api, before.api),
    postgres: minus(after.postgres, before.postgres),
    bench: after.bench - before.bench,
  };
}

// ---------------------------------------------------------------------------------------------
// Processes and data

const children: Child[] = [];
function startTracked(
  name: string,
  script: string,
  env: Record<string, string>,
  nodeFlags: readonly string[] = [],
): Child {
  const child =
    nodeFlags.length === 0
      ? startChild(name, script, env)
      : startWithFlags(name, script, env, nodeFlags);
  children.push(child);
  // They log at LOG_LEVEL=warn: a warning or an error (the API unreachable, an update that
  // failed) means an update was not served as it should have been, even if its reply looked right.
  let pending = '';
  const scan = (chunk: Buffer): void => {
    const lines = (pending + chunk.toString()).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (/"level":\s*(40|50|60)\b|update failed|Error while fetching/.test(line)) {
        problem(`${name} logged: ${line.slice(0, 300)}`);
      }
    }
  };
  child.process.stdout?.on('data', scan);
  child.process.stderr?.on('data', scan);
  return child;
}

/** As support.ts's startChild, with flags for node itself (--cpu-prof is refused in NODE_OPTIONS). */
function startWithFlags(
  name: string,
  script: string,
  env: Record<string, string>,
  nodeFlags: readonly string[],
): Child {
  const child = spawn(process.execPath, [...nodeFlags, ...nodeArgsFor(script)], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { name, process: child, output: () => tail };
}

async function waitFor200(child: Child, url: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (hasExited(child)) throw new Error(`${child.name} exited:\n${child.output()}`);
    try {
      const response = await fetch(url);
      await response.arrayBuffer();
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${child.name} did not answer on ${url} within 60 s:\n${child.output()}`);
}

/** Until the bot has asked the fake for updates (it has started and is long-polling). */
async function waitForPolling(child: Child, fake: BenchTelegram): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!fake.polling()) {
    if (hasExited(child)) throw new Error(`${child.name} exited:\n${child.output()}`);
    if (Date.now() > deadline)
      throw new Error(`${child.name} did not poll within 60 s:\n${child.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every user the rounds will use for our bot, with credits: returning users, as a bot has. */
async function seed(count: number): Promise<void> {
  await withClient(databaseUrl, async (client) => {
    await client.query(
      `INSERT INTO users (telegram_id, first_name, language_code)
       SELECT ${firstTelegramId} + n, 'Ada', 'en' FROM generate_series(0, ${count - 1}) AS n`,
    );
    await client.query(
      `INSERT INTO ledger_entries (user_id, amount, kind) SELECT id, 1000, 'topup' FROM users`,
    );
    await client.query('ANALYZE');
  });
}

async function postgresVersion(): Promise<string> {
  return withClient(databaseUrl, async (client) => {
    const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
    return rows[0]?.server_version ?? 'unknown';
  });
}

// ---------------------------------------------------------------------------------------------
// Report

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);
function percentile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? 0;
}
const median = (values: readonly number[]): number => percentile(values, 0.5);

type Round = Record<PhaseName, PhaseResult>;

const perSecond = (phase: PhaseResult): number => phase.updates / phase.seconds;
const totalRate = (runs: readonly Round[]): number =>
  sum(runs.map((r) => r.throughput.updates)) / sum(runs.map((r) => r.throughput.seconds));
/** The median over the rounds of each round's percentile. */
const medianOf = (runs: readonly Round[], phase: PhaseName, q: number): number =>
  median(runs.map((r) => percentile(r[phase].latencies, q)));
/** CPU µs per update over the throughput phases, or null. */
function cpuMicros(runs: readonly Round[], key: keyof CpuUse): number | null {
  const phases = runs.map((r) => r.throughput);
  const values = phases.map((p) => p.cpu[key]);
  if (values.some((v) => v === null)) return null;
  return (sum(values as number[]) / sum(phases.map((p) => p.updates))) * 1e6;
}

async function report(ours: Round[], ceiling: Round[]): Promise<string> {
  const cpus = os.cpus();
  const ms = (value: number) => fmt(value, 1);
  const ratio = (a: number | null, b: number | null) =>
    a === null || b === null ? 'n/a' : fmt(a / b, 2);
  const light = PHASES[2] as Phase;
  const row = (label: string, o: number, c: number, shown: (v: number) => string, goal = '') =>
    `| ${label} | ${shown(o)} | ${shown(c)} | ${ratio(o, c)} | ${goal} |`;
  const oursCpu = cpuMicros(ours, 'bot');
  const ceilingCpu = cpuMicros(ceiling, 'bot');
  const goals = new GoalReport();
  const oursRate = totalRate(ours);
  const oursP99 = medianOf(ours, 'goal', 0.99);
  const lines = [
    `Date: ${new Date().toISOString()}`,
    `Machine: ${cpus.length} CPU (${cpus[0]?.model.trim() ?? 'unknown'}), ${fmt(os.totalmem() / 2 ** 30, 1)} GiB RAM, ${os.type()} ${os.release()} ${os.arch()}; load average before the run ${loadBefore}`,
    `Node ${process.version}, PostgreSQL ${await postgresVersion()} on ${host}`,
    `Workload: per user /start, menu:balance, a prompt (settings card), g:<id>:go (submit); a warm-up round, then ${rounds} rounds alternating ours and ceiling`,
    '',
    '| measure | ours | ceiling | ours / ceiling | goal |',
    '| --- | ---: | ---: | ---: | --- |',
    row(
      `updates/s, ${fmt(userCount)} users with no pause`,
      totalRate(ours),
      totalRate(ceiling),
      (v) => fmt(v),
      `≥ 1,000: ${goals.check('updates/s', oursRate >= 1_000)}`,
    ),
    row(
      `p99 ms, push → first Bot API call, ${fmt(rate)} updates/s offered`,
      medianOf(ours, 'goal', 0.99),
      medianOf(ceiling, 'goal', 0.99),
      ms,
      `≤ 50 ms: ${goals.check('p99 at the offered rate', oursP99 <= 50)}`,
    ),
    row('p50 ms, same', medianOf(ours, 'goal', 0.5), medianOf(ceiling, 'goal', 0.5), ms),
    row(
      `p99 ms, ${fmt(lightRate)} updates/s offered`,
      medianOf(ours, 'light', 0.99),
      medianOf(ceiling, 'light', 0.99),
      ms,
    ),
    row('p50 ms, same', medianOf(ours, 'light', 0.5), medianOf(ceiling, 'light', 0.5), ms),
    `| bot process CPU µs per update | ${oursCpu === null ? 'n/a' : fmt(oursCpu)} | ${ceilingCpu === null ? 'n/a' : fmt(ceilingCpu)} | ${ratio(oursCpu, ceilingCpu)} | |`,
    `| bot process on a core of its own, updates/s (10⁶ / CPU µs) | ${oursCpu === null ? 'n/a' : fmt(1e6 / oursCpu)} | ${ceilingCpu === null ? 'n/a' : fmt(1e6 / ceilingCpu)} | ${ratio(ceilingCpu, oursCpu)} | ≥ 1,000: ${goals.check('updates/s on a core of its own', oursCpu !== null && 1e6 / oursCpu >= 1_000)} |`,
    '',
    'updates/s: all throughput phases together; p99 and p50: the median over the rounds; CPU: user + system',
    'from /proc over the throughput phases. The last row is an upper bound derived from the CPU time, not',
    'a measurement: the bot process alone, its API and Bot API answering instantly.',
    '',
    goals.summary(),
    '',
    `| round | bot | updates/s (no pause) | p50 / p99 ms (no pause) | achieved /s at ${fmt(rate)} | p50 / p99 / max ms at ${fmt(rate)}/s | p50 / p99 / max ms at ${fmt(lightRate)}/s |`,
    '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  const spread = (values: number[]) =>
    `${ms(percentile(values, 0.5))} / ${ms(percentile(values, 0.99))} / ${ms(Math.max(...values))}`;
  for (let i = 0; i < rounds; i++) {
    for (const [name, runs] of [
      ['ours', ours],
      ['ceiling', ceiling],
    ] as const) {
      const r = runs[i];
      if (!r) continue;
      const t = r.throughput;
      lines.push(
        `| ${i + 1} | ${name} | ${fmt(perSecond(t))} | ${ms(percentile(t.latencies, 0.5))} / ${ms(percentile(t.latencies, 0.99))} | ${fmt(perSecond(r.goal))} | ${spread(r.goal.latencies)} | ${spread(r.light.latencies)} |`,
      );
    }
  }
  const cpu = (runs: Round[], key: keyof CpuUse) => {
    const value = cpuMicros(runs, key);
    return value === null ? 'n/a' : fmt(value);
  };
  lines.push(
    '',
    'CPU time per update in the throughput phases (user + system, from /proc), µs:',
    '',
    '| process | ours | ceiling |',
    '| --- | ---: | ---: |',
    `| bot process | ${cpu(ours, 'bot')} | ${cpu(ceiling, 'bot')} |`,
    `| API process | ${cpu(ours, 'api')} | — |`,
    `| PostgreSQL backends of the benchmark's database | ${cpu(ours, 'postgres')} | — |`,
    `| the benchmark's process (fake Bot API + load) | ${cpu(ours, 'bench')} | ${cpu(ceiling, 'bench')} |`,
    '',
    'Push → first Bot API call by update, all rounds, p50 / p99 ms:',
    '',
    `| update | first call | ours at ${fmt(rate)}/s | ceiling at ${fmt(rate)}/s | ours at ${fmt(lightRate)}/s | ceiling at ${fmt(lightRate)}/s |`,
    '| --- | --- | ---: | ---: | ---: | ---: |',
  );
  for (const step of SCRIPT) {
    const cell = (runs: Round[], phase: PhaseName) => {
      const values = runs.flatMap((r) => r[phase].byStep[step]);
      return `${ms(percentile(values, 0.5))} / ${ms(percentile(values, 0.99))}`;
    };
    lines.push(
      `| ${step} | ${EXPECTED[step][0]} | ${cell(ours, 'goal')} | ${cell(ceiling, 'goal')} | ${cell(ours, 'light')} | ${cell(ceiling, 'light')} |`,
    );
  }
  lines.push(
    '',
    `Users per phase: ${PHASES.map((p) => `${p.name} ${fmt(p.users)}`).join(', ')}; ${light.name} load keeps the same turn of about a second per user.`,
  );
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------

let loadBefore = '';

async function main(): Promise<number> {
  const lock = await lockRun(adminUrl, 'bench:bot');
  const fakes: BenchTelegram[] = [];
  try {
    loadBefore = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    loadBefore = 'n/a';
  }
  try {
    await recreateDatabase(benchDatabase);
    const oursFake = await startBenchTelegram({ token: oursBotToken, botId: 7000000001 });
    const ceilingFake = await startBenchTelegram({ token: ceilingBotToken, botId: 7000000002 });
    fakes.push(oursFake, ceilingFake);

    const apiPort = await freePort(host);
    const apiUrl = `http://${host}:${apiPort}`;
    log(`starting the API on ${apiUrl} (it migrates ${databaseUrl})`);
    apiChild = startTracked('API', 'src/server.ts', {
      NODE_ENV: 'production',
      DATABASE_URL: databaseUrl,
      DATABASE_POOL_SIZE: '10',
      PORT: String(apiPort),
      HOST: host,
      API_TOKENS: apiToken,
      LOG_LEVEL: 'warn',
      LOG_PRETTY: 'false',
      RUN_MIGRATIONS: 'true',
      // On, in memory, at the largest max the config accepts: it costs what it costs, never trips.
      RATE_LIMIT_ENABLED: 'true',
      RATE_LIMIT_MAX: '1000000',
      REDIS_URL: '',
      // No worker to compete for the CPU (the generations stay queued), no bot of its own.
      RUN_WORKER_IN_API: 'false',
      TELEGRAM_BOT_TOKEN: '',
      RUN_BOT_IN_API: 'false',
      GENERATION_PROVIDER: 'local',
      DELIVERY_WEBHOOK_URL: '',
    });
    await waitFor200(apiChild, `${apiUrl}/api/v1/health`);
    const usersPerRound = sum(PHASES.map((phase) => phase.users));
    const usersPerBot = (rounds + 1) * usersPerRound;
    await seed(usersPerBot);
    log(`seeded ${fmt(usersPerBot)} users`);

    const botEnv = (fake: BenchTelegram, token: string): Record<string, string> => ({
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      LOG_PRETTY: 'false',
      REDIS_URL: '',
      DATABASE_URL: databaseUrl,
      TELEGRAM_BOT_TOKEN: token,
      TELEGRAM_API_ROOT: fake.apiRoot,
      BOT_WEBHOOK_URL: '',
      BOT_WEBHOOK_SECRET: '',
    });
    log('starting our bot (src/bot.ts) and the ceiling bot (bench/bot-ceiling.ts)');
    const oursBot = startTracked(
      'our bot',
      'src/bot.ts',
      {
        ...botEnv(oursFake, oursBotToken),
        API_URL: apiUrl,
        API_TOKEN: apiToken,
        BOT_THROTTLE_PER_MINUTE: '10000',
        DEFAULT_LANGUAGE: 'en',
      },
      cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}/ours`] : [],
    );
    const ceilingBot = startTracked(
      'ceiling bot',
      'bench/bot-ceiling.ts',
      {
        ...botEnv(ceilingFake, ceilingBotToken),
        CEILING_BOT_TOKEN: ceilingBotToken,
        CEILING_API_ROOT: ceilingFake.apiRoot,
      },
      cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}/ceiling`] : [],
    );
    await waitForPolling(oursBot, oursFake);
    await waitForPolling(ceilingBot, ceilingFake);

    const targets: readonly Target[] = [
      { name: 'ours', fake: oursFake, bot: oursBot, firstUserId: firstTelegramId },
      {
        name: 'ceiling',
        fake: ceilingFake,
        bot: ceilingBot,
        firstUserId: firstTelegramId + usersPerBot,
      },
    ];
    const results: Record<'ours' | 'ceiling', Round[]> = { ours: [], ceiling: [] };
    const usersTaken = { ours: 0, ceiling: 0 };
    for (let round = 0; round <= rounds; round++) {
      for (const target of targets) {
        const label = round === 0 ? 'warm-up' : `round ${round}/${rounds}`;
        const measured: Partial<Round> = {};
        for (const phase of PHASES) {
          const first = target.firstUserId + usersTaken[target.name];
          usersTaken[target.name] += phase.users;
          measured[phase.name] = await runPhase(target, first, phase);
        }
        const r = measured as Round;
        log(
          `${label} ${target.name.padEnd(7)}: ${fmt(perSecond(r.throughput))} updates/s; at ${fmt(rate)}/s offered ${fmt(perSecond(r.goal))}/s, p50 ${fmt(percentile(r.goal.latencies, 0.5), 1)} ms, p99 ${fmt(percentile(r.goal.latencies, 0.99), 1)} ms; at ${fmt(lightRate)}/s p50 ${fmt(percentile(r.light.latencies, 0.5), 1)} ms, p99 ${fmt(percentile(r.light.latencies, 0.99), 1)} ms; Bot API connections opened ${PHASES.map((p) => r[p.name].connections).join(' + ')}`,
        );
        if (round > 0) results[target.name].push(r);
        await new Promise((wait) => setTimeout(wait, 500));
      }
    }
    process.stdout.write(await report(results.ours, results.ceiling));
  } finally {
    await Promise.all(children.map((child) => stopChild(child, 10_000)));
    await Promise.all(fakes.map((fake) => fake.close()));
    await lock.end();
  }
  if (problems.length === 0) return 0;
  process.stdout.write(`\nErrors:\n${problems.map((p) => `- ${p}`).join('\n')}\n`);
  return 1;
}

// Whatever ends this process (an uncaught error, a closed pipe), no child outlives it.
process.on('exit', () => {
  for (const child of children) if (!hasExited(child)) child.process.kill('SIGKILL');
});
// A reader of the progress that goes away (| head) must not end the run before its cleanup.
process.stderr.on('error', () => undefined);

let exitCode = 1;
const interrupted = (signal: NodeJS.Signals): void => {
  log(`${signal}: stopping the processes`);
  void Promise.all(children.map((child) => stopChild(child, 10_000))).finally(() =>
    process.exit(130),
  );
};
process.once('SIGINT', interrupted);
process.once('SIGTERM', interrupted);
try {
  exitCode = await main();
} catch (error) {
  log(`benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : error}`);
}
process.exit(exitCode);
