import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { runHousekeeping } from '../src/jobs/housekeeping.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { ReplicateProvider } from '../src/providers/replicate.ts';
import { WavespeedProvider } from '../src/providers/wavespeed.ts';
import type { PipelineContext } from '../src/services/context.ts';
import { checkProviderBalances } from '../src/services/provider-balances.ts';
import { LocalResultStore } from '../src/storage/local.ts';
import { type FakeTelegram, startFakeTelegram } from './fakes/telegram-api.ts';
import { type FakeWavespeed, startFakeWavespeed } from './fakes/wavespeed-server.ts';
import {
  adminAuth,
  buildTestApp,
  miniAppAuth,
  TELEGRAM_BOT_TOKEN,
  testConfig,
} from './helpers/app.ts';
import { freshTelegramId, sharedDatabase, silentLogger } from './helpers/database.ts';
import { operatorCookie, operatorSettings, SUPPORT_OPERATOR_ID } from './helpers/operators.ts';
import { balanceOf, createTestModel, submit, userWithCredits } from './helpers/pipeline.ts';

// The providers' balances: read by the workers' check, shown to operators, and below
// MIN_PROVIDER_BALANCE new generations for that provider's models are refused with 503
// provider_unavailable; the operators' chat is told once when it drops and once when it recovers.

const ADMIN_CHAT_ID = -1_009_876_543_210;
const MINIMUM = 10;
let database: DatabaseHandle;
let telegram: FakeTelegram;
let wavespeed: FakeWavespeed;
let app: FastifyInstance;
let ctx: PipelineContext;
// Names of this file's own: no other test's worker checks or uses them.
const suffix = randomUUID().slice(0, 8);
const wavespeedName = `wavespeed-${suffix}`;
const replicateName = `replicate-${suffix}`;

beforeAll(async () => {
  database = await sharedDatabase();
  telegram = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
  wavespeed = await startFakeWavespeed();
  const registry = new ProviderRegistry(
    [
      new WavespeedProvider({
        name: wavespeedName,
        apiKey: wavespeed.apiKey,
        baseUrl: wavespeed.baseUrl,
      }),
      new ReplicateProvider({
        name: replicateName,
        apiToken: 'r8_test-token-0123456789',
        baseUrl: 'http://127.0.0.1:9',
      }),
    ],
    'catalog',
  );
  const settings = {
    ...operatorSettings,
    ADMIN_CHAT_ID: String(ADMIN_CHAT_ID),
    TELEGRAM_API_ROOT: telegram.apiRoot,
    MIN_PROVIDER_BALANCE: String(MINIMUM),
    DEFAULT_LANGUAGE: 'en',
    TRIAL_GENERATIONS: '0',
  };
  app = await buildTestApp(settings, undefined, { providers: registry });
  ctx = { db: database.db, config: testConfig(settings), providers: registry };
});

afterAll(async () => {
  await app?.close();
  await wavespeed?.close();
  await telegram?.close();
});

interface ProviderView {
  provider: string;
  status: string;
  balance: number | null;
  currency: string | null;
  available: boolean;
  unavailable_reason: string | null;
  low_since: string | null;
  error: string | null;
}

async function providers(): Promise<Map<string, ProviderView>> {
  const response = await app.inject({ url: '/api/v1/admin/providers', headers: adminAuth });
  expect(response.statusCode, response.body).toBe(200);
  const views = (response.json() as { providers: ProviderView[] }).providers;
  return new Map(views.map((view) => [view.provider, view]));
}

const check = () => checkProviderBalances(ctx, { everySeconds: 0 });

const notices = (kind: 'low' | 'recovered') =>
  telegram.calls.filter(
    (call) =>
      call.method === 'sendMessage' &&
      String(call.fields.text).includes(wavespeedName) &&
      String(call.fields.text).includes(kind === 'low' ? 'below the minimum' : 'again'),
  );

describe('provider balances', () => {
  it('are read from WaveSpeed, shown to operators, and guard new generations', async () => {
    const model = await createTestModel(database.db, { provider: wavespeedName });
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 100);
    const generate = () =>
      submit(app, { telegram_id: telegramId, model: model.key, prompt: 'a cat' });

    // Enough money: ok, and generations are accepted.
    wavespeed.setBehaviour({ balance: 25.5 });
    const checksBefore = wavespeed.balanceChecks;
    expect(await check()).toEqual([
      { provider: wavespeedName, status: 'ok', balance: 25.5, error: null },
      { provider: replicateName, status: 'unknown', balance: null, error: null },
    ]);
    expect(wavespeed.balanceChecks).toBe(checksBefore + 1);
    let views = await providers();
    expect(views.get(wavespeedName)).toMatchObject({
      status: 'ok',
      balance: 25.5,
      currency: 'USD',
      available: true,
      unavailable_reason: null,
      low_since: null,
    });
    // Replicate has no balance API.
    expect(views.get(replicateName)).toMatchObject({
      status: 'unknown',
      balance: null,
      available: true,
    });
    const accepted = await generate();
    expect(accepted.statusCode, accepted.body).toBe(202);
    expect(await balanceOf(app, telegramId)).toBe(90);

    // Below the minimum: low, refused with the reason, nothing charged, the chat told once.
    wavespeed.setBehaviour({ balance: 3 });
    await check();
    await check();
    await check();
    views = await providers();
    expect(views.get(wavespeedName)).toMatchObject({ status: 'low', balance: 3, available: false });
    expect(views.get(wavespeedName)?.low_since).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(views.get(wavespeedName)?.unavailable_reason).toContain('below the minimum of 10');
    const refused = await generate();
    expect(refused.statusCode, refused.body).toBe(503);
    expect(refused.headers['content-type']).toContain('application/problem+json');
    expect(refused.json()).toMatchObject({
      code: 'provider_unavailable',
      provider: wavespeedName,
      reason: 'low_balance',
    });
    expect(await balanceOf(app, telegramId)).toBe(90);
    const low = notices('low');
    expect(low).toHaveLength(1);
    expect(low[0]?.chatId).toBe(ADMIN_CHAT_ID);
    expect(low[0]?.fields.text).toBe(
      `⚠️ ${wavespeedName}: the balance is 3 USD, below the minimum of 10 USD.\nIts models answer "unavailable" until the account is topped up.`,
    );

    // Topped up: ok again, accepted again, the chat told once that it recovered.
    wavespeed.setBehaviour({ balance: 50 });
    await check();
    await check();
    views = await providers();
    expect(views.get(wavespeedName)).toMatchObject({
      status: 'ok',
      balance: 50,
      available: true,
      low_since: null,
    });
    const again = await generate();
    expect(again.statusCode, again.body).toBe(202);
    const recovered = notices('recovered');
    expect(recovered).toHaveLength(1);
    expect(recovered[0]?.chatId).toBe(ADMIN_CHAT_ID);
    expect(recovered[0]?.fields.text).toBe(
      `✅ ${wavespeedName}: the balance is 50 USD again (minimum 10 USD). Its models are available.`,
    );

    // A second episode is a new alert (once again).
    wavespeed.setBehaviour({ balance: 1 });
    await check();
    await check();
    expect(notices('low')).toHaveLength(2);
    wavespeed.setBehaviour({ balance: 100 });
    await check();
    expect(notices('recovered')).toHaveLength(2);
  });

  it('keep the last balance and the guard when a check fails', async () => {
    wavespeed.setBehaviour({ balance: 2, error: null });
    await check();
    wavespeed.setBehaviour({ error: { status: 500, message: 'upstream down' } });
    const [failed] = (await check()).filter((c) => c.provider === wavespeedName);
    expect(failed).toMatchObject({ status: 'error' });
    expect(failed?.error).toContain('500');
    const view = (await providers()).get(wavespeedName);
    expect(view).toMatchObject({ status: 'error', balance: 2, available: false });
    expect(view?.error).toContain('500');
    wavespeed.setBehaviour({ error: null, balance: 100 });
    await check();
    expect((await providers()).get(wavespeedName)).toMatchObject({ status: 'ok', available: true });
  });

  it('are checked by one process at a time, at most once a minute between them', async () => {
    await database.db.execute(
      sql`UPDATE provider_balances SET checked_at = now() - interval '1 hour'
          WHERE provider = ${wavespeedName}`,
    );
    const before = wavespeed.balanceChecks;
    const other = { ...ctx, config: testConfig({ ADMIN_CHAT_ID: String(ADMIN_CHAT_ID) }) };
    const runs = await Promise.all([
      checkProviderBalances(ctx),
      checkProviderBalances(other),
      checkProviderBalances(ctx),
    ]);
    expect(runs.flat().filter((c) => c.provider === wavespeedName)).toHaveLength(1);
    expect(wavespeed.balanceChecks).toBe(before + 1);
    // Within the minute nobody checks again.
    await checkProviderBalances(other);
    expect(wavespeed.balanceChecks).toBe(before + 1);
  });

  it("are checked by the workers' housekeeping", async () => {
    await database.db.execute(
      sql`UPDATE provider_balances SET checked_at = now() - interval '1 hour'
          WHERE provider = ${wavespeedName}`,
    );
    wavespeed.setBehaviour({ balance: 77 });
    const before = wavespeed.balanceChecks;
    // No bot token: housekeeping reconciles no payments and sends no notices here.
    const config = testConfig({ TELEGRAM_BOT_TOKEN: '', MIN_PROVIDER_BALANCE: String(MINIMUM) });
    await runHousekeeping({
      ctx: { ...ctx, config },
      logger: silentLogger,
      store: new LocalResultStore(mkdtempSync(join(tmpdir(), 'imagegen-ops-'))),
    });
    expect(wavespeed.balanceChecks).toBe(before + 1);
    expect((await providers()).get(wavespeedName)).toMatchObject({ status: 'ok', balance: 77 });
  });

  it('are for operators only (support may read)', async () => {
    const anonymous = await app.inject({ url: '/api/v1/admin/providers' });
    expect(anonymous.statusCode).toBe(401);
    const support = await operatorCookie(app, SUPPORT_OPERATOR_ID);
    const asSupport = await app.inject({ url: '/api/v1/admin/providers', headers: support });
    expect(asSupport.statusCode, asSupport.body).toBe(200);
    const user = await app.inject({ url: '/api/v1/admin/providers', headers: miniAppAuth(42) });
    expect(user.statusCode).toBe(403);
  });
});
