import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pngSize } from '../src/providers/png.ts';
import type { ProviderRequest, ProviderWebhook } from '../src/providers/types.ts';
import { ProviderError, WebhookSignatureError } from '../src/providers/types.ts';
import {
  signWavespeedWebhook,
  verifyWavespeedWebhook,
  WavespeedProvider,
} from '../src/providers/wavespeed.ts';
import { type FakeWavespeed, startFakeWavespeed } from './fakes/wavespeed-server.ts';

let fake: FakeWavespeed;
/** Every error any call threw, checked at the end for the API key. */
const thrown: unknown[] = [];

beforeAll(async () => {
  fake = await startFakeWavespeed();
});

afterEach(() => {
  fake.setBehaviour({
    error: null,
    delayMs: 0,
    failWith: null,
    completeAfterPolls: 2,
    completeAfterMs: null,
    webhookDeliveries: 1,
  });
});

afterAll(async () => {
  await fake.close();
});

function provider(overrides: Partial<ConstructorParameters<typeof WavespeedProvider>[0]> = {}) {
  return new WavespeedProvider({
    apiKey: fake.apiKey,
    baseUrl: fake.baseUrl,
    webhookSecret: fake.webhookSecret,
    ...overrides,
  });
}

function request(overrides: Partial<ProviderRequest> = {}): ProviderRequest {
  return {
    generationId: 'gen-1',
    model: 'bytedance/seedream-v4',
    prompt: 'a lighthouse at dusk',
    parameters: { size: '1024*1024' },
    referenceUrls: [],
    shape: { referenceField: 'images', referenceArity: 'array', maxReferences: 10, inputs: {} },
    ...overrides,
  };
}

/** Runs `action`, expects a ProviderError, records it for the key check and returns it. */
async function providerError(action: () => Promise<unknown>): Promise<ProviderError> {
  let caught: unknown;
  try {
    await action();
  } catch (error) {
    caught = error;
  }
  thrown.push(caught);
  expect(caught).toBeInstanceOf(ProviderError);
  return caught as ProviderError;
}

function signatureError(action: () => unknown): WebhookSignatureError {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  thrown.push(caught);
  expect(caught).toBeInstanceOf(WebhookSignatureError);
  return caught as WebhookSignatureError;
}

describe('wavespeed provider: submit and poll', () => {
  it('submits, reports pending, then succeeds with the output URLs', async () => {
    const wavespeed = provider();
    const { providerJobId } = await wavespeed.submit(request());
    expect(providerJobId).toMatch(/^[0-9a-f]{32}$/);

    expect(await wavespeed.status(providerJobId)).toEqual({ state: 'pending' });
    const done = await wavespeed.status(providerJobId);
    expect(done).toEqual({
      state: 'succeeded',
      images: [{ url: `${fake.baseUrl}/outputs/${providerJobId}.png`, mimeType: 'image/png' }],
      metadata: {
        has_nsfw_contents: [false],
        timings: { inference: 1234 },
        model: 'bytedance/seedream-v4',
      },
    });
    // Polling again after the end keeps answering the same result.
    expect((await wavespeed.status(providerJobId)).state).toBe('succeeded');

    if (done.state !== 'succeeded') return;
    const download = await fetch(done.images[0]!.url!);
    expect(download.headers.get('content-type')).toBe('image/png');
    expect(pngSize(Buffer.from(await download.arrayBuffer()))).toEqual({ width: 4, height: 4 });
  });

  it('sends the prompt, the parameters and fixed flags; images only for references', async () => {
    const wavespeed = provider();
    const before = fake.submissions.length;
    await wavespeed.submit(request({ parameters: { size: '2048*1024' }, webhookUrl: undefined }));
    await wavespeed.submit(
      request({
        model: 'google/nano-banana/edit',
        prompt: 'make it night',
        parameters: { aspect_ratio: '16:9' },
        referenceUrls: ['https://files.example/a.png', 'https://files.example/b.jpg'],
        webhookUrl: 'https://bot.example/webhooks/wavespeed?token=a&b=c d',
      }),
    );
    const [plain, edit] = fake.submissions.slice(before);

    expect(plain).toEqual({
      model: 'bytedance/seedream-v4',
      webhook: null,
      body: {
        prompt: 'a lighthouse at dusk',
        size: '2048*1024',
        enable_base64_output: false,
        enable_sync_mode: false,
      },
    });
    expect(plain!.body).not.toHaveProperty('images');

    expect(edit).toEqual({
      model: 'google/nano-banana/edit',
      webhook: 'https://bot.example/webhooks/wavespeed?token=a&b=c d',
      body: {
        prompt: 'make it night',
        aspect_ratio: '16:9',
        images: ['https://files.example/a.png', 'https://files.example/b.jpg'],
        enable_base64_output: false,
        enable_sync_mode: false,
      },
    });
  });

  it('shapes each request as its route says: one `image` string, typed values, parameters left out', async () => {
    const wavespeed = provider();
    const before = fake.submissions.length;
    // qwen-image/edit documents one `image` (a string), an integer `seed` and no `size`.
    const qwenEdit = {
      referenceField: 'image',
      referenceArity: 'string',
      maxReferences: 1,
      inputs: { size: null, seed: { type: 'integer' } },
    } as const;
    await wavespeed.submit(
      request({
        model: 'wavespeed-ai/qwen-image/edit',
        prompt: 'change the sign to say OPEN',
        parameters: { size: '1024*1024', seed: '42' },
        referenceUrls: ['https://files.example/shop.png'],
        shape: qwenEdit,
      }),
    );
    expect(fake.submissions[before]?.body).toEqual({
      prompt: 'change the sign to say OPEN',
      seed: 42,
      image: 'https://files.example/shop.png',
      enable_base64_output: false,
      enable_sync_mode: false,
    });

    // The shape the adapter used to send (`images`, a list, and `size`) is refused by the API.
    const asList = await providerError(() =>
      wavespeed.submit(
        request({
          model: 'wavespeed-ai/qwen-image/edit',
          prompt: 'change the sign to say OPEN',
          parameters: {},
          referenceUrls: ['https://files.example/shop.png'],
        }),
      ),
    );
    expect(asList.retryable).toBe(false);
    expect(asList.message).toContain('image is required');
    // A seed sent as text, as every parameter used to be, is refused too.
    const asText = await providerError(() =>
      wavespeed.submit(
        request({
          model: 'wavespeed-ai/qwen-image/edit',
          prompt: 'change the sign to say OPEN',
          parameters: { seed: '42' },
          referenceUrls: ['https://files.example/shop.png'],
          shape: { ...qwenEdit, inputs: {} },
        }),
      ),
    );
    expect(asText.message).toContain('seed must be an integer');
    // More references than the route takes never reach the provider.
    const calls = fake.submissions.length;
    const tooMany = await providerError(() =>
      wavespeed.submit(
        request({
          model: 'wavespeed-ai/qwen-image/edit',
          referenceUrls: ['https://files.example/a.png', 'https://files.example/b.png'],
          shape: qwenEdit,
        }),
      ),
    );
    expect(tooMany.failureCode).toBe('invalid_input');
    expect(fake.submissions.length).toBe(calls);
  });

  it('refuses sizes outside what a model documents (Seedream 4.0: 1024 to 4096 per side)', async () => {
    const error = await providerError(() =>
      provider().submit(request({ parameters: { size: '1280*720' } })),
    );
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('size');
  });

  it("sends a tool its one `image` and its parameters, no prompt, as each tool's page documents", async () => {
    const wavespeed = provider();
    const before = fake.submissions.length;
    const photo = 'data:image/jpeg;base64,/9j/4AAQSkZJRg==';
    const tool = {
      referenceField: 'image',
      referenceArity: 'string',
      maxReferences: 1,
      inputs: {},
    } as const;
    const tools: [string, Record<string, string>][] = [
      ['wavespeed-ai/ultimate-image-upscaler', { target_resolution: '8k' }],
      ['wavespeed-ai/image-watermark-remover', {}],
      ['topaz/image/denoise', { model: 'Strong' }],
      ['topaz/image/restore', { model: 'Dust-Scratch V2' }],
      ['topaz/image/enhance', {}],
    ];
    for (const [model, parameters] of tools) {
      const { providerJobId } = await wavespeed.submit(
        request({
          kind: 'tool',
          model,
          prompt: '',
          parameters,
          referenceUrls: [photo],
          shape: tool,
        }),
      );
      expect(providerJobId).toMatch(/^[0-9a-f]{32}$/);
      // It ends like any prediction: an output URL.
      await wavespeed.status(providerJobId);
      expect((await wavespeed.status(providerJobId)).state).toBe('succeeded');
    }
    expect(fake.submissions.slice(before)).toEqual(
      tools.map(([model, parameters]) => ({
        model,
        webhook: null,
        body: { ...parameters, image: photo, enable_base64_output: false, enable_sync_mode: false },
      })),
    );

    // The fake answers like the API: a tool without its image, or with a value it does not list,
    // is a 400, final; the adapter refuses a tool without a reference before calling.
    const missing = await providerError(() =>
      wavespeed.submit(
        request({
          kind: 'tool',
          model: 'topaz/image/denoise',
          prompt: '',
          parameters: {},
          shape: tool,
        }),
      ),
    );
    expect(missing.retryable).toBe(false);
    expect(missing.failureCode).toBe('invalid_input');
    const wrong = await providerError(() =>
      wavespeed.submit(
        request({
          kind: 'tool',
          model: 'topaz/image/denoise',
          prompt: '',
          parameters: { model: 'Gentle' },
          referenceUrls: [photo],
          shape: tool,
        }),
      ),
    );
    expect(wrong.retryable).toBe(false);
    expect(wrong.message).toContain('model must be one of Normal, Strong, Extreme');
  });

  it('keeps sync mode and base64 output off whatever the parameters say', async () => {
    const before = fake.submissions.length;
    await provider().submit(
      request({ parameters: { enable_sync_mode: 'true', enable_base64_output: 'true' } }),
    );
    expect(fake.submissions[before]!.body).toMatchObject({
      enable_sync_mode: false,
      enable_base64_output: false,
    });
  });

  it('refuses a model that is not a model path, without calling the API', async () => {
    const before = fake.submissions.length;
    for (const model of ['', 'seedream', '../predictions/x', 'a/b?webhook=x', 'a/../b', '/a/b']) {
      const error = await providerError(() => provider().submit(request({ model })));
      expect(error.retryable).toBe(false);
    }
    expect(fake.submissions.length).toBe(before);
  });

  it('reports a failed prediction as failed, not retryable, with its error', async () => {
    fake.setBehaviour({ failWith: 'content policy violation', completeAfterPolls: 1 });
    const wavespeed = provider();
    const { providerJobId } = await wavespeed.submit(request());
    expect(await wavespeed.status(providerJobId)).toEqual({
      state: 'failed',
      error: 'content policy violation',
      retryable: false,
    });
  });

  it('finishes predictions on a timer as well as on polls', async () => {
    fake.setBehaviour({ completeAfterPolls: 100, completeAfterMs: 20 });
    const wavespeed = provider();
    const { providerJobId } = await wavespeed.submit(request());
    expect((await wavespeed.status(providerJobId)).state).toBe('pending');
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect((await wavespeed.status(providerJobId)).state).toBe('succeeded');
  });
});

describe('wavespeed provider: HTTP errors', () => {
  it('429 is retryable and carries Retry-After', async () => {
    fake.setBehaviour({ error: { status: 429, message: 'rate limited', retryAfterSeconds: 7 } });
    const onSubmit = await providerError(() => provider().submit(request()));
    expect(onSubmit.retryable).toBe(true);
    expect(onSubmit.retryAfterSeconds).toBe(7);
    expect(onSubmit.message).toContain('429');
    expect(onSubmit.message).toContain('rate limited');

    const onStatus = await providerError(() => provider().status('abc'));
    expect(onStatus).toMatchObject({ retryable: true, retryAfterSeconds: 7 });
  });

  it('429 without Retry-After is retryable with no delay given', async () => {
    fake.setBehaviour({ error: { status: 429 } });
    const error = await providerError(() => provider().submit(request()));
    expect(error.retryable).toBe(true);
    expect(error.retryAfterSeconds).toBeUndefined();
  });

  it('500 and 503 are retryable', async () => {
    for (const status of [500, 503]) {
      fake.setBehaviour({ error: { status, message: 'upstream trouble' } });
      const error = await providerError(() => provider().submit(request()));
      expect(error.retryable).toBe(true);
      expect(error.message).toContain(String(status));
    }
  });

  it('400 (bad input) is not retryable and says why', async () => {
    const error = await providerError(() => provider().submit(request({ prompt: '' })));
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('400');
    expect(error.message).toContain('prompt must be a non-empty string');
  });

  it('401 (bad key) is not retryable', async () => {
    const wrong = provider({ apiKey: 'ws-wrong-key-123456' });
    const onSubmit = await providerError(() => wrong.submit(request()));
    expect(onSubmit.retryable).toBe(false);
    expect(onSubmit.message).toContain('401');
    const onStatus = await providerError(() => wrong.status('abc'));
    expect(onStatus.retryable).toBe(false);
    expect(onStatus.message).not.toContain('ws-wrong-key-123456');
  });

  it('404 (unknown prediction) is not retryable', async () => {
    const error = await providerError(() => provider().status('no-such-prediction'));
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('404');
  });

  it('a slow answer times out as a retryable error', async () => {
    fake.setBehaviour({ delayMs: 400 });
    const started = Date.now();
    const error = await providerError(() => provider({ requestTimeoutMs: 100 }).submit(request()));
    expect(Date.now() - started).toBeLessThan(350);
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/timed out after 100 ms/);
  });

  it("the caller's abort is passed on, not turned into a provider error", async () => {
    fake.setBehaviour({ delayMs: 400 });
    const controller = new AbortController();
    const reason = new Error('shutting down');
    setTimeout(() => controller.abort(reason), 50);
    await expect(provider().status('abc', controller.signal)).rejects.toBe(reason);
  });

  it('a refused connection is retryable', async () => {
    const closed = await startFakeWavespeed();
    const url = closed.baseUrl;
    await closed.close();
    const error = await providerError(() => provider({ baseUrl: url }).submit(request()));
    expect(error.retryable).toBe(true);
  });

  it('a 200 that is not the documented envelope is retryable', async () => {
    const answers: Array<[number, string]> = [
      [200, '<html>gateway</html>'],
      [200, JSON.stringify({ code: 200, message: 'success' })],
      [200, JSON.stringify({ code: 200, message: 'success', data: { status: 'completed' } })],
      [200, JSON.stringify({ code: 200, data: { id: 'x', status: 'weird' } })],
    ];
    for (const [status, body] of answers) {
      const fetchStub: typeof fetch = async () => new Response(body, { status });
      const wavespeed = provider({ fetch: fetchStub });
      const error = await providerError(() => wavespeed.status('x'));
      expect(error.retryable).toBe(true);
    }
  });

  it('an error code inside a 200 envelope is read as that error', async () => {
    const fetchStub: typeof fetch = async () =>
      new Response(JSON.stringify({ code: 400, message: 'size is invalid', data: null }), {
        status: 200,
      });
    const error = await providerError(() => provider({ fetch: fetchStub }).submit(request()));
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('size is invalid');
  });

  it('reads Retry-After given as an HTTP date', async () => {
    const when = new Date(Date.now() + 30_000).toUTCString();
    const fetchStub: typeof fetch = async () =>
      new Response('{"code":429,"message":"slow down"}', {
        status: 429,
        headers: { 'Retry-After': when },
      });
    const error = await providerError(() => provider({ fetch: fetchStub }).status('x'));
    expect(error.retryable).toBe(true);
    expect(error.retryAfterSeconds).toBeGreaterThanOrEqual(28);
    expect(error.retryAfterSeconds).toBeLessThanOrEqual(31);
  });

  it('never puts the API key in an error message, even when the server echoes it', async () => {
    for (const status of [400, 401, 429, 500]) {
      fake.setBehaviour({ error: { status, message: 'nope', echoAuthorization: true } });
      const error = await providerError(() => provider().submit(request()));
      expect(error.message).toContain('[redacted]');
      expect(error.message).not.toContain(fake.apiKey);
    }
    const echo: typeof fetch = async (_url, init) => {
      const auth = new Headers(init?.headers).get('authorization') ?? '';
      throw new TypeError(`fetch failed for ${auth}`, { cause: new Error(auth) });
    };
    const network = await providerError(() => provider({ fetch: echo }).status('x'));
    expect(network.retryable).toBe(true);
    expect(network.message).not.toContain(fake.apiKey);
  });
});

describe('wavespeed provider: webhooks', () => {
  let receiver: ReturnType<typeof createServer>;
  let receiverUrl: string;
  const received: Array<{ headers: IncomingHttpHeaders; rawBody: Buffer }> = [];

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        received.push({ headers: req.headers, rawBody: Buffer.concat(chunks) });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks/wavespeed`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
  });

  function signed(body: string, options: { id?: string; timestamp?: number } = {}) {
    return {
      headers: signWavespeedWebhook(fake.webhookSecret, body, options),
      rawBody: Buffer.from(body),
    } satisfies ProviderWebhook;
  }

  const completedBody = JSON.stringify({
    id: 'pred-1',
    model: 'bytedance/seedream-v4',
    input: { prompt: 'x' },
    outputs: ['https://cdn.example/out/pred-1.webp'],
    urls: { get: 'https://api.wavespeed.ai/api/v3/predictions/pred-1/result' },
    has_nsfw_contents: [false],
    status: 'completed',
    created_at: '2025-01-01T00:00:00.000Z',
    error: '',
  });

  it('signs the way the docs describe: hex HMAC-SHA256 of id.timestamp.body, key without whsec_', () => {
    const headers = signWavespeedWebhook('whsec_c2VjcmV0', '{"a":1}', {
      id: 'abc',
      timestamp: 1758798328,
    });
    // The key is the text after `whsec_`, not its base64 decoding.
    const expected = createHmac('sha256', 'c2VjcmV0')
      .update('abc.1758798328.{"a":1}')
      .digest('hex');
    expect(headers).toEqual({
      'webhook-id': 'abc',
      'webhook-timestamp': '1758798328',
      'webhook-signature': `v3,${expected}`,
    });
    verifyWavespeedWebhook(
      'whsec_c2VjcmV0',
      { headers, rawBody: Buffer.from('{"a":1}') },
      1758798328 + 10,
    );
  });

  it('the fake posts a signed completion webhook that reads as the event', async () => {
    const wavespeed = provider();
    const { providerJobId } = await wavespeed.submit(request({ webhookUrl: receiverUrl }));
    const before = received.length;
    await fake.finish(providerJobId);
    expect(received.length).toBe(before + 1);
    const call = received[before]!;
    expect(call.headers['content-type']).toBe('application/json');
    expect(call.headers['webhook-signature']).toMatch(/^v3,[0-9a-f]{64}$/);

    const event = wavespeed.readWebhook(call);
    expect(event).toEqual({
      providerJobId,
      status: {
        state: 'succeeded',
        images: [{ url: `${fake.baseUrl}/outputs/${providerJobId}.png`, mimeType: 'image/png' }],
        metadata: { has_nsfw_contents: [false], timings: null, model: 'bytedance/seedream-v4' },
      },
    });
  });

  it('sends the webhook of a prediction that ends on its own, and can send it twice', async () => {
    fake.setBehaviour({ completeAfterPolls: 100, completeAfterMs: 10, webhookDeliveries: 2 });
    const wavespeed = provider();
    const deliveredBefore = fake.webhookDeliveries.length;
    const { providerJobId } = await wavespeed.submit(request({ webhookUrl: receiverUrl }));
    const deliveries = await fake.waitForWebhooks(deliveredBefore + 2);
    const mine = deliveries.slice(deliveredBefore);
    expect(mine.map((d) => [d.predictionId, d.status])).toEqual([
      [providerJobId, 200],
      [providerJobId, 200],
    ]);
    const calls = received.filter((call) => call.rawBody.includes(providerJobId));
    expect(calls).toHaveLength(2);
    const events = calls.map((call) => wavespeed.readWebhook(call));
    // A duplicate reads as the same event: the queue must accept it twice.
    expect(events[0]).toEqual(events[1]);
    expect(events[0]!.status.state).toBe('succeeded');
  });

  it('a failed prediction webhook reads as failed', async () => {
    fake.setBehaviour({ failWith: 'nsfw input rejected' });
    const wavespeed = provider();
    const { providerJobId } = await wavespeed.submit(request({ webhookUrl: receiverUrl }));
    const before = received.length;
    await fake.finish(providerJobId);
    expect(wavespeed.readWebhook(received[before]!)).toEqual({
      providerJobId,
      status: { state: 'failed', error: 'nsfw input rejected', retryable: false },
    });
  });

  it('reads a good signature, any header case, and the enveloped body too', () => {
    const event = provider().readWebhook(signed(completedBody));
    expect(event.providerJobId).toBe('pred-1');
    expect(event.status).toMatchObject({
      state: 'succeeded',
      images: [{ url: 'https://cdn.example/out/pred-1.webp', mimeType: 'image/webp' }],
    });

    const upper = signed(completedBody);
    const headers = Object.fromEntries(
      Object.entries(upper.headers).map(([key, value]) => [key.toUpperCase(), value]),
    );
    expect(provider().readWebhook({ headers, rawBody: upper.rawBody }).providerJobId).toBe(
      'pred-1',
    );

    const enveloped = JSON.stringify({
      code: 200,
      message: 'success',
      data: JSON.parse(completedBody),
    });
    expect(provider().readWebhook(signed(enveloped)).providerJobId).toBe('pred-1');
  });

  it('refuses a tampered body', () => {
    const call = signed(completedBody);
    const tampered = Buffer.from(completedBody.replace('pred-1.webp', 'evil.webp'));
    signatureError(() => provider().readWebhook({ headers: call.headers, rawBody: tampered }));
  });

  it('refuses a signature made with another secret', () => {
    const headers = signWavespeedWebhook('whsec_someone-else', completedBody);
    signatureError(() => provider().readWebhook({ headers, rawBody: Buffer.from(completedBody) }));
  });

  it('refuses stale and future timestamps, accepts within five minutes', () => {
    const now = Math.floor(Date.now() / 1000);
    const wavespeed = provider();
    signatureError(() => wavespeed.readWebhook(signed(completedBody, { timestamp: now - 301 })));
    signatureError(() => wavespeed.readWebhook(signed(completedBody, { timestamp: now + 301 })));
    expect(
      wavespeed.readWebhook(signed(completedBody, { timestamp: now - 290 })).providerJobId,
    ).toBe('pred-1');
    expect(
      wavespeed.readWebhook(signed(completedBody, { timestamp: now + 290 })).providerJobId,
    ).toBe('pred-1');
  });

  it('refuses missing or malformed headers', () => {
    const call = signed(completedBody);
    const wavespeed = provider();
    for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const) {
      const headers: Record<string, string> = { ...call.headers };
      delete headers[name];
      signatureError(() => wavespeed.readWebhook({ headers, rawBody: call.rawBody }));
      signatureError(() =>
        wavespeed.readWebhook({ headers: { ...headers, [name]: '' }, rawBody: call.rawBody }),
      );
    }
    const hex = call.headers['webhook-signature'].slice(3);
    for (const signature of [
      hex,
      `v1,${hex}`,
      'v3,',
      `v3,${hex.slice(2)}`,
      `v3,${'zz'.repeat(32)}`,
    ]) {
      signatureError(() =>
        wavespeed.readWebhook({
          headers: { ...call.headers, 'webhook-signature': signature },
          rawBody: call.rawBody,
        }),
      );
    }
    signatureError(() =>
      wavespeed.readWebhook({
        headers: { ...call.headers, 'webhook-timestamp': 'yesterday' },
        rawBody: call.rawBody,
      }),
    );
  });

  it('accepts one good entry among several (key rotation)', () => {
    const call = signed(completedBody);
    const headers = {
      ...call.headers,
      'webhook-signature': `v3,${'0'.repeat(64)} ${call.headers['webhook-signature']}`,
    };
    expect(provider().readWebhook({ headers, rawBody: call.rawBody }).providerJobId).toBe('pred-1');
  });

  it('refuses every webhook when no secret is configured', () => {
    for (const webhookSecret of [null, undefined, '']) {
      const error = signatureError(() =>
        provider({ webhookSecret }).readWebhook(signed(completedBody)),
      );
      expect(error.message).toBe('no webhook secret configured');
    }
  });

  it('a well-signed body that is not a prediction is a (non-retryable) provider error', () => {
    for (const body of ['not json', '{"hello":1}', '[]']) {
      let caught: unknown;
      try {
        provider().readWebhook(signed(body));
      } catch (error) {
        caught = error;
      }
      thrown.push(caught);
      expect(caught).toBeInstanceOf(ProviderError);
      expect((caught as ProviderError).retryable).toBe(false);
    }
  });
});

describe('wavespeed provider: secrets', () => {
  it('no thrown error in this file holds the API key', () => {
    expect(thrown.length).toBeGreaterThan(20);
    for (const error of thrown) {
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).not.toContain(fake.apiKey);
      expect(String((error as Error).stack)).not.toContain(fake.apiKey);
    }
  });
});
