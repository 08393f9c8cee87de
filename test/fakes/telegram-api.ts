import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A fake Telegram Bot API on 127.0.0.1 for tests. It answers `/bot<token>/<method>` with the
 * documented envelope — `{ok:true,result}` or `{ok:false,error_code,description,parameters?}`,
 * the HTTP status being the error_code — reads JSON, form-urlencoded, query-string and
 * multipart/form-data parameters (grammY's uploads), and records every call made with the right
 * token. Files registered with `addFile` are described by `getFile` (a File object:
 * file_id, file_unique_id, file_size, file_path) and served at `/file/bot<token>/<file_path>`,
 * as the real API does; like it, getFile refuses files over the bots' 20 MB download limit.
 */

export interface FakeTelegramFile {
  /** The form field: `photo`/`document`, or the random name an `attach://` reference points to. */
  field: string;
  filename: string;
  size: number;
}

export interface FakeTelegramCall {
  method: string;
  chatId: number | undefined;
  /** The non-file fields; JSON-encoded multipart values (media, reply_markup) are parsed. */
  fields: Record<string, unknown>;
  files: FakeTelegramFile[];
  /** When the request arrived (Date.now()). */
  at: number;
}

/** StarTransaction (core.telegram.org/bots/api#startransaction) with TransactionPartnerUser. */
export interface FakeStarTransaction {
  id: string;
  amount: number;
  nanostar_amount?: number;
  date: number;
  source?: { type: 'user'; user: FakeTelegramUser; invoice_payload?: string };
  receiver?: { type: 'user'; user: FakeTelegramUser; invoice_payload?: string };
}

/** User (core.telegram.org/bots/api#user), as much as a transaction partner carries. */
export interface FakeTelegramUser {
  id: number;
  is_bot: false;
  first_name: string;
}

/**
 * An invoice link the bot created (createInvoiceLink): the link it was answered and the invoice
 * as Telegram took it.
 */
export interface FakeInvoiceLink {
  link: string;
  title: string;
  description: string;
  payload: string;
  currency: string;
  prices: { label: string; amount: number }[];
}

export interface FakeTelegramFailure {
  error_code: number;
  description: string;
  retry_after?: number;
}

/** A download of a registered file (`GET /file/bot<token>/<file_path>`) with the right token. */
export interface FakeTelegramDownload {
  filePath: string;
  status: number;
}

export interface FakeTelegramFileOptions {
  /** Leave file_size out of getFile's answer (it is optional in the File object). */
  omitSize?: boolean;
}

export interface FakeTelegram {
  /** Pass as grammY's apiRoot (no trailing slash). */
  apiRoot: string;
  calls: FakeTelegramCall[];
  /** Every download of a file by its path, in order. */
  downloads: FakeTelegramDownload[];
  /**
   * Registers a file the bot may fetch: getFile(fileId) describes it and its file_path serves the
   * bytes. The default path is `photos/file_<n>.jpg` for JPEG bytes, else
   * `documents/file_<n>.<ext>` after the bytes' type. Answers the file_path.
   */
  addFile(
    fileId: string,
    bytes: Uint8Array,
    filePath?: string,
    options?: FakeTelegramFileOptions,
  ): string;
  /**
   * The next `times` calls of `method` answer with this error; `method` 'download' stands for
   * the file downloads (`/file/bot<token>/…`).
   */
  failNext(method: string, failure: FakeTelegramFailure, times?: number): void;
  /** Queues an update for getUpdates (long polling), waking a poll that waits. */
  pushUpdate(update: { update_id: number }): void;
  /**
   * A user's Stars payment the bot received: a StarTransaction whose id is the
   * telegram_payment_charge_id and whose source is a TransactionPartnerUser with the invoice's
   * payload; refundStarPayment refunds it once (then CHARGE_ALREADY_REFUNDED) and adds the refund
   * transaction (the same id, the user as receiver).
   */
  addStarPayment(payment: {
    chargeId: string;
    userId: number;
    amount: number;
    invoicePayload: string;
    /** Unix time; default now. */
    date?: number;
  }): void;
  /** The bot's Star transactions as getStarTransactions pages them (see starOrder). */
  starTransactions: FakeStarTransaction[];
  /** Every invoice link createInvoiceLink made, oldest first. */
  invoiceLinks: FakeInvoiceLink[];
  /**
   * The order getStarTransactions pages in: `chronological` (the Bot API's documentation: "in
   * chronological order") or `newest_first`.
   */
  starOrder: 'chronological' | 'newest_first';
  /** Waits this long before answering every following request (0 to stop). */
  delayMs(ms: number): void;
  /** The next call of `method` is recorded when it arrives and answered `ms` later (a slow call). */
  slowNext(method: string, ms: number): void;
  close(): Promise<void>;
}

interface Part {
  name: string;
  filename?: string;
  data: Buffer;
}

interface StoredFile {
  fileId: string;
  uniqueId: string;
  bytes: Buffer;
  filePath: string;
  omitSize: boolean;
}

const CAPTION_LIMIT = 1024;
const TEXT_LIMIT = 4096;
/** Bots may download files of up to 20 MB: getFile refuses bigger ones. */
export const DOWNLOAD_LIMIT = 20 * 1024 * 1024;

export async function startFakeTelegram(options: { token: string }): Promise<FakeTelegram> {
  const calls: FakeTelegramCall[] = [];
  const downloads: FakeTelegramDownload[] = [];
  const failures = new Map<string, { failure: FakeTelegramFailure; remaining: number }>();
  const filesById = new Map<string, StoredFile>();
  const filesByPath = new Map<string, StoredFile>();
  let delay = 0;
  const slowCalls = new Map<string, number>();
  let messageId = 0;
  /** The bot's messages by `chat:message_id` (their text and buttons), and those it deleted. */
  const messages = new Map<string, { text: unknown; markup: string }>();
  const deleted = new Set<string>();
  let fileCount = 0;
  /** The bot's Star transactions, oldest first. */
  const starTransactions: FakeStarTransaction[] = [];
  const invoiceLinks: FakeInvoiceLink[] = [];

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      send(res, 500, { ok: false, error_code: 500, description: `fake: ${String(err)}` });
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    const url = new URL(req.url ?? '/', 'http://x');
    const download = /^\/file\/bot([^/]+)\/(.+)$/.exec(url.pathname);
    if (download) {
      serveFile(req, res, download[1] ?? '', decodeURIComponent(download[2] ?? ''));
      return;
    }
    const match = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(url.pathname);
    if (!match) {
      send(res, 404, { ok: false, error_code: 404, description: 'Not Found' });
      return;
    }
    const [, token, methodName] = match;
    if (token !== options.token) {
      send(res, 401, { ok: false, error_code: 401, description: 'Unauthorized' });
      return;
    }
    // Method names are case-insensitive in the Bot API.
    const method = canonical(methodName ?? '');
    // The Bot API takes parameters in the query string as well as in the body.
    let fields: Record<string, unknown> = Object.fromEntries(url.searchParams);
    const files: FakeTelegramFile[] = [];
    let parts: Part[] = [];
    const type = req.headers['content-type'] ?? '';
    try {
      if (type.startsWith('multipart/form-data')) {
        const boundary = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(type);
        parts = parseMultipart(body, (boundary?.[1] ?? boundary?.[2] ?? '').trim());
        for (const part of parts) {
          if (part.filename === undefined) fields[part.name] = decodeField(part.data.toString());
          else files.push({ field: part.name, filename: part.filename, size: part.data.length });
        }
      } else if (type.startsWith('application/x-www-form-urlencoded')) {
        fields = { ...fields, ...Object.fromEntries(new URLSearchParams(body.toString())) };
      } else if (body.length > 0) {
        fields = { ...fields, ...(JSON.parse(body.toString()) as Record<string, unknown>) };
      }
    } catch (err) {
      send(res, 400, { ok: false, error_code: 400, description: `Bad Request: ${String(err)}` });
      return;
    }
    if (method === 'getUpdates') {
      await serveUpdates(res, fields);
      return;
    }
    const chatId = fields.chat_id === undefined ? undefined : Number(fields.chat_id);
    calls.push({ method, chatId, fields, files, at: Date.now() });
    const slowMs = slowCalls.get(method);
    if (slowMs !== undefined) {
      slowCalls.delete(method);
      await new Promise((resolve) => setTimeout(resolve, slowMs));
    }

    if (failPlanned(res, method)) return;

    if (method === 'getFile') {
      getFile(res, fields.file_id);
      return;
    }
    if (method === 'refundStarPayment') {
      refundStarPayment(res, fields);
      return;
    }
    if (method === 'createInvoiceLink') {
      createInvoiceLink(res, fields);
      return;
    }
    if (method === 'getStarTransactions') {
      // offset: transactions to skip; limit: 1-100, default 100.
      const offset = Number(fields.offset ?? 0);
      const limit = Number(fields.limit ?? 100);
      if (
        !Number.isInteger(offset) ||
        offset < 0 ||
        !Number.isInteger(limit) ||
        limit < 1 ||
        limit > 100
      ) {
        send(res, 400, { ok: false, error_code: 400, description: 'Bad Request: invalid limit' });
        return;
      }
      const ordered =
        fake.starOrder === 'newest_first' ? [...starTransactions].reverse() : [...starTransactions];
      send(res, 200, { ok: true, result: { transactions: ordered.slice(offset, offset + limit) } });
      return;
    }
    const problem = validate(method, fields, files) ?? messageProblem(method, chatId ?? 0, fields);
    if (problem) {
      send(res, 400, { ok: false, error_code: 400, description: `Bad Request: ${problem}` });
      return;
    }
    send(res, 200, { ok: true, result: answer(method, chatId ?? 0, fields) });
  }

  /** Answers the planned failure of `method`, if one is due. */
  function failPlanned(res: ServerResponse, method: string): boolean {
    const planned = failures.get(method);
    if (!planned || planned.remaining <= 0) return false;
    planned.remaining -= 1;
    const { error_code, description, retry_after } = planned.failure;
    send(res, error_code, {
      ok: false,
      error_code,
      description,
      ...(retry_after === undefined ? {} : { parameters: { retry_after } }),
    });
    return true;
  }

  /** refundStarPayment(user_id, telegram_payment_charge_id): True, or the API's refusals. */
  function refundStarPayment(res: ServerResponse, fields: Record<string, unknown>): void {
    const userId = Number(fields.user_id);
    const chargeId = fields.telegram_payment_charge_id;
    const problem = (): string | null => {
      if (!Number.isSafeInteger(userId)) return 'invalid user_id specified';
      if (typeof chargeId !== 'string' || chargeId === '') return 'CHARGE_ID_EMPTY';
      const charged = starTransactions.find(
        (transaction) => transaction.id === chargeId && transaction.source?.user.id === userId,
      );
      if (!charged) return 'CHARGE_NOT_FOUND';
      const refunded = starTransactions.some(
        (transaction) => transaction.id === chargeId && transaction.receiver,
      );
      return refunded ? 'CHARGE_ALREADY_REFUNDED' : null;
    };
    const refused = problem();
    if (refused) {
      send(res, 400, { ok: false, error_code: 400, description: `Bad Request: ${refused}` });
      return;
    }
    const paid = starTransactions.find(
      (transaction) => transaction.id === chargeId && transaction.source?.user.id === userId,
    );
    if (!paid) return;
    starTransactions.push({
      id: paid.id,
      amount: paid.amount,
      date: Math.floor(Date.now() / 1000),
      receiver: { type: 'user', user: paid.source?.user ?? telegramUser(userId) },
    });
    send(res, 200, { ok: true, result: true });
  }

  /**
   * createInvoiceLink (core.telegram.org/bots/api#createinvoicelink): title 1-32 characters,
   * description 1-255, payload 1-128 bytes, a currency, prices a list of LabeledPrice; for
   * Telegram Stars (XTR) exactly one price and an empty provider_token. Answers the link.
   */
  function createInvoiceLink(res: ServerResponse, fields: Record<string, unknown>): void {
    const text = (value: unknown) => (typeof value === 'string' ? value : '');
    let prices: unknown = fields.prices;
    if (typeof prices === 'string') {
      try {
        prices = JSON.parse(prices);
      } catch {
        prices = null;
      }
    }
    const title = text(fields.title);
    const description = text(fields.description);
    const payload = text(fields.payload);
    const currency = text(fields.currency);
    const problem = (): string | null => {
      if (title.length < 1 || title.length > 32) return 'INVOICE_TITLE_INVALID';
      if (description.length < 1 || description.length > 255) return 'INVOICE_DESCRIPTION_INVALID';
      const bytes = Buffer.byteLength(payload);
      if (bytes < 1 || bytes > 128) return 'INVOICE_PAYLOAD_INVALID';
      if (!/^[A-Z]{3}$/.test(currency)) return 'CURRENCY_INVALID';
      if (!Array.isArray(prices) || prices.length === 0) return 'PRICES_EMPTY';
      for (const price of prices as { label?: unknown; amount?: unknown }[]) {
        if (typeof price.label !== 'string' || price.label === '') return 'PRICE_LABEL_EMPTY';
        if (!Number.isSafeInteger(price.amount) || Number(price.amount) <= 0) {
          return 'PRICE_AMOUNT_INVALID';
        }
      }
      if (currency === 'XTR') {
        if (prices.length !== 1) return 'STARS_INVOICE_INVALID';
        if (fields.provider_token !== undefined && fields.provider_token !== '') {
          return 'PROVIDER_TOKEN_INVALID';
        }
      }
      return null;
    };
    const refused = problem();
    if (refused) {
      send(res, 400, { ok: false, error_code: 400, description: `Bad Request: ${refused}` });
      return;
    }
    const link = `https://t.me/$fakeinvoice${invoiceLinks.length + 1}`;
    invoiceLinks.push({
      link,
      title,
      description,
      payload,
      currency,
      prices: prices as { label: string; amount: number }[],
    });
    send(res, 200, { ok: true, result: link });
  }

  /** getFile: the File object, or the real API's refusals. */
  function getFile(res: ServerResponse, fileId: unknown): void {
    if (typeof fileId !== 'string' || fileId === '') {
      send(res, 400, {
        ok: false,
        error_code: 400,
        description: 'Bad Request: there is no file_id in the request',
      });
      return;
    }
    const file = filesById.get(fileId);
    if (!file) {
      send(res, 400, { ok: false, error_code: 400, description: 'Bad Request: invalid file_id' });
      return;
    }
    if (file.bytes.length > DOWNLOAD_LIMIT) {
      send(res, 400, { ok: false, error_code: 400, description: 'Bad Request: file is too big' });
      return;
    }
    send(res, 200, {
      ok: true,
      result: {
        file_id: file.fileId,
        file_unique_id: file.uniqueId,
        ...(file.omitSize ? {} : { file_size: file.bytes.length }),
        file_path: file.filePath,
      },
    });
  }

  /** `GET /file/bot<token>/<file_path>`: the bytes, typed after the path's extension. */
  function serveFile(
    req: IncomingMessage,
    res: ServerResponse,
    token: string,
    filePath: string,
  ): void {
    if (token !== options.token) {
      send(res, 401, { ok: false, error_code: 401, description: 'Unauthorized' });
      return;
    }
    if (failures.get('download')?.remaining) {
      downloads.push({ filePath, status: failures.get('download')?.failure.error_code ?? 0 });
      failPlanned(res, 'download');
      return;
    }
    const file = req.method === 'GET' || req.method === 'HEAD' ? filesByPath.get(filePath) : null;
    if (!file) {
      downloads.push({ filePath, status: 404 });
      send(res, 404, { ok: false, error_code: 404, description: 'Not Found' });
      return;
    }
    downloads.push({ filePath, status: 200 });
    if (res.destroyed || res.writableEnded) return;
    res.writeHead(200, {
      'content-type': contentTypeOf(filePath),
      'content-length': file.bytes.length,
    });
    res.end(req.method === 'HEAD' ? undefined : file.bytes);
  }

  /**
   * What the Bot API says when a message is edited or deleted: a message it deleted is not found;
   * an edit to the text and buttons it already has is "not modified". Messages it did not send
   * (fabricated by a test) are taken as they come.
   */
  function messageProblem(
    method: string,
    chatId: number,
    fields: Record<string, unknown>,
  ): string | null {
    if (method !== 'editMessageText' && method !== 'deleteMessage') return null;
    const key = `${chatId}:${Number(fields.message_id)}`;
    if (deleted.has(key)) {
      return method === 'deleteMessage'
        ? 'message to delete not found'
        : 'message to edit not found';
    }
    const known = messages.get(key);
    if (
      method === 'editMessageText' &&
      known &&
      known.text === fields.text &&
      known.markup === JSON.stringify(fields.reply_markup ?? null)
    ) {
      return 'message is not modified: specified new message content and reply markup of the specified message are exactly the same as a current content and reply markup of the message';
    }
    return null;
  }

  function answer(method: string, chatId: number, fields: Record<string, unknown>): unknown {
    const base = () => {
      const id = ++messageId;
      messages.set(`${chatId}:${id}`, {
        text: fields.text ?? fields.caption,
        markup: JSON.stringify(fields.reply_markup ?? null),
      });
      return {
        message_id: id,
        date: Math.floor(Date.now() / 1000),
        chat: { id: chatId, type: 'private' },
      };
    };
    const caption = typeof fields.caption === 'string' ? { caption: fields.caption } : {};
    switch (method) {
      case 'sendMessage':
        return { ...base(), text: fields.text };
      case 'editMessageText': {
        // The edited Message (the bot's own, in a chat): its new text, and when it was edited.
        const id = Number(fields.message_id);
        messages.set(`${chatId}:${id}`, {
          text: fields.text,
          markup: JSON.stringify(fields.reply_markup ?? null),
        });
        const now = Math.floor(Date.now() / 1000);
        return {
          message_id: id,
          date: now,
          edit_date: now,
          chat: { id: chatId, type: 'private' },
          text: fields.text,
        };
      }
      case 'deleteMessage':
        messages.delete(`${chatId}:${Number(fields.message_id)}`);
        deleted.add(`${chatId}:${Number(fields.message_id)}`);
        return true;
      case 'sendPhoto':
        return { ...base(), photo: photoSizes(messageId + 1), ...caption };
      case 'sendDocument':
        return { ...base(), document: documentOf(messageId + 1), ...caption };
      case 'sendMediaGroup': {
        const groupId = `group-${messageId + 1}`;
        return (fields.media as { type: string; caption?: string }[]).map((item) => {
          const message = base();
          return {
            ...message,
            media_group_id: groupId,
            ...(item.type === 'document'
              ? { document: documentOf(message.message_id) }
              : { photo: photoSizes(message.message_id) }),
            ...(item.caption === undefined ? {} : { caption: item.caption }),
          };
        });
      }
      case 'copyMessage':
        // MessageId (core.telegram.org/bots/api#copymessage): the id of the copy in chat_id.
        return { message_id: base().message_id };
      case 'getMe':
        return { id: 1, is_bot: true, first_name: 'Fake', username: 'fake_bot' };
      case 'sendInvoice':
        return {
          ...base(),
          invoice: {
            title: fields.title,
            description: fields.description,
            start_parameter: '',
            currency: fields.currency,
            total_amount: (fields.prices as { amount: number }[] | undefined)?.[0]?.amount ?? 0,
          },
        };
      default:
        return true;
    }
  }

  /**
   * getUpdates as the Bot API serves long polling: the queued updates from `offset` on (which
   * also confirms the earlier ones), or, when there are none, an answer once one arrives or the
   * `timeout` (seconds) runs out.
   */
  const updates: { update_id: number }[] = [];
  let updateWaiters: (() => void)[] = [];
  async function serveUpdates(res: ServerResponse, fields: Record<string, unknown>) {
    const offset = Number(fields.offset ?? 0);
    const timeoutMs = Math.min(Number(fields.timeout ?? 0), 50) * 1000;
    while (updates.length > 0 && (updates[0]?.update_id ?? 0) < offset) updates.shift();
    if (updates.length === 0 && timeoutMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        updateWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const limit = Math.min(Number(fields.limit ?? 100), 100);
    send(res, 200, { ok: true, result: updates.slice(0, limit) });
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const fake: FakeTelegram = {
    apiRoot: `http://127.0.0.1:${port}`,
    calls,
    downloads,
    starTransactions,
    invoiceLinks,
    starOrder: 'chronological',
    addStarPayment(payment) {
      starTransactions.push({
        id: payment.chargeId,
        amount: payment.amount,
        date: payment.date ?? Math.floor(Date.now() / 1000),
        source: {
          type: 'user',
          user: telegramUser(payment.userId),
          invoice_payload: payment.invoicePayload,
        },
      });
    },
    pushUpdate(update) {
      updates.push(update);
      const waiting = updateWaiters;
      updateWaiters = [];
      for (const wake of waiting) wake();
    },
    addFile(fileId, bytes, filePath, fileOptions = {}) {
      const data = Buffer.from(bytes);
      fileCount += 1;
      const kind = sniff(data);
      const path =
        filePath ??
        (kind === 'jpg' ? `photos/file_${fileCount}.jpg` : `documents/file_${fileCount}.${kind}`);
      const previous = filesById.get(fileId);
      if (previous) filesByPath.delete(previous.filePath);
      const file: StoredFile = {
        fileId,
        // Like the real one: the same for the same file, short, URL-safe base64.
        uniqueId: createHash('sha256').update(data).digest('base64url').slice(0, 16),
        bytes: data,
        filePath: path,
        omitSize: fileOptions.omitSize ?? false,
      };
      filesById.set(fileId, file);
      filesByPath.set(path, file);
      return path;
    },
    failNext(method, failure, times = 1) {
      failures.set(method, { failure, remaining: times });
    },
    delayMs(ms) {
      delay = ms;
    },
    slowNext(method, ms) {
      slowCalls.set(method, ms);
    },
    close() {
      for (const wake of updateWaiters) wake();
      updateWaiters = [];
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
  return fake;
}

function telegramUser(id: number): FakeTelegramUser {
  return { id, is_bot: false, first_name: `User ${id}` };
}

const METHODS = [
  'sendMessage',
  'sendPhoto',
  'sendDocument',
  'sendMediaGroup',
  'getMe',
  'getFile',
  'editMessageText',
  'deleteMessage',
  'refundStarPayment',
  'getStarTransactions',
  'createInvoiceLink',
  'answerPreCheckoutQuery',
  'copyMessage',
];

const CONTENT_TYPES: Record<string, string> = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  pdf: 'application/pdf',
};

function contentTypeOf(filePath: string): string {
  const extension = /\.([A-Za-z0-9]+)$/.exec(filePath)?.[1]?.toLowerCase() ?? '';
  return CONTENT_TYPES[extension] ?? 'application/octet-stream';
}

/** The extension the bytes' format calls for (`bin` when it is none of the images we know). */
function sniff(bytes: Buffer): string {
  if (bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) {
    return 'png';
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpg';
  if (bytes.subarray(0, 4).toString('latin1') === 'RIFF') {
    if (bytes.subarray(8, 12).toString('latin1') === 'WEBP') return 'webp';
  }
  if (bytes.subarray(0, 4).toString('latin1') === 'GIF8') return 'gif';
  return 'bin';
}

function canonical(name: string): string {
  return METHODS.find((m) => m.toLowerCase() === name.toLowerCase()) ?? name;
}

/** The checks the real API makes that a delivery could trip over. */
function validate(
  method: string,
  fields: Record<string, unknown>,
  files: FakeTelegramFile[],
): string | null {
  if (method.startsWith('send') && fields.chat_id === undefined) return 'chat_id is empty';
  const attached = new Set(files.map((f) => f.field));
  const reference = (value: unknown, field: string): string | null => {
    if (typeof value !== 'string' || value === '') {
      return attached.has(field) ? null : `there is no ${field} in the request`;
    }
    const attach = /^attach:\/\/(.+)$/.exec(value);
    if (attach && !attached.has(attach[1] ?? '')) return `file ${value} not found`;
    return null;
  };
  if (typeof fields.caption === 'string' && fields.caption.length > CAPTION_LIMIT) {
    return 'message caption is too long';
  }
  if (fields.parse_mode === 'HTML') {
    for (const text of [fields.text, fields.caption]) {
      const problem = typeof text === 'string' ? htmlProblem(text) : null;
      if (problem) return `can't parse entities: ${problem}`;
    }
  }
  switch (method) {
    case 'setChatMenuButton': {
      // MenuButtonCommands, MenuButtonDefault, or MenuButtonWebApp (text, web_app: an HTTPS URL).
      const button = fields.menu_button as
        | { type?: unknown; text?: unknown; web_app?: { url?: unknown } }
        | undefined;
      if (button === undefined) return null;
      if (button.type === 'commands' || button.type === 'default') return null;
      if (button.type !== 'web_app') return "can't parse menu button: unknown type";
      if (typeof button.text !== 'string' || button.text.length === 0) {
        return 'menu button text is empty';
      }
      const url = button.web_app?.url;
      if (typeof url !== 'string' || !url.startsWith('https://')) {
        return 'BUTTON_URL_INVALID: Web App URLs must be HTTPS';
      }
      return null;
    }
    case 'editMessageText': {
      if (fields.inline_message_id === undefined) {
        if (fields.chat_id === undefined) return 'chat_id is empty';
        if (fields.message_id === undefined) return 'message identifier is not specified';
      }
      const text = typeof fields.text === 'string' ? fields.text : '';
      if (text === '') return 'message text is empty';
      if (text.length > TEXT_LIMIT) return 'MESSAGE_TOO_LONG';
      return null;
    }
    case 'deleteMessage':
      if (fields.chat_id === undefined) return 'chat_id is empty';
      if (fields.message_id === undefined) return 'message identifier is not specified';
      return null;
    case 'sendMessage': {
      const text = typeof fields.text === 'string' ? fields.text : '';
      if (text === '') return 'message text is empty';
      if (text.length > TEXT_LIMIT) return 'message is too long';
      const problem = entitiesProblem(text, fields.entities);
      return problem ? `can't parse entities: ${problem}` : null;
    }
    case 'copyMessage':
      if (fields.chat_id === undefined) return 'chat_id is empty';
      if (fields.from_chat_id === undefined) return 'from_chat_id is empty';
      if (fields.message_id === undefined) return 'message identifier is not specified';
      return null;
    case 'sendPhoto':
      return reference(fields.photo, 'photo');
    case 'sendDocument':
      return reference(fields.document, 'document');
    case 'sendMediaGroup': {
      const media = fields.media;
      if (!Array.isArray(media) || media.length < 2 || media.length > 10) {
        return 'media must include 2-10 items';
      }
      const types = new Set(media.map((m: { type?: string }) => m.type));
      if (types.has('document') && types.size > 1) return "documents can't be mixed with photos";
      for (const item of media as { media?: unknown; caption?: unknown }[]) {
        const problem = reference(item.media, 'media');
        if (problem) return problem;
        if (typeof item.caption === 'string' && item.caption.length > CAPTION_LIMIT) {
          return 'message caption is too long';
        }
      }
      return null;
    }
    default:
      return null;
  }
}

/** MessageEntity types (core.telegram.org/bots/api#messageentity). */
const ENTITY_TYPES = new Set([
  'mention',
  'hashtag',
  'cashtag',
  'bot_command',
  'url',
  'email',
  'phone_number',
  'bold',
  'italic',
  'underline',
  'strikethrough',
  'spoiler',
  'blockquote',
  'expandable_blockquote',
  'code',
  'pre',
  'text_link',
  'text_mention',
  'custom_emoji',
]);
/** The entities that may contain and be part of others (except code and pre). */
const STYLE_ENTITIES = new Set(['bold', 'italic', 'underline', 'strikethrough', 'spoiler']);
const QUOTES = new Set(['blockquote', 'expandable_blockquote']);

/**
 * Why a message's `entities` break the Bot API's rules (its "Formatting options"), or null: each
 * inside the text (offsets and lengths in UTF-16 code units), of a known type, a text_link with its
 * url; entities sharing characters nest; nothing inside code or pre; no quote in a quote; other
 * entities (links, mentions…) contain none of each other.
 */
function entitiesProblem(text: string, entities: unknown): string | null {
  if (entities === undefined) return null;
  if (!Array.isArray(entities)) return 'entities must be an array';
  const list: { type: string; start: number; end: number }[] = [];
  for (const [index, raw] of entities.entries()) {
    const entity = raw as { type?: unknown; offset?: unknown; length?: unknown; url?: unknown };
    const { offset, length, type } = entity;
    if (typeof type !== 'string' || !ENTITY_TYPES.has(type)) return `entity ${index}: unknown type`;
    if (!Number.isInteger(offset) || !Number.isInteger(length)) {
      return `entity ${index}: offset and length must be integers`;
    }
    const start = offset as number;
    const end = start + (length as number);
    if (start < 0 || end <= start || end > text.length) {
      return `entity ${index} is outside the text`;
    }
    if (type === 'text_link' && (typeof entity.url !== 'string' || entity.url === '')) {
      return `entity ${index}: a text_link needs its url`;
    }
    list.push({ type, start, end });
  }
  for (const [i, a] of list.entries()) {
    for (const b of list.slice(i + 1)) {
      if (a.end <= b.start || b.end <= a.start) continue;
      const aHoldsB = a.start <= b.start && b.end <= a.end;
      const bHoldsA = b.start <= a.start && a.end <= b.end;
      if (!aHoldsB && !bHoldsA) return `entities ${a.type} and ${b.type} cross`;
      // Over the same characters, code or pre is the inner one.
      const aOuter = aHoldsB && !(bHoldsA && (a.type === 'code' || a.type === 'pre'));
      const [outer, inner] = aOuter ? [a, b] : [b, a];
      if (outer.type === 'code' || outer.type === 'pre') return `${outer.type} contains an entity`;
      if (QUOTES.has(outer.type) && QUOTES.has(inner.type)) return 'a quote in a quote';
      const plain = (type: string) => !STYLE_ENTITIES.has(type) && !QUOTES.has(type);
      if (plain(outer.type) && plain(inner.type)) {
        return `${outer.type} contains ${inner.type}`;
      }
    }
  }
  return null;
}

/** Tags the Bot API's HTML style allows (core.telegram.org/bots/api#html-style). */
const HTML_TAGS = new Set([
  'b',
  'strong',
  'i',
  'em',
  'u',
  'ins',
  's',
  'strike',
  'del',
  'span',
  'tg-spoiler',
  'a',
  'tg-emoji',
  'code',
  'pre',
  'blockquote',
]);

/**
 * Why Telegram would refuse a text sent with parse_mode HTML, or null: a tag it does not support,
 * one left open or closed out of order, or an `&` that starts no entity (a `<` or `&` of user
 * content must come escaped).
 */
function htmlProblem(text: string): string | null {
  const open: string[] = [];
  const token = /<(\/?)([a-zA-Z-]*)[^>]*>|<|&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);|&/g;
  for (const match of text.matchAll(token)) {
    const [whole, closing, name] = match;
    if (whole === '<') return `unexpected "<" at byte offset ${match.index}`;
    if (whole === '&') return `character "&" at byte offset ${match.index} must be escaped`;
    if (whole.startsWith('&')) continue;
    const tag = (name ?? '').toLowerCase();
    if (!HTML_TAGS.has(tag)) return `Unsupported start tag "${tag}" at byte offset ${match.index}`;
    if (closing) {
      if (open.pop() !== tag) return `Unexpected end tag at byte offset ${match.index}`;
    } else {
      open.push(tag);
    }
  }
  return open.length > 0 ? `Can't find end tag corresponding to start tag "${open.at(-1)}"` : null;
}

function photoSizes(seed: number) {
  return [90, 320, 800].map((side, i) => ({
    file_id: `photo-${seed}-${i}`,
    file_unique_id: `uphoto-${seed}-${i}`,
    width: side,
    height: side,
    file_size: side * 100,
  }));
}

function documentOf(seed: number) {
  return { file_id: `doc-${seed}`, file_unique_id: `udoc-${seed}`, file_name: 'image' };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.destroyed || res.writableEnded) return; // the client gave up (timeout test)
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Multipart values that hold JSON (media arrays, markup) are parsed; others stay strings. */
function decodeField(value: string): unknown {
  if (value.startsWith('[') || value.startsWith('{')) {
    try {
      return JSON.parse(value);
    } catch {
      return value;
    }
  }
  return value;
}

/**
 * A small multipart/form-data reader (RFC 7578). Lenient on purpose: grammY writes headers as
 * `content-disposition:form-data;name="x";filename=y.jpg` (no spaces, unquoted filename).
 */
export function parseMultipart(body: Buffer, boundary: string): Part[] {
  if (boundary === '') throw new Error('multipart body without a boundary');
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Part[] = [];
  let position = body.indexOf(delimiter);
  if (position < 0) throw new Error('multipart boundary not found');
  while (true) {
    position += delimiter.length;
    if (body.subarray(position, position + 2).toString() === '--') break; // closing delimiter
    if (body.subarray(position, position + 2).toString() === '\r\n') position += 2;
    const next = body.indexOf(delimiter, position);
    if (next < 0) throw new Error('multipart body not terminated');
    // The part ends with the CRLF that precedes the next delimiter.
    const part = body.subarray(position, next - 2);
    const headerEnd = part.indexOf('\r\n\r\n');
    if (headerEnd < 0) throw new Error('multipart part without headers');
    const headers = part.subarray(0, headerEnd).toString();
    const data = part.subarray(headerEnd + 4);
    const disposition = headers
      .split('\r\n')
      .find((line) => line.toLowerCase().startsWith('content-disposition'));
    if (!disposition) throw new Error('multipart part without content-disposition');
    const name = param(disposition, 'name');
    if (name === undefined) throw new Error('multipart part without a name');
    const filename = param(disposition, 'filename');
    parts.push(filename === undefined ? { name, data } : { name, filename, data });
    position = next;
  }
  return parts;
}

function param(header: string, key: string): string | undefined {
  const match = new RegExp(`;\\s*${key}=(?:"([^"]*)"|([^;\\r\\n]*))`, 'i').exec(header);
  if (!match) return undefined;
  return (match[1] ?? match[2] ?? '').trim();
}
