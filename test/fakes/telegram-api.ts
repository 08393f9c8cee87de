import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A fake Telegram Bot API on 127.0.0.1 for tests. It answers `/bot<token>/<method>` with the
 * documented envelope — `{ok:true,result}` or `{ok:false,error_code,description,parameters?}`,
 * the HTTP status being the error_code — reads JSON and multipart/form-data bodies (grammY's
 * uploads), and records every call made with the right token.
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
}

export interface FakeTelegramFailure {
  error_code: number;
  description: string;
  retry_after?: number;
}

export interface FakeTelegram {
  /** Pass as grammY's apiRoot (no trailing slash). */
  apiRoot: string;
  calls: FakeTelegramCall[];
  /** The next `times` calls of `method` answer with this error. */
  failNext(method: string, failure: FakeTelegramFailure, times?: number): void;
  /** Waits this long before answering every following request (0 to stop). */
  delayMs(ms: number): void;
  close(): Promise<void>;
}

interface Part {
  name: string;
  filename?: string;
  data: Buffer;
}

const CAPTION_LIMIT = 1024;
const TEXT_LIMIT = 4096;

export async function startFakeTelegram(options: { token: string }): Promise<FakeTelegram> {
  const calls: FakeTelegramCall[] = [];
  const failures = new Map<string, { failure: FakeTelegramFailure; remaining: number }>();
  let delay = 0;
  let messageId = 0;

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      send(res, 500, { ok: false, error_code: 500, description: `fake: ${String(err)}` });
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
    const match = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(new URL(req.url ?? '/', 'http://x').pathname);
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
    let fields: Record<string, unknown>;
    const files: FakeTelegramFile[] = [];
    let parts: Part[] = [];
    const type = req.headers['content-type'] ?? '';
    try {
      if (type.startsWith('multipart/form-data')) {
        const boundary = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(type);
        parts = parseMultipart(body, (boundary?.[1] ?? boundary?.[2] ?? '').trim());
        fields = {};
        for (const part of parts) {
          if (part.filename === undefined) fields[part.name] = decodeField(part.data.toString());
          else files.push({ field: part.name, filename: part.filename, size: part.data.length });
        }
      } else if (body.length > 0) {
        fields = JSON.parse(body.toString()) as Record<string, unknown>;
      } else {
        fields = {};
      }
    } catch (err) {
      send(res, 400, { ok: false, error_code: 400, description: `Bad Request: ${String(err)}` });
      return;
    }
    const chatId = fields.chat_id === undefined ? undefined : Number(fields.chat_id);
    calls.push({ method, chatId, fields, files });

    const planned = failures.get(method);
    if (planned && planned.remaining > 0) {
      planned.remaining -= 1;
      const { error_code, description, retry_after } = planned.failure;
      send(res, error_code, {
        ok: false,
        error_code,
        description,
        ...(retry_after === undefined ? {} : { parameters: { retry_after } }),
      });
      return;
    }

    const problem = validate(method, fields, files);
    if (problem) {
      send(res, 400, { ok: false, error_code: 400, description: `Bad Request: ${problem}` });
      return;
    }
    send(res, 200, { ok: true, result: answer(method, chatId ?? 0, fields) });
  }

  function answer(method: string, chatId: number, fields: Record<string, unknown>): unknown {
    const base = () => ({
      message_id: ++messageId,
      date: Math.floor(Date.now() / 1000),
      chat: { id: chatId, type: 'private' },
    });
    const caption = typeof fields.caption === 'string' ? { caption: fields.caption } : {};
    switch (method) {
      case 'sendMessage':
        return { ...base(), text: fields.text };
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
      case 'getMe':
        return { id: 1, is_bot: true, first_name: 'Fake', username: 'fake_bot' };
      default:
        return true;
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    apiRoot: `http://127.0.0.1:${port}`,
    calls,
    failNext(method, failure, times = 1) {
      failures.set(method, { failure, remaining: times });
    },
    delayMs(ms) {
      delay = ms;
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

const METHODS = ['sendMessage', 'sendPhoto', 'sendDocument', 'sendMediaGroup', 'getMe'];

function canonical(name: string): string {
  return METHODS.find((m) => m.toLowerCase() === name.toLowerCase()) ?? name;
}

/** The checks the real API makes that a delivery could trip over. */
function validate(
  method: string,
  fields: Record<string, unknown>,
  files: FakeTelegramFile[],
): string | null {
  if (fields.chat_id === undefined) return 'chat_id is empty';
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
  switch (method) {
    case 'sendMessage': {
      const text = typeof fields.text === 'string' ? fields.text : '';
      if (text === '') return 'message text is empty';
      if (text.length > TEXT_LIMIT) return 'message is too long';
      return null;
    }
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
