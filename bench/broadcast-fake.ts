// A lean fake Telegram Bot API for the broadcast part of bench/admin.ts: it answers sendMessage as
// https://core.telegram.org/bots/api documents it (`{ok:true,result:Message}`, or
// `{ok:false,error_code,description}` with that HTTP status), checks each call the way the real API
// would refuse it (wrong token, no chat, an empty or too long text, parse_mode: a broadcast is sent
// with entities only; any method but these two), and records when each call arrived and for which
// chat. No call log (100,000 calls), counts per chat instead. getStarTransactions (the worker's
// payment reconciliation) answers an empty page.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface BroadcastTelegram {
  /** Pass as TELEGRAM_API_ROOT (no trailing slash). */
  readonly apiRoot: string;
  /** sendMessage calls answered ok, by chat id. */
  readonly sentPerChat: Map<number, number>;
  /** performance.now() at the arrival of each sendMessage answered ok, in arrival order. */
  readonly arrivals: number[];
  /** Calls refused, with why (should stay empty). */
  readonly refused: string[];
  close(): Promise<void>;
}

const TEXT_LIMIT = 4096;

export async function startBroadcastTelegram(options: {
  token: string;
  /** What every broadcast message must say, exactly. */
  text: string;
}): Promise<BroadcastTelegram> {
  const prefix = `/bot${options.token}/`;
  const sentPerChat = new Map<number, number>();
  const arrivals: number[] = [];
  const refused: string[] = [];
  const bot = { id: 777_000_001, is_bot: true, first_name: 'Bench', username: 'bench_admin_bot' };

  const server = createServer((req, res) => {
    const arrivedAt = performance.now();
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => handle(req, res, Buffer.concat(chunks).toString(), arrivedAt));
  });
  server.keepAliveTimeout = 60_000;

  function refuse(res: ServerResponse, status: number, description: string): void {
    refused.push(description);
    send(res, status, { ok: false, error_code: status, description });
  }

  function handle(req: IncomingMessage, res: ServerResponse, body: string, arrivedAt: number) {
    const path = new URL(req.url ?? '/', 'http://fake').pathname;
    if (!path.startsWith(prefix)) return refuse(res, 401, 'Unauthorized');
    const method = path.slice(prefix.length).toLowerCase();
    if (method === 'getstartransactions') {
      // The worker's payment reconciliation pages through these: the bot has had none.
      send(res, 200, { ok: true, result: { transactions: [] } });
      return;
    }
    if (method !== 'sendmessage') return refuse(res, 404, `Not Found: method ${method}`);
    let fields: Record<string, unknown>;
    try {
      if (!(req.headers['content-type'] ?? '').startsWith('application/json')) {
        throw new Error(`content type ${req.headers['content-type']}`);
      }
      fields = JSON.parse(body) as Record<string, unknown>;
    } catch (error) {
      return refuse(res, 400, `Bad Request: ${String(error)}`);
    }
    const chatId = Number(fields.chat_id);
    if (!Number.isSafeInteger(chatId) || chatId <= 0) {
      return refuse(res, 400, 'Bad Request: chat not found');
    }
    if (typeof fields.text !== 'string' || fields.text.trim() === '') {
      return refuse(res, 400, 'Bad Request: message text is empty');
    }
    if (fields.text.length > TEXT_LIMIT)
      return refuse(res, 400, 'Bad Request: message is too long');
    if (fields.parse_mode !== undefined) {
      return refuse(res, 400, 'Bad Request: a broadcast must not be parsed (parse_mode set)');
    }
    if (fields.text !== options.text)
      return refuse(res, 400, 'Bad Request: not the broadcast text');
    const count = (sentPerChat.get(chatId) ?? 0) + 1;
    sentPerChat.set(chatId, count);
    arrivals.push(arrivedAt);
    send(res, 200, {
      ok: true,
      result: {
        message_id: count,
        from: bot,
        chat: { id: chatId, type: 'private', first_name: 'Bench' },
        date: Math.floor(Date.now() / 1000),
        text: fields.text,
        ...(fields.entities === undefined ? {} : { entities: fields.entities }),
      },
    });
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    apiRoot: `http://127.0.0.1:${port}`,
    sentPerChat,
    arrivals,
    refused,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
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
