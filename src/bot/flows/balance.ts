import { Composer, InlineKeyboard } from 'grammy';
import type { BotContext } from '../context.ts';
import { acknowledge, explainFailure, html } from '../replies.ts';

/** Balance, free generations left, and what that buys with the user's current model. */
export const balanceFlow = new Composer<BotContext>();

async function showBalance(ctx: BotContext): Promise<void> {
  if (!ctx.from) return;
  const api = ctx.services.api;
  try {
    const [balance, trial, catalog] = await Promise.all([
      api.balance(ctx.from.id),
      api.trial(ctx.from.id),
      api.catalog(),
    ]);
    const preferred = ctx.profile?.preferences.model;
    const model = catalog.find((m) => m.key === preferred) ?? catalog[0];
    let text = ctx.t('balance-text', { balance: balance.balance, trial: trial.remaining });
    if (model && model.price_credits > 0) {
      text += `\n${ctx.t('balance-buys', {
        count: Math.floor(balance.balance / model.price_credits),
        model: model.name,
      })}`;
    }
    await ctx.reply(text, {
      ...html,
      reply_markup: new InlineKeyboard()
        .text(ctx.t('button-topup'), 'menu:topup')
        .text(ctx.t('button-history'), 'menu:history')
        .row()
        .text(ctx.t('button-referral'), 'menu:referral')
        .text(ctx.t('button-language'), 'menu:language'),
    });
  } catch (error) {
    await explainFailure(ctx, error);
  }
}

balanceFlow.command('balance', showBalance);
balanceFlow.callbackQuery('menu:balance', async (ctx) => {
  await acknowledge(ctx);
  await showBalance(ctx);
});
