import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseDotenv } from 'dotenv';

/**
 * The one place that reads the environment. Every setting is parsed and checked here once;
 * the rest of the code receives a frozen Config and never touches process.env.
 */

export type DatabaseConfig =
  | { kind: 'embedded'; dataDir: string | null }
  | { kind: 'postgres'; url: string; poolSize: number };

/** A credit package sold for Telegram Stars. */
export interface StarsPackage {
  readonly id: string;
  readonly credits: number;
  readonly stars: number;
}

export type GenerationProviderMode = 'local' | 'catalog';

export interface ProviderAccount {
  /** The API key or token; never logged. */
  readonly apiKey: string;
  readonly baseUrl: string;
  /** Verifies the provider's webhooks; without it we poll only. */
  readonly webhookSecret: string | null;
}

export type Language = 'uz' | 'ru' | 'en';

/** S3-compatible object storage for results and served references (storage/s3.ts). */
export interface S3Config {
  /** Unset: AWS S3 itself; else MinIO, R2, … (path-style addressing by default). */
  readonly endpoint: string | null;
  readonly bucket: string;
  readonly region: string;
  /** Unset: the SDK's own chain (instance role, AWS_* variables, …). */
  readonly accessKeyId: string | null;
  readonly secretAccessKey: string | null;
  readonly forcePathStyle: boolean;
  /** Clients are redirected to a presigned URL valid this long; 0 = the API streams the image. */
  readonly presignSeconds: number;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  readonly nodeEnv: 'development' | 'production' | 'test';
  readonly host: string;
  readonly port: number;
  readonly logLevel: LogLevel;
  readonly logPretty: boolean;
  /** Folder for embedded data (PGlite files, stored images); also holds the process lock. */
  readonly dataDir: string;
  readonly database: DatabaseConfig;
  readonly redisUrl: string | null;
  readonly runMigrations: boolean;
  readonly trustProxy: boolean;
  readonly corsOrigins: readonly string[];
  readonly rateLimit: {
    readonly enabled: boolean;
    readonly max: number;
    readonly windowSeconds: number;
  };
  readonly apiTokens: readonly string[];
  readonly adminTokens: readonly string[];
  readonly telegramBotToken: string | null;
  readonly telegramInitDataMaxAgeSeconds: number;
  /** Failed authentications one client address may make per minute; then 429. 0 = no limit. */
  readonly authFailureLimit: number;
  /** People who operate the business, by Telegram id (Telegram Login sessions, deps/auth.ts). */
  readonly operators: {
    readonly adminTelegramIds: readonly number[];
    readonly supportTelegramIds: readonly number[];
    /** How old a Telegram Login Widget authorization may be when it opens a session (seconds). */
    readonly loginMaxAgeSeconds: number;
    /** How long an operator session, and its cookie, lasts (seconds). */
    readonly sessionSeconds: number;
    /** The most credits (absolute value) a support operator may give or take in one adjustment. */
    readonly supportCreditLimit: number;
    /** The operators' Telegram chat: notices (alerts, reports, summaries) go there; null = none. */
    readonly adminChatId: number | null;
    /** The UTC hour from which the day before's report is sent to adminChatId (once a day). */
    readonly dailyReportHour: number;
    /** The bot's username (no @) the operator panel's Telegram Login Widget names; null = no widget. */
    readonly loginBotUsername: string | null;
  };
  readonly trialGenerations: number;
  readonly starsPackages: readonly StarsPackage[];
  readonly referrals: {
    /** Per cent of a referred user's paid credits its referrer earns (rounded down), 0–100. */
    readonly percent: number;
    /** Credits the referrer earns once, on the referred user's first paid top-up; 0 = none. */
    readonly joinBonus: number;
  };
  /** How long a process keeps the model catalog (GET /models) before reading it again; 0 = never. */
  readonly catalogCacheSeconds: number;
  readonly idempotencyKeyTtlHours: number;
  /** Minutes between reconciliations of Stars payments with Telegram's Star transactions; 0 = never. */
  readonly reconcileMinutes: number;
  readonly shutdownTimeoutSeconds: number;
  readonly generations: {
    /** Active (queued or running) generations a user may have at once. */
    readonly maxParallelPerUser: number;
    /** From acceptance until the generation fails (after one last query of the provider). */
    readonly timeoutSeconds: number;
    /** `local`: every model is drawn by the offline provider; `catalog`: each model's own provider. */
    readonly providerMode: GenerationProviderMode;
  };
  readonly providers: {
    readonly wavespeed: ProviderAccount | null;
    readonly replicate: ProviderAccount | null;
    /** Jobs a worker process runs at once per provider; `*` is the default for unnamed ones. */
    readonly concurrency: Readonly<Record<string, number>>;
    /** Seconds between two status queries of a provider job when no webhook arrives. */
    readonly pollSeconds: number;
    /** A provider account's balance below which its models are not offered; 0 = no guard. */
    readonly minBalance: number;
    /** Failed calls in a row (within a minute) that open a provider's circuit breaker. */
    readonly breakerFailures: number;
    /** How long an open breaker sends new jobs to the next route before it tries the provider again. */
    readonly breakerOpenSeconds: number;
  };
  /** Broadcast messages per second, shared by all workers. */
  readonly broadcastRate: number;
  /** Where this API is reachable from outside: providers' webhooks and links to stored images. */
  readonly publicBaseUrl: string | null;
  readonly storage: {
    /** Set: results live in this bucket; null: in DATA_DIR/results. */
    readonly s3: S3Config | null;
    /** The largest provider result we copy; a bigger one fails the generation (refunded). */
    readonly resultMaxBytes: number;
    /** The largest reference image a user may upload (POST /users/{telegram_id}/uploads). */
    readonly uploadMaxBytes: number;
    /** How long a reference served to a provider from our storage stays reachable. */
    readonly referenceUrlMinutes: number;
    /** Results older than this are deleted by housekeeping; 0 = kept forever (runtime setting). */
    readonly resultRetentionDays: number;
  };
  readonly worker: {
    /** Run the job worker inside the API process (always so on the embedded database). */
    readonly inApi: boolean;
    /** Jobs one worker process runs at once, all kinds together. */
    readonly concurrency: number;
    /** A claimed job is another worker's to take over when its lease runs out without a heartbeat. */
    readonly leaseSeconds: number;
  };
  /** The language of users who chose none and whose Telegram language is not one we speak. */
  readonly defaultLanguage: Language;
  readonly bot: {
    /** Run the Telegram bot inside the API process when TELEGRAM_BOT_TOKEN is set (npm start). */
    readonly inApi: boolean;
    /** Where a bot process (npm run start:bot) reaches the API, and its token from API_TOKENS. */
    readonly apiUrl: string | null;
    readonly apiToken: string | null;
    /** Set: Telegram posts updates here (webhook mode); unset: long polling. */
    readonly webhookUrl: string | null;
    /** Telegram sends it back in X-Telegram-Bot-Api-Secret-Token; webhook calls without it are refused. */
    readonly webhookSecret: string | null;
    /** Where a standalone bot process in webhook mode listens (it serves the webhook itself). */
    readonly port: number;
    /** Shown in /help. */
    readonly supportContact: string | null;
    /** Updates one user may send per minute before being asked to slow down (payments never count). */
    readonly throttlePerMinute: number;
  };
  readonly delivery: {
    readonly telegramApiRoot: string;
    readonly webhookUrl: string | null;
    readonly webhookSecret: string | null;
  };
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Readonly<Record<string, string | undefined>>;

class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  private raw(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  optionalString(name: string): string | null {
    return this.raw(name) ?? null;
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const parsed = /^-?\d+$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
      this.problems.push(`${name} must be an integer from ${min} to ${max}, got "${value}"`);
      return fallback;
    }
    return parsed;
  }

  boolean(name: string, fallback: boolean): boolean {
    const value = this.raw(name)?.toLowerCase();
    if (value === undefined) return fallback;
    if (['true', '1', 'yes', 'on'].includes(value)) return true;
    if (['false', '0', 'no', 'off'].includes(value)) return false;
    this.problems.push(`${name} must be true or false, got "${value}"`);
    return fallback;
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if ((allowed as readonly string[]).includes(value)) return value as T;
    this.problems.push(`${name} must be one of ${allowed.join(', ')}, got "${value}"`);
    return fallback;
  }

  list(name: string): string[] {
    const value = this.raw(name);
    if (value === undefined) return [];
    return value
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
  }

  /** Secrets are never echoed back in error messages. */
  tokens(name: string): string[] {
    const tokens = this.list(name);
    if (tokens.some((token) => token.length < 16)) {
      this.problems.push(`${name} must hold comma-separated tokens of at least 16 characters each`);
      return [];
    }
    return tokens;
  }
}

function parseDatabase(reader: EnvReader, url: string | null, dataDir: string): DatabaseConfig {
  const poolSize = reader.integer('DATABASE_POOL_SIZE', 10, 1, 500);
  if (url === null) return { kind: 'embedded', dataDir };
  if (url === 'memory://') return { kind: 'embedded', dataDir: null };
  if (/^postgres(ql)?:\/\//.test(url)) {
    try {
      new URL(url);
      return { kind: 'postgres', url, poolSize };
    } catch {
      // falls through to the problem below
    }
  }
  reader.problems.push(
    'DATABASE_URL must be unset (embedded database in DATA_DIR), memory:// (embedded, in memory) or a postgres://user:password@host:port/database URL',
  );
  return { kind: 'embedded', dataDir };
}

const DEFAULT_STARS_PACKAGES = 'starter:150:100,popular:500:300,pro:1500:800';

function parseStarsPackages(reader: EnvReader): StarsPackage[] {
  const raw = reader.string('STARS_PACKAGES', DEFAULT_STARS_PACKAGES);
  const packages: StarsPackage[] = [];
  for (const item of raw
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')) {
    const match = /^([a-z0-9][a-z0-9_-]{0,31}):(\d{1,9}):(\d{1,6})$/.exec(item);
    const credits = Number(match?.[2]);
    const stars = Number(match?.[3]);
    if (!match?.[1] || credits <= 0 || stars <= 0 || stars > 100_000) {
      reader.problems.push(
        `STARS_PACKAGES must be a comma list of id:credits:stars (e.g. ${DEFAULT_STARS_PACKAGES}; stars from 1 to 100000), got "${item}"`,
      );
      continue;
    }
    if (packages.some((existing) => existing.id === match[1])) {
      reader.problems.push(`STARS_PACKAGES names package "${match[1]}" twice`);
      continue;
    }
    packages.push({ id: match[1], credits, stars });
  }
  return packages;
}

function parseCorsOrigins(reader: EnvReader): string[] {
  const origins = reader.list('CORS_ORIGINS');
  for (const origin of origins) {
    if (origin === '*') continue;
    let valid = false;
    try {
      const parsed = new URL(origin);
      valid =
        (parsed.protocol === 'http:' || parsed.protocol === 'https:') && parsed.origin === origin;
    } catch {
      valid = false;
    }
    if (!valid) {
      reader.problems.push(
        `CORS_ORIGINS must be a comma list of origins like https://app.example.com (scheme, host, optional port, no path) or *, got "${origin}"`,
      );
    }
  }
  return origins;
}

function parseUrl(reader: EnvReader, name: string, fallback: string | null): string | null {
  const value = reader.optionalString(name) ?? fallback;
  if (value === null) return null;
  try {
    const parsed = new URL(value);
    if (parsed.protocol === 'http:' || parsed.protocol === 'https:')
      return value.replace(/\/+$/, '');
  } catch {
    // reported below
  }
  reader.problems.push(`${name} must be an http(s) URL, got "${value}"`);
  return fallback;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

/**
 * A webhook secret short enough to guess stops the start (never echoed). `standard`: Standard
 * Webhooks' `whsec_<base64>`, the key being the decoded bytes, of which the spec asks at least 24;
 * `text`: the characters after an optional `whsec_` are the key, at least 16 of them; `either`:
 * `standard` when it starts with `whsec_`, else `text`.
 */
function parseWebhookSecret(
  reader: EnvReader,
  name: string,
  format: 'standard' | 'text' | 'either',
): string | null {
  const value = reader.optionalString(name);
  if (value === null) return null;
  const key = value.startsWith('whsec_') ? value.slice('whsec_'.length) : value;
  if (format === 'standard' || (format === 'either' && key !== value)) {
    if (!BASE64.test(key) || Buffer.from(key, 'base64').length < 24) {
      reader.problems.push(
        `${name} must be whsec_ followed by the base64 of at least 24 bytes (a Standard Webhooks signing secret)`,
      );
    }
  } else if (key.length < 16) {
    reader.problems.push(`${name} must be at least 16 characters (after any whsec_ prefix)`);
  }
  return value;
}

function parseProviderAccount(
  reader: EnvReader,
  prefix: 'WAVESPEED' | 'REPLICATE',
  keyName: string,
  defaultBaseUrl: string,
): ProviderAccount | null {
  const apiKey = reader.optionalString(`${prefix}_${keyName}`);
  const baseUrl = parseUrl(reader, `${prefix}_API_BASE`, defaultBaseUrl) ?? defaultBaseUrl;
  // Replicate's key is the base64 after whsec_; WaveSpeed's is the text after it.
  const webhookSecret = parseWebhookSecret(
    reader,
    `${prefix}_WEBHOOK_SECRET`,
    prefix === 'REPLICATE' ? 'standard' : 'text',
  );
  return apiKey === null ? null : { apiKey, baseUrl, webhookSecret };
}

function parseS3(reader: EnvReader): S3Config | null {
  const bucket = reader.optionalString('S3_BUCKET');
  const endpoint = parseUrl(reader, 'S3_ENDPOINT', null);
  const accessKeyId = reader.optionalString('S3_ACCESS_KEY_ID');
  const secretAccessKey = reader.optionalString('S3_SECRET_ACCESS_KEY');
  if (bucket === null) {
    if (endpoint !== null || accessKeyId !== null) {
      reader.problems.push('S3_BUCKET must be set with S3_ENDPOINT or S3_ACCESS_KEY_ID');
    }
    return null;
  }
  if ((accessKeyId === null) !== (secretAccessKey === null)) {
    reader.problems.push(
      'S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY are set together or not at all',
    );
  }
  return {
    endpoint,
    bucket,
    region: reader.string('S3_REGION', 'us-east-1'),
    accessKeyId,
    secretAccessKey,
    forcePathStyle: reader.boolean('S3_FORCE_PATH_STYLE', endpoint !== null),
    presignSeconds: reader.integer('S3_PRESIGN_SECONDS', 300, 0, 7 * 86_400),
  };
}

/** `16` (every provider) or `wavespeed=8,replicate=4,*=16`. */
function parseProviderConcurrency(reader: EnvReader): Record<string, number> {
  const raw = reader.string('PROVIDER_CONCURRENCY', '16');
  const limits: Record<string, number> = { '*': 16 };
  for (const item of raw.split(',').map((part) => part.trim())) {
    const match = /^(?:([a-z0-9*_-]+)=)?(\d{1,4})$/.exec(item);
    const limit = Number(match?.[2]);
    if (!match || limit < 1 || limit > 1000) {
      reader.problems.push(
        `PROVIDER_CONCURRENCY must be a number from 1 to 1000, or a list like wavespeed=8,replicate=4,*=16, got "${item}"`,
      );
      continue;
    }
    limits[match[1] ?? '*'] = limit;
  }
  return limits;
}

/** Telegram ids of operators: positive integers, each in one list only. */
function parseOperators(reader: EnvReader): Config['operators'] {
  const ids = (name: string): number[] =>
    reader.list(name).flatMap((item) => {
      const id = /^[1-9][0-9]{0,15}$/.test(item) ? Number(item) : Number.NaN;
      if (Number.isSafeInteger(id)) return [id];
      reader.problems.push(`${name} must be a comma list of Telegram user ids, got "${item}"`);
      return [];
    });
  const adminTelegramIds = ids('ADMIN_TELEGRAM_IDS');
  const supportTelegramIds = ids('SUPPORT_TELEGRAM_IDS');
  const both = supportTelegramIds.filter((id) => adminTelegramIds.includes(id));
  if (both.length > 0) {
    reader.problems.push(
      `ADMIN_TELEGRAM_IDS and SUPPORT_TELEGRAM_IDS both name ${both.join(', ')}: an operator has one role`,
    );
  }
  return {
    adminTelegramIds,
    supportTelegramIds,
    loginMaxAgeSeconds: reader.integer('OPERATOR_LOGIN_MAX_AGE_SECONDS', 86_400, 60, 7 * 86_400),
    sessionSeconds: reader.integer('OPERATOR_SESSION_SECONDS', 43_200, 300, 30 * 86_400),
    supportCreditLimit: reader.integer('SUPPORT_CREDIT_LIMIT', 1000, 0, 1_000_000_000),
    adminChatId: parseChatId(reader, 'ADMIN_CHAT_ID'),
    dailyReportHour: reader.integer('DAILY_REPORT_HOUR', 6, 0, 23),
    loginBotUsername: parseBotUsername(reader, 'TELEGRAM_BOT_USERNAME'),
  };
}

/** A bot's username as BotFather gives it (5–32 letters, digits, _; ending in "bot"), without @. */
function parseBotUsername(reader: EnvReader, name: string): string | null {
  const value = reader.optionalString(name)?.replace(/^@/, '') ?? null;
  if (value === null || /^[A-Za-z][A-Za-z0-9_]{1,29}bot$/i.test(value)) return value;
  reader.problems.push(`${name} must be the bot's username, e.g. my_image_bot (got "${value}")`);
  return null;
}

/** A Telegram chat id: a user's (positive) or a group's or channel's (negative, -100… for supergroups). */
function parseChatId(reader: EnvReader, name: string): number | null {
  const value = reader.optionalString(name);
  if (value === null) return null;
  const id = /^-?[1-9][0-9]{0,15}$/.test(value) ? Number(value) : Number.NaN;
  if (Number.isSafeInteger(id)) return id;
  reader.problems.push(
    `${name} must be a Telegram chat id (e.g. -1001234567890 for a group), got "${value}"`,
  );
  return null;
}

export function loadConfig(env: Env): Config {
  const reader = new EnvReader(env);
  const nodeEnv = reader.oneOf('NODE_ENV', 'development', ['development', 'production', 'test']);
  const dataDir = resolve(reader.string('DATA_DIR', './data'));
  const redisUrl = reader.optionalString('REDIS_URL');
  if (redisUrl !== null && !/^rediss?:\/\/.+/.test(redisUrl)) {
    reader.problems.push('REDIS_URL must be a redis:// or rediss:// URL');
  }
  const database = parseDatabase(reader, reader.optionalString('DATABASE_URL'), dataDir);
  const embedded = database.kind === 'embedded';
  const config: Config = {
    nodeEnv,
    // The embedded default is one process on one machine, often a laptop: reachable from that
    // machine only until HOST says otherwise. PostgreSQL mode runs as a server (compose, a VPS).
    host: reader.string('HOST', embedded ? '127.0.0.1' : '0.0.0.0'),
    port: reader.integer('PORT', 8000, 0, 65535),
    logLevel: reader.oneOf<LogLevel>('LOG_LEVEL', 'info', [
      'fatal',
      'error',
      'warn',
      'info',
      'debug',
      'trace',
      'silent',
    ]),
    logPretty: reader.boolean('LOG_PRETTY', false),
    dataDir,
    database,
    redisUrl,
    runMigrations: reader.boolean('RUN_MIGRATIONS', true),
    trustProxy: reader.boolean('TRUST_PROXY', false),
    corsOrigins: parseCorsOrigins(reader),
    rateLimit: {
      enabled: reader.boolean('RATE_LIMIT_ENABLED', true),
      max: reader.integer('RATE_LIMIT_MAX', 120, 1, 1_000_000),
      windowSeconds: reader.integer('RATE_LIMIT_WINDOW_SECONDS', 60, 1, 86_400),
    },
    apiTokens: reader.tokens('API_TOKENS'),
    adminTokens: reader.tokens('ADMIN_TOKENS'),
    telegramBotToken: reader.optionalString('TELEGRAM_BOT_TOKEN'),
    telegramInitDataMaxAgeSeconds: reader.integer(
      'TELEGRAM_INIT_DATA_MAX_AGE_SECONDS',
      3600,
      60,
      30 * 86_400,
    ),
    authFailureLimit: reader.integer('AUTH_FAILURE_LIMIT', 20, 0, 1_000_000),
    operators: parseOperators(reader),
    trialGenerations: reader.integer('TRIAL_GENERATIONS', 3, 0, 1000),
    starsPackages: parseStarsPackages(reader),
    referrals: {
      percent: reader.integer('REFERRAL_PERCENT', 10, 0, 100),
      joinBonus: reader.integer('REFERRAL_JOIN_BONUS', 0, 0, 1_000_000),
    },
    catalogCacheSeconds: reader.integer('CATALOG_CACHE_SECONDS', 10, 0, 3600),
    idempotencyKeyTtlHours: reader.integer('IDEMPOTENCY_KEY_TTL_HOURS', 24, 24, 24 * 30),
    reconcileMinutes: reader.integer('RECONCILE_MINUTES', 60, 0, 7 * 24 * 60),
    shutdownTimeoutSeconds: reader.integer('SHUTDOWN_TIMEOUT_SECONDS', 10, 1, 600),
    generations: {
      maxParallelPerUser: reader.integer('MAX_PARALLEL_GENERATIONS_PER_USER', 2, 1, 100),
      timeoutSeconds: reader.integer('GENERATION_TIMEOUT_SECONDS', 600, 1, 86_400),
      providerMode: reader.oneOf<GenerationProviderMode>(
        'GENERATION_PROVIDER',
        embedded ? 'local' : 'catalog',
        ['local', 'catalog'],
      ),
    },
    providers: {
      wavespeed: parseProviderAccount(reader, 'WAVESPEED', 'API_KEY', 'https://api.wavespeed.ai'),
      replicate: parseProviderAccount(
        reader,
        'REPLICATE',
        'API_TOKEN',
        'https://api.replicate.com',
      ),
      concurrency: parseProviderConcurrency(reader),
      pollSeconds: reader.integer('PROVIDER_POLL_SECONDS', 3, 1, 300),
      minBalance: reader.integer('MIN_PROVIDER_BALANCE', 0, 0, 1_000_000),
      breakerFailures: reader.integer('PROVIDER_BREAKER_FAILURES', 5, 1, 1000),
      breakerOpenSeconds: reader.integer('PROVIDER_BREAKER_OPEN_SECONDS', 30, 1, 3600),
    },
    broadcastRate: reader.integer('BROADCAST_RATE', 25, 1, 1000),
    publicBaseUrl: parseUrl(reader, 'PUBLIC_BASE_URL', null),
    storage: {
      s3: parseS3(reader),
      resultMaxBytes: reader.integer('RESULT_MAX_MB', 50, 1, 1024) * 1024 * 1024,
      uploadMaxBytes: reader.integer('UPLOAD_MAX_MB', 10, 1, 100) * 1024 * 1024,
      referenceUrlMinutes: reader.integer('REFERENCE_URL_MINUTES', 60, 1, 7 * 24 * 60),
      resultRetentionDays: reader.integer('RESULT_RETENTION_DAYS', 0, 0, 36_500),
    },
    worker: {
      inApi: embedded || reader.boolean('RUN_WORKER_IN_API', false),
      concurrency: reader.integer('WORKER_CONCURRENCY', 64, 1, 10_000),
      leaseSeconds: reader.integer('JOB_LEASE_SECONDS', 60, 2, 3600),
    },
    defaultLanguage: reader.oneOf<Language>('DEFAULT_LANGUAGE', 'uz', ['uz', 'ru', 'en']),
    bot: {
      inApi: reader.boolean('RUN_BOT_IN_API', true),
      apiUrl: parseUrl(reader, 'API_URL', null),
      apiToken: reader.optionalString('API_TOKEN'),
      webhookUrl: parseUrl(reader, 'BOT_WEBHOOK_URL', null),
      webhookSecret: reader.optionalString('BOT_WEBHOOK_SECRET'),
      port: reader.integer('BOT_PORT', 8080, 0, 65535),
      supportContact: reader.optionalString('SUPPORT_CONTACT'),
      throttlePerMinute: reader.integer('BOT_THROTTLE_PER_MINUTE', 30, 1, 10_000),
    },
    delivery: {
      telegramApiRoot:
        parseUrl(reader, 'TELEGRAM_API_ROOT', 'https://api.telegram.org') ??
        'https://api.telegram.org',
      webhookUrl: parseUrl(reader, 'DELIVERY_WEBHOOK_URL', null),
      webhookSecret: parseWebhookSecret(reader, 'DELIVERY_WEBHOOK_SECRET', 'either'),
    },
  };
  if (config.delivery.webhookUrl !== null && config.delivery.webhookSecret === null) {
    reader.problems.push(
      'DELIVERY_WEBHOOK_SECRET must be set (at least 16 characters) when DELIVERY_WEBHOOK_URL is',
    );
  }
  if (config.bot.webhookUrl !== null) {
    const secret = config.bot.webhookSecret;
    if (secret === null || !/^[A-Za-z0-9_-]{16,256}$/.test(secret)) {
      reader.problems.push(
        'BOT_WEBHOOK_SECRET must be set with BOT_WEBHOOK_URL: 16 to 256 characters of A-Z, a-z, 0-9, _ and - (Telegram sends it back with every update)',
      );
    }
  }
  const botToken = config.telegramBotToken;
  if (botToken !== null && !/^\d+:[A-Za-z0-9_-]{20,}$/.test(botToken)) {
    reader.problems.push('TELEGRAM_BOT_TOKEN must look like 123456789:AA… as BotFather gives it');
  }
  if (reader.problems.length > 0) throw new ConfigError(reader.problems);
  return deepFreeze(config);
}

/**
 * The process environment over the `.env` file in the working directory (the environment wins,
 * as in docker compose). Only the process entries call this.
 */
export function readEnvironment(cwd = process.cwd()): Env {
  const path = resolve(cwd, '.env');
  const fromFile = existsSync(path) ? parseDotenv(readFileSync(path)) : {};
  return { ...fromFile, ...process.env };
}

function deepFreeze<T extends object>(value: T): T {
  for (const inner of Object.values(value)) {
    if (inner !== null && typeof inner === 'object') deepFreeze(inner);
  }
  return Object.freeze(value);
}

/** For process entries: the configuration, or a message naming what is wrong and exit 78. */
export function loadConfigOrExit(): Config {
  try {
    return loadConfig(readEnvironment());
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(
        `${error.message}\nSee .env.example for every setting and its default.\n`,
      );
      process.exit(78);
    }
    throw error;
  }
}
