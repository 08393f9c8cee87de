import { randomUUID } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/core/config.ts';
import type { DatabaseHandle } from '../src/db/client.ts';
import { migrationsFolder } from '../src/db/migrate.ts';
import { selectRows } from '../src/db/rows.ts';
import { adminAuth, botAuth, buildTestApp, miniAppAuth, testConfig } from './helpers/app.ts';
import { freshTelegramId, needsPostgres, sharedDatabase } from './helpers/database.ts';

// Packages: small = 100 credits, big = 1000, odd = 55 (10% of 55 is 5.5: rounded down to 5).
const PACKAGES = 'small:100:50,big:1000:400,odd:55:30';
const PERCENT = 10;
const JOIN_BONUS = 25;

let database: DatabaseHandle;
let app: FastifyInstance;
beforeAll(async () => {
  database = await sharedDatabase();
  app = await buildTestApp({
    STARS_PACKAGES: PACKAGES,
    REFERRAL_PERCENT: String(PERCENT),
    REFERRAL_JOIN_BONUS: String(JOIN_BONUS),
  });
});
afterAll(() => app.close());

const post = (
  url: string,
  payload: Record<string, unknown>,
  headers: Record<string, string> = botAuth,
  on = app,
) => on.inject({ method: 'POST', url, headers, payload });

async function sync(telegramId: number, extra: Record<string, unknown> = {}, on = app) {
  const response = await post(
    '/api/v1/users/sync',
    { telegram_id: telegramId, ...extra },
    botAuth,
    on,
  );
  expect(response.statusCode, response.body).toBeLessThan(300);
  return response;
}

/** A new user; answers its telegram_id and its own referral code. */
async function newUser(extra: Record<string, unknown> = {}) {
  const telegramId = freshTelegramId();
  const response = await sync(telegramId, extra);
  expect(response.statusCode).toBe(201);
  return { telegramId, code: response.json().referral_code as string };
}

/** A referrer and a user created with its code. */
async function referrerAndReferee() {
  const referrer = await newUser({ language_code: 'ru' });
  const referee = await newUser({ referral_code: referrer.code });
  return { referrer, referee };
}

const adminView = async (telegramId: number) =>
  (await app.inject({ url: `/api/v1/admin/users/${telegramId}`, headers: adminAuth })).json();

const balanceOf = async (telegramId: number, on = app) =>
  (await on.inject({ url: `/api/v1/users/${telegramId}/balance`, headers: botAuth })).json()
    .balance as number;

const referrals = (telegramId: number, headers: Record<string, string> = botAuth, on = app) =>
  on.inject({ url: `/api/v1/users/${telegramId}/referrals`, headers });

const packages: Record<string, { stars: number }> = {
  small: { stars: 50 },
  big: { stars: 400 },
  odd: { stars: 30 },
};

function payment(telegramId: number, pack: keyof typeof packages = 'small') {
  return {
    telegram_id: telegramId,
    telegram_payment_charge_id: `tg_${randomUUID()}`,
    provider_payment_charge_id: null,
    total_amount: packages[pack]?.stars,
    currency: 'XTR',
    invoice_payload: `stars:${pack}`,
  };
}

const refundOf = (paid: ReturnType<typeof payment>) => ({
  telegram_id: paid.telegram_id,
  telegram_payment_charge_id: paid.telegram_payment_charge_id,
  total_amount: paid.total_amount,
  currency: 'XTR',
});

async function referralEntries(telegramId: number) {
  return selectRows<{ kind: string; amount: number; idempotency_key: string }>(
    database.db,
    sql`SELECT l.kind, l.amount, l.idempotency_key FROM ledger_entries l
        JOIN users u ON u.id = l.user_id
        WHERE u.telegram_id = ${telegramId} AND l.kind IN ('referral_bonus', 'referral_clawback')
        ORDER BY l.user_entry_no`,
  );
}

describe('referral codes', () => {
  it('users that existed before migration 0008 get a code each, all different', async () => {
    const migrations = readMigrationFiles({ migrationsFolder });
    const pglite = new PGlite();
    try {
      const run = async (upTo: number, from = 0) => {
        for (const migration of migrations.slice(from, upTo)) {
          for (const statement of migration.sql) await pglite.exec(statement);
        }
      };
      await run(8);
      await pglite.exec('INSERT INTO users (telegram_id) SELECT g FROM generate_series(1, 2000) g');
      await run(9, 8);
      const { rows } = await pglite.query<{ codes: number; users: number; bad: number }>(
        `SELECT count(DISTINCT referral_code)::int AS codes, count(*)::int AS users,
                count(*) FILTER (WHERE referral_code !~ '^[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}$')::int AS bad
         FROM users`,
      );
      expect(rows[0]).toEqual({ codes: 2000, users: 2000, bad: 0 });
    } finally {
      await pglite.close();
    }
  });

  it('every user gets its own code of 8 characters without look-alikes when it is created', async () => {
    const codes = await Promise.all(Array.from({ length: 20 }, async () => (await newUser()).code));
    for (const code of codes) expect(code).toMatch(/^[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}$/);
    expect(new Set(codes).size).toBe(codes.length);
    // The code is the user's for good: a later sync answers the same one.
    const { telegramId, code } = await newUser();
    expect((await sync(telegramId)).json().referral_code).toBe(code);
    // A user the bot never synced, created by its payment, has one too.
    const payer = freshTelegramId();
    expect((await post('/api/v1/payments/stars/confirm', payment(payer))).statusCode).toBe(201);
    expect((await adminView(payer)).referral_code).toMatch(/^[2-9A-HJKMNP-Z]{8}$/);
  });

  it('a user created with a code is its referral, once: a later sync with another code changes nothing', async () => {
    const { referrer, referee } = await referrerAndReferee();
    expect((await adminView(referee.telegramId)).referred_by).toBe(referrer.telegramId);
    const other = await newUser();
    const again = await sync(referee.telegramId, { referral_code: other.code });
    expect(again.statusCode).toBe(200);
    expect((await adminView(referee.telegramId)).referred_by).toBe(referrer.telegramId);
    expect((await referrals(referrer.telegramId)).json().joined).toBe(1);
    expect((await referrals(other.telegramId)).json().joined).toBe(0);
    expect((await adminView(referrer.telegramId)).referrals).toBe(1);
  });

  it('reads the code however the user typed it (case, spaces)', async () => {
    const referrer = await newUser();
    const referee = await newUser({ referral_code: ` ${referrer.code.toLowerCase()} ` });
    expect((await adminView(referee.telegramId)).referred_by).toBe(referrer.telegramId);
  });

  it('is not applied to a user that already exists, nor to a user with its own code', async () => {
    const referrer = await newUser();
    const existing = await newUser();
    expect((await sync(existing.telegramId, { referral_code: referrer.code })).statusCode).toBe(
      200,
    );
    expect((await adminView(existing.telegramId)).referred_by).toBeNull();
    expect((await sync(referrer.telegramId, { referral_code: referrer.code })).statusCode).toBe(
      200,
    );
    expect((await adminView(referrer.telegramId)).referred_by).toBeNull();
    expect((await referrals(referrer.telegramId)).json().joined).toBe(0);
    // Nor by anything else that writes the table: the database refuses a user referred by itself.
    await expect(
      database.db.execute(
        sql`UPDATE users SET referred_by = id WHERE telegram_id = ${referrer.telegramId}`,
      ),
    ).rejects.toThrow();
  });

  it('ignores an unknown or malformed code: the user is created, referred by nobody', async () => {
    for (const referral_code of ['22222222', 'not a code!', '', null]) {
      const { telegramId } = await newUser({ referral_code });
      expect((await adminView(telegramId)).referred_by).toBeNull();
    }
  });

  it('concurrent first syncs with different codes: one creates the user with its code', async () => {
    const referrers = await Promise.all(Array.from({ length: 5 }, () => newUser()));
    const telegramId = freshTelegramId();
    const responses = await Promise.all(
      referrers.map((referrer) =>
        post('/api/v1/users/sync', { telegram_id: telegramId, referral_code: referrer.code }),
      ),
    );
    expect(responses.filter((r) => r.statusCode === 201)).toHaveLength(1);
    const joined = await Promise.all(
      referrers.map(async (r) => (await referrals(r.telegramId)).json().joined as number),
    );
    expect(joined.reduce((a, b) => a + b, 0)).toBe(1);
  });
});

describe('referral bonus on a confirmed Stars payment', () => {
  it("pays the referrer its share and, on the first top-up, the join bonus, in the referrer's language", async () => {
    const { referrer, referee } = await referrerAndReferee();
    await app.inject({
      method: 'PATCH',
      url: `/api/v1/users/${referrer.telegramId}`,
      headers: botAuth,
      payload: { language: 'uz' },
    });
    const first = await post('/api/v1/payments/stars/confirm', payment(referee.telegramId, 'big'));
    expect(first.statusCode, first.body).toBe(201);
    expect(first.json()).toMatchObject({ credits: 1000, balance_after: 1000 });
    expect(first.json().referral).toEqual({
      telegram_id: referrer.telegramId,
      language: 'uz',
      language_code: 'ru',
      credits: 100 + JOIN_BONUS,
    });
    const second = await post('/api/v1/payments/stars/confirm', payment(referee.telegramId, 'odd'));
    expect(second.json().referral).toMatchObject({ telegram_id: referrer.telegramId, credits: 5 });
    expect(await balanceOf(referrer.telegramId)).toBe(100 + JOIN_BONUS + 5);
    expect(await balanceOf(referee.telegramId)).toBe(1055);
    const entries = await referralEntries(referrer.telegramId);
    expect(entries.map((e) => [e.kind, e.amount])).toEqual([
      ['referral_bonus', 100],
      ['referral_bonus', JOIN_BONUS],
      ['referral_bonus', 5],
    ]);
    expect(entries[1]?.idempotency_key).toMatch(/^referral-join:\d+$/);
    // The referrer's ledger names the payments.
    const ledger = await app.inject({
      url: `/api/v1/users/${referrer.telegramId}/ledger`,
      headers: botAuth,
    });
    expect(ledger.json().entries[0]).toMatchObject({
      kind: 'referral_bonus',
      amount: 5,
      reference_type: 'payment',
      reference_id: String(second.json().payment_id),
    });
  });

  it('a payment of a user nobody referred earns nobody anything: referral null', async () => {
    const { telegramId } = await newUser();
    const paid = await post('/api/v1/payments/stars/confirm', payment(telegramId));
    expect(paid.statusCode).toBe(201);
    expect(paid.json().referral).toBeNull();
  });

  it('a referral that never pays earns nothing', async () => {
    const { referrer } = await referrerAndReferee();
    expect(await balanceOf(referrer.telegramId)).toBe(0);
    expect((await referrals(referrer.telegramId)).json()).toMatchObject({
      joined: 1,
      earned_credits: 0,
    });
  });

  it('a replayed confirm (same charge) answers the same and pays nothing more', async () => {
    const { referrer, referee } = await referrerAndReferee();
    const body = payment(referee.telegramId, 'small');
    const first = await post('/api/v1/payments/stars/confirm', body);
    const again = await post('/api/v1/payments/stars/confirm', body);
    expect(first.statusCode).toBe(201);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(first.json());
    expect(first.json().referral.credits).toBe(10 + JOIN_BONUS);
    expect(await balanceOf(referrer.telegramId)).toBe(10 + JOIN_BONUS);
  });

  it('the join bonus is paid once even when the first payment was refunded', async () => {
    const { referrer, referee } = await referrerAndReferee();
    const first = payment(referee.telegramId, 'small');
    await post('/api/v1/payments/stars/confirm', first);
    await post('/api/v1/payments/stars/refund', refundOf(first));
    const second = await post('/api/v1/payments/stars/confirm', payment(referee.telegramId));
    expect(second.json().referral.credits).toBe(10);
    expect((await referrals(referrer.telegramId)).json().earned_credits).toBe(10);
  });

  it('nothing at REFERRAL_PERCENT=0 and REFERRAL_JOIN_BONUS=0', async () => {
    const plain = await buildTestApp({ STARS_PACKAGES: PACKAGES, REFERRAL_PERCENT: '0' });
    try {
      const referrer = freshTelegramId();
      const code = (await sync(referrer, {}, plain)).json().referral_code;
      const referee = freshTelegramId();
      await sync(referee, { referral_code: code }, plain);
      const paid = await post(
        '/api/v1/payments/stars/confirm',
        payment(referee, 'big'),
        botAuth,
        plain,
      );
      expect(paid.json().referral).toBeNull();
      expect(await balanceOf(referrer, plain)).toBe(0);
      expect((await referrals(referrer, botAuth, plain)).json()).toMatchObject({
        percent: 0,
        join_bonus: 0,
        joined: 1,
      });
    } finally {
      await plain.close();
    }
  });

  it('commits with the payment: a confirm that fails writes neither the top-up nor the bonus', async () => {
    const { referrer, referee } = await referrerAndReferee();
    const [row] = await selectRows<{ id: string | number }>(
      database.db,
      sql`SELECT id FROM users WHERE telegram_id = ${referrer.telegramId}`,
    );
    const referrerId = Number(row?.id);
    // The referrer's bonus is refused by the database, after the payer's top-up was written.
    const trigger = `refuse_bonus_${referrerId}`;
    await database.db.execute(
      sql.raw(`CREATE FUNCTION ${trigger}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.user_id = ${referrerId} AND NEW.kind = 'referral_bonus' THEN
            RAISE EXCEPTION 'bonus refused by the test';
          END IF;
          RETURN NEW;
        END $$`),
    );
    await database.db.execute(
      sql.raw(`CREATE TRIGGER ${trigger} BEFORE INSERT ON ledger_entries
               FOR EACH ROW EXECUTE FUNCTION ${trigger}()`),
    );
    const body = payment(referee.telegramId, 'big');
    try {
      const failed = await post('/api/v1/payments/stars/confirm', body);
      expect(failed.statusCode).toBe(500);
      expect(await balanceOf(referee.telegramId)).toBe(0);
      expect(await balanceOf(referrer.telegramId)).toBe(0);
      const [payments] = await selectRows<{ n: number }>(
        database.db,
        sql`SELECT count(*)::int AS n FROM payments WHERE telegram_payment_charge_id = ${body.telegram_payment_charge_id}`,
      );
      expect(payments?.n).toBe(0);
    } finally {
      await database.db.execute(sql.raw(`DROP TRIGGER ${trigger} ON ledger_entries`));
      await database.db.execute(sql.raw(`DROP FUNCTION ${trigger}()`));
    }
    // Telegram's retry then credits both.
    const retried = await post('/api/v1/payments/stars/confirm', body);
    expect(retried.statusCode).toBe(201);
    expect(retried.json().referral.credits).toBe(100 + JOIN_BONUS);
    expect(await balanceOf(referee.telegramId)).toBe(1000);
    expect(await balanceOf(referrer.telegramId)).toBe(100 + JOIN_BONUS);
  });

  it('50 concurrent confirms of one charge pay one bonus (PostgreSQL)', async (context) => {
    if (needsPostgres('needs concurrent transactions on several connections'))
      return context.skip();
    const { referrer, referee } = await referrerAndReferee();
    const body = payment(referee.telegramId, 'big');
    const responses = await Promise.all(
      Array.from({ length: 50 }, () => post('/api/v1/payments/stars/confirm', body)),
    );
    expect(responses.filter((r) => r.statusCode === 201)).toHaveLength(1);
    expect(responses.filter((r) => r.statusCode === 200)).toHaveLength(49);
    for (const response of responses) {
      expect(response.json().referral).toEqual(responses[0]?.json().referral);
    }
    expect(await balanceOf(referrer.telegramId)).toBe(100 + JOIN_BONUS);
    expect(await referralEntries(referrer.telegramId)).toHaveLength(2);
  });

  it('concurrent first payments of one referral (different charges) pay the join bonus once (PostgreSQL)', async (context) => {
    if (needsPostgres('needs concurrent transactions on several connections'))
      return context.skip();
    const { referrer, referee } = await referrerAndReferee();
    const responses = await Promise.all(
      Array.from({ length: 20 }, () =>
        post('/api/v1/payments/stars/confirm', payment(referee.telegramId, 'small')),
      ),
    );
    expect(responses.map((r) => r.statusCode)).toEqual(Array(20).fill(201));
    const earned = responses.map((r) => r.json().referral.credits as number).sort((a, b) => b - a);
    expect(earned).toEqual([10 + JOIN_BONUS, ...Array(19).fill(10)]);
    expect(await balanceOf(referrer.telegramId)).toBe(20 * 10 + JOIN_BONUS);
  });
});

describe('referral bonus on a refunded Stars payment', () => {
  it('takes the share and the join bonus back from the referrer, once', async () => {
    const { referrer, referee } = await referrerAndReferee();
    const paid = payment(referee.telegramId, 'big');
    await post('/api/v1/payments/stars/confirm', paid);
    const refund = await post('/api/v1/payments/stars/refund', refundOf(paid));
    expect(refund.statusCode, refund.body).toBe(200);
    expect(refund.json()).toMatchObject({ clawed_back: 1000, shortfall: 0, balance: 0 });
    expect(refund.json().referral).toEqual({
      telegram_id: referrer.telegramId,
      language: null,
      language_code: 'ru',
      clawed_back: 100 + JOIN_BONUS,
      shortfall: 0,
    });
    const again = await post('/api/v1/payments/stars/refund', refundOf(paid));
    expect(again.json()).toEqual(refund.json());
    expect(await balanceOf(referrer.telegramId)).toBe(0);
    expect((await referralEntries(referrer.telegramId)).map((e) => [e.kind, e.amount])).toEqual([
      ['referral_bonus', 100],
      ['referral_bonus', JOIN_BONUS],
      ['referral_clawback', -(100 + JOIN_BONUS)],
    ]);
    expect((await referrals(referrer.telegramId)).json().earned_credits).toBe(0);
  });

  it('takes back only the share when the refunded payment was not the first', async () => {
    const { referrer, referee } = await referrerAndReferee();
    await post('/api/v1/payments/stars/confirm', payment(referee.telegramId, 'small'));
    const second = payment(referee.telegramId, 'big');
    await post('/api/v1/payments/stars/confirm', second);
    const refund = await post('/api/v1/payments/stars/refund', refundOf(second));
    expect(refund.json().referral).toMatchObject({ clawed_back: 100, shortfall: 0 });
    expect(await balanceOf(referrer.telegramId)).toBe(10 + JOIN_BONUS);
    expect((await referrals(referrer.telegramId)).json().earned_credits).toBe(10 + JOIN_BONUS);
  });

  it('never below zero: what the referrer already spent is the shortfall', async () => {
    const { referrer, referee } = await referrerAndReferee();
    const paid = payment(referee.telegramId, 'big');
    await post('/api/v1/payments/stars/confirm', paid);
    // The referrer spends all but 30 of its 125.
    const spent = await post(
      `/api/v1/admin/users/${referrer.telegramId}/credits`,
      { amount: -95, reason: 'spent' },
      adminAuth,
    );
    expect(spent.statusCode).toBe(201);
    const refund = await post('/api/v1/payments/stars/refund', refundOf(paid));
    expect(refund.json().referral).toMatchObject({ clawed_back: 30, shortfall: 95 });
    expect(await balanceOf(referrer.telegramId)).toBe(0);
    expect((await referrals(referrer.telegramId)).json().earned_credits).toBe(125 - 30);
    // Nothing left to take: the refund still goes through, and reports it all as the shortfall.
    const { referrer: poor, referee: payer } = await referrerAndReferee();
    const small = payment(payer.telegramId, 'small');
    await post('/api/v1/payments/stars/confirm', small);
    await post(
      `/api/v1/admin/users/${poor.telegramId}/credits`,
      { amount: -35, reason: 'x' },
      adminAuth,
    );
    const nothing = await post('/api/v1/payments/stars/refund', refundOf(small));
    expect(nothing.statusCode).toBe(200);
    expect(nothing.json().referral).toMatchObject({ clawed_back: 0, shortfall: 10 + JOIN_BONUS });
  });

  it('a refund of a payment that earned nobody anything: referral null', async () => {
    const { telegramId } = await newUser();
    const paid = payment(telegramId);
    await post('/api/v1/payments/stars/confirm', paid);
    const refund = await post('/api/v1/payments/stars/refund', refundOf(paid));
    expect(refund.json().referral).toBeNull();
  });
});

describe('GET /api/v1/users/{telegram_id}/referrals', () => {
  it('answers the code, the settings, how many joined and what they earned', async () => {
    const referrer = await newUser();
    const referees = await Promise.all(
      Array.from({ length: 3 }, () => newUser({ referral_code: referrer.code })),
    );
    await post('/api/v1/payments/stars/confirm', payment(referees[0]?.telegramId ?? 0, 'big'));
    await post('/api/v1/payments/stars/confirm', payment(referees[1]?.telegramId ?? 0, 'odd'));
    const response = await referrals(referrer.telegramId);
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      telegram_id: referrer.telegramId,
      code: referrer.code,
      percent: PERCENT,
      join_bonus: JOIN_BONUS,
      joined: 3,
      earned_credits: 100 + JOIN_BONUS + 5 + JOIN_BONUS,
      // This app's Bot API is unreachable and names no TELEGRAM_BOT_USERNAME: no bot to link to
      // (test/stars-invoice-links.test.ts has the link).
      link: null,
    });
  });

  it('is the Mini App user’s own only, and 404 for an unknown user', async () => {
    const { telegramId } = await newUser();
    expect((await referrals(telegramId, miniAppAuth(telegramId))).statusCode).toBe(200);
    const other = await referrals(telegramId, miniAppAuth(freshTelegramId()));
    expect(other.statusCode).toBe(403);
    const unknown = await referrals(freshTelegramId());
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().code).toBe('user_not_found');
  });
});

describe('settings', () => {
  it('REFERRAL_PERCENT is 0 to 100 (default 10), REFERRAL_JOIN_BONUS at least 0 (default 0)', () => {
    expect(testConfig().referrals).toEqual({ percent: 10, joinBonus: 0 });
    expect(() => testConfig({ REFERRAL_PERCENT: '101' })).toThrow(ConfigError);
    expect(() => testConfig({ REFERRAL_PERCENT: '-1' })).toThrow(/REFERRAL_PERCENT/);
    expect(() => testConfig({ REFERRAL_JOIN_BONUS: '-5' })).toThrow(/REFERRAL_JOIN_BONUS/);
  });
});
