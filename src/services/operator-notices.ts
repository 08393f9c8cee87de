import type { I18n } from '@grammyjs/i18n';
import { sql } from 'drizzle-orm';
import type { Config } from '../core/config.ts';
import { selectRows } from '../db/rows.ts';
import { DeliveryError, TelegramDelivery } from '../delivery/telegram.ts';
import { loadTexts } from '../locales/index.ts';
import type { ServiceContext } from './context.ts';

/**
 * Notices to the operators' Telegram chat (ADMIN_CHAT_ID): provider alerts, the daily report,
 * broadcast summaries. Each notice has a key naming the event it tells of (`daily-report:2026-11-26`,
 * `provider-balance-low:wavespeed:<since>`); a row per key in `operator_notices`, claimed before the
 * Bot API call, makes it go out at most once however many processes try it, and however often.
 * So a caller may simply try the same key again on every run until it is sent.
 *
 * - Telegram answered that it did not send it (429, 5xx, 400 chat not found…): the row is `failed`
 *   and the next try of the key claims it again, up to MAX_ATTEMPTS in all.
 * - The call got no answer (network, timeout): it may have arrived, so the row is `unknown` and the
 *   key is never tried again. A process that dies between the claim and the answer leaves the row
 *   `sending`, the same: never twice.
 * Texts come from the locale files, in the bot's default language (DEFAULT_LANGUAGE).
 */

/** Claims of one key, the first included, before it is given up. */
const MAX_ATTEMPTS = 5;
/** A notice call waits no longer than this: a caller may be on its way to something else. */
const NOTICE_TIMEOUT_SECONDS = 10;

export type NoticeVariables = Record<string, string | number>;
/** A text of the locale files in the operators' language (the bot's default). */
export type NoticeText = (id: string, variables?: NoticeVariables) => string;

export type NoticeOutcome =
  /** Sent now. */
  | { outcome: 'sent' }
  /** Sent before, being sent by someone else, or given up: nothing done. */
  | { outcome: 'already' }
  /** No ADMIN_CHAT_ID or no TELEGRAM_BOT_TOKEN: nothing recorded, nothing sent. */
  | { outcome: 'not_configured' }
  /** Not sent now; `retryable`: a later try of the key claims it again. */
  | { outcome: 'failed'; retryable: boolean; error: string };

let texts: I18n | null = null;
const clients = new WeakMap<Config, TelegramDelivery>();

function telegramOf(config: Config, botToken: string): TelegramDelivery {
  let client = clients.get(config);
  if (!client) {
    client = new TelegramDelivery({
      botToken,
      apiRoot: config.delivery.telegramApiRoot,
      timeoutSeconds: NOTICE_TIMEOUT_SECONDS,
    });
    clients.set(config, client);
  }
  return client;
}

/**
 * Sends the notice `key` to the operators' chat once: `compose` writes its text (called only when
 * this call is the one to send it, so a costly text — the daily report's numbers — is made once).
 * A `compose` that throws leaves the key to be tried again.
 */
export async function notifyOperators(
  ctx: ServiceContext,
  key: string,
  compose: (t: NoticeText) => string | Promise<string>,
): Promise<NoticeOutcome> {
  const chatId = ctx.config.operators.adminChatId;
  const botToken = ctx.config.telegramBotToken;
  if (chatId === null || !botToken) return { outcome: 'not_configured' };
  const claimed = await selectRows<{ key: string }>(
    ctx.db,
    sql`INSERT INTO operator_notices AS n (key, chat_id) VALUES (${key}, ${chatId})
        ON CONFLICT (key) DO UPDATE
          SET status = 'sending', attempts = n.attempts + 1, claimed_at = now(),
              chat_id = excluded.chat_id, error = NULL
          WHERE n.status = 'failed' AND n.attempts < ${MAX_ATTEMPTS}
        RETURNING key`,
  );
  if (claimed.length === 0) return { outcome: 'already' };
  let text: string;
  try {
    texts ??= loadTexts('en');
    const i18n = texts;
    const language = ctx.config.defaultLanguage;
    text = await compose((id, variables) => i18n.t(language, id, variables));
  } catch (error) {
    return finish(ctx, key, {
      outcome: 'failed',
      retryable: true,
      error: `the notice could not be written: ${(error as Error).message}`,
    });
  }
  try {
    await telegramOf(ctx.config, botToken).sendText(chatId, text);
  } catch (error) {
    const failure =
      error instanceof DeliveryError
        ? error
        : new DeliveryError(String(error), { retryable: false });
    // Only an answer from Telegram says the message was not sent; without one it may have been.
    const answered = failure.status !== undefined;
    return finish(ctx, key, {
      outcome: 'failed',
      retryable: answered,
      error: failure.message,
    });
  }
  return finish(ctx, key, { outcome: 'sent' });
}

async function finish(
  ctx: ServiceContext,
  key: string,
  result: Exclude<NoticeOutcome, { outcome: 'already' | 'not_configured' }>,
): Promise<NoticeOutcome> {
  if (result.outcome === 'sent') {
    await ctx.db.execute(
      sql`UPDATE operator_notices SET status = 'sent', sent_at = now(), error = NULL
          WHERE key = ${key}`,
    );
  } else {
    await ctx.db.execute(
      sql`UPDATE operator_notices
          SET status = ${result.retryable ? 'failed' : 'unknown'}, error = ${result.error.slice(0, 500)}
          WHERE key = ${key}`,
    );
  }
  return result;
}
