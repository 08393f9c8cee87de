import { Composer, InlineKeyboard } from 'grammy';
import type { BotContext } from '../context.ts';
import { acknowledge, explainFailure, html } from '../replies.ts';

/** The Stars packages as buttons, and the invoice of the one tapped. Paying is payments.ts. */
export const topupFlow = new Composer<BotContext>();

async function showPackages(ctx: BotContext): Promise<void> {
  try {
    const packages = await ctx.services.api.starsPackages();
    const keyboard = new InlineKeyboard();
    for (const offer of packages) {
      keyboard
        .text(
          ctx.t('topup-package', { credits: offer.credits, stars: offer.stars }),
          `topup:${offer.id}`,
        )
        .row();
    }
    await ctx.reply(ctx.t('topup-title'), { ...html, reply_markup: keyboard });
  } catch (error) {
    await explainFailure(ctx, error);
  }
}

topupFlow.command('topup', showPackages);
topupFlow.callbackQuery('menu:topup', async (ctx) => {
  await acknowledge(ctx);
  await showPackages(ctx);
});

topupFlow.callbackQuery(/^topup:([a-z0-9_-]{1,32})$/, async (ctx) => {
  await acknowledge(ctx);
  try {
    const offer = (await ctx.services.api.starsPackages()).find((p) => p.id === ctx.match[1]);
    if (!offer) {
      await ctx.reply(ctx.t('precheckout-invalid'), html);
      return;
    }
    // Stars: currency XTR, one price, no provider token.
    await ctx.replyWithInvoice(
      ctx.t('invoice-title', { credits: offer.credits }),
      ctx.t('invoice-description', { credits: offer.credits }),
      offer.invoice_payload,
      'XTR',
      [{ label: ctx.t('invoice-title', { credits: offer.credits }), amount: offer.stars }],
    );
  } catch (error) {
    await explainFailure(ctx, error);
  }
});
