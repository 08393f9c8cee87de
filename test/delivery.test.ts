import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type ChatOutcome,
  type ChatTarget,
  chunkEvenly,
  DeliveryError,
  type DeliveryImage,
  type FailureReason,
  TelegramDelivery,
} from '../src/delivery/telegram.ts';
import {
  type DeliveryWebhookEvent,
  deliveryWebhookId,
  signDeliveryWebhook,
  verifyDeliveryWebhook,
  WebhookDelivery,
} from '../src/delivery/webhook.ts';
import { loadTexts } from '../src/locales/index.ts';
import { type FakeTelegram, startFakeTelegram } from './fakes/telegram-api.ts';

const TOKEN = '123456789:AAdelivery-test-token_xyz';
const CHAT_ID = 700_100_200;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'delivery-test-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function storedFile(name: string, size: number): string {
  const path = join(dir, name);
  writeFileSync(path, randomBytes(size));
  return path;
}

const texts = loadTexts('en');
const t = (language: string, key: string, variables?: Record<string, string | number>) =>
  texts.t(language, key, variables);

/** The user's own private chat, as a generation without the bot's `telegram` is delivered to. */
const privateChat: ChatTarget = {
  chatId: CHAT_ID,
  replyToMessageId: null,
  statusMessageId: null,
  language: 'en',
};

let ids = 0;
/** A fresh generation id (the buttons' callback_data carries it, so it must be a UUID). */
function generationId(): string {
  ids += 1;
  return `0b5f2f0e-3c1d-4e8a-9f00-${ids.toString(16).padStart(12, '0')}`;
}

function succeeded(
  images: DeliveryImage[],
  overrides: Partial<Extract<ChatOutcome, { status: 'succeeded' }>> = {},
): Extract<ChatOutcome, { status: 'succeeded' }> {
  return {
    status: 'succeeded',
    generationId: generationId(),
    modelName: 'Flux',
    cost: { credits: 3 },
    images,
    ...overrides,
  };
}

function failed(
  refunded: Extract<ChatOutcome, { status: 'failed' }>['refunded'],
  reason: FailureReason = 'refused',
): Extract<ChatOutcome, { status: 'failed' }> {
  return { status: 'failed', generationId: generationId(), reason, refunded };
}

/** The three buttons under a result, in `language`. */
function buttons(id: string, language = 'en') {
  return {
    inline_keyboard: [
      [
        { text: t(language, 'button-regenerate'), callback_data: `res:r:${id}` },
        { text: t(language, 'button-edit'), callback_data: `res:e:${id}` },
        { text: t(language, 'button-original'), callback_data: `res:o:${id}` },
      ],
    ],
  };
}

async function caught(promise: Promise<unknown>): Promise<DeliveryError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(DeliveryError);
    return err as DeliveryError;
  }
  throw new Error('expected the delivery to fail');
}

describe('TelegramDelivery', () => {
  let fake: FakeTelegram;
  let delivery: TelegramDelivery;

  beforeEach(async () => {
    fake = await startFakeTelegram({ token: TOKEN });
    delivery = new TelegramDelivery({ botToken: TOKEN, apiRoot: fake.apiRoot, timeoutSeconds: 5 });
  });
  afterEach(async () => {
    await fake.close();
  });

  it('sends one image by URL as a photo: the model and its cost as caption, the three buttons', async () => {
    const outcome = succeeded([{ url: 'https://cdn.example.com/gen-url/0.png' }]);
    await delivery.deliverToChat(privateChat, outcome);
    expect(fake.calls).toHaveLength(1);
    const [call] = fake.calls;
    expect(call?.method).toBe('sendPhoto');
    expect(call?.chatId).toBe(CHAT_ID);
    expect(call?.fields).toMatchObject({
      photo: 'https://cdn.example.com/gen-url/0.png',
      caption: 'Flux · 3 credits',
      parse_mode: 'HTML',
      reply_markup: buttons(outcome.generationId),
    });
    // Nothing to reply to in the user's own chat.
    expect(call?.fields.reply_parameters).toBeUndefined();
    expect(call?.files).toEqual([]);
  });

  it('uploads a stored file as multipart and the fake receives all of its bytes', async () => {
    const path = storedFile('gen-file.png', 54_321);
    await delivery.deliverToChat(
      privateChat,
      succeeded([{ path, mimeType: 'image/png' }], { cost: { free: true } }),
    );
    expect(fake.calls).toHaveLength(1);
    const [call] = fake.calls;
    expect(call?.method).toBe('sendPhoto');
    expect(call?.chatId).toBe(CHAT_ID);
    expect(call?.fields.caption).toBe(
      t('en', 'delivery-result-caption', { model: 'Flux', cost: t('en', 'delivery-cost-free') }),
    );
    // grammY names every upload with a random field and points at it with attach://.
    expect(call?.files).toEqual([
      { field: expect.any(String), filename: 'gen-file.png', size: 54_321 },
    ]);
    expect(call?.fields.photo).toBe(`attach://${call?.files[0]?.field}`);
  });

  it('sends a stored file over the 10 MB photo limit as a document, with its caption and buttons', async () => {
    const path = storedFile('big', 10 * 1024 * 1024 + 1);
    const outcome = succeeded([{ path, mimeType: 'image/png' }]);
    await delivery.deliverToChat(privateChat, outcome);
    const [call] = fake.calls;
    expect(call?.method).toBe('sendDocument');
    expect(call?.files).toEqual([
      { field: expect.any(String), filename: 'image-1.png', size: 10 * 1024 * 1024 + 1 },
    ]);
    expect(call?.fields.document).toBe(`attach://${call?.files[0]?.field}`);
    expect(call?.fields).toMatchObject({
      caption: 'Flux · 3 credits',
      reply_markup: buttons(outcome.generationId),
    });
  });

  it('sends several images as one media group, then the caption with the buttons as a message', async () => {
    const path = storedFile('gen-group-2.webp', 2_048);
    const outcome = succeeded([
      { url: 'https://cdn.example.com/gen-group/0.png' },
      { url: 'https://cdn.example.com/gen-group/1.png' },
      { path, mimeType: 'image/webp' },
    ]);
    await delivery.deliverToChat(privateChat, outcome);
    expect(fake.calls.map((c) => c.method)).toEqual(['sendMediaGroup', 'sendMessage']);
    const [call, message] = fake.calls;
    const media = call?.fields.media as { type: string; media: string; caption?: string }[];
    expect(media).toHaveLength(3);
    expect(media.map((m) => m.type)).toEqual(['photo', 'photo', 'photo']);
    expect(media.map((m) => m.caption)).toEqual([undefined, undefined, undefined]);
    expect(media[2]?.media).toMatch(/^attach:\/\//);
    expect(call?.files).toHaveLength(1);
    expect(call?.files[0]?.size).toBe(2_048);
    expect(`attach://${call?.files[0]?.field}`).toBe(media[2]?.media);
    expect(message?.fields).toMatchObject({
      text: 'Flux · 3 credits',
      parse_mode: 'HTML',
      reply_markup: buttons(outcome.generationId),
    });
  });

  it('splits more than ten images into albums of 2-10 and says the caption once', async () => {
    const images = Array.from({ length: 11 }, (_, i) => ({
      url: `https://cdn.example.com/many/${i}.png`,
    }));
    await delivery.deliverToChat(privateChat, succeeded(images));
    expect(fake.calls.map((c) => c.method)).toEqual([
      'sendMediaGroup',
      'sendMediaGroup',
      'sendMessage',
    ]);
    const sizes = fake.calls.slice(0, 2).map((c) => (c.fields.media as unknown[]).length);
    expect(sizes).toEqual([6, 5]);
    const captions = fake.calls
      .slice(0, 2)
      .flatMap((c) => (c.fields.media as { caption?: string }[]).map((m) => m.caption));
    expect(captions.filter((c) => c !== undefined)).toEqual([]);
    expect(fake.calls[2]?.fields.text).toBe('Flux · 3 credits');
    expect(chunkEvenly([...Array(21).keys()], 10).map((c) => c.length)).toEqual([7, 7, 7]);
  });

  it('cuts a caption over the 1024-character limit, never inside a surrogate pair', async () => {
    await delivery.deliverToChat(
      privateChat,
      succeeded([{ url: 'https://cdn.example.com/long.png' }], {
        modelName: 'x'.repeat(1023) + '😀'.repeat(5),
      }),
    );
    await delivery.deliverToChat(
      privateChat,
      succeeded([{ url: 'https://cdn.example.com/emoji.png' }], {
        modelName: '😀'.repeat(600),
      }),
    );
    const [long, emoji] = fake.calls.map((call) => call.fields.caption as string);
    expect(long?.length).toBeLessThanOrEqual(1024);
    expect(long?.endsWith('…')).toBe(true);
    expect(emoji?.length).toBeLessThanOrEqual(1024);
    expect(Buffer.from(emoji ?? '', 'utf8').toString('utf8')).toBe(emoji); // no lone surrogate
  });

  it('tells the user a generation failed, why in its words, and that the credits came back', async () => {
    await delivery.deliverToChat(privateChat, failed({ credits: 3 }, 'timeout'));
    expect(fake.calls.map((c) => c.method)).toEqual(['sendMessage']);
    expect(fake.calls[0]?.fields).toMatchObject({
      text: [
        t('en', 'delivery-failed', { reason: t('en', 'failure-reason-timeout') }),
        t('en', 'delivery-refunded-credits', { credits: 3 }),
      ].join('\n'),
      parse_mode: 'HTML',
    });
    expect(fake.calls[0]?.fields.reply_parameters).toBeUndefined();
  });

  it('mentions the free generation when a trial was given back, in the chat language', async () => {
    await delivery.deliverToChat({ ...privateChat, language: 'ru' }, failed({ trial: true }));
    expect(fake.calls[0]?.fields.text).toBe(
      [
        t('ru', 'delivery-failed', { reason: t('ru', 'failure-reason-refused') }),
        t('ru', 'delivery-refunded-trial'),
      ].join('\n'),
    );
  });

  it('429 with retry_after is retryable and carries the wait', async () => {
    fake.failNext('sendPhoto', {
      error_code: 429,
      description: 'Too Many Requests: retry after 17',
      retry_after: 17,
    });
    const err = await caught(
      delivery.deliverToChat(privateChat, succeeded([{ url: 'https://cdn.example.com/429.png' }])),
    );
    expect(err.retryable).toBe(true);
    expect(err.retryAfterSeconds).toBe(17);
    expect(err.status).toBe(429);
  });

  it('403 blocked by the user is final', async () => {
    fake.failNext('sendMessage', {
      error_code: 403,
      description: 'Forbidden: bot was blocked by the user',
    });
    const err = await caught(delivery.deliverToChat(privateChat, failed(null)));
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('bot was blocked by the user');
  });

  it('400 chat not found is final', async () => {
    fake.failNext('sendPhoto', { error_code: 400, description: 'Bad Request: chat not found' });
    const err = await caught(
      delivery.deliverToChat(privateChat, succeeded([{ url: 'https://cdn.example.com/400.png' }])),
    );
    expect(err.retryable).toBe(false);
    expect(err.status).toBe(400);
  });

  it('500 is retryable, and the next attempt goes through', async () => {
    fake.failNext('sendMediaGroup', { error_code: 500, description: 'Internal Server Error' });
    const outcome = succeeded([
      { path: storedFile('gen-500-a.png', 1_000), mimeType: 'image/png' },
      { path: storedFile('gen-500-b.png', 2_000), mimeType: 'image/png' },
    ]);
    const err = await caught(delivery.deliverToChat(privateChat, outcome));
    expect(err.retryable).toBe(true);
    // A retry uploads the files again (grammY consumes an InputFile per request).
    await delivery.deliverToChat(privateChat, outcome);
    expect(
      fake.calls
        .filter((c) => c.method === 'sendMediaGroup')
        .map((c) => c.files.map((f) => f.size)),
    ).toEqual([
      [1_000, 2_000],
      [1_000, 2_000],
    ]);
  });

  it('uploads images held as bytes (read from the S3 store) under names that tell their type', async () => {
    await delivery.deliverToChat(
      privateChat,
      succeeded([
        { data: randomBytes(1_500), mimeType: 'image/jpeg' },
        { data: randomBytes(2_500), mimeType: 'image/png' },
      ]),
    );
    const group = fake.calls.filter((c) => c.method === 'sendMediaGroup').at(-1);
    expect(group?.files.map((f) => [f.filename, f.size])).toEqual([
      ['image-1.jpg', 1_500],
      ['image-2.png', 2_500],
    ]);
  });

  it('a slow API with a short timeout is retryable', async () => {
    fake.delayMs(1_000);
    const quick = new TelegramDelivery({
      botToken: TOKEN,
      apiRoot: fake.apiRoot,
      timeoutSeconds: 0.2,
    });
    const err = await caught(quick.deliverToChat(privateChat, failed(null)));
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/timed out/);
    expect(err.message).not.toContain(TOKEN);
  });

  it('a wrong token is final and the token never appears in the error', async () => {
    const wrongToken = '987654321:AAwrong-token-do-not-leak';
    const wrong = new TelegramDelivery({ botToken: wrongToken, apiRoot: `${fake.apiRoot}/` });
    const err = await caught(
      wrong.deliverToChat(privateChat, succeeded([{ url: 'https://cdn.example.com/401.png' }])),
    );
    expect(err.retryable).toBe(false);
    expect(err.status).toBe(401);
    expect(err.message).not.toContain(wrongToken);
    expect(String(err.stack)).not.toContain(wrongToken);
    expect(fake.calls).toHaveLength(0);
  });

  it('an unreachable API is retryable and the token stays out of the message', async () => {
    await fake.close();
    const err = await caught(delivery.deliverToChat(privateChat, failed(null)));
    expect(err.retryable).toBe(true);
    expect(err.message).not.toContain(TOKEN);
    expect(err.message).not.toContain('AAdelivery');
    fake = await startFakeTelegram({ token: TOKEN }); // for afterEach
  });

  it('into a bot chat: an album replies to the prompt, its caption and buttons follow as a message', async () => {
    await delivery.deliverToChat(
      { chatId: CHAT_ID, replyToMessageId: 31, statusMessageId: null, language: 'en' },
      {
        status: 'succeeded',
        generationId: '0b5f2f0e-3c1d-4e8a-9f00-2a7c1e4d5b6a',
        modelName: 'Nano <Banana> & Co',
        cost: { credits: 38 },
        images: [
          { url: 'https://cdn.example.com/a/0.png' },
          { url: 'https://cdn.example.com/a/1.png' },
        ],
      },
    );
    expect(fake.calls.map((call) => call.method)).toEqual(['sendMediaGroup', 'sendMessage']);
    const [album, message] = fake.calls;
    expect(album?.fields.reply_parameters).toEqual({
      message_id: 31,
      allow_sending_without_reply: true,
    });
    // The model's name is escaped for parse_mode HTML (the fake refuses malformed HTML).
    expect(message?.fields).toMatchObject({
      text: 'Nano &lt;Banana&gt; &amp; Co · 38 credits',
      parse_mode: 'HTML',
    });
    const markup = message?.fields.reply_markup as
      | { inline_keyboard: { callback_data: string }[][] }
      | undefined;
    expect(markup?.inline_keyboard[0]?.map((button) => button.callback_data)).toEqual([
      'res:r:0b5f2f0e-3c1d-4e8a-9f00-2a7c1e4d5b6a',
      'res:e:0b5f2f0e-3c1d-4e8a-9f00-2a7c1e4d5b6a',
      'res:o:0b5f2f0e-3c1d-4e8a-9f00-2a7c1e4d5b6a',
    ]);
  });

  it('into a bot chat: 429 is retryable after retry_after, a blocked bot (403) is final', async () => {
    const target = {
      chatId: CHAT_ID,
      replyToMessageId: null,
      statusMessageId: null,
      language: 'uz',
    } as const;
    const outcome = {
      status: 'failed',
      generationId: '0b5f2f0e-3c1d-4e8a-9f00-2a7c1e4d5b6a',
      reason: 'timeout',
      refunded: { trial: true },
    } as const;
    fake.failNext('sendMessage', {
      error_code: 429,
      description: 'Too Many Requests: retry after 7',
      retry_after: 7,
    });
    const throttled = await caught(delivery.deliverToChat(target, outcome));
    expect(throttled).toMatchObject({ retryable: true, retryAfterSeconds: 7, status: 429 });
    fake.failNext('sendMessage', {
      error_code: 403,
      description: 'Forbidden: bot was blocked by the user',
    });
    const blocked = await caught(delivery.deliverToChat(target, outcome));
    expect(blocked).toMatchObject({ retryable: false, status: 403 });
  });

  it('a missing stored file is final and nothing is sent', async () => {
    const err = await caught(
      delivery.deliverToChat(
        privateChat,
        succeeded([{ path: join(dir, 'no-such-file.png'), mimeType: 'image/png' }]),
      ),
    );
    expect(err.retryable).toBe(false);
    expect(fake.calls).toHaveLength(0);
  });
});

describe('WebhookDelivery', () => {
  const secret = 'delivery-webhook-secret-0123456789';
  let server: Server;
  let url: string;
  let status = 200;
  let retryAfter: string | undefined;
  let received: { headers: IncomingHttpHeaders; body: Buffer }[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ headers: req.headers, body: Buffer.concat(chunks) });
        res.writeHead(status, retryAfter === undefined ? {} : { 'retry-after': retryAfter });
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/generation`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  beforeEach(() => {
    status = 200;
    retryAfter = undefined;
    received = [];
  });

  const event: DeliveryWebhookEvent = {
    type: 'generation.succeeded',
    generation_id: '0b7c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3',
    telegram_id: CHAT_ID,
    model: 'flux',
    status: 'succeeded',
    results: [
      { url: 'https://cdn.example.com/0.png', mime_type: 'image/png', width: 1024, height: 768 },
    ],
    error: null,
    refunded: null,
    occurred_at: '2026-11-26T08:00:00.000Z',
  };

  it('posts the JSON event with a Standard Webhooks signature that verifies', async () => {
    await new WebhookDelivery({ url, secret }).deliver(event);
    expect(received).toHaveLength(1);
    const [{ headers, body }] = received as [{ headers: IncomingHttpHeaders; body: Buffer }];
    expect(JSON.parse(body.toString())).toEqual(event);
    expect(headers['content-type']).toBe('application/json');
    expect(headers['webhook-id']).toBe(deliveryWebhookId(event.generation_id, event.type));
    expect(headers['webhook-id']).not.toContain('.');
    const timestamp = Number(headers['webhook-timestamp']);
    expect(Math.abs(timestamp - Date.now() / 1000)).toBeLessThan(5);
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(verifyDeliveryWebhook(secret, headers, body)).toBe(true);
    expect(verifyDeliveryWebhook(secret, headers, body.toString())).toBe(true);
    expect(verifyDeliveryWebhook('another-secret-0123456789', headers, body)).toBe(false);
    // Stale: outside the tolerance.
    expect(verifyDeliveryWebhook(secret, headers, body, 300, (timestamp + 301) * 1000)).toBe(false);
  });

  it('keeps the webhook-id across retries and differs between event types', async () => {
    const delivery = new WebhookDelivery({ url, secret });
    await delivery.deliver(event);
    await delivery.deliver(event);
    expect(received[0]?.headers['webhook-id']).toBe(received[1]?.headers['webhook-id']);
    expect(deliveryWebhookId(event.generation_id, 'generation.failed')).not.toBe(
      received[0]?.headers['webhook-id'],
    );
  });

  it('a tampered body does not verify', async () => {
    await new WebhookDelivery({ url, secret }).deliver(event);
    const [{ headers, body }] = received as [{ headers: IncomingHttpHeaders; body: Buffer }];
    const tampered = body.toString().replace('"model":"flux"', '"model":"flux-pro"');
    expect(tampered).not.toBe(body.toString());
    expect(verifyDeliveryWebhook(secret, headers, tampered)).toBe(false);
    expect(verifyDeliveryWebhook(secret, { ...headers, 'webhook-id': 'other-id' }, body)).toBe(
      false,
    );
  });

  it('signs id.timestamp.body with HMAC-SHA256 (whsec_ secrets are base64 keys)', () => {
    const raw = 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const sig = signDeliveryWebhook(
      `whsec_${raw}`,
      'msg_p5jXN8AQM9LWM0D4loKWxJek',
      1614265330,
      '{"test": 2432232314}',
    );
    // The Standard Webhooks reference libraries' test vector.
    expect(sig).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it('a failed generation event carries the error and the refund', async () => {
    const failed: DeliveryWebhookEvent = {
      ...event,
      type: 'generation.failed',
      status: 'failed',
      results: [],
      error: 'provider refused the prompt',
      refunded: { credits: 2 },
    };
    await new WebhookDelivery({ url, secret }).deliver(failed);
    const body = JSON.parse(received[0]?.body.toString() ?? '{}');
    expect(body).toMatchObject({ type: 'generation.failed', refunded: { credits: 2 } });
  });

  it('a 503 receiver is retryable and its Retry-After is kept', async () => {
    status = 503;
    retryAfter = '120';
    const err = await caught(new WebhookDelivery({ url, secret }).deliver(event));
    expect(err.retryable).toBe(true);
    expect(err.retryAfterSeconds).toBe(120);
    expect(err.status).toBe(503);
  });

  it('a 400 receiver is final', async () => {
    status = 400;
    const err = await caught(new WebhookDelivery({ url, secret }).deliver(event));
    expect(err.retryable).toBe(false);
    expect(err.status).toBe(400);
  });

  it('a receiver that does not answer in time is retryable', async () => {
    const hanging = createServer(() => {
      // never answers
    });
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    const port = (hanging.address() as AddressInfo).port;
    try {
      const err = await caught(
        new WebhookDelivery({ url: `http://127.0.0.1:${port}/`, secret, timeoutMs: 150 }).deliver(
          event,
        ),
      );
      expect(err.retryable).toBe(true);
      expect(err.message).toMatch(/did not answer in time/);
    } finally {
      hanging.closeAllConnections();
      await new Promise((resolve) => hanging.close(resolve));
    }
  });

  it('an unreachable receiver is retryable and the URL stays out of the message', async () => {
    const secretUrl = 'http://127.0.0.1:1/hooks?token=receiver-credential';
    const err = await caught(new WebhookDelivery({ url: secretUrl, secret }).deliver(event));
    expect(err.retryable).toBe(true);
    expect(err.message).not.toContain('receiver-credential');
  });
});
