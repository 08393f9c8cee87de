import { jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * Runtime settings an operator changed: each row overrides the environment's default of one entry
 * of the settings registry (src/services/settings.ts), which checks the value before it is stored.
 * No row: the environment's value applies.
 */
export const settings = pgTable('settings', {
  key: text('key').primaryKey(),
  value: jsonb('value').$type<unknown>().notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  /** Who changed it last (the operator's principal label). */
  updatedBy: text('updated_by').notNull(),
});
