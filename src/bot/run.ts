import http from 'node:http';
import https from 'node:https';
import { run, sequentialize } from '@grammyjs/runner';
import type { Bot } from 'grammy';
import type { Update } from 'grammy/types';
import { Redis } from 'ioredis';
import type { Config } from '../core/config.ts';
import type { Logger } from '../core/logger.ts';
import { LANGUAGES, type Language, loadTexts } from '../locales/index.ts';
import { BotApi } from './api.ts';
import type { BotContext } from './context.ts';
import { createBot } from './create-bot.ts';
import { retryKeptPayments } from './flows/payments.ts';
import { html } from './replies.ts';
import {
  type ConversationStore,
  MemoryConversationStore,
  RedisConversationStore,
} from './store.ts';

type Texts = ReturnType<typeof loadTexts>;

/** The updates the bot reads (refunded_payment and successful_payment come as messages). */
export const ALLOWED_UPDATES = ['message', 'callback_query', 'pre_checkout_query'] as const;

const COMMANDS = [
  'start',
  'generate',
  'balance',
  'topup',
  'history',
  'referral',
  'language',
  'help',
] as const;

export interface RunningBot {
  bot: Bot<BotContext>;
  /** Webhook mode: where the route hands each update. */
  handleUpdate: (update: Update) => Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts the bot: long polling by default (@grammyjs/runner: concurrent across chats, one at a
 * time within a chat), or webhook mode when BOT_WEBHOOK_URL is set (the caller serves the route).
 * Registers the commands in each language.
 */
export async function startBot(options: {
  config: Config;
  logger: Logger;
  apiUrl: string;
  apiToken: string;
}): Promise<RunningBot> {
  const { config, logger } = options;
  const token = config.telegramBotToken;
  if (!token) throw new Error('TELEGRAM_BOT_TOKEN is not set');
  let redis: Redis | null = null;
  let store: ConversationStore = new MemoryConversationStore();
  if (config.redisUrl) {
    redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 2 });
    redis.on('error', (error) => logger.warn({ err: error }, 'bot: Redis connection error'));
    store = new RedisConversationStore(redis);
  }
  const api = new BotApi({ baseUrl: options.apiUrl, token: options.apiToken });
  const settings = {
    defaultLanguage: config.defaultLanguage,
    throttlePerMinute: config.bot.throttlePerMinute,
  };
  const bot = createBot({
    token,
    api,
    store,
    settings,
    logger,
    client: {
      apiRoot: config.delivery.telegramApiRoot,
      // Kept-alive connections to Telegram, as many as the runner has updates in flight: the
      // default agent keeps few idle sockets and reconnects (a TLS handshake each) under load.
      baseFetchConfig: { compress: true, agent: telegramAgent(config.delivery.telegramApiRoot) },
      // Above getUpdates' 30 s long poll; grammY's default (500 s) would leave a start that
      // cannot reach Telegram silent for minutes.
      timeoutSeconds: 60,
    },
    // One update at a time per chat (an album's photos, a double tap), any number across chats.
    before: sequentialize((ctx) => ctx.chat?.id.toString() ?? ctx.from?.id.toString()),
  });
  logger.info({ apiRoot: config.delivery.telegramApiRoot }, 'bot starting: reaching Telegram');
  await bot.init();
  // The texts, parsed once: the commands, the menu button and the payment retries' messages.
  const texts = loadTexts(config.defaultLanguage);
  await registerCommands(bot, texts, config.defaultLanguage);
  await registerMiniApp(bot, texts, config, logger);

  const retries = retryKeptPayments({
    api,
    store,
    logger,
    // In the payer's language, kept with the payment.
    tell: async (telegramId, language, key, variables) => {
      await bot.api.sendMessage(telegramId, texts.t(language, key, variables), html);
    },
  });

  const handleUpdate = (update: Update) => bot.handleUpdate(update);
  let runner: ReturnType<typeof run> | null = null;
  if (config.bot.webhookUrl && config.bot.webhookSecret) {
    await bot.api.setWebhook(config.bot.webhookUrl, {
      secret_token: config.bot.webhookSecret,
      allowed_updates: ALLOWED_UPDATES,
    });
    logger.info({ bot: bot.botInfo.username, mode: 'webhook' }, 'bot started');
  } else {
    // A webhook left from an earlier run would make getUpdates fail.
    await bot.api.deleteWebhook();
    runner = run(bot, { runner: { fetch: { allowed_updates: ALLOWED_UPDATES } } });
    logger.info({ bot: bot.botInfo.username, mode: 'polling' }, 'bot started');
  }
  return {
    bot,
    handleUpdate,
    async stop() {
      retries.stop();
      if (runner?.isRunning()) await runner.stop();
      await redis?.quit().catch(() => undefined);
    },
  };
}

async function registerCommands(
  bot: Bot<BotContext>,
  texts: Texts,
  defaultLanguage: Language,
): Promise<void> {
  const commands = (language: Language) =>
    COMMANDS.map((command) => ({ command, description: texts.t(language, `command-${command}`) }));
  for (const language of LANGUAGES) {
    await bot.api.setMyCommands(commands(language), { language_code: language });
  }
  await bot.api.setMyCommands(commands(defaultLanguage));
}

/**
 * The chat's menu button opens the Mini App (/app/ on PUBLIC_BASE_URL). Telegram opens only HTTPS
 * addresses in it: without one the button stays Telegram's default (the command list).
 */
async function registerMiniApp(
  bot: Bot<BotContext>,
  texts: Texts,
  config: Config,
  logger: Logger,
): Promise<void> {
  const base = config.publicBaseUrl;
  if (!base?.startsWith('https://')) {
    logger.info(
      'bot: the menu button stays the command list (the Mini App needs PUBLIC_BASE_URL on https)',
    );
    return;
  }
  await bot.api.setChatMenuButton({
    menu_button: {
      type: 'web_app',
      text: texts.t(config.defaultLanguage, 'menu-button-app'),
      web_app: { url: `${base}/app/` },
    },
  });
}

function telegramAgent(apiRoot: string): http.Agent {
  const options = { keepAlive: true, maxSockets: 512, maxFreeSockets: 512 };
  return apiRoot.startsWith('https:') ? new https.Agent(options) : new http.Agent(options);
}
