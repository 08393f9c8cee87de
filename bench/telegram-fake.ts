// A lean fake Telegram Bot API for bench/bot.ts, in the benchmark's own process: it serves long
// polling (getUpdates) from updates the benchmark pushes, and answers the methods a bot under test
// calls in the shapes https://core.telegram.org/bots/api documents — `{ok:true,result}`, or
// `{ok:false,error_code,description}` with the HTTP status being the error_code — with the checks
// the real API makes that those calls could trip over (an unknown chat, an empty or too long text,
// HTML it would not parse, a message to edit that is not there or would not change, a callback
// query answered twice or never asked, callback data over 64 bytes). Every call with the right
// token is reported to `onCall` with the time its request arrived (performance.now()), so that the
// benchmark can time each update from its push to the bot's first call for it.
//
// Unlike test/fakes/telegram-api.ts it keeps no call log (a run makes hundreds of thousands of
// calls) and numbers messages per chat, as Telegram does in private chats, so that the benchmark
// can give a user's own messages ids in the same sequence as the bot's replies.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Message, Update, UserFromGetMe } from 'grammy/types';

export interface FakeCall {
  method: string;
  /** The chat the call is about: chat_id, or the chat of the callback query it answers. */
  chatId: number | undefined;
  fields: Record<string, unknown>;
  /** What the fake answered: the `result` of an ok answer, else null. */
  result: unknown;
  /** The error description when the fake refused the call. */
  error: string | null;
  /** performance.now() when the request arrived. */
  arrivedAt: number;
}

export interface BenchTelegram {
  /** Pass as grammY's apiRoot / TELEGRAM_API_ROOT (no trailing slash). */
  readonly apiRoot: string;
  readonly botInfo: UserFromGetMe;
  /** Called for every call with the right token except getUpdates, once it is answered. */
  onCall: (call: FakeCall) => void;
  /** The next message id in a private chat (the user's own messages take ids from it too). */
  nextMessageId(chatId: number): number;
  /** A message the bot sent, as Telegram keeps it (for the `message` of a callback query). */
  message(chatId: number, messageId: number): Message | undefined;
  /** Queues an update for getUpdates; a waiting long poll answers on the next turn of the loop. */
  pushUpdate(update: Update): void;
  /** Updates pushed and not yet confirmed by a later getUpdates offset. */
  pending(): number;
  /** Whether a getUpdates is waiting (the bot is up and long-polling). */
  polling(): boolean;
  /** TCP connections the bot has opened to the fake so far. */
  connections(): number;
  close(): Promise<void>;
}

const TEXT_LIMIT = 4096;
const CALLBACK_ANSWER_LIMIT = 200;
const CALLBACK_DATA_LIMIT = 64;

interface Chat {
  lastMessageId: number;
  /** The bot's messages by id: what an edit is compared with. */
  messages: Map<number, { message: Message; markup: string }>;
}

export async function startBenchTelegram(options: {
  token: string;
  botId: number;
}): Promise<BenchTelegram> {
  const botInfo: UserFromGetMe = {
    id: options.botId,
    is_bot: true,
    first_name: 'Bench',
    username: `bench_${options.botId}_bot`,
    can_join_groups: true,
    can_read_all_group_messages: false,
    supports_inline_queries: false,
    can_connect_to_business: false,
    has_main_web_app: false,
    has_topics_enabled: false,
    allows_users_to_create_topics: false,
    can_manage_bots: false,
    supports_join_request_queries: false,
  };
  const botUser = {
    id: botInfo.id,
    is_bot: true,
    first_name: botInfo.first_name,
    username: botInfo.username,
  };
  const chats = new Map<number, Chat>();
  /** Callback queries pushed and not answered yet: their id → the chat. */
  const openQueries = new Map<string, number>();
  const updates: Update[] = [];
  let poll: { res: ServerResponse; limit: number; timer: NodeJS.Timeout } | null = null;
  let wakeScheduled = false;
  const prefix = `/bot${options.token}/`;

  const chatOf = (id: number): Chat => {
    let chat = chats.get(id);
    if (!chat) {
      chat = { lastMessageId: 0, messages: new Map() };
      chats.set(id, chat);
    }
    return chat;
  };

  const fake: BenchTelegram = {
    apiRoot: '',
    botInfo,
    onCall: () => undefined,
    nextMessageId: (chatId) => ++chatOf(chatId).lastMessageId,
    message: (chatId, messageId) => chats.get(chatId)?.messages.get(messageId)?.message,
    pushUpdate(update) {
      updates.push(update);
      const query = update.callback_query;
      if (query) openQueries.set(query.id, query.from.id);
      // A burst pushed in one turn of the loop goes out in one answer, as Telegram batches them.
      if (poll && !wakeScheduled) {
        wakeScheduled = true;
        setImmediate(() => {
          wakeScheduled = false;
          answerPoll();
        });
      }
    },
    pending: () => updates.length,
    polling: () => poll !== null,
    connections: () => connectionCount,
    close: () =>
      new Promise<void>((resolve) => {
        if (poll) answerPoll();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };

  function answerPoll(): void {
    if (!poll) return;
    const { res, limit, timer } = poll;
    poll = null;
    clearTimeout(timer);
    send(res, 200, { ok: true, result: updates.slice(0, limit) });
  }

  const server = createServer((req, res) => {
    const arrivedAt = performance.now();
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      try {
        handle(req, res, Buffer.concat(chunks), arrivedAt);
      } catch (error) {
        send(res, 500, { ok: false, error_code: 500, description: `fake: ${String(error)}` });
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  let connectionCount = 0;
  server.on('connection', () => {
    connectionCount++;
  });

  function handle(req: IncomingMessage, res: ServerResponse, body: Buffer, arrivedAt: number) {
    const url = new URL(req.url ?? '/', 'http://fake');
    if (!url.pathname.startsWith('/bot')) {
      send(res, 404, { ok: false, error_code: 404, description: 'Not Found' });
      return;
    }
    if (!url.pathname.startsWith(prefix)) {
      send(res, 401, { ok: false, error_code: 401, description: 'Unauthorized' });
      return;
    }
    const method = url.pathname.slice(prefix.length).toLowerCase();
    let fields: Record<string, unknown> = Object.fromEntries(url.searchParams);
    const type = req.headers['content-type'] ?? '';
    if (body.length > 0) {
      try {
        if (type.startsWith('application/json')) {
          fields = { ...fields, ...(JSON.parse(body.toString()) as Record<string, unknown>) };
        } else if (type.startsWith('application/x-www-form-urlencoded')) {
          fields = { ...fields, ...Object.fromEntries(new URLSearchParams(body.toString())) };
        } else {
          throw new Error(`unsupported content type ${type}`);
        }
      } catch (error) {
        send(res, 400, { ok: false, error_code: 400, description: `Bad Request: ${error}` });
        return;
      }
    }
    if (method === 'getupdates') {
      getUpdates(res, fields);
      return;
    }
    let outcome: { result: unknown } | { status: number; description: string };
    let chatId = fields.chat_id === undefined ? undefined : Number(fields.chat_id);
    switch (method) {
      case 'getme':
        outcome = { result: botInfo };
        break;
      case 'setmycommands':
      case 'deletewebhook':
        outcome = { result: true };
        break;
      case 'sendmessage':
        outcome = sendMessage(fields);
        break;
      case 'editmessagetext':
        outcome = editMessageText(fields);
        break;
      case 'answercallbackquery': {
        const id = String(fields.callback_query_id ?? '');
        chatId = openQueries.get(id);
        outcome = answerCallbackQuery(id, fields);
        break;
      }
      default:
        outcome = { status: 404, description: 'Not Found: method not found' };
    }
    if ('result' in outcome) {
      send(res, 200, { ok: true, result: outcome.result });
    } else {
      send(res, outcome.status, {
        ok: false,
        error_code: outcome.status,
        description: outcome.description,
      });
    }
    fake.onCall({
      method: canonicalNames[method] ?? method,
      chatId,
      fields,
      result: 'result' in outcome ? outcome.result : null,
      error: 'result' in outcome ? null : outcome.description,
      arrivedAt,
    });
  }

  /** Long polling: what is queued from `offset` on (confirming what came before), or a wait. */
  function getUpdates(res: ServerResponse, fields: Record<string, unknown>): void {
    const offset = Number(fields.offset ?? 0);
    while (updates.length > 0 && (updates[0]?.update_id ?? 0) < offset) updates.shift();
    const limit = Math.max(1, Math.min(Number(fields.limit ?? 100), 100));
    const timeoutSeconds = Math.max(0, Number(fields.timeout ?? 0));
    if (poll) {
      // As Telegram: a second getUpdates ends the first with 409.
      const earlier = poll;
      poll = null;
      clearTimeout(earlier.timer);
      send(earlier.res, 409, {
        ok: false,
        error_code: 409,
        description: 'Conflict: terminated by other getUpdates request',
      });
    }
    if (updates.length > 0 || timeoutSeconds === 0) {
      send(res, 200, { ok: true, result: updates.slice(0, limit) });
      return;
    }
    const timer = setTimeout(answerPoll, Math.min(timeoutSeconds, 50) * 1000);
    poll = { res, limit, timer };
    res.on('close', () => {
      if (poll?.res === res) {
        clearTimeout(poll.timer);
        poll = null;
      }
    });
  }

  function sendMessage(fields: Record<string, unknown>) {
    const chatId = Number(fields.chat_id);
    if (fields.chat_id === undefined) return bad('chat_id is empty');
    const chat = chats.get(chatId);
    if (!chat) return bad('chat not found');
    const problem = textProblem(fields) ?? markupProblem(fields.reply_markup);
    if (problem) return bad(problem);
    const reply = fields.reply_parameters as
      | { message_id?: number; allow_sending_without_reply?: boolean }
      | undefined;
    if (
      reply?.message_id !== undefined &&
      !reply.allow_sending_without_reply &&
      reply.message_id > chat.lastMessageId
    ) {
      return bad('message to be replied not found');
    }
    const message_id = ++chat.lastMessageId;
    const message = {
      message_id,
      from: botUser,
      chat: { id: chatId, type: 'private' as const, first_name: 'Bench' },
      date: Math.floor(Date.now() / 1000),
      text: plainText(String(fields.text)),
      ...(fields.reply_markup ? { reply_markup: fields.reply_markup } : {}),
    } as Message;
    chat.messages.set(message_id, { message, markup: JSON.stringify(fields.reply_markup ?? null) });
    return { result: message };
  }

  function editMessageText(fields: Record<string, unknown>) {
    if (fields.inline_message_id !== undefined) return bad('inline messages are not served here');
    if (fields.chat_id === undefined) return bad('chat_id is empty');
    if (fields.message_id === undefined) return bad('message identifier is not specified');
    const chatId = Number(fields.chat_id);
    const known = chats.get(chatId)?.messages.get(Number(fields.message_id));
    if (!known) return bad('message to edit not found');
    const problem = textProblem(fields) ?? markupProblem(fields.reply_markup);
    if (problem) return bad(problem);
    const text = plainText(String(fields.text));
    const markup = JSON.stringify(fields.reply_markup ?? null);
    if (known.message.text === text && known.markup === markup) {
      return bad(
        'message is not modified: specified new message content and reply markup of the specified message are exactly the same as a current content and reply markup of the message',
      );
    }
    const now = Math.floor(Date.now() / 1000);
    const { reply_markup: _old, ...rest } = known.message;
    const message = {
      ...rest,
      text,
      edit_date: now,
      ...(fields.reply_markup ? { reply_markup: fields.reply_markup } : {}),
    } as Message;
    known.message = message;
    known.markup = markup;
    return { result: message };
  }

  function answerCallbackQuery(id: string, fields: Record<string, unknown>) {
    if (!openQueries.delete(id)) {
      return bad('query is too old and response timeout expired or query ID is invalid');
    }
    if (typeof fields.text === 'string' && fields.text.length > CALLBACK_ANSWER_LIMIT) {
      return bad('MESSAGE_TOO_LONG');
    }
    return { result: true };
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  (fake as { apiRoot: string }).apiRoot = `http://127.0.0.1:${port}`;
  return fake;
}

const canonicalNames: Record<string, string> = {
  getme: 'getMe',
  setmycommands: 'setMyCommands',
  deletewebhook: 'deleteWebhook',
  sendmessage: 'sendMessage',
  editmessagetext: 'editMessageText',
  answercallbackquery: 'answerCallbackQuery',
};

const bad = (problem: string) => ({ status: 400, description: `Bad Request: ${problem}` });

function textProblem(fields: Record<string, unknown>): string | null {
  if (typeof fields.text !== 'string' || fields.text.trim() === '') return 'message text is empty';
  if (fields.parse_mode === 'HTML') {
    const problem = htmlProblem(fields.text);
    if (problem) return `can't parse entities: ${problem}`;
  } else if (fields.parse_mode !== undefined) {
    return 'unsupported parse_mode in this fake';
  }
  if (plainText(fields.text).length > TEXT_LIMIT) return 'message is too long';
  return null;
}

/** Inline keyboards only: each button with a text and callback data of 1 to 64 bytes. */
function markupProblem(markup: unknown): string | null {
  if (markup === undefined) return null;
  const rows = (markup as { inline_keyboard?: unknown }).inline_keyboard;
  if (!Array.isArray(rows)) return "can't parse reply keyboard markup JSON object";
  for (const row of rows) {
    if (!Array.isArray(row)) return 'field "inline_keyboard" must be an Array of Arrays';
    for (const button of row as { text?: unknown; callback_data?: unknown }[]) {
      if (typeof button.text !== 'string' || button.text === '') return 'BUTTON_TEXT_EMPTY';
      const data = button.callback_data;
      if (typeof data !== 'string' || data === '') return 'BUTTON_DATA_INVALID';
      if (Buffer.byteLength(data) > CALLBACK_DATA_LIMIT) return 'BUTTON_DATA_INVALID';
    }
  }
  return null;
}

/** Tags the Bot API's HTML style allows (core.telegram.org/bots/api#html-style). */
const HTML_TAGS = new Set(
  'b strong i em u ins s strike del span tg-spoiler a tg-emoji code pre blockquote'.split(' '),
);
const HTML_TOKEN = /<(\/?)([a-zA-Z-]*)[^>]*>|<|&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);|&/g;

/** Why Telegram would refuse this HTML text, or null. */
function htmlProblem(text: string): string | null {
  const open: string[] = [];
  for (const match of text.matchAll(HTML_TOKEN)) {
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

/** The text as Telegram returns it: the markup turned into entities (dropped here), unescaped. */
function plainText(text: string): string {
  return text
    .replace(/<[^>]*>/g, '')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&');
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.destroyed || res.writableEnded) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
