import { sql } from 'drizzle-orm';
import { bigint, check, integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

export const operatorNoticeStatuses = ['sending', 'sent', 'failed', 'unknown'] as const;
export type OperatorNoticeStatus = (typeof operatorNoticeStatuses)[number];

/**
 * A message to the operators' Telegram chat (ADMIN_CHAT_ID), one row per notice key: the row is
 * claimed (`sending`) before the Bot API call, so however many processes and restarts try the
 * same notice it is sent at most once. `failed`: Telegram answered that it did not send it, so a
 * later try of the same key may claim it again (a few times); `unknown`: the call got no answer
 * (it may have arrived), never tried again.
 */
export const operatorNotices = pgTable(
  'operator_notices',
  {
    key: text('key').primaryKey(),
    status: text('status', { enum: operatorNoticeStatuses }).notNull().default('sending'),
    chatId: bigint('chat_id', { mode: 'number' }).notNull(),
    attempts: integer('attempts').notNull().default(1),
    claimedAt: timestamp('claimed_at', { withTimezone: true }).notNull().defaultNow(),
    sentAt: timestamp('sent_at', { withTimezone: true }),
    error: text('error'),
  },
  () => [
    check(
      'operator_notices_status_valid',
      sql.raw(`status IN (${operatorNoticeStatuses.map((s) => `'${s}'`).join(', ')})`),
    ),
  ],
);
