import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DatabaseHandle, openDatabase } from '../src/db/client.ts';
import { encodePng } from '../src/providers/png.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { sendDailyReportIfDue } from '../src/services/daily-report.ts';
import {
  recordGenerationFailure,
  recordGenerationSuccess,
} from '../src/services/generation-outcomes.ts';
import { LocalResultStore } from '../src/storage/local.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { type FakeTelegram, startFakeTelegram } from './fakes/telegram-api.ts';
import { buildTestApp, TELEGRAM_BOT_TOKEN, testConfig } from './helpers/app.ts';
import {
  createPrivateDatabase,
  dropPrivateDatabase,
  freshTelegramId,
  onPostgres,
  openTestDatabase,
  silentLogger,
  testDatabaseUrl,
} from './helpers/database.ts';
import { createTestModel, submit, userWithCredits } from './helpers/pipeline.ts';

// The daily report: from DAILY_REPORT_HOUR (UTC) the day before's numbers go to ADMIN_CHAT_ID,
// once a day however many workers ask. The numbers are exact, so the file has a database of its
// own (on PostgreSQL every test file shares one).

const ADMIN_CHAT_ID = -1_005_555_000_111;
const DAY_MS = 86_400_000;
let database: DatabaseHandle;
let privateUrl: string | null = null;
let telegram: FakeTelegram;
let app: FastifyInstance;
const settings = () => ({
  ADMIN_CHAT_ID: String(ADMIN_CHAT_ID),
  TELEGRAM_API_ROOT: telegram.apiRoot,
  DAILY_REPORT_HOUR: '6',
  DEFAULT_LANGUAGE: 'en',
  // Generations are paid with credits, not free ones.
  TRIAL_GENERATIONS: '0',
});
const provider = new ScriptedProvider();
const registry = new ProviderRegistry([provider], 'catalog');
const store = new LocalResultStore(mkdtempSync(join(tmpdir(), 'imagegen-ops-')));
/** A worker process's view: its own Config. */
const worker = () => ({ db: database.db, config: testConfig(settings()) });

beforeAll(async () => {
  if (onPostgres && testDatabaseUrl) {
    privateUrl = await createPrivateDatabase('daily_report');
    database = await openDatabase({ kind: 'postgres', url: privateUrl, poolSize: 5 }, silentLogger);
  } else {
    database = await openTestDatabase.embedded();
  }
  telegram = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
  app = await buildTestApp(settings(), database, { providers: registry });
}, 120_000);

afterAll(async () => {
  await app?.close();
  await database?.close();
  await telegram?.close();
  if (privateUrl) await dropPrivateDatabase(privateUrl);
});

const reports = () => telegram.calls.filter((call) => call.method === 'sendMessage');

describe('the daily report', () => {
  it("sends the day before's numbers once, from the configured hour on", async () => {
    // Today: three users, one given 50 credits, who makes three generations of 10 credits: one
    // done in 4 s, one in 8 s, one failed (given back). "Tomorrow" reports today.
    const payer = freshTelegramId();
    for (const [telegramId, credits] of [
      [payer, 50],
      [freshTelegramId(), 0],
      [freshTelegramId(), 0],
    ] as const) {
      await userWithCredits(app, telegramId, credits);
    }
    const model = await createTestModel(database.db, {
      provider: provider.name,
      prices: [{ conditions: {}, credits: 10 }],
    });
    const generate = async () => {
      const response = await submit(app, { telegram_id: payer, model: model.key, prompt: 'a fox' });
      expect(response.statusCode, response.body).toBe(202);
      return response.json().id as string;
    };
    const ctx = worker();
    for (const seconds of [4, 8]) {
      const id = await generate();
      await recordGenerationSuccess(ctx, store, id, {
        images: [{ data: encodePng(4, 4, new Uint8Array(48).fill(90)), mimeType: 'image/png' }],
      });
      await database.db.execute(
        sql`UPDATE generation_requests SET created_at = completed_at - make_interval(secs => ${seconds})
            WHERE id = ${id}`,
      );
    }
    await recordGenerationFailure(ctx, await generate(), {
      code: 'provider_failed',
      message: 'no',
    });
    const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
    const day = new Date(today).toISOString().slice(0, 10);
    const tomorrowAt = (hour: number, minute = 0) =>
      new Date(today + DAY_MS + hour * 3_600_000 + minute * 60_000);

    // Before the hour: nothing.
    expect(await sendDailyReportIfDue(worker(), tomorrowAt(5, 59))).toBeNull();
    expect(reports()).toHaveLength(0);

    // From the hour: three workers ask at once, one sends.
    const outcomes = await Promise.all(
      [worker(), worker(), worker()].map((ctx) => sendDailyReportIfDue(ctx, tomorrowAt(6, 0))),
    );
    expect(outcomes.map((o) => o?.outcome).sort()).toEqual(['already', 'already', 'sent']);
    expect(reports()).toHaveLength(1);
    expect(reports()[0]?.chatId).toBe(ADMIN_CHAT_ID);
    expect(reports()[0]?.fields.text).toBe(
      [
        `📊 Report for ${day} (UTC)`,
        'Users: 3 new, 3 active, 3 in all',
        'Generations: 3 (2 done, 1 failed; success rate 66.7%)',
        'Time to a result: median 6 s, 95% within 7.8 s',
        'Stars: 0 from 0 payments',
        'Credits: 0 sold, 20 spent, 0 refunded, 50 given free',
        'Free generations used: 0',
        'Referrals: 0 new users, 0 bonus credits',
      ].join('\n'),
    );

    // The rest of that day (a restart, every minute's housekeeping): nothing more.
    expect(await sendDailyReportIfDue(worker(), tomorrowAt(6, 1))).toEqual({ outcome: 'already' });
    expect(await sendDailyReportIfDue(worker(), tomorrowAt(23, 59))).toEqual({
      outcome: 'already',
    });
    expect(reports()).toHaveLength(1);

    // The next day reports its own day before (tomorrow: nobody new).
    const dayAfter = new Date(today + 2 * DAY_MS + 7 * 3_600_000);
    expect(await sendDailyReportIfDue(worker(), dayAfter)).toEqual({ outcome: 'sent' });
    expect(reports()).toHaveLength(2);
    const next = String(reports()[1]?.fields.text);
    expect(next.split('\n').slice(0, 2)).toEqual([
      `📊 Report for ${new Date(today + DAY_MS).toISOString().slice(0, 10)} (UTC)`,
      'Users: 0 new, 0 active, 3 in all',
    ]);
  });

  it('is not sent without ADMIN_CHAT_ID', async () => {
    const ctx = { db: database.db, config: testConfig({ ...settings(), ADMIN_CHAT_ID: '' }) };
    const sent = reports().length;
    expect(await sendDailyReportIfDue(ctx, new Date(Date.now() + 10 * DAY_MS))).toBeNull();
    expect(reports()).toHaveLength(sent);
  });
});
