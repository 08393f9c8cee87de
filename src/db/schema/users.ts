import { sql } from 'drizzle-orm';
import {
  type AnyPgColumn,
  bigint,
  boolean,
  check,
  index,
  jsonb,
  pgTable,
  text,
  timestamp,
} from 'drizzle-orm/pg-core';

/** The languages the bot speaks; a user's choice is one of them (null: not chosen yet). */
export const userLanguages = ['uz', 'ru', 'en'] as const;
export type UserLanguage = (typeof userLanguages)[number];

/**
 * What a user chose to keep between sessions: the model it last picked and, per model, parameter
 * values. Keys and values are short strings; the API checks the shape and the size.
 */
export interface UserPreferences {
  model?: string;
  parameters?: Record<string, Record<string, string>>;
}

/**
 * Letters and digits no one confuses when reading a code aloud or off a screen (no 0/O, 1/I/L).
 * `new_referral_code()` (migration 0008) draws from the same alphabet.
 */
export const REFERRAL_CODE_ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ';
export const REFERRAL_CODE_LENGTH = 8;

export const users = pgTable(
  'users',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    // Telegram promises at most 52 significant bits, so a JS number holds it exactly.
    telegramId: bigint('telegram_id', { mode: 'number' }).notNull().unique(),
    username: text('username'),
    firstName: text('first_name'),
    lastName: text('last_name'),
    /** What Telegram says the user's client speaks; `language` is what the user chose. */
    languageCode: text('language_code'),
    isPremium: boolean('is_premium').notNull().default(false),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    /** The user's own code to invite others with; made by the database when the row is made. */
    referralCode: text('referral_code').notNull().unique().default(sql`new_referral_code()`),
    /** Who invited the user: set once, when the user is created with a known code, never after. */
    referredBy: bigint('referred_by', { mode: 'number' }).references((): AnyPgColumn => users.id),
    language: text('language', { enum: userLanguages }),
    preferences: jsonb('preferences').$type<UserPreferences>().notNull().default({}),
    bannedAt: timestamp('banned_at', { withTimezone: true }),
    banReason: text('ban_reason'),
    /** The last POST /users/sync: when the bot last heard from the user. */
    lastSeenAt: timestamp('last_seen_at', { withTimezone: true }),
    /** When a delivery to the user's private chat was refused with 403: it blocked the bot. */
    blockedAt: timestamp('blocked_at', { withTimezone: true }),
    /**
     * The balance after the user's last ledger entry, kept by the ledger's own insert trigger in
     * the same statement (migrations 0023, 0026); no code writes it. The ledger stays the truth;
     * this copy lets the operators' list filter and show balances without reading the ledger per
     * user.
     */
    balance: bigint('balance', { mode: 'number' }).notNull().default(0),
    /**
     * The user has a payment with status 'paid': kept by the payments' own trigger in the statement
     * that writes the payment (migration 0028); no code writes it. Payments stay the truth; this
     * copy puts the operators' filter `paying` into an index beside last_seen_at.
     */
    paying: boolean('paying').notNull().default(false),
  },
  (t) => [
    check('users_telegram_id_positive', sql`${t.telegramId} > 0`),
    check(
      'users_referral_code_form',
      sql.raw(`referral_code ~ '^[${REFERRAL_CODE_ALPHABET}]{${REFERRAL_CODE_LENGTH}}$'`),
    ),
    check('users_not_referred_by_self', sql`${t.referredBy} <> ${t.id}`),
    check(
      'users_language_valid',
      sql.raw(`language IN (${userLanguages.map((l) => `'${l}'`).join(', ')})`),
    ),
    check(
      'users_preferences_object',
      sql`jsonb_typeof(${t.preferences}) = 'object' AND octet_length(${t.preferences}::text) <= 8192`,
    ),
    check(
      'users_ban_reason_only_when_banned',
      sql`${t.banReason} IS NULL OR ${t.bannedAt} IS NOT NULL`,
    ),
    index('users_referred_by_idx').on(t.referredBy),
    // The operators' user list and stats (src/services/admin-users.ts, admin-stats.ts): the
    // filter `new` and the users who signed up in a range are an index range, and the few banned
    // or blocked users are found (and counted) without reading every user. None of these columns
    // changes on a sync.
    index('users_created_idx').on(t.createdAt),
    index('users_banned_idx').on(t.id).where(sql`${t.bannedAt} IS NOT NULL`),
    index('users_blocked_idx').on(t.id).where(sql`${t.blockedAt} IS NOT NULL`),
    // Filters active_7d and active_30d, alone or with `paying` (migration 0028). last_seen_at
    // changes on a sync, so these make a sync's update non-HOT: measured in docs/benchmarks.md.
    index('users_last_seen_idx').on(t.lastSeenAt),
    index('users_paying_last_seen_idx').on(t.lastSeenAt).where(sql`${t.paying}`),
    // No index on balance (migration 0027): the ledger trigger writes it on every entry, and an
    // indexed balance would make each of those updates rewrite every index of users.
    check('users_balance_not_negative', sql`${t.balance} >= 0`),
  ],
);
