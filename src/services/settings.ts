import { sql } from 'drizzle-orm';
import pg from 'pg';
import type { Config, StarsPackage } from '../core/config.ts';
import type { Logger } from '../core/logger.ts';
import type { Database, DatabaseHandle, Queryable, Transaction } from '../db/client.ts';
import { listenOnChannel } from '../db/job-queue.ts';
import { isoTimeText, selectRows } from '../db/rows.ts';
import { withTransaction } from '../db/transaction.ts';
import { type Operator, recordAudit } from './audit.ts';
import type { ServiceContext } from './context.ts';

/**
 * The runtime settings registry: the settings an operator may change while the service runs.
 * Each entry states its key (the environment variable that gives its default), its type and
 * bounds, where its default comes from in Config, and what it means. An operator's value lives in
 * the `settings` table and overrides the environment's; every process keeps the overrides cached,
 * re-reads them when one is changed (NOTIFY settings_changed, PostgreSQL and PGlite alike) and,
 * as a fallback, every REREAD_SECONDS. Code reads these settings only through `currentSettings`.
 */

export interface RuntimeSettings {
  TRIAL_GENERATIONS: number;
  MAX_PARALLEL_GENERATIONS_PER_USER: number;
  STARS_PACKAGES: readonly StarsPackage[];
  REFERRAL_PERCENT: number;
  REFERRAL_JOIN_BONUS: number;
  GENERATION_TIMEOUT_SECONDS: number;
  PROVIDER_CONCURRENCY: Readonly<Record<string, number>>;
  MIN_PROVIDER_BALANCE: number;
  BROADCAST_RATE: number;
  SUPPORT_CONTACT: string | null;
  SUPPORT_CREDIT_LIMIT: number;
  ADMIN_TELEGRAM_IDS: readonly number[];
  SUPPORT_TELEGRAM_IDS: readonly number[];
  RESULT_RETENTION_DAYS: number;
}

export type SettingKey = keyof RuntimeSettings;

export type SettingType =
  | 'integer'
  | 'boolean'
  | 'string'
  | 'stars_packages'
  | 'provider_concurrency'
  | 'telegram_ids';

export interface SettingBounds {
  minimum?: number;
  maximum?: number;
  /** Strings: the longest; lists: the most items. */
  max_length?: number;
  nullable?: boolean;
}

interface SettingEntry<Key extends SettingKey> {
  key: Key;
  type: SettingType;
  bounds: SettingBounds;
  meaning: string;
  fromConfig: (config: Config) => RuntimeSettings[Key];
  /** The value as stored, or the problem with it (named by the caller). */
  check: (value: unknown) => { value: RuntimeSettings[Key] } | { problem: string };
}

function integer(minimum: number, maximum: number) {
  return (value: unknown): { value: number } | { problem: string } =>
    typeof value === 'number' && Number.isSafeInteger(value) && value >= minimum && value <= maximum
      ? { value }
      : { problem: `must be an integer from ${minimum} to ${maximum}` };
}

const PACKAGE_ID = /^[a-z0-9][a-z0-9_-]{0,31}$/;

function checkStarsPackages(value: unknown): { value: StarsPackage[] } | { problem: string } {
  const problem =
    'must be a list of 1 to 20 {id, credits, stars}: id of a-z, 0-9, _ and - (at most 32), credits from 1 to 999999999, stars from 1 to 100000, ids unique';
  if (!Array.isArray(value) || value.length === 0 || value.length > 20) return { problem };
  const packages: StarsPackage[] = [];
  for (const item of value) {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) return { problem };
    const { id, credits, stars, ...rest } = item as Record<string, unknown>;
    if (Object.keys(rest).length > 0) return { problem };
    if (typeof id !== 'string' || !PACKAGE_ID.test(id)) return { problem };
    if (!('value' in integer(1, 999_999_999)(credits))) return { problem };
    if (!('value' in integer(1, 100_000)(stars))) return { problem };
    if (packages.some((existing) => existing.id === id)) return { problem };
    packages.push({ id, credits: credits as number, stars: stars as number });
  }
  return { value: packages };
}

const PROVIDER_NAME = /^[a-z0-9*_-]{1,32}$/;

function checkProviderConcurrency(
  value: unknown,
): { value: Record<string, number> } | { problem: string } {
  const problem =
    'must be an object of provider name (a-z, 0-9, _, -; * for the others) to a number from 1 to 1000, with * among them';
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { problem };
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0 || entries.length > 32) return { problem };
  const limits: Record<string, number> = {};
  for (const [name, limit] of entries) {
    if (!PROVIDER_NAME.test(name)) return { problem };
    if (!('value' in integer(1, 1000)(limit))) return { problem };
    limits[name] = limit as number;
  }
  if (!('*' in limits)) return { problem };
  return { value: limits };
}

/** Operators' Telegram ids: at most 100 positive ids, each once. */
function checkTelegramIds(value: unknown): { value: number[] } | { problem: string } {
  const problem = 'must be a list of at most 100 Telegram user ids (positive integers), each once';
  if (!Array.isArray(value) || value.length > 100) return { problem };
  const ids = value.filter((id): id is number => Number.isSafeInteger(id) && id > 0);
  return ids.length === value.length && new Set(ids).size === ids.length
    ? { value: ids }
    : { problem };
}

function checkSupportContact(value: unknown): { value: string | null } | { problem: string } {
  if (value === null) return { value: null };
  if (typeof value === 'string' && value.trim() !== '' && value.length <= 200) {
    return { value: value.trim() };
  }
  return { problem: 'must be null or a text of 1 to 200 characters' };
}

/** Every runtime setting; the order is the order GET /admin/settings lists them in. */
const registry: { [Key in SettingKey]: SettingEntry<Key> } = {
  TRIAL_GENERATIONS: {
    key: 'TRIAL_GENERATIONS',
    type: 'integer',
    bounds: { minimum: 0, maximum: 1000 },
    meaning: 'Free generations per Telegram user',
    fromConfig: (config) => config.trialGenerations,
    check: integer(0, 1000),
  },
  MAX_PARALLEL_GENERATIONS_PER_USER: {
    key: 'MAX_PARALLEL_GENERATIONS_PER_USER',
    type: 'integer',
    bounds: { minimum: 1, maximum: 100 },
    meaning: 'Queued + running generations one user may have; one more is 429',
    fromConfig: (config) => config.generations.maxParallelPerUser,
    check: integer(1, 100),
  },
  STARS_PACKAGES: {
    key: 'STARS_PACKAGES',
    type: 'stars_packages',
    bounds: { max_length: 20 },
    meaning: 'Credit packages sold for Telegram Stars: [{id, credits, stars}]',
    fromConfig: (config) => config.starsPackages,
    check: checkStarsPackages,
  },
  REFERRAL_PERCENT: {
    key: 'REFERRAL_PERCENT',
    type: 'integer',
    bounds: { minimum: 0, maximum: 100 },
    meaning: "A referrer's share of its referrals' paid credits, in per cent (rounded down)",
    fromConfig: (config) => config.referrals.percent,
    check: integer(0, 100),
  },
  REFERRAL_JOIN_BONUS: {
    key: 'REFERRAL_JOIN_BONUS',
    type: 'integer',
    bounds: { minimum: 0, maximum: 1_000_000 },
    meaning: "Credits a referrer earns once, on a referral's first paid top-up; 0 = none",
    fromConfig: (config) => config.referrals.joinBonus,
    check: integer(0, 1_000_000),
  },
  GENERATION_TIMEOUT_SECONDS: {
    key: 'GENERATION_TIMEOUT_SECONDS',
    type: 'integer',
    bounds: { minimum: 1, maximum: 86_400 },
    meaning:
      'Seconds from acceptance until a generation fails and is given back (for generations accepted after a change)',
    fromConfig: (config) => config.generations.timeoutSeconds,
    check: integer(1, 86_400),
  },
  PROVIDER_CONCURRENCY: {
    key: 'PROVIDER_CONCURRENCY',
    type: 'provider_concurrency',
    bounds: { minimum: 1, maximum: 1000 },
    meaning: 'Jobs one worker process runs at once per provider ({"wavespeed": 8, "*": 16})',
    fromConfig: (config) => config.providers.concurrency,
    check: checkProviderConcurrency,
  },
  MIN_PROVIDER_BALANCE: {
    key: 'MIN_PROVIDER_BALANCE',
    type: 'integer',
    bounds: { minimum: 0, maximum: 1_000_000 },
    meaning:
      "A provider account's balance (in its currency) below which its models are not offered; 0 = no guard",
    fromConfig: (config) => config.providers.minBalance,
    check: integer(0, 1_000_000),
  },
  BROADCAST_RATE: {
    key: 'BROADCAST_RATE',
    type: 'integer',
    bounds: { minimum: 1, maximum: 1000 },
    meaning: 'Broadcast messages per second, shared by all workers',
    fromConfig: (config) => config.broadcastRate,
    check: integer(1, 1000),
  },
  SUPPORT_CONTACT: {
    key: 'SUPPORT_CONTACT',
    type: 'string',
    bounds: { max_length: 200, nullable: true },
    meaning: "Whom users contact for help (shown in the bot's /help); null = none",
    fromConfig: (config) => config.bot.supportContact,
    check: checkSupportContact,
  },
  SUPPORT_CREDIT_LIMIT: {
    key: 'SUPPORT_CREDIT_LIMIT',
    type: 'integer',
    bounds: { minimum: 0, maximum: 1_000_000_000 },
    meaning:
      'The most credits a support operator may give or take in one adjustment (admins: no limit)',
    fromConfig: (config) => config.operators.supportCreditLimit,
    check: integer(0, 1_000_000_000),
  },
  ADMIN_TELEGRAM_IDS: {
    key: 'ADMIN_TELEGRAM_IDS',
    type: 'telegram_ids',
    bounds: { max_length: 100 },
    meaning:
      'Telegram ids of operators with the role admin; one taken off is refused at its next request',
    fromConfig: (config) => config.operators.adminTelegramIds,
    check: checkTelegramIds,
  },
  SUPPORT_TELEGRAM_IDS: {
    key: 'SUPPORT_TELEGRAM_IDS',
    type: 'telegram_ids',
    bounds: { max_length: 100 },
    meaning:
      'Telegram ids of operators with the role support (an id also among the admins is an admin)',
    fromConfig: (config) => config.operators.supportTelegramIds,
    check: checkTelegramIds,
  },
  RESULT_RETENTION_DAYS: {
    key: 'RESULT_RETENTION_DAYS',
    type: 'integer',
    bounds: { minimum: 0, maximum: 36_500 },
    meaning:
      'Days a stored result image is kept (both storage backends; deleted by housekeeping); 0 = forever',
    fromConfig: (config) => config.storage.resultRetentionDays,
    check: integer(0, 36_500),
  },
};

export const settingKeys = Object.keys(registry) as SettingKey[];

export function isSettingKey(key: string): key is SettingKey {
  return Object.hasOwn(registry, key);
}

/** How often a process reads the overrides again even when told nothing (a lost NOTIFY). */
const REREAD_SECONDS = 10;
const CHANNEL = 'settings_changed';

interface Override {
  value: unknown;
  updated_at: string;
  updated_by: string;
}

interface CachedOverrides {
  readAt: number;
  overrides: Map<SettingKey, Override>;
  /** Settings resolved per Config (tests run apps of different environments on one database). */
  resolved: WeakMap<Config, RuntimeSettings>;
}

interface SettingsCache {
  current: CachedOverrides | null;
  reading: Promise<CachedOverrides> | null;
  /** A change was announced while a read was under way: read once more after it. */
  again: boolean;
}

const caches = new WeakMap<object, SettingsCache>();

function cacheOf(db: Database): SettingsCache {
  let cache = caches.get(db);
  if (!cache) {
    cache = { current: null, reading: null, again: false };
    caches.set(db, cache);
  }
  return cache;
}

async function readOverrides(db: Queryable): Promise<Map<SettingKey, Override>> {
  const rows = await selectRows<Override & { key: string }>(
    db,
    sql`SELECT key, value, ${sql.raw(isoTimeText('updated_at'))} AS updated_at, updated_by FROM settings`,
  );
  const overrides = new Map<SettingKey, Override>();
  for (const row of rows) {
    // A key the registry no longer has, or a value it no longer accepts, is ignored.
    if (!isSettingKey(row.key)) continue;
    if (!('value' in registry[row.key].check(row.value))) continue;
    overrides.set(row.key, row);
  }
  return overrides;
}

/** Reads the overrides again (once at a time; a change announced meanwhile reads once more). */
function reread(db: Database): Promise<CachedOverrides> {
  const cache = cacheOf(db);
  if (cache.reading) {
    cache.again = true;
    return cache.reading;
  }
  cache.again = false;
  const reading = readOverrides(db)
    .then((overrides) => {
      const fresh = { readAt: Date.now(), overrides, resolved: new WeakMap() };
      cache.current = fresh;
      return fresh;
    })
    .finally(() => {
      cache.reading = null;
      if (cache.again) reread(db).catch(() => undefined);
    });
  cache.reading = reading;
  return reading;
}

function resolve(config: Config, cached: CachedOverrides): RuntimeSettings {
  let settings = cached.resolved.get(config);
  if (!settings) {
    const values: Record<string, unknown> = {};
    for (const key of settingKeys) {
      const override = cached.overrides.get(key);
      values[key] = override
        ? (registry[key].check(override.value) as { value: unknown }).value
        : registry[key].fromConfig(config);
    }
    settings = Object.freeze(values) as unknown as RuntimeSettings;
    cached.resolved.set(config, settings);
  }
  return settings;
}

/**
 * The settings in force: the operators' values over the environment's. From this process's
 * cache; the first call reads the table, a cache older than REREAD_SECONDS is read again in the
 * background (the stale values serve meanwhile).
 */
export async function currentSettings(ctx: ServiceContext): Promise<RuntimeSettings> {
  const cache = cacheOf(ctx.db);
  const cached = cache.current ?? (await reread(ctx.db));
  if (Date.now() - cached.readAt > REREAD_SECONDS * 1000) reread(ctx.db).catch(() => undefined);
  return resolve(ctx.config, cached);
}

/**
 * On PostgreSQL the settings' LISTEN holds a connection of its own, outside the pool: closing the
 * database (pool.end(), which waits for every connection checked out) never waits for it; the
 * watcher's stop closes it.
 */
function ownConnections(handle: DatabaseHandle): DatabaseHandle {
  const pool = handle.pool;
  if (!pool) return handle;
  const connections = {
    connect: async () => {
      const client = new pg.Client(pool.options) as pg.Client & {
        release: (error?: Error) => void;
      };
      // Whatever a closed connection emits later is no one's business (the listener has its own).
      client.on('error', () => undefined);
      client.release = () => {
        client.end().catch(() => undefined);
      };
      try {
        await client.connect();
      } catch (error) {
        client.release();
        throw error;
      }
      return client;
    },
  };
  return { ...handle, pool: connections as unknown as pg.Pool };
}

const watchers = new WeakMap<object, { count: number; stop: Promise<() => Promise<void>> }>();

/**
 * Re-reads this database's settings whenever a change is announced (one LISTEN per database
 * handle, however many apps and workers share it). Answers a function that stops watching.
 */
export async function watchSettings(
  handle: DatabaseHandle,
  logger?: Pick<Logger, 'info' | 'warn'>,
): Promise<() => Promise<void>> {
  let watcher = watchers.get(handle.db);
  if (!watcher) {
    const onChange = () => {
      reread(handle.db).catch((error: unknown) =>
        logger?.warn({ err: error }, 'could not read the settings after a change'),
      );
    };
    // The fallback for a change announced while no one listened: read again every REREAD_SECONDS.
    const timer = setInterval(
      () => reread(handle.db).catch(() => undefined),
      REREAD_SECONDS * 1000,
    );
    timer.unref();
    const options = logger ? { logger } : {};
    const stop = listenOnChannel(ownConnections(handle), CHANNEL, onChange, options).then(
      (stopListening) => async () => {
        clearInterval(timer);
        await stopListening();
      },
      (error: unknown) => {
        clearInterval(timer);
        throw error;
      },
    );
    watcher = { count: 0, stop };
    watchers.set(handle.db, watcher);
    stop.catch(() => watchers.delete(handle.db));
  }
  const active = watcher;
  const stopListening = await active.stop;
  active.count++;
  let stopped = false;
  return async () => {
    if (stopped) return;
    stopped = true;
    active.count--;
    if (active.count > 0) return;
    if (watchers.get(handle.db) === active) watchers.delete(handle.db);
    // The database may be closed already (its owner closed it first): nothing is listening then.
    await stopListening().catch(() => undefined);
  };
}

export interface SettingView {
  key: SettingKey;
  type: SettingType;
  value: unknown;
  default: unknown;
  source: 'environment' | 'override';
  bounds: SettingBounds;
  meaning: string;
  updated_at: string | null;
  updated_by: string | null;
}

function views(config: Config, cached: CachedOverrides): SettingView[] {
  const settings = resolve(config, cached);
  return settingKeys.map((key) => {
    const entry = registry[key];
    const override = cached.overrides.get(key);
    return {
      key,
      type: entry.type,
      value: settings[key],
      default: entry.fromConfig(config),
      source: override ? 'override' : 'environment',
      bounds: entry.bounds,
      meaning: entry.meaning,
      updated_at: override?.updated_at ?? null,
      updated_by: override?.updated_by ?? null,
    };
  });
}

/** Every setting as the operator sees it, read fresh from the table. */
export async function listSettings(ctx: ServiceContext): Promise<SettingView[]> {
  return views(ctx.config, await reread(ctx.db));
}

export interface SettingProblem {
  key: string;
  message: string;
}

/**
 * Checks each value against its entry: the problems, each naming its key (none: all valid).
 * `null` for a setting that cannot be null resets it to the environment's default.
 */
export function checkSettingValues(values: Record<string, unknown>): SettingProblem[] {
  const problems: SettingProblem[] = [];
  for (const [key, value] of Object.entries(values)) {
    if (!isSettingKey(key)) {
      problems.push({ key, message: 'is not a runtime setting' });
      continue;
    }
    const entry = registry[key];
    if (value === null && !entry.bounds.nullable) continue;
    const checked = entry.check(value);
    if ('problem' in checked) problems.push({ key, message: checked.problem });
  }
  return problems;
}

export interface SettingChange {
  key: SettingKey;
  before: { value: unknown; source: 'environment' | 'override' };
  after: { value: unknown; source: 'environment' | 'override' };
}

/**
 * Stores the values (checked first with checkSettingValues) in the caller's transaction: `null`
 * for a setting that cannot be null removes the override. Answers each change with its value
 * before and after (for the audit log). Call `announceSettingsChange` once it commits.
 */
async function writeSettings(
  tx: Transaction,
  config: Config,
  values: Record<string, unknown>,
  actor: string,
): Promise<SettingChange[]> {
  // Every writer locks the table's rows in key order: two PATCHes never deadlock.
  const keys = Object.keys(values).filter(isSettingKey).sort();
  await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext('settings'))`);
  const before = await readOverrides(tx);
  const changes: SettingChange[] = [];
  for (const key of keys) {
    const entry = registry[key];
    const raw = values[key];
    const reset = raw === null && !entry.bounds.nullable;
    const old = before.get(key);
    const beforeView = old
      ? { value: (entry.check(old.value) as { value: unknown }).value, source: 'override' as const }
      : { value: entry.fromConfig(config), source: 'environment' as const };
    if (reset) {
      await tx.execute(sql`DELETE FROM settings WHERE key = ${key}`);
      changes.push({
        key,
        before: beforeView,
        after: { value: entry.fromConfig(config), source: 'environment' },
      });
      continue;
    }
    const checked = entry.check(raw);
    if ('problem' in checked) throw new Error(`${key} ${checked.problem}`);
    await tx.execute(
      sql`INSERT INTO settings (key, value, updated_at, updated_by)
          VALUES (${key}, ${JSON.stringify(checked.value)}::jsonb, now(), ${actor})
          ON CONFLICT (key) DO UPDATE
          SET value = excluded.value, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
    );
    changes.push({ key, before: beforeView, after: { value: checked.value, source: 'override' } });
  }
  return changes;
}

/** After the change commits: this process reads it at once, the others when told. */
async function announceSettingsChange(db: Database): Promise<void> {
  await reread(db);
  await db.execute(sql`SELECT pg_notify(${CHANNEL}, '')`).catch(() => undefined);
}

/**
 * PATCH /admin/settings: the values (checked first with checkSettingValues) written and audited
 * in one transaction (`settings.update`, each changed key's value before and after), then
 * announced to every process.
 */
export async function updateSettings(
  ctx: ServiceContext,
  values: Record<string, unknown>,
  operator: Operator,
  reason: string,
): Promise<{ changes: SettingChange[]; settings: SettingView[] }> {
  const changes = await withTransaction(ctx.db, async (tx) => {
    const written = await writeSettings(tx, ctx.config, values, operator.actor);
    await recordAudit(tx, {
      ...operator,
      action: 'settings.update',
      before: Object.fromEntries(written.map((change) => [change.key, change.before])),
      after: Object.fromEntries(written.map((change) => [change.key, change.after])),
      reason,
    });
    return written;
  });
  await announceSettingsChange(ctx.db);
  return { changes, settings: await listSettings(ctx) };
}
