import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { adminAuth, botAuth, buildTestApp, miniAppAuth } from './helpers/app.ts';
import { freshTelegramId, needsPostgres, sharedDatabase } from './helpers/database.ts';
import {
  balanceOf,
  createTestModel,
  submit,
  type TestModel,
  userWithCredits,
} from './helpers/pipeline.ts';

let database: DatabaseHandle;
let app: FastifyInstance;
let model: TestModel;
const provider = new ScriptedProvider();

beforeAll(async () => {
  database = await sharedDatabase();
  // No worker: these tests look at what is accepted and refused.
  app = await buildTestApp(
    {
      TRIAL_GENERATIONS: '1',
      STARS_PACKAGES: 'small:100:50',
      MAX_PARALLEL_GENERATIONS_PER_USER: '50',
    },
    undefined,
    { providers: new ProviderRegistry([provider], 'catalog') },
  );
  model = await createTestModel(database.db, { provider: provider.name });
});
afterAll(() => app.close());

const ban = (telegramId: number, reason: string, headers: Record<string, string> = adminAuth) =>
  app.inject({
    method: 'POST',
    url: `/api/v1/admin/users/${telegramId}/ban`,
    headers,
    payload: { reason },
  });

const unban = (telegramId: number, headers: Record<string, string> = adminAuth) =>
  app.inject({ method: 'POST', url: `/api/v1/admin/users/${telegramId}/unban`, headers });

const quote = (telegramId: number) =>
  app.inject({
    method: 'POST',
    url: '/api/v1/generations/quote',
    headers: botAuth,
    payload: { telegram_id: telegramId, model: model.key },
  });

const generate = (telegramId: number, payment = 'auto') =>
  submit(app, { telegram_id: telegramId, model: model.key, prompt: 'a lighthouse', payment });

async function generationsOf(telegramId: number): Promise<number> {
  const [row] = await selectRows<{ n: number }>(
    database.db,
    sql`SELECT count(*)::int AS n FROM generation_requests g JOIN users u ON u.id = g.user_id
        WHERE u.telegram_id = ${telegramId}`,
  );
  return row?.n ?? 0;
}

const trialOf = async (telegramId: number) =>
  (await app.inject({ url: `/api/v1/users/${telegramId}/trial`, headers: botAuth })).json();

function expectBanned(
  response: { statusCode: number; json: () => Record<string, unknown> },
  reason: string,
) {
  expect(response.statusCode).toBe(403);
  expect(response.json()).toMatchObject({
    status: 403,
    code: 'user_banned',
    title: 'User banned',
    reason,
  });
}

describe('POST /api/v1/admin/users/{telegram_id}/ban and /unban', () => {
  it('bans with a reason, shown in the admin view and in sync; unban lifts it', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 0);
    const before = Date.now();
    const banned = await ban(telegramId, 'spam');
    expect(banned.statusCode, banned.body).toBe(200);
    expect(banned.json()).toMatchObject({
      telegram_id: telegramId,
      banned: { reason: 'spam', since: expect.any(String) },
      referral_code: expect.any(String),
      referred_by: null,
      referrals: 0,
      language: null,
    });
    const since = banned.json().banned.since as string;
    expect(Date.parse(since)).toBeGreaterThanOrEqual(before - 1000);
    const synced = await app.inject({
      method: 'POST',
      url: '/api/v1/users/sync',
      headers: botAuth,
      payload: { telegram_id: telegramId },
    });
    expect(synced.json().banned).toEqual({ reason: 'spam', since });
    // Banned again: the ban keeps its start and takes the new reason.
    expect((await ban(telegramId, 'abuse')).json().banned).toEqual({ reason: 'abuse', since });
    const lifted = await unban(telegramId);
    expect(lifted.statusCode, lifted.body).toBe(200);
    expect(lifted.json().banned).toBeNull();
    const view = await app.inject({ url: `/api/v1/admin/users/${telegramId}`, headers: adminAuth });
    expect(view.json().banned).toBeNull();
    expect((await unban(telegramId)).statusCode).toBe(200);
  });

  it('is for admins only, needs a reason, and answers 404 for an unknown user', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 0);
    expect((await ban(telegramId, 'x', botAuth)).statusCode).toBe(403);
    expect((await ban(telegramId, 'x', miniAppAuth(telegramId))).statusCode).toBe(403);
    expect((await unban(telegramId, botAuth)).statusCode).toBe(403);
    const noReason = await ban(telegramId, '');
    expect(noReason.statusCode).toBe(422);
    expect(noReason.json().errors.map((e: { field: string }) => e.field)).toContain('body.reason');
    const unknown = await ban(freshTelegramId(), 'x');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().code).toBe('user_not_found');
    expect((await unban(freshTelegramId())).statusCode).toBe(404);
    const view = await app.inject({ url: `/api/v1/admin/users/${telegramId}`, headers: adminAuth });
    expect(view.json().banned).toBeNull();
  });

  it('honours an Idempotency-Key like the other admin POSTs', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 0);
    const key = { ...adminAuth, 'idempotency-key': randomUUID() };
    const first = await ban(telegramId, 'spam', key);
    const replay = await ban(telegramId, 'spam', key);
    expect(replay.statusCode).toBe(200);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.json()).toEqual(first.json());
    expect((await ban(telegramId, 'other', key)).statusCode).toBe(409);
  });
});

describe('a banned user', () => {
  it('cannot quote or start a generation (403 user_banned with the reason); nothing is charged', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 100);
    await ban(telegramId, 'chargebacks');
    expectBanned(await quote(telegramId), 'chargebacks');
    expectBanned(await generate(telegramId), 'chargebacks');
    expectBanned(await generate(telegramId, 'credits'), 'chargebacks');
    expect(await balanceOf(app, telegramId)).toBe(100);
    expect((await trialOf(telegramId)).used).toBe(0);
    expect(await generationsOf(telegramId)).toBe(0);
    // Unbanned, it may again.
    await unban(telegramId);
    expect((await quote(telegramId)).statusCode).toBe(200);
    const accepted = await generate(telegramId, 'credits');
    expect(accepted.statusCode, accepted.body).toBe(202);
    expect(await balanceOf(app, telegramId)).toBe(90);
  });

  it('is refused by the database too, whatever path stores its generation', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 0);
    await ban(telegramId, 'fraud');
    await expect(
      database.db.execute(
        sql`INSERT INTO generation_requests (id, user_id, model_id, price_id, prompt, parameters, payment_method, price_credits)
            SELECT ${randomUUID()}, u.id, ${model.id}, p.id, 'x', '{}'::jsonb, 'trial', 0
            FROM users u, model_prices p WHERE u.telegram_id = ${telegramId} AND p.model_id = ${model.id} LIMIT 1`,
      ),
    ).rejects.toMatchObject({ cause: expect.objectContaining({ code: 'C0002' }) });
  });

  it('still pays and is refunded: money is never lost', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 0);
    await ban(telegramId, 'spam');
    const paid = {
      telegram_id: telegramId,
      telegram_payment_charge_id: `tg_${randomUUID()}`,
      total_amount: 50,
      currency: 'XTR',
      invoice_payload: 'stars:small',
    };
    const confirm = await app.inject({
      method: 'POST',
      url: '/api/v1/payments/stars/confirm',
      headers: botAuth,
      payload: paid,
    });
    expect(confirm.statusCode, confirm.body).toBe(201);
    expect(await balanceOf(app, telegramId)).toBe(100);
    const { invoice_payload: _, ...refund } = paid;
    const refunded = await app.inject({
      method: 'POST',
      url: '/api/v1/payments/stars/refund',
      headers: botAuth,
      payload: refund,
    });
    expect(refunded.statusCode, refunded.body).toBe(200);
    expect(await balanceOf(app, telegramId)).toBe(0);
  });

  it('a ban racing accepts: each accept is either before the ban (charged) or refused (PostgreSQL)', async (context) => {
    if (needsPostgres('needs concurrent transactions on several connections'))
      return context.skip();
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 1000);
    const [banned, ...responses] = await Promise.all([
      ban(telegramId, 'race'),
      ...Array.from({ length: 30 }, () => generate(telegramId, 'credits')),
    ]);
    expect(banned?.statusCode).toBe(200);
    const accepted = responses.filter((r) => r.statusCode === 202).length;
    expect(accepted + responses.filter((r) => r.statusCode === 403).length).toBe(30);
    expect(await generationsOf(telegramId)).toBe(accepted);
    expect(await balanceOf(app, telegramId)).toBe(1000 - 10 * accepted);
    expectBanned(await generate(telegramId, 'credits'), 'race');
  });
});
