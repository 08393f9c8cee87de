import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliDecompressSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { recordGenerationSuccess } from '../src/services/generation-outcomes.ts';
import { LocalResultStore } from '../src/storage/local.ts';
import { buildWeb } from '../web/build.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { type FakeTelegram, startFakeTelegram } from './fakes/telegram-api.ts';
import {
  ADMIN_TOKEN,
  adminAuth,
  botAuth,
  buildTestApp,
  TELEGRAM_BOT_TOKEN,
  testConfig,
} from './helpers/app.ts';
import {
  browserMissing,
  contextOptions,
  launchChromium,
  screenshotBothWidths,
} from './helpers/browser.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';
import { testPhoto } from './helpers/images.ts';
import {
  ADMIN_OPERATOR_ID,
  operatorSettings,
  SUPPORT_OPERATOR_ID,
  widgetLogin,
} from './helpers/operators.ts';
import { createTestModel, submit, type TestModel, userWithCredits } from './helpers/pipeline.ts';

/**
 * The operator panel in a real browser, against the real API on the test database: what an
 * operator does, click by click, and what the API then holds.
 */

const LOGIN_BOT = 'panel_test_bot';

let app: FastifyInstance;
/** What the pages asked of telegram.org (the Login Widget's script), answered by a stand-in. */
const telegramRequests: string[] = [];
let browser: Browser | null = null;
let origin: string;
/** Where the app keeps generated images: the panel's thumbnails are served from here. */
const dataDir = mkdtempSync(join(tmpdir(), 'web-admin-'));
const provider = new ScriptedProvider();
let model: TestModel;
/** Telegram's Bot API for Stars payments, their refunds and the Star transactions. */
let telegram: FakeTelegram;
const STARS_PACKAGE = { id: 'starter', credits: 100, stars: 50 };

beforeAll(async () => {
  await buildWeb();
  telegram = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
  app = await buildTestApp(
    {
      ...operatorSettings,
      TELEGRAM_BOT_USERNAME: LOGIN_BOT,
      DATA_DIR: dataDir,
      TELEGRAM_API_ROOT: telegram.apiRoot,
      STARS_PACKAGES: `${STARS_PACKAGE.id}:${STARS_PACKAGE.credits}:${STARS_PACKAGE.stars}`,
    },
    undefined,
    { providers: new ProviderRegistry([provider], 'catalog') },
  );
  model = await createTestModel((await sharedDatabase()).db, {
    provider: provider.name,
    prices: [{ conditions: {}, credits: 10 }],
  });
  await app.listen({ host: 'localhost', port: 0 });
  origin = `http://localhost:${(app.server.address() as AddressInfo).port}`;
  if (!browserMissing()) browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await telegram?.close();
});

async function syncUser(firstName: string): Promise<number> {
  const telegramId = freshTelegramId();
  const response = await app.inject({
    method: 'POST',
    url: '/api/v1/users/sync',
    headers: botAuth,
    payload: { telegram_id: telegramId, first_name: firstName, username: `web${telegramId}` },
  });
  expect(response.statusCode).toBe(201);
  return telegramId;
}

/**
 * A fresh browser session on a panel page; `errors` collects what its scripts threw or logged as
 * errors (a CSP refusal among them), for the test to check at its end.
 */
async function openPanel(
  path = '/admin/',
): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
  if (!browser) throw new Error('no browser');
  const context = await browser.newContext(contextOptions);
  // The outside world is faked: Telegram's widget script is an empty one here.
  await context.route('https://telegram.org/**', (route) => {
    telegramRequests.push(route.request().url());
    return route.fulfill({ contentType: 'text/javascript', body: '' });
  });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => {
    // With where it happened: for a resource that failed to load, the resource's URL.
    if (message.type() === 'error') errors.push(`${message.text()} ${message.location().url}`);
  });
  await page.goto(`${origin}${path}`);
  return { context, page, errors };
}

/** Signs in with the admin token on the page `openPanel` opened. */
async function signInWithToken(page: Page): Promise<void> {
  await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('whoami').waitFor();
}

/** A generation accepted through the API and settled with one image, as the worker settles it. */
async function succeededGeneration(telegramId: number, prompt: string): Promise<string> {
  const accepted = await submit(app, {
    telegram_id: telegramId,
    model: model.key,
    prompt,
    payment: 'credits',
  });
  expect(accepted.statusCode, accepted.body).toBe(202);
  const id: string = accepted.json().id;
  const settle = {
    db: (await sharedDatabase()).db,
    config: testConfig({ TELEGRAM_BOT_TOKEN: '' }),
  };
  expect(
    await recordGenerationSuccess(settle, new LocalResultStore(dataDir), id, {
      images: [{ data: await testPhoto('png'), mimeType: 'image/png' }],
    }),
  ).toBe(true);
  return id;
}

/** A Stars payment Telegram took: the bot confirmed it, unless `confirmed` is false. */
async function starPayment(telegramId: number, confirmed = true): Promise<string> {
  const chargeId = `charge-${randomUUID()}`;
  const invoicePayload = `stars:${STARS_PACKAGE.id}`;
  telegram.addStarPayment({
    chargeId,
    userId: telegramId,
    amount: STARS_PACKAGE.stars,
    invoicePayload,
  });
  if (!confirmed) return chargeId;
  const response = await app.inject({
    method: 'POST',
    url: '/api/v1/payments/stars/confirm',
    headers: botAuth,
    payload: {
      telegram_id: telegramId,
      telegram_payment_charge_id: chargeId,
      total_amount: STARS_PACKAGE.stars,
      currency: 'XTR',
      invoice_payload: invoicePayload,
    },
  });
  expect(response.statusCode, response.body).toBe(201);
  return chargeId;
}

/** An inactive model of its own (other files share the catalog), priced 10 and 25 by size. */
async function catalogModel(name: string): Promise<string> {
  const key = `panel-${randomUUID().slice(0, 8)}`;
  const response = await app.inject({
    method: 'POST',
    url: '/api/v1/admin/models',
    headers: adminAuth,
    payload: {
      key,
      kind: 'image',
      name,
      provider: 'wavespeed',
      provider_model: 'test/text-to-image',
      parameters: [
        { name: 'size', label: 'Size', type: 'enum', values: ['small', 'large'], default: 'small' },
      ],
      sort_order: 990,
      active: false,
      prices: [
        { conditions: {}, credits: 10 },
        { conditions: { size: 'large' }, credits: 25 },
      ],
    },
  });
  expect(response.statusCode, response.body).toBe(201);
  return key;
}

async function adminModel(key: string) {
  const response = await app.inject({ url: '/api/v1/admin/models', headers: adminAuth });
  const model = (response.json().models as { key: string; name: string }[]).find(
    (entry) => entry.key === key,
  );
  if (!model) throw new Error(`no model ${key}`);
  return model;
}

/** Chromium logs every 4xx it fetched; the panel asking who is signed in (401) is expected. */
function unexpected(errors: string[]): string[] {
  return errors.filter((text) => !/status of 401/.test(text));
}

/** Besides those, the refusals (422) of a test that sends a bad value on purpose. */
function unexpectedBut422(errors: string[]): string[] {
  return unexpected(errors).filter(
    (text) => !/status of 422 .*\/api\/v1\/admin\/models/.test(text),
  );
}

describe('operator panel, in Chromium', () => {
  it('signs in with an admin token, finds a user, adjusts credits and bans with a reason, and shows the audit entries', async (context) => {
    if (!browser) return context.skip('no Chromium');
    const name = `Ada${freshTelegramId()}`;
    const telegramId = await syncUser(name);
    // A Stars payment (100 credits) and a generation with an image (10 of them) for its page.
    const chargeId = await starPayment(telegramId);
    const prompt = 'A fox reading a map';
    const generationId = await succeededGeneration(telegramId, prompt);
    const detail = await app.inject({
      url: `/api/v1/admin/users/${telegramId}`,
      headers: adminAuth,
    });
    const imageUrl: string = detail.json().recent.generations[0].results[0].url;
    const { context: session, page, errors } = await openPanel();
    try {
      await page.getByRole('heading', { name: 'Operator panel' }).waitFor();
      // The Telegram Login Widget for the configured bot, sending the operator back to this page.
      const widget = page.getByTestId('telegram-login').locator('script');
      await widget.waitFor({ state: 'attached' });
      expect(await widget.getAttribute('data-telegram-login')).toBe(LOGIN_BOT);
      expect(await widget.getAttribute('data-auth-url')).toBe(`${origin}/admin/login`);
      await expect
        .poll(() => telegramRequests)
        .toContain('https://telegram.org/js/telegram-widget.js?22');
      await screenshotBothWidths(page, 'login');
      await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
      await page.getByRole('button', { name: 'Sign in' }).click();

      // The dashboard first: its figures are the API's.
      await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
      const stats = await app.inject({ url: '/api/v1/admin/stats', headers: adminAuth });
      const usersKpi = page.getByTestId('kpi-Users');
      await expect
        .poll(async () => (await usersKpi.textContent())?.replace(/\D/g, ''))
        .toBe(String(stats.json().users.total));
      const generationsChart = page.getByRole('img', { name: 'Generations, per day' });
      await generationsChart.locator('canvas').first().waitFor();
      // Both series are drawn, named in the chart's legend.
      expect(await generationsChart.locator('.u-legend .u-label').allTextContents()).toEqual(
        expect.arrayContaining(['Succeeded', 'Failed']),
      );
      // Right now: the queue's figures, and each provider account the API reports, with its state.
      await expect
        .poll(() => page.getByTestId('queue-Active generations').locator('p').last().textContent())
        .toMatch(/^\d[\d,]*$/);
      const providers = (
        await app.inject({ url: '/api/v1/admin/providers', headers: adminAuth })
      ).json().providers as { provider: string; available: boolean }[];
      expect(providers.length).toBeGreaterThan(0);
      const providerRows = page.getByRole('table', { name: 'Providers' }).locator('tbody tr');
      await expect.poll(() => providerRows.count()).toBe(providers.length);
      expect(await providerRows.locator('td:first-child').allTextContents()).toEqual(
        providers.map((entry) => entry.provider),
      );
      expect(await providerRows.first().locator('td').last().textContent()).toEqual(
        providers[0]?.available ? 'taken' : expect.stringMatching(/^refused/),
      );
      await screenshotBothWidths(page, 'dashboard');

      await page.getByRole('link', { name: 'Users' }).click();
      await page.getByRole('heading', { name: 'Users' }).waitFor();
      await page.getByRole('searchbox', { name: 'Search' }).fill(name);
      await page.getByTestId('users-total').getByText('1 user').waitFor();
      await screenshotBothWidths(page, 'users');
      await page.getByRole('link', { name }).click();

      await page.getByRole('heading', { name }).waitFor();
      expect(await page.getByTestId('balance').textContent()).toBe('90');
      // The generation's thumbnail is the stored image from the API's image route.
      const generations = page.getByRole('table', { name: 'Recent generations' });
      const thumbnail = generations.getByRole('img', { name: prompt });
      expect(await thumbnail.getAttribute('src')).toBe(imageUrl);
      await expect
        .poll(() =>
          thumbnail.evaluate(
            (image) => (image as unknown as { naturalWidth: number }).naturalWidth,
          ),
        )
        .toBeGreaterThan(0);
      const payment = page.locator(`[data-testid="user-payment"][data-charge="${chargeId}"]`);
      expect(await payment.locator('td').allTextContents()).toEqual([
        expect.any(String),
        STARS_PACKAGE.id,
        String(STARS_PACKAGE.stars),
        String(STARS_PACKAGE.credits),
        'paid',
        '—',
      ]);
      await page.getByLabel('Credits (negative takes)').fill('250');
      await page.getByLabel('Reason').fill('Goodwill after a failed delivery');
      await page.getByRole('button', { name: 'Review' }).click();
      const dialog = page.getByRole('dialog', { name: 'Confirm the adjustment' });
      await dialog.getByText('balance 90 → 340').waitFor();
      await screenshotBothWidths(page, 'user-confirm');
      await dialog.getByRole('button', { name: 'Confirm' }).click();
      await page.getByRole('status').getByText('balance now 340').waitFor();
      await expect.poll(() => page.getByTestId('balance').textContent()).toBe('340');
      await screenshotBothWidths(page, 'user');

      // A ban states its reason (the bot shows it to the user) and is confirmed.
      await page.getByRole('button', { name: 'Ban user' }).click();
      const banDialog = page.getByRole('dialog', { name: 'Ban this user' });
      await banDialog.getByLabel('Reason (the bot shows it to the user)').fill('Spam in prompts');
      await banDialog.getByRole('button', { name: 'Ban', exact: true }).click();
      await page.getByRole('button', { name: 'Lift the ban' }).waitFor();
      await page.getByText('banned', { exact: true }).waitFor();

      // "All generations of this user" opens the Generations page filtered to them.
      await page.getByRole('link', { name: 'All generations of this user' }).click();
      await page.getByRole('heading', { name: 'Generations' }).waitFor();
      expect(await page.getByLabel('User').inputValue()).toBe(String(telegramId));
      await page.locator(`[data-testid="generation"][data-id="${generationId}"]`).waitFor();
      await expect.poll(() => page.getByTestId('generation').count()).toBe(1);

      await page.goto(`${origin}/admin/audit`);
      await page.getByLabel('Subject id').fill(String(telegramId));
      const entry = page.getByTestId('audit-entry').filter({ hasText: 'user.credits' });
      await entry
        .getByRole('cell', { name: 'Goodwill after a failed delivery', exact: true })
        .waitFor();
      const ban = page.getByTestId('audit-entry').filter({ hasText: 'user.ban' });
      await ban.getByRole('cell', { name: 'Spam in prompts', exact: true }).waitFor();
      // Only that user's entries once the filter applies.
      await expect.poll(() => page.getByTestId('audit-entry').count()).toBe(2);
      await screenshotBothWidths(page, 'audit');
      expect(unexpected(errors)).toEqual([]);
    } finally {
      await session.close();
    }

    // What the browser showed is what the API holds: one ledger entry and its audit entry.
    const user = await app.inject({
      url: `/api/v1/admin/users/${telegramId}`,
      headers: adminAuth,
    });
    expect(user.json()).toMatchObject({ balance: 340, banned: { reason: 'Spam in prompts' } });
    const audit = await app.inject({
      url: `/api/v1/admin/audit?subject_id=${telegramId}&action=user.credits`,
      headers: adminAuth,
    });
    expect(audit.json().items).toEqual([
      expect.objectContaining({
        actor: expect.stringMatching(/^admin:/),
        reason: 'Goodwill after a failed delivery',
      }),
    ]);
  }, 90_000);

  it('lists generations with thumbnails and the live queue, and refunds one with a reason after confirming', async (context) => {
    if (!browser) return context.skip('no Chromium');
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 30);
    const id = await succeededGeneration(telegramId, 'A lighthouse in a storm');
    const { context: session, page, errors } = await openPanel('/admin/generations');
    try {
      await signInWithToken(page);
      await page.getByRole('heading', { name: 'Generations' }).waitFor();
      const queue = await app.inject({ url: '/api/v1/admin/queue', headers: adminAuth });
      await expect
        .poll(() => page.getByTestId('queue-Failed, last hour').locator('p').last().textContent())
        .toBe(String(queue.json().failed_last_hour));
      await page.getByLabel('User').fill(String(telegramId));
      const row = page.locator(`[data-testid="generation"][data-id="${id}"]`);
      await row.waitFor();
      await expect.poll(() => page.getByTestId('generation').count()).toBe(1);
      // The thumbnail is the stored image, loaded from the API's image route.
      const thumbnail = row.getByRole('img', { name: 'A lighthouse in a storm' });
      await expect
        .poll(() =>
          thumbnail.evaluate(
            (image) => (image as unknown as { naturalWidth: number }).naturalWidth,
          ),
        )
        .toBeGreaterThan(0);
      await screenshotBothWidths(page, 'generations');
      // The day filters: nothing from tomorrow on, and it is back with "until today".
      const day = (offset: number) => {
        const date = new Date();
        date.setDate(date.getDate() + offset);
        const pad = (part: number) => String(part).padStart(2, '0');
        return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
      };
      await page.getByLabel('From').fill(day(1));
      await page.getByText('No generations match.').waitFor();
      await page.getByLabel('From').fill('');
      await page.getByLabel('Until').fill(day(0));
      await row.waitFor();

      await row.getByRole('button', { name: 'Refund' }).click();
      const dialog = page.getByRole('dialog', { name: 'Refund this generation' });
      await dialog.getByText('Give back 10 credits to the user?').waitFor();
      const confirm = dialog.getByRole('button', { name: 'Refund' });
      expect(await confirm.isDisabled()).toBe(true);
      await dialog.getByLabel('Reason').fill('Watermark in the result');
      await screenshotBothWidths(page, 'generation-refund');
      await confirm.click();
      await row.getByText('refunded', { exact: true }).waitFor();
      expect(await row.getByRole('button', { name: 'Refund' }).count()).toBe(0);

      await page.goto(`${origin}/admin/audit`);
      await page.getByLabel('Subject id').fill(id);
      const entry = page.getByTestId('audit-entry').filter({ hasText: 'generation.refund' });
      await entry.getByRole('cell', { name: 'Watermark in the result', exact: true }).waitFor();
      // Before the user filter, the first page lists other test files' generations too (one
      // shared database), whose images live in those files' own folders: their 404s are not ours.
      const othersImages = (text: string) =>
        /status of 404/.test(text) &&
        /\/api\/v1\/generations\/[^/]+\/images\//.test(text) &&
        !text.includes(id);
      expect(unexpected(errors).filter((text) => !othersImages(text))).toEqual([]);
    } finally {
      await session.close();
    }

    // The credits came back once: 30 − 10 + 10.
    const user = await app.inject({ url: `/api/v1/admin/users/${telegramId}`, headers: adminAuth });
    expect(user.json()).toMatchObject({ balance: 30 });
  }, 90_000);

  it('lists payments with the totals of the filter and the reconciliation report, and refunds one with a reason after confirming', async (context) => {
    if (!browser) return context.skip('no Chromium');
    const telegramId = await syncUser('Payer');
    const kept = await starPayment(telegramId);
    const refunded = await starPayment(telegramId);
    // A payment the bot never confirmed: reconciliation credits it and reports the correction.
    const missed = await starPayment(telegramId, false);
    const reconciled = await app.inject({
      method: 'POST',
      url: '/api/v1/admin/payments/reconcile',
      headers: adminAuth,
      payload: {},
    });
    expect(reconciled.statusCode, reconciled.body).toBe(200);

    const { context: session, page, errors } = await openPanel('/admin/payments');
    try {
      await signInWithToken(page);
      await page.getByRole('heading', { name: 'Payments', exact: true }).waitFor();
      await page.getByLabel('User').fill(String(telegramId));
      await expect.poll(() => page.getByTestId('payment').count()).toBe(3);
      const total = (label: string) =>
        page.getByTestId(`total-${label}`).locator('p').last().textContent();
      await expect.poll(() => total('Stars')).toBe(String(3 * STARS_PACKAGE.stars));
      expect(await total('Refunded')).toBe('0');
      const correction = page.getByTestId('correction').filter({ hasText: missed });
      await correction.getByText('missing payment credited').waitFor();
      await screenshotBothWidths(page, 'payments');

      const row = page.locator(`[data-testid="payment"][data-charge="${refunded}"]`);
      await row.getByRole('button', { name: 'Refund' }).click();
      const dialog = page.getByRole('dialog', { name: 'Refund this payment' });
      await dialog
        .getByText('Return 50 Stars through Telegram and take back 100 credits')
        .waitFor();
      const confirm = dialog.getByRole('button', { name: 'Refund' });
      expect(await confirm.isDisabled()).toBe(true);
      await dialog.getByLabel('Reason').fill('Bought the wrong package');
      await screenshotBothWidths(page, 'payment-refund');
      await confirm.click();
      await page.getByRole('status').getByText('Refunded; every credit taken back.').waitFor();
      await row.getByText('refunded', { exact: true }).waitFor();
      await expect.poll(() => total('Refunded')).toBe('1');
      expect(
        await page
          .locator(`[data-testid="payment"][data-charge="${kept}"]`)
          .getByRole('button', { name: 'Refund' })
          .count(),
      ).toBe(1);
      expect(unexpected(errors)).toEqual([]);
    } finally {
      await session.close();
    }

    // Telegram was asked once, for that payment only; the audit log has the reason.
    expect(
      telegram.calls
        .filter((call) => call.method === 'refundStarPayment')
        .map((call) => call.fields.telegram_payment_charge_id),
    ).toEqual([refunded]);
    const audit = await app.inject({
      url: `/api/v1/admin/audit?subject_id=${refunded}`,
      headers: adminAuth,
    });
    expect(audit.json().items).toEqual([
      expect.objectContaining({ reason: 'Bought the wrong package' }),
    ]);
    const user = await app.inject({ url: `/api/v1/admin/users/${telegramId}`, headers: adminAuth });
    expect(user.json()).toMatchObject({ balance: 2 * STARS_PACKAGE.credits });
  }, 90_000);

  it('changes a setting through its typed field after confirming with a reason, and puts the default back', async (context) => {
    if (!browser) return context.skip('no Chromium');
    const settingOf = async (key: string) => {
      const response = await app.inject({ url: '/api/v1/admin/settings', headers: adminAuth });
      return response.json().settings.find((setting: { key: string }) => setting.key === key) as {
        value: number;
        default: number;
        source: string;
      };
    };
    const before = await settingOf('BROADCAST_RATE');
    expect(before.source).toBe('environment');
    const changed = before.value + 1;
    const { context: session, page, errors } = await openPanel('/admin/settings');
    try {
      await signInWithToken(page);
      await page.getByRole('heading', { name: 'Settings' }).waitFor();
      const card = page.locator('[data-testid="setting"][data-key="BROADCAST_RATE"]');
      const field = card.getByRole('textbox', { name: 'BROADCAST_RATE' });
      expect(await field.inputValue()).toBe(String(before.value));
      await field.fill(String(changed));
      await page.getByRole('button', { name: 'Review 1 change' }).click();
      const dialog = page.getByRole('dialog', { name: 'Confirm the settings change' });
      await dialog
        .getByTestId('setting-change')
        .getByText(`${before.value} → ${changed}`)
        .waitFor();
      const save = dialog.getByRole('button', { name: 'Save' });
      expect(await save.isDisabled()).toBe(true);
      await dialog.getByLabel('Reason').fill('Telegram raised our limit');
      await screenshotBothWidths(page, 'settings-confirm');
      await save.click();
      await page.getByRole('status').getByText('Saved: 1 setting changed.').waitFor();
      await card.getByText('override', { exact: true }).waitFor();
      expect(await settingOf('BROADCAST_RATE')).toMatchObject({
        value: changed,
        source: 'override',
      });
      await screenshotBothWidths(page, 'settings');

      await card.getByRole('button', { name: 'Use the default' }).click();
      expect(await field.inputValue()).toBe(String(before.default));
      await page.getByRole('button', { name: 'Review 1 change' }).click();
      await dialog.getByText(`Default (environment): ${before.default}`).waitFor();
      await dialog.getByLabel('Reason').fill('Back to the configured rate');
      await save.click();
      await card.getByText('environment', { exact: true }).waitFor();
      expect(unexpected(errors)).toEqual([]);
    } finally {
      await session.close();
    }
    expect(await settingOf('BROADCAST_RATE')).toMatchObject({
      value: before.value,
      source: 'environment',
    });
    const audit = await app.inject({
      url: '/api/v1/admin/audit?action=settings.update&limit=2',
      headers: adminAuth,
    });
    expect(audit.json().items.map((entry: { reason: string }) => entry.reason)).toEqual([
      'Back to the configured rate',
      'Telegram raised our limit',
    ]);
  }, 90_000);

  it('edits a model, refuses a value out of bounds beside its field, sets a new price after confirming with a reason, and shows the price history and the audit entries', async (context) => {
    if (!browser) return context.skip('no Chromium');
    const key = await catalogModel('Panel model');
    const { context: session, page, errors } = await openPanel('/admin/models');
    try {
      await signInWithToken(page);
      await page.getByRole('heading', { name: 'Models and prices' }).waitFor();
      const card = page.locator(`[data-testid="model"][data-key="${key}"]`);
      await card.getByText('10 credits').waitFor();
      await card.getByText('2 current, 2 ever').waitFor();
      await card.getByTestId('route').getByText('1. wavespeed · test/text-to-image').waitFor();
      await card.getByText('inactive', { exact: true }).waitFor();
      // No account for wavespeed in this app: the catalog says why no one could generate with it.
      await card.getByText('no provider account').waitFor();
      await screenshotBothWidths(page, 'models');
      await card.getByRole('link', { name: 'Edit Panel model' }).click();

      await page.getByRole('heading', { name: 'Panel model' }).waitFor();
      const details = page.getByRole('region', { name: 'Details' });
      await details.getByRole('button', { name: 'Edit details' }).click();
      // What the API refuses is shown beside the field it names (its problem's errors).
      const typical = details.getByRole('textbox', { name: 'Typical seconds' });
      await typical.fill('0');
      await details.getByRole('textbox', { name: /^Name/ }).fill('Panel model renamed');
      const save = details.getByRole('button', { name: 'Save details' });
      await save.click();
      await expect.poll(() => typical.getAttribute('aria-invalid')).toBe('true');
      // The message is the field's own: its accessible description names it.
      const described = await typical.evaluate((input) =>
        (input.getAttribute('aria-describedby') ?? '')
          .split(/\s+/)
          .map((id: string) => (id ? input.ownerDocument.getElementById(id)?.textContent : ''))
          .join(' '),
      );
      expect(described).toContain('must be >= 1');
      expect((await adminModel(key)).name).toBe('Panel model');
      await screenshotBothWidths(page, 'model-field-error');

      await typical.fill('12');
      await details.getByLabel('Reason (audited, optional)').fill('Clearer name');
      await save.click();
      await details.getByRole('status').getByText('Saved.').waitFor();
      await page.getByRole('heading', { name: 'Panel model renamed' }).waitFor();
      expect(await adminModel(key)).toMatchObject({
        name: 'Panel model renamed',
        typical_seconds: 12,
      });

      // A new price: reviewed in a confirmation that shows old → new and the history.
      const prices = page.getByRole('region', { name: 'Prices' });
      await prices.getByRole('button', { name: 'Change prices' }).click();
      await prices.getByRole('group', { name: 'Price 1' }).getByLabel('Credits').fill('15');
      await prices.getByRole('button', { name: 'Review new prices' }).click();
      const dialog = page.getByRole('dialog', { name: 'Set new prices' });
      await dialog
        .getByTestId('price-change')
        .getByText('any parameters: 10 → 15 credits')
        .waitFor();
      await dialog.getByTestId('price-change').getByText('size = large: 25 → 25 credits').waitFor();
      await expect.poll(() => dialog.getByTestId('price-history-entry').count()).toBe(2);
      const confirm = dialog.getByRole('button', { name: 'Set prices' });
      expect(await confirm.isDisabled()).toBe(true);
      await dialog.getByLabel('Reason').fill('The provider raised its price');
      await screenshotBothWidths(page, 'model-prices-confirm');
      await confirm.click();
      await prices.getByRole('status').getByText('New prices set').waitFor();
      // The history: the two new prices current, the two old ones closed.
      const history = prices.getByTestId('price-history-entry');
      await expect.poll(() => history.count()).toBe(4);
      expect(await prices.getByText('current', { exact: true }).count()).toBe(2);
      await history.filter({ hasText: 'any parameters' }).filter({ hasText: '15' }).waitFor();
      await page.evaluate('window.scrollTo(0, 0)');
      await screenshotBothWidths(page, 'model');

      // Activated after confirming; the bot's catalog offers it at the new price.
      await page.getByRole('button', { name: 'Activate Panel model renamed' }).click();
      const activate = page.getByRole('dialog', { name: 'Activate this model' });
      await activate.getByRole('button', { name: 'Activate', exact: true }).click();
      await page.getByText('active', { exact: true }).waitFor();

      await page.getByRole('link', { name: 'Who changed this model, and why' }).click();
      expect(await page.getByLabel('Subject id').inputValue()).toBe(key);
      const entry = page.getByTestId('audit-entry').filter({ hasText: 'model.prices' });
      await entry
        .getByRole('cell', { name: 'The provider raised its price', exact: true })
        .waitFor();
      const update = page.getByTestId('audit-entry').filter({ hasText: 'Clearer name' });
      await update.getByRole('cell', { name: 'model.update', exact: true }).waitFor();

      await page.getByRole('link', { name: 'Models and prices' }).click();
      await card.getByText('15 credits').waitFor();
      await card.getByText('2 current, 4 ever').waitFor();
      expect(unexpectedBut422(errors)).toEqual([]);
    } finally {
      await session.close();
    }

    const catalog = await app.inject({ url: '/api/v1/models' });
    expect(
      (catalog.json().models as { key: string }[]).find((entry) => entry.key === key),
    ).toMatchObject({ name: 'Panel model renamed', price_credits: 15 });
    const audit = await app.inject({
      url: `/api/v1/admin/audit?subject_id=${key}&action=model.prices`,
      headers: adminAuth,
    });
    expect(audit.json().items).toEqual([
      expect.objectContaining({
        actor: expect.stringMatching(/^admin:/),
        reason: 'The provider raised its price',
        before: expect.objectContaining({
          prices: [
            expect.objectContaining({ credits: 10 }),
            expect.objectContaining({ credits: 25 }),
          ],
        }),
        after: expect.objectContaining({
          prices: [
            expect.objectContaining({ credits: 15 }),
            expect.objectContaining({ credits: 25 }),
          ],
        }),
      }),
    ]);
  }, 120_000);

  it('adds a model through the form, the refused key marked beside its field', async (context) => {
    if (!browser) return context.skip('no Chromium');
    const key = `panel-new-${randomUUID().slice(0, 8)}`;
    const { context: session, page, errors } = await openPanel('/admin/models');
    try {
      await signInWithToken(page);
      await page.getByRole('link', { name: 'New model' }).click();
      await page.getByRole('heading', { name: 'New model' }).waitFor();
      const keyField = page.getByRole('textbox', { name: 'Key' });
      await keyField.fill('Not A Key');
      await page.getByRole('textbox', { name: /^Name/ }).fill('Form model');
      await page.getByRole('textbox', { name: 'Provider', exact: true }).fill('wavespeed');
      await page.getByRole('textbox', { name: 'Provider model' }).fill('test/form-model');
      await page.getByRole('group', { name: 'Price 1' }).getByLabel('Credits').fill('7');
      await page.getByRole('switch', { name: 'Active: offered to users at once' }).uncheck();
      await page.getByRole('button', { name: 'Add the model' }).click();
      await expect.poll(() => keyField.getAttribute('aria-invalid')).toBe('true');
      await page.getByText('must match pattern').first().waitFor();
      await screenshotBothWidths(page, 'model-new');

      await keyField.fill(key);
      await page.getByRole('button', { name: 'Add the model' }).click();
      await page.getByRole('heading', { name: 'Form model' }).waitFor();
      expect(new URL(page.url()).pathname).toBe(`/admin/models/${key}`);
      expect(unexpectedBut422(errors)).toEqual([]);
    } finally {
      await session.close();
    }
    expect(await adminModel(key)).toMatchObject({
      name: 'Form model',
      kind: 'image',
      active: false,
      routes: [{ provider: 'wavespeed', provider_model: 'test/form-model' }],
      prices: [{ conditions: {}, credits: 7 }],
    });
  }, 90_000);

  it('shows support the models and prices without a way to change them', async (context) => {
    if (!browser) return context.skip('no Chromium');
    const key = await catalogModel('Support sees');
    const query = new URLSearchParams(
      Object.entries(widgetLogin(SUPPORT_OPERATOR_ID)).map(([name, value]): [string, string] => [
        name,
        String(value),
      ]),
    );
    const { context: session, page, errors } = await openPanel(`/admin/login?${query}`);
    try {
      await page.getByTestId('whoami').getByText('support').waitFor();
      await page.getByRole('link', { name: 'Models and prices' }).click();
      const card = page.locator(`[data-testid="model"][data-key="${key}"]`);
      await card.getByText('10 credits').waitFor();
      expect(await page.getByRole('link', { name: 'New model' }).count()).toBe(0);
      expect(await card.getByRole('button', { name: /Activate|Deactivate/ }).count()).toBe(0);
      await card.getByRole('link', { name: 'Open Support sees' }).click();
      await page.getByRole('heading', { name: 'Support sees' }).waitFor();
      await expect.poll(() => page.getByTestId('price-history-entry').count()).toBe(2);
      await page.getByText('Size (size): small, large (default small)').waitFor();
      expect(await page.getByRole('textbox').count()).toBe(0);
      expect(
        await page
          .getByRole('button', { name: /Edit|Change|Save|Review|Activate|Deactivate/ })
          .count(),
      ).toBe(0);
      expect(unexpected(errors)).toEqual([]);
    } finally {
      await session.close();
    }
  }, 60_000);

  it('signs an operator in from the Telegram Login redirect into an HttpOnly cookie, nothing in storage, and out again', async (context) => {
    if (!browser) return context.skip('no Chromium');
    const fields = widgetLogin(ADMIN_OPERATOR_ID);
    const query = new URLSearchParams(
      Object.entries(fields).map(([key, value]): [string, string] => [key, String(value)]),
    );
    const { context: session, page, errors } = await openPanel(`/admin/login?${query}`);
    try {
      await page.getByTestId('whoami').getByText(`operator:${ADMIN_OPERATOR_ID}`).waitFor();
      // The signed fields are gone from the address bar and history.
      expect(new URL(page.url()).search).toBe('');
      const cookies = await session.cookies();
      expect(cookies).toEqual([
        expect.objectContaining({
          name: 'operator_session',
          httpOnly: true,
          secure: true,
          sameSite: 'Strict',
          path: '/api/v1/admin',
        }),
      ]);
      expect(await page.evaluate('[localStorage.length, sessionStorage.length]')).toEqual([0, 0]);

      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByLabel('Admin token').waitFor();
      expect(await session.cookies()).toEqual([]);
      await page.reload();
      await page.getByLabel('Admin token').waitFor();
      expect(unexpected(errors)).toEqual([]);
    } finally {
      await session.close();
    }
  }, 60_000);
});

describe('serving the built apps', () => {
  it('answers every panel path with its page under a strict CSP, and caches only hashed assets for long', async () => {
    const page = await app.inject({ url: '/admin/users/42' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['cache-control']).toBe('no-cache');
    expect(page.headers['content-security-policy']).toContain(
      "script-src 'self' https://telegram.org",
    );
    expect(page.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(page.headers['x-frame-options']).toBe('SAMEORIGIN');

    const script = /src="(\/admin\/assets\/[^"]+\.js)"/.exec(page.body)?.[1];
    expect(script).toBeDefined();
    const asset = await app.inject({ url: script });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    // Compressed at build time: a browser that accepts brotli gets the brotli copy.
    const compressed = await app.inject({
      url: script,
      headers: { 'accept-encoding': 'br, gzip' },
    });
    expect(compressed.headers['content-encoding']).toBe('br');
    expect(compressed.headers['content-type']).toContain('javascript');
    expect(compressed.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(compressed.rawPayload.length).toBeLessThan(asset.rawPayload.length / 2);
    expect(brotliDecompressSync(compressed.rawPayload).equals(asset.rawPayload)).toBe(true);

    const missing = await app.inject({ url: '/admin/assets/gone-1234.js' });
    expect(missing.statusCode).toBe(404);
    expect(missing.headers['content-type']).toContain('application/problem+json');
  });

  it('lets Telegram frame the Mini App, and nobody frame the panel', async () => {
    const miniApp = await app.inject({ url: '/app/' });
    expect(miniApp.statusCode).toBe(200);
    expect(miniApp.headers['x-frame-options']).toBeUndefined();
    expect(miniApp.headers['content-security-policy']).toContain(
      'frame-ancestors https://web.telegram.org',
    );
    expect((await app.inject({ url: '/admin' })).headers.location).toBe('/admin/');
  });
});
