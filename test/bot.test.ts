import type { AddressInfo } from 'node:net';
import type { InlineKeyboardMarkup } from 'grammy/types';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { retryKeptPayments } from '../src/bot/flows/payments.ts';
import type { DatabaseHandle } from '../src/db/client.ts';
import { encodePng } from '../src/providers/png.ts';
import type { FakeTelegramCall } from './fakes/telegram-api.ts';
import { adminAuth, buildTestApp } from './helpers/app.ts';
import {
  type BotHarness,
  callbackUpdate,
  photoUpdate,
  preCheckoutUpdate,
  refundedPaymentUpdate,
  startBotHarness,
  successfulPaymentUpdate,
  telegramUser,
  textUpdate,
} from './helpers/bot.ts';
import { freshTelegramId, openTestDatabase, silentLogger } from './helpers/database.ts';
import { balanceOf, waitFor } from './helpers/pipeline.ts';

/**
 * The bot end to end, offline: createBot as production builds it, a real app (and its worker, on
 * the offline provider) over HTTP, and a fake Bot API recording every call.
 */

let harness: BotHarness;

beforeAll(async () => {
  harness = await startBotHarness((telegramApiRoot) =>
    buildTestApp(
      {
        TELEGRAM_API_ROOT: telegramApiRoot,
        GENERATION_PROVIDER: 'local',
        TRIAL_GENERATIONS: '1',
        STARS_PACKAGES: 'small:100:50,big:1000:400',
        PROVIDER_POLL_SECONDS: '1',
        SUPPORT_CONTACT: '@support_test',
      },
      undefined,
      { worker: true },
    ),
  );
});
afterAll(() => harness?.close());

function callsTo(chatId: number, method?: string, on: BotHarness = harness): FakeTelegramCall[] {
  return on.telegram.calls.filter(
    (call) =>
      (call.chatId === chatId || call.fields.chat_id === String(chatId)) &&
      (method === undefined || call.method === method),
  );
}

function lastTo(chatId: number, method: string, on: BotHarness = harness): FakeTelegramCall {
  const call = callsTo(chatId, method, on).at(-1);
  if (!call) throw new Error(`no ${method} to ${chatId}`);
  return call;
}

type Button = { text: string; callback_data?: string };
function buttons(call: FakeTelegramCall): Button[] {
  const markup = call.fields.reply_markup as { inline_keyboard?: Button[][] } | undefined;
  return markup?.inline_keyboard?.flat() ?? [];
}

function buttonData(call: FakeTelegramCall, prefix: string): string {
  const found = buttons(call).find((button) => button.callback_data?.startsWith(prefix));
  if (!found?.callback_data) throw new Error(`no ${prefix} button in ${JSON.stringify(call)}`);
  return found.callback_data;
}

function lastCallOf(method: string): FakeTelegramCall | undefined {
  return harness.telegram.calls.filter((call) => call.method === method).at(-1);
}

async function generationsOf(telegramId: number) {
  const page = await harness.api.generations(telegramId, { limit: 50 });
  return page.generations;
}

describe('/start', () => {
  it('creates the user and greets them by name in their Telegram language, with the main menu', async () => {
    const user = telegramUser(freshTelegramId(), 'ru', 'Мария <script>');
    await harness.bot.handleUpdate(textUpdate(user, '/start'));
    const greeting = lastTo(user.id, 'sendMessage');
    expect(greeting.fields.text).toContain('Привет, Мария &lt;script&gt;!');
    expect(greeting.fields.parse_mode).toBe('HTML');
    expect(buttons(greeting).map((b) => b.callback_data)).toEqual([
      'menu:generate',
      'menu:balance',
      'menu:topup',
      'menu:history',
      'menu:referral',
      'menu:language',
      'menu:help',
    ]);
    expect(await balanceOf(harness.app, user.id)).toBe(0);
  });

  it('speaks the default language to a user whose Telegram language it does not speak', async () => {
    const user = telegramUser(freshTelegramId(), 'de');
    await harness.bot.handleUpdate(textUpdate(user, '/start'));
    expect(lastTo(user.id, 'sendMessage').fields.text).toContain('Hi, Ada!');
  });
});

describe('generating', () => {
  it('prompt → settings card → a parameter → start (free) → one generation, delivered', async () => {
    const user = telegramUser(freshTelegramId(), 'en');
    // A model of the shipped catalog with a choice of values (other tests add models of their own).
    await harness.api.syncUser({ telegram_id: user.id });
    await harness.api.updateUser(user.id, { preferences: { model: 'nano-banana' } });
    const prompt = textUpdate(user, 'a lighthouse at dusk');
    await harness.bot.handleUpdate(prompt);
    const card = lastTo(user.id, 'sendMessage');
    expect(card.fields.reply_parameters).toMatchObject({
      message_id: prompt.message?.message_id,
    });
    expect(card.fields.text).toContain('a lighthouse at dusk');
    const start = buttons(card).at(-1);
    expect(start?.text).toBe('🚀 Start — free');

    // Open the first parameter and pick its second value.
    const parameterButton = buttonData(card, 'g:');
    const draftId = parameterButton.split(':')[1];
    await harness.bot.handleUpdate(callbackUpdate(user, `g:${draftId}:p:0`));
    const menu = lastTo(user.id, 'editMessageText');
    const values = buttons(menu).filter((b) => b.callback_data?.includes(':v:0:'));
    expect(values.length).toBeGreaterThan(1);
    expect(values.filter((b) => b.text.startsWith('✅ '))).toHaveLength(1);
    const second = values[1];
    await harness.bot.handleUpdate(callbackUpdate(user, second?.callback_data ?? ''));
    const updated = lastTo(user.id, 'editMessageText');
    const chosen = second?.text.replace('✅ ', '') ?? '';
    expect(buttons(updated).some((b) => b.text.endsWith(`: ${chosen}`))).toBe(true);

    // Start, twice (a double tap), and the same update redelivered: one generation.
    const go = callbackUpdate(user, `g:${draftId}:go`);
    await harness.bot.handleUpdate(go);
    await harness.bot.handleUpdate(callbackUpdate(user, `g:${draftId}:go`));
    await harness.bot.handleUpdate(go);
    const generations = await generationsOf(user.id);
    expect(generations).toHaveLength(1);
    expect(generations[0]).toMatchObject({
      prompt: 'a lighthouse at dusk',
      payment: { method: 'trial' },
    });
    expect(Object.values(generations[0]?.parameters ?? {})).toContain(chosen);
    expect(
      harness.telegram.calls.some(
        (call) =>
          call.method === 'answerCallbackQuery' &&
          call.fields.text === 'This one is already on its way.',
      ),
    ).toBe(true);

    const photo = await waitFor(
      async () => callsTo(user.id, 'sendPhoto'),
      (calls) => calls.length > 0,
    );
    expect(photo[0]?.files).toHaveLength(1);
  });

  it('a photo with a caption is an edit with that photo as the reference', async () => {
    const user = telegramUser(freshTelegramId(), 'en');
    await harness.app.inject({
      method: 'POST',
      url: `/api/v1/admin/users/${user.id}/credits`,
      headers: adminAuth,
      payload: { amount: 500, reason: 'test' },
    });
    const photo = photoUpdate(user, 'AgACAgIAAxkBAAIBYmZ0ZXN0LXBob3RvLWxhcmdl', 'make it snowy');
    await harness.bot.handleUpdate(photo);
    const card = lastTo(user.id, 'sendMessage');
    expect(card.fields.text).toContain('1 image to edit');
    expect(card.fields.text).toContain('make it snowy');
    const go = buttonData(card, 'g:');
    const draftId = go.split(':')[1];
    await harness.bot.handleUpdate(callbackUpdate(user, `g:${draftId}:go`));
    const [generation] = await generationsOf(user.id);
    expect(generation?.references).toEqual([
      { kind: 'telegram_file', value: 'AgACAgIAAxkBAAIBYmZ0ZXN0LXBob3RvLWxhcmdl' },
    ]);
  });

  it('without credits or free generations: says so, with a top-up button', async () => {
    const user = telegramUser(freshTelegramId(), 'en');
    // The one free generation is spent first.
    await harness.bot.handleUpdate(textUpdate(user, 'first'));
    let draft = buttonData(lastTo(user.id, 'sendMessage'), 'g:').split(':')[1];
    await harness.bot.handleUpdate(callbackUpdate(user, `g:${draft}:go`));
    await harness.bot.handleUpdate(textUpdate(user, 'second'));
    const card = lastTo(user.id, 'sendMessage');
    expect(buttons(card).at(-1)?.text).toMatch(/^🚀 Start — \d+ credits$/);
    draft = buttonData(card, 'g:').split(':')[1];
    await harness.bot.handleUpdate(callbackUpdate(user, `g:${draft}:go`));
    const refusal = lastTo(user.id, 'sendMessage');
    expect(refusal.fields.text).toMatch(
      /^Not enough credits: this costs \d+, your balance is 0\.$/,
    );
    expect(buttons(refusal).map((b) => b.callback_data)).toEqual(['menu:topup']);
    expect(await generationsOf(user.id)).toHaveLength(1);
  });
});

describe('the status card', () => {
  let late: BotHarness;
  let database: DatabaseHandle;
  beforeAll(async () => {
    // A database of its own, so that only this app's worker (delivering to this fake) runs its jobs.
    database = await openTestDatabase.embedded();
    // The API's answer to a start reaches the bot only once the image is in the chat: the worker
    // has edited the card to "drawing" and "done" before the bot learns the generation exists.
    late = await startBotHarness(
      (telegramApiRoot) =>
        buildTestApp(
          {
            TELEGRAM_API_ROOT: telegramApiRoot,
            GENERATION_PROVIDER: 'local',
            TRIAL_GENERATIONS: '0',
            PROVIDER_POLL_SECONDS: '1',
          },
          database,
          { worker: true },
        ),
      {
        fetch: async (input, init) => {
          const request = new Request(input, init);
          const response = await fetch(request);
          if (request.method === 'POST' && response.status === 202) {
            await waitFor(
              async () => late.telegram.calls.filter((call) => call.fields.text === '✅ Done'),
              (calls) => calls.length > 0,
            );
          }
          return response;
        },
      },
    );
  });
  afterAll(async () => {
    await late?.close();
    await database?.close();
  });

  it('ends as the worker left it, even when the API answers the start after the delivery', async () => {
    const user = telegramUser(freshTelegramId(), 'en');
    await late.api.syncUser({ telegram_id: user.id });
    await late.app.inject({
      method: 'POST',
      url: `/api/v1/admin/users/${user.id}/credits`,
      headers: adminAuth,
      payload: { amount: 500, reason: 'test' },
    });
    await late.bot.handleUpdate(textUpdate(user, 'a quiet harbour'));
    const card = callsTo(user.id, 'sendMessage', late).at(-1) as FakeTelegramCall;
    const start = buttons(card).at(-1)?.callback_data ?? '';
    await late.bot.handleUpdate(callbackUpdate(user, start));
    const edits = callsTo(user.id, 'editMessageText', late).map((call) => call.fields.text);
    expect(edits[0]).toBe('⏳ Queued');
    expect(edits.at(-1)).toBe('✅ Done');
  });

  it('a refused start puts the card back as it was, buttons and all', async () => {
    const user = telegramUser(freshTelegramId(), 'en');
    await late.bot.handleUpdate(textUpdate(user, 'a lighthouse'));
    const card = callsTo(user.id, 'sendMessage', late).at(-1) as FakeTelegramCall;
    const start = buttons(card).at(-1)?.callback_data ?? '';
    // As Telegram sends the tapped message: plain text with entities, and its buttons.
    const tapped = {
      message_id: 777,
      text: 'Nano Banana — 40 credits',
      entities: [{ type: 'bold' as const, offset: 0, length: 11 }],
      reply_markup: card.fields.reply_markup as InlineKeyboardMarkup,
    };
    await late.bot.handleUpdate(callbackUpdate(user, start, tapped));
    const toUser = callsTo(user.id, undefined, late);
    const restored = toUser.filter((call) => call.method === 'editMessageText').at(-1);
    expect(restored?.fields).toMatchObject({
      message_id: 777,
      text: tapped.text,
      entities: tapped.entities,
      reply_markup: tapped.reply_markup,
    });
    expect(toUser.at(-1)?.fields.text).toMatch(/^Not enough credits/);
    expect(await late.api.generations(user.id, { limit: 5 })).toMatchObject({ generations: [] });
  });
});

describe('topping up with Telegram Stars', () => {
  it('packages → invoice → pre-checkout checked → payment confirmed once → refund takes it back', async () => {
    const user = telegramUser(freshTelegramId(), 'en');
    await harness.bot.handleUpdate(textUpdate(user, '/start'));
    await harness.bot.handleUpdate(callbackUpdate(user, 'menu:topup'));
    const offers = lastTo(user.id, 'sendMessage');
    expect(buttons(offers).map((b) => [b.text, b.callback_data])).toEqual([
      ['100 credits — 50 ⭐', 'topup:small'],
      ['1,000 credits — 400 ⭐', 'topup:big'],
    ]);
    await harness.bot.handleUpdate(callbackUpdate(user, 'topup:small'));
    const invoice = lastTo(user.id, 'sendInvoice');
    expect(invoice.fields).toMatchObject({
      currency: 'XTR',
      prices: [{ label: '100 credits', amount: 50 }],
    });
    const payload = String(invoice.fields.payload);

    await harness.bot.handleUpdate(preCheckoutUpdate(user, payload, 49));
    expect(lastCallOf('answerPreCheckoutQuery')).toMatchObject({
      method: 'answerPreCheckoutQuery',
      fields: {
        ok: false,
        error_message: 'This offer is no longer available. Open the top-up menu again.',
      },
    });
    await harness.bot.handleUpdate(preCheckoutUpdate(user, 'forged-payload', 50));
    expect(lastCallOf('answerPreCheckoutQuery')?.fields.ok).toBe(false);
    await harness.bot.handleUpdate(preCheckoutUpdate(user, payload, 50));
    expect(lastCallOf('answerPreCheckoutQuery')).toMatchObject({
      method: 'answerPreCheckoutQuery',
      fields: { ok: true },
    });

    const paid = successfulPaymentUpdate(user, payload, 50, `charge-${user.id}`);
    await harness.bot.handleUpdate(paid);
    await harness.bot.handleUpdate(paid);
    expect(await balanceOf(harness.app, user.id)).toBe(100);
    expect(lastTo(user.id, 'sendMessage').fields.text).toBe(
      '✅ Payment received: +100 credits.\nBalance: <b>100</b> credits.',
    );

    await harness.bot.handleUpdate(refundedPaymentUpdate(user, 50, `charge-${user.id}`));
    expect(await balanceOf(harness.app, user.id)).toBe(0);
    expect(lastTo(user.id, 'sendMessage').fields.text).toContain('100 credits were taken back');
  });

  it('a payment is confirmed even while the user is being throttled', async () => {
    const throttled = await startBotHarness(
      (root) =>
        buildTestApp({ TELEGRAM_API_ROOT: root, STARS_PACKAGES: 'small:100:50' }, undefined, {
          worker: false,
        }),
      { throttlePerMinute: 2 },
    );
    try {
      const user = telegramUser(freshTelegramId(), 'en');
      for (let i = 0; i < 5; i++) await throttled.bot.handleUpdate(textUpdate(user, '/balance'));
      expect(
        throttled.telegram.calls.filter(
          (call) => call.fields.text === 'Too fast — wait a few seconds.',
        ),
      ).toHaveLength(1);
      const [offer] = await throttled.api.starsPackages();
      await throttled.bot.handleUpdate(
        preCheckoutUpdate(user, offer?.invoice_payload ?? '', offer?.stars ?? 0),
      );
      expect(
        throttled.telegram.calls.filter((c) => c.method === 'answerPreCheckoutQuery').at(-1)?.fields
          .ok,
      ).toBe(true);
      await throttled.bot.handleUpdate(
        successfulPaymentUpdate(user, offer?.invoice_payload ?? '', 50, `charge-t-${user.id}`),
      );
      expect(await balanceOf(throttled.app, user.id)).toBe(100);
    } finally {
      await throttled.close();
    }
  });
});

describe('history, balance and help', () => {
  it('lists generations newest first and sends an image again', async () => {
    const user = telegramUser(freshTelegramId(), 'en');
    await harness.bot.handleUpdate(textUpdate(user, 'a red fox'));
    const draft = buttonData(lastTo(user.id, 'sendMessage'), 'g:').split(':')[1];
    await harness.bot.handleUpdate(callbackUpdate(user, `g:${draft}:go`));
    const [generation] = await generationsOf(user.id);
    await waitFor(
      () => harness.api.generation(generation?.id ?? ''),
      (g) => g.status === 'succeeded',
    );
    // The delivery of the image itself comes first.
    await waitFor(
      async () => callsTo(user.id, 'sendPhoto'),
      (calls) => calls.length === 1,
    );
    await harness.bot.handleUpdate(textUpdate(user, '/history'));
    const list = lastTo(user.id, 'sendMessage');
    expect(list.fields.text).toContain('✅');
    expect(list.fields.text).toContain('a red fox');
    const show = buttonData(list, 'h:s:');
    const before = callsTo(user.id, 'sendPhoto').length;
    await harness.bot.handleUpdate(callbackUpdate(user, show));
    expect(callsTo(user.id, 'sendPhoto')).toHaveLength(before + 1);
  });

  it('shows the balance and free generations in the user language', async () => {
    const user = telegramUser(freshTelegramId(), 'uz');
    await harness.bot.handleUpdate(textUpdate(user, '/balance'));
    expect(lastTo(user.id, 'sendMessage').fields.text).toContain('Balans: <b>0</b> kredit');
  });

  it('lists prices and the support contact', async () => {
    const user = telegramUser(freshTelegramId(), 'en');
    await harness.bot.handleUpdate(textUpdate(user, '/help'));
    const help = String(lastTo(user.id, 'sendMessage').fields.text);
    expect(help).toMatch(/• .+: \d+ credits/);
    expect(help).toContain('@support_test');
  });
});

describe('when the API is down', () => {
  it('answers "try again in a moment", keeps a payment or a refund, and applies it once the API is back', async () => {
    const down = await startBotHarness((root) =>
      buildTestApp({ TELEGRAM_API_ROOT: root, STARS_PACKAGES: 'small:100:50' }),
    );
    try {
      const user = telegramUser(freshTelegramId(), 'en');
      const [offer] = await down.api.starsPackages();
      const { port } = down.app.server.address() as AddressInfo;
      await down.app.close();

      await down.bot.handleUpdate(textUpdate(user, '/balance'));
      expect(lastCall(down, user.id, 'sendMessage').fields.text).toBe(
        'The service is busy. Try again in a moment.',
      );
      // Telegram has taken the Stars: the confirm is kept until the API takes it.
      await down.bot.handleUpdate(
        successfulPaymentUpdate(user, offer?.invoice_payload ?? '', 50, `charge-d-${user.id}`),
      );
      expect(await down.store.keys('pending-confirm:')).toEqual([
        `pending-confirm:charge-d-${user.id}`,
      ]);

      const told: [number, string, Record<string, number>][] = [];
      const retries = retryKeptPayments({
        api: down.api,
        store: down.store,
        logger: silentLogger,
        tell: async (telegramId, _language, key, variables) => {
          told.push([telegramId, key, variables]);
        },
      });
      const back = await buildTestApp({ STARS_PACKAGES: 'small:100:50' });
      await back.listen({ port, host: '127.0.0.1' });
      try {
        await retries.runOnce();
        expect(await balanceOf(back, user.id)).toBe(100);
        expect(told).toEqual([[user.id, 'payment-confirmed', { credits: 100, balance: 100 }]]);
        expect(await down.store.keys('pending-confirm:')).toEqual([]);
      } finally {
        await back.close();
      }

      // Telegram refunds it while the API is down again: the refund is kept, then applied once.
      await down.bot.handleUpdate(refundedPaymentUpdate(user, 50, `charge-d-${user.id}`));
      expect(lastCall(down, user.id, 'sendMessage').fields.text).toBe(
        'The service is busy. Try again in a moment.',
      );
      expect(await down.store.keys('pending-refund:')).toEqual([
        `pending-refund:charge-d-${user.id}`,
      ]);
      const again = await buildTestApp({ STARS_PACKAGES: 'small:100:50' });
      await again.listen({ port, host: '127.0.0.1' });
      try {
        await retries.runOnce();
        await retries.runOnce();
        expect(await balanceOf(again, user.id)).toBe(0);
        expect(told.at(-1)).toEqual([user.id, 'payment-refunded', { credits: 100 }]);
        expect(told).toHaveLength(2);
        expect(await down.store.keys('pending-refund:')).toEqual([]);
      } finally {
        await again.close();
      }
    } finally {
      await down.telegram.close();
    }
  });
});

function lastCall(on: BotHarness, chatId: number, method: string): FakeTelegramCall {
  const call = on.telegram.calls.filter((c) => c.chatId === chatId && c.method === method).at(-1);
  if (!call) throw new Error(`no ${method} to ${chatId}`);
  return call;
}

describe('results in the chat', () => {
  it('the image replies to the prompt with its cost and buttons; again, edit and original work', async () => {
    const user = telegramUser(freshTelegramId(), 'en');
    const prompt = textUpdate(user, 'a blue whale');
    await harness.bot.handleUpdate(prompt);
    const draft = buttonData(lastTo(user.id, 'sendMessage'), 'g:').split(':')[1];
    await harness.bot.handleUpdate(callbackUpdate(user, `g:${draft}:go`));
    const [photo] = await waitFor(
      async () => callsTo(user.id, 'sendPhoto'),
      (calls) => calls.length > 0,
    );
    if (!photo) throw new Error('no photo');
    expect(photo.fields.reply_parameters).toMatchObject({
      message_id: prompt.message?.message_id,
    });
    expect(String(photo.fields.caption)).toContain('free generation');
    const [generation] = await generationsOf(user.id);
    expect(buttons(photo).map((b) => b.callback_data)).toEqual([
      `res:r:${generation?.id}`,
      `res:e:${generation?.id}`,
      `res:o:${generation?.id}`,
    ]);
    // The card became the status message: the worker edited it as the generation went.
    expect(callsTo(user.id, 'editMessageText').map((c) => c.fields.text)).toContain('✅ Done');

    const photoMessage = {
      message_id: 99_001,
      photo: [
        { file_id: 'AgACAgIAAxkBAAIBresultphoto', file_unique_id: 'u1', width: 8, height: 8 },
      ],
    };
    await harness.bot.handleUpdate(callbackUpdate(user, `res:r:${generation?.id}`, photoMessage));
    const again = lastTo(user.id, 'sendMessage');
    expect(again.fields.text).toContain('a blue whale');
    expect(again.fields.reply_parameters).toMatchObject({ message_id: 99_001 });

    const documents = callsTo(user.id, 'sendDocument').length;
    await harness.bot.handleUpdate(callbackUpdate(user, `res:o:${generation?.id}`, photoMessage));
    expect(callsTo(user.id, 'sendDocument')).toHaveLength(documents + 1);

    await harness.bot.handleUpdate(callbackUpdate(user, `res:e:${generation?.id}`, photoMessage));
    expect(lastTo(user.id, 'sendMessage').fields.text).toBe(
      '✏️ Send what should change in this image.',
    );
    await harness.bot.handleUpdate(textUpdate(user, 'make it green'));
    const editCard = lastTo(user.id, 'sendMessage');
    expect(editCard.fields.text).toContain('1 image to edit');
    expect(editCard.fields.text).toContain('make it green');
  });

  it('a photo without a caption offers the tools, and a tool runs on it', async () => {
    const user = telegramUser(freshTelegramId(), 'en');
    await harness.app.inject({
      method: 'POST',
      url: `/api/v1/admin/users/${user.id}/credits`,
      headers: adminAuth,
      payload: { amount: 500, reason: 'test' },
    });
    const fileId = `AgACAgIAAxkBAAIBtool${user.id}`;
    harness.telegram.addFile(fileId, encodePng(16, 12, new Uint8Array(16 * 12 * 3).fill(200)));
    await harness.bot.handleUpdate(photoUpdate(user, fileId));
    const card = lastTo(user.id, 'sendMessage');
    const catalog = await harness.api.catalog();
    const toolNames = catalog.filter((m) => m.kind === 'tool').map((m) => m.name);
    expect(toolNames.length).toBeGreaterThan(0);
    expect(toolNames.some((name) => String(card.fields.text).includes(name))).toBe(true);
    const draft = buttonData(card, 'g:').split(':')[1];
    await harness.bot.handleUpdate(callbackUpdate(user, `g:${draft}:m`));
    const models = lastTo(user.id, 'editMessageText');
    const offered = buttons(models).filter((b) => b.callback_data?.includes(':M:'));
    expect(offered.length).toBe(toolNames.length);
    await harness.bot.handleUpdate(callbackUpdate(user, `g:${draft}:go`));
    const [generation] = await generationsOf(user.id);
    expect(generation?.references).toEqual([{ kind: 'telegram_file', value: fileId }]);
    const done = await waitFor(
      () => harness.api.generation(generation?.id ?? ''),
      (g) => g.status === 'succeeded' || g.status === 'failed',
    );
    expect(done.status).toBe('succeeded');
  });
});

describe('language', () => {
  it('switching changes the texts and is stored for the user', async () => {
    const user = telegramUser(freshTelegramId(), 'en');
    await harness.bot.handleUpdate(callbackUpdate(user, 'menu:language'));
    const menu = lastTo(user.id, 'sendMessage');
    expect(buttons(menu).map((b) => b.text)).toEqual([
      "🇺🇿 O'zbekcha",
      '🇷🇺 Русский',
      '✅ 🇬🇧 English',
    ]);
    await harness.bot.handleUpdate(callbackUpdate(user, 'lang:ru'));
    expect(lastTo(user.id, 'sendMessage').fields.text).toContain('Язык: русский');
    await harness.bot.handleUpdate(textUpdate(user, '/balance'));
    expect(lastTo(user.id, 'sendMessage').fields.text).toContain('Баланс');
    const stored = await harness.api.syncUser({ telegram_id: user.id });
    expect(stored.language).toBe('ru');
  });
});

describe('referrals', () => {
  it('a friend joins by the link; their top-up earns the referrer, told in the referrer language; a refund takes it back', async () => {
    const referrer = telegramUser(freshTelegramId(), 'en', 'Ref');
    await harness.bot.handleUpdate(callbackUpdate(referrer, 'lang:uz'));
    await harness.bot.handleUpdate(textUpdate(referrer, '/referral'));
    const screen = String(lastTo(referrer.id, 'sendMessage').fields.text);
    const code = /https:\/\/t\.me\/fake_bot\?start=r_([A-Z0-9]+)/.exec(screen)?.[1];
    expect(code).toBeDefined();

    const friend = telegramUser(freshTelegramId(), 'ru', 'Friend');
    await harness.bot.handleUpdate(textUpdate(friend, `/start r_${code}`));
    const [offer] = await harness.api.starsPackages();
    await harness.bot.handleUpdate(
      successfulPaymentUpdate(
        friend,
        offer?.invoice_payload ?? '',
        offer?.stars ?? 0,
        `charge-r-${friend.id}`,
      ),
    );
    const notice = lastTo(referrer.id, 'sendMessage');
    expect(notice.fields.text).toBe(
      "🎉 Do'stingiz balansini to'ldirdi: siz <b>10</b> kredit oldingiz.",
    );
    expect(await balanceOf(harness.app, referrer.id)).toBe(10);
    const referrals = await harness.api.referrals(referrer.id);
    expect(referrals).toMatchObject({ joined: 1, earned_credits: 10 });

    await harness.bot.handleUpdate(
      refundedPaymentUpdate(friend, offer?.stars ?? 0, `charge-r-${friend.id}`),
    );
    expect(await balanceOf(harness.app, referrer.id)).toBe(0);
  });
});

describe('a banned user', () => {
  it('is told why and nothing happens, but a payment is still confirmed', async () => {
    const user = telegramUser(freshTelegramId(), 'en');
    await harness.api.syncUser({ telegram_id: user.id });
    const banned = await harness.app.inject({
      method: 'POST',
      url: `/api/v1/admin/users/${user.id}/ban`,
      headers: adminAuth,
      payload: { reason: 'spam <links>' },
    });
    expect(banned.statusCode).toBe(200);
    await harness.bot.handleUpdate(textUpdate(user, 'a castle'));
    expect(lastTo(user.id, 'sendMessage').fields.text).toBe(
      '⛔️ Your access is blocked. Reason: spam &lt;links&gt;',
    );
    expect(await generationsOf(user.id)).toHaveLength(0);
    const [offer] = await harness.api.starsPackages();
    await harness.bot.handleUpdate(
      successfulPaymentUpdate(
        user,
        offer?.invoice_payload ?? '',
        offer?.stars ?? 0,
        `charge-b-${user.id}`,
      ),
    );
    expect(await balanceOf(harness.app, user.id)).toBe(offer?.credits);
  });
});

describe('models no provider can serve now', () => {
  let partial: BotHarness;
  beforeAll(async () => {
    // Only a Replicate account: nano-banana (its second route) can be generated, the
    // Wavespeed-only models cannot. No worker: nothing is generated here.
    partial = await startBotHarness((telegramApiRoot) =>
      buildTestApp({
        TELEGRAM_API_ROOT: telegramApiRoot,
        GENERATION_PROVIDER: 'catalog',
        REPLICATE_API_TOKEN: 'r8_bot_test_token_never_used',
      }),
    );
  });
  afterAll(() => partial?.close());

  it('are not offered: the card starts with one that can be, the model list leaves them out', async () => {
    const user = telegramUser(freshTelegramId(), 'en');
    await partial.api.syncUser({ telegram_id: user.id });
    await partial.api.updateUser(user.id, { preferences: { model: 'seedream-v4' } });
    await partial.bot.handleUpdate(textUpdate(user, 'a lighthouse at dusk'));
    const card = lastTo(user.id, 'sendMessage', partial);
    expect(card.fields.text).toContain('Nano Banana');
    expect(card.fields.text).not.toContain('Seedream');

    const draftId = buttonData(card, 'g:').split(':')[1];
    await partial.bot.handleUpdate(callbackUpdate(user, `g:${draftId}:m`));
    const list = lastTo(user.id, 'editMessageText', partial);
    const names = buttons(list).map((button) => button.text);
    expect(names.some((name) => name.includes('Nano Banana —'))).toBe(true);
    for (const unavailable of ['Seedream 4.0', 'GPT Image 1.5', 'Qwen Image', 'Nano Banana Pro']) {
      expect(
        names.some((name) => name.includes(unavailable)),
        unavailable,
      ).toBe(false);
    }
  });
});
