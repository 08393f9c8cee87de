import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { type Config, loadConfig } from '../../src/core/config.ts';
import type { DatabaseHandle } from '../../src/db/client.ts';
import { sharedDatabase, silentLogger, testDatabaseUrl } from './database.ts';

export const BOT_TOKEN = 'test-bot-token-0123456789';
export const ADMIN_TOKEN = 'test-admin-token-0123456789';
export const TELEGRAM_BOT_TOKEN = '123456789:AAtest-telegram-bot-token-xyz';

export const botAuth = { authorization: `Bearer ${BOT_TOKEN}` };
export const adminAuth = { authorization: `Bearer ${ADMIN_TOKEN}` };

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
    ...overrides,
  });
}

/** An app on the worker's shared database (or the one given); close it after the test. */
export async function buildTestApp(
  overrides: Record<string, string> = {},
  database?: DatabaseHandle,
): Promise<FastifyInstance> {
  return buildApp(testConfig(overrides), {
    database: database ?? (await sharedDatabase()),
    logger: silentLogger,
  });
}
