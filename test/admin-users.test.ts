import { randomBytes, randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { tokenId } from '../src/deps/auth.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { listUsers, prefixEnd, USER_COUNT_CAP } from '../src/services/admin-users.ts';
import { listAudit } from '../src/services/audit.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { ADMIN_TOKEN, adminAuth, botAuth, buildTestApp } from './helpers/app.ts';
import { freshTelegramId, needsPostgres, sharedDatabase } from './helpers/database.ts';
import {
  ADMIN_OPERATOR_ID,
  operatorCookie,
  operatorSettings,
  SUPPORT_OPERATOR_ID,
} from './helpers/operators.ts';
import { balanceOf, createTestModel, submit, waitFor } from './helpers/pipeline.ts';

let database: DatabaseHandle;
let app: FastifyInstance;
let support: { cookie: string };
let admin: { cookie: string };
// No worker: a generation stays queued, which is all the user's page needs.
const provider = new ScriptedProvider();

beforeAll(async () => {
  database = await sharedDatabase();
  app = await buildTestApp(
    {
      ...operatorSettings,
      STARS_PACKAGES: 'small:100:50',
      MAX_PARALLEL_GENERATIONS_PER_USER: '50',
    },
    undefined,
    { providers: new ProviderRegistry([provider], 'catalog') },
  );
  support = await operatorCookie(app, SUPPORT_OPERATOR_ID);
  admin = await operatorCookie(app, ADMIN_OPERATOR_ID);
});
afterAll(() => app.close());

async function sync(payload: Record<string, unknown>) {
  const response = await app.inject({
    method: 'POST',
    url: '/api/v1/users/sync',
    headers: botAuth,
    payload,
  });
  expect(response.statusCode, response.body).toBeLessThan(300);
  return response.json();
}

const credits = (
  telegramId: number,
  amount: number,
  headers: Record<string, string>,
  reason = 'goodwill',
) =>
  app.inject({
    method: 'POST',
    url: `/api/v1/admin/users/${telegramId}/credits`,
    headers,
    payload: { amount, reason },
  });

const auditOf = async (telegramId: number) =>
  (await listAudit(database.db, { subjectType: 'user', subjectId: String(telegramId), limit: 50 }))
    .items;

function confirmStars(telegramId: number, chargeId = `tg_${randomUUID()}`) {
  return app.inject({
    method: 'POST',
    url: '/api/v1/payments/stars/confirm',
    headers: botAuth,
    payload: {
      telegram_id: telegramId,
      telegram_payment_charge_id: chargeId,
      provider_payment_charge_id: null,
      total_amount: 50,
      currency: 'XTR',
      invoice_payload: 'stars:small',
    },
  });
}

function refundStars(telegramId: number, chargeId: string) {
  return app.inject({
    method: 'POST',
    url: '/api/v1/payments/stars/refund',
    headers: botAuth,
    payload: {
      telegram_id: telegramId,
      telegram_payment_charge_id: chargeId,
      total_amount: 50,
      currency: 'XTR',
    },
  });
}

/** Users whose `paying` (kept by the payments' trigger) is not "has a paid payment": none. */
async function payingDrift(): Promise<number> {
  const [row] = await selectRows<{ n: number }>(
    database.db,
    sql`SELECT count(*)::int AS n FROM users u
        WHERE u.paying <> EXISTS (SELECT 1 FROM payments p
                                  WHERE p.user_id = u.id AND p.status = 'paid')`,
  );
  return row?.n ?? -1;
}

describe('POST /api/v1/admin/users/{telegram_id}/credits, audited', () => {
  it('records the adjustment and its audit entry together: who, role, before, after, reason, request id', async () => {
    const telegramId = freshTelegramId();
    await sync({ telegram_id: telegramId });
    const response = await credits(telegramId, 300, { ...support, 'x-request-id': 'req-credit-1' });
    expect(response.statusCode, response.body).toBe(201);
    const entry = response.json().entry;
    expect(entry).toMatchObject({
      amount: 300,
      balance_after: 300,
      kind: 'admin_adjustment',
      actor: `operator:${SUPPORT_OPERATOR_ID}`,
      reason: 'goodwill',
    });
    expect(await auditOf(telegramId)).toEqual([
      expect.objectContaining({
        actor: `operator:${SUPPORT_OPERATOR_ID}`,
        role: 'support',
        action: 'user.credits',
        subject_type: 'user',
        subject_id: String(telegramId),
        before: { balance: 0 },
        after: { balance: 300, amount: 300, entry_id: entry.id },
        reason: 'goodwill',
        request_id: 'req-credit-1',
      }),
    ]);
    const taken = await credits(telegramId, -100, { ...adminAuth, 'x-request-id': 'req-credit-2' });
    expect(taken.statusCode).toBe(201);
    const [latest] = await auditOf(telegramId);
    expect(latest).toMatchObject({
      actor: `admin:${tokenId(ADMIN_TOKEN)}`,
      role: 'admin',
      before: { balance: 300 },
      after: { balance: 200, amount: -100 },
      request_id: 'req-credit-2',
    });
  });

  it('a support operator moves at most SUPPORT_CREDIT_LIMIT either way (403 beyond); an admin any amount', async () => {
    const telegramId = freshTelegramId();
    await sync({ telegram_id: telegramId });
    expect((await credits(telegramId, 1000, support)).statusCode).toBe(201);
    for (const amount of [1001, -1001, 50_000]) {
      const refused = await credits(telegramId, amount, support);
      expect(refused.statusCode, String(amount)).toBe(403);
      expect(refused.json()).toMatchObject({ code: 'forbidden', limit: 1000 });
    }
    expect(await balanceOf(app, telegramId)).toBe(1000);
    expect(await auditOf(telegramId)).toHaveLength(1);
    expect((await credits(telegramId, 50_000, admin)).statusCode).toBe(201);
    expect(await balanceOf(app, telegramId)).toBe(51_000);
    const strict = await buildTestApp({ ...operatorSettings, SUPPORT_CREDIT_LIMIT: '10' });
    try {
      const cookie = await operatorCookie(strict, SUPPORT_OPERATOR_ID);
      const response = await strict.inject({
        method: 'POST',
        url: `/api/v1/admin/users/${telegramId}/credits`,
        headers: cookie,
        payload: { amount: 11, reason: 'x' },
      });
      expect(response.statusCode).toBe(403);
    } finally {
      await strict.close();
    }
  });

  it('follows SUPPORT_CREDIT_LIMIT as an admin changes it at run time', async () => {
    const telegramId = freshTelegramId();
    await sync({ telegram_id: telegramId });
    const setLimit = (value: number | null) =>
      app.inject({
        method: 'PATCH',
        url: '/api/v1/admin/settings',
        headers: adminAuth,
        payload: { values: { SUPPORT_CREDIT_LIMIT: value }, reason: 'test' },
      });
    expect((await setLimit(10)).statusCode).toBe(200);
    try {
      const refused = await waitFor(
        () => credits(telegramId, 11, support),
        (response) => response.statusCode === 403,
        5_000,
      );
      expect(refused.json()).toMatchObject({ code: 'forbidden', limit: 10 });
      expect((await credits(telegramId, 10, support)).statusCode).toBe(201);
    } finally {
      expect((await setLimit(null)).statusCode).toBe(200);
    }
  });

  it('records nothing when the adjustment is refused (402), and once for a replayed key', async () => {
    const telegramId = freshTelegramId();
    await sync({ telegram_id: telegramId });
    const refused = await credits(telegramId, -5, admin);
    expect(refused.statusCode).toBe(402);
    expect(await auditOf(telegramId)).toEqual([]);
    const keyed = { ...admin, 'idempotency-key': randomUUID() };
    const first = await credits(telegramId, 7, keyed);
    const again = await credits(telegramId, 7, keyed);
    expect(first.statusCode).toBe(201);
    expect(again.json()).toEqual(first.json());
    expect(await balanceOf(app, telegramId)).toBe(7);
    expect(await auditOf(telegramId)).toHaveLength(1);
  });

  it('concurrent adjustments each commit with their audit entry (PostgreSQL)', async (context) => {
    if (needsPostgres('needs concurrent transactions on several connections'))
      return context.skip();
    const telegramId = freshTelegramId();
    await sync({ telegram_id: telegramId });
    await credits(telegramId, 100, admin);
    const responses = await Promise.all(
      Array.from({ length: 30 }, () => credits(telegramId, -10, admin)),
    );
    const posted = responses.filter((r) => r.statusCode === 201);
    expect(posted).toHaveLength(10);
    expect(responses.filter((r) => r.statusCode === 402)).toHaveLength(20);
    expect(await balanceOf(app, telegramId)).toBe(0);
    const audit = (await auditOf(telegramId)).filter(
      (e) => (e.after as { amount: number }).amount === -10,
    );
    expect(audit).toHaveLength(10);
    // Each entry's before and after are the balance around its own ledger entry.
    const balances = audit
      .map((e) => (e.before as { balance: number }).balance)
      .sort((a, b) => a - b);
    expect(balances).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
  });
});

describe('ban and unban, audited', () => {
  it('records before and after, the reason and the request id; support may not ban', async () => {
    const telegramId = freshTelegramId();
    await sync({ telegram_id: telegramId });
    const refused = await app.inject({
      method: 'POST',
      url: `/api/v1/admin/users/${telegramId}/ban`,
      headers: support,
      payload: { reason: 'spam' },
    });
    expect(refused.statusCode).toBe(403);
    expect(await auditOf(telegramId)).toEqual([]);
    const banned = await app.inject({
      method: 'POST',
      url: `/api/v1/admin/users/${telegramId}/ban`,
      headers: { ...admin, 'x-request-id': 'req-ban' },
      payload: { reason: 'spam' },
    });
    expect(banned.statusCode, banned.body).toBe(200);
    const since = banned.json().banned.since;
    const unbanned = await app.inject({
      method: 'POST',
      url: `/api/v1/admin/users/${telegramId}/unban`,
      headers: { ...admin, 'x-request-id': 'req-unban' },
      payload: { reason: 'appeal accepted' },
    });
    expect(unbanned.statusCode, unbanned.body).toBe(200);
    const noBody = await app.inject({
      method: 'POST',
      url: `/api/v1/admin/users/${telegramId}/unban`,
      headers: adminAuth,
    });
    expect(noBody.statusCode).toBe(200);
    expect(await auditOf(telegramId)).toEqual([
      expect.objectContaining({
        action: 'user.unban',
        role: 'admin',
        before: { banned_at: null, ban_reason: null },
        after: { banned_at: null, ban_reason: null },
        reason: null,
      }),
      expect.objectContaining({
        actor: `operator:${ADMIN_OPERATOR_ID}`,
        action: 'user.unban',
        before: { banned_at: since, ban_reason: 'spam' },
        after: { banned_at: null, ban_reason: null },
        reason: 'appeal accepted',
        request_id: 'req-unban',
      }),
      expect.objectContaining({
        actor: `operator:${ADMIN_OPERATOR_ID}`,
        role: 'admin',
        action: 'user.ban',
        subject_type: 'user',
        subject_id: String(telegramId),
        before: { banned_at: null, ban_reason: null },
        after: { banned_at: since, ban_reason: 'spam' },
        reason: 'spam',
        request_id: 'req-ban',
      }),
    ]);
  });

  it('a ban of a user that does not exist is 404 and records nothing', async () => {
    const telegramId = freshTelegramId();
    const response = await app.inject({
      method: 'POST',
      url: `/api/v1/admin/users/${telegramId}/ban`,
      headers: admin,
      payload: { reason: 'spam' },
    });
    expect(response.statusCode).toBe(404);
    expect(await auditOf(telegramId)).toEqual([]);
  });
});

describe('GET /api/v1/admin/audit', () => {
  it('filters by actor, action and subject, pages with next_cursor, refuses a foreign cursor', async () => {
    const telegramId = freshTelegramId();
    await sync({ telegram_id: telegramId });
    for (const amount of [1, 2, 3]) await credits(telegramId, amount, admin);
    const url = `/api/v1/admin/audit?subject_type=user&subject_id=${telegramId}&limit=2`;
    const first = await app.inject({ url, headers: admin });
    expect(first.statusCode, first.body).toBe(200);
    const page = first.json();
    expect(page.items.map((e: { after: { amount: number } }) => e.after.amount)).toEqual([3, 2]);
    const second = await app.inject({
      url: `${url}&cursor=${page.next_cursor}`,
      headers: adminAuth,
    });
    expect(second.json().items.map((e: { after: { amount: number } }) => e.after.amount)).toEqual([
      1,
    ]);
    expect(second.json().next_cursor).toBeNull();
    const byActor = await app.inject({
      url: `/api/v1/admin/audit?actor=operator:${ADMIN_OPERATOR_ID}&action=user.credits&subject_id=${telegramId}`,
      headers: admin,
    });
    expect(byActor.json().items).toHaveLength(3);
    const future = await app.inject({
      url: `/api/v1/admin/audit?subject_id=${telegramId}&from=${new Date(Date.now() + 60_000).toISOString()}`,
      headers: admin,
    });
    expect(future.json().items).toEqual([]);
    const past = await app.inject({
      url: `/api/v1/admin/audit?subject_id=${telegramId}&to=${new Date(Date.now() + 60_000).toISOString()}`,
      headers: admin,
    });
    expect(past.json().items).toHaveLength(3);
    const foreign = await app.inject({ url: '/api/v1/admin/audit?cursor=e12', headers: admin });
    expect(foreign.statusCode).toBe(400);
    expect(foreign.json().code).toBe('invalid_cursor');
    const badDate = await app.inject({ url: '/api/v1/admin/audit?from=yesterday', headers: admin });
    expect(badDate.statusCode).toBe(422);
  });
});

describe('GET /api/v1/admin/users', () => {
  // Every user of this block has the tag in its username, so the tag isolates them from the
  // users other tests leave in the shared database.
  const tag = `zq${randomBytes(5).toString('hex')}`;
  const ids: Record<string, number> = {};

  beforeAll(async () => {
    for (const name of ['banned', 'blocked', 'paying', 'credited', 'old', 'unseen']) {
      ids[name] = freshTelegramId();
    }
    const [banned, blocked, paying, credited, old, unseen] = Object.values(ids) as number[];
    await sync({ telegram_id: banned, username: `${tag}_banned`, first_name: 'Alice' });
    await sync({
      telegram_id: blocked,
      username: `${tag}_blocked`,
      first_name: `${tag}Bob`,
      last_name: 'Marley',
    });
    await sync({
      telegram_id: paying,
      username: `${tag}_paying`,
      first_name: 'Carol',
      last_name: `${tag}Jones`,
    });
    await sync({ telegram_id: credited, username: `${tag}_credited` });
    await sync({ telegram_id: old, username: `${tag}_old` });
    await database.db.execute(
      sql`INSERT INTO users (telegram_id, username, created_at)
          VALUES (${unseen}, ${`${tag}_unseen`}, now() - interval '10 days')`,
    );
    await database.db.execute(
      sql`UPDATE users SET created_at = now() - interval '40 days',
                           last_seen_at = now() - interval '20 days'
          WHERE telegram_id = ${old}`,
    );
    await database.db.execute(
      sql`UPDATE users SET blocked_at = now() WHERE telegram_id = ${blocked}`,
    );
    expect(
      (
        await app.inject({
          method: 'POST',
          url: `/api/v1/admin/users/${banned}/ban`,
          headers: admin,
          payload: { reason: 'spam' },
        })
      ).statusCode,
    ).toBe(200);
    expect((await confirmStars(paying as number)).statusCode).toBe(201);
    expect((await credits(credited as number, 5, admin)).statusCode).toBe(201);
  });

  const list = (params: string, headers: Record<string, string> = support) =>
    app.inject({ url: `/api/v1/admin/users?${params}`, headers });

  const found = async (params: string) => {
    const response = await list(params);
    expect(response.statusCode, response.body).toBe(200);
    const body = response.json();
    return {
      ids: body.items.map((item: { telegram_id: number }) => item.telegram_id).sort(),
      total: body.counts.total,
    };
  };
  const sorted = (...names: string[]) => names.map((name) => ids[name]).sort();

  it('answers the item fields, newest first, with the count on every page', async () => {
    const first = await list(`query=${tag}&limit=4`);
    expect(first.statusCode, first.body).toBe(200);
    const page = first.json();
    expect(page.counts).toEqual({ total: 6, capped: false });
    expect(page.items).toHaveLength(4);
    expect(page.items[0]).toEqual({
      telegram_id: ids.unseen,
      username: `${tag}_unseen`,
      first_name: null,
      last_name: null,
      language: null,
      language_code: null,
      balance: 0,
      created_at: expect.any(String),
      last_seen_at: null,
      banned: false,
      blocked: false,
    });
    const second = (await list(`query=${tag}&limit=4&cursor=${page.next_cursor}`)).json();
    expect(second.counts).toEqual({ total: 6, capped: false });
    expect(second.next_cursor).toBeNull();
    const all = [...page.items, ...second.items].map((item) => item.telegram_id);
    expect(all).toEqual([ids.unseen, ids.old, ids.credited, ids.paying, ids.blocked, ids.banned]);
    const paying = page.items.find(
      (item: { telegram_id: number }) => item.telegram_id === ids.paying,
    );
    expect(paying).toMatchObject({ balance: 100, banned: false });
    const banned = second.items.find(
      (item: { telegram_id: number }) => item.telegram_id === ids.banned,
    );
    expect(banned).toMatchObject({
      banned: true,
      first_name: 'Alice',
      last_seen_at: expect.any(String),
    });
  });

  it('searches a telegram id exactly, a username, a full name or a last name by prefix, any case', async () => {
    expect(await found(`query=${ids.paying}`)).toEqual({ ids: sorted('paying'), total: 1 });
    expect(await found(`query=${encodeURIComponent(`@${tag.toUpperCase()}_PAY`)}`)).toEqual({
      ids: sorted('paying'),
      total: 1,
    });
    expect(await found(`query=${encodeURIComponent(`${tag}bob mar`)}`)).toEqual({
      ids: sorted('blocked'),
      total: 1,
    });
    expect(await found(`query=${tag}JO`)).toEqual({ ids: sorted('paying'), total: 1 });
    // LIKE's wildcards stand for themselves.
    expect(await found(`query=${encodeURIComponent(`${tag}%`)}`)).toEqual({ ids: [], total: 0 });
    expect(await found(`query=${encodeURIComponent(`${tag.slice(0, 3)}_`)}`)).toMatchObject({
      total: 0,
    });
  });

  it('matches a prefix by code points: the next code point is not a match, nor a longer one', async () => {
    // Their own tag: these users stay out of the counts of the other tests.
    const other = `zq${randomBytes(5).toString('hex')}`;
    const names = {
      yDiaeresis: `${other}ÿa`, // U+00FF: the prefix's end is U+0100
      aMacron: `${other}Āb`, // U+0100, lower-cased to U+0101: after that end
      top: `${other}\u{10FFFF}x`, // the last code point: its end moves the one before it
      emoji: `${other}\u{1F600}`, // beyond the basic plane (two UTF-16 units in JavaScript)
    };
    const made: Record<string, number> = {};
    for (const [key, firstName] of Object.entries(names)) {
      made[key] = freshTelegramId();
      await sync({ telegram_id: made[key], first_name: firstName });
    }
    const search = (text: string) => found(`query=${encodeURIComponent(text)}`);
    const only = (...keys: string[]) => ({
      ids: keys.map((key) => made[key]).sort(),
      total: keys.length,
    });
    expect(await search(other)).toEqual(only('yDiaeresis', 'aMacron', 'top', 'emoji'));
    expect(await search(`${other}ÿ`)).toEqual(only('yDiaeresis'));
    expect(await search(`${other.toUpperCase()}ā`)).toEqual(only('aMacron'));
    expect(await search(`${other}\u{10FFFF}`)).toEqual(only('top'));
    expect(await search(`${other}\u{1F600}`)).toEqual(only('emoji'));
    expect(await search(`${other}\u{1F5FF}`)).toEqual(only());
  });

  it('counts a user that several alternatives match once: a telegram id that is also a name prefix', async () => {
    // The count adds up one part per alternative, each without the earlier ones.
    const self = freshTelegramId();
    const fan = freshTelegramId();
    await sync({ telegram_id: self, username: `${self}_me`, first_name: `${self} Self` });
    await sync({ telegram_id: fan, username: `${self}_fan`, last_name: `${self}son` });
    const response = await list(`query=${self}&limit=1`);
    expect(response.statusCode, response.body).toBe(200);
    const page = response.json();
    expect(page.counts).toEqual({ total: 2, capped: false });
    const next = (await list(`query=${self}&limit=1&cursor=${page.next_cursor}`)).json();
    expect([...page.items, ...next.items].map((item) => item.telegram_id)).toEqual([fan, self]);
    expect(next.next_cursor).toBeNull();
  });

  it('prefixEnd: the least string above every string with the prefix', () => {
    expect(prefixEnd('abc')).toBe('abd');
    expect(prefixEnd('ali_')).toBe('ali`');
    expect(prefixEnd('я')).toBe('ѐ');
    expect(prefixEnd('a\u{1F600}')).toBe('a\u{1F601}');
    expect(prefixEnd('a\uD7FF')).toBe('a\uE000');
    expect(prefixEnd('ab\u{10FFFF}\u{10FFFF}')).toBe('ac');
    expect(prefixEnd('\u{10FFFF}')).toBeNull();
    expect(prefixEnd('')).toBeNull();
  });

  it.each([
    ['active_7d', ['banned', 'blocked', 'paying', 'credited']],
    ['active_30d', ['banned', 'blocked', 'paying', 'credited', 'old']],
    ['paying', ['paying']],
    ['with_balance', ['paying', 'credited']],
    ['banned', ['banned']],
    ['blocked', ['blocked']],
    ['new', ['banned', 'blocked', 'paying', 'credited']],
    ['paying,with_balance', ['paying']],
    ['banned,blocked', []],
  ])('filter=%s', async (filter, names) => {
    expect(await found(`query=${tag}&filter=${filter}`)).toEqual({
      ids: sorted(...names),
      total: names.length,
    });
  });

  it('filter=paying: while any payment of the user stays paid, through refunds', async () => {
    const other = `zq${randomBytes(5).toString('hex')}`;
    const payer = freshTelegramId();
    await sync({ telegram_id: payer, username: `${other}_payer` });
    const paying = async () => (await found(`query=${other}&filter=paying`)).total;
    expect(await paying()).toBe(0);
    const [first, second] = [`tg_${randomUUID()}`, `tg_${randomUUID()}`];
    expect((await confirmStars(payer, first)).statusCode).toBe(201);
    expect((await confirmStars(payer, second)).statusCode).toBe(201);
    expect(await paying()).toBe(1);
    expect((await refundStars(payer, first)).statusCode).toBe(200);
    expect(await paying()).toBe(1);
    // A replayed refund changes nothing.
    expect((await refundStars(payer, first)).statusCode).toBe(200);
    expect(await paying()).toBe(1);
    expect((await refundStars(payer, second)).statusCode).toBe(200);
    expect(await paying()).toBe(0);
    expect(await payingDrift()).toBe(0);
  });

  it('filter=paying stays right when a payment and a refund of one user race (PostgreSQL)', async (context) => {
    if (needsPostgres('needs concurrent transactions on several connections'))
      return context.skip();
    const other = `zq${randomBytes(5).toString('hex')}`;
    const payers = Array.from({ length: 8 }, () => freshTelegramId());
    const refunded = new Map<number, string>();
    for (const payer of payers) {
      await sync({ telegram_id: payer, username: `${other}_${payer}` });
      const chargeId = `tg_${randomUUID()}`;
      expect((await confirmStars(payer, chargeId)).statusCode).toBe(201);
      refunded.set(payer, chargeId);
    }
    // Each payer's old payment is refunded while a new one arrives: each stays paying.
    const responses = await Promise.all(
      payers.flatMap((payer) => [
        refundStars(payer, refunded.get(payer) ?? ''),
        confirmStars(payer),
      ]),
    );
    expect(responses.map((r) => r.statusCode).sort()).toEqual(
      [...Array(8).fill(200), ...Array(8).fill(201)].sort(),
    );
    expect((await found(`query=${other}&filter=paying`)).total).toBe(payers.length);
    expect(await payingDrift()).toBe(0);
  });

  it('counts matches up to a cap and then says there are more', async () => {
    const matching = { query: tag, filters: [] as const, limit: 2 };
    // The route's cap is USER_COUNT_CAP (10,000); the same statement with a cap under the six.
    expect((await listUsers(app.deps.services, { ...matching, countCap: 4 })).counts).toEqual({
      total: 4,
      capped: true,
    });
    expect((await listUsers(app.deps.services, { ...matching, countCap: 6 })).counts).toEqual({
      total: 6,
      capped: false,
    });
    const page = await listUsers(app.deps.services, { ...matching, countCap: 5 });
    expect(page.counts).toEqual({ total: 5, capped: true });
    expect(page.items).toHaveLength(2);
    expect(USER_COUNT_CAP).toBe(10_000);
  });

  it('refuses an unknown filter (422) and a foreign cursor (400)', async () => {
    expect((await list('filter=rich')).statusCode).toBe(422);
    expect((await list('cursor=a12')).statusCode).toBe(400);
  });
});

describe('GET /api/v1/admin/users/{telegram_id}', () => {
  it('shows the trial, the referrer, referrals, and the latest generations, payments and ledger', async () => {
    const referrerId = freshTelegramId();
    const referrer = await sync({
      telegram_id: referrerId,
      username: 'inviter',
      first_name: 'Ina',
    });
    const telegramId = freshTelegramId();
    await sync({ telegram_id: telegramId, referral_code: referrer.referral_code });
    expect((await confirmStars(telegramId)).statusCode).toBe(201);
    const model = await createTestModel(database.db, { provider: provider.name });
    const accepted = await submit(app, {
      telegram_id: telegramId,
      model: model.key,
      prompt: 'a lighthouse',
      payment: 'credits',
    });
    expect(accepted.statusCode, accepted.body).toBe(202);
    await database.db.execute(
      sql`UPDATE users SET blocked_at = now() WHERE telegram_id = ${telegramId}`,
    );
    const response = await app.inject({
      url: `/api/v1/admin/users/${telegramId}`,
      headers: support,
    });
    expect(response.statusCode, response.body).toBe(200);
    const view = response.json();
    expect(view).toMatchObject({
      telegram_id: telegramId,
      trial: { available: true, used: 0 },
      referred_by: referrerId,
      referrer: {
        telegram_id: referrerId,
        username: 'inviter',
        first_name: 'Ina',
        last_name: null,
      },
      referrals: 0,
      blocked_at: expect.any(String),
    });
    expect(view.recent.generations).toEqual([
      expect.objectContaining({ id: accepted.json().id, model: model.key, status: 'queued' }),
    ]);
    expect(view.recent.payments).toEqual([
      expect.objectContaining({ package_id: 'small', stars: 50, credits: 100, status: 'paid' }),
    ]);
    expect(view.recent.ledger.map((e: { kind: string }) => e.kind)).toEqual([
      'generation_charge',
      'topup',
    ]);
    const inviter = await app.inject({ url: `/api/v1/admin/users/${referrerId}`, headers: admin });
    expect(inviter.json()).toMatchObject({ referrals: 1, referrer: null, blocked_at: null });
    const [row] = await selectRows<{ n: number }>(
      database.db,
      sql`SELECT count(*)::int AS n FROM audit_log WHERE subject_id = ${String(telegramId)}`,
    );
    expect(row?.n).toBe(0); // reading records nothing
  });

  it('answers 404 for a user that does not exist', async () => {
    const response = await app.inject({
      url: `/api/v1/admin/users/${freshTelegramId()}`,
      headers: support,
    });
    expect(response.statusCode).toBe(404);
  });
});
