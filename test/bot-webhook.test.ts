import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBot } from '../src/bot/run.ts';
import { RedisConversationStore } from '../src/bot/store.ts';
import { type FakeTelegramCall, startFakeTelegram } from './fakes/telegram-api.ts';
import { BOT_TOKEN, buildTestApp, TELEGRAM_BOT_TOKEN, testConfig } from './helpers/app.ts';
import {
  type BotHarness,
  callbackUpdate,
  photoUpdate,
  startBotHarness,
  telegramUser,
  textUpdate,
} from './helpers/bot.ts';
import { freshTelegramId, silentLogger, testRedisUrl } from './helpers/database.ts';

const SECRET = 'webhook-secret-0123456789abcdef';

describe('webhook mode', () => {
  let harness: BotHarness;
  beforeAll(async () => {
    harness = await startBotHarness((root) =>
      buildTestApp({
        TELEGRAM_API_ROOT: root,
        BOT_WEBHOOK_URL: 'https://bot.example.com/telegram/webhook',
        BOT_WEBHOOK_SECRET: SECRET,
      }),
    );
  });
  afterAll(() => harness?.close());

  const post = (update: unknown, secret?: string) =>
    harness.app.inject({
      method: 'POST',
      url: '/telegram/webhook',
      headers: secret === undefined ? {} : { 'x-telegram-bot-api-secret-token': secret },
      payload: update as Record<string, unknown>,
    });

  it('refuses a call without the secret, answers 503 until the bot runs, then hands updates to it', async () => {
    const user = telegramUser(freshTelegramId(), 'en');
    const update = textUpdate(user, '/start');
    const refused = await post(update, 'wrong-secret');
    expect(refused.statusCode).toBe(401);
    expect(refused.headers['content-type']).toContain('application/problem+json');
    expect((await post(update)).statusCode).toBe(401);

    const early = await post(update, SECRET);
    expect(early.statusCode).toBe(503);
    expect(early.json().code).toBe('bot_unavailable');

    harness.app.telegramUpdates.handle = (u) => harness.bot.handleUpdate(u);
    const served = await post(update, SECRET);
    expect(served.statusCode).toBe(200);
    expect(
      harness.telegram.calls.some(
        (call) => call.chatId === user.id && String(call.fields.text).startsWith('Hi, Ada!'),
      ),
    ).toBe(true);
  });
});

describe('an album and the active cap', () => {
  let harness: BotHarness;
  beforeAll(async () => {
    // No worker: generations stay active.
    harness = await startBotHarness((root) =>
      buildTestApp({
        TELEGRAM_API_ROOT: root,
        GENERATION_PROVIDER: 'local',
        TRIAL_GENERATIONS: '5',
        MAX_PARALLEL_GENERATIONS_PER_USER: '1',
      }),
    );
  });
  afterAll(() => harness?.close());

  it('collects an album into one draft whose card counts its images', async () => {
    const user = telegramUser(freshTelegramId(), 'en');
    const group = `album-${user.id}`;
    await harness.bot.handleUpdate(
      photoUpdate(user, 'AgACAgIAAxkBAAIBalbumphoto1', 'put them together', group),
    );
    await harness.bot.handleUpdate(
      photoUpdate(user, 'AgACAgIAAxkBAAIBalbumphoto2', undefined, group),
    );
    const cards = harness.telegram.calls.filter((c) => c.chatId === user.id);
    expect(cards.filter((c) => c.method === 'sendMessage')).toHaveLength(1);
    const last = cards.at(-1);
    expect(last?.method).toBe('editMessageText');
    expect(last?.fields.text).toContain('2 images to edit');
    const markup = last?.fields.reply_markup as { inline_keyboard: { callback_data: string }[][] };
    const go = markup.inline_keyboard.flat().at(-1)?.callback_data ?? '';
    await harness.bot.handleUpdate(callbackUpdate(user, go));
    const page = await harness.api.generations(user.id, { limit: 5 });
    expect(page.generations[0]?.references.map((r) => r.value)).toEqual([
      'AgACAgIAAxkBAAIBalbumphoto1',
      'AgACAgIAAxkBAAIBalbumphoto2',
    ]);
  });

  it('says how many are running when the cap is reached', async () => {
    const user = telegramUser(freshTelegramId(), 'en');
    for (const prompt of ['one', 'two']) {
      await harness.bot.handleUpdate(textUpdate(user, prompt));
      const card = harness.telegram.calls.filter((c) => c.chatId === user.id).at(-1);
      const markup = card?.fields.reply_markup as {
        inline_keyboard: { callback_data: string }[][];
      };
      await harness.bot.handleUpdate(
        callbackUpdate(user, markup.inline_keyboard.flat().at(-1)?.callback_data ?? ''),
      );
    }
    const last = harness.telegram.calls
      .filter((c) => c.method === 'sendMessage' && c.chatId === user.id)
      .at(-1);
    expect(last?.fields.text).toBe('You already have 1 image in progress. Wait for it to finish.');
  });
});

describe('the conversation store in Redis', () => {
  if (!testRedisUrl) console.info('skipped without TEST_REDIS_URL: the Redis conversation store');
  it.skipIf(!testRedisUrl)('keeps, expires, lists and deletes', async () => {
    const redis = new Redis(testRedisUrl ?? '');
    const namespace = `test:${freshTelegramId()}:`;
    try {
      const store = new RedisConversationStore(redis, namespace);
      await store.set('draft:1:2', { prompt: 'x' }, 60);
      await store.set('pending-confirm:a', { n: 1 }, 60);
      expect(await store.get('draft:1:2')).toEqual({ prompt: 'x' });
      expect(await store.keys('pending-confirm:')).toEqual(['pending-confirm:a']);
      await store.delete('pending-confirm:a');
      expect(await store.get('pending-confirm:a')).toBeNull();
      await store.set('short', 1, 1);
      const ttl = await redis.pttl(`${namespace}short`);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(1000);
    } finally {
      await redis.quit();
    }
  });
});

describe('startBot in webhook mode', () => {
  /** Starts and stops the bot against a fake Bot API: what it asked Telegram at start. */
  async function callsAtStart(settings: Record<string, string>): Promise<FakeTelegramCall[]> {
    const fake = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
    try {
      const running = await startBot({
        config: testConfig({
          TELEGRAM_API_ROOT: fake.apiRoot,
          BOT_WEBHOOK_URL: 'https://bot.example.com/telegram/webhook',
          BOT_WEBHOOK_SECRET: SECRET,
          ...settings,
        }),
        logger: silentLogger,
        apiUrl: 'http://127.0.0.1:9',
        apiToken: BOT_TOKEN,
      });
      await running.stop();
      return fake.calls;
    } finally {
      await fake.close();
    }
  }

  it('registers the webhook with its secret and the updates it reads, and does not poll', async () => {
    const calls = await callsAtStart({});
    const webhook = calls.find((call) => call.method === 'setWebhook');
    expect(webhook?.fields).toMatchObject({
      url: 'https://bot.example.com/telegram/webhook',
      secret_token: SECRET,
      allowed_updates: ['message', 'callback_query', 'pre_checkout_query'],
    });
    expect(calls.some((call) => call.method === 'deleteWebhook')).toBe(false);
    // No PUBLIC_BASE_URL: the menu button stays Telegram's default.
    expect(calls.some((call) => call.method === 'setChatMenuButton')).toBe(false);
  });

  it('makes the chat menu button open the Mini App on PUBLIC_BASE_URL, in the default language', async () => {
    const calls = await callsAtStart({
      PUBLIC_BASE_URL: 'https://bot.example.com',
      DEFAULT_LANGUAGE: 'ru',
    });
    const menu = calls.filter((call) => call.method === 'setChatMenuButton');
    expect(menu.map((call) => call.fields)).toEqual([
      {
        menu_button: {
          type: 'web_app',
          text: '🖼 Приложение',
          web_app: { url: 'https://bot.example.com/app/' },
        },
      },
    ]);
  });
});
