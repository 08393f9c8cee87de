import { Composer } from 'grammy';
import { escapeHtml } from '../../locales/index.ts';
import type { BotContext } from '../context.ts';
import { acknowledge, explainFailure, html, mainMenu } from '../replies.ts';

/** /start (with an optional `r_<code>` referral), the main menu, and the way back to it. */
export const startFlow = new Composer<BotContext>();

startFlow.command('start', async (ctx) => {
  if (!ctx.from) return;
  const payload = typeof ctx.match === 'string' ? ctx.match.trim() : '';
  const referral = /^r_([A-Za-z0-9]{4,32})$/.exec(payload)?.[1];
  if (referral !== undefined) {
    // Applied by the API only if this sync creates the user.
    try {
      ctx.profile = await ctx.services.profiles.of(ctx.from, referral);
      await ctx.i18n.renegotiateLocale();
    } catch (error) {
      await explainFailure(ctx, error);
      return;
    }
  }
  await ctx.reply(
    `${ctx.t('start-greeting', { name: escapeHtml(ctx.from.first_name) })}\n\n${ctx.t('menu-title')}`,
    { ...html, reply_markup: mainMenu(ctx) },
  );
});

startFlow.callbackQuery('menu:home', async (ctx) => {
  await acknowledge(ctx);
  await ctx.reply(ctx.t('menu-title'), { ...html, reply_markup: mainMenu(ctx) });
});

startFlow.callbackQuery('menu:generate', async (ctx) => {
  await acknowledge(ctx);
  await ctx.reply(ctx.t('generate-ask-prompt'), html);
});

startFlow.command('generate', async (ctx) => {
  await ctx.reply(ctx.t('generate-ask-prompt'), html);
});
