import { sql } from 'drizzle-orm';
import {
  bigint,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';
import { users } from './users.ts';

export const ledgerEntryKinds = [
  'topup',
  'bonus',
  'admin_adjustment',
  'generation_charge',
  'generation_refund',
  'referral_bonus',
  'payment_refund',
  /** A referral bonus taken back from the referrer because the payment that earned it was refunded. */
  'referral_clawback',
] as const;
export type LedgerEntryKind = (typeof ledgerEntryKinds)[number];

/**
 * Append-only: the database refuses UPDATE, DELETE and TRUNCATE (see the ledger migration).
 * `balance_after` is the user's balance including this entry; a BEFORE INSERT trigger computes it
 * (and `user_entry_no`) under a lock on the user's row, so the balance reads from the user's newest
 * entry in O(1), always equals SUM(amount), and can never go below zero whatever the caller does.
 * Ordering is by `user_entry_no`, not `id`: identities are handed out before the lock is taken.
 */
export const ledgerEntries = pgTable(
  'ledger_entries',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    userId: bigint('user_id', { mode: 'number' })
      .notNull()
      .references(() => users.id),
    amount: integer('amount').notNull(),
    /** 1, 2, 3… per user, assigned by the trigger under the user's row lock: the ledger's order. */
    userEntryNo: integer('user_entry_no').notNull().default(0),
    balanceAfter: bigint('balance_after', { mode: 'number' }).notNull().default(0),
    kind: text('kind', { enum: ledgerEntryKinds }).notNull(),
    /** What the entry pays for or comes from, e.g. ('generation', '<uuid>') or ('payment', '42'). */
    referenceType: text('reference_type'),
    referenceId: text('reference_id'),
    /** Makes an effect happen once: a refund of a charge, the credit of a payment, a client retry. */
    idempotencyKey: text('idempotency_key'),
    reason: text('reason'),
    /** Who caused the entry: 'system', 'bot:<token id>', 'admin:<token id>'. */
    actor: text('actor').notNull().default('system'),
    metadata: jsonb('metadata').$type<Record<string, unknown>>(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('ledger_entries_user_entry_no_uq').on(t.userId, t.userEntryNo),
    uniqueIndex('ledger_entries_idempotency_key_uq').on(t.idempotencyKey),
    index('ledger_entries_reference_idx').on(t.referenceType, t.referenceId),
    // Operators' statistics read a range of days (GET /admin/stats).
    index('ledger_entries_created_idx').on(t.createdAt),
    check('ledger_entries_amount_nonzero', sql`${t.amount} <> 0`),
    check('ledger_entries_balance_not_negative', sql`${t.balanceAfter} >= 0`),
    check(
      'ledger_entries_kind_valid',
      sql.raw(`kind IN (${ledgerEntryKinds.map((k) => `'${k}'`).join(', ')})`),
    ),
  ],
);
