import { sql } from 'drizzle-orm';
import { Api } from 'grammy';
import type { InlineKeyboardMarkup, MessageEntity } from 'grammy/types';
import { sleep } from '../core/sleep.ts';
import { complete, type Job, runLater } from '../db/job-queue.ts';
import { selectRows } from '../db/rows.ts';
import { toDeliveryError } from '../delivery/telegram.ts';
import { sendBroadcastSummaries } from '../services/broadcasts.ts';
import { currentSettings } from '../services/settings.ts';
import type { JobEnvironment } from './types.ts';

/**
 * Sends a running broadcast (src/services/broadcasts.ts) to its recipients.
 *
 * What "exactly once" means here. Telegram's Bot API has no idempotency key: after a call whose
 * answer was lost we cannot know whether the message arrived. So each recipient gets the message
 * AT MOST ONCE, NEVER TWICE:
 * - a batch of pending rows is claimed with FOR UPDATE SKIP LOCKED and marked `sending` in the
 *   same statement, before any call (two workers never claim the same row; the primary key
 *   (broadcast_id, user_id) makes one row per recipient a database fact);
 * - after the batch's calls its rows are marked, in one statement, `sent`, `blocked` (403;
 *   users.blocked_at too) or `failed`; a 429 or a 5xx means Telegram did not send it, so the row
 *   goes back to `pending` (a 429 holds the whole broadcast for retry_after, and pushes the shared
 *   pacing back);
 * - a worker that dies between a call and the mark leaves its row `sending`: it is never sent
 *   again, and is counted `failed` once it has been `sending` longer than the job lease. The same
 *   for a call without an answer (network error, timeout): it may have arrived.
 *
 * The rate: every send takes a slot of the shared pacing row (broadcast_pacing), reserved with one
 * INSERT … ON CONFLICT DO UPDATE … RETURNING for the whole batch, slots 1/BROADCAST_RATE s apart,
 * so all workers together never send faster than BROADCAST_RATE messages per second.
 */

const BATCH_MAX = 10;
/**
 * Slots are this much wider than 1/BROADCAST_RATE: a call that leaves late (the event loop, the
 * network) would otherwise put rate + 1 calls into one second as Telegram counts them.
 */
const SLOT_MARGIN = 1.1;
/**
 * How late a call may leave after its slot. A call that leaves later than this (a slow answer
 * before it, a stalled process) would share a second with the slots after it — several late calls
 * sent back to back made rate + 1 in one second. Below the margin (100 ms per second of slots),
 * any second holds the calls of at most BROADCAST_RATE slots, whatever the rate.
 */
const LATE_SLOT_MS = (SLOT_MARGIN - 1) * 1000 * 0.9;
/** A 5xx answer is tried again this many times before the row is given up as failed. */
const SEND_ATTEMPTS = 3;
/** How long a job waits for rows other workers are sending before it looks again. */
const IN_FLIGHT_WAIT_SECONDS = 1;

interface BroadcastState {
  status: string;
  text: string | null;
  entities: MessageEntity[] | null;
  copy_from_chat_id: string | number | null;
  copy_message_id: string | number | null;
  button: { text: string; url: string } | null;
  held_ms: number;
}

interface Recipient {
  user_id: string | number;
  telegram_id: string | number;
  attempts: number;
}

type Outcome =
  | { kind: 'sent' }
  | { kind: 'blocked'; error: string }
  | { kind: 'failed'; error: string }
  | { kind: 'again'; error: string; retryAfterSeconds?: number };

export async function runBroadcastJob(
  env: JobEnvironment,
  job: Job,
  signal: AbortSignal,
): Promise<void> {
  const { ctx } = env;
  const id = Number(job.payload?.broadcast_id);
  const token = ctx.config.telegramBotToken;
  if (!token || !Number.isSafeInteger(id)) {
    await complete(ctx.db, job);
    return;
  }
  const lease = ctx.config.worker.leaseSeconds;
  const api = new Api(token, {
    apiRoot: ctx.config.delivery.telegramApiRoot.replace(/\/+$/, ''),
    // A call must end well within the lease, so a row `sending` past the lease is truly lost.
    timeoutSeconds: Math.max(1, Math.floor(lease / 2)),
  });
  while (!signal.aborted) {
    const [broadcast] = await selectRows<BroadcastState>(
      ctx.db,
      sql`SELECT status, text, entities, copy_from_chat_id, copy_message_id, button,
                 greatest(0, extract(epoch FROM held_until - now()) * 1000)::float8 AS held_ms
          FROM broadcasts WHERE id = ${id}`,
    );
    // Paused, cancelled or completed: this job ends (resume enqueues a new one).
    if (broadcast?.status !== 'running') {
      await complete(ctx.db, job);
      return;
    }
    if (broadcast.held_ms > 0) {
      await runLater(ctx.db, job, {
        delaySeconds: Math.ceil(broadcast.held_ms) / 1000,
        countsAsAttempt: false,
      });
      return;
    }
    const rate = (await currentSettings(ctx)).BROADCAST_RATE;
    const recipients = await selectRows<Recipient>(
      ctx.db,
      sql`UPDATE broadcast_recipients r
          SET status = 'sending', attempts = r.attempts + 1, claimed_at = now()
          WHERE r.broadcast_id = ${id} AND r.user_id IN (
            SELECT user_id FROM broadcast_recipients
            WHERE broadcast_id = ${id} AND status = 'pending'
            ORDER BY user_id LIMIT ${Math.min(BATCH_MAX, rate)}
            FOR UPDATE SKIP LOCKED)
          RETURNING r.user_id, r.telegram_id, r.attempts`,
    );
    if (recipients.length === 0) {
      // Rows a dead worker left `sending`: never sent again (see above), counted failed. Only
      // here, once nothing is pending: they matter for completion, and the statement reads every
      // recipient of the broadcast.
      await ctx.db.execute(
        sql`UPDATE broadcast_recipients
            SET status = 'failed', error = 'unknown: the sender stopped during the call; not sent again'
            WHERE broadcast_id = ${id} AND status = 'sending'
              AND claimed_at < now() - make_interval(secs => ${lease})`,
      );
      const [left] = await selectRows<{ pending: number; sending: number }>(
        ctx.db,
        sql`SELECT count(*) FILTER (WHERE status = 'pending')::int AS pending,
                   count(*) FILTER (WHERE status = 'sending')::int AS sending
            FROM broadcast_recipients WHERE broadcast_id = ${id}`,
      );
      if ((left?.pending ?? 0) > 0 || (left?.sending ?? 0) > 0) {
        // Other workers hold the rest: look again soon (their rows may come back as pending).
        await runLater(ctx.db, job, {
          delaySeconds: IN_FLIGHT_WAIT_SECONDS,
          countsAsAttempt: false,
        });
        return;
      }
      await ctx.db.execute(
        sql`UPDATE broadcasts SET status = 'completed', completed_at = now()
            WHERE id = ${id} AND status = 'running'`,
      );
      env.logger.info({ broadcastId: id }, 'broadcast completed');
      await complete(ctx.db, job);
      // Housekeeping sends it later if this fails.
      await sendBroadcastSummaries(ctx, id).catch((error: unknown) =>
        env.logger.warn(
          { broadcastId: id, reason: (error as Error).message },
          'no broadcast summary',
        ),
      );
      return;
    }
    const slots = await reserveSlots(env, recipients.length, rate);
    // Rows must not wait `sending` near the lease (they would be counted failed, then sent): if
    // the pacing is that far ahead (a 429's hold), give them back and come back for a slot then.
    const tooLong = (slot: number) => slot - Date.now() > (lease * 1000) / 2;
    let waitMs = (slots.at(-1) ?? 0) - Date.now();
    let tooFar = tooLong(slots.at(-1) ?? 0);
    let stopAt = tooFar ? 0 : -1;
    const outcomes: Sent[] = [];
    for (const [index, recipient] of recipients.entries()) {
      if (tooFar) break;
      if (signal.aborted) {
        stopAt = index;
        break;
      }
      let slot = slots[index] ?? 0;
      await sleep(slot - Date.now(), signal);
      if (!signal.aborted && Date.now() - slot > LATE_SLOT_MS) {
        // Late: the batch's later slots are gone; they go back and the next batch takes new ones.
        // The first call takes a new slot of its own, so that a batch always sends something.
        if (index > 0) {
          stopAt = index;
          break;
        }
        [slot = 0] = await reserveSlots(env, 1, rate);
        if (tooLong(slot)) {
          waitMs = slot - Date.now();
          tooFar = true;
          stopAt = 0;
          break;
        }
        await sleep(slot - Date.now(), signal);
      }
      if (signal.aborted) {
        stopAt = index;
        break;
      }
      const outcome = await send(api, token, broadcast, Number(recipient.telegram_id));
      outcomes.push({ recipient, outcome });
      if (outcome.kind === 'again' && outcome.retryAfterSeconds !== undefined) {
        await holdBroadcast(env, id, outcome.retryAfterSeconds);
        stopAt = index + 1;
        break;
      }
    }
    await record(env, id, outcomes);
    if (stopAt >= 0) {
      // Claimed but never called: they were not sent, so they go back as they were.
      const unsent = recipients.slice(stopAt).map((r) => Number(r.user_id));
      if (unsent.length > 0) {
        await ctx.db.execute(
          sql`UPDATE broadcast_recipients SET status = 'pending', attempts = attempts - 1,
                     claimed_at = NULL
              WHERE broadcast_id = ${id} AND status = 'sending'
                AND user_id IN (${sql.join(
                  unsent.map((userId) => sql`${userId}`),
                  sql`, `,
                )})`,
        );
      }
    }
    if (tooFar) {
      await runLater(ctx.db, job, {
        delaySeconds: Math.max(1, Math.ceil(waitMs / 1000)),
        countsAsAttempt: false,
      });
      return;
    }
  }
}

/**
 * Takes `count` send slots of the shared pacing (one statement, whichever worker asks), answering
 * for each the time (Date.now() clock) at which it may be used. Slots are 1.1 × 1000/rate ms apart.
 */
async function reserveSlots(env: JobEnvironment, count: number, rate: number): Promise<number[]> {
  const stepMs = (1000 / rate) * SLOT_MARGIN;
  const [row] = await selectRows<{ end_ms: number }>(
    env.ctx.db,
    sql`INSERT INTO broadcast_pacing AS p (id, next_at)
        VALUES (1, clock_timestamp() + make_interval(secs => ${(count * stepMs) / 1000}))
        ON CONFLICT (id) DO UPDATE
          SET next_at = greatest(p.next_at, clock_timestamp())
                        + make_interval(secs => ${(count * stepMs) / 1000})
        RETURNING (extract(epoch FROM p.next_at - clock_timestamp()) * 1000)::float8 AS end_ms`,
  );
  const endMs = Number(row?.end_ms ?? 0);
  const started = Date.now();
  return Array.from({ length: count }, (_, i) => started + endMs - (count - i) * stepMs);
}

/** After a 429: no worker sends this broadcast, nor takes a pacing slot, for retry_after. */
async function holdBroadcast(env: JobEnvironment, id: number, seconds: number): Promise<void> {
  await env.ctx.db.execute(
    sql`UPDATE broadcasts SET held_until = now() + make_interval(secs => ${seconds})
        WHERE id = ${id}`,
  );
  await env.ctx.db.execute(
    sql`INSERT INTO broadcast_pacing AS p (id, next_at)
        VALUES (1, clock_timestamp() + make_interval(secs => ${seconds}))
        ON CONFLICT (id) DO UPDATE
          SET next_at = greatest(p.next_at, clock_timestamp() + make_interval(secs => ${seconds}))`,
  );
}

async function send(
  api: Api,
  token: string,
  broadcast: BroadcastState,
  chatId: number,
): Promise<Outcome> {
  const markup: { reply_markup?: InlineKeyboardMarkup } = broadcast.button
    ? {
        reply_markup: {
          inline_keyboard: [[{ text: broadcast.button.text, url: broadcast.button.url }]],
        },
      }
    : {};
  try {
    if (broadcast.text !== null) {
      // Entities, never parse_mode: the text is sent exactly as written.
      await api.sendMessage(chatId, broadcast.text, {
        ...(broadcast.entities ? { entities: broadcast.entities } : {}),
        ...markup,
      });
    } else {
      await api.copyMessage(
        chatId,
        Number(broadcast.copy_from_chat_id),
        Number(broadcast.copy_message_id),
        markup,
      );
    }
    return { kind: 'sent' };
  } catch (err) {
    // The delivery's classification: an answer from Telegram has its status; none, no status.
    const failure = toDeliveryError(err, token);
    const error = failure.message.slice(0, 500);
    if (failure.status === undefined) {
      // No answer: the message may have arrived. Never sent again (at most once).
      return { kind: 'failed', error: `unknown: ${error}` };
    }
    if (failure.status === 403) return { kind: 'blocked', error };
    if (failure.status === 429) {
      const retryAfter = failure.retryAfterSeconds;
      return {
        kind: 'again',
        error,
        retryAfterSeconds: retryAfter !== undefined && retryAfter > 0 ? retryAfter : 1,
      };
    }
    if (failure.retryable) return { kind: 'again', error };
    return { kind: 'failed', error };
  }
}

/** A recipient this batch called, and what Telegram answered. */
interface Sent {
  recipient: Recipient;
  outcome: Outcome;
}

/**
 * Marks the batch's calls in one statement (a statement per message cost the workers as much
 * CPU as the call itself): `sent`; `blocked` (and the user's blocked_at); `failed`; or, when
 * Telegram answered that it did not send it (429, 5xx), `pending` again — a 5xx only so many times.
 * Until then the rows stay `sending`, so a worker that dies before this never sends them again.
 */
async function record(env: JobEnvironment, id: number, sent: readonly Sent[]): Promise<void> {
  if (sent.length === 0) return;
  const rows = sent.map(({ recipient, outcome }) => {
    const gaveUp =
      outcome.kind === 'again' &&
      outcome.retryAfterSeconds === undefined &&
      recipient.attempts >= SEND_ATTEMPTS;
    const status = outcome.kind === 'again' ? (gaveUp ? 'failed' : 'pending') : outcome.kind;
    const error = outcome.kind === 'sent' ? null : outcome.error;
    // A 429 was not this recipient's attempt: it is given back.
    const attemptBack = outcome.kind === 'again' && outcome.retryAfterSeconds !== undefined ? 1 : 0;
    return sql`(${Number(recipient.user_id)}::bigint, ${status}::text, ${error}::text, ${attemptBack}::int)`;
  });
  await env.ctx.db.execute(
    sql`WITH outcome (user_id, status, error, attempt_back) AS (VALUES ${sql.join(rows, sql`, `)}),
        marked AS (
          UPDATE broadcast_recipients r
          SET status = o.status, error = o.error, attempts = r.attempts - o.attempt_back,
              sent_at = CASE WHEN o.status = 'sent' THEN now() ELSE r.sent_at END,
              claimed_at = CASE WHEN o.status = 'pending' THEN NULL ELSE r.claimed_at END
          FROM outcome o
          WHERE r.broadcast_id = ${id} AND r.user_id = o.user_id AND r.status = 'sending'
          RETURNING r.user_id, r.status)
        UPDATE users SET blocked_at = now()
        WHERE id IN (SELECT user_id FROM marked WHERE status = 'blocked') AND blocked_at IS NULL`,
  );
}
