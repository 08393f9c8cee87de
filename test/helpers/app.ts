import type { FastifyInstance } from 'fastify';
import { type AppOverrides, buildApp } from '../../src/app.ts';
import { type Config, loadConfig } from '../../src/core/config.ts';
import type { DatabaseHandle } from '../../src/db/client.ts';
import { initDataSecret, signInitData } from '../../src/deps/telegram-init-data.ts';
import { sharedDatabase, silentLogger, testDatabaseUrl } from './database.ts';

export const BOT_TOKEN = 'test-bot-token-0123456789';
export const ADMIN_TOKEN = 'test-admin-token-0123456789';
export const TELEGRAM_BOT_TOKEN = '123456789:AAtest-telegram-bot-token-xyz';

export const botAuth = { authorization: `Bearer ${BOT_TOKEN}` };
export const adminAuth = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** A Mini App user's Authorization header: initData signed with the bot's token. */
export function miniAppAuth(telegramId: number, authDate = Math.floor(Date.now() / 1000)) {
  const initData = signInitData(
    {
      query_id: 'AAHdF6IQAAAAAN0XohDhrOrc',
      user: JSON.stringify({ id: telegramId, first_name: 'Mini', language_code: 'en' }),
      auth_date: String(authDate),
    },
    initDataSecret(TELEGRAM_BOT_TOKEN),
  );
  return { authorization: `tma ${initData}` };
}

/** The settings tests run with; a test overrides what it is about. */
export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATABASE_URL: testDatabaseUrl ?? 'memory://',
    API_TOKENS: BOT_TOKEN,
    ADMIN_TOKENS: ADMIN_TOKEN,
    TELEGRAM_BOT_TOKEN,
    RATE_LIMIT_MAX: '100000',
    // Tests change the catalog and look at it at once; the cache has its own test.
    CATALOG_CACHE_SECONDS: '0',
    // Deliveries of apps that do not set up a fake Telegram fail at once instead of going online.
    TELEGRAM_API_ROOT: 'http://127.0.0.1:9',
    ...overrides,
  });
}

/**
 * An app on the worker's shared database (or the one given); close it after the test. It runs no
 * job worker unless `app.worker` says so: tests that want one start it deliberately.
 */
export async function buildTestApp(
  overrides: Record<string, string> = {},
  database?: DatabaseHandle,
  app: Omit<AppOverrides, 'database' | 'logger'> = {},
): Promise<FastifyInstance> {
  return buildApp(testConfig(overrides), {
    database: database ?? (await sharedDatabase()),
    logger: silentLogger,
    worker: false,
    ...app,
  });
}
