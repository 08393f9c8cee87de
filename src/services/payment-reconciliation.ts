import { sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
import type { Database, Transaction } from '../db/client.ts';
import { selectRows } from '../db/rows.ts';
import type { PaymentCorrectionKind } from '../db/schema/index.ts';
import { withTransaction } from '../db/transaction.ts';
import {
  StarsApiError,
  type StarTransaction,
  type TelegramStars,
} from '../delivery/telegram-stars.ts';
import { type Operator, recordAudit } from './audit.ts';
import type { ServiceContext } from './context.ts';
import { paymentCursor } from './cursor.ts';
import {
  confirmStarsPayment,
  findPayment,
  refundStarsPayment,
  STARS_CURRENCY,
} from './payments.ts';

/**
 * Makes our Stars payments match Telegram's Star transactions (getStarTransactions): a user's
 * payment we never heard of (the bot was down, the confirm was lost) is credited through
 * confirmStarsPayment, by its charge id (the transaction's id); a refund Telegram made of a
 * payment we have as paid is applied through refundStarsPayment. Both are the bot's own verbs with
 * the bot's own keys, so whatever reaches the bot later changes nothing, and running this again
 * changes nothing either. Each correction is recorded in payment_corrections (once per kind and
 * charge id) and in the audit log, in the transaction of the change.
 *
 * Paging: the Bot API documents the transactions "in chronological order"; some describe them as
 * newest first. Both are handled: the order is read off the dates. Newest first, paging stops
 * below the newest date the last run went through; chronological, it starts near the count the
 * last run saw. Either way the verbs are idempotent, so reading a transaction twice is harmless.
 */

const PAGE = 100;
/** At most this many pages per run (10,000 transactions); the next run goes on from there. */
const MAX_PAGES = 100;

export interface ReconciliationCorrection {
  id: number;
  kind: PaymentCorrectionKind;
  telegram_payment_charge_id: string;
  telegram_id: number | null;
  stars: number;
  transaction_at: string;
  details: Record<string, unknown> | null;
  actor: string;
  created_at: string;
}

export interface ReconciliationRun {
  /** Transactions read from Telegram in this run. */
  transactions: number;
  pages: number;
  /** The corrections this run made (none when everything already matched). */
  corrections: ReconciliationCorrection[];
  /** False when it stopped at MAX_PAGES before reaching what the last run went through. */
  complete: boolean;
}

const correctionColumns = sql.raw(`id, kind, telegram_payment_charge_id, telegram_id, stars,
  to_char(transaction_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS transaction_at,
  details, actor,
  to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at`);

interface CorrectionRow extends Omit<ReconciliationCorrection, 'id' | 'telegram_id'> {
  id: string | number;
  telegram_id: string | number | null;
}

const toCorrection = (row: CorrectionRow): ReconciliationCorrection => ({
  ...row,
  id: Number(row.id),
  telegram_id: row.telegram_id === null ? null : Number(row.telegram_id),
});

async function recordCorrection(
  tx: Transaction,
  operator: Operator,
  correction: {
    kind: PaymentCorrectionKind;
    transaction: StarTransaction;
    telegramId: number | null;
    details: Record<string, unknown>;
  },
): Promise<ReconciliationCorrection | null> {
  const [row] = await selectRows<CorrectionRow>(
    tx,
    sql`INSERT INTO payment_corrections
          (kind, telegram_payment_charge_id, telegram_id, stars, transaction_at, details, actor)
        VALUES (${correction.kind}, ${correction.transaction.id}, ${correction.telegramId},
                ${correction.transaction.amount}, to_timestamp(${correction.transaction.date}),
                ${JSON.stringify(correction.details)}::jsonb, ${operator.actor})
        ON CONFLICT (kind, telegram_payment_charge_id) DO NOTHING
        RETURNING ${correctionColumns}`,
  );
  if (!row) return null;
  await recordAudit(tx, {
    ...operator,
    action: `payment.reconcile.${correction.kind}`,
    subjectType: 'payment',
    subjectId: correction.transaction.id,
    after: { kind: correction.kind, stars: correction.transaction.amount, ...correction.details },
    reason: "reconciliation with Telegram's Star transactions",
  });
  return toCorrection(row);
}

const inTransaction = (ctx: ServiceContext, tx: Transaction): ServiceContext => ({
  ...ctx,
  db: tx as unknown as Database,
});

/** Brings one transaction into our records; answers the correction it made, if any. */
async function reconcileTransaction(
  ctx: ServiceContext,
  operator: Operator,
  transaction: StarTransaction,
): Promise<ReconciliationCorrection | null> {
  const source = transaction.source;
  if (source?.type === 'user' && source.user && typeof source.invoice_payload === 'string') {
    if (await findPayment(ctx.db, transaction.id)) return null;
    const telegramId = source.user.id;
    const payment = {
      telegram_id: telegramId,
      telegram_payment_charge_id: transaction.id,
      total_amount: transaction.amount,
      currency: STARS_CURRENCY,
      invoice_payload: source.invoice_payload,
    };
    try {
      return await withTransaction(ctx.db, async (tx) => {
        const { result, replayed } = await confirmStarsPayment(
          inTransaction(ctx, tx),
          payment,
          operator.actor,
        );
        if (replayed) return null;
        return recordCorrection(tx, operator, {
          kind: 'payment_credited',
          transaction,
          telegramId,
          details: {
            package_id: result.package_id,
            credits: result.credits,
            referral_credits: result.referral?.credits ?? 0,
          },
        });
      });
    } catch (err) {
      if (!(err instanceof AppError) || err.status !== 422) throw err;
      // A payload or amount that fits no package now: recorded for an operator, not credited.
      return withTransaction(ctx.db, (tx) =>
        recordCorrection(tx, operator, {
          kind: 'payment_unmatched',
          transaction,
          telegramId,
          details: { code: err.code, detail: err.message, invoice_payload: source.invoice_payload },
        }),
      );
    }
  }
  const receiver = transaction.receiver;
  if (receiver?.type === 'user' && receiver.user) {
    const paid = await findPayment(ctx.db, transaction.id);
    if (paid?.status !== 'paid' || Number(paid.telegram_id) !== receiver.user.id) return null;
    return withTransaction(ctx.db, async (tx) => {
      const { result, replayed } = await refundStarsPayment(
        inTransaction(ctx, tx),
        {
          telegram_id: receiver.user?.id ?? 0,
          telegram_payment_charge_id: transaction.id,
          total_amount: paid.total_amount,
          currency: STARS_CURRENCY,
        },
        operator.actor,
      );
      if (replayed) return null;
      return recordCorrection(tx, operator, {
        kind: 'refund_applied',
        transaction,
        telegramId: receiver.user?.id ?? null,
        details: {
          credits: result.credits,
          clawed_back: result.clawed_back,
          shortfall: result.shortfall,
          referral_clawed_back: result.referral?.clawed_back ?? 0,
        },
      });
    });
  }
  return null;
}

/**
 * Pages through Telegram's Star transactions back to where the last run got, and corrects what
 * does not match. Telegram away: 503 telegram_unavailable (what was corrected before stays).
 */
export async function reconcilePayments(
  ctx: ServiceContext,
  telegram: TelegramStars | null,
  operator: Operator,
): Promise<ReconciliationRun> {
  if (!telegram) {
    throw new AppError(
      'telegram_unavailable',
      "No TELEGRAM_BOT_TOKEN is set: Telegram's Star transactions cannot be read.",
    );
  }
  const [state] = await selectRows<{ until: number | string | null; seen: number }>(
    ctx.db,
    sql`SELECT extract(epoch FROM reconciled_until)::bigint AS until, transactions_seen AS seen
        FROM payment_reconciliation WHERE id = 1`,
  );
  const until = state?.until === null || state?.until === undefined ? null : Number(state.until);
  const seen = state?.seen ?? 0;
  const corrections: ReconciliationCorrection[] = [];
  let order: 'newest_first' | 'chronological' | null = null;
  let offset = 0;
  let pages = 0;
  let read = 0;
  let newest: number | null = null;
  let complete = false;
  let listed = seen;
  try {
    while (pages < MAX_PAGES) {
      const page = await telegram.transactions(offset, PAGE);
      pages += 1;
      read += page.length;
      for (const transaction of page) {
        newest = Math.max(newest ?? transaction.date, transaction.date);
        const made = await reconcileTransaction(ctx, operator, transaction);
        if (made) corrections.push(made);
      }
      const first = page[0]?.date;
      const last = page.at(-1)?.date;
      if (order === null && first !== undefined && last !== undefined && first !== last) {
        order = first > last ? 'newest_first' : 'chronological';
      }
      if (page.length < PAGE) {
        complete = true;
        listed = offset + page.length;
        break;
      }
      // Chronological and read from the start: jump to near where the last run ended.
      if (order === 'chronological' && offset === 0 && seen > 2 * PAGE) {
        offset = seen - PAGE;
        continue;
      }
      // Newest first: everything from here on is older than what the last run went through.
      if (order === 'newest_first' && until !== null && last !== undefined && last < until) {
        complete = true;
        listed = Math.max(seen, offset + page.length);
        break;
      }
      offset += page.length;
      listed = Math.max(listed, offset);
    }
  } catch (err) {
    if (!(err instanceof StarsApiError)) throw err;
    throw new AppError(
      'telegram_unavailable',
      `Telegram's Star transactions could not be read (${err.status === null ? 'no answer' : `it answered ${err.status}`}); ${corrections.length} corrections were made before.`,
    );
  }
  // Only a complete run moves the point the next one stops at.
  await ctx.db.execute(
    sql`UPDATE payment_reconciliation
        SET last_run_at = now(),
            reconciled_until = CASE WHEN ${complete} AND ${newest}::bigint IS NOT NULL
              THEN GREATEST(COALESCE(reconciled_until, to_timestamp(0)), to_timestamp(${newest}::bigint))
              ELSE reconciled_until END,
            transactions_seen = CASE WHEN ${complete} THEN GREATEST(transactions_seen, ${listed}::int)
              ELSE transactions_seen END
        WHERE id = 1`,
  );
  return { transactions: read, pages, corrections, complete };
}

/**
 * The worker's schedule: runs a reconciliation when the last one is RECONCILE_MINUTES old. The
 * run is claimed by moving last_run_at, so one worker of many runs it. False: not due.
 */
export async function reconcileIfDue(
  ctx: ServiceContext,
  telegram: TelegramStars | null,
): Promise<ReconciliationRun | null> {
  const minutes = ctx.config.reconcileMinutes;
  if (!telegram || minutes <= 0) return null;
  const claimed = await selectRows<{ id: number }>(
    ctx.db,
    sql`UPDATE payment_reconciliation SET last_run_at = now()
        WHERE id = 1 AND (last_run_at IS NULL
                          OR last_run_at <= now() - make_interval(mins => ${minutes}::int))
        RETURNING id`,
  );
  if (claimed.length === 0) return null;
  return reconcilePayments(ctx, telegram, { actor: 'system', role: 'system', requestId: null });
}

export interface CorrectionPage {
  corrections: ReconciliationCorrection[];
  next_cursor: string | null;
  last_run_at: string | null;
  reconciled_until: string | null;
}

/** The corrections, newest first (keyset on the id), and where reconciliation got to. */
export async function listCorrections(
  db: Database,
  options: { limit: number; cursor?: string },
): Promise<CorrectionPage> {
  const before = options.cursor === undefined ? null : paymentCursor.decode(options.cursor);
  const rows = await selectRows<CorrectionRow>(
    db,
    sql`SELECT ${correctionColumns} FROM payment_corrections
        ${before === null ? sql`` : sql`WHERE id < ${before}`}
        ORDER BY id DESC LIMIT ${options.limit + 1}`,
  );
  const [state] = await selectRows<{ last_run_at: string | null; reconciled_until: string | null }>(
    db,
    sql`SELECT to_char(last_run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS last_run_at,
               to_char(reconciled_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS reconciled_until
        FROM payment_reconciliation WHERE id = 1`,
  );
  const page = rows.slice(0, options.limit);
  const last = page.at(-1);
  return {
    corrections: page.map(toCorrection),
    next_cursor: rows.length > options.limit && last ? paymentCursor.encode(Number(last.id)) : null,
    last_run_at: state?.last_run_at ?? null,
    reconciled_until: state?.reconciled_until ?? null,
  };
}
