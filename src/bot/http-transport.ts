import http from 'node:http';
import https from 'node:https';

/**
 * The bot's transport to our API: node:http with keep-alive connections under openapi-fetch,
 * instead of the global fetch. The bot makes a call or two per update, and the global fetch (with
 * its WHATWG Request per call) cost more CPU than all the bot's own work: measured in bench:bot,
 * 1.2 ms of CPU per update fell to 0.7 ms with this transport (docs/benchmarks.md).
 */

const agents = {
  'http:': new http.Agent({ keepAlive: true, maxSockets: 64 }),
  'https:': new https.Agent({ keepAlive: true, maxSockets: 64 }),
};

/**
 * What openapi-fetch builds for each call (its `Request` option): the URL, method, headers and
 * body as given, without the WHATWG Request's validation and stream set-up.
 */
export class PlainRequest {
  readonly url: string;
  readonly method: string;
  readonly headers: Headers;
  readonly body: string | undefined;
  readonly signal: AbortSignal | undefined;

  constructor(input: string | URL, init: RequestInit = {}) {
    this.url = String(input);
    this.method = init.method ?? 'GET';
    this.headers = new Headers(init.headers);
    this.body = typeof init.body === 'string' ? init.body : undefined;
    this.signal = init.signal ?? undefined;
  }
}

/** Sends a PlainRequest (or any Request with a string body) over a kept-alive connection. */
export function keepAliveFetch(request: Request): Promise<Response> {
  const plain = request as unknown as PlainRequest;
  const url = new URL(plain.url);
  const transport = url.protocol === 'https:' ? https : http;
  const agent = url.protocol === 'https:' ? agents['https:'] : agents['http:'];
  const headers: Record<string, string> = {};
  plain.headers.forEach((value, name) => {
    headers[name] = value;
  });
  if (plain.body !== undefined) headers['content-length'] = String(Buffer.byteLength(plain.body));
  return new Promise((resolve, reject) => {
    const outgoing = transport.request(
      url,
      { method: plain.method, headers, agent, ...(plain.signal ? { signal: plain.signal } : {}) },
      (incoming) => {
        const chunks: Buffer[] = [];
        incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
        incoming.on('error', reject);
        incoming.on('end', () => {
          const responseHeaders = new Headers();
          for (const [name, value] of Object.entries(incoming.headers)) {
            if (typeof value === 'string') responseHeaders.set(name, value);
            else if (Array.isArray(value))
              for (const item of value) responseHeaders.append(name, item);
          }
          const status = incoming.statusCode ?? 502;
          const body = status === 204 || status === 304 ? null : Buffer.concat(chunks);
          resolve(new Response(body, { status, headers: responseHeaders }));
        });
      },
    );
    outgoing.on('error', reject);
    outgoing.end(plain.body);
  });
}
