import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type FakeTelegram,
  type FakeTelegramCall,
  startFakeTelegram,
} from './fakes/telegram-api.ts';
import { TELEGRAM_BOT_TOKEN } from './helpers/app.ts';
import { callbackUpdate, telegramUser, textUpdate } from './helpers/bot.ts';
import { freshTelegramId } from './helpers/database.ts';
import { waitFor } from './helpers/pipeline.ts';
import { type ServerProcess, startServer, stopProcess } from './helpers/process.ts';

/**
 * The product as an operator starts it: `npm start`'s process with TELEGRAM_BOT_TOKEN set runs the
 * API, the worker and the bot, which long-polls a fake Bot API over HTTP. A user goes from /start
 * to a delivered image.
 */

let telegram: FakeTelegram;
let server: ServerProcess;

beforeAll(async () => {
  telegram = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
  server = startServer({
    DATABASE_URL: 'memory://',
    TELEGRAM_BOT_TOKEN,
    TELEGRAM_API_ROOT: telegram.apiRoot,
    TRIAL_GENERATIONS: '3',
    PROVIDER_POLL_SECONDS: '1',
  });
  await server.listening;
}, 120_000);

afterAll(async () => {
  if (server) await stopProcess(server);
  await telegram?.close();
});

function to(chatId: number, method: string): FakeTelegramCall[] {
  return telegram.calls.filter((call) => call.chatId === chatId && call.method === method);
}

describe('npm start with a bot token', () => {
  it('registers the commands in every language and long-polls', async () => {
    await waitFor(
      async () => telegram.calls.filter((call) => call.method === 'setMyCommands'),
      (calls) => calls.length === 4,
      30_000,
    );
    await waitFor(
      async () => telegram.calls.filter((call) => call.method === 'deleteWebhook'),
      (calls) => calls.length === 1,
      30_000,
    );
    const languages = telegram.calls
      .filter((call) => call.method === 'setMyCommands')
      .map((call) => call.fields.language_code ?? 'default');
    expect(languages.sort()).toEqual(['default', 'en', 'ru', 'uz']);
  }, 60_000);

  it('takes a user from /start to a delivered image', async () => {
    const user = telegramUser(freshTelegramId(), 'en');
    telegram.pushUpdate(textUpdate(user, '/start'));
    const [greeting] = await waitFor(
      async () => to(user.id, 'sendMessage'),
      (calls) => calls.length > 0,
      30_000,
    );
    expect(greeting?.fields.text).toContain('Hi, Ada!');

    telegram.pushUpdate(textUpdate(user, 'a lighthouse at dusk'));
    const card = await waitFor(
      async () => to(user.id, 'sendMessage'),
      (calls) => calls.length > 1,
      30_000,
    );
    const markup = card.at(-1)?.fields.reply_markup as {
      inline_keyboard: { callback_data: string }[][];
    };
    const start = markup.inline_keyboard.flat().at(-1)?.callback_data ?? '';
    expect(start).toMatch(/^g:\d+:go$/);

    telegram.pushUpdate(callbackUpdate(user, start));
    const photos = await waitFor(
      async () => to(user.id, 'sendPhoto'),
      (calls) => calls.length > 0,
      60_000,
    );
    expect(photos[0]?.files[0]?.size).toBeGreaterThan(0);
    expect(server.output()).not.toContain(TELEGRAM_BOT_TOKEN);
  }, 120_000);
});
