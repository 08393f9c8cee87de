import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pngSize } from '../src/providers/png.ts';
import { ReplicateProvider, signReplicateWebhook } from '../src/providers/replicate.ts';
import {
  ProviderError,
  type ProviderRequest,
  WebhookSignatureError,
} from '../src/providers/types.ts';
import { type FakeReplicate, startFakeReplicate } from './fakes/replicate-server.ts';

let fake: FakeReplicate;
let provider: ReplicateProvider;

beforeAll(async () => {
  fake = await startFakeReplicate();
  provider = new ReplicateProvider({
    apiToken: fake.apiToken,
    baseUrl: fake.baseUrl,
    webhookSecret: fake.webhookSecret,
  });
});

afterAll(async () => {
  await fake.close();
});

afterEach(() => {
  fake.setBehaviour({
    pendingPolls: 1,
    rateLimitNext: 0,
    serverErrorNext: 0,
    delayMs: 0,
    failWith: null,
    rejectSubmit: false,
    duplicateWebhooks: false,
    outputs: 1,
    outputExtension: 'png',
  });
});

const request = (overrides: Partial<ProviderRequest> = {}): ProviderRequest => ({
  generationId: 'gen-1',
  model: 'black-forest-labs/flux-schnell',
  prompt: 'a lighthouse at dusk',
  parameters: { aspect_ratio: '16:9' },
  referenceUrls: [],
  shape: { referenceField: 'image_input', referenceArity: 'array', maxReferences: 10, inputs: {} },
  ...overrides,
});

async function caught(promise: Promise<unknown>): Promise<ProviderError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ProviderError);
    return error as ProviderError;
  }
  throw new Error('expected a ProviderError');
}

describe('replicate provider: submitting', () => {
  it('runs an official model through the models endpoint', async () => {
    const before = fake.submissions.length;
    const { providerJobId } = await provider.submit(
      request({ referenceUrls: ['https://example.com/a.png'] }),
    );
    expect(providerJobId).toMatch(/\w+/);
    const submission = fake.submissions[before];
    expect(submission?.path).toBe('/v1/models/black-forest-labs/flux-schnell/predictions');
    expect(submission?.body).toEqual({
      input: {
        prompt: 'a lighthouse at dusk',
        aspect_ratio: '16:9',
        image_input: ['https://example.com/a.png'],
      },
    });
  });

  it('runs a pinned version through /v1/predictions, with a completed-only webhook', async () => {
    const before = fake.submissions.length;
    await provider.submit(
      request({
        model: 'stability-ai/sdxl:39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b',
        webhookUrl: 'http://127.0.0.1:1/unused',
      }),
    );
    const submission = fake.submissions[before];
    expect(submission?.path).toBe('/v1/predictions');
    expect(submission?.body).toEqual({
      version: '39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b',
      input: { prompt: 'a lighthouse at dusk', aspect_ratio: '16:9' },
      webhook: 'http://127.0.0.1:1/unused',
      webhook_events_filter: ['completed'],
    });
    expect(submission?.body.input).not.toHaveProperty('image_input');
  });

  it('refuses a model reference that is not owner/name[:version]', async () => {
    const error = await caught(provider.submit(request({ model: 'just-a-name' })));
    expect(error.retryable).toBe(false);
  });
});

describe('replicate provider: polling', () => {
  it('answers pending, then succeeded with the output URLs', async () => {
    fake.setBehaviour({ pendingPolls: 2, outputs: 2, outputExtension: 'webp' });
    const { providerJobId } = await provider.submit(request());
    expect(await provider.status(providerJobId)).toEqual({ state: 'pending' });
    expect(await provider.status(providerJobId)).toEqual({ state: 'pending' });
    const done = await provider.status(providerJobId);
    expect(done.state).toBe('succeeded');
    if (done.state !== 'succeeded') return;
    expect(done.images).toEqual([
      { url: `${fake.baseUrl}/outputs/${providerJobId}.webp`, mimeType: 'image/webp' },
      { url: `${fake.baseUrl}/outputs/${providerJobId}-1.webp`, mimeType: 'image/webp' },
    ]);
    expect(done.metadata).toMatchObject({
      model: 'black-forest-labs/flux-schnell',
      metrics: { predict_time: expect.any(Number) },
    });
  });

  it('reads a single-string output, whose URL serves a PNG', async () => {
    const { providerJobId } = await provider.submit(request());
    await provider.status(providerJobId);
    const done = await provider.status(providerJobId);
    if (done.state !== 'succeeded') throw new Error(`expected success, got ${done.state}`);
    expect(done.images).toHaveLength(1);
    expect(done.images[0]?.mimeType).toBe('image/png');
    const png = Buffer.from(await (await fetch(done.images[0]?.url as string)).arrayBuffer());
    expect(pngSize(png)).toEqual({ width: 2, height: 2 });
  });

  it('maps a failed prediction to a final failure carrying its error', async () => {
    fake.setBehaviour({ pendingPolls: 0, failWith: 'NSFW content detected' });
    const { providerJobId } = await provider.submit(request());
    const status = await provider.status(providerJobId);
    expect(status).toEqual({
      state: 'failed',
      error: expect.stringContaining('NSFW content detected'),
      retryable: false,
    });
  });

  it('treats an unknown prediction id as a final error', async () => {
    const error = await caught(provider.status('nosuchprediction'));
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('404');
  });
});

describe('replicate provider: errors', () => {
  it('429 is retryable and carries the retry-after', async () => {
    fake.setBehaviour({ rateLimitNext: 1, retryAfterSeconds: 7 });
    const error = await caught(provider.submit(request()));
    expect(error.retryable).toBe(true);
    expect(error.retryAfterSeconds).toBe(7);
    expect(error.message).toContain('429');
    expect(error.message).toContain('throttled');
  });

  it('5xx is retryable', async () => {
    fake.setBehaviour({ serverErrorNext: 1, serverErrorStatus: 500 });
    const error = await caught(provider.submit(request()));
    expect(error.retryable).toBe(true);
    fake.setBehaviour({ serverErrorNext: 1, serverErrorStatus: 503 });
    expect((await caught(provider.status('anything'))).retryable).toBe(true);
  });

  it('a wrong token (401) is final, and the token never shows in the message', async () => {
    const wrongToken = 'r8_this-is-the-wrong-token-1234567890';
    const wrong = new ReplicateProvider({ apiToken: wrongToken, baseUrl: fake.baseUrl });
    const error = await caught(wrong.submit(request()));
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('401');
    expect(error.message).not.toContain(wrongToken);
  });

  it('invalid input (422) is final', async () => {
    fake.setBehaviour({ rejectSubmit: true });
    const error = await caught(provider.submit(request()));
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('422');
    expect(error.message).toContain('prompt is too long');
  });

  it('a timeout is retryable', async () => {
    fake.setBehaviour({ delayMs: 1_000 });
    const impatient = new ReplicateProvider({
      apiToken: fake.apiToken,
      baseUrl: fake.baseUrl,
      requestTimeoutMs: 100,
    });
    const error = await caught(impatient.submit(request()));
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/timed out/);
  });

  it('a refused connection is retryable', async () => {
    const nowhere = new ReplicateProvider({ apiToken: 'r8_x', baseUrl: 'http://127.0.0.1:1' });
    expect((await caught(nowhere.status('abc'))).retryable).toBe(true);
  });

  it('a 2xx body that is not a prediction is retryable', async () => {
    const odd = new ReplicateProvider({
      apiToken: 'r8_x',
      fetch: async () => new Response('<html>maintenance</html>', { status: 200 }),
    });
    expect((await caught(odd.status('abc'))).retryable).toBe(true);
  });

  it('leaks the token in no error message, even when the server echoes it', async () => {
    const token = 'r8_secret-token-that-must-not-leak';
    const echo = new ReplicateProvider({
      apiToken: token,
      fetch: async (_url, init) =>
        new Response(
          JSON.stringify({
            detail: `bad header ${new Headers(init?.headers).get('authorization')}`,
          }),
          { status: 400 },
        ),
    });
    const broken = new ReplicateProvider({
      apiToken: token,
      fetch: async () => {
        throw new TypeError(`fetch failed for ${token}`);
      },
    });
    const messages = [
      (await caught(echo.submit(request()))).message,
      (await caught(broken.status('abc'))).message,
    ];
    for (const message of messages) expect(message).not.toContain(token);
  });
});

describe('replicate provider: webhooks', () => {
  const prediction = {
    id: 'ufawqhfynnddngldkgtslldrkq',
    model: 'black-forest-labs/flux-schnell',
    version: null,
    status: 'succeeded',
    output: ['https://replicate.delivery/xezq/out-0.jpg'],
    error: null,
    metrics: { predict_time: 1.2 },
  };
  const body = JSON.stringify(prediction);
  const now = () => Math.floor(Date.now() / 1000);

  it('reads a correctly signed webhook', () => {
    const headers = signReplicateWebhook(fake.webhookSecret, body);
    const event = provider.readWebhook({ headers, rawBody: Buffer.from(body) });
    expect(event.providerJobId).toBe(prediction.id);
    expect(event.status).toMatchObject({
      state: 'succeeded',
      images: [{ url: prediction.output[0], mimeType: 'image/jpeg' }],
    });
  });

  it('reads a failed prediction from a webhook', () => {
    const failed = JSON.stringify({ ...prediction, status: 'aborted', output: null });
    const headers = signReplicateWebhook(fake.webhookSecret, failed);
    const event = provider.readWebhook({ headers, rawBody: Buffer.from(failed) });
    expect(event.status).toMatchObject({ state: 'failed', retryable: false });
  });

  it('accepts a signature header with several entries when one matches', () => {
    const headers = signReplicateWebhook(fake.webhookSecret, body);
    const other = signReplicateWebhook(
      `whsec_${Buffer.from('x'.repeat(24)).toString('base64')}`,
      body,
      {
        id: headers['webhook-id'],
        timestamp: Number(headers['webhook-timestamp']),
      },
    );
    const event = provider.readWebhook({
      headers: {
        ...headers,
        'webhook-signature': `v2,abc ${other['webhook-signature']} ${headers['webhook-signature']}`,
      },
      rawBody: Buffer.from(body),
    });
    expect(event.providerJobId).toBe(prediction.id);
  });

  it('refuses a tampered body', () => {
    const headers = signReplicateWebhook(fake.webhookSecret, body);
    const tampered = body.replace('succeeded', 'failed');
    expect(() => provider.readWebhook({ headers, rawBody: Buffer.from(tampered) })).toThrow(
      WebhookSignatureError,
    );
  });

  it('refuses a body signed with another secret', () => {
    const headers = signReplicateWebhook(
      `whsec_${Buffer.from('another secret!!').toString('base64')}`,
      body,
    );
    expect(() => provider.readWebhook({ headers, rawBody: Buffer.from(body) })).toThrow(
      WebhookSignatureError,
    );
  });

  it('refuses a stale or future timestamp, even correctly signed', () => {
    for (const timestamp of [now() - 6 * 60, now() + 6 * 60]) {
      const headers = signReplicateWebhook(fake.webhookSecret, body, { timestamp });
      expect(() => provider.readWebhook({ headers, rawBody: Buffer.from(body) })).toThrow(
        WebhookSignatureError,
      );
    }
    const recent = signReplicateWebhook(fake.webhookSecret, body, { timestamp: now() - 60 });
    expect(
      provider.readWebhook({ headers: recent, rawBody: Buffer.from(body) }).providerJobId,
    ).toBe(prediction.id);
  });

  it('refuses a webhook with a header missing', () => {
    const headers = signReplicateWebhook(fake.webhookSecret, body);
    for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const) {
      const { [name]: _dropped, ...rest } = headers;
      expect(() => provider.readWebhook({ headers: rest, rawBody: Buffer.from(body) })).toThrow(
        WebhookSignatureError,
      );
    }
  });

  it('refuses every webhook when no secret is configured', () => {
    const unsigned = new ReplicateProvider({ apiToken: 'r8_x', baseUrl: fake.baseUrl });
    const headers = signReplicateWebhook(fake.webhookSecret, body);
    expect(() => unsigned.readWebhook({ headers, rawBody: Buffer.from(body) })).toThrow(
      /no webhook secret configured/,
    );
  });

  it('end to end: the fake delivers signed completed webhooks (twice) that verify', async () => {
    const received: { headers: IncomingHttpHeaders; body: Buffer }[] = [];
    const receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        received.push({ headers: req.headers, body: Buffer.concat(chunks) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    try {
      const port = (receiver.address() as AddressInfo).port;
      fake.setBehaviour({ duplicateWebhooks: true });
      const { providerJobId } = await provider.submit(
        request({ webhookUrl: `http://127.0.0.1:${port}/webhooks/replicate` }),
      );
      const deadline = Date.now() + 5_000;
      while (received.length < 2 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(received).toHaveLength(2);
      for (const delivery of received) {
        const event = provider.readWebhook({ headers: delivery.headers, rawBody: delivery.body });
        expect(event.providerJobId).toBe(providerJobId);
        expect(event.status.state).toBe('succeeded');
      }
      expect(received[0]?.headers['webhook-id']).toBe(received[1]?.headers['webhook-id']);
    } finally {
      receiver.closeAllConnections();
      await new Promise<void>((resolve) => receiver.close(() => resolve()));
    }
  });
});
