/**
 * Replicate's predictions HTTP API, as documented:
 * - Create a prediction (versioned, `POST /v1/predictions` with `version`), get a prediction
 *   (`GET /v1/predictions/{id}`), official models (`POST /v1/models/{owner}/{name}/predictions`),
 *   bearer auth, `webhook` + `webhook_events_filter`: https://replicate.com/docs/reference/http
 * - The prediction object (id, model, version, status, output, error, metrics, urls):
 *   https://replicate.com/docs/topics/predictions
 * - Statuses starting | processing | succeeded | failed | canceled | aborted:
 *   https://replicate.com/docs/topics/predictions/lifecycle
 * - Webhook events (`completed` = terminal state; the body is a prediction object, and deliveries
 *   may be retried, so they must be safe to receive twice):
 *   https://replicate.com/docs/topics/webhooks/receive-webhook
 *   https://replicate.com/changelog/2023-02-10-improved-webhook-events-and-event-filtering
 * - Webhook signatures (webhook-id / webhook-timestamp / webhook-signature; signed content
 *   `${id}.${timestamp}.${body}`; HMAC-SHA256 keyed with the base64 part after `whsec_`;
 *   space-separated `v1,<base64>` entries; timestamps to guard against replays):
 *   https://replicate.com/docs/topics/webhooks/verify-webhook
 * - 429 answers with a JSON body like `{"detail":"Request was throttled. ..."}`:
 *   https://replicate.com/docs/topics/predictions/rate-limits
 * A `retry_after` body field and a `Retry-After` header are both honoured when present; the docs
 * above only show `detail`, so neither is relied on.
 */
import { randomUUID, timingSafeEqual } from 'node:crypto';
import {
  classifyHttpError,
  errorText,
  finishedWithImages,
  type ProviderClient,
  providerClient,
  providerRequest,
  referenceFilename,
  retryAfterFromHeader,
  truncate,
  verifySignedWebhook,
  webhookHmac,
  webhookJson,
} from './http-support.ts';
import { shapedInput } from './request-shape.ts';
import {
  type ImageProvider,
  ProviderError,
  type ProviderRequest,
  type ProviderStatus,
  type ProviderWebhook,
  type ProviderWebhookEvent,
  type ReferenceImage,
  WebhookSignatureError,
} from './types.ts';

export interface ReplicateProviderOptions {
  apiToken: string;
  /** Default `https://api.replicate.com`. */
  baseUrl?: string;
  /** The account's webhook signing secret (`whsec_…`); without it webhooks are refused. */
  webhookSecret?: string | null;
  /** Per HTTP request, default 30 s. */
  requestTimeoutMs?: number;
  fetch?: typeof fetch;
  /** Default `replicate`. */
  name?: string;
}

/** A webhook whose timestamp is further than this from our clock is refused (replays). */
const WEBHOOK_TOLERANCE_SECONDS = 5 * 60;

type PredictionStatus = 'starting' | 'processing' | 'succeeded' | 'failed' | 'canceled' | 'aborted';
const STATUSES: ReadonlySet<string> = new Set<PredictionStatus>([
  'starting',
  'processing',
  'succeeded',
  'failed',
  'canceled',
  'aborted',
]);

/** The fields of a prediction object this adapter reads. */
interface Prediction {
  id: string;
  status: PredictionStatus;
  model?: string | null;
  version?: string | null;
  output?: unknown;
  error?: unknown;
  metrics?: Record<string, unknown> | null;
}

/**
 * Runs generations on Replicate. A catalog model is `owner/name` (an official model, run through
 * the models endpoint) or `owner/name:version` (a pinned version, run through `/v1/predictions`).
 */
export class ReplicateProvider implements ImageProvider {
  readonly name: string;
  get acceptsWebhooks(): boolean {
    return this.webhookSecret !== null;
  }
  private readonly webhookSecret: string | null;
  private readonly client: ProviderClient;

  constructor(options: ReplicateProviderOptions) {
    this.name = options.name ?? 'replicate';
    this.webhookSecret = options.webhookSecret ?? null;
    this.client = providerClient(
      'replicate',
      options.apiToken,
      'https://api.replicate.com',
      options,
    );
  }

  async submit(request: ProviderRequest, signal?: AbortSignal): Promise<{ providerJobId: string }> {
    const ref = parseModelRef(request.model);
    // Each model names its own inputs (google/nano-banana: `image_input`, a list): the route says.
    const input = shapedInput('replicate', request);
    const body: Record<string, unknown> = { input };
    let path: string;
    if (ref.version) {
      path = '/v1/predictions';
      body.version = ref.version;
    } else {
      path = `/v1/models/${encodeURIComponent(ref.owner)}/${encodeURIComponent(ref.name)}/predictions`;
    }
    if (request.webhookUrl) {
      body.webhook = request.webhookUrl;
      body.webhook_events_filter = ['completed'];
    }
    const prediction = await this.call('POST', path, body, signal);
    return { providerJobId: prediction.id };
  }

  async status(providerJobId: string, signal?: AbortSignal): Promise<ProviderStatus> {
    const prediction = await this.call(
      'GET',
      `/v1/predictions/${encodeURIComponent(providerJobId)}`,
      undefined,
      signal,
    );
    return statusOf(prediction);
  }

  readWebhook(webhook: ProviderWebhook): ProviderWebhookEvent {
    if (!this.webhookSecret) throw new WebhookSignatureError('no webhook secret configured');
    verifyReplicateWebhook(this.webhookSecret, webhook);
    const prediction = asPrediction(webhookJson('replicate', webhook.rawBody));
    if (!prediction) throw new ProviderError('replicate: webhook body is not a prediction', false);
    return { providerJobId: prediction.id, status: statusOf(prediction) };
  }

  /** One API call; every failure becomes a ProviderError whose message never holds the token. */
  /**
   * `POST /v1/files`, multipart with the image as `content` (its type and filename on the part):
   * `urls.get` is the URL a model input takes (Replicate keeps the file about a day).
   */
  async uploadReference(image: ReferenceImage, signal?: AbortSignal): Promise<string> {
    const form = new FormData();
    form.append(
      'content',
      new Blob([image.data], { type: image.mimeType }),
      referenceFilename(image),
    );
    const call = {
      ...this.client,
      what: 'POST /v1/files',
      url: `${this.client.baseUrl}/v1/files`,
      method: 'POST' as const,
      body: form,
      signal,
    };
    const { status, headers, text, json } = await providerRequest(call);
    if (status < 200 || status >= 300) {
      throw classifyHttpError(call, status, errorDetail(json, text), retryAfterOf(json, headers));
    }
    const urls = json && typeof json === 'object' ? (json as { urls?: unknown }).urls : null;
    const url = urls && typeof urls === 'object' ? (urls as { get?: unknown }).get : null;
    if (typeof url !== 'string' || !/^https?:\/\//.test(url)) {
      throw new ProviderError(`replicate: ${call.what} answered ${status} without urls.get`, true);
    }
    return url;
  }

  private async call(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    signal?: AbortSignal,
  ): Promise<Prediction> {
    const call = {
      ...this.client,
      what: `${method} ${path}`,
      url: `${this.client.baseUrl}${path}`,
      method,
      body,
      signal,
    };
    const { status, headers, text, json } = await providerRequest(call);
    if (status < 200 || status >= 300) {
      throw classifyHttpError(call, status, errorDetail(json, text), retryAfterOf(json, headers));
    }
    const prediction = asPrediction(json);
    if (!prediction) {
      throw new ProviderError(
        `replicate: ${call.what} answered ${status} without a prediction`,
        true,
      );
    }
    return prediction;
  }
}

/** `owner/name` or `owner/name:version`. */
function parseModelRef(model: string): { owner: string; name: string; version?: string } {
  const match = /^([\w.-]+)\/([\w.-]+)(?::([\w.-]+))?$/.exec(model.trim());
  if (!match) {
    throw new ProviderError(
      `replicate: model "${model}" is not "owner/name" or "owner/name:version"`,
      false,
    );
  }
  const [, owner, name, version] = match as unknown as [string, string, string, string?];
  return version ? { owner, name, version } : { owner, name };
}

function asPrediction(value: unknown): Prediction | null {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return null;
  const record = value as Record<string, unknown>;
  if (typeof record.id !== 'string' || record.id === '') return null;
  if (typeof record.status !== 'string' || !STATUSES.has(record.status)) return null;
  return record as unknown as Prediction;
}

function statusOf(prediction: Prediction): ProviderStatus {
  switch (prediction.status) {
    case 'starting':
    case 'processing':
      return { state: 'pending' };
    case 'succeeded':
      return finishedWithImages(
        outputUrls(prediction.output),
        {
          metrics: prediction.metrics ?? null,
          model: prediction.model ?? null,
          version: prediction.version ?? null,
        },
        'replicate: the prediction succeeded without any image output',
      );
    default: {
      const reason = errorText(prediction.error) ?? `the prediction was ${prediction.status}`;
      return { state: 'failed', error: `replicate: ${reason}`, retryable: false };
    }
  }
}

/** Image models answer one URL or a list of them. */
function outputUrls(output: unknown): string[] {
  const items = Array.isArray(output) ? output : [output];
  return items.filter((item): item is string => typeof item === 'string' && item !== '');
}

/** `detail` (and `title`) of an error body, or the start of a body that is not JSON. */
function errorDetail(json: unknown, text: string): string {
  if (json && typeof json === 'object') {
    const record = json as Record<string, unknown>;
    const parts = [record.title, record.detail].filter(
      (part): part is string => typeof part === 'string' && part !== '',
    );
    if (parts.length > 0) return truncate(parts.join(': '));
  }
  return truncate(text.trim());
}

/** `retry_after` from the body, else the `Retry-After` header. */
function retryAfterOf(json: unknown, headers: Headers): number | undefined {
  if (json && typeof json === 'object') {
    const value = (json as Record<string, unknown>).retry_after;
    const seconds = typeof value === 'string' ? Number(value) : value;
    if (typeof seconds === 'number' && Number.isFinite(seconds) && seconds >= 0) {
      return Math.ceil(seconds);
    }
  }
  return retryAfterFromHeader(headers);
}

/** The HMAC key: the base64 part of `whsec_<base64>`. */
function webhookKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
}

/** Throws WebhookSignatureError unless the call is signed with `secret` and recent. */
export function verifyReplicateWebhook(
  secret: string,
  webhook: ProviderWebhook,
  nowSeconds: number = Math.floor(Date.now() / 1000),
): void {
  verifySignedWebhook(
    webhook,
    webhookKey(secret),
    WEBHOOK_TOLERANCE_SECONDS,
    nowSeconds,
    (signatures, expected) =>
      signatures
        .split(' ')
        .filter((entry) => entry.startsWith('v1,'))
        .some((entry) => {
          const given = Buffer.from(entry.slice(3), 'base64');
          return given.length === expected.length && timingSafeEqual(given, expected);
        }),
  );
}

/** Signs a webhook body the way Replicate does: the three headers to send with it. */
export function signReplicateWebhook(
  secret: string,
  body: string,
  options: { id?: string; timestamp?: number } = {},
): { 'webhook-id': string; 'webhook-timestamp': string; 'webhook-signature': string } {
  const id = options.id ?? `msg_${randomUUID()}`;
  const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
  const signature = webhookHmac(webhookKey(secret), id, timestamp, body).toString('base64');
  return {
    'webhook-id': id,
    'webhook-timestamp': timestamp,
    'webhook-signature': `v1,${signature}`,
  };
}
