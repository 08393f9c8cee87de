import { tmpdir } from 'node:os';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { encodePng } from '../src/providers/png.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import {
  recordGenerationFailure,
  recordGenerationSuccess,
} from '../src/services/generation-outcomes.ts';
import { LocalResultStore } from '../src/storage/local.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { buildTestApp, testConfig } from './helpers/app.ts';
import { freshTelegramId, needsPostgres, sharedDatabase } from './helpers/database.ts';
import {
  balanceOf,
  createTestModel,
  entriesFor,
  generation,
  submit,
  type TestModel,
  userWithCredits,
} from './helpers/pipeline.ts';

// Many requests for one user at once, through what production runs: POST /api/v1/generations
// (accept_generation() under the user's row lock) and the settle path of generation-outcomes.ts.
// Real concurrency needs several connections: the submit races run on PostgreSQL only. The
// settle races also run on PGlite, where they are serialised but must still settle once.

const TRIALS = 3;
const PRICE = 10;

let database: DatabaseHandle;
let model: TestModel;
const provider = new ScriptedProvider();
const registry = new ProviderRegistry([provider], 'catalog');
/** No cap worth the name: what is tested is the free generations and the balance. */
let uncapped: FastifyInstance;
/** A cap of 4 active generations, above the 3 free ones. */
let capped: FastifyInstance;
const settleConfig = testConfig({ TELEGRAM_BOT_TOKEN: '' });

beforeAll(async () => {
  database = await sharedDatabase();
  // No deliveries (no bot token) and no worker: the generations stay queued until settled here.
  const settings = { TRIAL_GENERATIONS: String(TRIALS), TELEGRAM_BOT_TOKEN: '' };
  uncapped = await buildTestApp(
    { ...settings, MAX_PARALLEL_GENERATIONS_PER_USER: '100' },
    undefined,
    { providers: registry },
  );
  capped = await buildTestApp({ ...settings, MAX_PARALLEL_GENERATIONS_PER_USER: '4' }, undefined, {
    providers: registry,
  });
  model = await createTestModel(database.db, {
    provider: provider.name,
    prices: [{ conditions: {}, credits: PRICE }],
  });
});

afterAll(async () => {
  await uncapped.close();
  await capped.close();
});

/** `count` submits for one user at once; answers each response's status, code and payment. */
async function submitTogether(
  app: FastifyInstance,
  telegramId: number,
  count: number,
  payment: 'auto' | 'trial' | 'credits',
) {
  const responses = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      submit(app, { telegram_id: telegramId, model: model.key, prompt: `race ${i}`, payment }),
    ),
  );
  return responses.map((response) => {
    const body = response.json();
    return {
      status: response.statusCode,
      code: body.code as string | undefined,
      id: body.id as string | undefined,
      method: body.payment?.method as string | undefined,
    };
  });
}

const tally = (values: (string | number | undefined)[]) =>
  values.reduce<Record<string, number>>((counts, value) => {
    counts[String(value)] = (counts[String(value)] ?? 0) + 1;
    return counts;
  }, {});

/** What the database holds for the user: ledger facts, trial uses and generations. */
async function userFacts(telegramId: number) {
  const [row] = await selectRows<{
    sum: number;
    min_after: number;
    last_after: number;
    entries: number;
    trials: number;
    active: number;
    generations: number;
    unpaid: number;
  }>(
    database.db,
    sql`SELECT
          (SELECT coalesce(sum(amount), 0)::int FROM ledger_entries l WHERE l.user_id = u.id) AS sum,
          (SELECT coalesce(min(balance_after), 0)::int FROM ledger_entries l WHERE l.user_id = u.id) AS min_after,
          (SELECT coalesce((SELECT balance_after FROM ledger_entries l WHERE l.user_id = u.id
                            ORDER BY user_entry_no DESC LIMIT 1), 0)::int) AS last_after,
          (SELECT count(*)::int FROM ledger_entries l WHERE l.user_id = u.id) AS entries,
          (SELECT count(*)::int FROM trial_uses t WHERE t.user_id = u.id AND t.returned_at IS NULL) AS trials,
          (SELECT count(*)::int FROM generation_requests g
            WHERE g.user_id = u.id AND g.status IN ('queued', 'running')) AS active,
          (SELECT count(*)::int FROM generation_requests g WHERE g.user_id = u.id) AS generations,
          -- Generations paid neither by one charge nor by one trial use: must be none.
          (SELECT count(*)::int FROM generation_requests g WHERE g.user_id = u.id AND NOT (
             (g.payment_method = 'credits'
              AND (SELECT count(*) FROM ledger_entries l WHERE l.reference_type = 'generation'
                     AND l.reference_id = g.id::text AND l.kind = 'generation_charge') = 1
              AND NOT EXISTS (SELECT 1 FROM trial_uses t WHERE t.generation_request_id = g.id))
             OR (g.payment_method = 'trial'
              AND (SELECT count(*) FROM trial_uses t WHERE t.generation_request_id = g.id) = 1
              AND NOT EXISTS (SELECT 1 FROM ledger_entries l WHERE l.reference_type = 'generation'
                     AND l.reference_id = g.id::text)))) AS unpaid
        FROM users u WHERE u.telegram_id = ${telegramId}`,
  );
  if (!row) throw new Error(`no user ${telegramId}`);
  return row;
}

describe('concurrent submits for one user', () => {
  it(`payment=trial: exactly ${TRIALS} free generations are accepted, the rest 409, nothing charged`, async (context) => {
    if (needsPostgres('submits racing for one row lock need several connections'))
      return context.skip();
    const telegramId = freshTelegramId();
    await userWithCredits(uncapped, telegramId, 100);
    const results = await submitTogether(uncapped, telegramId, 24, 'trial');
    expect(tally(results.map((r) => `${r.status} ${r.method ?? r.code}`))).toEqual({
      '202 trial': TRIALS,
      '409 trial_unavailable': 24 - TRIALS,
    });
    expect(await userFacts(telegramId)).toMatchObject({
      sum: 100,
      last_after: 100,
      entries: 1,
      trials: TRIALS,
      generations: TRIALS,
      unpaid: 0,
    });
  });

  it('payment=auto: the free generations first, then credits while they last, then 402', async (context) => {
    if (needsPostgres('submits racing for one row lock need several connections'))
      return context.skip();
    const telegramId = freshTelegramId();
    // Covers two generations and leaves 5.
    await userWithCredits(uncapped, telegramId, 2 * PRICE + 5);
    const results = await submitTogether(uncapped, telegramId, 24, 'auto');
    expect(tally(results.map((r) => `${r.status} ${r.method ?? r.code}`))).toEqual({
      '202 trial': TRIALS,
      '202 credits': 2,
      '402 insufficient_credits': 24 - TRIALS - 2,
    });
    const facts = await userFacts(telegramId);
    expect(facts).toMatchObject({
      sum: 5,
      last_after: 5,
      entries: 3,
      trials: TRIALS,
      generations: TRIALS + 2,
      unpaid: 0,
    });
    expect(facts.min_after).toBeGreaterThanOrEqual(0);
    // The running balance is consistent entry after entry: 25, 15, 5.
    const entries = await selectRows<{ balance_after: number }>(
      database.db,
      sql`SELECT l.balance_after::int FROM ledger_entries l JOIN users u ON u.id = l.user_id
          WHERE u.telegram_id = ${telegramId} ORDER BY l.user_entry_no`,
    );
    expect(entries.map((e) => e.balance_after)).toEqual([25, 15, 5]);
    expect(await balanceOf(uncapped, telegramId)).toBe(5);
  });

  it('payment=credits never takes a free generation, and never overdraws', async (context) => {
    if (needsPostgres('submits racing for one row lock need several connections'))
      return context.skip();
    const telegramId = freshTelegramId();
    await userWithCredits(uncapped, telegramId, 7 * PRICE);
    const results = await submitTogether(uncapped, telegramId, 24, 'credits');
    expect(tally(results.map((r) => `${r.status} ${r.method ?? r.code}`))).toEqual({
      '202 credits': 7,
      '402 insufficient_credits': 17,
    });
    expect(await userFacts(telegramId)).toMatchObject({
      sum: 0,
      last_after: 0,
      min_after: 0,
      trials: 0,
      generations: 7,
      unpaid: 0,
    });
  });

  it('MAX_PARALLEL_GENERATIONS_PER_USER holds while free generations and credits are both taken', async (context) => {
    if (needsPostgres('submits racing for one row lock need several connections'))
      return context.skip();
    const telegramId = freshTelegramId();
    await userWithCredits(capped, telegramId, 100);
    const results = await submitTogether(capped, telegramId, 16, 'auto');
    // Four fit under the cap: the three free generations and one paid.
    expect(tally(results.map((r) => `${r.status} ${r.method ?? r.code}`))).toEqual({
      '202 trial': TRIALS,
      '202 credits': 1,
      '429 too_many_active_generations': 12,
    });
    expect(await userFacts(telegramId)).toMatchObject({
      sum: 100 - PRICE,
      trials: TRIALS,
      active: 4,
      generations: 4,
      unpaid: 0,
    });
    // A slot freed by a failure is taken by exactly one of the next racers.
    const paid = results.find((r) => r.method === 'credits');
    expect(
      await recordGenerationFailure({ db: database.db, config: settleConfig }, paid?.id as string, {
        code: 'provider_failed',
        message: 'test',
      }),
    ).toBe(true);
    const again = await submitTogether(capped, telegramId, 8, 'auto');
    expect(tally(again.map((r) => `${r.status} ${r.method ?? r.code}`))).toEqual({
      '202 credits': 1,
      '429 too_many_active_generations': 7,
    });
    expect(await userFacts(telegramId)).toMatchObject({ sum: 100 - PRICE, active: 4, unpaid: 0 });
  });
});

describe('settling a generation many times at once', () => {
  const ctx = () => ({ db: database.db, config: settleConfig });
  const failure = { code: 'provider_failed', message: 'the provider failed it' };

  async function accepted(telegramId: number, payment: 'credits' | 'trial'): Promise<string> {
    const response = await submit(uncapped, {
      telegram_id: telegramId,
      model: model.key,
      prompt: 'settled once',
      payment,
    });
    expect(response.statusCode, response.body).toBe(202);
    return response.json().id;
  }

  it('a failure refunds the charge once, however many report it at once', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(uncapped, telegramId, 30);
    const id = await accepted(telegramId, 'credits');
    const settled = await Promise.all(
      Array.from({ length: 12 }, () => recordGenerationFailure(ctx(), id, failure)),
    );
    expect(settled.filter(Boolean)).toHaveLength(1);
    expect(await entriesFor(database.db, id)).toEqual([
      { kind: 'generation_charge', amount: -PRICE },
      { kind: 'generation_refund', amount: PRICE },
    ]);
    expect(await balanceOf(uncapped, telegramId)).toBe(30);
    expect(await generation(uncapped, id)).toMatchObject({
      status: 'failed',
      error: { code: 'provider_failed' },
      payment: { method: 'credits', credits: PRICE, refunded: true },
    });
    expect(await userFacts(telegramId)).toMatchObject({
      sum: 30,
      entries: 3,
      active: 0,
      unpaid: 0,
    });
  });

  it('a failure gives the free generation back once, however many report it at once', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(uncapped, telegramId, 0);
    const id = await accepted(telegramId, 'trial');
    expect(await userFacts(telegramId)).toMatchObject({ trials: 1 });
    const settled = await Promise.all(
      Array.from({ length: 12 }, () => recordGenerationFailure(ctx(), id, failure)),
    );
    expect(settled.filter(Boolean)).toHaveLength(1);
    const uses = await selectRows<{ returned: boolean; return_reason: string | null }>(
      database.db,
      sql`SELECT returned_at IS NOT NULL AS returned, return_reason FROM trial_uses
          WHERE generation_request_id = ${id}`,
    );
    expect(uses).toEqual([{ returned: true, return_reason: 'generation failed: provider_failed' }]);
    expect(await userFacts(telegramId)).toMatchObject({ trials: 0, entries: 0, unpaid: 0 });
    expect((await generation(uncapped, id)).payment).toEqual({
      method: 'trial',
      credits: 0,
      refunded: true,
    });
    // The free generation is there to be used again.
    expect(await accepted(telegramId, 'trial')).not.toBe(id);
  });

  it('a success racing failures: one settles it, and only a failure that won refunds', async () => {
    const store = new LocalResultStore(tmpdir());
    for (let round = 0; round < 4; round++) {
      const telegramId = freshTelegramId();
      await userWithCredits(uncapped, telegramId, PRICE);
      const id = await accepted(telegramId, 'credits');
      const outcomes = await Promise.all([
        recordGenerationFailure(ctx(), id, failure),
        recordGenerationSuccess(ctx(), store, id, {
          images: [{ data: encodePng(4, 4, new Uint8Array(48).fill(200)), mimeType: 'image/png' }],
        }),
        recordGenerationFailure(ctx(), id, failure),
      ]);
      expect(outcomes.filter(Boolean)).toHaveLength(1);
      const succeeded = outcomes[1] === true;
      const shown = await generation(uncapped, id);
      expect(shown.status).toBe(succeeded ? 'succeeded' : 'failed');
      expect(shown.results).toHaveLength(succeeded ? 1 : 0);
      expect(await entriesFor(database.db, id)).toEqual(
        succeeded
          ? [{ kind: 'generation_charge', amount: -PRICE }]
          : [
              { kind: 'generation_charge', amount: -PRICE },
              { kind: 'generation_refund', amount: PRICE },
            ],
      );
      expect(await balanceOf(uncapped, telegramId)).toBe(succeeded ? 0 : PRICE);
    }
  });
});
