import { Bot, type BotConfig, GrammyError, type Middleware } from 'grammy';
import type { UserFromGetMe } from 'grammy/types';
import type { Logger } from '../core/logger.ts';
import {
  escapeHtml,
  isLanguage,
  type Language,
  languageOfTelegram,
  loadTexts,
} from '../locales/index.ts';
import type { BotApi } from './api.ts';
import type { BotContext, BotSettings } from './context.ts';
import { balanceFlow } from './flows/balance.ts';
import { generateFlow } from './flows/generate.ts';
import { helpFlow } from './flows/help.ts';
import { historyFlow } from './flows/history.ts';
import { languageFlow } from './flows/language.ts';
import { paymentsFlow } from './flows/payments.ts';
import { referralFlow } from './flows/referral.ts';
import { resultsFlow } from './flows/results.ts';
import { startFlow } from './flows/start.ts';
import { topupFlow } from './flows/topup.ts';
import { UserProfiles } from './profiles.ts';
import { html } from './replies.ts';
import type { ConversationStore } from './store.ts';
import { useLanguage } from './texts.ts';
import { Throttle } from './throttle.ts';

export interface BotDependencies {
  token: string;
  api: BotApi;
  store: ConversationStore;
  settings: BotSettings;
  logger: Logger;
  /** Where Bot API calls go (TELEGRAM_API_ROOT), and tests' fake fetch. */
  client?: BotConfig<BotContext>['client'];
  /** Known already (tests, or a process that called getMe): the bot then needs no init call. */
  botInfo?: UserFromGetMe;
  /** Runs before everything else (the runner's per-chat sequencing). */
  before?: Middleware<BotContext>;
}

/**
 * The bot: never starts itself (src/bot/run.ts does; tests feed it updates with handleUpdate).
 * Order matters: the user's profile and language first, then money (before anything that may
 * refuse an update), then the ban and the throttle, then the flows.
 */
export function createBot(deps: BotDependencies): Bot<BotContext> {
  const bot = new Bot<BotContext>(deps.token, {
    ...(deps.client ? { client: deps.client } : {}),
    ...(deps.botInfo ? { botInfo: deps.botInfo } : {}),
  });
  // The stored choice, else Telegram's language when we speak it, else the default.
  const texts = loadTexts<BotContext>(deps.settings.defaultLanguage, (ctx) =>
    chooseLanguage(ctx, deps.settings.defaultLanguage),
  );
  const profiles = new UserProfiles(deps.api);
  const services = {
    api: deps.api,
    store: deps.store,
    profiles,
    texts,
    logger: deps.logger,
    settings: deps.settings,
  };
  const throttle = new Throttle(deps.settings.throttlePerMinute);

  if (deps.before) bot.use(deps.before);
  bot.use(async (ctx, next) => {
    ctx.services = services;
    ctx.profile = null;
    if (ctx.from && !ctx.from.is_bot) {
      try {
        // A referral is applied by the sync that creates the user: the first update's.
        ctx.profile = await profiles.of(ctx.from, referralCodeOf(ctx.message?.text));
      } catch (error) {
        // The API is down: the update still gets an answer, in Telegram's language.
        deps.logger.warn({ err: error, update: ctx.update.update_id }, 'user profile unavailable');
      }
    }
    await next();
  });

  bot.use(texts);
  bot.use(async (ctx, next) => {
    const language = await ctx.i18n.getLocale();
    useLanguage(ctx, isLanguage(language) ? language : deps.settings.defaultLanguage);
    await next();
  });

  bot.use(paymentsFlow);

  bot.use(async (ctx, next) => {
    const banned = ctx.profile?.banned;
    if (!banned) return next();
    const text = ctx.t('error-banned', { reason: escapeHtml(banned.reason) });
    if (ctx.callbackQuery) await ctx.answerCallbackQuery({ text, show_alert: true });
    else if (ctx.chat) await ctx.reply(text, html);
  });

  bot.use(async (ctx, next) => {
    if (!ctx.from) return next();
    const verdict = throttle.take(ctx.from.id);
    if (verdict === 'allow') return next();
    if (verdict === 'warn') {
      if (ctx.callbackQuery) await ctx.answerCallbackQuery({ text: ctx.t('error-throttled') });
      else if (ctx.chat) await ctx.reply(ctx.t('error-throttled'), html);
    }
  });

  bot.use(
    startFlow,
    balanceFlow,
    topupFlow,
    historyFlow,
    referralFlow,
    languageFlow,
    helpFlow,
    resultsFlow,
    generateFlow,
  );

  bot.catch(async ({ ctx, error }) => {
    deps.logger.error(
      { err: error, update: ctx.update.update_id },
      error instanceof GrammyError ? 'a Bot API call failed' : 'an update failed',
    );
    try {
      if (ctx.callbackQuery) await ctx.answerCallbackQuery().catch(() => undefined);
      if (ctx.chat) await ctx.reply(ctx.t('error-unexpected'), html);
    } catch {
      // Telegram itself is unreachable: nothing more to do for this update.
    }
  });
  return bot;
}

export function chooseLanguage(ctx: BotContext, fallback: Language): Language {
  return ctx.profile?.language ?? languageOfTelegram(ctx.from?.language_code) ?? fallback;
}

/** `r_<code>` of `/start r_<code>` (a t.me/<bot>?start=r_<code> link). */
function referralCodeOf(text: string | undefined): string | undefined {
  return /^\/start(?:@\w+)? r_([A-Za-z0-9]{4,32})$/.exec(text?.trim() ?? '')?.[1];
}
