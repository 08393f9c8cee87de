import { Composer } from 'grammy';
import { escapeHtml } from '../../locales/index.ts';
import type { BotContext } from '../context.ts';
import { acknowledge, html, mainMenu } from '../replies.ts';

/** /start, the main menu, and the way back to it. */
export const startFlow = new Composer<BotContext>();

// A referral code in the link was applied when the user's profile was read (create-bot.ts).
startFlow.command('start', async (ctx) => {
  if (!ctx.from) return;
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
