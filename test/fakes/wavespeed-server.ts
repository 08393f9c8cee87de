import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { encodePng } from '../../src/providers/png.ts';
import { signWavespeedWebhook } from '../../src/providers/wavespeed.ts';

/**
 * A fake WaveSpeedAI v3 API on 127.0.0.1 for tests (see src/providers/wavespeed.ts for the
 * documentation it follows). It answers:
 * - `POST /api/v3/<model path>[?webhook=<url>]`: creates a prediction; 400 when the body does not
 *   fit what the model's page documents (MODEL_SCHEMAS: each field's name, type and arity, the
 *   allowed values; stricter than the real API may be about fields a page does not list, to check
 *   the adapter's body field by field), or, for a test's own model, without a prompt;
 * - `GET /api/v3/predictions/<id>/result` and `GET /api/v3/predictions/<id>`: the prediction,
 *   `created` → `processing` → `completed`/`failed` after a number of polls or milliseconds;
 * - `GET /api/v3/webhook/secret`: the webhook secret;
 * - `GET /api/v3/balance`: the account's balance, `data.balance` (a number, USD), as
 *   https://wavespeed.ai/docs/docs-common-api/balance documents it;
 * - `GET /outputs/<id>.png` (no auth, like a CDN link): a small PNG.
 * Every API answer is the `{code, message, data}` envelope, errors too, with a bearer-key check
 * (401). When a prediction given a webhook URL ends, the bare prediction object is POSTed there,
 * signed the way WaveSpeed signs it.
 */

export interface FakeWavespeedSubmission {
  /** The model path after `/api/v3/`. */
  model: string;
  /** The `webhook` query parameter, decoded. */
  webhook: string | null;
  body: Record<string, unknown>;
}

export interface FakeWavespeedWebhookDelivery {
  url: string;
  predictionId: string;
  headers: Record<string, string>;
  body: string;
  /** The receiver's HTTP status, or null when the POST failed. */
  status: number | null;
  error?: string;
}

export interface FakeWavespeedBehaviour {
  /** Every API call (not output downloads) answers this error in the documented envelope. */
  error?: {
    status: number;
    message?: string;
    /** Sent as a `Retry-After` header. */
    retryAfterSeconds?: number;
    /** Put the caller's Authorization header in the message (a careless server). */
    echoAuthorization?: boolean;
  } | null;
  /** Wait this long before answering each API call. */
  delayMs?: number;
  /** Predictions created from now on end `failed` with this error text. */
  failWith?: string | null;
  /** Predictions created from now on end on the poll with this number (1-based). */
  completeAfterPolls?: number;
  /** Predictions created from now on end this long after creation (as well as on polls). */
  completeAfterMs?: number | null;
  /** How many times the completion webhook is sent (2 tests duplicates, 0 sends none). */
  webhookDeliveries?: number;
  /** What `GET /api/v3/balance` answers as `data.balance` (USD); default 100. */
  balance?: number;
}

export interface FakeWavespeedOptions extends FakeWavespeedBehaviour {
  apiKey?: string;
  webhookSecret?: string;
}

export interface FakeWavespeed {
  baseUrl: string;
  apiKey: string;
  webhookSecret: string;
  submissions: FakeWavespeedSubmission[];
  /** Every API call (`METHOD path`) in order, answered or not (an injected error included). */
  calls: string[];
  webhookDeliveries: FakeWavespeedWebhookDelivery[];
  /** How many times `GET /api/v3/balance` was asked (with the right key). */
  balanceChecks: number;
  /** Merges into the current behaviour; `null`/`undefined` fields fall back to the defaults. */
  setBehaviour(behaviour: FakeWavespeedBehaviour): void;
  /** Ends a prediction now (sending its webhook). */
  finish(id: string): Promise<void>;
  /** Resolves once `count` webhook deliveries have been attempted. */
  waitForWebhooks(count: number, timeoutMs?: number): Promise<FakeWavespeedWebhookDelivery[]>;
  close(): Promise<void>;
}

type Status = 'created' | 'processing' | 'completed' | 'failed';

interface Prediction {
  id: string;
  model: string;
  input: Record<string, unknown>;
  status: Status;
  createdAt: Date;
  polls: number;
  completeAfterPolls: number;
  failWith: string | null;
  webhook: string | null;
  webhookDeliveries: number;
  timer?: NodeJS.Timeout;
}

const DEFAULTS = {
  delayMs: 0,
  failWith: null,
  completeAfterPolls: 2,
  completeAfterMs: null,
  webhookDeliveries: 1,
  balance: 100,
} as const;

export async function startFakeWavespeed(
  options: FakeWavespeedOptions = {},
): Promise<FakeWavespeed> {
  const apiKey = options.apiKey ?? `ws-test-${randomBytes(12).toString('hex')}`;
  const webhookSecret = options.webhookSecret ?? `whsec_${randomBytes(24).toString('base64')}`;
  const submissions: FakeWavespeedSubmission[] = [];
  const calls: string[] = [];
  const deliveries: FakeWavespeedWebhookDelivery[] = [];
  const deliveryWaiters: Array<() => void> = [];
  const predictions = new Map<string, Prediction>();
  const pending = new Set<Promise<unknown>>();
  let behaviour: FakeWavespeedBehaviour = { ...options };
  let baseUrl = '';
  const png = smallPng();

  const setting = <K extends keyof typeof DEFAULTS>(key: K) =>
    (behaviour[key] ?? DEFAULTS[key]) as NonNullable<FakeWavespeedBehaviour[K]> | null;

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { code: 500, message: `fake: ${String(err)}` });
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const body = await readBody(req);

    const output = /^\/outputs\/([\w-]+)\.png$/.exec(url.pathname);
    if (output && req.method === 'GET') {
      if (!predictions.has(output[1]!)) return sendRaw(res, 404, 'text/plain', 'not found');
      return sendRaw(res, 200, 'image/png', png);
    }
    if (!url.pathname.startsWith('/api/v3/')) {
      return send(res, 404, { code: 404, message: 'not found' });
    }
    calls.push(`${req.method} ${url.pathname}`);

    const delayMs = setting('delayMs') ?? 0;
    if (delayMs > 0) await sleep(delayMs);
    if (res.destroyed) return;

    const error = behaviour.error;
    if (error) {
      const auth = req.headers.authorization ?? '';
      const message = `${error.message ?? `fake error ${error.status}`}${
        error.echoAuthorization ? ` (authorization: ${auth})` : ''
      }`;
      const headers: Record<string, string> = {};
      if (error.retryAfterSeconds !== undefined) {
        headers['Retry-After'] = String(error.retryAfterSeconds);
      }
      return send(res, error.status, { code: error.status, message }, headers);
    }

    if (req.headers.authorization !== `Bearer ${apiKey}`) {
      return send(res, 401, {
        code: 401,
        message: 'Unauthorized: invalid authentication, please check your API key',
      });
    }

    if (req.method === 'GET' && url.pathname === '/api/v3/balance') {
      fake.balanceChecks += 1;
      const balance = setting('balance') ?? DEFAULTS.balance;
      return send(res, 200, { code: 200, message: 'success', data: { balance } });
    }

    if (req.method === 'GET' && url.pathname === '/api/v3/webhook/secret') {
      return send(res, 200, { code: 200, message: 'success', data: { secret: webhookSecret } });
    }

    const result = /^\/api\/v3\/predictions\/([^/]+)(\/result)?$/.exec(url.pathname);
    if (result && req.method === 'GET') {
      const prediction = predictions.get(decodeURIComponent(result[1]!));
      if (!prediction) return send(res, 404, { code: 404, message: 'prediction not found' });
      prediction.polls += 1;
      if (prediction.status === 'created' || prediction.status === 'processing') {
        if (prediction.polls >= prediction.completeAfterPolls) end(prediction);
        else prediction.status = 'processing';
      }
      return send(res, 200, { code: 200, message: 'success', data: view(prediction) });
    }

    if (req.method === 'POST') {
      const model = url.pathname.slice('/api/v3/'.length);
      let input: unknown;
      try {
        input = JSON.parse(body.toString('utf8'));
      } catch {
        return send(res, 400, { code: 400, message: 'invalid JSON body' });
      }
      if (!input || typeof input !== 'object' || Array.isArray(input)) {
        return send(res, 400, { code: 400, message: 'the body must be a JSON object' });
      }
      const fields = input as Record<string, unknown>;
      const webhook = url.searchParams.get('webhook');
      submissions.push({ model, webhook, body: fields });
      const refusal = inputProblem(model, fields);
      if (refusal) return send(res, 400, { code: 400, message: refusal });
      const prediction: Prediction = {
        id: randomBytes(16).toString('hex'),
        model,
        input: fields,
        status: 'created',
        createdAt: new Date(),
        polls: 0,
        completeAfterPolls: setting('completeAfterPolls') ?? DEFAULTS.completeAfterPolls,
        failWith: setting('failWith'),
        webhook,
        webhookDeliveries: setting('webhookDeliveries') ?? DEFAULTS.webhookDeliveries,
      };
      predictions.set(prediction.id, prediction);
      const afterMs = setting('completeAfterMs');
      if (afterMs !== null) {
        prediction.timer = setTimeout(() => end(prediction), afterMs);
      }
      return send(res, 200, { code: 200, message: 'success', data: view(prediction) });
    }

    return send(res, 404, { code: 404, message: 'not found' });
  }

  function view(prediction: Prediction): Record<string, unknown> {
    const done = prediction.status === 'completed';
    return {
      id: prediction.id,
      model: prediction.model,
      outputs: done ? [`${baseUrl}/outputs/${prediction.id}.png`] : [],
      urls: { get: `${baseUrl}/api/v3/predictions/${prediction.id}/result` },
      has_nsfw_contents: done ? [false] : [],
      status: prediction.status,
      created_at: prediction.createdAt.toISOString(),
      error: prediction.status === 'failed' ? (prediction.failWith ?? 'failed') : '',
      timings: { inference: done ? 1234 : 0 },
    };
  }

  function end(prediction: Prediction): Promise<void> {
    if (prediction.status === 'completed' || prediction.status === 'failed') {
      return Promise.resolve();
    }
    clearTimeout(prediction.timer);
    prediction.status = prediction.failWith === null ? 'completed' : 'failed';
    if (!prediction.webhook || prediction.webhookDeliveries <= 0) return Promise.resolve();
    // The webhook body is the bare prediction object, with the input (per the docs).
    const { timings: _timings, ...rest } = view(prediction);
    const body = JSON.stringify({ ...rest, input: prediction.input });
    const headers = signWavespeedWebhook(webhookSecret, body);
    const sending = (async () => {
      for (let i = 0; i < prediction.webhookDeliveries; i++) {
        await deliver(prediction.webhook!, prediction.id, headers, body);
      }
    })();
    pending.add(sending);
    return sending.finally(() => pending.delete(sending));
  }

  async function deliver(
    url: string,
    predictionId: string,
    headers: Record<string, string>,
    body: string,
  ): Promise<void> {
    const delivery: FakeWavespeedWebhookDelivery = {
      url,
      predictionId,
      headers: { 'Content-Type': 'application/json', ...headers },
      body,
      status: null,
    };
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: delivery.headers,
        body,
        signal: AbortSignal.timeout(5_000),
      });
      await response.arrayBuffer();
      delivery.status = response.status;
    } catch (err) {
      delivery.error = String(err);
    }
    deliveries.push(delivery);
    for (const wake of deliveryWaiters.splice(0)) wake();
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const fake: FakeWavespeed = {
    baseUrl,
    apiKey,
    webhookSecret,
    submissions,
    calls,
    webhookDeliveries: deliveries,
    balanceChecks: 0,
    setBehaviour(next) {
      behaviour = { ...behaviour, ...next };
    },
    async finish(id) {
      const prediction = predictions.get(id);
      if (!prediction) throw new Error(`fake wavespeed: no prediction ${id}`);
      await end(prediction);
    },
    async waitForWebhooks(count, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      while (deliveries.length < count) {
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new Error(`fake wavespeed: ${deliveries.length} of ${count} webhooks sent`);
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          deliveryWaiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return deliveries.slice(0, count);
    },
    async close() {
      for (const prediction of predictions.values()) clearTimeout(prediction.timer);
      await Promise.allSettled([...pending]);
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
  return fake;
}

/**
 * The tools' inputs as their model pages document them: one `image` (required) and no prompt,
 * plus these parameters with these values (each optional, with a default).
 */
/** One input of a model, as its documentation page types it. */
type InputRule =
  | {
      type: 'string';
      values?: readonly string[];
      pattern?: RegExp;
      check?: (value: string) => boolean;
    }
  | { type: 'url' }
  | { type: 'urls'; max: number }
  | { type: 'integer'; min: number; max: number }
  | { type: 'boolean' };

interface ModelSchema {
  required: readonly string[];
  inputs: Readonly<Record<string, InputRule>>;
  /** Image models take a prompt; tools do not (a prompt sent to one is refused). */
}

const ASPECT_RATIOS = ['1:1', '3:2', '2:3', '3:4', '4:3', '4:5', '5:4', '9:16', '16:9', '21:9'];
/** `W*H` with each side within [min, max]. */
const sizeWithin = (min: number, max: number) => (value: string) => {
  const match = /^(\d+)\*(\d+)$/.exec(value);
  return (
    !!match && [match[1], match[2]].every((side) => Number(side) >= min && Number(side) <= max)
  );
};
const GPT_SIZES = ['1024*1024', '1024*1536', '1536*1024'];
const prompt: InputRule = { type: 'string' };
const outputFormat: InputRule = { type: 'string', values: ['jpeg', 'png', 'webp'] };

/**
 * The inputs each catalog model's page documents (src/providers/wavespeed.ts and the catalog
 * migrations name the pages): field names, types, arity and, where listed, the allowed values.
 * A body with another field, a wrong type, a string where a list is documented (or the reverse)
 * or too many images is refused, as a test must see it. Models not listed (a test's own) need a
 * prompt only.
 */
const MODEL_SCHEMAS: Readonly<Record<string, ModelSchema>> = {
  'bytedance/seedream-v4': {
    required: ['prompt'],
    inputs: { prompt, size: { type: 'string', check: sizeWithin(1024, 4096) } },
  },
  'bytedance/seedream-v4/edit': {
    required: ['prompt', 'images'],
    inputs: {
      prompt,
      images: { type: 'urls', max: 10 },
      size: { type: 'string', check: sizeWithin(1024, 4096) },
    },
  },
  'google/nano-banana/text-to-image': {
    required: ['prompt'],
    inputs: {
      prompt,
      aspect_ratio: { type: 'string', values: ASPECT_RATIOS },
      output_format: outputFormat,
    },
  },
  'google/nano-banana/edit': {
    required: ['prompt', 'images'],
    inputs: {
      prompt,
      images: { type: 'urls', max: 10 },
      aspect_ratio: { type: 'string', values: ASPECT_RATIOS },
      output_format: outputFormat,
    },
  },
  'google/nano-banana-pro/text-to-image': {
    required: ['prompt'],
    inputs: {
      prompt,
      aspect_ratio: { type: 'string', values: ASPECT_RATIOS },
      resolution: { type: 'string', values: ['1k', '2k', '4k'] },
      output_format: outputFormat,
    },
  },
  'google/nano-banana-pro/edit': {
    required: ['prompt', 'images'],
    inputs: {
      prompt,
      images: { type: 'urls', max: 14 },
      aspect_ratio: { type: 'string', values: ASPECT_RATIOS },
      resolution: { type: 'string', values: ['1k', '2k', '4k'] },
      output_format: outputFormat,
    },
  },
  'openai/gpt-image-1.5/text-to-image': {
    required: ['prompt'],
    inputs: {
      prompt,
      size: { type: 'string', values: GPT_SIZES },
      quality: { type: 'string', values: ['low', 'medium', 'high'] },
    },
  },
  'openai/gpt-image-1.5/edit': {
    required: ['prompt', 'images'],
    inputs: {
      prompt,
      images: { type: 'urls', max: 10 },
      size: { type: 'string', values: GPT_SIZES },
      quality: { type: 'string', values: ['low', 'medium', 'high'] },
    },
  },
  'wavespeed-ai/qwen-image/text-to-image': {
    required: ['prompt'],
    inputs: {
      prompt,
      size: { type: 'string', check: sizeWithin(256, 1536) },
      seed: { type: 'integer', min: -1, max: 2147483647 },
      output_format: outputFormat,
    },
  },
  // One `image`, a string: an `images` list is refused, as the real API refuses it.
  'wavespeed-ai/qwen-image/edit': {
    required: ['prompt', 'image'],
    inputs: {
      prompt,
      image: { type: 'url' },
      seed: { type: 'integer', min: -1, max: 2147483647 },
      output_format: outputFormat,
    },
  },
  'wavespeed-ai/ultimate-image-upscaler': {
    required: ['image'],
    inputs: {
      image: { type: 'url' },
      target_resolution: { type: 'string', values: ['2k', '4k', '8k'] },
      output_format: outputFormat,
    },
  },
  'wavespeed-ai/image-watermark-remover': {
    required: ['image'],
    inputs: { image: { type: 'url' }, output_format: outputFormat },
  },
  'topaz/image/denoise': {
    required: ['image'],
    inputs: {
      image: { type: 'url' },
      model: { type: 'string', values: ['Normal', 'Strong', 'Extreme'] },
      output_format: outputFormat,
    },
  },
  'topaz/image/restore': {
    required: ['image'],
    inputs: {
      image: { type: 'url' },
      model: { type: 'string', values: ['Dust-Scratch', 'Dust-Scratch V2'] },
      output_format: outputFormat,
    },
  },
  'topaz/image/enhance': {
    required: ['image'],
    inputs: { image: { type: 'url' }, output_format: outputFormat },
  },
};
/** Every model's page lists these two (booleans). */
const COMMON_INPUTS: Readonly<Record<string, InputRule>> = {
  enable_base64_output: { type: 'boolean' },
  enable_sync_mode: { type: 'boolean' },
};

/** What the API would refuse in a submission's body, or null. */
export function inputProblem(model: string, fields: Record<string, unknown>): string | null {
  const schema = MODEL_SCHEMAS[model];
  if (!schema) {
    if (typeof fields.prompt !== 'string' || fields.prompt.trim() === '') {
      return 'prompt is required';
    }
    return null;
  }
  for (const name of schema.required) {
    if (fields[name] === undefined) return `${name} is required`;
  }
  for (const [name, value] of Object.entries(fields)) {
    const rule = schema.inputs[name] ?? COMMON_INPUTS[name];
    if (!rule) return `${name} is not an input of ${model}`;
    const problem = valueProblem(rule, value);
    if (problem) return `${name} ${problem}`;
  }
  return null;
}

function valueProblem(rule: InputRule, value: unknown): string | null {
  switch (rule.type) {
    case 'string':
      if (typeof value !== 'string' || value.trim() === '') return 'must be a non-empty string';
      if (rule.values && !rule.values.includes(value))
        return `must be one of ${rule.values.join(', ')}`;
      if (rule.check && !rule.check(value)) return `"${value}" is out of its documented range`;
      return null;
    case 'url':
      return isImageUrl(value) ? null : 'must be one image URL (a string)';
    case 'urls':
      if (!Array.isArray(value) || value.length === 0 || !value.every(isImageUrl)) {
        return 'must be a list of image URLs';
      }
      return value.length > rule.max ? `takes at most ${rule.max} images` : null;
    case 'integer':
      return typeof value === 'number' &&
        Number.isInteger(value) &&
        value >= rule.min &&
        value <= rule.max
        ? null
        : `must be an integer from ${rule.min} to ${rule.max}`;
    case 'boolean':
      return typeof value === 'boolean' ? null : 'must be a boolean';
  }
}

function isImageUrl(value: unknown): boolean {
  return typeof value === 'string' && /^(https?:\/\/|data:image\/)/.test(value);
}

function smallPng(): Buffer {
  const width = 4;
  const height = 4;
  const pixels = new Uint8Array(width * height * 3);
  for (let i = 0; i < pixels.length; i += 3) {
    pixels[i] = 0x20;
    pixels[i + 1] = 0x80;
    pixels[i + 2] = 0xe0;
  }
  return encodePng(width, height, pixels);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  sendRaw(res, status, 'application/json', JSON.stringify(body), headers);
}

function sendRaw(
  res: ServerResponse,
  status: number,
  contentType: string,
  body: string | Buffer,
  headers: Record<string, string> = {},
): void {
  if (res.destroyed) return;
  res.writeHead(status, { 'Content-Type': contentType, ...headers });
  res.end(body);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
