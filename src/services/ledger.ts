import { randomUUID } from 'node:crypto';
import { type SQL, sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
import type { Database, Queryable, Transaction } from '../db/client.ts';
import { pgError, SQLSTATE } from '../db/errors.ts';
import { isoTimeText, selectRows } from '../db/rows.ts';
import type { LedgerEntryKind } from '../db/schema/index.ts';
import { isTransaction } from '../db/transaction.ts';
import { ledgerCursor } from './cursor.ts';
import { batcherFor } from './ledger-batcher.ts';
import { userNotFound } from './users.ts';

/**
 * The ledger's verbs. Every movement of credits is one append-only entry; the database computes
 * the running balance under a lock on the user's row and refuses to go below zero, so these verbs
 * stay simple and are safe however they are called concurrently.
 */

/** A user, by our id (inside the domain) or by Telegram id (at the edge). */
export type UserRef = { userId: number } | { telegramId: number };

export interface LedgerEntry {
  id: number;
  entry_no: number;
  amount: number;
  balance_after: number;
  kind: LedgerEntryKind;
  reference_type: string | null;
  reference_id: string | null;
  reason: string | null;
  actor: string;
  created_at: string;
}

export interface NewEntry {
  kind: LedgerEntryKind;
  /** Signed credits. */
  amount: number;
  reference?: { type: string; id: string };
  /**
   * Makes the entry happen once: a second post with the key returns the first entry. Without one
   * the entry gets a key of its own, so sending it again after an unclear failure is safe too.
   */
  idempotencyKey?: string;
  reason?: string;
  actor?: string;
  metadata?: Record<string, unknown>;
}

export interface Posted {
  entry: LedgerEntry;
  /** True when the idempotency key had already been used and the first entry is returned. */
  replayed: boolean;
}

interface EntryRow {
  id: string | number;
  user_entry_no: number;
  amount: number;
  balance_after: string | number;
  kind: LedgerEntryKind;
  reference_type: string | null;
  reference_id: string | null;
  reason: string | null;
  actor: string;
  created_at: string;
}

const entryColumns = sql.raw(
  `id, user_entry_no, amount, balance_after, kind, reference_type, reference_id, reason, actor,
   ${isoTimeText('created_at')} AS created_at`,
);

function toEntry(row: EntryRow): LedgerEntry {
  return {
    id: Number(row.id),
    entry_no: row.user_entry_no,
    amount: row.amount,
    balance_after: Number(row.balance_after),
    kind: row.kind,
    reference_type: row.reference_type,
    reference_id: row.reference_id,
    reason: row.reason,
    actor: row.actor,
    created_at: row.created_at,
  };
}

function userIdOf(user: UserRef): SQL {
  return 'userId' in user
    ? sql`SELECT id FROM users WHERE id = ${user.userId}`
    : sql`SELECT id FROM users WHERE telegram_id = ${user.telegramId}`;
}

export class InsufficientCreditsError extends AppError {
  constructor(balance: number, required: number) {
    super('insufficient_credits', `This needs ${required} credits; the balance is ${balance}.`, {
      balance,
      required,
      shortfall: required - balance,
    });
  }
}

async function findByIdempotencyKey(db: Queryable, key: string): Promise<LedgerEntry | null> {
  const [row] = await selectRows<EntryRow>(
    db,
    sql`SELECT ${entryColumns} FROM ledger_entries WHERE idempotency_key = ${key}`,
  );
  return row ? toEntry(row) : null;
}

/**
 * Appends one entry. Inside a transaction it is one statement on that transaction; outside one it
 * joins the ledger's group commit (see ledger-batcher.ts), committing on its own. Throws
 * InsufficientCreditsError (402) instead of going below zero.
 */
export async function postEntry(db: Queryable, user: UserRef, entry: NewEntry): Promise<Posted> {
  if (!Number.isSafeInteger(entry.amount) || entry.amount === 0) {
    throw new AppError('invalid_amount', 'An amount is a non-zero integer of credits.');
  }
  if (isTransaction(db)) return postEntryInTransaction(db, user, entry);
  const outcome = await batcherFor(db as Database).post({
    user,
    amount: entry.amount,
    kind: entry.kind,
    referenceType: entry.reference?.type ?? null,
    referenceId: entry.reference?.id ?? null,
    idempotencyKey: withKey(entry).idempotencyKey,
    reason: entry.reason ?? null,
    actor: entry.actor ?? 'system',
    metadata: entry.metadata ?? null,
  });
  switch (outcome.outcome) {
    case 'posted':
    case 'replayed':
      return {
        entry: toEntry({
          id: outcome.entry_id ?? 0,
          user_entry_no: outcome.user_entry_no ?? 0,
          amount: outcome.amount ?? 0,
          balance_after: outcome.balance_after ?? 0,
          kind: outcome.kind ?? entry.kind,
          reference_type: outcome.reference_type,
          reference_id: outcome.reference_id,
          reason: outcome.reason,
          actor: outcome.actor ?? 'system',
          created_at: outcome.created_at ?? '',
        }),
        // With a key of its own the entry can only have been "replayed" by its own resend.
        replayed: outcome.outcome === 'replayed' && entry.idempotencyKey !== undefined,
      };
    case 'insufficient':
      throw new InsufficientCreditsError(Number(outcome.balance ?? 0), -entry.amount);
    case 'no_user':
      throw noSuchUser(user);
  }
}

function withKey(entry: NewEntry): NewEntry & { idempotencyKey: string } {
  return { ...entry, idempotencyKey: entry.idempotencyKey ?? `entry:${randomUUID()}` };
}

async function postEntryInTransaction(
  db: Transaction,
  user: UserRef,
  entry: NewEntry,
): Promise<Posted> {
  // Looked up first: a refused insert would abort the transaction before a replay could be read.
  if (entry.idempotencyKey !== undefined) {
    const earlier = await findByIdempotencyKey(db, entry.idempotencyKey);
    if (earlier) return { entry: earlier, replayed: true };
  }
  const key = withKey(entry).idempotencyKey;
  let rows: EntryRow[];
  try {
    rows = await selectRows<EntryRow>(
      db,
      sql`INSERT INTO ledger_entries
            (user_id, amount, kind, reference_type, reference_id, idempotency_key, reason, actor, metadata)
          SELECT id, ${entry.amount}, ${entry.kind}, ${entry.reference?.type ?? null},
                 ${entry.reference?.id ?? null}, ${key}, ${entry.reason ?? null},
                 ${entry.actor ?? 'system'}, ${entry.metadata ? JSON.stringify(entry.metadata) : null}::jsonb
          FROM (${userIdOf(user)}) AS target
          ON CONFLICT (idempotency_key) DO NOTHING
          RETURNING ${entryColumns}`,
    );
  } catch (error) {
    const cause = pgError(error);
    if (cause?.code !== SQLSTATE.insufficientCredits) throw error;
    // The trigger refused; the transaction is now aborted, so nothing more can be read in it.
    const { balance } = JSON.parse(cause.detail ?? '{"balance":0}') as { balance: number };
    throw new InsufficientCreditsError(balance, -entry.amount);
  }
  const [row] = rows;
  if (row) return { entry: toEntry(row), replayed: false };
  if (entry.idempotencyKey !== undefined) {
    const earlier = await findByIdempotencyKey(db, entry.idempotencyKey);
    if (earlier) return { entry: earlier, replayed: true };
  }
  throw noSuchUser(user);
}

function noSuchUser(user: UserRef): Error {
  return 'telegramId' in user
    ? userNotFound(user.telegramId)
    : new Error(`no user with id ${user.userId}`);
}

export function credit(
  db: Queryable,
  user: UserRef,
  entry: Omit<NewEntry, 'kind'> & {
    kind: 'topup' | 'bonus' | 'referral_bonus' | 'admin_adjustment';
  },
): Promise<Posted> {
  if (entry.amount <= 0) throw new AppError('invalid_amount', 'A credit is positive.');
  return postEntry(db, user, entry);
}

/**
 * Gives back a charge, exactly once: the refund's idempotency key is derived from the charge, and
 * the database's unique index makes a second refund impossible, whoever asks and however often.
 */
export async function refundCharge(
  db: Queryable,
  chargeEntryId: number,
  options: { reason: string; actor?: string },
): Promise<Posted> {
  const [charged] = await selectRows<{
    user_id: string | number;
    amount: number;
    kind: string;
    reference_type: string | null;
    reference_id: string | null;
  }>(
    db,
    sql`SELECT user_id, amount, kind, reference_type, reference_id FROM ledger_entries WHERE id = ${chargeEntryId}`,
  );
  if (charged?.kind !== 'generation_charge') {
    throw new AppError('charge_not_found', `No charge with entry id ${chargeEntryId}.`);
  }
  return postEntry(
    db,
    { userId: Number(charged.user_id) },
    {
      kind: 'generation_refund',
      amount: -charged.amount,
      ...(charged.reference_type && charged.reference_id
        ? { reference: { type: charged.reference_type, id: charged.reference_id } }
        : {}),
      idempotencyKey: `refund-of-entry:${chargeEntryId}`,
      reason: options.reason,
      actor: options.actor ?? 'system',
      metadata: { refunds_entry_id: chargeEntryId },
    },
  );
}

/**
 * Locks the user's row until the transaction ends: the same lock the ledger trigger takes, so
 * everything that reads-then-writes a user's credits or trials serialises per user.
 */
export async function lockUser(db: Queryable, user: UserRef): Promise<number> {
  const [row] = await selectRows<{ id: string | number }>(
    db,
    sql`${userIdOf(user)} FOR NO KEY UPDATE`,
  );
  if (!row)
    throw 'telegramId' in user
      ? userNotFound(user.telegramId)
      : new Error(`no user with id ${user.userId}`);
  return Number(row.id);
}

export async function balanceOf(db: Queryable, userId: number): Promise<number> {
  const [row] = await selectRows<{ balance_after: string | number }>(
    db,
    sql`SELECT balance_after FROM ledger_entries WHERE user_id = ${userId} ORDER BY user_entry_no DESC LIMIT 1`,
  );
  return Number(row?.balance_after ?? 0);
}

export interface EntryPage {
  entries: LedgerEntry[];
  /** Pass as `before` for the next (older) page; null on the last page. */
  next_cursor: string | null;
}

/** A user's entries, newest first, keyset-paginated on the user's entry number. */
export async function listEntries(
  db: Queryable,
  telegramId: number,
  options: { limit: number; cursor?: string },
): Promise<EntryPage> {
  const [user] = await selectRows<{ id: string | number }>(
    db,
    sql`SELECT id FROM users WHERE telegram_id = ${telegramId}`,
  );
  if (!user) throw userNotFound(telegramId);
  return listEntriesOfUser(db, Number(user.id), options);
}

/** The same, for the user of this id (users.id). */
export async function listEntriesOfUser(
  db: Queryable,
  userId: number,
  options: { limit: number; cursor?: string },
): Promise<EntryPage> {
  const before = options.cursor === undefined ? null : ledgerCursor.decode(options.cursor);
  const rows = await selectRows<EntryRow>(
    db,
    sql`SELECT ${entryColumns} FROM ledger_entries
        WHERE user_id = ${userId} ${before === null ? sql`` : sql`AND user_entry_no < ${before}`}
        ORDER BY user_entry_no DESC LIMIT ${options.limit + 1}`,
  );
  const entries = rows.slice(0, options.limit).map(toEntry);
  const last = entries.at(-1);
  return {
    entries,
    next_cursor: rows.length > options.limit && last ? ledgerCursor.encode(last.entry_no) : null,
  };
}
