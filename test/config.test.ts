import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/core/config.ts';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return [...error.problems];
    throw error;
  }
  throw new Error('configuration was accepted');
}

describe('loadConfig', () => {
  it('has sane defaults: embedded database in ./data, port 8000, migrations on, rate limit on', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 8000,
      host: '127.0.0.1',
      dataDir: resolve('./data'),
      database: { kind: 'embedded', dataDir: resolve('./data') },
      redisUrl: null,
      runMigrations: true,
      corsOrigins: [],
      rateLimit: { enabled: true, max: 120, windowSeconds: 60 },
      apiTokens: [],
      adminTokens: [],
      telegramBotToken: null,
      trialGenerations: 3,
      logLevel: 'info',
    });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.rateLimit)).toBe(true);
  });

  it('listens on this machine only on the embedded database, on every interface on PostgreSQL', () => {
    expect(loadConfig({}).host).toBe('127.0.0.1');
    expect(loadConfig({ DATABASE_URL: 'postgres://app@db:5432/imagegen' }).host).toBe('0.0.0.0');
    expect(loadConfig({ HOST: '0.0.0.0' }).host).toBe('0.0.0.0');
    expect(loadConfig({ HOST: '::1', DATABASE_URL: 'postgres://app@db/x' }).host).toBe('::1');
  });

  it('reads every setting', () => {
    const config = loadConfig({
      PORT: '9000',
      HOST: '127.0.0.1',
      DATABASE_URL: 'postgres://app:secret@db:5432/imagegen',
      DATABASE_POOL_SIZE: '25',
      REDIS_URL: 'redis://cache:6379',
      RUN_MIGRATIONS: 'false',
      CORS_ORIGINS: 'https://a.example.com,http://localhost:5173',
      RATE_LIMIT_ENABLED: 'no',
      RATE_LIMIT_MAX: '10',
      RATE_LIMIT_WINDOW_SECONDS: '5',
      API_TOKENS: 'aaaaaaaaaaaaaaaa1,bbbbbbbbbbbbbbbb2',
      ADMIN_TOKENS: 'cccccccccccccccc3',
      TELEGRAM_BOT_TOKEN: '123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ',
      TRIAL_GENERATIONS: '5',
      LOG_LEVEL: 'debug',
    });
    expect(config).toMatchObject({
      port: 9000,
      host: '127.0.0.1',
      database: { kind: 'postgres', url: 'postgres://app:secret@db:5432/imagegen', poolSize: 25 },
      redisUrl: 'redis://cache:6379',
      runMigrations: false,
      corsOrigins: ['https://a.example.com', 'http://localhost:5173'],
      rateLimit: { enabled: false, max: 10, windowSeconds: 5 },
      apiTokens: ['aaaaaaaaaaaaaaaa1', 'bbbbbbbbbbbbbbbb2'],
      adminTokens: ['cccccccccccccccc3'],
      telegramBotToken: '123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ',
      trialGenerations: 5,
      logLevel: 'debug',
    });
  });

  it('memory:// is an in-memory embedded database', () => {
    expect(loadConfig({ DATABASE_URL: 'memory://' }).database).toEqual({
      kind: 'embedded',
      dataDir: null,
    });
  });

  it.each([
    ['PORT', 'eighty', /PORT must be an integer from 0 to 65535, got "eighty"/],
    ['PORT', '70000', /PORT must be an integer/],
    ['RATE_LIMIT_MAX', '0', /RATE_LIMIT_MAX must be an integer from 1/],
    ['RATE_LIMIT_WINDOW_SECONDS', '1.5', /RATE_LIMIT_WINDOW_SECONDS must be an integer/],
    ['TRIAL_GENERATIONS', '-1', /TRIAL_GENERATIONS must be an integer from 0/],
    ['RUN_MIGRATIONS', 'sometimes', /RUN_MIGRATIONS must be true or false/],
    ['RATE_LIMIT_ENABLED', 'maybe', /RATE_LIMIT_ENABLED must be true or false/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL must be one of/],
    ['DATABASE_URL', 'mysql://x', /DATABASE_URL must be unset/],
    ['REDIS_URL', 'localhost:6379', /REDIS_URL must be a redis:\/\//],
    ['CORS_ORIGINS', 'https://a.example.com/path', /CORS_ORIGINS must be a comma list of origins/],
    ['CORS_ORIGINS', 'a.example.com', /CORS_ORIGINS must be a comma list of origins/],
    ['TELEGRAM_BOT_TOKEN', 'not-a-token', /TELEGRAM_BOT_TOKEN must look like/],
  ])('refuses %s=%s naming the variable and what it expects', (name, value, message) => {
    const problems = problemsOf({ [name]: value });
    expect(problems.join('\n')).toMatch(message);
  });

  it('refuses short tokens without echoing them', () => {
    const problems = problemsOf({ API_TOKENS: 'short-secret' });
    expect(problems.join('\n')).toMatch(
      /API_TOKENS must hold comma-separated tokens of at least 16/,
    );
    expect(problems.join('\n')).not.toContain('short-secret');
  });

  it('keeps Mini App initData an hour and limits failed authentications to 20 a minute by default', () => {
    expect(loadConfig({})).toMatchObject({
      telegramInitDataMaxAgeSeconds: 3600,
      authFailureLimit: 20,
    });
    expect(
      loadConfig({ TELEGRAM_INIT_DATA_MAX_AGE_SECONDS: '86400', AUTH_FAILURE_LIMIT: '0' }),
    ).toMatchObject({ telegramInitDataMaxAgeSeconds: 86_400, authFailureLimit: 0 });
    expect(problemsOf({ AUTH_FAILURE_LIMIT: '-1' }).join('\n')).toMatch(
      /AUTH_FAILURE_LIMIT must be an integer from 0/,
    );
  });

  describe('webhook secrets too short to resist guessing stop the start, naming the variable', () => {
    // Standard Webhooks: "Signing secret: Random. At least 24 bytes" — the base64 after whsec_.
    const bytes = (n: number) => `whsec_${Buffer.alloc(n, 7).toString('base64')}`;
    it.each([
      [
        'WAVESPEED_WEBHOOK_SECRET',
        'whsec_0123456789abcde',
        /WAVESPEED_WEBHOOK_SECRET must be at least 16 characters/,
      ],
      ['WAVESPEED_WEBHOOK_SECRET', 'short-secret', /WAVESPEED_WEBHOOK_SECRET must be at least 16/],
      [
        'REPLICATE_WEBHOOK_SECRET',
        bytes(16),
        /REPLICATE_WEBHOOK_SECRET must be whsec_ followed by the base64 of at least 24 bytes/,
      ],
      [
        'REPLICATE_WEBHOOK_SECRET',
        'whsec_not base64 at all, though long enough',
        /REPLICATE_WEBHOOK_SECRET must be whsec_/,
      ],
      ['DELIVERY_WEBHOOK_SECRET', 'short-secret', /DELIVERY_WEBHOOK_SECRET must be at least 16/],
      [
        'DELIVERY_WEBHOOK_SECRET',
        bytes(12),
        /DELIVERY_WEBHOOK_SECRET must be whsec_ followed by the base64 of at least 24/,
      ],
    ])('%s=%s', (name, value, message) => {
      const problems = problemsOf({ [name]: value }).join('\n');
      expect(problems).toMatch(message);
      expect(problems).not.toContain(value);
    });

    it('accepts secrets of the documented shapes', () => {
      const config = loadConfig({
        WAVESPEED_API_KEY: 'key',
        WAVESPEED_WEBHOOK_SECRET: 'whsec_0123456789abcdef',
        REPLICATE_API_TOKEN: 'token',
        REPLICATE_WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
        DELIVERY_WEBHOOK_URL: 'https://bot.example.com/hook',
        DELIVERY_WEBHOOK_SECRET: bytes(32),
      });
      expect(config.providers.replicate?.webhookSecret).toBe(
        'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      );
      expect(config.providers.wavespeed?.webhookSecret).toBe('whsec_0123456789abcdef');
      expect(config.delivery.webhookSecret).toBe(bytes(32));
      expect(
        problemsOf({ DELIVERY_WEBHOOK_URL: 'https://bot.example.com/hook' }).join('\n'),
      ).toMatch(/DELIVERY_WEBHOOK_SECRET must be set/);
    });
  });

  it('reports every problem at once', () => {
    expect(problemsOf({ PORT: 'x', RATE_LIMIT_MAX: 'y', LOG_LEVEL: 'z' })).toHaveLength(3);
  });
});
