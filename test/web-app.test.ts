import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { buildWeb } from '../web/build.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { buildTestApp, miniAppAuth } from './helpers/app.ts';
import {
  browserMissing,
  contextOptions,
  launchChromium,
  screenshotBothWidths,
  viewports,
} from './helpers/browser.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';
import { testPhoto } from './helpers/images.ts';
import { createTestModel, type TestModel, userWithCredits } from './helpers/pipeline.ts';

/**
 * The Mini App in a real browser, against the real API and worker on the test database, inside
 * a stand-in for Telegram: window.Telegram.WebApp with initData signed by the test bot's token,
 * as Telegram signs it and the API checks it.
 */

let app: FastifyInstance;
let provider: ScriptedProvider;
let model: TestModel;
let browser: Browser | null = null;
let origin: string;

beforeAll(async () => {
  await buildWeb();
  const database = await sharedDatabase();
  provider = new ScriptedProvider();
  app = await buildTestApp({ TRIAL_GENERATIONS: '0', PROVIDER_POLL_SECONDS: '1' }, database, {
    providers: new ProviderRegistry([provider], 'catalog'),
    delivery: { telegram: null, webhook: null, telegramFiles: null },
    worker: true,
  });
  model = await createTestModel(database.db, { provider: provider.name, maxReferences: 1 });
  await app.listen({ host: 'localhost', port: 0 });
  origin = `http://localhost:${(app.server.address() as AddressInfo).port}`;
  if (!browserMissing()) browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
});

describe('the Mini App', () => {
  it('says so when opened outside Telegram', async (context) => {
    if (!browser) return context.skip('no Chromium');
    const page = await (await browser.newContext(contextOptions)).newPage();
    await page.goto(`${origin}/app/`);
    await expect.poll(() => page.locator('h1').textContent()).toBeTruthy();
    expect(await page.locator('main').textContent()).toMatch(/Telegram/);
    await page.context().close();
  });

  it('composes with an uploaded photo, submits, and shows the image in the gallery', async (context) => {
    if (!browser) return context.skip('no Chromium');
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 100);
    const initData = miniAppAuth(telegramId).authorization.slice('tma '.length);
    const browserContext = await browser.newContext({
      ...contextOptions,
      viewport: viewports.phone,
    });
    // Telegram's own script would replace the stand-in below.
    await browserContext.route('https://telegram.org/**', (route) => route.abort());
    await browserContext.addInitScript(
      ({ initData }) => {
        (globalThis as unknown as { Telegram: unknown }).Telegram = {
          WebApp: {
            initData,
            // Telegram Desktop's night theme.
            themeParams: {
              bg_color: '#17212b',
              secondary_bg_color: '#232e3c',
              text_color: '#f5f5f5',
              hint_color: '#708499',
              button_color: '#5288c1',
              button_text_color: '#ffffff',
            },
            ready() {},
            expand() {},
          },
        };
      },
      { initData },
    );
    const page = await browserContext.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${origin}/app/`);
    // The user's language (en, from initData) and Telegram's theme.
    await page.getByRole('button', { name: /Create/ }).click();
    expect(
      await page.evaluate("document.documentElement.style.getPropertyValue('--tg-theme-bg-color')"),
    ).toBe('#17212b');
    await page.locator('select').first().selectOption(model.key);
    await page.getByRole('textbox').fill('a lighthouse at dusk');
    await page
      .locator('input[type=file]')
      .setInputFiles({ name: 'photo.png', mimeType: 'image/png', buffer: await testPhoto('png') });
    await page.locator('.uploads figure img').waitFor();
    // The quote: 10 credits for the test model's defaults.
    await expect.poll(() => page.locator('.quote').textContent()).toContain('10 credits');
    await screenshotBothWidths(page, 'app-composer');
    await page.getByRole('button', { name: /Start/ }).click();
    const image = page.locator('.gallery img[alt="a lighthouse at dusk"]');
    await image.waitFor({ timeout: 60_000 });
    await screenshotBothWidths(page, 'app-gallery');
    await image.click();
    await page.getByRole('dialog').waitFor();
    await screenshotBothWidths(page, 'app-viewer');
    // Again: the same request once more, a second image in the gallery.
    await page.getByRole('button', { name: /Again/ }).click();
    await expect
      .poll(() => page.locator('.gallery img[alt="a lighthouse at dusk"]').count(), {
        timeout: 60_000,
      })
      .toBe(2);
    // Use as reference: the image comes back to the composer as one of the user's uploads.
    await page.locator('.gallery img[alt="a lighthouse at dusk"]').first().click();
    await page.getByRole('button', { name: 'Use as reference' }).click();
    await page.locator('.uploads figure img').waitFor();
    expect(errors).toEqual([]);

    // What the browser did reached the API as this user's: charged once, the photo as reference.
    const generations = await app.inject({
      method: 'GET',
      url: `/api/v1/users/${telegramId}/generations`,
      headers: miniAppAuth(telegramId),
    });
    const [again, made] = generations.json().generations;
    expect(again).toMatchObject({ status: 'succeeded', references: made.references });
    expect(made).toMatchObject({
      status: 'succeeded',
      model: model.key,
      references: [{ kind: 'upload' }],
    });
    const [submitted] = provider.submissions.filter((s) => s.generationId === made.id);
    expect(submitted?.referenceUrls[0]).toMatch(/^data:image\/png;base64,/);
    await browserContext.close();
  }, 180_000);
});
