// The web apps' Lighthouse scores (issue 10), beside a ceiling measured in the same run.
//
//   npm run bench:web
//
// One real API process (`node dist/server.js`, the embedded database in memory, the offline
// provider, the apps as `npm install` built them) with a user who has made a few images, and
// Debian's Chromium driven by Lighthouse (mobile profile: a mid-range phone on a slow 4G network,
// simulated). Pages, each BENCH_ROUNDS (3) times in turn, the median of each reported:
//  - the operator panel's sign-in (/admin/, nobody signed in);
//  - the panel's dashboard, its user list, its models and one model's page, its broadcasts and
//    the broadcast composer, signed in by an operator session opened through
//    POST /api/v1/admin/auth/telegram with a Login Widget authorization signed as Telegram signs
//    it (the session cookie sent with every request);
//  - the Mini App's gallery (/app/ with the user's signed initData in the launch fragment, as
//    Telegram opens it), showing the user's images;
//  - the dashboard and the user list again in Lighthouse's desktop profile (where operators mostly
//    work), for comparison: the goals are the mobile profile's;
//  - the ceiling: a page with one line of text and no script, served by a bare node:http server,
//    which scores what this machine allows at best in the same minute.
// And the Mini App's first load: every script its index.html loads, brotli-compressed as the
// server serves it (the build writes .br files beside them).
// Goals: performance ≥ 95 and accessibility ≥ 95 for every page of both apps; the Mini App's first
// load ≤ 150 KB of compressed JavaScript. A missed goal is reported, never an error: the exit code
// is non-zero only when something fails (the server, Chromium, Lighthouse).
// Settings: BENCH_ROUNDS (3), BENCH_PAGES (only pages whose name contains it), BENCH_REPORTS (a
// folder: every run's Lighthouse report as JSON), CHROMIUM_PATH (/usr/bin/chromium).
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as chromeLauncher from 'chrome-launcher';
import lighthouse from 'lighthouse';
import desktopConfig from 'lighthouse/core/config/desktop-config.js';
import { initDataSecret, signInitData } from '../src/deps/telegram-init-data.ts';
import { signTelegramLogin, telegramLoginSecret } from '../src/deps/telegram-login.ts';
import {
  type Child,
  envInteger,
  fmt,
  freePort,
  GoalReport,
  hasExited,
  log,
  startChild,
  stopChild,
} from './support.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const rounds = envInteger('BENCH_ROUNDS', 3);
/** A folder for every run's Lighthouse report (JSON), to see what an audit found. */
const reportDir = process.env.BENCH_REPORTS;
/** Only the pages whose name contains this text (and the ceiling). */
const pageFilter = process.env.BENCH_PAGES?.toLowerCase();
const chromePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const botToken = '123456789:AAbench-web-token-0123456789abcdefghij';
const apiToken = 'bench-web-api-token-0123456789abcdef';
const adminToken = 'bench-web-admin-token-0123456789abcdef';
const operatorId = 900_000_001;
const userId = 900_000_002;
const images = 6;

interface Started extends Child {
  origin: string;
}

async function startServer(): Promise<Started> {
  const port = await freePort('127.0.0.1');
  const child = startChild('api', 'src/server.ts', {
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PORT: String(port),
    DATABASE_URL: 'memory://',
    GENERATION_PROVIDER: 'local',
    API_TOKENS: apiToken,
    ADMIN_TOKENS: adminToken,
    TELEGRAM_BOT_TOKEN: botToken,
    // The Bot API is not reachable here: no bot in the process, deliveries fail at once.
    RUN_BOT_IN_API: 'false',
    TELEGRAM_API_ROOT: 'http://127.0.0.1:9',
    ADMIN_TELEGRAM_IDS: String(operatorId),
    RATE_LIMIT_MAX: '100000',
    MAX_PARALLEL_GENERATIONS_PER_USER: String(images),
  });
  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (hasExited(child)) throw new Error(`the server exited:\n${child.output()}`);
    const status = await fetch(`${origin}/api/v1/health`).then(
      (response) => response.status,
      () => 0,
    );
    if (status === 200) return { ...child, origin };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await stopChild(child, 1000);
  throw new Error(`the server did not answer /api/v1/health within 120 s:\n${child.output()}`);
}

async function call(
  origin: string,
  method: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  const response = await fetch(`${origin}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${apiToken}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (!response.ok) {
    throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  }
  return response;
}

/** A user with `images` finished images (the offline provider draws them) and some credits. */
async function seedUser(origin: string): Promise<void> {
  await call(origin, 'POST', '/api/v1/users/sync', {
    telegram_id: userId,
    first_name: 'Dilnoza',
    username: 'dilnoza_web',
    language_code: 'en',
  });
  const models = (await (await call(origin, 'GET', '/api/v1/models', undefined)).json()) as {
    models: { key: string; available?: boolean }[];
  };
  const model = models.models.find((candidate) => candidate.available !== false);
  if (!model) throw new Error('no model is available');
  await call(
    origin,
    'POST',
    `/api/v1/admin/users/${userId}/credits`,
    { amount: 1000, reason: 'bench:web' },
    { authorization: `Bearer ${adminToken}` },
  );
  const ids: string[] = [];
  for (let n = 0; n < images; n++) {
    const accepted = (await (
      await call(
        origin,
        'POST',
        '/api/v1/generations',
        { telegram_id: userId, model: model.key, prompt: `a lighthouse at dusk, study ${n + 1}` },
        { 'idempotency-key': `bench-web-${n}` },
      )
    ).json()) as { id: string };
    ids.push(accepted.id);
  }
  const deadline = Date.now() + 120_000;
  for (const id of ids) {
    for (;;) {
      const generation = (await (
        await call(origin, 'GET', `/api/v1/generations/${id}`, undefined)
      ).json()) as { status: string };
      if (generation.status === 'succeeded') break;
      if (generation.status === 'failed' || generation.status === 'cancelled') {
        throw new Error(`generation ${id} ${generation.status}`);
      }
      if (Date.now() > deadline) throw new Error(`generation ${id} still ${generation.status}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** An operator session, opened as the panel opens it after the Login Widget: its cookie. */
async function operatorCookie(origin: string): Promise<string> {
  const login = signTelegramLogin(
    { id: operatorId, first_name: 'Operator', auth_date: Math.floor(Date.now() / 1000) },
    telegramLoginSecret(botToken),
  );
  const response = await fetch(`${origin}/api/v1/admin/auth/telegram`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(login),
  });
  if (!response.ok) throw new Error(`sign-in: ${response.status} ${await response.text()}`);
  const cookie = response.headers.get('set-cookie');
  if (!cookie) throw new Error('sign-in answered no cookie');
  return cookie.split(';')[0] as string;
}

/** The launch fragment Telegram puts on the Mini App's address: the signed initData. */
function miniAppFragment(): string {
  const initData = signInitData(
    {
      query_id: 'AAHdF6IQAAAAAN0XohDhrOrc',
      user: JSON.stringify({ id: userId, first_name: 'Dilnoza', language_code: 'en' }),
      auth_date: String(Math.floor(Date.now() / 1000)),
    },
    initDataSecret(botToken),
  );
  const theme = JSON.stringify({ bg_color: '#ffffff', text_color: '#000000' });
  return `#tgWebAppData=${encodeURIComponent(initData)}&tgWebAppVersion=8.0&tgWebAppPlatform=android&tgWebAppThemeParams=${encodeURIComponent(theme)}`;
}

async function startCeiling(): Promise<{ server: Server; url: string }> {
  const html =
    '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    '<title>Ceiling</title></head><body><main><h1>Ceiling</h1></main></body></html>';
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(html);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
}

interface PageCase {
  name: string;
  url: string;
  headers?: Record<string, string>;
  /** Whether the goals apply (the ceiling and the desktop rows are for comparison only). */
  goal: boolean;
  /** Lighthouse's desktop profile instead of the mobile one. */
  desktop?: boolean;
}

interface Sample {
  performance: number;
  accessibility: number;
  fcpMs: number;
  lcpMs: number;
  tbtMs: number;
  cls: number;
  scriptBytes: number;
  failedAudits: string[];
  /** Lighthouse's measure of this machine's CPU during the run (a mid-range phone is ~1,000). */
  benchmarkIndex: number;
}

interface AuditLike {
  score: number | null;
  numericValue?: number;
  title: string;
  details?: { items?: { resourceType?: string; transferSize?: number }[] };
}

/**
 * One Lighthouse run. A trace Chromium failed to record (NO_NAVSTART and its kind, which a loaded
 * machine causes now and then) is run again, up to twice, and counted.
 */
async function measure(port: number, page: PageCase, attempt = 1): Promise<Sample> {
  const result = await lighthouse(
    page.url,
    {
      port,
      output: 'json',
      logLevel: 'error',
      onlyCategories: ['performance', 'accessibility'],
      ...(page.headers ? { extraHeaders: page.headers } : {}),
    },
    page.desktop ? desktopConfig : undefined,
  );
  const lhr = result?.lhr;
  if (!lhr) throw new Error(`Lighthouse gave no result for ${page.name}`);
  if (reportDir) {
    mkdirSync(reportDir, { recursive: true });
    const name = `${page.name.replace(/[^a-z0-9]+/gi, '-')}-${Date.now()}.json`;
    writeFileSync(join(reportDir, name), JSON.stringify(lhr));
  }
  if (lhr.runtimeError) {
    if (attempt < 3) {
      log(`  ${lhr.runtimeError.code}: running it again`);
      retries++;
      return measure(port, page, attempt + 1);
    }
    throw new Error(`${page.name}: ${lhr.runtimeError.message}`);
  }
  const audits = lhr.audits as Record<string, AuditLike>;
  const numeric = (id: string): number => audits[id]?.numericValue ?? Number.NaN;
  const requests = audits['network-requests']?.details?.items ?? [];
  const accessibilityRefs = lhr.categories.accessibility?.auditRefs ?? [];
  return {
    performance: Math.round((lhr.categories.performance?.score ?? 0) * 100),
    accessibility: Math.round((lhr.categories.accessibility?.score ?? 0) * 100),
    fcpMs: numeric('first-contentful-paint'),
    lcpMs: numeric('largest-contentful-paint'),
    tbtMs: numeric('total-blocking-time'),
    cls: numeric('cumulative-layout-shift'),
    scriptBytes: requests
      .filter((item) => item.resourceType === 'Script')
      .reduce((sum, item) => sum + (item.transferSize ?? 0), 0),
    benchmarkIndex: lhr.environment.benchmarkIndex,
    failedAudits: accessibilityRefs
      .filter((ref) => ref.weight > 0 && audits[ref.id]?.score === 0)
      .map((ref) => audits[ref.id]?.title ?? ref.id),
  };
}

let retries = 0;

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] as number;
};

/** The Mini App's first load: the scripts its built index.html loads, as the .br files served. */
function miniAppFirstLoad(): { files: number; rawBytes: number; brotliBytes: number } {
  const dir = join(repoRoot, 'dist', 'web', 'app');
  const html = readFileSync(join(dir, 'index.html'), 'utf8');
  // Ours only: Telegram's telegram-web-app.js (from telegram.org) is the same cached file for
  // every Mini App, and not this build's to shrink.
  const sources = [...html.matchAll(/<(?:script|link)[^>]+(?:src|href)="([^"]+\.js)"/g)]
    .map((match) => match[1] as string)
    .filter((source) => !/^https?:\/\//.test(source))
    .map((source) => source.replace(/^\.?\/?(app\/)?/, ''));
  if (sources.length === 0) throw new Error('dist/web/app/index.html loads no script');
  let rawBytes = 0;
  let brotliBytes = 0;
  for (const source of sources) {
    rawBytes += statSync(join(dir, source)).size;
    brotliBytes += statSync(join(dir, `${source}.br`)).size;
  }
  return { files: sources.length, rawBytes, brotliBytes };
}

const load = (): string =>
  loadavg()
    .map((value) => value.toFixed(1))
    .join(' / ');

async function main(): Promise<void> {
  const loadBefore = load();
  log('starting the API (memory://) and seeding a user with images…');
  // Chromium first: a machine without it fails here, before a server is left behind.
  const chrome = await chromeLauncher.launch({
    chromePath,
    chromeFlags: ['--headless=new', '--no-sandbox', '--disable-gpu'],
  });
  const ceiling = await startCeiling();
  const server = await startServer().catch(async (error: unknown) => {
    await chrome.kill();
    ceiling.server.close();
    throw error;
  });
  try {
    await seedUser(server.origin);
    const cookie = await operatorCookie(server.origin);
    const pages: PageCase[] = [
      { name: 'ceiling: one line of text, no script', url: ceiling.url, goal: false },
      { name: 'panel: sign-in (/admin/)', url: `${server.origin}/admin/`, goal: true },
      {
        name: 'panel: dashboard (signed in)',
        url: `${server.origin}/admin/`,
        headers: { cookie },
        goal: true,
      },
      {
        name: 'panel: users (signed in)',
        url: `${server.origin}/admin/users`,
        headers: { cookie },
        goal: true,
      },
      {
        name: 'panel: a user, with thumbnails of their generations (signed in)',
        url: `${server.origin}/admin/users/${userId}`,
        headers: { cookie },
        goal: true,
      },
      {
        name: 'panel: models and prices (signed in)',
        url: `${server.origin}/admin/models`,
        headers: { cookie },
        goal: true,
      },
      {
        name: 'panel: a model, its form and price history (signed in)',
        url: `${server.origin}/admin/models/nano-banana`,
        headers: { cookie },
        goal: true,
      },
      {
        name: 'panel: broadcasts (signed in)',
        url: `${server.origin}/admin/broadcasts`,
        headers: { cookie },
        goal: true,
      },
      {
        name: 'panel: new broadcast, the composer (signed in)',
        url: `${server.origin}/admin/broadcasts/new`,
        headers: { cookie },
        goal: true,
      },
      {
        name: 'Mini App: gallery (/app/ from Telegram)',
        url: `${server.origin}/app/${miniAppFragment()}`,
        goal: true,
      },
      // Where operators mostly open the panel: Lighthouse's desktop profile, for comparison.
      {
        name: 'panel, desktop profile: dashboard (signed in)',
        url: `${server.origin}/admin/`,
        headers: { cookie },
        goal: false,
        desktop: true,
      },
      {
        name: 'panel, desktop profile: users (signed in)',
        url: `${server.origin}/admin/users`,
        headers: { cookie },
        goal: false,
        desktop: true,
      },
    ];
    if (pageFilter) {
      pages.splice(
        0,
        pages.length,
        ...pages.filter(
          (page) => page.url === ceiling.url || page.name.toLowerCase().includes(pageFilter),
        ),
      );
    }
    const samples = new Map<string, Sample[]>(pages.map((page) => [page.name, []]));
    for (let round = 1; round <= rounds; round++) {
      for (const page of pages) {
        log(`round ${round}/${rounds}: ${page.name}`);
        samples.get(page.name)?.push(await measure(chrome.port, page));
      }
    }

    const goals = new GoalReport();
    const rows: string[] = [];
    for (const page of pages) {
      const taken = samples.get(page.name) ?? [];
      const performance = median(taken.map((sample) => sample.performance));
      const accessibility = median(taken.map((sample) => sample.accessibility));
      const failed = [...new Set(taken.flatMap((sample) => sample.failedAudits))];
      const verdict = page.goal
        ? goals.check(
            `${page.name}: performance ${performance}, accessibility ${accessibility}`,
            performance >= 95 && accessibility >= 95,
          )
        : page.desktop
          ? 'for comparison'
          : 'ceiling';
      rows.push(
        `| ${page.name} | ${performance} (${taken.map((s) => s.performance).join(', ')}) | ${accessibility} | ${fmt(median(taken.map((s) => s.fcpMs)))} | ${fmt(median(taken.map((s) => s.lcpMs)))} | ${fmt(median(taken.map((s) => s.tbtMs)))} | ${median(taken.map((s) => s.cls)).toFixed(3)} | ${fmt(median(taken.map((s) => s.scriptBytes)) / 1024, 1)} | ${fmt(median(taken.map((s) => s.benchmarkIndex)))} | ${verdict}${failed.length ? ` (failing: ${failed.join('; ')})` : ''} |`,
      );
    }
    const firstLoad = miniAppFirstLoad();
    const firstLoadKb = firstLoad.brotliBytes / 1024;

    const out: string[] = [];
    out.push(`# bench:web, ${new Date().toISOString()}`, '');
    out.push(
      `Lighthouse ${lighthouseVersion()} (mobile profile unless a row says desktop; simulated throttling), Chromium ${chromeVersion()}, ${rounds} rounds per page, medians (every round's performance in brackets).`,
    );
    out.push(
      `Load average (1/5/15 min) before: ${loadBefore}; after: ${load()}. Runs repeated after a failed trace: ${retries}.`,
      '',
    );
    out.push(
      '| page | performance | accessibility | FCP ms | LCP ms | TBT ms | CLS | JS transferred KB | CPU index | goal ≥ 95 / ≥ 95 |',
    );
    out.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
    out.push(...rows, '');
    out.push('| Mini App first load | scripts | raw KB | brotli KB | goal ≤ 150 KB |');
    out.push('| --- | ---: | ---: | ---: | --- |');
    out.push(
      `| dist/web/app/index.html | ${firstLoad.files} | ${fmt(firstLoad.rawBytes / 1024, 1)} | ${fmt(firstLoadKb, 1)} | ${goals.check(`Mini App first load ${fmt(firstLoadKb, 1)} KB`, firstLoadKb <= 150)} |`,
    );
    out.push('', goals.summary());
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    await chrome.kill();
    ceiling.server.close();
    await stopChild(server, 30_000);
  }
}

function lighthouseVersion(): string {
  const manifest = JSON.parse(
    readFileSync(join(repoRoot, 'node_modules', 'lighthouse', 'package.json'), 'utf8'),
  ) as { version: string };
  return manifest.version;
}

function chromeVersion(): string {
  return execFileSync(chromePath, ['--version'], { encoding: 'utf8' })
    .replace(/^Chromium\s*/, '')
    .trim();
}

await main();
