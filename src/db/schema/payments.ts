import { sql } from 'drizzle-orm';
import {
  bigint,
  check,
  index,
  integer,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';
import { ledgerEntries } from './ledger.ts';
import { users } from './users.ts';

export const paymentStatuses = ['paid', 'refunded'] as const;

/**
 * Money that came in from outside (Telegram Stars). The charge id Telegram gives is unique, so a
 * payment is recorded — and credited — once however often Telegram or the bot retries.
 */
export const payments = pgTable(
  'payments',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    userId: bigint('user_id', { mode: 'number' })
      .notNull()
      .references(() => users.id),
    provider: text('provider').notNull().default('telegram_stars'),
    telegramPaymentChargeId: text('telegram_payment_charge_id').notNull(),
    providerPaymentChargeId: text('provider_payment_charge_id'),
    currency: text('currency').notNull(),
    /** In the currency's smallest unit; for Stars (XTR) the number of stars. */
    totalAmount: integer('total_amount').notNull(),
    invoicePayload: text('invoice_payload').notNull(),
    packageId: text('package_id').notNull(),
    credits: integer('credits').notNull(),
    status: text('status', { enum: paymentStatuses }).notNull().default('paid'),
    creditEntryId: bigint('credit_entry_id', { mode: 'number' }).references(() => ledgerEntries.id),
    refundEntryId: bigint('refund_entry_id', { mode: 'number' }).references(() => ledgerEntries.id),
    /** Credits the refund could not take back because the user had already spent them. */
    refundShortfall: integer('refund_shortfall'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    refundedAt: timestamp('refunded_at', { withTimezone: true }),
  },
  (t) => [
    uniqueIndex('payments_provider_charge_uq').on(t.provider, t.telegramPaymentChargeId),
    index('payments_user_idx').on(t.userId),
    index('payments_created_idx').on(t.createdAt),
    // The refunded payments of a range, subtracted from the Stars of its rolled-up days (stats).
    index('payments_refunded_created_idx').on(t.createdAt).where(sql`${t.status} = 'refunded'`),
    check('payments_total_amount_positive', sql`${t.totalAmount} > 0`),
    check('payments_credits_positive', sql`${t.credits} > 0`),
    check('payments_status_valid', sql`${t.status} IN ('paid', 'refunded')`),
    check(
      'payments_refund_consistent',
      sql`(${t.status} = 'paid' AND ${t.refundedAt} IS NULL) OR (${t.status} = 'refunded' AND ${t.refundedAt} IS NOT NULL AND ${t.refundShortfall} >= 0)`,
    ),
  ],
);

/**
 * Stripe-style Idempotency-Key records: the first response to (caller, key) is kept and replayed
 * for retries with the same request; a different request under the same key is refused.
 */
export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    /** Who sent the key ('bot:<token id>'): keys of different callers never collide. */
    scope: text('scope').notNull(),
    key: text('key').notNull(),
    /** SHA-256 of method, path and body: what "the same request" means. */
    requestHash: text('request_hash').notNull(),
    /** Until then the first request is running; after it, a stuck claim may be taken over. */
    lockedUntil: timestamp('locked_until', { withTimezone: true }),
    responseStatus: integer('response_status'),
    responseBody: text('response_body'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    completedAt: timestamp('completed_at', { withTimezone: true }),
  },
  (t) => [
    primaryKey({ name: 'idempotency_keys_pk', columns: [t.scope, t.key] }),
    index('idempotency_keys_created_idx').on(t.createdAt),
    check(
      'idempotency_keys_completed_has_response',
      sql`${t.completedAt} IS NULL OR ${t.responseStatus} IS NOT NULL`,
    ),
  ],
);
