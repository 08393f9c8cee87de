/**
 * What the HTTP provider adapters (replicate.ts, wavespeed.ts) do the same way. Each adapter keeps
 * what its provider documents on its own: the answer's envelope, where an error's text is, and
 * the webhook signature scheme (key encoding, version tag, digest encoding).
 */
import { createHmac } from 'node:crypto';
import {
  ProviderError,
  type ProviderImage,
  type ProviderStatus,
  type ProviderWebhook,
  type ReferenceImage,
  WebhookSignatureError,
} from './types.ts';

/** What stays the same over all of one adapter's calls. */
export interface ProviderClient {
  /** Starts every message, so that a failure names the provider: `replicate`, `wavespeed`. */
  provider: string;
  /** Without a trailing slash, so that an API path can follow it as it is. */
  baseUrl: string;
  /** Auth and the like; Accept and (with a body) Content-Type are added per call. */
  headers: Record<string, string>;
  fetchImpl: typeof fetch;
  timeoutMs: number;
  /** Applied to every message that may quote the server or the network stack. */
  redact: (message: string) => string;
}

/** The name a reference image is uploaded under: providers read its type from the extension. */
export function referenceFilename(image: ReferenceImage): string {
  const extension = image.mimeType.split('/')[1]?.replace('jpeg', 'jpg') ?? 'bin';
  return `reference.${extension}`;
}

/** Both providers take their key as a bearer token, and may echo it back in an error. */
export function providerClient(
  provider: string,
  token: string,
  defaultBaseUrl: string,
  options: { baseUrl?: string; requestTimeoutMs?: number; fetch?: typeof fetch },
): ProviderClient {
  return {
    provider,
    baseUrl: (options.baseUrl ?? defaultBaseUrl).replace(/\/+$/, ''),
    headers: { Authorization: `Bearer ${token}` },
    fetchImpl: options.fetch ?? fetch,
    timeoutMs: options.requestTimeoutMs ?? 30_000,
    redact: redactor(token),
  };
}

export interface ProviderCall extends Omit<ProviderClient, 'baseUrl'> {
  /** The call as messages name it (`POST /v1/predictions`): the URL may hold what they should not. */
  what: string;
  url: string;
  method: 'GET' | 'POST';
  /** Sent as JSON, or as multipart/form-data when a FormData; `undefined` sends no body. */
  body?: unknown;
  /** The caller's own abort (shutdown), told apart from our timeout. */
  signal?: AbortSignal | undefined;
}

export interface ProviderAnswer {
  status: number;
  headers: Headers;
  text: string;
  /** `text` parsed, or undefined when it is not JSON: error bodies often are not. */
  json: unknown;
}

/**
 * One JSON call with a timeout. Answers whatever status came back (the adapter reads its own
 * envelope); throws a retryable ProviderError when no answer came, or the caller's abort reason
 * when the caller gave up.
 */
export async function providerRequest(call: ProviderCall): Promise<ProviderAnswer> {
  const { provider, what, body, signal, timeoutMs } = call;
  const timeout = AbortSignal.timeout(timeoutMs);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let status: number;
  let headers: Headers;
  let text: string;
  try {
    const response = await call.fetchImpl(call.url, {
      method: call.method,
      headers: {
        ...call.headers,
        Accept: 'application/json',
        // fetch writes a FormData's own Content-Type (with its boundary).
        ...(body === undefined || body instanceof FormData
          ? {}
          : { 'Content-Type': 'application/json' }),
      },
      body: body === undefined ? undefined : body instanceof FormData ? body : JSON.stringify(body),
      signal: combined,
    });
    status = response.status;
    headers = response.headers;
    text = await response.text();
  } catch (error) {
    // The caller gave up (shutdown): theirs to handle, not a provider failure.
    if (signal?.aborted) throw signal.reason ?? error;
    if (timeout.aborted) {
      throw new ProviderError(
        `${provider}: ${what} timed out after ${timeoutMs} ms`,
        true,
        undefined,
        undefined,
        true,
      );
    }
    throw new ProviderError(
      call.redact(`${provider}: ${what} failed: ${describeNetworkError(error)}`),
      true,
      undefined,
      undefined,
      !neverSent(error),
    );
  }
  return { status, headers, text, json: parseJson(text) };
}

/**
 * The error for a non-2xx status. Throttling, request timeouts and server faults pass with time,
 * so they are retried (after the provider's Retry-After when it gave one); any other 4xx would
 * be refused again.
 */
export function classifyHttpError(
  call: Pick<ProviderCall, 'provider' | 'what' | 'redact'>,
  status: number,
  detail: string,
  retryAfterSeconds: number | undefined,
): ProviderError {
  const message = call.redact(
    `${call.provider}: ${call.what} answered ${status}${detail ? `: ${detail}` : ''}`,
  );
  if (status === 429 || status === 408 || status >= 500) {
    return new ProviderError(message, true, retryAfterSeconds);
  }
  return new ProviderError(message, false);
}

/** Servers may echo the credential back (in an error body, a URL): it never reaches a message. */
function redactor(secret: string): (message: string) => string {
  return (message) => (secret ? message.split(secret).join('[redacted]') : message);
}

/**
 * A finished job's images. One that finished without any is a final failure: asking again would
 * give none either.
 */
export function finishedWithImages(
  urls: string[],
  metadata: Record<string, unknown>,
  noImagesError: string,
): ProviderStatus {
  if (urls.length === 0) return { state: 'failed', error: noImagesError, retryable: false };
  return {
    state: 'succeeded',
    images: urls.map((url): ProviderImage => ({ url, mimeType: mimeTypeOf(url) })),
    metadata,
  };
}

/** A failed job's `error`, which providers give as text or as an object; undefined when absent. */
export function errorText(error: unknown): string | undefined {
  if (typeof error === 'string' && error !== '') return error;
  return error ? JSON.stringify(error) : undefined;
}

/** From the URL's extension; providers serve PNG unless they say otherwise. */
function mimeTypeOf(url: string): string {
  let pathname = url;
  try {
    pathname = new URL(url).pathname;
  } catch {
    // Not a URL: read the extension from the text as it is.
  }
  const extension = /\.([a-z0-9]+)$/i.exec(pathname)?.[1]?.toLowerCase();
  switch (extension) {
    case 'jpg':
    case 'jpeg':
      return 'image/jpeg';
    case 'webp':
      return 'image/webp';
    default:
      return 'image/png';
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Provider text goes into messages and job records: an HTML error page must not. */
export function truncate(text: string): string {
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/** `Retry-After` may be seconds or an HTTP date (RFC 9110); either becomes seconds from now. */
export function retryAfterFromHeader(headers: Headers): number | undefined {
  const header = headers.get('retry-after')?.trim();
  if (!header) return undefined;
  if (/^\d+(\.\d+)?$/.test(header)) return Math.ceil(Number(header));
  const date = Date.parse(header);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

/** Errors that happen before a request leaves: nothing can have reached the provider. */
const NOT_SENT_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
]);

function neverSent(error: unknown): boolean {
  const cause = error instanceof Error ? (error as Error & { cause?: unknown }).cause : undefined;
  const code = cause instanceof Error ? (cause as Error & { code?: string }).code : undefined;
  return code !== undefined && NOT_SENT_CODES.has(code);
}

/** fetch's own message is only `fetch failed`; the cause says what (ECONNREFUSED, …). */
function describeNetworkError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as Error & { cause?: unknown }).cause;
  const causeText =
    cause instanceof Error
      ? ((cause as Error & { code?: string }).code ?? cause.message)
      : undefined;
  return causeText ? `${error.message} (${causeText})` : error.message;
}

/** Header names may come in any case and a repeated header as a list; an empty one says nothing. */
function headerValue(
  headers: ProviderWebhook['headers'],
  name: string,
  join: string,
): string | undefined {
  let value = headers[name];
  if (value === undefined) {
    const key = Object.keys(headers).find((candidate) => candidate.toLowerCase() === name);
    if (key) value = headers[key];
  }
  if (Array.isArray(value)) return value.length > 0 ? value.join(join) : undefined;
  return value === '' ? undefined : value;
}

/** Both providers sign webhooks with these three headers; signature entries are space-separated. */
function webhookHeaders(headers: ProviderWebhook['headers']): {
  id: string;
  timestamp: string;
  signatures: string;
} {
  const id = headerValue(headers, 'webhook-id', ',');
  const timestamp = headerValue(headers, 'webhook-timestamp', ',');
  const signatures = headerValue(headers, 'webhook-signature', ' ');
  if (!id || !timestamp || !signatures) {
    throw new WebhookSignatureError('missing webhook-id, webhook-timestamp or webhook-signature');
  }
  return { id, timestamp, signatures };
}

/** A signed call replayed later is refused: its timestamp must be near our clock. */
function checkWebhookTimestamp(
  timestamp: string,
  toleranceSeconds: number,
  nowSeconds: number,
): void {
  // Twelve digits reach far past any real clock; more is not a timestamp.
  if (!/^\d{1,12}$/.test(timestamp)) throw new WebhookSignatureError('malformed webhook-timestamp');
  if (Math.abs(nowSeconds - Number(timestamp)) > toleranceSeconds) {
    throw new WebhookSignatureError('webhook timestamp is too old or in the future');
  }
}

/** HMAC-SHA256 of `${id}.${timestamp}.${body}`; the key's encoding is the provider's own. */
export function webhookHmac(
  key: Buffer,
  id: string,
  timestamp: string,
  body: Buffer | string,
): Buffer {
  return createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest();
}

/**
 * Both providers sign a webhook alike: three headers and an HMAC-SHA256 of
 * `${id}.${timestamp}.${body}`. How the key is read from the secret and how a signature entry is
 * written differ, so the adapter gives the key and says whether an entry carries `expected`.
 */
export function verifySignedWebhook(
  webhook: ProviderWebhook,
  key: Buffer,
  toleranceSeconds: number,
  nowSeconds: number,
  carries: (signatures: string, expected: Buffer) => boolean,
): void {
  const { id, timestamp, signatures } = webhookHeaders(webhook.headers);
  checkWebhookTimestamp(timestamp, toleranceSeconds, nowSeconds);
  const expected = webhookHmac(key, id, timestamp, webhook.rawBody);
  if (!carries(signatures, expected)) {
    throw new WebhookSignatureError('webhook signature does not match');
  }
}

/** A body that is not JSON is final: a redelivery of it would not be JSON either. */
export function webhookJson(provider: string, rawBody: Buffer): unknown {
  try {
    return JSON.parse(rawBody.toString('utf8'));
  } catch {
    throw new ProviderError(`${provider}: webhook body is not JSON`, false);
  }
}
