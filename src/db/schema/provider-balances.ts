import { sql } from 'drizzle-orm';
import { check, doublePrecision, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

export const providerBalanceStatuses = ['ok', 'low', 'unknown', 'error'] as const;
export type ProviderBalanceStatus = (typeof providerBalanceStatuses)[number];

/**
 * The last balance check of each provider account (src/services/provider-balances.ts): what it
 * held and when, and the guard's episodes. `low_since`: since when the balance has been below
 * MIN_PROVIDER_BALANCE (null: it is not); `recovered_from`: the start of the last episode that
 * ended. Operators are told once when an episode starts and once when it ends, by notice keys
 * made of these times.
 */
export const providerBalances = pgTable(
  'provider_balances',
  {
    provider: text('provider').primaryKey(),
    /** `ok`, `low` (below the minimum), `unknown` (no balance API), `error` (the last check failed). */
    status: text('status', { enum: providerBalanceStatuses }).notNull().default('unknown'),
    /** The last balance read, in `currency`; kept when a later check fails. */
    balance: doublePrecision('balance'),
    currency: text('currency'),
    /** When the balance was read. */
    balanceAt: timestamp('balance_at', { withTimezone: true }),
    /** When a check was last claimed (every process checks at most once a minute between them). */
    checkedAt: timestamp('checked_at', { withTimezone: true }).notNull().defaultNow(),
    /** Why the last check failed. */
    error: text('error'),
    lowSince: timestamp('low_since', { withTimezone: true }),
    recoveredFrom: timestamp('recovered_from', { withTimezone: true }),
  },
  () => [
    check(
      'provider_balances_status_valid',
      sql.raw(`status IN (${providerBalanceStatuses.map((s) => `'${s}'`).join(', ')})`),
    ),
  ],
);
