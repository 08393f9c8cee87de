import type { Language } from '../locales/index.ts';
import type { BotContext } from './context.ts';

/**
 * Binds the update's texts to one language: @grammyjs/i18n would negotiate the locale again on
 * every ctx.t (measurable in bench:bot); the language of an update is chosen once, or changed
 * through here (the language menu).
 */
export function useLanguage(ctx: BotContext, language: Language): void {
  ctx.i18n.useLocale(language);
  const texts = ctx.services.texts;
  const translate: BotContext['t'] = (key, variables) => texts.t(language, key, variables);
  ctx.t = translate;
  ctx.translate = translate;
  ctx.language = language;
}
