import { InlineKeyboard } from 'grammy';
import { escapeHtml } from '../locales/index.ts';
import { ApiProblem, ApiUnavailable } from './api.ts';
import type { BotContext } from './context.ts';

/** Every text the bot sends is HTML from the locale files; user content is escaped into it. */
export const html = { parse_mode: 'HTML' as const };

export function mainMenu(ctx: BotContext): InlineKeyboard {
  return new InlineKeyboard()
    .text(ctx.t('button-generate'), 'menu:generate')
    .text(ctx.t('button-balance'), 'menu:balance')
    .row()
    .text(ctx.t('button-topup'), 'menu:topup')
    .text(ctx.t('button-history'), 'menu:history')
    .row()
    .text(ctx.t('button-referral'), 'menu:referral')
    .text(ctx.t('button-language'), 'menu:language')
    .row()
    .text(ctx.t('button-help'), 'menu:help');
}

export function backToMenu(ctx: BotContext): InlineKeyboard {
  return new InlineKeyboard().text(ctx.t('button-menu'), 'menu:home');
}

/** Answers a button tap (Telegram shows a spinner until then) with an optional short notice. */
export async function acknowledge(ctx: BotContext, text?: string, alert = false): Promise<void> {
  if (!ctx.callbackQuery) return;
  await ctx
    .answerCallbackQuery(text === undefined ? undefined : { text, show_alert: alert })
    .catch(() => undefined);
}

/**
 * Tells the user, in their language, why what they asked for did not happen: the API's refusals
 * each in their own words, an unreachable API as "try again in a moment". Anything else is not
 * expected and is rethrown for the bot's error boundary to log.
 */
export async function explainFailure(ctx: BotContext, error: unknown): Promise<void> {
  if (error instanceof ApiUnavailable) {
    ctx.services.logger.warn({ err: error, update: ctx.update.update_id }, 'API unavailable');
    await ctx.reply(ctx.t('error-unavailable'), html);
    return;
  }
  if (!(error instanceof ApiProblem)) throw error;
  const problem = error.problem;
  switch (error.code) {
    case 'insufficient_credits':
      await ctx.reply(
        ctx.t('error-insufficient', {
          required: Number(problem.required ?? 0),
          balance: Number(problem.balance ?? 0),
        }),
        { ...html, reply_markup: new InlineKeyboard().text(ctx.t('button-topup'), 'menu:topup') },
      );
      return;
    case 'too_many_active_generations':
      await ctx.reply(
        ctx.t('error-too-many-active', { active: Number(problem.active ?? 0) }),
        html,
      );
      return;
    case 'user_banned':
      await ctx.reply(
        ctx.t('error-banned', { reason: escapeHtml(String(problem.reason ?? '')) }),
        html,
      );
      return;
    case 'rate_limited':
      await ctx.reply(ctx.t('error-throttled'), html);
      return;
    case 'validation_failed': {
      const errors = Array.isArray(problem.errors) ? problem.errors : [];
      const details = errors
        .map((item) => String((item as { message?: unknown }).message ?? ''))
        .filter((message) => message !== '')
        .join('; ');
      await ctx.reply(ctx.t('error-invalid', { details: escapeHtml(details || error.code) }), html);
      return;
    }
    default:
      ctx.services.logger.error(
        { status: error.status, code: error.code, update: ctx.update.update_id },
        'the API refused a request the bot made',
      );
      await ctx.reply(ctx.t('error-unexpected'), html);
  }
}
