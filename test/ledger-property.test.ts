import { sql } from 'drizzle-orm';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { charge, credit, InsufficientCreditsError, refundCharge } from '../src/services/ledger.ts';
import { returnTrial, useTrial } from '../src/services/trials.ts';
import { getBalance, getTrialStatus } from '../src/services/users.ts';
import { testConfig } from './helpers/app.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';

const TRIAL_LIMIT = 3;

type Operation =
  | { op: 'credit'; amount: number }
  | { op: 'charge'; amount: number }
  | { op: 'refund'; pick: number }
  | { op: 'useTrial' }
  | { op: 'returnTrial'; pick: number };

const operation: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({ op: fc.constant('credit' as const), amount: fc.integer({ min: 1, max: 300 }) }),
  fc.record({ op: fc.constant('charge' as const), amount: fc.integer({ min: 1, max: 250 }) }),
  fc.record({ op: fc.constant('refund' as const), pick: fc.nat() }),
  fc.record({ op: fc.constant('useTrial' as const) }),
  fc.record({ op: fc.constant('returnTrial' as const), pick: fc.nat() }),
);

let database: DatabaseHandle;
beforeAll(async () => {
  database = await sharedDatabase();
});

describe('ledger and trials: property', () => {
  it('any sequence of credits, charges, refunds and trial uses keeps balance == SUM >= 0 and trials <= limit', async () => {
    const ctx = { db: database.db, config: testConfig({ TRIAL_GENERATIONS: String(TRIAL_LIMIT) }) };
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { minLength: 1, maxLength: 25 }), async (operations) => {
        const telegramId = freshTelegramId();
        const [user] = await selectRows<{ id: string | number }>(
          database.db,
          sql`INSERT INTO users (telegram_id) VALUES (${telegramId}) RETURNING id`,
        );
        const userId = Number(user?.id);
        // The model the database must agree with.
        let balance = 0;
        const charges: { entryId: number; amount: number; refunded: boolean }[] = [];
        const trialUses: { id: number; returned: boolean }[] = [];

        for (const step of operations) {
          if (step.op === 'credit') {
            await credit(database.db, { userId }, { kind: 'topup', amount: step.amount });
            balance += step.amount;
          } else if (step.op === 'charge') {
            try {
              const { entry } = await charge(database.db, { userId }, { amount: step.amount });
              expect(balance).toBeGreaterThanOrEqual(step.amount);
              balance -= step.amount;
              charges.push({ entryId: entry.id, amount: step.amount, refunded: false });
            } catch (error) {
              expect(error).toBeInstanceOf(InsufficientCreditsError);
              expect(balance).toBeLessThan(step.amount);
            }
          } else if (step.op === 'refund' && charges.length > 0) {
            const target = charges[step.pick % charges.length]!;
            const { replayed } = await refundCharge(database.db, target.entryId, {
              reason: 'property',
            });
            expect(replayed).toBe(target.refunded);
            if (!target.refunded) balance += target.amount;
            target.refunded = true;
          } else if (step.op === 'useTrial') {
            const active = trialUses.filter((use) => !use.returned).length;
            try {
              const { trial_use_id } = await useTrial(database.db, { userId }, TRIAL_LIMIT);
              expect(active).toBeLessThan(TRIAL_LIMIT);
              trialUses.push({ id: trial_use_id, returned: false });
            } catch (error) {
              expect((error as { code?: string }).code).toBe('trial_unavailable');
              expect(active).toBe(TRIAL_LIMIT);
            }
          } else if (step.op === 'returnTrial' && trialUses.length > 0) {
            const target = trialUses[step.pick % trialUses.length]!;
            expect(await returnTrial(database.db, target.id, 'property')).toBe(!target.returned);
            target.returned = true;
          }

          const [facts] = await selectRows<{ sum: number; min_after: number | null }>(
            database.db,
            sql`SELECT coalesce(sum(amount), 0)::int AS sum, min(balance_after)::int AS min_after
                FROM ledger_entries WHERE user_id = ${userId}`,
          );
          const derived = (await getBalance(ctx, telegramId)).balance;
          expect(derived).toBe(balance);
          expect(facts?.sum).toBe(balance);
          expect(facts?.min_after ?? 0).toBeGreaterThanOrEqual(0);
          const trial = await getTrialStatus(ctx, telegramId);
          expect(trial.used).toBe(trialUses.filter((use) => !use.returned).length);
          expect(trial.used).toBeLessThanOrEqual(TRIAL_LIMIT);
        }
      }),
      { numRuns: 40 },
    );
  });
});
