import { sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
import type { Queryable } from '../db/client.ts';
import { selectRows } from '../db/rows.ts';
import { withTransaction } from './context.ts';
import { lockUser, type UserRef } from './ledger.ts';
import { type TrialSummary, trialSummary } from './users.ts';

export interface TrialUse {
  trial_use_id: number;
  trial: TrialSummary;
}

/**
 * Consumes one free generation. The user's row is locked first and the uses counted after, in a
 * statement of their own, so parallel requests see each other's uses and never pass the limit.
 */
export async function useTrial(
  db: Queryable,
  user: UserRef,
  limit: number,
  options: { generationRequestId?: string } = {},
): Promise<TrialUse> {
  return withTransaction(db, async (tx) => {
    const userId = await lockUser(tx, user);
    const used = await activeTrialUses(tx, userId);
    if (used >= limit) {
      throw new AppError(
        'trial_unavailable',
        409,
        'No free generation left',
        `All ${limit} free generations are used.`,
        {
          trial: trialSummary(used, limit),
        },
      );
    }
    const [row] = await selectRows<{ id: string | number }>(
      tx,
      sql`INSERT INTO trial_uses (user_id, generation_request_id)
          VALUES (${userId}, ${options.generationRequestId ?? null}) RETURNING id`,
    );
    return { trial_use_id: Number(row?.id), trial: trialSummary(used + 1, limit) };
  });
}

/** Gives a trial use back (its generation failed); true the first time, false after. */
export async function returnTrial(
  db: Queryable,
  trialUseId: number,
  reason: string,
): Promise<boolean> {
  const rows = await selectRows<{ id: number }>(
    db,
    sql`UPDATE trial_uses SET returned_at = now(), return_reason = ${reason}
        WHERE id = ${trialUseId} AND returned_at IS NULL RETURNING id`,
  );
  return rows.length === 1;
}

export async function activeTrialUses(db: Queryable, userId: number): Promise<number> {
  const [row] = await selectRows<{ used: number }>(
    db,
    sql`SELECT count(*)::int AS used FROM trial_uses WHERE user_id = ${userId} AND returned_at IS NULL`,
  );
  return row?.used ?? 0;
}
