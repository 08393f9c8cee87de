import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { withTransaction } from '../src/db/transaction.ts';
import { listAudit, recordAudit } from '../src/services/audit.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';

let database: DatabaseHandle;
beforeAll(async () => {
  database = await sharedDatabase();
});

/** The database's own error for a statement (drivers wrap it differently). */
async function refusal(statement: ReturnType<typeof sql>): Promise<{ message: string }> {
  try {
    await database.db.execute(statement);
  } catch (error) {
    const cause = (error as { cause?: { message: string; code?: string } }).cause;
    return cause?.code ? cause : (error as { message: string });
  }
  throw new Error('statement was accepted');
}

describe('recordAudit and the audit_log table', () => {
  it('records an entry in the transaction of the change, and none when it rolls back', async () => {
    const subject = String(freshTelegramId());
    const requestId = randomUUID();
    const record = await withTransaction(database.db, (tx) =>
      recordAudit(tx, {
        actor: 'operator:42',
        role: 'support',
        requestId,
        action: 'user.credits',
        subjectType: 'user',
        subjectId: subject,
        before: { balance: 0 },
        after: { balance: 5 },
        reason: 'goodwill',
      }),
    );
    expect(record).toMatchObject({
      id: expect.any(Number),
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/),
      actor: 'operator:42',
      role: 'support',
      action: 'user.credits',
      subject_type: 'user',
      subject_id: subject,
      before: { balance: 0 },
      after: { balance: 5 },
      reason: 'goodwill',
      request_id: requestId,
    });
    await expect(
      withTransaction(database.db, async (tx) => {
        await recordAudit(tx, {
          actor: 'operator:42',
          role: 'support',
          requestId: null,
          action: 'user.credits',
          subjectType: 'user',
          subjectId: subject,
        });
        throw new Error('the change failed');
      }),
    ).rejects.toThrow('the change failed');
    const page = await listAudit(database.db, {
      subjectType: 'user',
      subjectId: subject,
      limit: 10,
    });
    expect(page.items.map((item) => item.id)).toEqual([record.id]);
  });

  it('refuses UPDATE, DELETE and TRUNCATE', async () => {
    const record = await withTransaction(database.db, (tx) =>
      recordAudit(tx, { actor: 'admin:abc', role: 'admin', requestId: null, action: 'user.ban' }),
    );
    for (const statement of [
      sql`UPDATE audit_log SET reason = 'rewritten' WHERE id = ${record.id}`,
      sql`DELETE FROM audit_log WHERE id = ${record.id}`,
      sql`TRUNCATE audit_log`,
    ]) {
      expect((await refusal(statement)).message).toMatch(/audit_log is append-only/);
    }
    const [row] = await selectRows<{ reason: string | null }>(
      database.db,
      sql`SELECT reason FROM audit_log WHERE id = ${record.id}`,
    );
    expect(row).toEqual({ reason: null });
  });

  it('refuses a malformed action, an unknown role and half a subject', async () => {
    for (const statement of [
      sql`INSERT INTO audit_log (actor, role, action) VALUES ('x', 'admin', 'ban')`,
      sql`INSERT INTO audit_log (actor, role, action) VALUES ('x', 'root', 'user.ban')`,
      sql`INSERT INTO audit_log (actor, role, action, subject_type) VALUES ('x', 'admin', 'user.ban', 'user')`,
    ]) {
      expect((await refusal(statement)).message).toMatch(/violates check constraint/);
    }
  });

  it('lists newest first with filters and a keyset cursor', async () => {
    const actor = `operator:${freshTelegramId()}`;
    const ids: number[] = [];
    for (const action of ['user.ban', 'user.unban', 'user.ban']) {
      const record = await withTransaction(database.db, (tx) =>
        recordAudit(tx, { actor, role: 'admin', requestId: null, action }),
      );
      ids.push(record.id);
    }
    const first = await listAudit(database.db, { actor, limit: 2 });
    expect(first.items.map((item) => item.id)).toEqual([ids[2], ids[1]]);
    expect(first.next_cursor).toEqual(expect.any(String));
    const second = await listAudit(database.db, {
      actor,
      limit: 2,
      cursor: first.next_cursor ?? '',
    });
    expect(second.items.map((item) => item.id)).toEqual([ids[0]]);
    expect(second.next_cursor).toBeNull();
    const bans = await listAudit(database.db, { actor, action: 'user.ban', limit: 10 });
    expect(bans.items.map((item) => item.id)).toEqual([ids[2], ids[0]]);
    const created = first.items[0]?.created_at ?? '';
    const later = await listAudit(database.db, { actor, from: created, limit: 10 });
    expect(later.items.map((item) => item.id)).toContain(ids[2]);
    const earlier = await listAudit(database.db, { actor, to: created, limit: 10 });
    expect(earlier.items.map((item) => item.id)).not.toContain(ids[2]);
  });
});
