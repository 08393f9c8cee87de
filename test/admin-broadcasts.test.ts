import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { enqueue, wakeWorkers } from '../src/db/job-queue.ts';
import { selectRows } from '../src/db/rows.ts';
import { broadcastSender, sendBroadcastSummaries } from '../src/services/broadcasts.ts';
import {
  type FakeTelegram,
  type FakeTelegramCall,
  startFakeTelegram,
} from './fakes/telegram-api.ts';
import {
  adminAuth,
  botAuth,
  buildTestApp,
  miniAppAuth,
  TELEGRAM_BOT_TOKEN,
  testConfig,
} from './helpers/app.ts';
import { freshTelegramId, needsPostgres, sharedDatabase } from './helpers/database.ts';
import {
  ADMIN_OPERATOR_ID,
  operatorCookie,
  operatorSettings,
  SUPPORT_OPERATOR_ID,
} from './helpers/operators.ts';
import { waitFor } from './helpers/pipeline.ts';

// Broadcasts: the audience snapshotted once, each recipient sent the message at most once (never
// twice) by the workers of the queue, at BROADCAST_RATE messages per second across all of them.

const RATE = 10;
const ADMIN_CHAT_ID = -1_003_333_444_555;
let database: DatabaseHandle;
let telegram: FakeTelegram;
let app: FastifyInstance;
let settings: Record<string, string>;

beforeAll(async () => {
  database = await sharedDatabase();
  telegram = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
  settings = {
    ...operatorSettings,
    TELEGRAM_API_ROOT: telegram.apiRoot,
    BROADCAST_RATE: String(RATE),
    ADMIN_CHAT_ID: String(ADMIN_CHAT_ID),
    DEFAULT_LANGUAGE: 'en',
  };
  app = await buildTestApp(settings, undefined, { worker: true });
});

afterAll(async () => {
  await app?.close();
  await telegram?.close();
});

/** `count` users whose usernames start with a tag of their own: the audience's query. */
async function usersTagged(count: number): Promise<{ tag: string; chatIds: number[] }> {
  const tag = `bc${randomBytes(5).toString('hex')}`;
  const chatIds: number[] = [];
  for (let i = 0; i < count; i++) chatIds.push(freshTelegramId());
  if (count > 0) {
    await database.db.execute(
      sql`INSERT INTO users (telegram_id, username)
          SELECT t, ${tag} || '_' || n FROM unnest(${`{${chatIds.join(',')}}`}::bigint[])
          WITH ORDINALITY AS x(t, n)`,
    );
  }
  return { tag, chatIds };
}

const url = (id?: number, action?: string) =>
  `/api/v1/admin/broadcasts${id === undefined ? '' : `/${id}`}${action ? `/${action}` : ''}`;

async function create(
  payload: Record<string, unknown>,
  headers: Record<string, string> = adminAuth,
) {
  const response = await app.inject({ method: 'POST', url: url(), headers, payload });
  expect(response.statusCode, response.body).toBe(201);
  return response.json() as { id: number; status: string };
}

async function act(id: number, action: string, headers: Record<string, string> = adminAuth) {
  const response = await app.inject({
    method: 'POST',
    url: url(id, action),
    headers,
    payload: { reason: `test ${action}` },
  });
  expect(response.statusCode, response.body).toBe(200);
  return response.json();
}

interface Progress {
  total: number;
  sent: number;
  failed: number;
  blocked: number;
  remaining: number;
}

async function read(id: number): Promise<{ status: string; progress: Progress }> {
  const response = await app.inject({ url: url(id), headers: adminAuth });
  expect(response.statusCode, response.body).toBe(200);
  return response.json();
}

const completed = (id: number) =>
  waitFor(
    () => read(id),
    (view) => view.status === 'completed',
    30_000,
  );

/** Waits until no job of the broadcast is pending or running: nothing more can be sent. */
async function jobsEnded(id: number): Promise<void> {
  await waitFor(
    async () => {
      const [row] = await selectRows<{ n: number }>(
        database.db,
        sql`SELECT count(*)::int AS n FROM generation_jobs
            WHERE kind = 'broadcast' AND payload->>'broadcast_id' = ${String(id)}
              AND status IN ('pending', 'running')`,
      );
      return row?.n ?? 0;
    },
    (n) => n === 0,
  );
}

/** The summaries of broadcast `id` the operators' chat got. */
const summariesOf = (id: number) =>
  telegram.calls.filter(
    (call) =>
      call.method === 'sendMessage' &&
      call.chatId === ADMIN_CHAT_ID &&
      String(call.fields.text).startsWith(`📣 Broadcast #${id} `),
  );

/** Housekeeping's sweep, as any worker runs it. */
const sweepSummaries = () =>
  sendBroadcastSummaries({ db: database.db, config: testConfig(settings) });

function callsTo(chatIds: readonly number[]): FakeTelegramCall[] {
  const chats = new Set(chatIds);
  return telegram.calls.filter(
    (call) =>
      (call.method === 'sendMessage' || call.method === 'copyMessage') &&
      call.chatId !== undefined &&
      chats.has(call.chatId),
  );
}

/** The most calls that arrived within any one second. */
function busiestSecond(calls: readonly FakeTelegramCall[]): number {
  const times = calls.map((call) => call.at).sort((a, b) => a - b);
  let most = 0;
  let first = 0;
  for (let last = 0; last < times.length; last++) {
    while ((times[last] ?? 0) - (times[first] ?? 0) >= 1000) first++;
    most = Math.max(most, last - first + 1);
  }
  return most;
}

function expectOncePerChat(calls: readonly FakeTelegramCall[], chatIds: readonly number[]): void {
  const perChat = new Map<number, number>();
  for (const call of calls) perChat.set(call.chatId ?? 0, (perChat.get(call.chatId ?? 0) ?? 0) + 1);
  expect([...perChat.keys()].sort()).toEqual([...chatIds].sort());
  expect([...perChat.values()].every((n) => n === 1)).toBe(true);
}

async function auditOf(id: number) {
  return selectRows<{
    action: string;
    actor: string;
    before: unknown;
    after: unknown;
    reason: string | null;
  }>(
    database.db,
    sql`SELECT action, actor, before, after, reason FROM audit_log
        WHERE subject_type = 'broadcast' AND subject_id = ${String(id)} ORDER BY id`,
  );
}

describe('access', () => {
  it('refuses no token, the bot, a Mini App user; support reads, only an admin writes', async () => {
    const { tag } = await usersTagged(1);
    const draft = await create({ text: 'hi', audience: { filters: [], query: tag } });
    const writes = [
      { method: 'POST' as const, url: url(), payload: { text: 'x', audience: { filters: [] } } },
      { method: 'POST' as const, url: url(draft.id, 'start'), payload: { reason: 'r' } },
      { method: 'POST' as const, url: url(draft.id, 'pause'), payload: { reason: 'r' } },
      { method: 'POST' as const, url: url(draft.id, 'resume'), payload: { reason: 'r' } },
      { method: 'POST' as const, url: url(draft.id, 'cancel'), payload: { reason: 'r' } },
    ];
    const reads = [
      url(),
      url(draft.id),
      url(draft.id, 'preview'),
      `${url()}/audience?query=${tag}`,
    ];
    for (const request of [...writes, ...reads.map((u) => ({ method: 'GET' as const, url: u }))]) {
      expect((await app.inject(request)).statusCode).toBe(401);
      expect((await app.inject({ ...request, headers: botAuth })).statusCode).toBe(403);
      const miniApp = miniAppAuth(freshTelegramId());
      expect((await app.inject({ ...request, headers: miniApp })).statusCode).toBe(403);
    }
    const support = await operatorCookie(app, SUPPORT_OPERATOR_ID);
    for (const u of reads) {
      expect((await app.inject({ url: u, headers: support })).statusCode).toBe(200);
    }
    for (const request of writes) {
      expect((await app.inject({ ...request, headers: support })).statusCode).toBe(403);
    }
    const admin = await operatorCookie(app, ADMIN_OPERATOR_ID);
    const made = await create({ text: 'by an operator', audience: { filters: [] } }, admin);
    expect((await auditOf(made.id))[0]).toMatchObject({
      action: 'broadcast.create',
      actor: `operator:${ADMIN_OPERATOR_ID}`,
    });
  });

  it('counts an audience before its broadcast exists, exactly as a start snapshots it', async () => {
    const { tag, chatIds } = await usersTagged(3);
    const count = async (query: string) => {
      const response = await app.inject({ url: `${url()}/audience?${query}`, headers: adminAuth });
      expect(response.statusCode, response.body).toBe(200);
      return response.json().recipients as number;
    };
    expect(await count(`query=${tag}`)).toBe(3);
    await database.db.execute(
      sql`UPDATE users SET banned_at = now() WHERE telegram_id = ${chatIds[0]}`,
    );
    expect(await count(`query=${tag}&filter=banned`)).toBe(1);
    expect(await count(`query=${tag}&filter=banned,new`)).toBe(1);
    expect(await count(`query=${tag}&filter=paying`)).toBe(0);
    const draft = await create({ text: 'x', audience: { filters: ['banned'], query: tag } });
    const preview = await app.inject({ url: url(draft.id, 'preview'), headers: adminAuth });
    expect(preview.json().recipients).toBe(1);
    const wrong = await app.inject({ url: `${url()}/audience?filter=nobody`, headers: adminAuth });
    expect(wrong.statusCode).toBe(422);
  });

  it('validates: text or copy, not both; 404; 409 out of order', async () => {
    for (const payload of [
      { audience: { filters: [] } },
      { text: 'a', copy: { from_chat_id: 1, message_id: 1 }, audience: { filters: [] } },
      { copy: { from_chat_id: 1, message_id: 1 }, entities: [], audience: { filters: [] } },
      { text: 'a', audience: { filters: ['nobody'] } },
      { text: 'a', button: { text: 'b', url: 'javascript:x' }, audience: { filters: [] } },
    ]) {
      const response = await app.inject({
        method: 'POST',
        url: url(),
        headers: adminAuth,
        payload,
      });
      expect(response.statusCode, JSON.stringify(payload)).toBe(422);
    }
    const missing = await app.inject({ url: url(999_999_999), headers: adminAuth });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().code).toBe('broadcast_not_found');
    const draft = await create({ text: 'x', audience: { filters: [], query: 'nobody-at-all-' } });
    for (const action of ['pause', 'resume']) {
      const response = await app.inject({
        method: 'POST',
        url: url(draft.id, action),
        headers: adminAuth,
        payload: { reason: 'out of order' },
      });
      expect(response.statusCode).toBe(409);
      expect(response.json().code).toBe('broadcast_wrong_status');
    }
    const noReason = await app.inject({
      method: 'POST',
      url: url(draft.id, 'start'),
      headers: adminAuth,
      payload: {},
    });
    expect(noReason.statusCode).toBe(422);
    expect((await read(draft.id)).status).toBe('draft');
  });
});

describe('sending', () => {
  it('a broadcast to nobody completes at once', async () => {
    const draft = await create({ text: 'x', audience: { filters: [], query: 'nobody-at-all-' } });
    const preview = await app.inject({ url: url(draft.id, 'preview'), headers: adminAuth });
    expect(preview.json()).toEqual({ id: draft.id, recipients: 0 });
    const started = await act(draft.id, 'start');
    expect(started).toMatchObject({ status: 'completed', progress: { total: 0, remaining: 0 } });
    expect(started.completed_at).not.toBeNull();
    // No job ran: housekeeping's sweep tells the operators, once.
    await sweepSummaries();
    await sweepSummaries();
    expect(summariesOf(draft.id).map((call) => call.fields.text)).toEqual([
      `📣 Broadcast #${draft.id} is complete (0 recipients): 0 sent, 0 blocked the bot, 0 failed.`,
    ]);
  });

  it('stays within the rate after a slow answer: the calls whose slots passed meanwhile wait for new ones', async () => {
    const { tag, chatIds } = await usersTagged(20);
    const draft = await create({ text: 'After a slow one', audience: { filters: [], query: tag } });
    // The first call is answered after half a second: the batch's next four slots pass meanwhile.
    // Sent at once on its return, they and the slots after them made 13 calls in one second.
    telegram.slowNext('sendMessage', 500);
    await act(draft.id, 'start');
    const done = await completed(draft.id);
    expect(done.progress).toMatchObject({ total: 20, sent: 20, remaining: 0 });
    const calls = callsTo(chatIds);
    expectOncePerChat(calls, chatIds);
    expect(busiestSecond(calls)).toBeLessThanOrEqual(RATE);
  });

  it('sends everyone the text once, with its entities and button, within the rate; 403 counts blocked', async () => {
    const { tag, chatIds } = await usersTagged(25);
    const entities = [{ type: 'bold', offset: 0, length: 5 }];
    const draft = await create({
      text: 'Hello <b>not html</b>',
      entities,
      button: { text: 'Open', url: 'https://example.com/x' },
      audience: { filters: [], query: tag },
    });
    const preview = await app.inject({ url: url(draft.id, 'preview'), headers: adminAuth });
    expect(preview.json().recipients).toBe(25);
    telegram.failNext('sendMessage', {
      error_code: 403,
      description: 'Forbidden: bot was blocked by the user',
    });
    const started = await act(draft.id, 'start');
    expect(started.status).toBe('running');
    expect(started.progress.total).toBe(25);
    const done = await completed(draft.id);
    expect(done.progress).toEqual({ total: 25, sent: 24, failed: 0, blocked: 1, remaining: 0 });
    // The job that completed it tells the operators' chat; nobody does again.
    const [summary] = await waitFor(
      async () => summariesOf(draft.id),
      (calls) => calls.length > 0,
    );
    expect(summary?.fields.text).toBe(
      `📣 Broadcast #${draft.id} is complete (25 recipients): 24 sent, 1 blocked the bot, 0 failed.`,
    );
    expect(summary?.fields.parse_mode).toBeUndefined();
    await sweepSummaries();
    expect(summariesOf(draft.id)).toHaveLength(1);
    const calls = callsTo(chatIds);
    expectOncePerChat(calls, chatIds);
    for (const call of calls) {
      expect(call.fields.text).toBe('Hello <b>not html</b>');
      expect(call.fields.parse_mode).toBeUndefined();
      expect(call.fields.entities).toEqual(entities);
      expect(call.fields.reply_markup).toEqual({
        inline_keyboard: [[{ text: 'Open', url: 'https://example.com/x' }]],
      });
    }
    expect(busiestSecond(calls)).toBeLessThanOrEqual(RATE);
    const blockedChat = calls[0]?.chatId;
    const [user] = await selectRows<{ blocked: boolean }>(
      database.db,
      sql`SELECT blocked_at IS NOT NULL AS blocked FROM users WHERE telegram_id = ${blockedChat}`,
    );
    expect(user?.blocked).toBe(true);
    const audit = await auditOf(draft.id);
    expect(audit.map((entry) => entry.action)).toEqual(['broadcast.create', 'broadcast.start']);
    expect(audit[1]).toMatchObject({
      actor: expect.stringMatching(/^admin:/),
      before: { status: 'draft' },
      after: { status: 'running', recipients: 25 },
      reason: 'test start',
    });
  });

  it('after a 429 waits retry_after and still sends each chat once; copies with copyMessage', async () => {
    const { tag, chatIds } = await usersTagged(5);
    const draft = await create({
      copy: { from_chat_id: -100123, message_id: 77 },
      audience: { filters: [], query: tag },
    });
    telegram.failNext('copyMessage', {
      error_code: 429,
      description: 'Too Many Requests: retry after 1',
      retry_after: 1,
    });
    await act(draft.id, 'start');
    const done = await completed(draft.id);
    expect(done.progress).toMatchObject({ total: 5, sent: 5, failed: 0, remaining: 0 });
    const calls = callsTo(chatIds);
    expect(calls).toHaveLength(6);
    const [refused, ...delivered] = calls;
    expectOncePerChat(delivered, chatIds);
    const again = delivered.find((call) => call.chatId === refused?.chatId);
    expect((again?.at ?? 0) - (refused?.at ?? 0)).toBeGreaterThanOrEqual(950);
    for (const call of delivered) {
      expect(call.fields).toMatchObject({ from_chat_id: -100123, message_id: 77 });
    }
  });

  it('pause stops sending, resume goes on where it stopped; each chat once', async () => {
    const { tag, chatIds } = await usersTagged(30);
    const draft = await create({ text: 'paused', audience: { filters: [], query: tag } });
    await act(draft.id, 'start');
    await waitFor(
      () => read(draft.id),
      (view) => view.progress.sent >= 3,
    );
    const paused = await act(draft.id, 'pause');
    expect(paused.status).toBe('paused');
    await jobsEnded(draft.id);
    const during = await read(draft.id);
    expect(during.status).toBe('paused');
    expect(during.progress.remaining).toBeGreaterThan(0);
    expect(callsTo(chatIds)).toHaveLength(during.progress.sent);
    await act(draft.id, 'resume');
    const done = await completed(draft.id);
    expect(done.progress).toMatchObject({ sent: 30, remaining: 0 });
    expectOncePerChat(callsTo(chatIds), chatIds);
    expect((await auditOf(draft.id)).map((entry) => entry.action)).toEqual([
      'broadcast.create',
      'broadcast.start',
      'broadcast.pause',
      'broadcast.resume',
    ]);
  });

  it('a row a dead worker left sending is never sent again but counted failed; a 5xx is tried again', async () => {
    const { tag, chatIds } = await usersTagged(12);
    const draft = await create({ text: 'crash', audience: { filters: [], query: tag } });
    await act(draft.id, 'start');
    await act(draft.id, 'pause');
    await jobsEnded(draft.id);
    // A worker that died between its call and marking the row: Telegram may have delivered it.
    const [lost] = await selectRows<{ telegram_id: string | number }>(
      database.db,
      sql`UPDATE broadcast_recipients SET status = 'sending', attempts = 1,
                 claimed_at = now() - interval '1 hour'
          WHERE broadcast_id = ${draft.id}
            AND user_id = (SELECT min(user_id) FROM broadcast_recipients
                           WHERE broadcast_id = ${draft.id} AND status = 'pending')
          RETURNING telegram_id`,
    );
    const lostChat = Number(lost?.telegram_id);
    const sentBefore = callsTo(chatIds).length;
    telegram.failNext('sendMessage', { error_code: 500, description: 'Internal Server Error' });
    await act(draft.id, 'resume');
    const done = await completed(draft.id);
    expect(done.progress).toEqual({ total: 12, sent: 11, failed: 1, blocked: 0, remaining: 0 });
    const calls = callsTo(chatIds);
    expect(calls.some((call) => call.chatId === lostChat)).toBe(false);
    // The 5xx: its chat was called twice, the message sent once.
    const [refused, ...rest] = calls.slice(sentBefore);
    expectOncePerChat(
      [...calls.slice(0, sentBefore), ...rest],
      chatIds.filter((id) => id !== lostChat),
    );
    expect(rest.some((call) => call.chatId === refused?.chatId)).toBe(true);
    const [row] = await selectRows<{ status: string; error: string }>(
      database.db,
      sql`SELECT r.status, r.error FROM broadcast_recipients r
          WHERE r.broadcast_id = ${draft.id} AND r.telegram_id = ${lostChat}`,
    );
    expect(row?.status).toBe('failed');
    expect(row?.error).toMatch(/not sent again/);
  });

  it('slots too far ahead (the pacing held by a 429): rows go back to pending, not left sending', async () => {
    const { tag, chatIds } = await usersTagged(4);
    await database.db.execute(
      sql`INSERT INTO broadcast_pacing (id, next_at) VALUES (1, now() + interval '10 minutes')
          ON CONFLICT (id) DO UPDATE SET next_at = now() + interval '10 minutes'`,
    );
    try {
      const draft = await create({ text: 'later', audience: { filters: [], query: tag } });
      await act(draft.id, 'start');
      const waiting = await waitFor(
        () =>
          selectRows<{ status: string; run_in: number }>(
            database.db,
            sql`SELECT status, extract(epoch FROM run_at - now())::float8 AS run_in
                FROM generation_jobs
                WHERE kind = 'broadcast' AND payload->>'broadcast_id' = ${String(draft.id)}`,
          ),
        (jobs) => jobs.length === 1 && jobs[0]?.status === 'pending' && (jobs[0]?.run_in ?? 0) > 60,
      );
      expect(waiting).toHaveLength(1);
      const view = await read(draft.id);
      expect(view.progress).toMatchObject({ total: 4, sent: 0, remaining: 4 });
      const [sending] = await selectRows<{ n: number }>(
        database.db,
        sql`SELECT count(*)::int AS n FROM broadcast_recipients
            WHERE broadcast_id = ${draft.id} AND status <> 'pending'`,
      );
      expect(sending?.n).toBe(0);
      expect(callsTo(chatIds)).toHaveLength(0);
      // The pacing frees up: the job, due again, sends everyone once.
      await database.db.execute(sql`UPDATE broadcast_pacing SET next_at = now()`);
      await database.db.execute(
        sql`UPDATE generation_jobs SET run_at = now()
            WHERE kind = 'broadcast' AND payload->>'broadcast_id' = ${String(draft.id)}
              AND status = 'pending'`,
      );
      wakeWorkers(database.db);
      await completed(draft.id);
      expectOncePerChat(callsTo(chatIds), chatIds);
    } finally {
      await database.db.execute(sql`UPDATE broadcast_pacing SET next_at = now()`);
    }
  });

  it('cancel stops sending for good', async () => {
    const { tag, chatIds } = await usersTagged(30);
    const draft = await create({ text: 'cancelled', audience: { filters: [], query: tag } });
    await act(draft.id, 'start');
    await waitFor(
      () => read(draft.id),
      (view) => view.progress.sent >= 2,
    );
    expect((await act(draft.id, 'cancel')).status).toBe('cancelled');
    await jobsEnded(draft.id);
    const after = await read(draft.id);
    expect(after.status).toBe('cancelled');
    expect(after.progress.sent + after.progress.remaining).toBe(30);
    expect(after.progress.remaining).toBeGreaterThan(0);
    expect(callsTo(chatIds)).toHaveLength(after.progress.sent);
    // Cancelled: housekeeping's sweep sends the summary, with what was not sent, once.
    await sweepSummaries();
    await sweepSummaries();
    expect(summariesOf(draft.id).map((call) => call.fields.text)).toEqual([
      `📣 Broadcast #${draft.id} was cancelled (30 recipients): ${after.progress.sent} sent, 0 blocked the bot, 0 failed, ${after.progress.remaining} not sent.`,
    ]);
    const again = await app.inject({
      method: 'POST',
      url: url(draft.id, 'resume'),
      headers: adminAuth,
      payload: { reason: 'again' },
    });
    expect(again.statusCode).toBe(409);
    const listed = await app.inject({ url: url(), headers: adminAuth });
    expect(listed.json().items.some((item: { id: number }) => item.id === draft.id)).toBe(true);
  });

  it('two workers on one broadcast: each chat once, together within the rate', async (context) => {
    if (needsPostgres('two apps with workers on one database')) return context.skip();
    const second = await buildTestApp(settings, undefined, { worker: true });
    try {
      const { tag, chatIds } = await usersTagged(40);
      const draft = await create({ text: 'two workers', audience: { filters: [], query: tag } });
      await act(draft.id, 'start');
      // A second sending job, so both workers send this broadcast at once.
      await enqueue(database.db, {
        kind: 'broadcast',
        provider: broadcastSender({ config: testConfig(settings) }),
        payload: { broadcast_id: draft.id },
      });
      wakeWorkers(database.db);
      const done = await completed(draft.id);
      expect(done.progress).toMatchObject({ total: 40, sent: 40, remaining: 0 });
      const calls = callsTo(chatIds);
      expectOncePerChat(calls, chatIds);
      expect(busiestSecond(calls)).toBeLessThanOrEqual(RATE);
    } finally {
      await second.close();
    }
  });
});
