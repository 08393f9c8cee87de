import { sql } from 'drizzle-orm';
import type { ChatTarget } from '../delivery/telegram.ts';
import type { Language } from '../locales/index.ts';

/**
 * Where a generation's news goes, as the jobs read it: the chat, the messages to reply to and to
 * edit, and the language. The bot names them in POST /generations `telegram` (generation_telegram);
 * without it, the user's own private chat (its telegram_id), nothing to reply to or edit. The
 * language is the one asked for, else the user's own choice (users.language), else its Telegram
 * client's when it is one of ours (as the bot picks it); null leaves it to DEFAULT_LANGUAGE.
 */
export interface TelegramDestination {
  chat_id: number;
  reply_to_message_id: number | null;
  status_message_id: number | null;
  language: Language | null;
}

/**
 * The destination of the generation `g` (a generation_requests row) as JSON. Never NULL: every
 * generation has its user (a foreign key), whose private chat is the default.
 */
export const TELEGRAM_DESTINATION_SQL = sql.raw(`(
  SELECT json_build_object('chat_id', COALESCE(t.chat_id, u.telegram_id),
                           'reply_to_message_id', t.reply_to_message_id,
                           'status_message_id', t.status_message_id,
                           'language', COALESCE(t.language, u.language,
                             CASE WHEN left(u.language_code, 2) IN ('uz', 'ru', 'en')
                                  THEN left(u.language_code, 2) END))
  FROM users u LEFT JOIN generation_telegram t ON t.request_id = g.id
  WHERE u.id = g.user_id)`);

/** The chat to deliver to; without a language of its own or the user's, DEFAULT_LANGUAGE. */
export function chatTarget(
  destination: TelegramDestination,
  defaultLanguage: Language,
): ChatTarget {
  return {
    chatId: Number(destination.chat_id),
    replyToMessageId:
      destination.reply_to_message_id === null ? null : Number(destination.reply_to_message_id),
    statusMessageId:
      destination.status_message_id === null ? null : Number(destination.status_message_id),
    language: destination.language ?? defaultLanguage,
  };
}
