import { sql } from 'drizzle-orm';
import {
  bigint,
  check,
  integer,
  jsonb,
  pgTable,
  smallint,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

export const paymentCorrectionKinds = [
  /** A user's Stars payment Telegram has and we did not: credited through confirmStarsPayment. */
  'payment_credited',
  /** A refund Telegram made of a payment we had as paid: applied through refundStarsPayment. */
  'refund_applied',
  /** A user's payment whose payload or amount fits no package: left to an operator. */
  'payment_unmatched',
] as const;
export type PaymentCorrectionKind = (typeof paymentCorrectionKinds)[number];

/**
 * What reconciling our payments with Telegram's Star transactions corrected: one row per
 * correction, at most one of each kind per charge id, so running it again records nothing new.
 */
export const paymentCorrections = pgTable(
  'payment_corrections',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    kind: text('kind', { enum: paymentCorrectionKinds }).notNull(),
    telegramPaymentChargeId: text('telegram_payment_charge_id').notNull(),
    telegramId: bigint('telegram_id', { mode: 'number' }),
    stars: integer('stars').notNull(),
    /** The transaction's date at Telegram. */
    transactionAt: timestamp('transaction_at', { withTimezone: true }).notNull(),
    /** What was done: credits, clawed back, shortfall, or why nothing could be. */
    details: jsonb('details').$type<Record<string, unknown>>(),
    /** Who ran the reconciliation: an operator, or `system` (the worker's schedule). */
    actor: text('actor').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('payment_corrections_kind_charge_uq').on(t.kind, t.telegramPaymentChargeId),
    check(
      'payment_corrections_kind_valid',
      sql.raw(`kind IN (${paymentCorrectionKinds.map((k) => `'${k}'`).join(', ')})`),
    ),
  ],
);

/**
 * Where reconciliation got to (one row, id 1): the newest transaction date it went through
 * (newest-first paging stops below it), how many transactions Telegram listed (chronological
 * paging starts near the end), and when it last ran (the schedule claims a run by moving it).
 */
export const paymentReconciliation = pgTable(
  'payment_reconciliation',
  {
    id: smallint('id').primaryKey().default(1),
    reconciledUntil: timestamp('reconciled_until', { withTimezone: true }),
    transactionsSeen: integer('transactions_seen').notNull().default(0),
    lastRunAt: timestamp('last_run_at', { withTimezone: true }),
  },
  (t) => [check('payment_reconciliation_one_row', sql`${t.id} = 1`)],
);
