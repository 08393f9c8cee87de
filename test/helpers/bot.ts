import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Bot } from 'grammy';
import type { Message, Update, User } from 'grammy/types';
import { BotApi } from '../../src/bot/api.ts';
import type { BotContext } from '../../src/bot/context.ts';
import { createBot } from '../../src/bot/create-bot.ts';
import { MemoryConversationStore } from '../../src/bot/store.ts';
import type { Language } from '../../src/locales/index.ts';
import { type FakeTelegram, startFakeTelegram } from '../fakes/telegram-api.ts';
import { BOT_TOKEN, TELEGRAM_BOT_TOKEN } from './app.ts';
import { silentLogger } from './database.ts';

/**
 * The bot as production builds it (createBot), talking to a real app over HTTP with the bot's
 * token and to a fake Bot API that records every call. Tests feed it typed updates.
 */
export interface BotHarness {
  app: FastifyInstance;
  bot: Bot<BotContext>;
  telegram: FakeTelegram;
  store: MemoryConversationStore;
  api: BotApi;
  apiUrl: string;
  close(): Promise<void>;
}

export async function startBotHarness(
  /** The app, built with TELEGRAM_API_ROOT at the fake so its deliveries reach it too. */
  buildApp: (telegramApiRoot: string) => Promise<FastifyInstance>,
  options: {
    defaultLanguage?: Language;
    throttlePerMinute?: number;
    /** How the bot reaches the API (default: the production transport). */
    fetch?: typeof fetch;
  } = {},
): Promise<BotHarness> {
  const telegram = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
  const app = await buildApp(telegram.apiRoot);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as AddressInfo;
  const apiUrl = `http://127.0.0.1:${port}`;
  const store = new MemoryConversationStore();
  const api = new BotApi({
    baseUrl: apiUrl,
    token: BOT_TOKEN,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  const bot = createBot({
    token: TELEGRAM_BOT_TOKEN,
    api,
    store,
    logger: silentLogger,
    settings: {
      defaultLanguage: options.defaultLanguage ?? 'en',
      throttlePerMinute: options.throttlePerMinute ?? 1000,
    },
    client: { apiRoot: telegram.apiRoot },
    botInfo: {
      id: 1,
      is_bot: true,
      first_name: 'Fake',
      username: 'fake_bot',
      can_join_groups: true,
      can_read_all_group_messages: false,
      supports_inline_queries: false,
      can_connect_to_business: false,
      has_main_web_app: false,
      has_topics_enabled: false,
      allows_users_to_create_topics: false,
      can_manage_bots: false,
      supports_join_request_queries: false,
    },
  });
  return {
    app,
    bot,
    telegram,
    store,
    api,
    apiUrl,
    async close() {
      await app.close();
      await telegram.close();
    },
  };
}

let updateId = 1000;
let messageId = 5000;

export function telegramUser(id: number, language = 'en', name = 'Ada'): User {
  return { id, is_bot: false, first_name: name, language_code: language };
}

function chatOf(user: User) {
  return { id: user.id, type: 'private' as const, first_name: user.first_name };
}

export function textUpdate(user: User, text: string): Update {
  const entities = text.startsWith('/')
    ? [{ type: 'bot_command' as const, offset: 0, length: text.split(' ')[0]?.length ?? 0 }]
    : undefined;
  return {
    update_id: ++updateId,
    message: {
      message_id: ++messageId,
      date: Math.floor(Date.now() / 1000),
      chat: chatOf(user),
      from: user,
      text,
      ...(entities ? { entities } : {}),
    },
  };
}

export function photoUpdate(
  user: User,
  fileId: string,
  caption?: string,
  mediaGroupId?: string,
): Update {
  return {
    update_id: ++updateId,
    message: {
      message_id: ++messageId,
      date: Math.floor(Date.now() / 1000),
      chat: chatOf(user),
      from: user,
      photo: [
        { file_id: `${fileId}-small`, file_unique_id: `${fileId}-s`, width: 90, height: 90 },
        { file_id: fileId, file_unique_id: `${fileId}-l`, width: 800, height: 800 },
      ],
      ...(caption === undefined ? {} : { caption }),
      ...(mediaGroupId === undefined ? {} : { media_group_id: mediaGroupId }),
    },
  };
}

/** A tap on a button of `message` (a message the bot sent, as the fake answered it). */
export function callbackUpdate(user: User, data: string, message?: Partial<Message>): Update {
  return {
    update_id: ++updateId,
    callback_query: {
      id: `cb-${updateId}`,
      from: user,
      chat_instance: 'ci',
      data,
      message: {
        message_id: message?.message_id ?? ++messageId,
        date: Math.floor(Date.now() / 1000),
        chat: chatOf(user),
        text: '',
        ...message,
      } as Message,
    },
  };
}

export function preCheckoutUpdate(
  user: User,
  payload: string,
  amount: number,
  currency = 'XTR',
): Update {
  return {
    update_id: ++updateId,
    pre_checkout_query: {
      id: `pcq-${updateId}`,
      from: user,
      currency,
      total_amount: amount,
      invoice_payload: payload,
    },
  };
}

export function successfulPaymentUpdate(
  user: User,
  payload: string,
  amount: number,
  chargeId: string,
): Update {
  return {
    update_id: ++updateId,
    message: {
      message_id: ++messageId,
      date: Math.floor(Date.now() / 1000),
      chat: chatOf(user),
      from: user,
      successful_payment: {
        currency: 'XTR',
        total_amount: amount,
        invoice_payload: payload,
        telegram_payment_charge_id: chargeId,
        provider_payment_charge_id: '',
      },
    },
  };
}

export function refundedPaymentUpdate(user: User, amount: number, chargeId: string): Update {
  return {
    update_id: ++updateId,
    message: {
      message_id: ++messageId,
      date: Math.floor(Date.now() / 1000),
      chat: chatOf(user),
      from: user,
      refunded_payment: {
        currency: 'XTR',
        total_amount: amount,
        invoice_payload: '',
        telegram_payment_charge_id: chargeId,
      },
    },
  };
}
