import { Composer, InlineKeyboard } from 'grammy';
import { isLanguage, LANGUAGES } from '../../locales/index.ts';
import type { BotContext } from '../context.ts';
import { acknowledge, explainFailure, html, mainMenu } from '../replies.ts';
import { useLanguage } from '../texts.ts';

/** The language menu; the choice is stored through the API and used by deliveries too. */
export const languageFlow = new Composer<BotContext>();

async function showLanguages(ctx: BotContext): Promise<void> {
  const current = ctx.language;
  const keyboard = new InlineKeyboard();
  for (const language of LANGUAGES) {
    const name = ctx.t(`language-name-${language}`);
    keyboard.text(`${language === current ? '✅ ' : ''}${name}`, `lang:${language}`);
  }
  await ctx.reply(ctx.t('language-title'), { ...html, reply_markup: keyboard });
}

languageFlow.command('language', showLanguages);
languageFlow.callbackQuery('menu:language', async (ctx) => {
  await acknowledge(ctx);
  await showLanguages(ctx);
});

languageFlow.callbackQuery(/^lang:([a-z]{2})$/, async (ctx) => {
  const language = ctx.match[1];
  if (!isLanguage(language)) return acknowledge(ctx);
  try {
    ctx.profile = await ctx.services.profiles.chooseLanguage(ctx.from.id, language);
    useLanguage(ctx, language);
    await acknowledge(ctx);
    await ctx.reply(`${ctx.t('language-changed')}\n\n${ctx.t('menu-title')}`, {
      ...html,
      reply_markup: mainMenu(ctx),
    });
  } catch (error) {
    await acknowledge(ctx);
    await explainFailure(ctx, error);
  }
});
