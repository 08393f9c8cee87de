import type { I18n, I18nFlavor } from '@grammyjs/i18n';
import type { Context } from 'grammy';
import type { Logger } from '../core/logger.ts';
import type { Language } from '../locales/index.ts';
import type { BotApi } from './api.ts';
import type { UserProfiles } from './profiles.ts';
import type { ConversationStore } from './store.ts';

/** What the bot's handlers are given besides the update. */
export interface BotServices {
  api: BotApi;
  store: ConversationStore;
  profiles: UserProfiles;
  texts: I18n<BotContext>;
  logger: Logger;
  settings: BotSettings;
}

export interface BotSettings {
  defaultLanguage: Language;
  throttlePerMinute: number;
}

/** The user as the bot needs them: their language, and a ban if there is one. */
export interface Profile {
  telegramId: number;
  language: Language | null;
  banned: { reason: string } | null;
  preferences: Preferences;
}

/** The model and parameters a user chose last, remembered for the next prompt. */
export interface Preferences {
  model?: string;
  parameters?: Record<string, Record<string, string>>;
}

export type BotContext = Context &
  I18nFlavor & {
    services: BotServices;
    /** Null when the update has no user, or the API could not be reached to read one. */
    profile: Profile | null;
    /** The language this update is answered in (see useLanguage in create-bot.ts). */
    language: Language;
  };
