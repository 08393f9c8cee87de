import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initDataSecret, signInitData } from '../src/deps/telegram-init-data.ts';
import { buildWeb } from '../web/build.ts';
import { botAuth, buildTestApp, TELEGRAM_BOT_TOKEN } from './helpers/app.ts';
import {
  type BotHarness,
  preCheckoutUpdate,
  startBotHarness,
  successfulPaymentUpdate,
  telegramUser,
} from './helpers/bot.ts';
import {
  browserMissing,
  contextOptions,
  launchChromium,
  screenshotBothWidths,
  viewports,
} from './helpers/browser.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';

/**
 * The Mini App's balance tab in a real browser, against the real API on the test database and
 * the real bot, both talking to a fake Bot API; inside a stand-in for Telegram whose openInvoice
 * and openTelegramLink record what they were given. Paying is played as Telegram plays it: the
 * payment sheet says "paid", and the bot gets pre_checkout_query and successful_payment.
 */

let harness: BotHarness;
let browser: Browser | null = null;

beforeAll(async () => {
  await buildWeb();
  const database = await sharedDatabase();
  harness = await startBotHarness((telegramApiRoot) =>
    buildTestApp(
      {
        STARS_PACKAGES: 'small:100:50,big:1000:400',
        TRIAL_GENERATIONS: '2',
        TELEGRAM_API_ROOT: telegramApiRoot,
      },
      database,
    ),
  );
  if (!browserMissing()) browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await harness?.close();
});

interface Recorded {
  invoices: string[];
  links: string[];
  /** openInvoice's callback: how the payment sheet closed. */
  closeInvoice?: (status: string) => void;
}

/** The user as Telegram signs it into initData, in its client's language. */
function initDataOf(telegramId: number, language: string): string {
  return signInitData(
    {
      query_id: 'AAHdF6IQAAAAAN0XohDhrOrc',
      user: JSON.stringify({ id: telegramId, first_name: 'Mini', language_code: language }),
      auth_date: String(Math.floor(Date.now() / 1000)),
    },
    initDataSecret(TELEGRAM_BOT_TOKEN),
  );
}

/** A phone-sized page in the stand-in Telegram, the Balance tab open. */
async function openWallet(
  telegramId: number,
  language: string,
): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
  if (!browser) throw new Error('no browser');
  const context = await browser.newContext({ ...contextOptions, viewport: viewports.phone });
  // Telegram's own script would replace the stand-in below.
  await context.route('https://telegram.org/**', (route) => route.abort());
  await context.addInitScript(
    ({ initData }) => {
      const recorded: Recorded = { invoices: [], links: [] };
      (globalThis as unknown as { recorded: Recorded }).recorded = recorded;
      (globalThis as unknown as { Telegram: unknown }).Telegram = {
        WebApp: {
          initData,
          themeParams: {
            bg_color: '#ffffff',
            secondary_bg_color: '#efeff4',
            text_color: '#000000',
            hint_color: '#8e8e93',
            button_color: '#2481cc',
            button_text_color: '#ffffff',
          },
          ready() {},
          expand() {},
          openInvoice(url: string, callback: (status: string) => void) {
            recorded.invoices.push(url);
            recorded.closeInvoice = callback;
          },
          openTelegramLink(url: string) {
            recorded.links.push(url);
          },
        },
      };
    },
    { initData: initDataOf(telegramId, language) },
  );
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${harness.apiUrl}/app/`);
  return { context, page, errors };
}

const recorded = (page: Page) =>
  page.evaluate(() => {
    const { invoices, links } = (globalThis as unknown as { recorded: Recorded }).recorded;
    return { invoices, links };
  });

async function newUser(language = 'en'): Promise<number> {
  const telegramId = freshTelegramId();
  const synced = await harness.app.inject({
    method: 'POST',
    url: '/api/v1/users/sync',
    headers: botAuth,
    payload: { telegram_id: telegramId, first_name: 'Mini', language_code: language },
  });
  expect(synced.statusCode).toBe(201);
  return telegramId;
}

describe("the Mini App's balance", () => {
  it('shows the balance, tops up with Stars through openInvoice, and sees the credit arrive', async (context) => {
    if (!browser) return context.skip('no Chromium');
    const telegramId = await newUser();
    const { context: browserContext, page, errors } = await openWallet(telegramId, 'en');
    await page.getByRole('button', { name: /Balance/ }).click();
    const balance = page.locator('.balance');
    await expect.poll(() => balance.textContent()).toBe('Balance: 0 credits');
    await expect.poll(() => page.getByText('Free generations left: 2').count()).toBe(1);
    await screenshotBothWidths(page, 'app-wallet');

    // Tapping a package asks the API for the invoice link and opens what Telegram answered.
    const invoicesBefore = harness.telegram.invoiceLinks.length;
    await page.getByRole('button', { name: '100 credits — 50 ⭐' }).click();
    await expect.poll(async () => (await recorded(page)).invoices.length).toBe(1);
    expect(harness.telegram.invoiceLinks).toHaveLength(invoicesBefore + 1);
    const invoice = harness.telegram.invoiceLinks.at(-1);
    expect((await recorded(page)).invoices[0]).toBe(invoice?.link);
    expect(invoice).toMatchObject({
      payload: 'stars:small:100:50',
      currency: 'XTR',
      prices: [{ amount: 50 }],
    });

    // The payment sheet says "paid" before the bot has been told: the app waits for the credit.
    await page.evaluate(() =>
      (globalThis as unknown as { recorded: Recorded }).recorded.closeInvoice?.('paid'),
    );
    await page.getByText('Payment received. Adding the credits…').waitFor();
    expect(await balance.textContent()).toBe('Balance: 0 credits');

    // Telegram tells the bot, which checks and credits it as any payment.
    const user = telegramUser(telegramId, 'en', 'Mini');
    await harness.bot.handleUpdate(
      preCheckoutUpdate(user, invoice?.payload ?? '', invoice?.prices[0]?.amount ?? 0),
    );
    const answer = harness.telegram.calls.filter((c) => c.method === 'answerPreCheckoutQuery');
    expect(answer.at(-1)?.fields).toMatchObject({ ok: true });
    await harness.bot.handleUpdate(
      successfulPaymentUpdate(user, invoice?.payload ?? '', 50, `charge-${telegramId}`),
    );

    await expect
      .poll(() => balance.textContent(), { timeout: 15_000 })
      .toBe('Balance: 100 credits');
    await page.getByText('✅ Credits added. Balance: 100 credits.').waitFor();
    await screenshotBothWidths(page, 'app-wallet-credited');
    expect(errors).toEqual([]);
    await browserContext.close();
  }, 120_000);

  it('opens one invoice at a time; says so when the payment fails, nothing when the user closes it', async (context) => {
    if (!browser) return context.skip('no Chromium');
    const telegramId = await newUser();
    const { context: browserContext, page } = await openWallet(telegramId, 'en');
    await page.getByRole('button', { name: /Balance/ }).click();
    const close = (status: string) =>
      page.evaluate(
        (status) =>
          (globalThis as unknown as { recorded: Recorded }).recorded.closeInvoice?.(status),
        status,
      );
    await page.getByRole('button', { name: '1,000 credits — 400 ⭐' }).click();
    await expect.poll(async () => (await recorded(page)).invoices.length).toBe(1);
    // One payment sheet at a time: Telegram refuses a second while one is open.
    await expect
      .poll(() => page.getByRole('button', { name: '100 credits — 50 ⭐' }).isDisabled())
      .toBe(true);
    await close('cancelled');
    await page.getByRole('button', { name: '1,000 credits — 400 ⭐' }).click();
    await expect.poll(async () => (await recorded(page)).invoices.length).toBe(2);
    expect(await page.getByRole('status').count()).toBe(0);
    await close('failed');
    await page.getByText('The payment did not go through. Nothing was charged.').waitFor();
    await browserContext.close();
  }, 60_000);

  it("shares the invitation link through Telegram's share sheet", async (context) => {
    if (!browser) return context.skip('no Chromium');
    const telegramId = await newUser();
    const code = (
      await harness.app.inject({
        url: `/api/v1/users/${telegramId}/referrals`,
        headers: botAuth,
      })
    ).json().code as string;
    const { context: browserContext, page } = await openWallet(telegramId, 'en');
    await page.getByRole('button', { name: /Balance/ }).click();
    // The bot's username from getMe (the fake's), the code as the bot's /start reads it.
    const invitation = `https://t.me/fake_bot?start=r_${code}`;
    await expect.poll(() => page.locator('input.link').inputValue()).toBe(invitation);
    await page.getByRole('button', { name: 'Share the link' }).click();
    await expect.poll(async () => (await recorded(page)).links.length).toBe(1);
    const [shared] = (await recorded(page)).links;
    expect(shared).toBe(
      `https://t.me/share/url?url=${encodeURIComponent(invitation)}&text=${encodeURIComponent(
        'Create images with AI right in Telegram. Join with my link!',
      )}`,
    );
    const parsed = new URL(shared ?? '');
    expect(parsed.origin + parsed.pathname).toBe('https://t.me/share/url');
    expect(parsed.searchParams.get('url')).toBe(invitation);
    await browserContext.close();
  }, 60_000);

  const languages = [
    {
      language: 'ru',
      tab: '💰 Баланс',
      balance: 'Баланс: 0 кредитов',
      share: 'Поделиться ссылкой',
    },
    { language: 'uz', tab: '💰 Balans', balance: 'Balans: 0 kredit', share: 'Havolani ulashish' },
  ];
  for (const texts of languages) {
    it(`speaks ${texts.language}`, async (context) => {
      if (!browser) return context.skip('no Chromium');
      const telegramId = await newUser(texts.language);
      const { context: browserContext, page } = await openWallet(telegramId, texts.language);
      await page.getByRole('button', { name: texts.tab }).click();
      await expect.poll(() => page.locator('.balance').textContent()).toBe(texts.balance);
      await page.getByRole('button', { name: texts.share }).waitFor();
      await screenshotBothWidths(page, `app-wallet-${texts.language}`);
      await browserContext.close();
    }, 60_000);
  }
});
