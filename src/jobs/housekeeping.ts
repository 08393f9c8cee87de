import { sql } from 'drizzle-orm';
import { selectRows } from '../db/rows.ts';
import { TelegramStars } from '../delivery/telegram-stars.ts';
import { rollUpStatsDays } from '../services/admin-stats.ts';
import { sendBroadcastSummaries } from '../services/broadcasts.ts';
import { sendDailyReportIfDue } from '../services/daily-report.ts';
import { recordGenerationFailure } from '../services/generation-outcomes.ts';
import { deleteExpiredIdempotencyKeys } from '../services/idempotency.ts';
import { deleteEndedSessions } from '../services/operator-sessions.ts';
import { reconcileIfDue } from '../services/payment-reconciliation.ts';
import { checkProviderBalances } from '../services/provider-balances.ts';
import { sweepStoredObjects } from '../services/storage-retention.ts';
import type { JobEnvironment } from './types.ts';

/**
 * How long past its deadline a generation may wait for a worker of its provider before we give
 * up: not submitted yet, 5 minutes; submitted (only a worker of its provider can make the final
 * query, and the image may be done), a day — that provider is gone from every worker by then.
 */
const ABANDONED_AFTER_SECONDS = 300;
const ABANDONED_SUBMITTED_AFTER_SECONDS = 86_400;

/**
 * Periodic sweeps every worker runs (each statement is safe to run concurrently):
 * - expired Idempotency-Key rows are deleted, and operators' sessions ended a week ago;
 * - a generation whose job nobody has claimed long after its deadline (no worker serves its
 *   provider any more) fails and is given back, so nothing stays "queued" forever;
 * - every RECONCILE_MINUTES one worker reconciles Stars payments with Telegram's transactions;
 * - about once a minute one worker reads each provider's balance (the guard's input), telling the
 *   operators when one drops below MIN_PROVIDER_BALANCE and when it recovers;
 * - closed UTC days of the last year without a stats rollup get one (up to 31 a round, one process
 *   at a time; admin-stats.ts), so that GET /admin/stats reads rows instead of every generation;
 * - from DAILY_REPORT_HOUR (UTC) the day before's report goes to the operators' chat, once;
 * - a broadcast that ended without its summary (cancelled; a lost one) gets it there, once;
 * - stored results past RESULT_RETENTION_DAYS and served references past their URLs' lifetime
 *   are deleted (storage-retention.ts; at most every 10 minutes per process).
 */
export async function runHousekeeping(
  env: Pick<JobEnvironment, 'ctx' | 'logger' | 'store'>,
): Promise<void> {
  const { ctx, logger } = env;
  const deleted = await deleteExpiredIdempotencyKeys(ctx.db, ctx.config.idempotencyKeyTtlHours);
  if (deleted > 0) logger.info({ deleted }, 'deleted expired idempotency keys');
  const sessions = await deleteEndedSessions(ctx.db);
  if (sessions > 0) logger.info({ deleted: sessions }, 'deleted ended operator sessions');
  const abandoned = await selectRows<{ request_id: string }>(
    ctx.db,
    sql`SELECT request_id FROM generation_jobs
        WHERE kind = 'generate' AND status = 'pending'
          AND deadline_at < now() - make_interval(secs => CASE WHEN provider_job_id IS NULL
                THEN ${ABANDONED_AFTER_SECONDS}::int ELSE ${ABANDONED_SUBMITTED_AFTER_SECONDS}::int END)
        LIMIT 100`,
  );
  for (const { request_id: requestId } of abandoned) {
    const failed = await recordGenerationFailure(ctx, requestId, {
      code: 'deadline_exceeded',
      message: 'no worker took the generation before its deadline',
    });
    if (failed) logger.warn({ generationId: requestId }, 'failed an abandoned generation');
  }
  try {
    for (const check of await checkProviderBalances(ctx)) {
      if (check.status === 'low' || check.status === 'error') {
        logger.warn(check, 'provider balance check');
      }
    }
  } catch (error) {
    logger.warn({ reason: (error as Error).message }, 'provider balance check failed');
  }
  try {
    const days = await rollUpStatsDays(ctx.db);
    if (days > 0) logger.info({ days }, 'rolled up stats days');
  } catch (error) {
    logger.warn({ reason: (error as Error).message }, 'rolling up stats days failed');
  }
  try {
    const report = await sendDailyReportIfDue(ctx);
    if (report?.outcome === 'failed') {
      logger.warn({ reason: report.error }, 'the daily report was not sent');
    }
  } catch (error) {
    logger.warn({ reason: (error as Error).message }, 'the daily report failed');
  }
  try {
    await sendBroadcastSummaries(ctx);
  } catch (error) {
    logger.warn({ reason: (error as Error).message }, 'broadcast summaries failed');
  }
  try {
    const swept = await sweepStoredObjects(ctx, env.store);
    if (swept && swept.results + swept.references > 0) {
      logger.info(swept, 'deleted stored images past their retention');
    }
  } catch (error) {
    // The storage away: the next sweep tries again.
    logger.warn({ err: error }, 'sweeping the result store failed');
  }
  const token = ctx.config.telegramBotToken;
  if (token && ctx.config.reconcileMinutes > 0) {
    stars ??= new TelegramStars({ botToken: token, apiRoot: ctx.config.delivery.telegramApiRoot });
    try {
      const run = await reconcileIfDue(ctx, stars);
      if (run && run.corrections.length > 0) {
        const corrections = run.corrections.map((c) => `${c.kind}:${c.telegram_payment_charge_id}`);
        logger.warn({ corrections }, "corrected payments after Telegram's Star transactions");
      }
    } catch (error) {
      // Telegram away: the next run tries again. The message never holds the bot token.
      logger.warn({ reason: (error as Error).message }, 'payment reconciliation failed');
    }
  }
}

/** The worker's Bot API client for Stars, made at the first reconciliation. */
let stars: TelegramStars | null = null;
