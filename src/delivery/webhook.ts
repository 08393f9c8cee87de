import { createHmac, timingSafeEqual } from 'node:crypto';
import { DeliveryError } from './telegram.ts';

/**
 * Posts a generation's outcome to an outside receiver, signed like Standard Webhooks
 * (standardwebhooks.com): `webhook-id`, `webhook-timestamp` (unix seconds) and
 * `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
 * The id is the same on every retry of one event, so receivers can drop duplicates; the timestamp
 * is the attempt's, so a receiver can refuse stale (replayed) requests.
 */

export interface DeliveryWebhookResult {
  url: string;
  mime_type: string;
  width: number | null;
  height: number | null;
}

export type DeliveryWebhookRefund = { credits: number } | { trial: true } | null;

interface DeliveryWebhookBase {
  generation_id: string;
  telegram_id: number;
  model: string;
  /** When the generation finished (ISO 8601), not when this attempt is made. */
  occurred_at: string;
}

/** The JSON body, exactly as sent. */
export type DeliveryWebhookEvent =
  | (DeliveryWebhookBase & {
      type: 'generation.succeeded';
      status: 'succeeded';
      results: DeliveryWebhookResult[];
      error: null;
      refunded: null;
    })
  | (DeliveryWebhookBase & {
      type: 'generation.failed';
      status: 'failed';
      results: DeliveryWebhookResult[];
      error: string;
      refunded: DeliveryWebhookRefund;
    });

export type DeliveryWebhookType = DeliveryWebhookEvent['type'];

export interface WebhookDeliveryOptions {
  url: string;
  secret: string;
  /** Longest the receiver may take to answer. Default 15 000 (the spec suggests 15-30 s). */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/**
 * The webhook-id of an event: one per generation and type, stable across retries. Full stops are
 * replaced because the signed content uses them as separators.
 */
export function deliveryWebhookId(generationId: string, type: DeliveryWebhookType): string {
  return `${generationId}:${type}`.replaceAll('.', '_');
}

/**
 * The key: a `whsec_`-prefixed secret is base64 after the prefix (the spec's serialization, so
 * Standard Webhooks libraries verify it too); any other secret is used as its UTF-8 bytes.
 */
function keyOf(secret: string): Buffer {
  return secret.startsWith('whsec_')
    ? Buffer.from(secret.slice('whsec_'.length), 'base64')
    : Buffer.from(secret, 'utf8');
}

function mac(secret: string, id: string, timestamp: number | string, body: string | Uint8Array) {
  return createHmac('sha256', keyOf(secret))
    .update(`${id}.${timestamp}.`)
    .update(typeof body === 'string' ? Buffer.from(body, 'utf8') : body)
    .digest();
}

/** The `webhook-signature` header value: `v1,<base64>`. */
export function signDeliveryWebhook(
  secret: string,
  id: string,
  timestamp: number,
  body: string | Uint8Array,
): string {
  return `v1,${mac(secret, id, timestamp, body).toString('base64')}`;
}

type HeaderSource = Headers | Readonly<Record<string, string | string[] | undefined>>;

function header(headers: HeaderSource, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function') {
    return (headers as Headers).get(name) ?? undefined;
  }
  const record = headers as Readonly<Record<string, string | string[] | undefined>>;
  const key = Object.keys(record).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : record[key];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Checks a received webhook: the timestamp within `toleranceSeconds` of now and one of the
 * space-separated `v1,` signatures matching the exact body bytes (compared in constant time).
 */
export function verifyDeliveryWebhook(
  secret: string,
  headers: HeaderSource,
  body: string | Uint8Array,
  toleranceSeconds = 300,
  nowMs = Date.now(),
): boolean {
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures || !/^\d+$/.test(timestamp)) return false;
  if (Math.abs(nowMs / 1000 - Number(timestamp)) > toleranceSeconds) return false;
  const expected = mac(secret, id, timestamp, body);
  return signatures.split(' ').some((entry) => {
    if (!entry.startsWith('v1,')) return false;
    const given = Buffer.from(entry.slice(3), 'base64');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

export class WebhookDelivery {
  private readonly url: string;
  private readonly secret: string;
  private readonly timeoutMs: number;
  private readonly fetchFn: typeof fetch;

  constructor(options: WebhookDeliveryOptions) {
    this.url = options.url;
    this.secret = options.secret;
    this.timeoutMs = options.timeoutMs ?? 15_000;
    this.fetchFn = options.fetch ?? fetch;
  }

  /**
   * One attempt. 2xx: delivered. 429, 408, 5xx, a timeout or a network error: retryable
   * DeliveryError (with the receiver's Retry-After when given). 3xx and other 4xx: final.
   * Messages never include the URL, which may carry a credential.
   */
  async deliver(event: DeliveryWebhookEvent): Promise<void> {
    const body = JSON.stringify(event);
    const id = deliveryWebhookId(event.generation_id, event.type);
    const timestamp = Math.floor(Date.now() / 1000);
    let response: Response;
    try {
      response = await this.fetchFn(this.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'webhook-id': id,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signDeliveryWebhook(this.secret, id, timestamp, body),
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new DeliveryError(`webhook ${id} not delivered: ${describe(err, this.url)}`, {
        retryable: true,
      });
    }
    // The body is not needed; release the connection.
    await response.body?.cancel().catch(() => undefined);
    const status = response.status;
    if (status >= 200 && status < 300) return;
    const retryable = status === 408 || status === 429 || status >= 500;
    throw new DeliveryError(`webhook ${id} refused by the receiver (HTTP ${status})`, {
      retryable,
      retryAfterSeconds: retryable ? retryAfterHeader(response.headers) : undefined,
      status,
    });
  }
}

function describe(err: unknown, url: string): string {
  if (err instanceof Error && err.name === 'TimeoutError') {
    return 'the receiver did not answer in time';
  }
  let text = String(err);
  if (err instanceof Error) {
    text = err.cause instanceof Error ? `${err.message} (${err.cause.message})` : err.message;
  }
  // Some fetch errors quote the URL ("Failed to parse URL from …").
  return text.split(url).join('<webhook-url>');
}

/** Retry-After as seconds or an HTTP date (RFC 9110 §10.2.3). */
function retryAfterHeader(headers: Headers): number | undefined {
  const value = headers.get('retry-after')?.trim();
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Number(value);
  const date = Date.parse(value);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - Date.now()) / 1000));
}
