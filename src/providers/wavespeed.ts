/**
 * WaveSpeedAI's v3 HTTP API, as documented:
 * - Bearer auth (`Authorization: Bearer <key>`; a missing or bad key answers 401):
 *   https://wavespeed.ai/docs/api-authentication
 * - Submit a task: `POST https://api.wavespeed.ai/api/v3/{model-path}` with the model's inputs
 *   as JSON (`prompt`, the model's own parameters and reference field — `images`, a list of URLs,
 *   for most edit models, one `image` for qwen-image/edit and the tools; the catalog's route says
 *   which — plus `enable_sync_mode`, `enable_base64_output`); get the result:
 *   `GET /api/v3/predictions/{id}/result`. Example model pages:
 *   https://wavespeed.ai/docs/docs-api/bytedance/bytedance-seedream-v4
 *   https://wavespeed.ai/docs/docs-api/google/google-gemini-2.5-flash-image-edit
 * - Tools (upscalers, Topaz filters, the watermark remover) take one `image` (a URL; Telegram
 *   files go as data URIs, as they do to edit models) and no prompt, with their own parameters: `wavespeed-ai/ultimate-image-upscaler`
 *   `target_resolution` 2k/4k/8k (default 4k); `topaz/image/denoise` `model` Normal/Strong/Extreme
 *   (default Normal); `topaz/image/restore` `model` Dust-Scratch/Dust-Scratch V2;
 *   `topaz/image/enhance` and `wavespeed-ai/image-watermark-remover` `image` alone (all also take
 *   `output_format`, jpeg by default, and the two enable_* flags):
 *   https://wavespeed.ai/docs-api/image-upscaler (the same inputs as the ultimate upscaler's)
 *   https://wavespeed.ai/models/topaz/image/denoise
 * - The envelope `{code, message, data: {id, model, outputs, urls: {get}, has_nsfw_contents,
 *   status: created|processing|completed|failed, created_at, error, timings: {inference}}}`:
 *   https://wavespeed.ai/docs/shared/submit-response
 *   https://doc.wavespeed.ai/shared/api-result
 * - The account's balance: `GET /api/v3/balance` → `{code, message, data: {balance}}`, a number,
 *   the account's USD: https://wavespeed.ai/docs/docs-common-api/balance
 * - Webhooks: the `webhook` query parameter of the submit URL; WaveSpeed POSTs the bare
 *   prediction object (`{id, model, input, outputs, urls, has_nsfw_contents, status, created_at,
 *   error}`, not wrapped in the envelope) for both `completed` and `failed` tasks:
 *   https://wavespeed.ai/docs/docs-api/webhooks
 *   https://wavespeed.ai/docs/how-to-use-webhooks
 * - Webhook signatures: headers `webhook-id`, `webhook-timestamp` (Unix seconds) and
 *   `webhook-signature: v3,<hex>`, the hex HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{raw
 *   body}`; the key is the secret (from `GET /api/v3/webhook/secret`, shaped `whsec_…`) with the
 *   `whsec_` prefix removed and the rest used as it is, NOT base64-decoded (unlike Standard
 *   Webhooks); calls older than 300 s are to be refused:
 *   https://wavespeed.ai/docs/docs-api/verifying_webhook
 *   https://wavespeed.ai/docs/verify-webhooks
 * - The official JS SDK (github.com/WaveSpeedAI/wavespeed-javascript, src/api/client.ts) reads
 *   `data.id`/`data.status`/`data.outputs` the same way, retries result GETs on 429/500/502/503/504
 *   and also treats the undocumented statuses `cancelled` and `timeout` as terminal failures.
 * Not documented, so not relied on: the error body of a 4xx/5xx (read as the same `{code,
 * message}` envelope when it is one) and a `Retry-After` header on 429 (honoured when present).
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
  type ProviderBalance,
  ProviderError,
  type ProviderRequest,
  type ProviderStatus,
  type ProviderWebhook,
  type ProviderWebhookEvent,
  type ReferenceImage,
  WebhookSignatureError,
} from './types.ts';

export interface WavespeedProviderOptions {
  apiKey: string;
  /** Default `wavespeed`; another name lets tests keep their jobs to their own workers. */
  name?: string;
  /** Default `https://api.wavespeed.ai`. */
  baseUrl?: string;
  /** The account's webhook secret (`whsec_…`); without it every webhook is refused. */
  webhookSecret?: string | null;
  /** Per HTTP request, default 30 s. */
  requestTimeoutMs?: number;
  fetch?: typeof fetch;
}

/** A webhook whose timestamp is further than this from our clock is refused (replays). */
const WEBHOOK_TOLERANCE_SECONDS = 5 * 60;
/** The version tag WaveSpeed puts before the signature: `v3,<hex>`. */
const SIGNATURE_VERSION = 'v3';

type PredictionStatus = 'created' | 'processing' | 'completed' | 'failed' | 'cancelled' | 'timeout';
const STATUSES: ReadonlySet<string> = new Set<PredictionStatus>([
  'created',
  'processing',
  'completed',
  'failed',
  'cancelled',
  'timeout',
]);

/** The fields of `data` this adapter reads. */
interface Prediction {
  id: string;
  status: PredictionStatus;
  model?: string | null;
  outputs?: unknown;
  error?: unknown;
  has_nsfw_contents?: unknown;
  timings?: unknown;
}

/** `owner/name[/variant…]`: what goes after `/api/v3/`, nothing that could leave that path. */
const MODEL_PATH = /^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$/;

/** Runs generations on WaveSpeedAI; a catalog model is the path after `/api/v3/`. */
export class WavespeedProvider implements ImageProvider {
  readonly name: string;
  get acceptsWebhooks(): boolean {
    return this.webhookSecret !== null;
  }
  private readonly webhookSecret: string | null;
  private readonly client: ProviderClient;

  constructor(options: WavespeedProviderOptions) {
    this.name = options.name ?? 'wavespeed';
    this.webhookSecret = options.webhookSecret ?? null;
    this.client = providerClient('wavespeed', options.apiKey, 'https://api.wavespeed.ai', options);
  }

  async submit(request: ProviderRequest, signal?: AbortSignal): Promise<{ providerJobId: string }> {
    const model = request.model.trim();
    if (!MODEL_PATH.test(model) || model.split('/').includes('..')) {
      throw new ProviderError(`wavespeed: model "${model}" is not a model path`, false);
    }
    const body = shapedInput('wavespeed', request);
    // Results are fetched by id and read as URLs: never inline base64, never hold the request.
    body.enable_base64_output = false;
    body.enable_sync_mode = false;
    const query = request.webhookUrl ? `?webhook=${encodeURIComponent(request.webhookUrl)}` : '';
    const prediction = await this.prediction(
      'POST',
      `/api/v3/${model}`,
      query,
      body,
      signal,
      false,
    );
    return { providerJobId: prediction.id };
  }

  async status(providerJobId: string, signal?: AbortSignal): Promise<ProviderStatus> {
    const path = `/api/v3/predictions/${encodeURIComponent(providerJobId)}/result`;
    const prediction = await this.prediction('GET', path, '', undefined, signal, true);
    return statusOf(prediction);
  }

  async balance(signal?: AbortSignal): Promise<ProviderBalance> {
    const data = await this.call('GET', '/api/v3/balance', '', undefined, signal);
    const balance =
      data && typeof data === 'object' ? (data as { balance?: unknown }).balance : null;
    if (typeof balance !== 'number' || !Number.isFinite(balance)) {
      throw new ProviderError(
        'wavespeed: GET /api/v3/balance answered without a number in data.balance',
        true,
      );
    }
    return { amount: balance, currency: 'USD' };
  }

  /**
   * `POST /api/v3/media/upload/binary`, multipart with one `file` (images up to 20 MB, kept 7
   * days): `data.download_url` is what the models take.
   */
  async uploadReference(image: ReferenceImage, signal?: AbortSignal): Promise<string> {
    const form = new FormData();
    form.append('file', new Blob([image.data], { type: image.mimeType }), referenceFilename(image));
    const path = '/api/v3/media/upload/binary';
    const data = await this.call('POST', path, '', form, signal);
    const url =
      data && typeof data === 'object' ? (data as { download_url?: unknown }).download_url : null;
    if (typeof url !== 'string' || !/^https?:\/\//.test(url)) {
      throw new ProviderError(`wavespeed: POST ${path} answered without data.download_url`, true);
    }
    return url;
  }

  readWebhook(webhook: ProviderWebhook): ProviderWebhookEvent {
    if (!this.webhookSecret) throw new WebhookSignatureError('no webhook secret configured');
    verifyWavespeedWebhook(this.webhookSecret, webhook);
    const parsed = webhookJson('wavespeed', webhook.rawBody);
    // The docs show the bare prediction object; an enveloped one is read too.
    const prediction = asPrediction(parsed, true) ?? asPrediction(dataOf(parsed), true);
    if (!prediction) throw new ProviderError('wavespeed: webhook body is not a prediction', false);
    return { providerJobId: prediction.id, status: statusOf(prediction) };
  }

  /** A call answering a prediction in `data`. */
  private async prediction(
    method: 'GET' | 'POST',
    path: string,
    query: string,
    body: unknown,
    signal: AbortSignal | undefined,
    needStatus: boolean,
  ): Promise<Prediction> {
    const prediction = asPrediction(await this.call(method, path, query, body, signal), needStatus);
    if (!prediction) {
      throw new ProviderError(
        `wavespeed: ${method} ${path} answered without the documented {code, message, data} envelope`,
        true,
      );
    }
    return prediction;
  }

  /**
   * One API call, answering the envelope's `data`; every failure becomes a ProviderError whose
   * message never holds the key.
   */
  private async call(
    method: 'GET' | 'POST',
    path: string,
    query: string,
    body: unknown,
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    const call = {
      ...this.client,
      // The query (our webhook URL) stays out of messages: it is ours, and long.
      what: `${method} ${path}`,
      url: `${this.client.baseUrl}${path}${query}`,
      method,
      body,
      signal,
    };
    const { status, headers, text, json } = await providerRequest(call);
    // The envelope repeats the HTTP status in `code`; an error code in a 2xx answer is an error.
    const envelopeCode = codeOf(json);
    const effective =
      status >= 200 && status < 300 && envelopeCode !== undefined && envelopeCode >= 400
        ? envelopeCode
        : status;
    if (effective < 200 || effective >= 300) {
      throw classifyHttpError(
        call,
        effective,
        errorDetail(json, text),
        retryAfterFromHeader(headers),
      );
    }
    return dataOf(json);
  }
}

function dataOf(json: unknown): unknown {
  if (!json || typeof json !== 'object' || Array.isArray(json)) return undefined;
  return (json as Record<string, unknown>).data;
}

function codeOf(json: unknown): number | undefined {
  if (!json || typeof json !== 'object' || Array.isArray(json)) return undefined;
  const code = (json as Record<string, unknown>).code;
  return typeof code === 'number' && Number.isInteger(code) ? code : undefined;
}

/** `data` with a string id and (when asked for) a known status. */
function asPrediction(value: unknown, needStatus: boolean): Prediction | null {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return null;
  const record = value as Record<string, unknown>;
  if (typeof record.id !== 'string' || record.id === '') return null;
  if (needStatus && (typeof record.status !== 'string' || !STATUSES.has(record.status))) {
    return null;
  }
  return record as unknown as Prediction;
}

function statusOf(prediction: Prediction): ProviderStatus {
  switch (prediction.status) {
    case 'created':
    case 'processing':
      return { state: 'pending' };
    case 'completed': {
      const urls = Array.isArray(prediction.outputs)
        ? prediction.outputs.filter(
            (item): item is string => typeof item === 'string' && item !== '',
          )
        : [];
      return finishedWithImages(
        urls,
        {
          has_nsfw_contents: prediction.has_nsfw_contents ?? null,
          timings: prediction.timings ?? null,
          model: prediction.model ?? null,
        },
        'wavespeed: the prediction completed without any image output',
      );
    }
    default: {
      const reason = errorText(prediction.error) ?? prediction.status;
      return { state: 'failed', error: truncate(reason), retryable: false };
    }
  }
}

/** The envelope's `message` (and `data.error`), or the start of a body that is not JSON. */
function errorDetail(json: unknown, text: string): string {
  if (json && typeof json === 'object') {
    const record = json as Record<string, unknown>;
    const data = dataOf(json) as Record<string, unknown> | undefined;
    const parts = [record.message, data?.error].filter(
      (part): part is string => typeof part === 'string' && part !== '',
    );
    if (parts.length > 0) return truncate(parts.join(': '));
  }
  return truncate(text.trim());
}

/** The HMAC key: the secret without `whsec_`, used as text (WaveSpeed: do not base64-decode). */
function webhookKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'utf8');
}

/** Throws WebhookSignatureError unless the call is signed with `secret` and recent. */
export function verifyWavespeedWebhook(
  secret: string,
  webhook: ProviderWebhook,
  nowSeconds: number = Math.floor(Date.now() / 1000),
): void {
  verifySignedWebhook(
    webhook,
    webhookKey(secret),
    WEBHOOK_TOLERANCE_SECONDS,
    nowSeconds,
    // The docs show one `v3,<hex>`; space-separated entries (key rotation) are read too.
    (signatures, expected) =>
      signatures
        .trim()
        .split(/\s+/)
        .filter((entry) => entry.startsWith(`${SIGNATURE_VERSION},`))
        .some((entry) => {
          const hex = entry.slice(SIGNATURE_VERSION.length + 1);
          if (!/^[0-9a-f]{64}$/i.test(hex)) return false;
          return timingSafeEqual(Buffer.from(hex, 'hex'), expected);
        }),
  );
}

/** Signs a webhook body the way WaveSpeed does: the three headers to send with it. */
export function signWavespeedWebhook(
  secret: string,
  body: string | Buffer,
  options: { id?: string; timestamp?: number } = {},
): { 'webhook-id': string; 'webhook-timestamp': string; 'webhook-signature': string } {
  const id = options.id ?? randomUUID().replaceAll('-', '');
  const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
  const signature = webhookHmac(webhookKey(secret), id, timestamp, body).toString('hex');
  return {
    'webhook-id': id,
    'webhook-timestamp': timestamp,
    'webhook-signature': `${SIGNATURE_VERSION},${signature}`,
  };
}
