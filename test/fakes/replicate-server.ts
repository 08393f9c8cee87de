import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { encodePng } from '../../src/providers/png.ts';
import { signReplicateWebhook } from '../../src/providers/replicate.ts';

/**
 * A stand-in for api.replicate.com, close enough to its documented behaviour for the adapter's
 * tests: bearer auth, official-model and versioned prediction creation, polling, problem-details
 * error bodies, 429 throttling and signed `completed` webhooks.
 */
export interface FakeReplicateBehaviour {
  /** Status polls answered `processing` before a prediction completes. Default 1. */
  pendingPolls: number;
  /** Answer 429 to the next N API calls. */
  rateLimitNext: number;
  /** The `retry_after` (and Retry-After header) of those 429s, in seconds. Default 3. */
  retryAfterSeconds: number;
  /** Answer `serverErrorStatus` to the next N API calls. */
  serverErrorNext: number;
  serverErrorStatus: 500 | 502 | 503;
  /** Delay every API answer by this many ms. */
  delayMs: number;
  /** Completed predictions end `failed` with this error instead of succeeding. */
  failWith: string | null;
  /** Answer 422 (invalid input) to prediction creation. */
  rejectSubmit: boolean;
  /** Deliver each completed webhook twice, as Replicate may on retries. */
  duplicateWebhooks: boolean;
  /** With a webhook, the prediction completes on its own this many ms after creation. */
  webhookCompleteAfterMs: number;
  /** Output images per prediction; 1 is answered as a single URL string, more as a list. */
  outputs: number;
  /** Output file extension. */
  outputExtension: 'png' | 'jpg' | 'webp';
}

export interface FakeSubmission {
  path: string;
  body: Record<string, unknown>;
}

export interface FakeWebhookDelivery {
  url: string;
  predictionId: string;
  status: number | 'error';
}

export interface FakeReplicate {
  baseUrl: string;
  apiToken: string;
  webhookSecret: string;
  submissions: FakeSubmission[];
  webhookDeliveries: FakeWebhookDelivery[];
  /** Every API call (method and path) in order, answered or not. */
  calls: string[];
  setBehaviour(partial: Partial<FakeReplicateBehaviour>): void;
  close(): Promise<void>;
}

interface FakePrediction {
  id: string;
  model: string;
  version: string | null;
  input: Record<string, unknown>;
  webhook: string | null;
  status: 'starting' | 'processing' | 'succeeded' | 'failed';
  polls: number;
  output: string | string[] | null;
  error: string | null;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
}

const DEFAULTS: FakeReplicateBehaviour = {
  pendingPolls: 1,
  rateLimitNext: 0,
  retryAfterSeconds: 3,
  serverErrorNext: 0,
  serverErrorStatus: 500,
  delayMs: 0,
  failWith: null,
  rejectSubmit: false,
  duplicateWebhooks: false,
  webhookCompleteAfterMs: 20,
  outputs: 1,
  outputExtension: 'png',
};

const PNG = encodePng(2, 2, new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]));

export async function startFakeReplicate(
  options: Partial<FakeReplicateBehaviour> & { apiToken?: string; webhookSecret?: string } = {},
): Promise<FakeReplicate> {
  const { apiToken: token, webhookSecret: secret, ...initial } = options;
  const apiToken = token ?? `r8_${randomBytes(16).toString('hex')}`;
  const webhookSecret = secret ?? `whsec_${randomBytes(24).toString('base64')}`;
  const behaviour: FakeReplicateBehaviour = { ...DEFAULTS, ...initial };
  const predictions = new Map<string, FakePrediction>();
  const submissions: FakeSubmission[] = [];
  const webhookDeliveries: FakeWebhookDelivery[] = [];
  const calls: string[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let baseUrl = '';
  let closed = false;

  const later = (ms: number, fn: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!closed) fn();
    }, ms);
    timers.add(timer);
  };

  const view = (p: FakePrediction) => ({
    id: p.id,
    model: p.model,
    version: p.version,
    input: p.input,
    logs: '',
    output: p.output,
    data_removed: false,
    error: p.error,
    status: p.status,
    created_at: p.createdAt,
    started_at: p.startedAt,
    completed_at: p.completedAt,
    metrics: p.completedAt ? { predict_time: 0.42, total_time: 0.5 } : {},
    urls: {
      get: `${baseUrl}/v1/predictions/${p.id}`,
      cancel: `${baseUrl}/v1/predictions/${p.id}/cancel`,
      web: `${baseUrl}/p/${p.id}`,
    },
  });

  const complete = (p: FakePrediction) => {
    if (p.status === 'succeeded' || p.status === 'failed') return;
    const now = new Date().toISOString();
    p.startedAt ??= now;
    p.completedAt = now;
    if (behaviour.failWith !== null) {
      p.status = 'failed';
      p.error = behaviour.failWith;
    } else {
      p.status = 'succeeded';
      const urls = Array.from(
        { length: behaviour.outputs },
        (_, i) => `${baseUrl}/outputs/${p.id}${i ? `-${i}` : ''}.${behaviour.outputExtension}`,
      );
      p.output = urls.length === 1 ? (urls[0] ?? null) : urls;
    }
    if (p.webhook) void deliver(p, behaviour.duplicateWebhooks ? 2 : 1);
  };

  const deliver = async (p: FakePrediction, times: number) => {
    const body = JSON.stringify(view(p));
    const headers = signReplicateWebhook(webhookSecret, body, { id: `msg_${p.id}` });
    for (let i = 0; i < times && !closed; i++) {
      try {
        const response = await fetch(p.webhook as string, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body,
          signal: AbortSignal.timeout(5_000),
        });
        await response.arrayBuffer();
        webhookDeliveries.push({
          url: p.webhook as string,
          predictionId: p.id,
          status: response.status,
        });
      } catch {
        webhookDeliveries.push({ url: p.webhook as string, predictionId: p.id, status: 'error' });
      }
    }
  };

  const handleApi = (
    method: string,
    path: string,
    body: Record<string, unknown> | null,
  ): { status: number; body: unknown; headers?: Record<string, string> } => {
    if (behaviour.rateLimitNext > 0) {
      behaviour.rateLimitNext--;
      const seconds = behaviour.retryAfterSeconds;
      return {
        status: 429,
        headers: { 'retry-after': String(seconds) },
        body: {
          title: 'Request was throttled.',
          detail: `Request was throttled. Expected available in ${seconds} seconds.`,
          status: 429,
          retry_after: seconds,
        },
      };
    }
    if (behaviour.serverErrorNext > 0) {
      behaviour.serverErrorNext--;
      const status = behaviour.serverErrorStatus;
      return {
        status,
        body: { title: 'Internal Server Error', detail: 'Something went wrong.', status },
      };
    }

    const model = /^\/v1\/models\/([^/]+)\/([^/]+)\/predictions$/.exec(path);
    if (method === 'POST' && (model || path === '/v1/predictions')) {
      if (!body || typeof body.input !== 'object' || body.input === null) {
        return problem(422, 'Input validation failed', '- input: input is required');
      }
      if (!model && typeof body.version !== 'string') {
        return problem(422, 'Input validation failed', '- version: version is required');
      }
      if (behaviour.rejectSubmit) {
        return problem(422, 'Input validation failed', '- input.prompt: prompt is too long');
      }
      const modelName = model
        ? `${decodeURIComponent(model[1] ?? '')}/${decodeURIComponent(model[2] ?? '')}`
        : null;
      const invalid = modelName
        ? inputProblems(modelName, body.input as Record<string, unknown>)
        : [];
      if (invalid.length > 0) {
        return problem(
          422,
          'Input validation failed',
          invalid.map((line) => `- ${line}`).join('\n'),
        );
      }
      const now = new Date().toISOString();
      const p: FakePrediction = {
        id: randomUUID().replaceAll('-', '').slice(0, 26),
        model: model
          ? `${decodeURIComponent(model[1] ?? '')}/${decodeURIComponent(model[2] ?? '')}`
          : 'someone/pinned-model',
        version: model ? null : (body.version as string),
        input: body.input as Record<string, unknown>,
        webhook: typeof body.webhook === 'string' ? body.webhook : null,
        status: 'starting',
        polls: 0,
        output: null,
        error: null,
        createdAt: now,
        startedAt: null,
        completedAt: null,
      };
      predictions.set(p.id, p);
      if (p.webhook) later(behaviour.webhookCompleteAfterMs, () => complete(p));
      return { status: 201, body: view(p) };
    }

    const get = /^\/v1\/predictions\/([^/]+)$/.exec(path);
    if (method === 'GET' && get) {
      const p = predictions.get(decodeURIComponent(get[1] ?? ''));
      if (!p) return problem(404, 'Not found', 'Not found.');
      p.polls++;
      if (p.polls > behaviour.pendingPolls) complete(p);
      else if (p.status === 'starting') {
        p.status = 'processing';
        p.startedAt = new Date().toISOString();
      }
      return { status: 200, body: view(p) };
    }
    return problem(404, 'Not found', 'Not found.');
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://fake').pathname;
      const method = req.method ?? 'GET';

      if (method === 'GET' && path.startsWith('/outputs/')) {
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': PNG.length });
        res.end(PNG);
        return;
      }

      calls.push(`${method} ${path}`);
      let answer: { status: number; body: unknown; headers?: Record<string, string> };
      if (req.headers.authorization !== `Bearer ${apiToken}`) {
        answer = problem(401, 'Unauthenticated', 'You did not pass a valid authentication token');
      } else {
        let body: Record<string, unknown> | null = null;
        if (chunks.length > 0) {
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            body = null;
          }
        }
        if (method === 'POST') submissions.push({ path, body: body ?? {} });
        answer = handleApi(method, path, body);
      }
      const send = () => {
        if (res.destroyed || res.headersSent) return;
        const text = JSON.stringify(answer.body);
        res.writeHead(answer.status, {
          'content-type': answer.status >= 400 ? 'application/problem+json' : 'application/json',
          ...answer.headers,
        });
        res.end(text);
      };
      if (behaviour.delayMs > 0) later(behaviour.delayMs, send);
      else send();
    });
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    baseUrl,
    apiToken,
    webhookSecret,
    submissions,
    webhookDeliveries,
    calls,
    setBehaviour(partial) {
      Object.assign(behaviour, partial);
    },
    async close() {
      closed = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function problem(status: number, title: string, detail: string): { status: number; body: unknown } {
  return { status, body: { title, detail, status } };
}

/**
 * The input schemas of the models the catalog routes here, as their API pages give them
 * (https://replicate.com/google/nano-banana/api): every field's name and type, the list
 * `image_input`, the allowed values. Replicate validates input against the model's OpenAPI schema
 * and answers 422 naming each bad field; a model not listed (a test's own) is not checked.
 */
const NANO_BANANA_ASPECT_RATIOS = [
  'match_input_image',
  '1:1',
  '2:3',
  '3:2',
  '3:4',
  '4:3',
  '4:5',
  '5:4',
  '9:16',
  '16:9',
  '21:9',
];

function inputProblems(model: string, input: Record<string, unknown>): string[] {
  if (model !== 'google/nano-banana') return [];
  const problems: string[] = [];
  if (typeof input.prompt !== 'string' || input.prompt === '') {
    problems.push('input.prompt: prompt is required');
  }
  for (const [name, value] of Object.entries(input)) {
    switch (name) {
      case 'prompt':
        break;
      case 'image_input':
        if (
          !Array.isArray(value) ||
          !value.every((item) => typeof item === 'string' && /^(https?:\/\/|data:)/.test(item))
        ) {
          problems.push('input.image_input: Invalid type. Expected: array of uri strings');
        }
        break;
      case 'aspect_ratio':
        if (typeof value !== 'string' || !NANO_BANANA_ASPECT_RATIOS.includes(value)) {
          problems.push(
            `input.aspect_ratio: must be one of ${NANO_BANANA_ASPECT_RATIOS.join(', ')}`,
          );
        }
        break;
      case 'output_format':
        if (value !== 'jpg' && value !== 'png') problems.push('input.output_format: jpg or png');
        break;
      default:
        problems.push(`input.${name}: Additional property ${name} is not allowed`);
    }
  }
  return problems;
}
