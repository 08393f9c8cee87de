import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { type NoticeText, notifyOperators } from '../src/services/operator-notices.ts';
import { type FakeTelegram, startFakeTelegram } from './fakes/telegram-api.ts';
import { TELEGRAM_BOT_TOKEN, testConfig } from './helpers/app.ts';
import { sharedDatabase } from './helpers/database.ts';

// Notices to the operators' chat: sent through the Bot API to ADMIN_CHAT_ID in the default
// language, once per key whoever tries it and however often.

const ADMIN_CHAT_ID = -1_001_234_567_890;
let database: DatabaseHandle;
let telegram: FakeTelegram;

beforeAll(async () => {
  database = await sharedDatabase();
  telegram = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
});

afterAll(async () => {
  await telegram?.close();
});

/** A service context as one process has it: its own Config (so its own Bot API client). */
function processContext(overrides: Record<string, string> = {}) {
  const config = testConfig({
    ADMIN_CHAT_ID: String(ADMIN_CHAT_ID),
    TELEGRAM_API_ROOT: telegram.apiRoot,
    DEFAULT_LANGUAGE: 'ru',
    ...overrides,
  });
  return { db: database.db, config };
}

const lowBalance = (provider: string) => (t: NoticeText) =>
  t('notice-provider-balance-low', { provider, balance: 3, minimum: 10 });

/** The sendMessage calls whose text names `marker` (each test uses a provider name of its own). */
const noticesNaming = (marker: string) =>
  telegram.calls.filter(
    (call) => call.method === 'sendMessage' && String(call.fields.text).includes(marker),
  );

async function noticeRow(key: string) {
  const [row] = await selectRows<{ status: string; attempts: number }>(
    database.db,
    sql`SELECT status, attempts FROM operator_notices WHERE key = ${key}`,
  );
  return row ?? null;
}

describe('operator notices', () => {
  it('go to ADMIN_CHAT_ID once, in the default language, however many processes try at once', async () => {
    const marker = `prov-${randomUUID().slice(0, 8)}`;
    const key = `test:${marker}`;
    const processes = [processContext(), processContext(), processContext()];
    const outcomes = await Promise.all(
      [...processes, ...processes].map((ctx) => notifyOperators(ctx, key, lowBalance(marker))),
    );
    expect(outcomes.filter((o) => o.outcome === 'sent')).toHaveLength(1);
    expect(outcomes.filter((o) => o.outcome === 'already')).toHaveLength(5);
    const sent = noticesNaming(marker);
    expect(sent).toHaveLength(1);
    expect(sent[0]?.chatId).toBe(ADMIN_CHAT_ID);
    expect(sent[0]?.fields.text).toBe(
      `⚠️ ${marker}: баланс 3 — ниже минимума 10.\nЕго модели недоступны, пока счёт не пополнен.`,
    );
    // Plain text: nothing in a notice is read as markup.
    expect(sent[0]?.fields.parse_mode).toBeUndefined();
    // Later tries (a restart, the next scheduled run) find it sent.
    expect(await notifyOperators(processContext(), key, lowBalance(marker))).toEqual({
      outcome: 'already',
    });
    expect(noticesNaming(marker)).toHaveLength(1);
    expect(await noticeRow(key)).toMatchObject({ status: 'sent', attempts: 1 });
  });

  it('writes the text only when it is the one to send it', async () => {
    const marker = `prov-${randomUUID().slice(0, 8)}`;
    const key = `test:${marker}`;
    let composed = 0;
    const compose = (t: NoticeText) => {
      composed++;
      return lowBalance(marker)(t);
    };
    await notifyOperators(processContext(), key, compose);
    await notifyOperators(processContext(), key, compose);
    expect(composed).toBe(1);
  });

  it('are tried again after Telegram answered an error, and then arrive once', async () => {
    const marker = `prov-${randomUUID().slice(0, 8)}`;
    const key = `test:${marker}`;
    telegram.failNext('sendMessage', { error_code: 502, description: 'Bad Gateway' });
    const first = await notifyOperators(processContext(), key, lowBalance(marker));
    expect(first).toMatchObject({ outcome: 'failed', retryable: true });
    expect(await noticeRow(key)).toMatchObject({ status: 'failed', attempts: 1 });
    // The failed call reached Telegram (and was refused): it is the one the fake recorded.
    expect(noticesNaming(marker)).toHaveLength(1);

    expect(await notifyOperators(processContext(), key, lowBalance(marker))).toEqual({
      outcome: 'sent',
    });
    expect(await notifyOperators(processContext(), key, lowBalance(marker))).toEqual({
      outcome: 'already',
    });
    expect(noticesNaming(marker)).toHaveLength(2);
    expect(await noticeRow(key)).toMatchObject({ status: 'sent', attempts: 2 });
  });

  it('give up after five refusals', async () => {
    const marker = `prov-${randomUUID().slice(0, 8)}`;
    const key = `test:${marker}`;
    telegram.failNext(
      'sendMessage',
      { error_code: 400, description: 'Bad Request: chat not found' },
      5,
    );
    const outcomes = [];
    for (let i = 0; i < 6; i++) {
      outcomes.push((await notifyOperators(processContext(), key, lowBalance(marker))).outcome);
    }
    expect(outcomes).toEqual(['failed', 'failed', 'failed', 'failed', 'failed', 'already']);
    expect(noticesNaming(marker)).toHaveLength(5);
  });

  it('are never sent again after a call that got no answer (it may have arrived)', async () => {
    const marker = `prov-${randomUUID().slice(0, 8)}`;
    const key = `test:${marker}`;
    // Nothing listens on port 9: the call gets no answer at all.
    const unreachable = processContext({ TELEGRAM_API_ROOT: 'http://127.0.0.1:9' });
    const first = await notifyOperators(unreachable, key, lowBalance(marker));
    expect(first).toMatchObject({ outcome: 'failed', retryable: false });
    expect(await noticeRow(key)).toMatchObject({ status: 'unknown' });
    expect(await notifyOperators(processContext(), key, lowBalance(marker))).toEqual({
      outcome: 'already',
    });
    expect(noticesNaming(marker)).toHaveLength(0);
  });

  it('record and send nothing without ADMIN_CHAT_ID', async () => {
    const marker = `prov-${randomUUID().slice(0, 8)}`;
    const key = `test:${marker}`;
    const outcome = await notifyOperators(
      processContext({ ADMIN_CHAT_ID: '' }),
      key,
      lowBalance(marker),
    );
    expect(outcome).toEqual({ outcome: 'not_configured' });
    expect(await noticeRow(key)).toBeNull();
    expect(noticesNaming(marker)).toHaveLength(0);
  });
});
