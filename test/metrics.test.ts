import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DatabaseHandle, openDatabase } from '../src/db/client.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { recordGenerationFailure } from '../src/services/generation-outcomes.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { adminAuth, botAuth, buildTestApp, miniAppAuth, testConfig } from './helpers/app.ts';
import {
  createPrivateDatabase,
  dropPrivateDatabase,
  freshTelegramId,
  onPostgres,
  openTestDatabase,
  silentLogger,
  testDatabaseUrl,
} from './helpers/database.ts';
import {
  ADMIN_OPERATOR_ID,
  operatorCookie,
  operatorSettings,
  SUPPORT_OPERATOR_ID,
} from './helpers/operators.ts';
import { createTestModel, submit, type TestModel, userWithCredits } from './helpers/pipeline.ts';

// GET /metrics. What the database gives is exact only on a database of its own (on PostgreSQL
// every test file shares one), so this file makes one; no worker runs, so a job stays queued.

let database: DatabaseHandle;
let app: FastifyInstance;
let model: TestModel;
let privateUrl: string | null = null;
const provider = new ScriptedProvider();
const registry = new ProviderRegistry([provider], 'catalog');

beforeAll(async () => {
  if (onPostgres && testDatabaseUrl) {
    privateUrl = await createPrivateDatabase('metrics');
    database = await openDatabase({ kind: 'postgres', url: privateUrl, poolSize: 5 }, silentLogger);
  } else {
    database = await openTestDatabase.embedded();
  }
  app = await buildTestApp({ ...operatorSettings }, database, { providers: registry });
  model = await createTestModel(database.db, {
    provider: provider.name,
    prices: [{ conditions: {}, credits: 10 }],
  });
}, 120_000);

afterAll(async () => {
  await app?.close();
  await database?.close();
  if (privateUrl) {
    await dropPrivateDatabase(privateUrl);
  }
});

const scrape = (headers: Record<string, string> = adminAuth) =>
  app.inject({ method: 'GET', url: '/metrics', headers });

/** The samples of a Prometheus text exposition: `name{labels}` → value; throws on a bad line. */
function parse(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      expect(line).toMatch(/^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$/);
      continue;
    }
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.e+-]+|NaN|[+-]Inf)$/.exec(
      line,
    );
    expect(match, `a sample line: ${line}`).not.toBeNull();
    if (match?.[1] && match[2]) samples.set(match[1], Number(match[2]));
  }
  return samples;
}

describe('GET /metrics: access', () => {
  it('401 without a token, 403 for the bot, a Mini App user and a support operator; 200 for admins', async () => {
    expect((await app.inject({ url: '/metrics' })).statusCode).toBe(401);
    expect((await scrape(botAuth)).statusCode).toBe(403);
    expect((await scrape(miniAppAuth(freshTelegramId()))).statusCode).toBe(403);
    const support = await scrape(await operatorCookie(app, SUPPORT_OPERATOR_ID));
    expect(support.statusCode).toBe(403);
    expect(support.headers['content-type']).toContain('application/problem+json');
    const admin = await scrape(await operatorCookie(app, ADMIN_OPERATOR_ID));
    expect(admin.statusCode, admin.body).toBe(200);
    expect((await scrape()).statusCode).toBe(200);
  });
});

describe('GET /metrics: the numbers', () => {
  it('counts requests by route pattern, and reads the queue, generations and ledger from the database', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 30);
    for (let i = 0; i < 3; i += 1) {
      const missing = await app.inject({
        url: `/api/v1/users/${freshTelegramId()}/balance`,
        headers: botAuth,
      });
      expect(missing.statusCode).toBe(404);
    }
    expect((await app.inject({ url: `/no/such/${telegramId}` })).statusCode).toBe(404);
    const queued = await submit(app, {
      telegram_id: telegramId,
      model: model.key,
      prompt: 'a',
      payment: 'credits',
    });
    expect(queued.statusCode, queued.body).toBe(202);
    const failed = await submit(app, {
      telegram_id: telegramId,
      model: model.key,
      prompt: 'b',
      payment: 'credits',
    });
    expect(failed.statusCode, failed.body).toBe(202);
    expect(
      await recordGenerationFailure(
        { db: database.db, config: testConfig({ TELEGRAM_BOT_TOKEN: '' }) },
        failed.json().id,
        { code: 'provider_failed', message: 'the provider said no' },
      ),
    ).toBe(true);

    const response = await scrape();
    expect(response.statusCode, response.body).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const samples = parse(response.body);
    const route = '/api/v1/users/:telegram_id/balance';
    expect(samples.get(`http_requests_total{method="GET",route="${route}",status="404"}`)).toBe(3);
    expect(
      samples.get(
        `http_request_duration_seconds_count{method="GET",route="${route}",status="404"}`,
      ),
    ).toBe(3);
    expect(
      samples.get(
        `http_request_duration_seconds_bucket{le="+Inf",method="GET",route="${route}",status="404"}`,
      ),
    ).toBe(3);
    expect(
      samples.get(`http_requests_total{method="POST",route="/api/v1/generations",status="202"}`),
    ).toBe(2);
    expect(samples.get('http_requests_total{method="GET",route="unmatched",status="404"}')).toBe(1);
    // Never the raw URL: no telegram id in any label.
    expect(response.body).not.toContain(String(telegramId));

    expect(samples.get('imagegen_queue_jobs{kind="generate",status="pending"}')).toBe(1);
    expect(samples.get('imagegen_queue_jobs{kind="generate",status="running"}')).toBe(0);
    expect(samples.get('imagegen_queue_jobs{kind="deliver",status="pending"}')).toBe(0);
    expect(
      samples.get('imagegen_queue_oldest_waiting_seconds{kind="generate"}'),
    ).toBeGreaterThanOrEqual(0);
    expect(samples.get('imagegen_queue_oldest_waiting_seconds{kind="deliver"}')).toBe(0);
    expect(samples.get('imagegen_generations{status="queued"}')).toBe(1);
    expect(samples.get('imagegen_generations{status="failed"}')).toBe(1);
    expect(samples.get('imagegen_generations{status="succeeded"}')).toBe(0);
    expect(
      samples.get(
        `imagegen_generation_failures{provider="${provider.name}",code="provider_failed"}`,
      ),
    ).toBe(1);
    expect(samples.get('imagegen_ledger_entries{kind="admin_adjustment"}')).toBe(1);
    expect(samples.get('imagegen_ledger_credits{kind="admin_adjustment"}')).toBe(30);
    expect(samples.get('imagegen_ledger_entries{kind="generation_charge"}')).toBe(2);
    expect(samples.get('imagegen_ledger_credits{kind="generation_charge"}')).toBe(-20);
    expect(samples.get('imagegen_ledger_credits{kind="generation_refund"}')).toBe(10);

    // The scrape itself is counted by the next one.
    const again = parse((await scrape()).body);
    expect(
      again.get('http_requests_total{method="GET",route="/metrics",status="200"}'),
    ).toBeGreaterThanOrEqual(1);
  });

  it('each app has its own registry: a second app starts from nothing', async () => {
    const other = await buildTestApp({}, database, { providers: registry });
    try {
      const samples = parse((await other.inject({ url: '/metrics', headers: adminAuth })).body);
      expect(
        samples.get(
          'http_requests_total{method="GET",route="/api/v1/users/:telegram_id/balance",status="404"}',
        ),
      ).toBeUndefined();
    } finally {
      await other.close();
    }
  });
});
