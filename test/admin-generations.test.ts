import { tmpdir } from 'node:os';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import {
  recordGenerationFailure,
  recordGenerationSuccess,
} from '../src/services/generation-outcomes.ts';
import { LocalResultStore } from '../src/storage/local.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { adminAuth, botAuth, buildTestApp, miniAppAuth, testConfig } from './helpers/app.ts';
import { freshTelegramId, needsPostgres, onPostgres, sharedDatabase } from './helpers/database.ts';
import { testPhoto } from './helpers/images.ts';
import { operatorCookie, operatorSettings, SUPPORT_OPERATOR_ID } from './helpers/operators.ts';
import {
  balanceOf,
  createTestModel,
  entriesFor,
  submit,
  type TestModel,
  userWithCredits,
} from './helpers/pipeline.ts';

// GET /admin/generations, GET /admin/queue, POST /admin/generations/{id}/refund. Generations are
// accepted through POST /generations and settled through generation-outcomes.ts, as the worker
// settles them; no worker runs, so a generation stays queued until the test settles it.

const PRICE = 10;
let database: DatabaseHandle;
let app: FastifyInstance;
let model: TestModel;
const provider = new ScriptedProvider();
const registry = new ProviderRegistry([provider], 'catalog');
const store = new LocalResultStore(tmpdir());
/** Settles without deliveries (no bot token). */
const settle = () => ({ db: database.db, config: testConfig({ TELEGRAM_BOT_TOKEN: '' }) });
const failure = { code: 'provider_failed', message: 'the provider said no' };

beforeAll(async () => {
  database = await sharedDatabase();
  app = await buildTestApp(
    { MAX_PARALLEL_GENERATIONS_PER_USER: '100', ...operatorSettings },
    undefined,
    {
      providers: registry,
    },
  );
  model = await createTestModel(database.db, {
    provider: provider.name,
    prices: [{ conditions: {}, credits: PRICE }],
  });
});

afterAll(async () => {
  await app.close();
});

async function accepted(
  telegramId: number,
  payment: 'credits' | 'trial',
  prompt = 'a lighthouse',
): Promise<string> {
  const response = await submit(app, {
    telegram_id: telegramId,
    model: model.key,
    prompt,
    payment,
  });
  expect(response.statusCode, response.body).toBe(202);
  return response.json().id;
}

async function succeeded(id: string): Promise<void> {
  expect(
    await recordGenerationSuccess(settle(), store, id, {
      images: [{ data: await testPhoto('png'), mimeType: 'image/png' }],
    }),
  ).toBe(true);
}

function refund(id: string, reason = 'the user did not like it', headers = {}) {
  return app.inject({
    method: 'POST',
    url: `/api/v1/admin/generations/${id}/refund`,
    headers: { ...adminAuth, ...headers },
    payload: { reason },
  });
}

describe('access', () => {
  const routes = [
    { method: 'GET' as const, url: '/api/v1/admin/generations' },
    { method: 'GET' as const, url: '/api/v1/admin/queue' },
    {
      method: 'POST' as const,
      url: '/api/v1/admin/generations/00000000-0000-4000-8000-000000000000/refund',
      payload: { reason: 'x' },
    },
  ];
  it.each(routes)(
    '$method $url: 401 without a token, 403 for the bot and a Mini App user',
    async (route) => {
      const none = await app.inject(route);
      expect(none.statusCode).toBe(401);
      expect(none.headers['content-type']).toContain('application/problem+json');
      const bot = await app.inject({ ...route, headers: botAuth });
      expect(bot.statusCode).toBe(403);
      const mini = await app.inject({ ...route, headers: miniAppAuth(freshTelegramId()) });
      expect(mini.statusCode).toBe(403);
      // Support operators (a Telegram Login session) reach them all: reads, and refunds.
      const support = await app.inject({
        ...route,
        headers: await operatorCookie(app, SUPPORT_OPERATOR_ID),
      });
      expect(support.statusCode, support.body).toBe(route.method === 'GET' ? 200 : 404);
    },
  );
});

describe('GET /admin/generations', () => {
  it('lists every status newest first with user, model, payment, error, job and results; filters combine; pages by cursor', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 3 * PRICE);
    const first = await accepted(telegramId, 'credits', 'one');
    const second = await accepted(telegramId, 'credits', 'two');
    const third = await accepted(telegramId, 'credits', 'three');
    await succeeded(first);
    await recordGenerationFailure(settle(), second, failure);
    // Accepted 42.5 s before it finished (the order of the three stays the same).
    await database.db.execute(
      sql`UPDATE generation_requests SET created_at = completed_at - interval '42.5 seconds'
          WHERE id = ${first}`,
    );

    const all = await app.inject({
      method: 'GET',
      url: `/api/v1/admin/generations?user=${telegramId}`,
      headers: adminAuth,
    });
    expect(all.statusCode, all.body).toBe(200);
    const items = all.json().generations;
    expect(items.map((g: { id: string }) => g.id)).toEqual([third, second, first]);
    expect(items[0]).toMatchObject({
      telegram_id: telegramId,
      model: model.key,
      status: 'queued',
      payment: { method: 'credits', credits: PRICE, refunded: false },
      error: null,
      duration_seconds: null,
      job: { attempts: 0 },
    });
    expect(items[1]).toMatchObject({
      status: 'failed',
      error: { code: 'provider_failed' },
      payment: { refunded: true },
    });
    expect(items[2]).toMatchObject({
      status: 'succeeded',
      results: [{ position: 0, url: `/api/v1/generations/${items[2].id}/images/0` }],
    });
    expect(items[2].duration_seconds).toBe(42.5);
    expect(all.json().next_cursor).toBeNull();

    const failedOnly = await app.inject({
      method: 'GET',
      url: `/api/v1/admin/generations?user=${telegramId}&status=failed&model=${model.key}`,
      headers: adminAuth,
    });
    expect(failedOnly.json().generations.map((g: { id: string }) => g.id)).toEqual([second]);

    const otherModel = await app.inject({
      method: 'GET',
      url: `/api/v1/admin/generations?user=${telegramId}&model=nano-banana`,
      headers: adminAuth,
    });
    expect(otherModel.json().generations).toEqual([]);

    const future = new Date(Date.now() + 3_600_000).toISOString();
    const past = new Date(Date.now() - 3_600_000).toISOString();
    const inWindow = await app.inject({
      method: 'GET',
      url: `/api/v1/admin/generations?user=${telegramId}&from=${past}&to=${future}`,
      headers: adminAuth,
    });
    expect(inWindow.json().generations).toHaveLength(3);
    const later = await app.inject({
      method: 'GET',
      url: `/api/v1/admin/generations?user=${telegramId}&from=${future}`,
      headers: adminAuth,
    });
    expect(later.json().generations).toEqual([]);

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Awaited<ReturnType<typeof app.inject>> = await app.inject({
        method: 'GET',
        url: `/api/v1/admin/generations?user=${telegramId}&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        headers: adminAuth,
      });
      expect(page.statusCode, page.body).toBe(200);
      seen.push(...page.json().generations.map((g: { id: string }) => g.id));
      cursor = page.json().next_cursor;
    } while (cursor);
    expect(seen).toEqual([third, second, first]);
  });

  it('refuses a cursor it did not give (400) and bad filters (422)', async () => {
    const badCursor = await app.inject({
      method: 'GET',
      url: '/api/v1/admin/generations?cursor=bm90LWEtY3Vyc29y',
      headers: adminAuth,
    });
    expect(badCursor.statusCode).toBe(400);
    expect(badCursor.json().code).toBe('invalid_cursor');
    for (const query of ['status=done', 'user=0', 'from=yesterday', 'limit=101', 'limit=0']) {
      const response = await app.inject({
        method: 'GET',
        url: `/api/v1/admin/generations?${query}`,
        headers: adminAuth,
      });
      expect(response.statusCode, query).toBe(422);
      expect(response.json().code).toBe('validation_failed');
    }
  });
});

describe('GET /admin/queue', () => {
  it('counts waiting jobs by kind and provider, the oldest wait, recent failures and active generations', async () => {
    const waitingOf = async () => {
      const response = await app.inject({
        method: 'GET',
        url: '/api/v1/admin/queue',
        headers: adminAuth,
      });
      expect(response.statusCode, response.body).toBe(200);
      const body = response.json();
      const row = body.jobs.find(
        (jobs: { kind: string; provider: string | null }) =>
          jobs.kind === 'generate' && jobs.provider === provider.name,
      );
      return { body, waiting: row?.waiting ?? 0, running: row?.running ?? 0 };
    };
    // On PostgreSQL other test files share the database and move its totals meanwhile: there the
    // totals are at least what this test added; on PGlite (a database per test worker) exactly.
    const grewBy = (after: number, before: number, added: number) =>
      onPostgres
        ? expect(after).toBeGreaterThanOrEqual(before + added)
        : expect(after).toBe(before + added);
    const before = await waitingOf();
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 2 * PRICE);
    const a = await accepted(telegramId, 'credits', 'a');
    const b = await accepted(telegramId, 'credits', 'b');
    // One has waited two hours: the oldest wait is at least that.
    await database.db.execute(
      sql`UPDATE generation_jobs SET created_at = now() - interval '2 hours'
          WHERE request_id = ${a} AND kind = 'generate'`,
    );
    // No worker serves this test's provider: both wait, under the model's provider.
    const { body, waiting, running } = await waitingOf();
    expect(waiting).toBe(before.waiting + 2);
    expect(running).toBe(0);
    expect(body.oldest_waiting_seconds).toBeGreaterThanOrEqual(7200);
    grewBy(body.active_generations, before.body.active_generations, 2);
    grewBy(body.failed_last_hour, before.body.failed_last_hour, 0);

    // One fails: its job ended failed within the hour, and it no longer waits.
    await recordGenerationFailure(settle(), b, failure);
    const after = await waitingOf();
    expect(after.waiting).toBe(before.waiting + 1);
    grewBy(after.body.failed_last_hour, before.body.failed_last_hour, 1);
    grewBy(after.body.active_generations, before.body.active_generations, 1);
  });
});

describe('POST /admin/generations/{id}/refund', () => {
  it('gives a succeeded generation its credits back once; a second refund is 409', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, PRICE);
    const id = await accepted(telegramId, 'credits');
    await succeeded(id);
    expect(await balanceOf(app, telegramId)).toBe(0);

    const response = await refund(id);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toMatchObject({
      generation: { id, status: 'succeeded', payment: { refunded: true } },
      refund: { method: 'credits', credits: PRICE },
    });
    expect(await balanceOf(app, telegramId)).toBe(PRICE);
    expect(await entriesFor(database.db, id)).toEqual([
      { kind: 'generation_charge', amount: -PRICE },
      { kind: 'generation_refund', amount: PRICE },
    ]);
    const [entry] = await selectRows<{ idempotency_key: string; actor: string; reason: string }>(
      database.db,
      sql`SELECT idempotency_key, actor, reason FROM ledger_entries
          WHERE id = ${response.json().refund.entry_id}`,
    );
    expect(entry?.idempotency_key).toMatch(/^refund-of-entry:\d+$/);
    expect(entry?.actor).toMatch(/^admin:/);
    expect(entry?.reason).toContain('the user did not like it');

    const audits = await selectRows<{
      action: string;
      actor: string;
      role: string;
      reason: string;
      request_id: string;
      after: { refunded: boolean; credits: number };
    }>(
      database.db,
      sql`SELECT action, actor, role, reason, request_id, after FROM audit_log
          WHERE subject_type = 'generation' AND subject_id = ${id}`,
    );
    expect(audits).toEqual([
      {
        action: 'generation.refund',
        actor: expect.stringMatching(/^admin:/),
        role: 'admin',
        reason: 'the user did not like it',
        request_id: response.headers['x-request-id'],
        after: expect.objectContaining({ refunded: true, credits: PRICE, method: 'credits' }),
      },
    ]);

    const again = await refund(id);
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({
      code: 'generation_already_refunded',
      refunded_by: 'admin',
    });
    expect(await balanceOf(app, telegramId)).toBe(PRICE);
    // A failure arriving late (a duplicate webhook) changes nothing: it is settled already.
    expect(await recordGenerationFailure(settle(), id, failure)).toBe(false);
    expect(await entriesFor(database.db, id)).toHaveLength(2);
  });

  it("records a support operator's refund as theirs", async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, PRICE);
    const id = await accepted(telegramId, 'credits');
    await succeeded(id);
    const response = await app.inject({
      method: 'POST',
      url: `/api/v1/admin/generations/${id}/refund`,
      headers: await operatorCookie(app, SUPPORT_OPERATOR_ID),
      payload: { reason: 'blurry' },
    });
    expect(response.statusCode, response.body).toBe(200);
    const [audit] = await selectRows<{ actor: string; role: string }>(
      database.db,
      sql`SELECT actor, role FROM audit_log WHERE subject_type = 'generation' AND subject_id = ${id}`,
    );
    expect(audit).toEqual({ actor: `operator:${SUPPORT_OPERATOR_ID}`, role: 'support' });
    expect(await balanceOf(app, telegramId)).toBe(PRICE);
  });

  it('gives back a free generation', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 0);
    const id = await accepted(telegramId, 'trial');
    await succeeded(id);
    const trialBefore = await app.inject({
      method: 'GET',
      url: `/api/v1/users/${telegramId}/trial`,
      headers: botAuth,
    });
    const response = await refund(id);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json().refund).toEqual({ method: 'trial', credits: 0, entry_id: null });
    expect(response.json().generation.payment).toEqual({
      method: 'trial',
      credits: 0,
      refunded: true,
    });
    const trialAfter = await app.inject({
      method: 'GET',
      url: `/api/v1/users/${telegramId}/trial`,
      headers: botAuth,
    });
    expect(trialAfter.json().remaining).toBe(trialBefore.json().remaining + 1);
    expect((await refund(id)).statusCode).toBe(409);
  });

  it('refuses a failed generation (given back already), one not finished, and an unknown one', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 2 * PRICE);
    const failed = await accepted(telegramId, 'credits');
    await recordGenerationFailure(settle(), failed, failure);
    const failedRefund = await refund(failed);
    expect(failedRefund.statusCode).toBe(409);
    expect(failedRefund.json()).toMatchObject({
      code: 'generation_already_refunded',
      refunded_by: 'failure',
    });
    const queued = await accepted(telegramId, 'credits');
    const queuedRefund = await refund(queued);
    expect(queuedRefund.statusCode).toBe(409);
    expect(queuedRefund.json()).toMatchObject({
      code: 'generation_not_finished',
      generation_status: 'queued',
    });
    expect(await balanceOf(app, telegramId)).toBe(PRICE);

    const unknown = await refund('00000000-0000-4000-8000-000000000000');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().code).toBe('generation_not_found');
    for (const payload of [{}, { reason: '' }, { reason: 'x', extra: 1 }]) {
      const bad = await app.inject({
        method: 'POST',
        url: `/api/v1/admin/generations/${queued}/refund`,
        headers: adminAuth,
        payload,
      });
      expect(bad.statusCode, JSON.stringify(payload)).toBe(422);
    }
    const badId = await app.inject({
      method: 'POST',
      url: '/api/v1/admin/generations/not-a-uuid/refund',
      headers: adminAuth,
      payload: { reason: 'x' },
    });
    expect(badId.statusCode).toBe(422);
  });

  it('replays the first answer for a repeated Idempotency-Key', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, PRICE);
    const id = await accepted(telegramId, 'credits');
    await succeeded(id);
    const key = { 'idempotency-key': `refund-${id}` };
    const first = await refund(id, 'sorry', key);
    const second = await refund(id, 'sorry', key);
    expect(first.statusCode).toBe(200);
    expect(second.statusCode).toBe(200);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.json()).toEqual(first.json());
    expect(await balanceOf(app, telegramId)).toBe(PRICE);
  });

  it('20 concurrent refunds of one generation post exactly one refund', async (context) => {
    if (needsPostgres('20 refunds at once need several connections')) return context.skip();
    for (let round = 0; round < 3; round++) {
      const telegramId = freshTelegramId();
      await userWithCredits(app, telegramId, PRICE);
      const id = await accepted(telegramId, 'credits');
      await succeeded(id);
      const responses = await Promise.all(
        Array.from({ length: 20 }, (_, i) => refund(id, `race ${i}`)),
      );
      const statuses = responses.map((response) => response.statusCode).sort();
      expect(statuses.filter((status) => status === 200)).toHaveLength(1);
      expect(statuses.filter((status) => status === 409)).toHaveLength(19);
      expect(await entriesFor(database.db, id)).toEqual([
        { kind: 'generation_charge', amount: -PRICE },
        { kind: 'generation_refund', amount: PRICE },
      ]);
      expect(await balanceOf(app, telegramId)).toBe(PRICE);
      const [audits] = await selectRows<{ count: number }>(
        database.db,
        sql`SELECT count(*)::int AS count FROM audit_log
            WHERE subject_type = 'generation' AND subject_id = ${id}`,
      );
      expect(audits?.count).toBe(1);
    }
  });
});
