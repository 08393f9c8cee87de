import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildWeb } from '../web/build.ts';
import { type FakeTelegram, startFakeTelegram } from './fakes/telegram-api.ts';
import { ADMIN_TOKEN, adminAuth, buildTestApp, TELEGRAM_BOT_TOKEN } from './helpers/app.ts';
import {
  browserMissing,
  contextOptions,
  launchChromium,
  screenshotBothWidths,
} from './helpers/browser.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';
import { operatorSettings, SUPPORT_OPERATOR_ID, widgetLogin } from './helpers/operators.ts';

/**
 * The panel's broadcasts in a real browser, against the real API and a worker on the test
 * database, sending to a fake Telegram Bot API: an operator composes a formatted message, sees who
 * it goes to, starts it and watches it reach everyone; Telegram gets exactly what the preview showed.
 */

const RATE = 10;
const RECIPIENTS = 20;

let app: FastifyInstance;
let telegram: FakeTelegram;
let browser: Browser | null = null;
let origin: string;

beforeAll(async () => {
  await buildWeb();
  telegram = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
  app = await buildTestApp(
    { ...operatorSettings, TELEGRAM_API_ROOT: telegram.apiRoot, BROADCAST_RATE: String(RATE) },
    undefined,
    { worker: true },
  );
  await app.listen({ host: 'localhost', port: 0 });
  origin = `http://localhost:${(app.server.address() as AddressInfo).port}`;
  if (!browserMissing()) browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await telegram?.close();
});

/** `count` users whose usernames start with a tag of their own: the audience's query. */
async function usersTagged(count: number): Promise<{ tag: string; chatIds: number[] }> {
  const tag = `pb${randomBytes(5).toString('hex')}`;
  const chatIds = Array.from({ length: count }, () => freshTelegramId());
  await (await sharedDatabase()).db.execute(
    sql`INSERT INTO users (telegram_id, username)
        SELECT t, ${tag} || '_' || n FROM unnest(${`{${chatIds.join(',')}}`}::bigint[])
        WITH ORDINALITY AS x(t, n)`,
  );
  return { tag, chatIds };
}

describe('broadcasts in the operator panel, in Chromium', () => {
  it('composes a formatted message with a button, counts its audience, starts it and follows it to 100% while Telegram gets exactly the preview', async (context) => {
    if (!browser) return context.skip('no Chromium');
    const { tag, chatIds } = await usersTagged(RECIPIENTS);
    const session = await browser.newContext(contextOptions);
    const page = await session.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(`${message.text()} ${message.location().url}`);
    });
    const link = 'https://t.me/panel_test_bot?start=winter';
    const buttonUrl = 'https://t.me/panel_test_bot?start=sale';
    let id = 0;
    try {
      await page.goto(`${origin}/admin/broadcasts`);
      await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Broadcasts' }).waitFor();
      await page.getByRole('link', { name: 'New broadcast' }).click();
      await page.getByRole('heading', { name: 'New broadcast' }).waitFor();

      // Written as an operator writes: shortcuts, the toolbar, a link on selected words. What
      // looks like HTML is text: nothing is parsed.
      const editor = page.getByRole('textbox', { name: 'Message' });
      await editor.click();
      await page.keyboard.type('Winter sale: ');
      await page.keyboard.press('Control+b');
      await page.keyboard.type('30% off');
      await page.keyboard.press('Control+b');
      await page.keyboard.type(' every model. Use code <b>WINTER</b> & save. Open the bot');
      for (let i = 0; i < 'Open the bot'.length; i++) await page.keyboard.press('Shift+ArrowLeft');
      await page.getByRole('button', { name: 'Link' }).click();
      await page.getByLabel('Link address').fill(link);
      await page.getByRole('button', { name: 'Apply link' }).click();
      await editor.locator('a', { hasText: 'Open the bot' }).waitFor();
      // The editor takes the focus back on the next frame and then puts the linked words' selection
      // back; End pressed before that is undone, and Enter would replace the words. So End until
      // the caret is collapsed in the editor (End again is harmless), then Enter.
      await expect
        .poll(async () => {
          await page.keyboard.press('End');
          return editor.evaluate((element) => {
            const selection = element.ownerDocument.getSelection();
            return (
              element === element.ownerDocument.activeElement &&
              selection !== null &&
              selection.isCollapsed &&
              element.contains(selection.anchorNode)
            );
          });
        })
        .toBe(true);
      await page.keyboard.press('Enter');
      await page.getByRole('button', { name: 'Italic (Ctrl+I)' }).click();
      await page.keyboard.type('Until Sunday 🎄');

      const text =
        'Winter sale: 30% off every model. Use code <b>WINTER</b> & save. Open the bot\nUntil Sunday 🎄';
      // Offsets in UTF-16 code units: the emoji counts two.
      const entities = [
        { type: 'bold', offset: text.indexOf('30% off'), length: 7 },
        { type: 'text_link', offset: text.indexOf('Open the bot'), length: 12, url: link },
        { type: 'italic', offset: text.indexOf('Until'), length: 15 },
      ];

      await page.getByLabel('Button text').fill('Get 30% off');
      await page.getByLabel('Button link').fill(buttonUrl);

      // The preview draws the entities: each formatting around exactly its words.
      const preview = page.getByRole('region', { name: 'Preview' });
      await expect.poll(() => preview.getByTestId('preview-text').textContent()).toBe(text);
      expect(await preview.locator('strong').allTextContents()).toEqual(['30% off']);
      expect(await preview.locator('em').allTextContents()).toEqual(['Until Sunday 🎄']);
      expect(await preview.getByRole('link', { name: 'Open the bot' }).getAttribute('href')).toBe(
        link,
      );
      expect(await preview.getByRole('link', { name: 'Get 30% off' }).getAttribute('href')).toBe(
        buttonUrl,
      );

      // The audience and its live count.
      const count = page.getByTestId('audience-count');
      await page.getByLabel('Only users matching').fill(tag);
      await count.getByText(`${RECIPIENTS} recipients now`).waitFor();
      await page.getByRole('group', { name: 'Users who are all of' }).getByText('Paying').click();
      await count.getByText('0 recipients now').waitFor();
      await page.getByRole('group', { name: 'Users who are all of' }).getByText('Paying').click();
      await count.getByText(`${RECIPIENTS} recipients now`).waitFor();
      await screenshotBothWidths(page, 'broadcast-compose');

      await page.getByRole('button', { name: 'Create draft' }).click();
      const heading = page.getByRole('heading', { name: /^Broadcast #\d+$/ });
      await heading.waitFor();
      id = Number(((await heading.textContent()) ?? '').replace(/\D/g, ''));
      await page
        .getByTestId('draft-recipients')
        .getByText(`${RECIPIENTS} users would get it now.`)
        .waitFor();

      // Starting asks for a reason, saying how many it goes to.
      await page.getByRole('button', { name: 'Start sending' }).click();
      const dialog = page.getByRole('dialog', { name: 'Start this broadcast' });
      await dialog.getByText(`Send it to ${RECIPIENTS} users now?`).waitFor();
      const confirm = dialog.getByRole('button', { name: 'Start sending' });
      expect(await confirm.isDisabled()).toBe(true);
      await dialog.getByLabel('Reason').fill('Winter sale announcement');
      await screenshotBothWidths(page, 'broadcast-start');
      await confirm.click();

      // The page follows the workers without a reload: it shows the start's answer (0 sent) and
      // then the percentage climbing to 100.
      const percent = page.getByTestId('progress-percent');
      const seen = new Set<string>();
      await expect
        .poll(
          async () => {
            const value = (await percent.textContent()) ?? '';
            seen.add(value);
            return value;
          },
          { timeout: 30_000, interval: 100 },
        )
        .toBe('100%');
      expect([...seen].some((value) => value !== '100%')).toBe(true);
      await page.getByTestId('broadcast-status').getByText('completed').waitFor();
      expect(await page.getByTestId('figure-Sent').locator('p').last().textContent()).toBe(
        String(RECIPIENTS),
      );
      await screenshotBothWidths(page, 'broadcast');

      await page.getByRole('link', { name: '← Broadcasts' }).click();
      const row = page.locator(`[data-testid="broadcast"][data-id="${id}"]`);
      await row.getByText('completed').waitFor();
      expect(await row.getByTestId('progress-percent').textContent()).toBe('100%');
      await screenshotBothWidths(page, 'broadcasts');
      // Chromium logs the 401 of asking who is signed in before the token.
      expect(errors.filter((error) => !/status of 401/.test(error))).toEqual([]);

      // What the API stored is what was composed…
      const stored = await app.inject({
        url: `/api/v1/admin/broadcasts/${id}`,
        headers: adminAuth,
      });
      expect(stored.json()).toMatchObject({
        text,
        entities,
        button: { text: 'Get 30% off', url: buttonUrl },
        audience: { filters: [], query: tag },
        progress: { total: RECIPIENTS, sent: RECIPIENTS, failed: 0, blocked: 0, remaining: 0 },
      });
    } finally {
      await session.close();
    }

    // …and what each user got, once: the text and entities of the preview, no parse_mode.
    const chats = new Set(chatIds);
    const calls = telegram.calls.filter(
      (call) => call.method === 'sendMessage' && chats.has(call.chatId ?? 0),
    );
    expect(calls.map((call) => call.chatId).sort()).toEqual([...chatIds].sort());
    for (const call of calls) {
      expect(call.fields).toEqual({
        chat_id: call.chatId,
        text: 'Winter sale: 30% off every model. Use code <b>WINTER</b> & save. Open the bot\nUntil Sunday 🎄',
        entities: [
          { type: 'bold', offset: 13, length: 7 },
          { type: 'text_link', offset: 65, length: 12, url: link },
          { type: 'italic', offset: 78, length: 15 },
        ],
        reply_markup: { inline_keyboard: [[{ text: 'Get 30% off', url: buttonUrl }]] },
      });
    }
    const audit = await app.inject({
      url: `/api/v1/admin/audit?subject_id=${id}&action=broadcast.start`,
      headers: adminAuth,
    });
    expect(audit.json().items).toEqual([
      expect.objectContaining({ reason: 'Winter sale announcement' }),
    ]);
  }, 120_000);

  it('pauses and resumes a sending broadcast and cancels a draft, each with a reason; a support operator sees no actions', async (context) => {
    if (!browser) return context.skip('no Chromium');
    const { tag } = await usersTagged(60);
    const create = async () => {
      const response = await app.inject({
        method: 'POST',
        url: '/api/v1/admin/broadcasts',
        headers: adminAuth,
        payload: { text: 'Pause me', audience: { filters: [], query: tag } },
      });
      expect(response.statusCode, response.body).toBe(201);
      return response.json().id as number;
    };
    const sending = await create();
    const draft = await create();
    // Telegram answers slowly: the broadcast is still sending when the operator pauses it.
    telegram.delayMs(200);
    const session = await browser.newContext(contextOptions);
    const page = await session.newPage();
    try {
      await page.goto(`${origin}/admin/broadcasts/${sending}`);
      await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
      await page.getByRole('button', { name: 'Sign in' }).click();
      const status = page.getByTestId('broadcast-status');
      await status.getByText('draft').waitFor();
      await page.getByRole('button', { name: 'Start sending' }).click();
      const start = page.getByRole('dialog', { name: 'Start this broadcast' });
      await start.getByLabel('Reason').fill('Second wave');
      await start.getByRole('button', { name: 'Start sending' }).click();
      await status.getByText('running').waitFor();

      await page.getByRole('button', { name: 'Pause' }).click();
      const pause = page.getByRole('dialog', { name: 'Pause this broadcast' });
      await pause.getByLabel('Reason').fill('A typo in the offer');
      await pause.getByRole('button', { name: 'Pause' }).click();
      await status.getByText('paused').waitFor();
      const paused = await app.inject({
        url: `/api/v1/admin/broadcasts/${sending}`,
        headers: adminAuth,
      });
      expect(paused.json().progress.remaining).toBeGreaterThan(0);
      await screenshotBothWidths(page, 'broadcast-paused');

      telegram.delayMs(0);
      await page.getByRole('button', { name: 'Resume' }).click();
      const resume = page.getByRole('dialog', { name: 'Resume this broadcast' });
      await resume.getByLabel('Reason').fill('Typo was harmless');
      await resume.getByRole('button', { name: 'Resume' }).click();
      await expect
        .poll(() => page.getByTestId('progress-percent').textContent(), { timeout: 30_000 })
        .toBe('100%');
      await status.getByText('completed').waitFor();
      expect(await page.getByRole('button', { name: 'Pause' }).count()).toBe(0);

      await page.goto(`${origin}/admin/broadcasts/${draft}`);
      await page.getByRole('button', { name: 'Cancel broadcast' }).click();
      const cancel = page.getByRole('dialog', { name: 'Cancel this broadcast' });
      await cancel.getByText('Nothing has been sent.').waitFor();
      await cancel.getByLabel('Reason').fill('Sent the other one');
      await screenshotBothWidths(page, 'broadcast-cancel');
      await cancel.getByRole('button', { name: 'Cancel broadcast' }).click();
      await status.getByText('cancelled').waitFor();
      expect(await page.getByRole('button', { name: 'Start sending' }).count()).toBe(0);

      // A copy of a message (a photo, a video…): the preview names it, the draft holds it.
      await page.goto(`${origin}/admin/broadcasts/new`);
      await page.getByText('Copy a message').click();
      await page.getByLabel('Chat id').fill('-1001234567890');
      await page.getByLabel('Message id').fill('42');
      await page
        .getByRole('region', { name: 'Preview' })
        .getByText('A copy of message 42 from chat -1001234567890')
        .waitFor();
      await page.getByLabel('Only users matching').fill(tag);
      await page.getByRole('button', { name: 'Create draft' }).click();
      const heading = page.getByRole('heading', { name: /^Broadcast #\d+$/ });
      await heading.waitFor();
      const copied = Number(((await heading.textContent()) ?? '').replace(/\D/g, ''));
      const stored = await app.inject({
        url: `/api/v1/admin/broadcasts/${copied}`,
        headers: adminAuth,
      });
      expect(stored.json()).toMatchObject({
        status: 'draft',
        text: null,
        copy: { from_chat_id: -1001234567890, message_id: 42 },
        button: null,
        audience: { filters: [], query: tag },
      });
    } finally {
      telegram.delayMs(0);
      await session.close();
    }

    const reasons = async (id: number) => {
      const audit = await app.inject({
        // The type too: an operator's session (operator.login) may have the same number as id.
        url: `/api/v1/admin/audit?subject_type=broadcast&subject_id=${id}`,
        headers: adminAuth,
      });
      return audit
        .json()
        .items.map((entry: { action: string; reason: string | null }) => [
          entry.action,
          entry.reason,
        ]);
    };
    expect(await reasons(sending)).toEqual([
      ['broadcast.resume', 'Typo was harmless'],
      ['broadcast.pause', 'A typo in the offer'],
      ['broadcast.start', 'Second wave'],
      ['broadcast.create', null],
    ]);
    expect((await reasons(draft))[0]).toEqual(['broadcast.cancel', 'Sent the other one']);

    // Support reads broadcasts but changes none: no actions, no composer.
    const support = await browser.newContext(contextOptions);
    const supportPage = await support.newPage();
    try {
      const query = new URLSearchParams(
        Object.entries(widgetLogin(SUPPORT_OPERATOR_ID)).map(([key, value]): [string, string] => [
          key,
          String(value),
        ]),
      );
      await supportPage.goto(`${origin}/admin/login?${query}`);
      await supportPage.getByTestId('whoami').waitFor();
      await supportPage.goto(`${origin}/admin/broadcasts/${await create()}`);
      await supportPage.getByTestId('broadcast-status').getByText('draft').waitFor();
      await supportPage
        .getByTestId('draft-recipients')
        .getByText('60 users would get it now.')
        .waitFor();
      expect(
        await supportPage
          .getByRole('button')
          .filter({ hasText: /Start|Cancel/ })
          .count(),
      ).toBe(0);
      await supportPage.goto(`${origin}/admin/broadcasts`);
      await supportPage.locator(`[data-testid="broadcast"][data-id="${sending}"]`).waitFor();
      expect(await supportPage.getByRole('link', { name: 'New broadcast' }).count()).toBe(0);
    } finally {
      await support.close();
    }
  }, 120_000);
});
