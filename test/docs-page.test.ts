import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, BOT_TOKEN, botAuth, buildTestApp, miniAppAuth } from './helpers/app.ts';
import { browserMissing, contextOptions, launchChromium } from './helpers/browser.ts';
import { freshTelegramId } from './helpers/database.ts';
import { ADMIN_OPERATOR_ID, operatorSettings, widgetLogin } from './helpers/operators.ts';

/**
 * The docs page (/docs, Swagger UI) in a real browser: Authorize with a scheme of the document,
 * then "Try it out" and "Execute" on an operation, as a developer new to the API would. The
 * request Swagger UI builds from the document must carry the credential and be answered.
 */

let app: FastifyInstance;
let browser: Browser | null = null;
let origin: string;

beforeAll(async () => {
  app = await buildTestApp(operatorSettings);
  await app.listen({ host: 'localhost', port: 0 });
  origin = `http://localhost:${(app.server.address() as AddressInfo).port}`;
  if (!browserMissing()) browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
});

/** Opens Authorize, gives `scheme` its value, and closes the dialog. */
async function authorize(page: Page, scheme: string, value: string): Promise<void> {
  await page.locator('.scheme-container button.authorize').click();
  const container = page.locator('.auth-container', {
    has: page.locator(`h4:has-text("${scheme}")`),
  });
  await container.locator('input').first().fill(value);
  await container.locator('button.authorize').click();
  await container.locator('button.btn-done').click();
}

/** Try it out on the operation, fills its parameters, executes it; the status Swagger UI shows. */
async function execute(
  page: Page,
  tag: string,
  operationId: string,
  parameters: Record<string, string>,
  body?: object,
): Promise<{ status: string; curl: string }> {
  const operation = page.locator(`#operations-${tag}-${operationId}`);
  await operation.locator('.opblock-summary').first().click();
  await operation.locator('button.try-out__btn').click();
  for (const [name, value] of Object.entries(parameters)) {
    await operation.locator(`tr[data-param-name="${name}"] input`).fill(value);
  }
  if (body !== undefined) {
    await operation.locator('textarea.body-param__text').fill(JSON.stringify(body));
  }
  await operation.locator('button.execute').click();
  const status = operation
    .locator('.live-responses-table tr.response .response-col_status')
    .first();
  await status.waitFor();
  return {
    status: (await status.textContent())?.trim() ?? '',
    curl: (await operation.locator('.curl-command').textContent()) ?? '',
  };
}

describe('the docs page, in Chromium', () => {
  it('authorizes with the bot token and calls an operation with it', async (context) => {
    if (!browser) return context.skip('no Chromium');
    const telegramId = freshTelegramId();
    const synced = await app.inject({
      method: 'POST',
      url: '/api/v1/users/sync',
      headers: botAuth,
      payload: { telegram_id: telegramId, first_name: 'Dilnoza' },
    });
    expect(synced.statusCode).toBe(201);
    const session = await browser.newContext(contextOptions);
    const page = await session.newPage();
    try {
      await page.goto(`${origin}/docs/`);
      await authorize(page, 'bot', BOT_TOKEN);
      const answer = await execute(page, 'users', 'getUserBalance', {
        telegram_id: String(telegramId),
      });
      expect(answer.curl).toContain(`Authorization: Bearer ${BOT_TOKEN}`);
      expect(answer.status).toBe('200');
      await page.locator(`#operations-users-getUserBalance .opblock-summary`).first().click();

      // The request body Swagger UI fills in is the document's example, sent as it is.
      const created = await execute(page, 'users', 'syncUser', {});
      expect(created.curl).toContain('"first_name": "Dilnoza"');
      expect(['200', '201']).toContain(created.status);
    } finally {
      await session.close();
    }
  });

  it('authorizes a Mini App user (tma initData) for its own data, and an admin token for the admin routes', async (context) => {
    if (!browser) return context.skip('no Chromium');
    const telegramId = freshTelegramId();
    const synced = await app.inject({
      method: 'POST',
      url: '/api/v1/users/sync',
      headers: botAuth,
      payload: { telegram_id: telegramId, first_name: 'Dilnoza' },
    });
    expect(synced.statusCode).toBe(201);
    const session = await browser.newContext(contextOptions);
    const page = await session.newPage();
    try {
      await page.goto(`${origin}/docs/`);
      await authorize(page, 'miniApp', miniAppAuth(telegramId).authorization);
      const own = await execute(page, 'users', 'getUserTrial', { telegram_id: String(telegramId) });
      expect(own.curl).toContain('Authorization: tma ');
      expect(own.status).toBe('200');

      await authorize(page, 'admin', ADMIN_TOKEN);
      const user = await execute(page, 'admin', 'adminGetUser', {
        telegram_id: String(telegramId),
      });
      expect(user.curl).toContain(`Authorization: Bearer ${ADMIN_TOKEN}`);
      expect(user.status).toBe('200');
    } finally {
      await session.close();
    }
  });

  it('signs an operator in on the page, and the browser carries its session cookie to the admin routes', async (context) => {
    if (!browser) return context.skip('no Chromium');
    const session = await browser.newContext(contextOptions);
    const page = await session.newPage();
    try {
      await page.goto(`${origin}/docs/`);
      const signedIn = await execute(
        page,
        'admin',
        'adminSignIn',
        {},
        widgetLogin(ADMIN_OPERATOR_ID),
      );
      expect(signedIn.status).toBe('200');
      const me = await execute(page, 'admin', 'adminGetSession', {});
      expect(me.curl).not.toContain('Authorization');
      expect(me.status).toBe('200');
      const body = await page
        .locator('#operations-admin-adminGetSession .live-responses-table .microlight')
        .first()
        .textContent();
      expect(body).toContain(`"telegram_id": ${ADMIN_OPERATOR_ID}`);
    } finally {
      await session.close();
    }
  });
});
