import { sql } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import {
  credit,
  InsufficientCreditsError,
  listEntries,
  postEntry,
  refundCharge,
  type UserRef,
} from '../src/services/ledger.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';

// The ledger's verbs: credits (payments), entries posted outside a transaction through the group
// commit (what bench:ledger measures; admin adjustments post inside a transaction with their audit
// entry, see admin-users.test.ts) and the refund of a charge. Charges themselves are made by
// accept_generation() and tested through it (generation-concurrency.test.ts,
// ledger-property.test.ts).

let database: DatabaseHandle;
beforeAll(async () => {
  database = await sharedDatabase();
});

async function newUser(): Promise<{ telegramId: number; userId: number }> {
  const telegramId = freshTelegramId();
  const [row] = await selectRows<{ id: string | number }>(
    database.db,
    sql`INSERT INTO users (telegram_id) VALUES (${telegramId}) RETURNING id`,
  );
  return { telegramId, userId: Number(row?.id) };
}

/** Takes credits as an operator's negative adjustment does: through the group commit. */
function debit(user: UserRef, amount: number) {
  return postEntry(database.db, user, {
    kind: 'admin_adjustment',
    amount: -amount,
    reason: 'test',
    actor: 'admin:test',
  });
}

/** A generation's charge as accept_generation() writes it, for the refund's tests. */
function generationCharge(userId: number, amount: number) {
  return postEntry(
    database.db,
    { userId },
    {
      kind: 'generation_charge',
      amount: -amount,
      reference: { type: 'generation', id: 'g1' },
      idempotencyKey: `generation-charge:${userId}`,
    },
  );
}

async function ledgerFacts(userId: number) {
  const [row] = await selectRows<{
    sum: number;
    count: number;
    min_after: number;
    last_after: number;
  }>(
    database.db,
    sql`SELECT coalesce(sum(amount), 0)::int AS sum, count(*)::int AS count,
               coalesce(min(balance_after), 0)::int AS min_after,
               coalesce((SELECT balance_after FROM ledger_entries WHERE user_id = ${userId}
                         ORDER BY user_entry_no DESC LIMIT 1), 0)::int AS last_after
        FROM ledger_entries WHERE user_id = ${userId}`,
  );
  return row!;
}

describe('ledger verbs', () => {
  it('a credit, a debit and a refund move the derived balance', async () => {
    const { userId } = await newUser();
    const topup = await credit(database.db, { userId }, { kind: 'topup', amount: 100 });
    expect(topup.entry).toMatchObject({
      amount: 100,
      balance_after: 100,
      kind: 'topup',
      entry_no: 1,
    });
    const taken = await debit({ userId }, 20);
    expect(taken.entry).toMatchObject({
      amount: -20,
      balance_after: 80,
      kind: 'admin_adjustment',
      reason: 'test',
      actor: 'admin:test',
    });
    const charged = await generationCharge(userId, 38);
    expect(charged.entry).toMatchObject({ amount: -38, balance_after: 42 });
    const refunded = await refundCharge(database.db, charged.entry.id, {
      reason: 'provider failed',
    });
    expect(refunded.entry).toMatchObject({
      amount: 38,
      balance_after: 80,
      kind: 'generation_refund',
      reference_type: 'generation',
      reference_id: 'g1',
    });
    expect(await ledgerFacts(userId)).toMatchObject({ sum: 80, count: 4, last_after: 80 });
  });

  it('refuses to overdraw with 402 insufficient_credits, naming balance and amount needed', async () => {
    const { userId } = await newUser();
    await credit(database.db, { userId }, { kind: 'bonus', amount: 30 });
    const attempt = debit({ userId }, 38);
    await expect(attempt).rejects.toBeInstanceOf(InsufficientCreditsError);
    await expect(attempt).rejects.toMatchObject({
      status: 402,
      code: 'insufficient_credits',
      extensions: { balance: 30, required: 38, shortfall: 8 },
    });
    expect(await ledgerFacts(userId)).toMatchObject({ sum: 30, count: 1 });
  });

  it('refunds a charge exactly once, however often and concurrently asked', async () => {
    const { userId } = await newUser();
    await credit(database.db, { userId }, { kind: 'topup', amount: 50 });
    const charged = await generationCharge(userId, 20);
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        refundCharge(database.db, charged.entry.id, { reason: 'failed' }),
      ),
    );
    expect(new Set(results.map((r) => r.entry.id)).size).toBe(1);
    expect(results.filter((r) => !r.replayed)).toHaveLength(1);
    expect(await ledgerFacts(userId)).toMatchObject({ sum: 50, count: 3 });
  });

  it('refuses to refund what is not a charge', async () => {
    const { userId } = await newUser();
    const topup = await credit(database.db, { userId }, { kind: 'topup', amount: 10 });
    await expect(refundCharge(database.db, topup.entry.id, { reason: 'x' })).rejects.toMatchObject({
      code: 'charge_not_found',
    });
  });

  it('an idempotency key makes a credit happen once', async () => {
    const { userId } = await newUser();
    const first = await credit(
      database.db,
      { userId },
      { kind: 'bonus', amount: 5, idempotencyKey: `welcome:${userId}` },
    );
    const second = await credit(
      database.db,
      { userId },
      { kind: 'bonus', amount: 5, idempotencyKey: `welcome:${userId}` },
    );
    expect(second).toEqual({ entry: first.entry, replayed: true });
    expect(await ledgerFacts(userId)).toMatchObject({ sum: 5, count: 1 });
  });

  it('pages the history newest first', async () => {
    const { userId, telegramId } = await newUser();
    for (let i = 1; i <= 7; i++)
      await credit(database.db, { userId }, { kind: 'bonus', amount: i });
    const first = await listEntries(database.db, telegramId, { limit: 3 });
    expect(first.entries.map((e) => e.amount)).toEqual([7, 6, 5]);
    const second = await listEntries(database.db, telegramId, {
      limit: 3,
      cursor: first.next_cursor!,
    });
    expect(second.entries.map((e) => e.amount)).toEqual([4, 3, 2]);
    const third = await listEntries(database.db, telegramId, {
      limit: 3,
      cursor: second.next_cursor!,
    });
    expect(third.entries.map((e) => e.amount)).toEqual([1]);
    expect(third.next_cursor).toBeNull();
  });
});

describe('group commit', () => {
  it('answers each entry of a batch on its own: posted, insufficient, unknown user, bad entry', async () => {
    const { userId, telegramId } = await newUser();
    await credit(database.db, { userId }, { kind: 'topup', amount: 10 });
    const outcomes = await Promise.allSettled([
      debit({ telegramId }, 4),
      debit({ telegramId }, 4),
      debit({ telegramId }, 4),
      debit({ telegramId: freshTelegramId() }, 1),
      // A kind the database refuses: it fails alone, its neighbours still go through.
      credit(database.db, { userId }, { kind: 'gift' as 'bonus', amount: 1 }),
      credit(database.db, { userId }, { kind: 'bonus', amount: 1 }),
    ]);
    const summary = outcomes.map((o) =>
      o.status === 'fulfilled'
        ? o.value.entry.amount
        : ((o.reason as { code?: string }).code ?? 'error'),
    );
    expect(summary.slice(0, 3).sort()).toEqual([-4, -4, 'insufficient_credits'].sort());
    expect(summary[3]).toBe('user_not_found');
    expect(summary[4]).toBe('error');
    expect(summary[5]).toBe(1);
    expect(await ledgerFacts(userId)).toMatchObject({ sum: 3, count: 4, last_after: 3 });
  });
});

describe('concurrency (many connections on PostgreSQL; one session serialises them on PGlite)', () => {
  it('200 concurrent debits through the group commit against a balance that covers 10: exactly 10 succeed, never negative', async () => {
    const { userId } = await newUser();
    await credit(database.db, { userId }, { kind: 'topup', amount: 270 });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 200 }, () => debit({ userId }, 27)),
    );
    const succeeded = outcomes.filter((o) => o.status === 'fulfilled');
    const refused = outcomes.filter(
      (o) => o.status === 'rejected' && o.reason instanceof InsufficientCreditsError,
    );
    expect(succeeded).toHaveLength(10);
    expect(refused).toHaveLength(190);
    const facts = await ledgerFacts(userId);
    expect(facts).toMatchObject({ sum: 0, count: 11, last_after: 0 });
    expect(facts.min_after).toBeGreaterThanOrEqual(0);
    const entries = await selectRows<{ balance_after: number; user_entry_no: number }>(
      database.db,
      sql`SELECT balance_after::int, user_entry_no FROM ledger_entries WHERE user_id = ${userId} ORDER BY user_entry_no`,
    );
    // The running balance is consistent entry after entry: 270, 243, …, 0.
    expect(entries.map((e) => e.balance_after)).toEqual(
      Array.from({ length: 11 }, (_, i) => 270 - 27 * i),
    );
  });

  it('users.balance (kept by the ledger trigger) equals the sum of the ledger after concurrent credits, debits, refusals and replays', async () => {
    const users = await Promise.all(Array.from({ length: 4 }, () => newUser()));
    await Promise.all(
      users.map(({ userId }) => credit(database.db, { userId }, { kind: 'topup', amount: 50 })),
    );
    // Per user: credits, debits that the balance may or may not cover (some refused), and one
    // idempotency key posted three times (appended once; ON CONFLICT skips the replays).
    const writes = users.flatMap(({ userId }) => [
      ...Array.from({ length: 12 }, (_, i) => debit({ userId }, 7 + i)),
      ...Array.from({ length: 5 }, () =>
        credit(database.db, { userId }, { kind: 'bonus', amount: 9 }),
      ),
      ...Array.from({ length: 3 }, () =>
        credit(
          database.db,
          { userId },
          { kind: 'bonus', amount: 11, idempotencyKey: `balance-copy:${userId}` },
        ),
      ),
    ]);
    const outcomes = await Promise.allSettled(writes);
    const refused = outcomes.filter(
      (o) => o.status === 'rejected' && o.reason instanceof InsufficientCreditsError,
    );
    expect(outcomes.filter((o) => o.status === 'rejected')).toEqual(refused);
    expect(refused.length).toBeGreaterThan(0);
    const rows = await selectRows<{ user_balance: number; ledger_sum: number; replays: number }>(
      database.db,
      sql`SELECT u.balance::int AS user_balance,
                 (SELECT coalesce(sum(l.amount), 0) FROM ledger_entries l WHERE l.user_id = u.id)::int AS ledger_sum,
                 (SELECT count(*) FROM ledger_entries l
                   WHERE l.user_id = u.id AND l.idempotency_key LIKE 'balance-copy:%')::int AS replays
          FROM users u WHERE u.id IN (${sql.join(
            users.map(({ userId }) => sql`${userId}`),
            sql`, `,
          )})`,
    );
    expect(rows).toHaveLength(users.length);
    for (const row of rows) {
      expect(row.user_balance).toBe(row.ledger_sum);
      expect(row.replays).toBe(1);
    }
    // Not a trivially equal pair of zeros: the users hold credits.
    expect(rows.some((row) => row.user_balance > 0)).toBe(true);
  });
});
