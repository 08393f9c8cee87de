import { Composer } from 'grammy';
import { escapeHtml } from '../../locales/index.ts';
import type { BotContext } from '../context.ts';
import { acknowledge, backToMenu, explainFailure, html } from '../replies.ts';

/** How to use the bot, what each model costs, and whom to ask. */
export const helpFlow = new Composer<BotContext>();

async function showHelp(ctx: BotContext): Promise<void> {
  try {
    const catalog = await ctx.services.api.catalog();
    const lines = [ctx.t('help-text')];
    for (const model of catalog) {
      lines.push(
        ctx.t('help-model-line', {
          name: escapeHtml(model.name),
          price: ctx.t('price-credits', { credits: model.price_credits }),
        }),
      );
    }
    const contact = await ctx.services.api.supportContact();
    if (contact) lines.push('', ctx.t('help-support', { contact: escapeHtml(contact) }));
    await ctx.reply(lines.join('\n'), { ...html, reply_markup: backToMenu(ctx) });
  } catch (error) {
    await explainFailure(ctx, error);
  }
}

helpFlow.command('help', showHelp);
helpFlow.callbackQuery('menu:help', async (ctx) => {
  await acknowledge(ctx);
  await showHelp(ctx);
});
