import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { sql } from 'drizzle-orm';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { encodePng } from '../src/providers/png.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { adjustCredits } from '../src/services/admin-users.ts';
import type { PipelineContext } from '../src/services/context.ts';
import { acceptGeneration } from '../src/services/generation-accept.ts';
import {
  recordGenerationFailure,
  recordGenerationSuccess,
} from '../src/services/generation-outcomes.ts';
import { InsufficientCreditsError } from '../src/services/ledger.ts';
import {
  confirmStarsPayment,
  invoicePayloadOf,
  refundStarsPayment,
} from '../src/services/payments.ts';
import { getBalance, getTrialStatus, syncUser } from '../src/services/users.ts';
import { LocalResultStore } from '../src/storage/local.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { testConfig } from './helpers/app.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';
import { createTestModel, type TestModel } from './helpers/pipeline.ts';

// Random sequences of what moves a user's credits and free generations in production, through
// the verbs production calls: Stars payments confirmed and refunded (payments service), admin
// adjustments (adjustCredits: the entry and its audit entry in one transaction),
// generations accepted (acceptGeneration: accept_generation()) and settled (generation-outcomes:
// success, or failure with its refund). After every step the database must agree with a model of
// the rules: balance == SUM(amount) >= 0, free generations used <= the limit, and every
// generation charged once (or paid by one free generation) and given back at most once.

const TRIAL_LIMIT = 2;
const MAX_ACTIVE = 3;
const PACKAGES = 'small:40:20,big:300:150';
const PRICES = { square: 10, wide: 25 } as const;

type Payment = 'auto' | 'trial' | 'credits';
type Operation =
  | { op: 'confirm'; pack: number; replay: number | null }
  | { op: 'refund'; pick: number }
  | { op: 'adjust'; amount: number }
  | { op: 'accept'; payment: Payment; wide: boolean }
  | { op: 'fail'; pick: number }
  | { op: 'succeed'; pick: number };

const operation: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({
    op: fc.constant('confirm' as const),
    pack: fc.nat(1),
    replay: fc.option(fc.nat(), { freq: 4 }),
  }),
  fc.record({ op: fc.constant('refund' as const), pick: fc.nat() }),
  fc.record({
    op: fc.constant('adjust' as const),
    amount: fc.integer({ min: -80, max: 80 }).filter((amount) => amount !== 0),
  }),
  fc.record({
    op: fc.constant('accept' as const),
    payment: fc.constantFrom<Payment>('auto', 'trial', 'credits'),
    wide: fc.boolean(),
  }),
  fc.record({ op: fc.constant('fail' as const), pick: fc.nat() }),
  fc.record({ op: fc.constant('succeed' as const), pick: fc.nat() }),
);

interface ModelPayment {
  chargeId: string;
  credits: number;
  stars: number;
  payload: string;
  /** Credits the refund took back; null until refunded. */
  clawedBack: number | null;
}

interface ModelGeneration {
  id: string;
  method: 'credits' | 'trial';
  price: number;
  state: 'active' | 'succeeded' | 'failed';
}

let database: DatabaseHandle;
let model: TestModel;
let ctx: PipelineContext;
const store = new LocalResultStore(tmpdir());

beforeAll(async () => {
  database = await sharedDatabase();
  const provider = new ScriptedProvider();
  model = await createTestModel(database.db, {
    provider: provider.name,
    prices: [
      { conditions: {}, credits: PRICES.square },
      { conditions: { aspect_ratio: '16:9' }, credits: PRICES.wide },
    ],
  });
  ctx = {
    db: database.db,
    // No bot token: a settled generation enqueues no delivery.
    config: testConfig({
      TRIAL_GENERATIONS: String(TRIAL_LIMIT),
      MAX_PARALLEL_GENERATIONS_PER_USER: String(MAX_ACTIVE),
      STARS_PACKAGES: PACKAGES,
      TELEGRAM_BOT_TOKEN: '',
    }),
    providers: new ProviderRegistry([provider], 'catalog'),
  };
});

/** The code of the AppError a verb threw, or rethrows what is not one. */
async function refusal(work: Promise<unknown>): Promise<string> {
  try {
    await work;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    throw error;
  }
  return 'none';
}

/** What the database says, to hold against the model. */
async function databaseFacts(telegramId: number) {
  const [ledger] = await selectRows<{ sum: number; min_after: number | null; user_id: string }>(
    database.db,
    sql`SELECT coalesce(sum(l.amount), 0)::int AS sum, min(l.balance_after)::int AS min_after,
               u.id::text AS user_id
        FROM users u LEFT JOIN ledger_entries l ON l.user_id = u.id
        WHERE u.telegram_id = ${telegramId} GROUP BY u.id`,
  );
  const generations = await selectRows<{
    id: string;
    status: string;
    payment_method: string;
    charges: number;
    charged: number;
    refunds: number;
    refunded: number;
    trial_uses: number;
    trials_returned: number;
  }>(
    database.db,
    sql`SELECT g.id, g.status, g.payment_method,
               count(l.id) FILTER (WHERE l.kind = 'generation_charge')::int AS charges,
               coalesce(-sum(l.amount) FILTER (WHERE l.kind = 'generation_charge'), 0)::int AS charged,
               count(l.id) FILTER (WHERE l.kind = 'generation_refund')::int AS refunds,
               coalesce(sum(l.amount) FILTER (WHERE l.kind = 'generation_refund'), 0)::int AS refunded,
               (SELECT count(*)::int FROM trial_uses t WHERE t.generation_request_id = g.id) AS trial_uses,
               (SELECT count(*)::int FROM trial_uses t
                WHERE t.generation_request_id = g.id AND t.returned_at IS NOT NULL) AS trials_returned
        FROM generation_requests g
        LEFT JOIN ledger_entries l ON l.reference_type = 'generation' AND l.reference_id = g.id::text
        WHERE g.user_id = ${Number(ledger?.user_id)}
        GROUP BY g.id`,
  );
  const [payments] = await selectRows<{ worst: number | null }>(
    database.db,
    sql`SELECT max(n)::int AS worst FROM (
          SELECT count(*) AS n FROM ledger_entries
          WHERE user_id = ${Number(ledger?.user_id)} AND reference_type = 'payment'
          GROUP BY reference_id, kind) per_payment`,
  );
  return { ledger, generations, paymentEntriesPerKind: payments?.worst ?? 0 };
}

describe('credits and free generations: property', () => {
  it('any sequence of payments, adjustments, generations and their outcomes keeps the ledger, trials and each generation consistent', async () => {
    const packages = ctx.config.starsPackages;
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { minLength: 1, maxLength: 24 }), async (operations) => {
        const telegramId = freshTelegramId();
        await syncUser(ctx, { telegram_id: telegramId });
        // The model the database must agree with.
        let balance = 0;
        let trialsUsed = 0;
        const payments: ModelPayment[] = [];
        const generations: ModelGeneration[] = [];
        const active = () => generations.filter((g) => g.state === 'active').length;

        for (const step of operations) {
          if (step.op === 'confirm') {
            const earlier =
              step.replay === null || payments.length === 0
                ? null
                : payments[step.replay % payments.length];
            const pack = packages[step.pack % packages.length]!;
            const paid = earlier ?? {
              chargeId: `tg_${randomUUID()}`,
              credits: pack.credits,
              stars: pack.stars,
              payload: invoicePayloadOf(pack),
              clawedBack: null,
            };
            const { result, replayed } = await confirmStarsPayment(
              ctx,
              {
                telegram_id: telegramId,
                telegram_payment_charge_id: paid.chargeId,
                total_amount: paid.stars,
                currency: 'XTR',
                invoice_payload: paid.payload,
              },
              'property',
            );
            expect(replayed).toBe(earlier !== null);
            expect(result).toMatchObject({ credits: paid.credits, telegram_id: telegramId });
            if (!earlier) {
              balance += paid.credits;
              payments.push(paid);
              expect(result.balance_after).toBe(balance);
            }
          } else if (step.op === 'refund' && payments.length > 0) {
            const target = payments[step.pick % payments.length]!;
            const { result, replayed } = await refundStarsPayment(
              ctx,
              {
                telegram_id: telegramId,
                telegram_payment_charge_id: target.chargeId,
                total_amount: target.stars,
                currency: 'XTR',
              },
              'property',
            );
            expect(replayed).toBe(target.clawedBack !== null);
            if (target.clawedBack === null) {
              // What was already spent cannot be taken back: it is the shortfall.
              target.clawedBack = Math.min(target.credits, balance);
              balance -= target.clawedBack;
            }
            expect(result).toMatchObject({
              clawed_back: target.clawedBack,
              shortfall: target.credits - target.clawedBack,
              balance,
            });
          } else if (step.op === 'adjust') {
            // As POST /admin/users/{id}/credits posts it: with its audit entry, in a transaction.
            const posting = adjustCredits(
              ctx,
              telegramId,
              { amount: step.amount, reason: 'property' },
              { actor: 'test', role: 'admin', requestId: null },
            );
            if (balance + step.amount < 0) {
              await expect(posting).rejects.toBeInstanceOf(InsufficientCreditsError);
            } else {
              const entry = await posting;
              balance += step.amount;
              expect(entry.balance_after).toBe(balance);
            }
          } else if (step.op === 'accept') {
            const price = step.wide ? PRICES.wide : PRICES.square;
            const method =
              step.payment === 'credits'
                ? 'credits'
                : step.payment === 'trial' || trialsUsed < TRIAL_LIMIT
                  ? 'trial'
                  : 'credits';
            const expected =
              active() >= MAX_ACTIVE
                ? 'too_many_active_generations'
                : method === 'trial' && trialsUsed >= TRIAL_LIMIT
                  ? 'trial_unavailable'
                  : method === 'credits' && balance < price
                    ? 'insufficient_credits'
                    : 'accepted';
            const accepting = acceptGeneration(
              ctx,
              {
                telegramId,
                model: model.key,
                prompt: 'property',
                parameters: step.wide ? { aspect_ratio: '16:9' } : {},
                references: [],
                payment: step.payment,
              },
              'property',
            );
            if (expected !== 'accepted') {
              expect(await refusal(accepting)).toBe(expected);
            } else {
              const accepted = await accepting;
              if (method === 'trial') trialsUsed++;
              else balance -= price;
              expect(accepted).toMatchObject({
                payment: { method, credits: method === 'trial' ? 0 : price },
                balance,
                trial: { used: trialsUsed },
              });
              generations.push({ id: accepted.id, method, price, state: 'active' });
            }
          } else if ((step.op === 'fail' || step.op === 'succeed') && generations.length > 0) {
            const target = generations[step.pick % generations.length]!;
            const settled =
              step.op === 'fail'
                ? await recordGenerationFailure(ctx, target.id, {
                    code: 'provider_failed',
                    message: 'property',
                  })
                : await recordGenerationSuccess(ctx, store, target.id, {
                    images: [
                      {
                        data: encodePng(4, 4, new Uint8Array(48).fill(200)),
                        mimeType: 'image/png',
                      },
                    ],
                  });
            expect(settled).toBe(target.state === 'active');
            if (settled) {
              target.state = step.op === 'fail' ? 'failed' : 'succeeded';
              if (step.op === 'fail' && target.method === 'credits') balance += target.price;
              if (step.op === 'fail' && target.method === 'trial') trialsUsed--;
            }
          }

          // The database against the model, after every step.
          const facts = await databaseFacts(telegramId);
          expect((await getBalance(ctx, telegramId)).balance).toBe(balance);
          expect(facts.ledger?.sum).toBe(balance);
          expect(facts.ledger?.min_after ?? 0).toBeGreaterThanOrEqual(0);
          const trial = await getTrialStatus(ctx, telegramId);
          expect(trial.used).toBe(trialsUsed);
          expect(trial.used).toBeLessThanOrEqual(TRIAL_LIMIT);
          expect(facts.paymentEntriesPerKind).toBeLessThanOrEqual(1);
          expect(
            facts.generations.map((g) => ({ ...g })).sort((a, b) => a.id.localeCompare(b.id)),
          ).toEqual(
            generations
              .map((g) => {
                const failed = g.state === 'failed';
                const paid = g.method === 'credits';
                return {
                  id: g.id,
                  status: g.state === 'active' ? 'queued' : g.state,
                  payment_method: g.method,
                  charges: paid ? 1 : 0,
                  charged: paid ? g.price : 0,
                  refunds: paid && failed ? 1 : 0,
                  refunded: paid && failed ? g.price : 0,
                  trial_uses: paid ? 0 : 1,
                  trials_returned: !paid && failed ? 1 : 0,
                };
              })
              .sort((a, b) => a.id.localeCompare(b.id)),
          );
        }
      }),
      { numRuns: 30 },
    );
  });
});
