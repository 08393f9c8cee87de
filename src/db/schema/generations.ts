import { sql } from 'drizzle-orm';
import {
  bigint,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  smallint,
  text,
  timestamp,
  unique,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import { modelCatalog, modelPrices } from './catalog.ts';
import { ledgerEntries } from './ledger.ts';
import { users } from './users.ts';

export const generationStatuses = [
  'queued',
  'running',
  'succeeded',
  'failed',
  'cancelled',
] as const;
export type GenerationStatus = (typeof generationStatuses)[number];
export const paymentMethods = ['credits', 'trial'] as const;

const inList = (column: string, values: readonly string[]) =>
  sql.raw(`${column} IN (${values.map((v) => `'${v}'`).join(', ')})`);

/** Trial uses are never deleted: giving one back stamps `returned_at`. A generation uses at most one. */
export const trialUses = pgTable(
  'trial_uses',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    userId: bigint('user_id', { mode: 'number' })
      .notNull()
      .references(() => users.id),
    /** The generation that used it; null for a trial spent outside the pipeline. */
    generationRequestId: uuid('generation_request_id').references(() => generationRequests.id),
    usedAt: timestamp('used_at', { withTimezone: true }).notNull().defaultNow(),
    returnedAt: timestamp('returned_at', { withTimezone: true }),
    returnReason: text('return_reason'),
  },
  (t) => [
    index('trial_uses_user_idx').on(t.userId),
    index('trial_uses_used_idx').on(t.usedAt),
    // Free generations given back on a later UTC day than their use (an operator's refund, a
    // failure after midnight): the stats subtract them from the days they were used on.
    index('trial_uses_returned_later_idx')
      .on(t.usedAt)
      .where(
        sql`(${t.returnedAt} AT TIME ZONE 'UTC')::date > (${t.usedAt} AT TIME ZONE 'UTC')::date`,
      ),
    uniqueIndex('trial_uses_generation_uq').on(t.generationRequestId),
    check(
      'trial_uses_return_after_use',
      sql`${t.returnedAt} IS NULL OR ${t.returnedAt} >= ${t.usedAt}`,
    ),
  ],
);

export const generationRequests = pgTable(
  'generation_requests',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: bigint('user_id', { mode: 'number' })
      .notNull()
      .references(() => users.id),
    modelId: bigint('model_id', { mode: 'number' })
      .notNull()
      .references(() => modelCatalog.id),
    /** The price row in force when the request was accepted: what it paid, kept with history. */
    priceId: bigint('price_id', { mode: 'number' }).references(() => modelPrices.id),
    prompt: text('prompt').notNull(),
    parameters: jsonb('parameters')
      .$type<Record<string, string>>()
      .notNull()
      .default(sql`'{}'::jsonb`),
    status: text('status', { enum: generationStatuses }).notNull().default('queued'),
    paymentMethod: text('payment_method', { enum: paymentMethods }).notNull(),
    priceCredits: integer('price_credits').notNull(),
    chargeEntryId: bigint('charge_entry_id', { mode: 'number' }).references(() => ledgerEntries.id),
    refundEntryId: bigint('refund_entry_id', { mode: 'number' }).references(() => ledgerEntries.id),
    errorCode: text('error_code'),
    errorMessage: text('error_message'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    startedAt: timestamp('started_at', { withTimezone: true }),
    completedAt: timestamp('completed_at', { withTimezone: true }),
    deadlineAt: timestamp('deadline_at', { withTimezone: true }),
    /** The id of the HTTP request that asked for it: the jobs' log lines carry it on. */
    httpRequestId: text('http_request_id'),
  },
  (t) => [
    index('generation_requests_user_newest_idx').on(t.userId, t.createdAt.desc()),
    // Operators list every user's generations newest first (GET /admin/generations).
    index('generation_requests_newest_idx').on(
      t.createdAt.desc().nullsFirst(),
      t.id.desc().nullsFirst(),
    ),
    index('generation_requests_user_active_idx')
      .on(t.userId)
      .where(sql`${t.status} IN ('queued', 'running')`),
    check('generation_requests_status_valid', inList('status', generationStatuses)),
    check('generation_requests_payment_method_valid', inList('payment_method', paymentMethods)),
    check('generation_requests_price_not_negative', sql`${t.priceCredits} >= 0`),
    check(
      'generation_requests_trial_is_free',
      sql`${t.paymentMethod} = 'credits' OR (${t.chargeEntryId} IS NULL AND ${t.priceCredits} = 0)`,
    ),
  ],
);

export const referenceKinds = ['telegram_file', 'url', 'upload'] as const;

export const generationReferences = pgTable(
  'generation_references',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    requestId: uuid('request_id')
      .notNull()
      .references(() => generationRequests.id),
    position: smallint('position').notNull(),
    kind: text('kind', { enum: referenceKinds }).notNull(),
    /** A Telegram file_id or an https URL. */
    value: text('value').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    unique('generation_references_position_uq').on(t.requestId, t.position),
    check('generation_references_kind_valid', inList('kind', referenceKinds)),
    check('generation_references_position_not_negative', sql`${t.position} >= 0`),
  ],
);

export const telegramLanguages = ['uz', 'ru', 'en'] as const;

/**
 * Where the bot wants a generation's news (POST /generations `telegram`): the chat, the prompt's
 * message to reply to, the bot's status message to keep up to date and the language. Stored with
 * the request when it is accepted; a generation without one is delivered to the user's own chat.
 */
export const generationTelegram = pgTable(
  'generation_telegram',
  {
    requestId: uuid('request_id')
      .primaryKey()
      .references(() => generationRequests.id),
    /** A private chat (the user's id), a group (negative) or a channel. */
    chatId: bigint('chat_id', { mode: 'number' }).notNull(),
    replyToMessageId: bigint('reply_to_message_id', { mode: 'number' }),
    statusMessageId: bigint('status_message_id', { mode: 'number' }),
    /** Null: the user's own language, else DEFAULT_LANGUAGE. */
    language: text('language', { enum: telegramLanguages }),
  },
  (t) => [
    check('generation_telegram_chat_id_not_zero', sql`${t.chatId} <> 0`),
    check(
      'generation_telegram_message_ids_positive',
      sql`(${t.replyToMessageId} IS NULL OR ${t.replyToMessageId} > 0) AND (${t.statusMessageId} IS NULL OR ${t.statusMessageId} > 0)`,
    ),
    check('generation_telegram_language_valid', inList('language', telegramLanguages)),
  ],
);

export const generationResults = pgTable(
  'generation_results',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    requestId: uuid('request_id')
      .notNull()
      .references(() => generationRequests.id),
    position: smallint('position').notNull(),
    /** Where the image can be fetched: our own copy when stored, else the provider's URL. */
    url: text('url'),
    storagePath: text('storage_path'),
    mimeType: text('mime_type').notNull(),
    width: integer('width'),
    height: integer('height'),
    seed: bigint('seed', { mode: 'number' }),
    providerMetadata: jsonb('provider_metadata').$type<Record<string, unknown>>(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    unique('generation_results_position_uq').on(t.requestId, t.position),
    check(
      'generation_results_has_location',
      sql`${t.url} IS NOT NULL OR ${t.storagePath} IS NOT NULL`,
    ),
  ],
);

export const jobKinds = ['generate', 'deliver', 'broadcast'] as const;
export const jobStatuses = ['pending', 'running', 'succeeded', 'failed'] as const;

/**
 * The queue: every background job kind lives here, claimed with FOR UPDATE SKIP LOCKED under a
 * lease (`locked_until`). For a generation it is also the state of the work with the provider
 * (`step`, `provider_job_id`), so a worker that takes over an expired lease resumes, never resubmits.
 */
export const generationJobs = pgTable(
  'generation_jobs',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    kind: text('kind', { enum: jobKinds }).notNull(),
    requestId: uuid('request_id').references(() => generationRequests.id),
    status: text('status', { enum: jobStatuses }).notNull().default('pending'),
    step: text('step').notNull().default('submit'),
    provider: text('provider'),
    providerJobId: text('provider_job_id'),
    payload: jsonb('payload').$type<Record<string, unknown>>(),
    attempts: integer('attempts').notNull().default(0),
    maxAttempts: integer('max_attempts').notNull().default(10),
    runAt: timestamp('run_at', { withTimezone: true }).notNull().defaultNow(),
    lockedBy: text('locked_by'),
    lockedUntil: timestamp('locked_until', { withTimezone: true }),
    deadlineAt: timestamp('deadline_at', { withTimezone: true }),
    lastError: text('last_error'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('generation_jobs_one_per_kind_uq').on(t.requestId, t.kind),
    index('generation_jobs_claim_idx').on(t.runAt).where(sql`${t.status} = 'pending'`),
    index('generation_jobs_lease_idx').on(t.lockedUntil).where(sql`${t.status} = 'running'`),
    uniqueIndex('generation_jobs_provider_job_uq')
      .on(t.provider, t.providerJobId)
      .where(sql`${t.providerJobId} IS NOT NULL`),
    check('generation_jobs_kind_valid', inList('kind', jobKinds)),
    check('generation_jobs_status_valid', inList('status', jobStatuses)),
    check('generation_jobs_attempts_not_negative', sql`${t.attempts} >= 0`),
  ],
);
