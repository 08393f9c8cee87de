import { sql } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';

let database: DatabaseHandle;
beforeAll(async () => {
  database = await sharedDatabase();
});

async function newUser(): Promise<number> {
  const [row] = await selectRows<{ id: string | number }>(
    database.db,
    sql`INSERT INTO users (telegram_id) VALUES (${freshTelegramId()}) RETURNING id`,
  );
  return Number(row?.id);
}

/** The database's own error for a statement (drivers wrap it differently). */
async function refusal(
  statement: ReturnType<typeof sql>,
): Promise<{ message: string; code?: string }> {
  try {
    await database.db.execute(statement);
  } catch (error) {
    const cause = (error as { cause?: { message: string; code?: string } }).cause;
    const own = error as { message: string; code?: string };
    return cause?.code ? cause : own;
  }
  throw new Error('statement was accepted');
}

describe('ledger_entries rules held by the database', () => {
  it('refuses UPDATE, DELETE and TRUNCATE', async () => {
    const userId = await newUser();
    await database.db.execute(
      sql`INSERT INTO ledger_entries (user_id, amount, kind) VALUES (${userId}, 50, 'bonus')`,
    );
    for (const statement of [
      sql`UPDATE ledger_entries SET amount = 5000 WHERE user_id = ${userId}`,
      sql`DELETE FROM ledger_entries WHERE user_id = ${userId}`,
      sql`TRUNCATE ledger_entries CASCADE`,
    ]) {
      const error = await refusal(statement);
      expect(error.message).toMatch(/append-only/);
    }
    const [row] = await selectRows<{ amount: number; n: number }>(
      database.db,
      sql`SELECT sum(amount)::int AS amount, count(*)::int AS n FROM ledger_entries WHERE user_id = ${userId}`,
    );
    expect(row).toEqual({ amount: 50, n: 1 });
  });

  it('keeps a running balance and entry number that equal SUM and order', async () => {
    const userId = await newUser();
    const amounts = [100, -30, 5, -75, 40];
    for (const amount of amounts) {
      await database.db.execute(
        sql`INSERT INTO ledger_entries (user_id, amount, kind, balance_after, user_entry_no)
            VALUES (${userId}, ${amount}, ${amount > 0 ? 'topup' : 'generation_charge'}, 999999, 999)`,
      );
    }
    const rows = await selectRows<{ balance_after: string | number; user_entry_no: number }>(
      database.db,
      sql`SELECT balance_after, user_entry_no FROM ledger_entries WHERE user_id = ${userId} ORDER BY id`,
    );
    // Whatever the caller claims, the trigger computes both.
    expect(rows.map((r) => Number(r.balance_after))).toEqual([100, 70, 75, 0, 40]);
    expect(rows.map((r) => r.user_entry_no)).toEqual([1, 2, 3, 4, 5]);
  });

  it('refuses an entry that would take the balance below zero (SQLSTATE C0001)', async () => {
    const userId = await newUser();
    await database.db.execute(
      sql`INSERT INTO ledger_entries (user_id, amount, kind) VALUES (${userId}, 20, 'topup')`,
    );
    const error = await refusal(
      sql`INSERT INTO ledger_entries (user_id, amount, kind) VALUES (${userId}, -21, 'generation_charge')`,
    );
    expect(error.code).toBe('C0001');
  });

  it('refuses a zero amount, an unknown kind and a repeated idempotency key', async () => {
    const userId = await newUser();
    expect(
      (
        await refusal(
          sql`INSERT INTO ledger_entries (user_id, amount, kind) VALUES (${userId}, 0, 'bonus')`,
        )
      ).code,
    ).toBe('23514');
    expect(
      (
        await refusal(
          sql`INSERT INTO ledger_entries (user_id, amount, kind) VALUES (${userId}, 5, 'gift')`,
        )
      ).code,
    ).toBe('23514');
    const key = `refund:${userId}`;
    await database.db.execute(
      sql`INSERT INTO ledger_entries (user_id, amount, kind, idempotency_key) VALUES (${userId}, 5, 'bonus', ${key})`,
    );
    expect(
      (
        await refusal(
          sql`INSERT INTO ledger_entries (user_id, amount, kind, idempotency_key) VALUES (${userId}, 5, 'bonus', ${key})`,
        )
      ).code,
    ).toBe('23505');
  });

  it('refuses an entry for a user that does not exist', async () => {
    const error = await refusal(
      sql`INSERT INTO ledger_entries (user_id, amount, kind) VALUES (-1, 5, 'bonus')`,
    );
    expect(error.code).toBe('23503');
  });
});

describe('other tables', () => {
  it('users: telegram_id unique and positive', async () => {
    const telegramId = freshTelegramId();
    await database.db.execute(sql`INSERT INTO users (telegram_id) VALUES (${telegramId})`);
    expect((await refusal(sql`INSERT INTO users (telegram_id) VALUES (${telegramId})`)).code).toBe(
      '23505',
    );
    expect((await refusal(sql`INSERT INTO users (telegram_id) VALUES (0)`)).code).toBe('23514');
  });

  it('model_prices: positive credits and one open price per model and conditions', async () => {
    const [model] = await selectRows<{ id: number }>(
      database.db,
      sql`SELECT id FROM model_catalog WHERE key = 'qwen-image'`,
    );
    expect(
      (await refusal(sql`INSERT INTO model_prices (model_id, credits) VALUES (${model?.id}, 0)`))
        .code,
    ).toBe('23514');
    expect(
      (await refusal(sql`INSERT INTO model_prices (model_id, credits) VALUES (${model?.id}, 99)`))
        .code,
    ).toBe('23505');
  });

  it('generation_requests: a trial generation carries no charge and no price', async () => {
    const userId = await newUser();
    const [model] = await selectRows<{ id: number }>(
      database.db,
      sql`SELECT id FROM model_catalog WHERE key = 'qwen-image'`,
    );
    const error = await refusal(sql`
      INSERT INTO generation_requests (user_id, model_id, prompt, payment_method, price_credits)
      VALUES (${userId}, ${model?.id}, 'a cat', 'trial', 20)`);
    expect(error.code).toBe('23514');
    await database.db.execute(sql`
      INSERT INTO generation_requests (user_id, model_id, prompt, payment_method, price_credits)
      VALUES (${userId}, ${model?.id}, 'a cat', 'trial', 0)`);
  });

  it('generation_jobs: one job of a kind per request; trial_uses: one per generation', async () => {
    const userId = await newUser();
    const [model] = await selectRows<{ id: number }>(
      database.db,
      sql`SELECT id FROM model_catalog WHERE key = 'qwen-image'`,
    );
    const [request] = await selectRows<{ id: string }>(
      database.db,
      sql`INSERT INTO generation_requests (user_id, model_id, prompt, payment_method, price_credits)
          VALUES (${userId}, ${model?.id}, 'a dog', 'trial', 0) RETURNING id`,
    );
    await database.db.execute(
      sql`INSERT INTO generation_jobs (kind, request_id) VALUES ('generate', ${request?.id})`,
    );
    expect(
      (
        await refusal(
          sql`INSERT INTO generation_jobs (kind, request_id) VALUES ('generate', ${request?.id})`,
        )
      ).code,
    ).toBe('23505');
    await database.db.execute(
      sql`INSERT INTO trial_uses (user_id, generation_request_id) VALUES (${userId}, ${request?.id})`,
    );
    expect(
      (
        await refusal(
          sql`INSERT INTO trial_uses (user_id, generation_request_id) VALUES (${userId}, ${request?.id})`,
        )
      ).code,
    ).toBe('23505');
  });
});
