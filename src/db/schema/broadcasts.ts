import { sql } from 'drizzle-orm';
import {
  bigint,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  smallint,
  text,
  timestamp,
} from 'drizzle-orm/pg-core';
import { users } from './users.ts';

export const broadcastStatuses = ['draft', 'running', 'paused', 'completed', 'cancelled'] as const;
export type BroadcastStatus = (typeof broadcastStatuses)[number];

/**
 * A recipient's state. `sending` is written before the Bot API call: a row left `sending` by a
 * worker that died during the call is never sent again (Telegram has no idempotency key, so we
 * cannot know whether it arrived) and is counted as failed once its lease ran out. At most once
 * per recipient, never twice.
 */
export const broadcastRecipientStatuses = [
  'pending',
  'sending',
  'sent',
  'failed',
  'blocked',
] as const;
export type BroadcastRecipientStatus = (typeof broadcastRecipientStatuses)[number];

const inList = (column: string, values: readonly string[]) =>
  sql.raw(`${column} IN (${values.map((value) => `'${value}'`).join(', ')})`);

/**
 * A message operators send to an audience of users (the filters of GET /admin/users), through the
 * job queue: either a text with Telegram `entities` (never parse_mode, so nothing in it is read as
 * markup) or a copy of an existing message (copyMessage), with an optional URL button.
 */
export const broadcasts = pgTable(
  'broadcasts',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    status: text('status', { enum: broadcastStatuses }).notNull().default('draft'),
    text: text('text'),
    entities: jsonb('entities').$type<unknown[]>(),
    copyFromChatId: bigint('copy_from_chat_id', { mode: 'number' }),
    copyMessageId: bigint('copy_message_id', { mode: 'number' }),
    /** {text, url}: one inline URL button under the message; null for none. */
    button: jsonb('button').$type<{ text: string; url: string }>(),
    /** {filters: [...], query?: string}: who receives it, as GET /admin/users selects users. */
    audience: jsonb('audience').$type<{ filters: string[]; query?: string }>().notNull(),
    createdBy: text('created_by').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    startedAt: timestamp('started_at', { withTimezone: true }),
    completedAt: timestamp('completed_at', { withTimezone: true }),
    /** How many recipients the start snapshotted. */
    totalRecipients: integer('total_recipients').notNull().default(0),
    /** After Telegram's 429: no send of this broadcast before this time. */
    heldUntil: timestamp('held_until', { withTimezone: true }),
  },
  (t) => [
    check('broadcasts_status_valid', inList('status', broadcastStatuses)),
    check(
      'broadcasts_content_one_kind',
      sql`(${t.text} IS NOT NULL AND ${t.copyFromChatId} IS NULL AND ${t.copyMessageId} IS NULL)
          OR (${t.text} IS NULL AND ${t.entities} IS NULL AND ${t.copyFromChatId} IS NOT NULL
              AND ${t.copyMessageId} IS NOT NULL)`,
    ),
  ],
);

/** One row per recipient of a started broadcast: the primary key makes "once each" a fact. */
export const broadcastRecipients = pgTable(
  'broadcast_recipients',
  {
    broadcastId: bigint('broadcast_id', { mode: 'number' })
      .notNull()
      .references(() => broadcasts.id),
    userId: bigint('user_id', { mode: 'number' })
      .notNull()
      .references(() => users.id),
    telegramId: bigint('telegram_id', { mode: 'number' }).notNull(),
    status: text('status', { enum: broadcastRecipientStatuses }).notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    /** When a worker marked it `sending` (a row `sending` longer than the lease is counted failed). */
    claimedAt: timestamp('claimed_at', { withTimezone: true }),
    sentAt: timestamp('sent_at', { withTimezone: true }),
    error: text('error'),
  },
  (t) => [
    primaryKey({ columns: [t.broadcastId, t.userId] }),
    index('broadcast_recipients_pending_idx')
      .on(t.broadcastId, t.userId)
      .where(sql`${t.status} = 'pending'`),
    check('broadcast_recipients_status_valid', inList('status', broadcastRecipientStatuses)),
  ],
);

/**
 * The Bot API's send rate shared by every worker: one row whose `next_at` is the time of the next
 * free send slot. A worker reserves k slots with one UPDATE … RETURNING (next_at moves k slots of
 * 1/BROADCAST_RATE s on), so sends of all workers together are spaced at least 1/rate apart.
 */
export const broadcastPacing = pgTable(
  'broadcast_pacing',
  {
    id: smallint('id').primaryKey().default(1),
    nextAt: timestamp('next_at', { withTimezone: true }).notNull(),
  },
  (t) => [check('broadcast_pacing_one_row', sql`${t.id} = 1`)],
);
