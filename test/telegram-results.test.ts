import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { TelegramDelivery } from '../src/delivery/telegram.ts';
import { TelegramFiles } from '../src/delivery/telegram-files.ts';
import type { DeliveryChannels } from '../src/jobs/types.ts';
import { loadTexts } from '../src/locales/index.ts';
import { LocalProvider } from '../src/providers/local.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import {
  type FakeTelegram,
  type FakeTelegramCall,
  startFakeTelegram,
} from './fakes/telegram-api.ts';
import { botAuth, buildTestApp, miniAppAuth, TELEGRAM_BOT_TOKEN } from './helpers/app.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';
import { testPhoto } from './helpers/images.ts';
import {
  createTestModel,
  generation,
  submit,
  type TestModel,
  userWithCredits,
  waitFor,
} from './helpers/pipeline.ts';

// The bot's side of a generation, end to end: POST /generations with `telegram` (and tools, which
// work on the photo the user sent), through the worker and the providers, to what the fake Bot
// API receives: the status message edited, the result replying to the prompt in the user's
// language with its buttons, or the failure with what was given back.

const texts = loadTexts('en');
const t = (language: string, key: string, variables?: Record<string, string | number>) =>
  texts.t(language, key, variables);

let database: DatabaseHandle;
let telegram: FakeTelegram;
let app: FastifyInstance;
let imageModel: TestModel;
const scripted = new ScriptedProvider();
// A name of this file's own: no other test's worker claims its jobs.
const local = new LocalProvider({ name: `local-${freshTelegramId()}` });
const tools = new Map<string, TestModel>();

const settled = (g: { status: string }) => g.status === 'succeeded' || g.status === 'failed';

function channels(): DeliveryChannels {
  return {
    telegram: new TelegramDelivery({ botToken: TELEGRAM_BOT_TOKEN, apiRoot: telegram.apiRoot }),
    webhook: null,
    telegramFiles: new TelegramFiles(TELEGRAM_BOT_TOKEN, telegram.apiRoot),
  };
}

beforeAll(async () => {
  database = await sharedDatabase();
  telegram = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
  app = await buildTestApp(
    { TRIAL_GENERATIONS: '1', MAX_PARALLEL_GENERATIONS_PER_USER: '20', DEFAULT_LANGUAGE: 'uz' },
    undefined,
    {
      providers: new ProviderRegistry([scripted, local], 'catalog'),
      delivery: channels(),
      worker: true,
    },
  );
  imageModel = await createTestModel(database.db, {
    provider: scripted.name,
    prices: [{ conditions: {}, credits: 10 }],
  });
  for (const [name, providerModel, parameters] of [
    [
      'upscale',
      'wavespeed-ai/ultimate-image-upscaler',
      [
        {
          name: 'target_resolution',
          label: 'Resolution',
          type: 'enum',
          values: ['2k', '4k', '8k'],
          default: '4k',
        },
      ],
    ],
    ['remove-watermark', 'wavespeed-ai/image-watermark-remover', []],
    [
      'denoise',
      'topaz/image/denoise',
      [
        {
          name: 'model',
          label: 'Strength',
          type: 'enum',
          values: ['Normal', 'Strong', 'Extreme'],
          default: 'Normal',
        },
      ],
    ],
    ['restore', 'topaz/image/restore', []],
    ['enhance', 'topaz/image/enhance', []],
  ] as const) {
    tools.set(
      name,
      await createTestModel(database.db, {
        provider: local.name,
        kind: 'tool',
        providerModel,
        parameters: [...parameters].map((parameter) => ({
          ...parameter,
          values: [...parameter.values],
        })),
        prices: [{ conditions: {}, credits: 5 }],
      }),
    );
  }
});

afterAll(async () => {
  await app?.close();
  await telegram?.close();
});

/** What the bot does before it posts: its "queued" message in the chat, whose id it passes. */
async function statusMessage(chatId: number): Promise<number> {
  const response = await fetch(`${telegram.apiRoot}/bot${TELEGRAM_BOT_TOKEN}/sendMessage`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ chat_id: chatId, text: '⏳' }),
  });
  const answer = (await response.json()) as { ok: boolean; result: { message_id: number } };
  expect(answer.ok).toBe(true);
  return answer.result.message_id;
}

async function deleteMessage(chatId: number, messageId: number): Promise<void> {
  const response = await fetch(`${telegram.apiRoot}/bot${TELEGRAM_BOT_TOKEN}/deleteMessage`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ chat_id: chatId, message_id: messageId }),
  });
  expect(response.status).toBe(200);
}

/** The worker's calls about one chat, once `done` holds for them. */
async function chatCalls(
  chatId: number,
  done: (calls: FakeTelegramCall[]) => boolean,
): Promise<FakeTelegramCall[]> {
  const ours = (call: FakeTelegramCall) =>
    call.chatId === chatId &&
    call.method !== 'deleteMessage' &&
    !(call.method === 'sendMessage' && call.fields.text === '⏳');
  return waitFor(async () => telegram.calls.filter(ours), done);
}

async function user(credits: number): Promise<number> {
  const telegramId = freshTelegramId();
  await userWithCredits(app, telegramId, credits);
  return telegramId;
}

async function finished(id: string) {
  return waitFor(() => generation(app, id), settled);
}

describe('tools: catalog models that work on one image', () => {
  it('refuses a tool without its image (422 naming references), and an image model without a prompt', async () => {
    const telegramId = await user(100);
    const noImage = await submit(app, { telegram_id: telegramId, model: 'upscale' });
    expect(noImage.statusCode, noImage.body).toBe(422);
    expect(noImage.json().errors).toEqual([
      { field: 'body.references', message: expect.stringContaining('exactly one image') },
    ]);
    const twoImages = await submit(app, {
      telegram_id: telegramId,
      model: 'denoise',
      references: ['AgACAgIAAxkBAAIBdGZfileone111', 'AgACAgIAAxkBAAIBdGZfiletwo222'],
    });
    expect(twoImages.statusCode).toBe(422);
    expect(twoImages.json().errors.map((e: { field: string }) => e.field)).toEqual([
      'body.references',
    ]);
    const noPrompt = await submit(app, { telegram_id: telegramId, model: imageModel.key });
    expect(noPrompt.statusCode).toBe(422);
    expect(noPrompt.json().errors).toEqual([
      { field: 'body.prompt', message: 'must not be empty' },
    ]);
    // A tool's prompt is optional but still bounded by the model's limit.
    const long = await submit(app, {
      telegram_id: telegramId,
      model: 'enhance',
      prompt: 'x'.repeat(2001),
      references: ['AgACAgIAAxkBAAIBdGZfileone111'],
    });
    expect(long.statusCode).toBe(422);
    expect(long.json().errors).toEqual([
      { field: 'body.prompt', message: 'must be at most 2000 characters for enhance' },
    ]);
  });

  it('quotes a tool without an image', async () => {
    const telegramId = await user(0);
    const quote = await app.inject({
      method: 'POST',
      url: '/api/v1/generations/quote',
      headers: botAuth,
      payload: {
        telegram_id: telegramId,
        model: 'upscale',
        parameters: { target_resolution: '8k' },
      },
    });
    expect(quote.statusCode, quote.body).toBe(200);
    expect(quote.json()).toMatchObject({ model: 'upscale', price_credits: 60 });
  });

  it('runs each tool on the offline provider on the photo sent: upscale enlarges, the others keep the size; the same photo gives the same bytes', async () => {
    const telegramId = await user(100);
    const photo = await testPhoto('jpeg', 48, 32);
    const fileId = `AgACAgIAAxkBAAI${telegramId}toolphoto`;
    telegram.addFile(fileId, photo);
    const run = async (tool: string, parameters: Record<string, string> = {}) => {
      const accepted = await submit(app, {
        telegram_id: telegramId,
        model: tools.get(tool)?.key,
        parameters,
        references: [fileId],
        payment: 'credits',
      });
      expect(accepted.statusCode, accepted.body).toBe(202);
      expect(accepted.json().prompt).toBe('');
      const done = await finished(accepted.json().id);
      expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
      const image = await app.inject({ url: `/api/v1/generations/${done.id}/images/0` });
      expect(image.statusCode).toBe(200);
      expect(image.headers['content-type']).toBe('image/jpeg');
      const metadata = await sharp(image.rawPayload).metadata();
      return { bytes: image.rawPayload, width: metadata.width, height: metadata.height, done };
    };
    const upscaled = await run('upscale', { target_resolution: '2k' });
    expect({ width: upscaled.width, height: upscaled.height }).toEqual({ width: 96, height: 64 });
    expect(upscaled.done.results[0]).toMatchObject({
      width: 96,
      height: 64,
      mime_type: 'image/jpeg',
    });
    const fourK = await run('upscale');
    expect({ width: fourK.width, height: fourK.height }).toEqual({ width: 144, height: 96 });
    for (const tool of ['remove-watermark', 'denoise', 'restore', 'enhance']) {
      const result = await run(tool);
      expect({ width: result.width, height: result.height }, tool).toEqual({
        width: 48,
        height: 32,
      });
      expect(result.bytes.equals(photo), tool).toBe(false);
    }
    const again = await run('upscale', { target_resolution: '2k' });
    expect(again.bytes.equals(upscaled.bytes)).toBe(true);
  });

  it('fails a tool whose image cannot be read as bad input, and gives the credits back', async () => {
    const telegramId = await user(20);
    const fileId = `BQACAgIAAxkBAAI${telegramId}notanimage`;
    telegram.addFile(fileId, Buffer.from('%PDF-1.4 not a picture'));
    const accepted = await submit(app, {
      telegram_id: telegramId,
      model: tools.get('enhance')?.key,
      references: [fileId],
      payment: 'credits',
      telegram: { chat_id: telegramId, language: 'en' },
    });
    expect(accepted.statusCode, accepted.body).toBe(202);
    const done = await finished(accepted.json().id);
    expect(done).toMatchObject({
      status: 'failed',
      error: { code: 'invalid_input' },
      payment: { refunded: true },
    });
    const [failure] = await chatCalls(telegramId, (calls) => calls.length >= 1);
    expect(failure?.fields.text).toBe(
      `${t('en', 'delivery-failed', { reason: t('en', 'failure-reason-bad-input') })}\n${t('en', 'delivery-refunded-credits', { credits: 5 })}`,
    );
  });
});

describe('deliveries into the bot chat', () => {
  it('edits the status message to running, replies to the prompt with the image, its cost and three buttons, then edits the status to done', async () => {
    const telegramId = await user(50);
    const chatId = -1_001_234_000_000 - (telegramId % 1_000_000);
    const status = await statusMessage(chatId);
    const accepted = await submit(app, {
      telegram_id: telegramId,
      model: imageModel.key,
      prompt: 'instant a <b>bold</b> lighthouse & sea',
      payment: 'credits',
      telegram: {
        chat_id: chatId,
        reply_to_message_id: 4242,
        status_message_id: status,
        language: 'ru',
      },
    });
    expect(accepted.statusCode, accepted.body).toBe(202);
    const id: string = accepted.json().id;
    expect((await finished(id)).status).toBe('succeeded');
    const calls = await chatCalls(chatId, (all) =>
      all.some(
        (call) =>
          call.method === 'editMessageText' && call.fields.text === t('ru', 'delivery-status-done'),
      ),
    );
    expect(calls.map((call) => call.method)).toEqual([
      'editMessageText',
      'sendPhoto',
      'editMessageText',
    ]);
    const [running, photo, done] = calls;
    expect(running?.fields).toMatchObject({
      message_id: status,
      text: t('ru', 'delivery-status-running'),
    });
    expect(photo?.fields).toMatchObject({
      caption: t('ru', 'delivery-result-caption', {
        model: imageModel.key,
        cost: t('ru', 'delivery-cost-credits', { credits: 10 }),
      }),
      parse_mode: 'HTML',
      reply_parameters: { message_id: 4242, allow_sending_without_reply: true },
      reply_markup: {
        inline_keyboard: [
          [
            { text: t('ru', 'button-regenerate'), callback_data: `res:r:${id}` },
            { text: t('ru', 'button-edit'), callback_data: `res:e:${id}` },
            { text: t('ru', 'button-original'), callback_data: `res:o:${id}` },
          ],
        ],
      },
    });
    expect(photo?.files).toHaveLength(1);
    expect(done?.fields).toMatchObject({
      message_id: status,
      text: t('ru', 'delivery-status-done'),
    });
    // Never the user's own chat: the bot asked for this one.
    expect(telegram.calls.filter((call) => call.chatId === telegramId)).toEqual([]);
  });

  it('says a free generation is free, in the user own language when the bot names none', async () => {
    const telegramId = await user(0);
    await database.db.execute(
      sql`UPDATE users SET language = 'en' WHERE telegram_id = ${telegramId}`,
    );
    const accepted = await submit(app, {
      telegram_id: telegramId,
      model: imageModel.key,
      prompt: 'instant a cat',
      telegram: { chat_id: telegramId },
    });
    expect(accepted.statusCode, accepted.body).toBe(202);
    expect(accepted.json().payment.method).toBe('trial');
    const [photo] = await chatCalls(telegramId, (calls) => calls.length >= 1);
    expect(photo?.method).toBe('sendPhoto');
    expect(photo?.fields.caption).toBe(
      t('en', 'delivery-result-caption', {
        model: imageModel.key,
        cost: t('en', 'delivery-cost-free'),
      }),
    );
    // No prompt message to reply to and no status message: just the result.
    expect(photo?.fields.reply_parameters).toBeUndefined();
  });

  it('falls back to DEFAULT_LANGUAGE (uz here) without a language of the request or the user', async () => {
    const telegramId = await user(20);
    const accepted = await submit(app, {
      telegram_id: telegramId,
      model: imageModel.key,
      prompt: 'instant a dog',
      payment: 'credits',
      telegram: { chat_id: telegramId },
    });
    expect(accepted.statusCode, accepted.body).toBe(202);
    const [photo] = await chatCalls(telegramId, (calls) => calls.length >= 1);
    expect(photo?.fields.caption).toBe(
      t('uz', 'delivery-result-caption', {
        model: imageModel.key,
        cost: t('uz', 'delivery-cost-credits', { credits: 10 }),
      }),
    );
  });

  for (const [language, payment] of [
    ['ru', 'credits'],
    ['uz', 'trial'],
  ] as const) {
    it(`tells a failure in ${language} in the status message: a reason the user understands and what was given back (${payment}), never the provider's words`, async () => {
      const telegramId = await user(payment === 'credits' ? 10 : 0);
      const status = await statusMessage(telegramId);
      const accepted = await submit(app, {
        telegram_id: telegramId,
        model: imageModel.key,
        prompt: 'refuse something the filter dislikes',
        payment,
        telegram: {
          chat_id: telegramId,
          reply_to_message_id: 7,
          status_message_id: status,
          language,
        },
      });
      expect(accepted.statusCode, accepted.body).toBe(202);
      const done = await finished(accepted.json().id);
      expect(done).toMatchObject({
        status: 'failed',
        error: { code: 'provider_failed', message: 'content policy' },
        payment: { refunded: true },
      });
      const refund =
        payment === 'credits'
          ? t(language, 'delivery-refunded-credits', { credits: 10 })
          : t(language, 'delivery-refunded-trial');
      const expected = `${t(language, 'delivery-failed', { reason: t(language, 'failure-reason-refused') })}\n${refund}`;
      const calls = await chatCalls(telegramId, (all) =>
        all.some((call) => call.fields.text === expected),
      );
      expect(calls.map((call) => [call.method, call.fields.message_id])).toEqual([
        ['editMessageText', status],
        ['editMessageText', status],
      ]);
      expect(calls[0]?.fields.text).toBe(t(language, 'delivery-status-running'));
      expect(calls[1]?.fields.parse_mode).toBe('HTML');
      for (const call of calls) expect(JSON.stringify(call.fields)).not.toContain('content policy');
    });
  }

  it('says a failure in a new message replying to the prompt when the status message is gone', async () => {
    const telegramId = await user(10);
    const status = await statusMessage(telegramId);
    await deleteMessage(telegramId, status);
    const accepted = await submit(app, {
      telegram_id: telegramId,
      model: imageModel.key,
      prompt: 'refuse again',
      payment: 'credits',
      telegram: {
        chat_id: telegramId,
        reply_to_message_id: 99,
        status_message_id: status,
        language: 'en',
      },
    });
    expect(accepted.statusCode, accepted.body).toBe(202);
    await finished(accepted.json().id);
    const calls = await chatCalls(telegramId, (all) =>
      all.some((call) => call.method === 'sendMessage'),
    );
    const sent = calls.find((call) => call.method === 'sendMessage');
    expect(sent?.fields).toMatchObject({
      text: `${t('en', 'delivery-failed', { reason: t('en', 'failure-reason-refused') })}\n${t('en', 'delivery-refunded-credits', { credits: 10 })}`,
      parse_mode: 'HTML',
      reply_parameters: { message_id: 99, allow_sending_without_reply: true },
    });
  });

  it('still makes and delivers the image when the running edit fails', async () => {
    const telegramId = await user(10);
    const status = await statusMessage(telegramId);
    telegram.failNext('editMessageText', {
      error_code: 403,
      description: 'Forbidden: bot was blocked by the user',
    });
    const accepted = await submit(app, {
      telegram_id: telegramId,
      model: imageModel.key,
      prompt: 'instant despite it all',
      payment: 'credits',
      telegram: { chat_id: telegramId, status_message_id: status, language: 'en' },
    });
    expect(accepted.statusCode, accepted.body).toBe(202);
    expect((await finished(accepted.json().id)).status).toBe('succeeded');
    const calls = await chatCalls(telegramId, (all) =>
      all.some((call) => call.method === 'sendPhoto'),
    );
    expect(calls.find((call) => call.method === 'sendPhoto')).toBeDefined();
  });

  it('without `telegram` delivers to the user own chat in its language: the model, its cost and the buttons, nothing to reply to or edit', async () => {
    const telegramId = await user(10);
    await database.db.execute(
      sql`UPDATE users SET language = 'en' WHERE telegram_id = ${telegramId}`,
    );
    const accepted = await submit(app, {
      telegram_id: telegramId,
      model: imageModel.key,
      prompt: 'instant a plain delivery',
      payment: 'credits',
    });
    expect(accepted.statusCode, accepted.body).toBe(202);
    const id: string = accepted.json().id;
    expect((await finished(id)).status).toBe('succeeded');
    const calls = await chatCalls(telegramId, (all) => all.length >= 1);
    expect(calls.map((call) => call.method)).toEqual(['sendPhoto']);
    const [photo] = calls;
    expect(photo?.fields).toMatchObject({
      caption: t('en', 'delivery-result-caption', {
        model: imageModel.key,
        cost: t('en', 'delivery-cost-credits', { credits: 10 }),
      }),
      parse_mode: 'HTML',
      reply_markup: {
        inline_keyboard: [
          [
            { text: t('en', 'button-regenerate'), callback_data: `res:r:${id}` },
            { text: t('en', 'button-edit'), callback_data: `res:e:${id}` },
            { text: t('en', 'button-original'), callback_data: `res:o:${id}` },
          ],
        ],
      },
    });
    expect(photo?.fields.reply_parameters).toBeUndefined();
    expect(JSON.stringify(photo?.fields)).not.toContain('instant a plain delivery');
  });

  it("without `telegram` tells a provider's failure in the user's Telegram language, never the provider's words", async () => {
    const telegramId = freshTelegramId();
    // The user chose no language; its Telegram client is Russian (a regional code).
    const synced = await app.inject({
      method: 'POST',
      url: '/api/v1/users/sync',
      headers: botAuth,
      payload: { telegram_id: telegramId, language_code: 'ru-RU' },
    });
    expect(synced.statusCode, synced.body).toBeLessThan(300);
    const accepted = await submit(app, {
      telegram_id: telegramId,
      model: imageModel.key,
      prompt: 'refuse this without a chat of the bot',
    });
    expect(accepted.statusCode, accepted.body).toBe(202);
    expect(accepted.json().payment.method).toBe('trial');
    const done = await finished(accepted.json().id);
    expect(done).toMatchObject({
      status: 'failed',
      error: { code: 'provider_failed', message: 'content policy' },
      payment: { method: 'trial', refunded: true },
    });
    const calls = await chatCalls(telegramId, (all) => all.length >= 1);
    expect(calls.map((call) => call.method)).toEqual(['sendMessage']);
    expect(calls[0]?.fields).toMatchObject({
      text: `${t('ru', 'delivery-failed', { reason: t('ru', 'failure-reason-refused') })}\n${t('ru', 'delivery-refunded-trial')}`,
      parse_mode: 'HTML',
    });
    expect(calls[0]?.fields.reply_parameters).toBeUndefined();
    expect(JSON.stringify(calls[0]?.fields)).not.toContain('content policy');
  });

  it('refuses a chat id of 0, and a Mini App user naming another chat', async () => {
    const telegramId = await user(10);
    const zero = await submit(app, {
      telegram_id: telegramId,
      model: imageModel.key,
      prompt: 'instant x',
      telegram: { chat_id: 0 },
    });
    expect(zero.statusCode).toBe(422);
    expect(zero.json().errors).toEqual([
      { field: 'body.telegram.chat_id', message: 'must not be 0' },
    ]);
    const miniApp = await submit(
      app,
      {
        telegram_id: telegramId,
        model: imageModel.key,
        prompt: 'instant x',
        telegram: { chat_id: telegramId + 1 },
      },
      miniAppAuth(telegramId),
    );
    expect(miniApp.statusCode, miniApp.body).toBe(403);
    const ownChat = await submit(
      app,
      {
        telegram_id: telegramId,
        model: imageModel.key,
        prompt: 'instant x',
        payment: 'credits',
        telegram: { chat_id: telegramId },
      },
      miniAppAuth(telegramId),
    );
    expect(ownChat.statusCode, ownChat.body).toBe(202);
    const unknownField = await submit(app, {
      telegram_id: telegramId,
      model: imageModel.key,
      prompt: 'instant x',
      telegram: { chat_id: telegramId, thread_id: 5 },
    });
    expect(unknownField.statusCode).toBe(422);
  });
});
