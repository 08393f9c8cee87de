import { stat } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import type { I18n } from '@grammyjs/i18n';
import { Api, GrammyError, HttpError, InputFile } from 'grammy';
import type {
  InlineKeyboardMarkup,
  InputMediaDocument,
  InputMediaPhoto,
  ReplyParameters,
} from 'grammy/types';
import { escapeHtml, type Language, loadTexts } from '../locales/index.ts';
import { encodeResultAction } from './result-actions.ts';

/**
 * Tells a chat how a generation ended through the Telegram Bot API (grammY's `Api`, no polling),
 * in the chat's language with the Fluent texts of src/locales. Every failure comes out as a
 * DeliveryError saying whether a retry can help. A failed delivery never refunds: the job only
 * retries or gives up.
 */

/** An image by URL, as a file on this host (the local store), or as bytes (the S3 store). */
export type DeliveryImage =
  | { url: string }
  | { path: string; mimeType: string }
  | { data: Buffer; mimeType: string };

/**
 * Where a generation's news goes: the chat (a group, or the user's private chat), the prompt's
 * message to reply to, the bot's "queued…" message to keep up to date (none when the generation
 * was not asked for by the bot), and the language.
 */
export interface ChatTarget {
  chatId: number;
  replyToMessageId: number | null;
  statusMessageId: number | null;
  language: Language;
}

/** Why a generation failed, in the words a user is told (failure-reason-* texts). */
export type FailureReason = 'timeout' | 'refused' | 'unavailable' | 'bad-input' | 'unknown';

/**
 * The reason a user reads for a generation's failure code: never the provider's own words (they
 * can be raw API text, in English, naming internals), only what the user can act on.
 */
export function failureReasonFor(code: string | null): FailureReason {
  switch (code) {
    case 'deadline_exceeded':
      return 'timeout';
    // The provider said no: a content filter, or a request it refuses (4xx).
    case 'provider_failed':
    case 'provider_rejected':
      return 'refused';
    // Unreachable, 5xx, 429 beyond its retries, or no account for it here.
    case 'provider_unavailable':
      return 'unavailable';
    case 'invalid_input':
      return 'bad-input';
    default:
      return 'unknown';
  }
}

/** A finished generation as the bot's chat is told of it: localized, with buttons. */
export type ChatOutcome =
  | {
      status: 'succeeded';
      generationId: string;
      /** The model's display name (escaped here: it is operator content). */
      modelName: string;
      /** What it cost: credits, or a free generation. */
      cost: { credits: number } | { free: true };
      images: DeliveryImage[];
    }
  | {
      status: 'failed';
      generationId: string;
      reason: FailureReason;
      refunded: { credits: number } | { trial: true } | null;
    };

/** A delivery that did not happen. `retryable`: the same call may succeed later. */
export class DeliveryError extends Error {
  readonly retryable: boolean;
  /** How long the other side asked us to wait (Telegram's retry_after, a Retry-After header). */
  readonly retryAfterSeconds?: number;
  /** Telegram's error_code or the receiver's HTTP status, when there was an answer. */
  readonly status?: number;

  constructor(
    message: string,
    options: { retryable: boolean; retryAfterSeconds?: number; status?: number },
  ) {
    super(message);
    this.name = 'DeliveryError';
    this.retryable = options.retryable;
    if (options.retryAfterSeconds !== undefined) this.retryAfterSeconds = options.retryAfterSeconds;
    if (options.status !== undefined) this.status = options.status;
  }
}

export interface TelegramDeliveryOptions {
  botToken: string;
  /** Root of the Bot API server, without a trailing slash. Default https://api.telegram.org. */
  apiRoot?: string;
  /** Longest a single API call may take before it is aborted (retryable). Default 60. */
  timeoutSeconds?: number;
}

/** Bot API limits (core.telegram.org/bots/api): sendPhoto, sendMediaGroup, sendMessage. */
export const TELEGRAM_CAPTION_LIMIT = 1024;
export const TELEGRAM_TEXT_LIMIT = 4096;
const MEDIA_GROUP_MAX = 10;
/** Uploaded photos must be at most 10 MB; bigger files go as documents (50 MB limit). */
const PHOTO_UPLOAD_MAX_BYTES = 10 * 1024 * 1024;
const DOCUMENT_UPLOAD_MAX_BYTES = 50 * 1024 * 1024;

type Prepared =
  | { kind: 'url'; url: string }
  | { kind: 'file'; source: string | Buffer; filename: string; asDocument: boolean };

export class TelegramDelivery {
  private readonly api: Api;
  private readonly botToken: string;

  constructor(options: TelegramDeliveryOptions) {
    this.botToken = options.botToken;
    // grammY refuses an apiRoot with a trailing slash.
    const apiRoot = (options.apiRoot ?? 'https://api.telegram.org').replace(/\/+$/, '');
    this.api = new Api(options.botToken, {
      apiRoot,
      timeoutSeconds: options.timeoutSeconds ?? 60,
    });
  }

  /**
   * Tells the bot's chat how a generation ended, in the target's language (HTML texts): the image
   * replying to the prompt with its model, cost and the regenerate / edit / original buttons, then
   * the status message edited to "done"; or the failure (reason, what was given back) edited into
   * the status message, or sent replying to the prompt when there is none or it cannot be edited.
   * Editing the status message after a result is best effort: it never fails the delivery.
   */
  async deliverToChat(target: ChatTarget, outcome: ChatOutcome): Promise<void> {
    const texts = deliveryTexts();
    const t = (key: string, variables?: Record<string, string | number>) =>
      texts.t(target.language, key, variables);
    try {
      if (outcome.status === 'succeeded') {
        const cost =
          'free' in outcome.cost
            ? t('delivery-cost-free')
            : t('delivery-cost-credits', { credits: outcome.cost.credits });
        const caption = truncate(
          t('delivery-result-caption', { model: escapeHtml(outcome.modelName), cost }),
          TELEGRAM_CAPTION_LIMIT,
        );
        await this.sendResult(target, outcome, caption, resultKeyboard(t, outcome.generationId));
        await this.editStatusQuietly(target, t('delivery-status-done'));
        return;
      }
      const refund = outcome.refunded;
      const lines = [t('delivery-failed', { reason: t(`failure-reason-${outcome.reason}`) })];
      if (refund !== null && 'credits' in refund) {
        lines.push(t('delivery-refunded-credits', { credits: refund.credits }));
      } else if (refund !== null) {
        lines.push(t('delivery-refunded-trial'));
      }
      const text = truncate(lines.join('\n'), TELEGRAM_TEXT_LIMIT);
      if (target.statusMessageId !== null) {
        try {
          await this.api.editMessageText(target.chatId, target.statusMessageId, text, {
            parse_mode: 'HTML',
          });
          return;
        } catch (err) {
          if (!(err instanceof GrammyError && err.error_code === 400)) throw err;
          // Already says so (a retry after the edit went through).
          if (/message is not modified/i.test(err.description)) return;
          // A status message that is gone or cannot be edited: say it in a new message instead.
        }
      }
      await this.api.sendMessage(target.chatId, text, {
        parse_mode: 'HTML',
        ...replyTo(target),
      });
    } catch (err) {
      throw toDeliveryError(err, this.botToken);
    }
  }

  /**
   * Edits the status message to say the generation is being made. Best effort, for the caller to
   * ignore: an answer that it is already so ("message is not modified") counts as done.
   */
  async showRunning(target: ChatTarget): Promise<void> {
    if (target.statusMessageId === null) return;
    const text = deliveryTexts().t(target.language, 'delivery-status-running');
    try {
      await this.api.editMessageText(target.chatId, target.statusMessageId, text, {
        parse_mode: 'HTML',
      });
    } catch (err) {
      if (err instanceof GrammyError && /message is not modified/i.test(err.description)) return;
      throw toDeliveryError(err, this.botToken);
    }
  }

  /**
   * A plain text to a chat (the operators' notices): no parse mode, so nothing in it (a model's
   * name, a reason) is read as markup; cut to Telegram's limit.
   */
  async sendText(chatId: number, text: string): Promise<void> {
    try {
      await this.api.sendMessage(chatId, truncate(text, TELEGRAM_TEXT_LIMIT));
    } catch (err) {
      throw toDeliveryError(err, this.botToken);
    }
  }

  private async editStatusQuietly(target: ChatTarget, text: string): Promise<void> {
    if (target.statusMessageId === null) return;
    await this.api
      .editMessageText(target.chatId, target.statusMessageId, text, { parse_mode: 'HTML' })
      .catch(() => undefined);
  }

  /** The image(s) replying to the prompt: one photo (or document) with caption and buttons. */
  private async sendResult(
    target: ChatTarget,
    outcome: Extract<ChatOutcome, { status: 'succeeded' }>,
    caption: string,
    keyboard: InlineKeyboardMarkup,
  ): Promise<void> {
    if (outcome.images.length === 0) {
      throw new DeliveryError(`generation ${outcome.generationId} succeeded without images`, {
        retryable: false,
      });
    }
    const prepared = await Promise.all(outcome.images.map((image, i) => prepare(image, i)));
    const chatId = target.chatId;
    const other = {
      caption,
      parse_mode: 'HTML' as const,
      reply_markup: keyboard,
      ...replyTo(target),
    };
    const [single] = prepared;
    if (prepared.length === 1 && single) {
      if (single.kind === 'file' && single.asDocument) {
        await this.api.sendDocument(chatId, new InputFile(single.source, single.filename), other);
      } else {
        await this.api.sendPhoto(chatId, media(single), other);
      }
      return;
    }
    // An album carries no buttons: it goes first, replying to the prompt, and the caption with the
    // buttons follows it as a message. An album takes 2-10 items, and documents cannot share one
    // with photos.
    let first = true;
    for (const chunk of chunkEvenly(prepared, MEDIA_GROUP_MAX)) {
      const reply = first ? replyTo(target) : {};
      if (chunk.some((item) => item.kind === 'file' && item.asDocument)) {
        const items = chunk.map(
          (item): InputMediaDocument => ({ type: 'document', media: media(item) }),
        );
        await this.api.sendMediaGroup(chatId, items, reply);
      } else {
        const items = chunk.map((item): InputMediaPhoto => ({ type: 'photo', media: media(item) }));
        await this.api.sendMediaGroup(chatId, items, reply);
      }
      first = false;
    }
    await this.api.sendMessage(chatId, caption, { parse_mode: 'HTML', reply_markup: keyboard });
  }
}

let texts: I18n | null = null;

/** The Fluent texts, read once per process (every language is given explicitly). */
function deliveryTexts(): I18n {
  texts ??= loadTexts('en');
  return texts;
}

/** Replies to the prompt, and still sends if it was deleted meanwhile. */
function replyTo(target: ChatTarget): { reply_parameters?: ReplyParameters } {
  if (target.replyToMessageId === null) return {};
  return {
    reply_parameters: { message_id: target.replyToMessageId, allow_sending_without_reply: true },
  };
}

/** Regenerate, edit, original: one row under the result (see result-actions.ts). */
function resultKeyboard(t: (key: string) => string, generationId: string): InlineKeyboardMarkup {
  return {
    inline_keyboard: [
      [
        {
          text: t('button-regenerate'),
          callback_data: encodeResultAction('regenerate', generationId),
        },
        { text: t('button-edit'), callback_data: encodeResultAction('edit', generationId) },
        { text: t('button-original'), callback_data: encodeResultAction('original', generationId) },
      ],
    ],
  };
}

/** A fresh InputFile per call: grammY marks file sources as consumed once sent. */
function media(item: Prepared): string | InputFile {
  return item.kind === 'url' ? item.url : new InputFile(item.source, item.filename);
}

async function prepare(image: DeliveryImage, index: number): Promise<Prepared> {
  if ('url' in image) return { kind: 'url', url: image.url };
  let size: number;
  if ('data' in image) {
    size = image.data.length;
  } else {
    try {
      size = (await stat(image.path)).size;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
      throw new DeliveryError(`stored image ${index + 1} cannot be read (${code})`, {
        retryable: code !== 'ENOENT',
      });
    }
  }
  if (size > DOCUMENT_UPLOAD_MAX_BYTES) {
    throw new DeliveryError(`stored image ${index + 1} is over Telegram's 50 MB upload limit`, {
      retryable: false,
    });
  }
  return {
    kind: 'file',
    source: 'data' in image ? image.data : image.path,
    filename: filenameFor('data' in image ? '' : image.path, image.mimeType, index),
    asDocument: size > PHOTO_UPLOAD_MAX_BYTES,
  };
}

const EXTENSIONS: Record<string, string> = {
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/webp': 'webp',
  'image/gif': 'gif',
};

/** Telegram sees only the file name (grammY sends every upload as octet-stream). */
function filenameFor(path: string, mimeType: string, index: number): string {
  const name = basename(path);
  if (extname(name) !== '' && !/[\r\n"]/.test(name)) return name;
  return `image-${index + 1}.${EXTENSIONS[mimeType] ?? 'png'}`;
}

/** Splits into chunks of at most `max` with sizes as even as possible: never an album of one. */
export function chunkEvenly<T>(items: readonly T[], max: number): T[][] {
  const count = Math.ceil(items.length / max);
  const chunks: T[][] = [];
  let start = 0;
  for (let i = 0; i < count; i++) {
    const size = Math.ceil((items.length - start) / (count - i));
    chunks.push(items.slice(start, start + size));
    start += size;
  }
  return chunks;
}

/**
 * At most `limit` characters (counted in UTF-16 code units, which is never fewer than Telegram's
 * count), cut on a code point boundary and ended with an ellipsis.
 */
function truncate(text: string, limit: number): string {
  if (text.length <= limit) return text;
  let end = limit - 1;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1; // do not split a surrogate pair
  return `${text.slice(0, end)}…`;
}

/** Removes the bot token (and anything shaped like one in a Bot API path) from a text. */
export function redactToken(text: string, token: string): string {
  let out = text;
  if (token !== '') out = out.split(token).join('<bot-token>');
  return out.replace(/\/bot\d+:[A-Za-z0-9_-]+/g, '/bot<bot-token>');
}

/**
 * Classifies a failure. Telegram answers (GrammyError): 429 (with parameters.retry_after) and 5xx
 * are retryable; 400 (chat not found, …), 401 (bad token), 403 (blocked, deactivated) and other
 * 4xx are final. No answer (HttpError: network, timeout, a non-JSON reply) is retryable.
 */
export function toDeliveryError(err: unknown, botToken: string): DeliveryError {
  if (err instanceof DeliveryError) {
    return new DeliveryError(redactToken(err.message, botToken), {
      retryable: err.retryable,
      retryAfterSeconds: err.retryAfterSeconds,
      status: err.status,
    });
  }
  if (err instanceof GrammyError) {
    const code = err.error_code;
    const message = redactToken(
      `Telegram ${err.method} failed (${code}: ${err.description})`,
      botToken,
    );
    if (code === 429) {
      return new DeliveryError(message, {
        retryable: true,
        retryAfterSeconds: retryAfterOf(err),
        status: code,
      });
    }
    return new DeliveryError(message, { retryable: code >= 500, status: code });
  }
  if (err instanceof HttpError) {
    // grammY's own message has no URL unless sensitiveLogs is on, but the wrapped error (node-fetch)
    // names the request URL, which holds the token: redact everything.
    const inner = err.error instanceof Error ? `: ${err.error.message}` : '';
    return new DeliveryError(redactToken(`${err.message}${inner}`, botToken), { retryable: true });
  }
  const text = err instanceof Error ? err.message : String(err);
  return new DeliveryError(redactToken(`Telegram delivery failed: ${text}`, botToken), {
    retryable: true,
  });
}

function retryAfterOf(err: GrammyError): number | undefined {
  const fromParameters = err.parameters.retry_after;
  if (typeof fromParameters === 'number' && fromParameters >= 0) return fromParameters;
  const match = /retry after (\d+)/i.exec(err.description);
  return match ? Number(match[1]) : undefined;
}
