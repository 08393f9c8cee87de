import { sql } from 'drizzle-orm';
import {
  bigint,
  check,
  date,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  smallint,
  timestamp,
} from 'drizzle-orm/pg-core';

/**
 * Users per UTC day, kept by triggers on `users` (migration 0030) in the statement that writes the
 * user: how many signed up that day (`created_at`), how many of those came with a referral code,
 * and how many were last seen that day (`last_seen_at`: a user moves from its old day to today at
 * its first sync of the day). Summed over a range they are GET /admin/stats's new, referred and
 * active users, and over every row the total, without reading `users`. Each day is split into 16
 * rows by user id (`shard`) so that concurrent syncs rarely wait for the same row's lock.
 */
export const statsUserDays = pgTable(
  'stats_user_days',
  {
    day: date('day').notNull(),
    shard: smallint('shard').notNull(),
    signedUp: integer('signed_up').notNull().default(0),
    referred: integer('referred').notNull().default(0),
    lastSeen: integer('last_seen').notNull().default(0),
  },
  (t) => [
    primaryKey({ columns: [t.day, t.shard] }),
    check('stats_user_days_shard_valid', sql`${t.shard} BETWEEN 0 AND 15`),
  ],
);

/** A model's generations accepted that day in one status: `[model_id, status, count]`. */
export type StatsDayGeneration = [number, string, number];

/**
 * One closed UTC day's numbers for GET /admin/stats, written once (src/services/admin-stats.ts:
 * by the worker's housekeeping, or by the first stats request that needs the day), in one
 * statement, when the day ended at least 15 minutes ago and none of its generations is still
 * queued or running. Every figure is keyed by a time column that never changes once written, so
 * the row stays true; what can still change later is subtracted at read time instead (a payment
 * refunded since, a free generation given back on a later day).
 */
export const statsDays = pgTable('stats_days', {
  day: date('day').primaryKey(),
  /** Generations accepted that day (`created_at`) by model and their final status. */
  generations: jsonb('generations').$type<StatsDayGeneration[]>().notNull(),
  /**
   * The succeeded ones by whole seconds from acceptance to success (`{"12": 40}`: 40 took
   * 12.000–12.999 s): the percentiles of any range are read from the sum of these.
   */
  durations: jsonb('durations').$type<Record<string, number>>().notNull(),
  /** Every Stars payment made that day, whether refunded since or not, and their Stars. */
  payments: integer('payments').notNull(),
  paymentStars: bigint('payment_stars', { mode: 'number' }).notNull(),
  /** Ledger sums of the entries booked that day, as GET /admin/stats defines them. */
  creditsSold: bigint('credits_sold', { mode: 'number' }).notNull(),
  creditsSpent: bigint('credits_spent', { mode: 'number' }).notNull(),
  creditsRefunded: bigint('credits_refunded', { mode: 'number' }).notNull(),
  creditsGivenFree: bigint('credits_given_free', { mode: 'number' }).notNull(),
  referralBonuses: integer('referral_bonuses').notNull(),
  referralCredits: bigint('referral_credits', { mode: 'number' }).notNull(),
  /** Free generations used that day and not given back on that same day. */
  trialUses: integer('trial_uses').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});

/**
 * The hours of a day that has no stats_days row yet (today, mostly), so that GET /admin/stats reads
 * the generations and ledger of today from rows too and computes only the last hour or so live.
 * Written like stats_days (an hour ended 15 minutes ago, none of its generations queued or
 * running) with the same figures; payments and free generations, few a day, stay live. Deleted
 * once their day has its stats_days row.
 */
export const statsHours = pgTable('stats_hours', {
  hour: timestamp('hour', { withTimezone: true }).primaryKey(),
  generations: jsonb('generations').$type<StatsDayGeneration[]>().notNull(),
  durations: jsonb('durations').$type<Record<string, number>>().notNull(),
  creditsSold: bigint('credits_sold', { mode: 'number' }).notNull(),
  creditsSpent: bigint('credits_spent', { mode: 'number' }).notNull(),
  creditsRefunded: bigint('credits_refunded', { mode: 'number' }).notNull(),
  creditsGivenFree: bigint('credits_given_free', { mode: 'number' }).notNull(),
  referralBonuses: integer('referral_bonuses').notNull(),
  referralCredits: bigint('referral_credits', { mode: 'number' }).notNull(),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
});
