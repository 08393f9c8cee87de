import { sql } from 'drizzle-orm';
import type { Database } from '../db/client.ts';
import { GroupCommit } from '../db/group-commit.ts';
import { isoTimeText, selectRows } from '../db/rows.ts';
import type { LedgerEntryKind } from '../db/schema/index.ts';

/**
 * Group commit for the ledger. Entries posted outside a transaction wait while a batch is being
 * written and then go together in one statement and one commit (ledger_append_many), so
 * concurrent charges share a round trip and an fsync. Under light load a batch is a single entry
 * and nothing waits; under heavy load — or many charges for one user, which would otherwise
 * queue on its row lock for a commit apiece — throughput grows with the batch.
 */

export interface BatchEntry {
  user: { userId: number } | { telegramId: number };
  amount: number;
  kind: LedgerEntryKind;
  referenceType: string | null;
  referenceId: string | null;
  idempotencyKey: string | null;
  reason: string | null;
  actor: string;
  metadata: Record<string, unknown> | null;
}

export interface BatchOutcome {
  outcome: 'posted' | 'replayed' | 'insufficient' | 'no_user';
  entry_id: string | number | null;
  user_entry_no: number | null;
  amount: number | null;
  balance_after: string | number | null;
  kind: LedgerEntryKind | null;
  reference_type: string | null;
  reference_id: string | null;
  reason: string | null;
  actor: string | null;
  created_at: string | null;
  /** For `insufficient`: the balance the entry met. */
  balance: string | number | null;
}

const MAX_BATCH = 256;
/** Batches written at once: enough to overlap one batch's commit with the next one's work. */
const MAX_BATCHES_IN_FLIGHT = 2;

class LedgerBatcher {
  private readonly group: GroupCommit<BatchEntry, BatchOutcome>;

  constructor(db: Database) {
    this.group = new GroupCommit(
      async (entries) => {
        const outcomes = await appendMany(db, entries);
        return entries.map((_, index) => {
          const outcome = outcomes.get(index);
          if (!outcome) throw new Error('ledger batch returned no outcome for an entry');
          return outcome;
        });
      },
      { maxBatch: MAX_BATCH, maxInFlight: MAX_BATCHES_IN_FLIGHT },
    );
  }

  post(entry: BatchEntry): Promise<BatchOutcome> {
    return this.group.add(entry);
  }
}

async function appendMany(db: Database, entries: BatchEntry[]): Promise<Map<number, BatchOutcome>> {
  const payload = entries.map((entry, ord) => ({
    ord,
    ...('userId' in entry.user
      ? { user_id: entry.user.userId }
      : { telegram_id: entry.user.telegramId }),
    amount: entry.amount,
    kind: entry.kind,
    reference_type: entry.referenceType,
    reference_id: entry.referenceId,
    idempotency_key: entry.idempotencyKey,
    reason: entry.reason,
    actor: entry.actor,
    metadata: entry.metadata,
  }));
  const rows = await selectRows<BatchOutcome & { ord: number }>(
    db,
    sql`SELECT ord, outcome, entry_id, user_entry_no, amount, balance_after, kind, reference_type,
               reference_id, reason, actor, ${sql.raw(isoTimeText('created_at'))} AS created_at, balance
        FROM ledger_append_many(${JSON.stringify(payload)}::jsonb)`,
  );
  return new Map(rows.map((row) => [row.ord, row]));
}

const batchers = new WeakMap<Database, LedgerBatcher>();

export function batcherFor(db: Database): LedgerBatcher {
  let batcher = batchers.get(db);
  if (!batcher) {
    batcher = new LedgerBatcher(db);
    batchers.set(db, batcher);
  }
  return batcher;
}
