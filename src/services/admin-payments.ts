import { sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
import type { Database } from '../db/client.ts';
import { isoTimeText, selectRows } from '../db/rows.ts';
import { withTransaction } from '../db/transaction.ts';
import { StarsApiError, type TelegramStars } from '../delivery/telegram-stars.ts';
import { type Operator, recordAudit } from './audit.ts';
import type { ServiceContext } from './context.ts';
import { paymentCursor } from './cursor.ts';
import { findPayment, type RefundResult, refundStarsPayment, STARS_CURRENCY } from './payments.ts';

/**
 * Payments as operators see them, and refunds they start: Telegram gives the Stars back first
 * (refundStarPayment), then our side is applied exactly as the bot's refunded_payment does it
 * (refundStarsPayment: the same keys, so whichever comes second changes nothing).
 */

export interface AdminPayment {
  payment_id: number;
  telegram_id: number;
  telegram_payment_charge_id: string;
  package_id: string;
  stars: number;
  credits: number;
  status: 'paid' | 'refunded';
  created_at: string;
  refunded_at: string | null;
  /** Credits the refund could not take back (already spent); null while paid. */
  refund_shortfall: number | null;
}

export interface PaymentFilter {
  status?: 'paid' | 'refunded';
  user?: number;
  from?: string;
  to?: string;
}

export interface PaymentTotals {
  count: number;
  stars: number;
  credits: number;
  /** Payments of these that were refunded. */
  refunded: number;
  refunded_stars: number;
}

interface PaymentRow {
  id: string | number;
  telegram_id: string | number;
  telegram_payment_charge_id: string;
  package_id: string;
  total_amount: number;
  credits: number;
  status: 'paid' | 'refunded';
  created_at: string;
  refunded_at: string | null;
  refund_shortfall: number | null;
}

function filterSql(filter: PaymentFilter) {
  return sql`p.provider = 'telegram_stars'
    ${filter.status === undefined ? sql`` : sql`AND p.status = ${filter.status}`}
    ${filter.user === undefined ? sql`` : sql`AND u.telegram_id = ${filter.user}`}
    ${filter.from === undefined ? sql`` : sql`AND p.created_at >= ${filter.from}::timestamptz`}
    ${filter.to === undefined ? sql`` : sql`AND p.created_at < ${filter.to}::timestamptz`}`;
}

/** Payments, newest first (keyset on the id), and the totals of everything the filter selects. */
export async function listPayments(
  ctx: ServiceContext,
  filter: PaymentFilter,
  options: { limit: number; cursor?: string },
): Promise<{ payments: AdminPayment[]; totals: PaymentTotals; next_cursor: string | null }> {
  const before = options.cursor === undefined ? null : paymentCursor.decode(options.cursor);
  const rows = await selectRows<PaymentRow>(
    ctx.db,
    sql`SELECT p.id, u.telegram_id, p.telegram_payment_charge_id, p.package_id, p.total_amount,
               p.credits, p.status, ${sql.raw(isoTimeText('p.created_at'))} AS created_at,
               ${sql.raw(isoTimeText('p.refunded_at'))} AS refunded_at, p.refund_shortfall
        FROM payments p JOIN users u ON u.id = p.user_id
        WHERE ${filterSql(filter)} ${before === null ? sql`` : sql`AND p.id < ${before}`}
        ORDER BY p.id DESC
        LIMIT ${options.limit + 1}`,
  );
  const [totals] = await selectRows<Record<keyof PaymentTotals, string | number>>(
    ctx.db,
    sql`SELECT count(*) AS count, COALESCE(sum(p.total_amount), 0) AS stars,
               COALESCE(sum(p.credits), 0) AS credits,
               count(*) FILTER (WHERE p.status = 'refunded') AS refunded,
               COALESCE(sum(p.total_amount) FILTER (WHERE p.status = 'refunded'), 0) AS refunded_stars
        FROM payments p JOIN users u ON u.id = p.user_id
        WHERE ${filterSql(filter)}`,
  );
  const page = rows.slice(0, options.limit);
  const last = page.at(-1);
  return {
    payments: page.map((row) => ({
      payment_id: Number(row.id),
      telegram_id: Number(row.telegram_id),
      telegram_payment_charge_id: row.telegram_payment_charge_id,
      package_id: row.package_id,
      stars: row.total_amount,
      credits: row.credits,
      status: row.status,
      created_at: row.created_at,
      refunded_at: row.refunded_at,
      refund_shortfall: row.refund_shortfall,
    })),
    totals: {
      count: Number(totals?.count ?? 0),
      stars: Number(totals?.stars ?? 0),
      credits: Number(totals?.credits ?? 0),
      refunded: Number(totals?.refunded ?? 0),
      refunded_stars: Number(totals?.refunded_stars ?? 0),
    },
    next_cursor: rows.length > options.limit && last ? paymentCursor.encode(Number(last.id)) : null,
  };
}

export interface AdminRefund {
  /** What Telegram said: it refunded now, it had refunded already, or it was not asked (ours was done). */
  telegram: 'refunded' | 'already_refunded' | 'not_asked';
  /** Whether this call applied our side (false: it had been applied before). */
  applied: boolean;
  refund: RefundResult;
}

/**
 * Refunds a Stars payment: Telegram first, then our side (credits and referral earnings back, as
 * far as the balances allow; the rest is the shortfall), audited (`payment.refund`) in our side's
 * transaction when it changes anything. Telegram refusing is 422 star_refund_refused, or,
 * for CHARGE_ALREADY_REFUNDED, our side applied if not yet; Telegram away is 503, nothing changed.
 */
export async function refundPaymentAsOperator(
  ctx: ServiceContext,
  telegram: TelegramStars | null,
  chargeId: string,
  operator: Operator,
  reason: string,
): Promise<AdminRefund> {
  const payment = await findPayment(ctx.db, chargeId);
  if (!payment) {
    throw new AppError('payment_not_found', `No Stars payment with charge id ${chargeId}.`);
  }
  const refunded = {
    telegram_id: Number(payment.telegram_id),
    telegram_payment_charge_id: chargeId,
    total_amount: payment.total_amount,
    currency: STARS_CURRENCY,
  };
  let said: AdminRefund['telegram'] = 'not_asked';
  if (payment.status === 'paid') {
    if (!telegram) {
      throw new AppError(
        'telegram_unavailable',
        'No TELEGRAM_BOT_TOKEN is set: Telegram cannot be asked to refund. Nothing was changed.',
      );
    }
    try {
      said = await telegram.refund(refunded.telegram_id, chargeId);
    } catch (err) {
      if (!(err instanceof StarsApiError)) throw err;
      if (err.kind === 'refused') {
        throw new AppError(
          'star_refund_refused',
          `Telegram refused to refund charge ${chargeId}: ${err.description ?? 'no reason given'}. Nothing was changed.`,
          { telegram_error: err.description },
        );
      }
      throw new AppError(
        'telegram_unavailable',
        `Telegram did not refund charge ${chargeId} (${err.status === null ? 'no answer' : `it answered ${err.status}`}); nothing was changed: try again.`,
        {},
        err.retryAfterSeconds === null ? {} : { 'retry-after': String(err.retryAfterSeconds) },
      );
    }
  }
  const outcome = await withTransaction(ctx.db, async (tx) => {
    const { result, replayed } = await refundStarsPayment(
      { ...ctx, db: tx as unknown as Database },
      refunded,
      operator.actor,
    );
    if (!replayed) {
      await recordAudit(tx, {
        ...operator,
        action: 'payment.refund',
        subjectType: 'payment',
        subjectId: chargeId,
        before: { status: 'paid' },
        after: {
          status: 'refunded',
          telegram: said,
          clawed_back: result.clawed_back,
          shortfall: result.shortfall,
          referral: result.referral,
        },
        reason,
      });
    }
    return { result, replayed };
  });
  return { telegram: said, applied: !outcome.replayed, refund: outcome.result };
}
