import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type FakeTelegram,
  type FakeTelegramCall,
  startFakeTelegram,
} from './fakes/telegram-api.ts';
import { TELEGRAM_BOT_TOKEN } from './helpers/app.ts';
import { callbackUpdate, telegramUser, textUpdate } from './helpers/bot.ts';
import { freshTelegramId } from './helpers/database.ts';
import { nodeArgsFor } from './helpers/entry-points.ts';
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

describe('npm run start:bot beside an API process', () => {
  it('serves users through the API it is pointed at, and needs its settings', async () => {
    const apiToken = 'bot-process-token-0123456789abcdef';
    const fake = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
    const api = startServer({
      DATABASE_URL: 'memory://',
      API_TOKENS: apiToken,
      TELEGRAM_BOT_TOKEN,
      TELEGRAM_API_ROOT: fake.apiRoot,
      RUN_BOT_IN_API: 'false',
    });
    let bot: ReturnType<typeof startBotProcess> | null = null;
    try {
      const apiUrl = await api.listening;
      const missing = startBotProcess({ TELEGRAM_BOT_TOKEN });
      expect(await missing.exited).toBe(78);
      expect(missing.output()).toContain('API_URL');

      bot = startBotProcess({
        TELEGRAM_BOT_TOKEN,
        TELEGRAM_API_ROOT: fake.apiRoot,
        API_URL: apiUrl,
        API_TOKEN: apiToken,
      });
      const user = telegramUser(freshTelegramId(), 'ru');
      fake.pushUpdate(textUpdate(user, '/start'));
      const [greeting] = await waitFor(
        async () => fake.calls.filter((c) => c.chatId === user.id && c.method === 'sendMessage'),
        (calls) => calls.length > 0,
        60_000,
      );
      expect(greeting?.fields.text).toContain('Привет, Ada!');
      // The API ran no bot of its own: one poller per token.
      expect(api.output()).not.toContain('bot started');
    } finally {
      if (bot) await stopProcess(bot);
      await stopProcess(api);
      await fake.close();
    }
  }, 120_000);
});

function startBotProcess(env: Record<string, string>) {
  const child = spawn(process.execPath, nodeArgsFor('src/bot.ts'), {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, exited, output: () => output };
}
