import { Composer } from 'grammy';
import type { BotContext } from '../context.ts';
import { acknowledge, backToMenu, explainFailure, html } from '../replies.ts';

/** The user's invitation link, how many joined and what it earned. */
export const referralFlow = new Composer<BotContext>();

async function showReferral(ctx: BotContext): Promise<void> {
  if (!ctx.from) return;
  try {
    const referrals = await ctx.services.api.referrals(ctx.from.id);
    const link = `https://t.me/${ctx.me.username}?start=r_${referrals.code}`;
    await ctx.reply(
      ctx.t('referral-text', {
        link,
        percent: referrals.percent,
        count: referrals.joined,
        earned: referrals.earned_credits,
      }),
      { ...html, reply_markup: backToMenu(ctx), link_preview_options: { is_disabled: true } },
    );
  } catch (error) {
    await explainFailure(ctx, error);
  }
}

referralFlow.command('referral', showReferral);
referralFlow.callbackQuery('menu:referral', async (ctx) => {
  await acknowledge(ctx);
  await showReferral(ctx);
});
