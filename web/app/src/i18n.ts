import { FluentBundle, FluentResource, type FluentVariable } from '@fluent/bundle';
import en from '../../../src/locales/en.ftl?raw';
import ru from '../../../src/locales/ru.ftl?raw';
import uz from '../../../src/locales/uz.ftl?raw';

/**
 * The bot's own texts (src/locales/*.ftl, bundled as they are): the Mini App speaks as the bot
 * does, in the user's Telegram language when it is one of ours, else Uzbek (the bot's default).
 */
const SOURCES = { uz, ru, en } as const;
type Language = keyof typeof SOURCES;

export type Translate = (id: string, args?: Record<string, FluentVariable>) => string;

export function textsFor(languageCode: string | null): { language: Language; t: Translate } {
  const short = languageCode?.slice(0, 2) ?? '';
  const language: Language = short in SOURCES ? (short as Language) : 'uz';
  const bundle = new FluentBundle(language, { useIsolating: false });
  bundle.addResource(new FluentResource(SOURCES[language]));
  const t: Translate = (id, args) => {
    const message = bundle.getMessage(id);
    return message?.value ? bundle.formatPattern(message.value, args) : id;
  };
  return { language, t };
}
