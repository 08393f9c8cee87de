import { fileURLToPath } from 'node:url';
import { I18n } from '@grammyjs/i18n';
import type { Context } from 'grammy';

/**
 * The user-facing texts: Fluent files, one a language, read by the bot and by the worker's
 * deliveries alike, so a user gets one language everywhere. Nothing user-facing is written in code.
 */

export const LANGUAGES = ['uz', 'ru', 'en'] as const;
export type Language = (typeof LANGUAGES)[number];

export function isLanguage(value: unknown): value is Language {
  return typeof value === 'string' && (LANGUAGES as readonly string[]).includes(value);
}

/** The language of a Telegram client's `language_code` (e.g. `ru-RU`) when it is one we speak. */
export function languageOfTelegram(code: string | null | undefined): Language | null {
  const short = code?.slice(0, 2);
  return isLanguage(short) ? short : null;
}

const directory = fileURLToPath(new URL('.', import.meta.url));

/** The texts, falling back to `defaultLanguage` for a key a language lacks (a test forbids that). */
export function loadTexts<C extends Context = Context>(
  defaultLanguage: Language,
  /** For the bot: the language of the user an update comes from. */
  chooseLanguage?: (ctx: C) => Language,
): I18n<C> {
  const i18n = new I18n<C>({
    defaultLocale: defaultLanguage,
    ...(chooseLanguage ? { localeNegotiator: chooseLanguage } : {}),
    // Fluent would otherwise wrap every placeholder in invisible isolation marks.
    fluentBundleOptions: { useIsolating: false },
  });
  for (const language of LANGUAGES) {
    i18n.loadLocaleSync(language, { filePath: `${directory}${language}.ftl` });
  }
  return i18n;
}

/** User content put into an HTML text (parse_mode HTML): a `<` in a prompt must stay a `<`. */
export function escapeHtml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}
