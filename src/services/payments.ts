import { sql } from 'drizzle-orm';
import type { StarsPackage } from '../core/config.ts';
import { AppError } from '../core/errors.ts';
import type { Queryable } from '../db/client.ts';
import { isoTimeText, selectRows } from '../db/rows.ts';
import { withTransaction } from '../db/transaction.ts';
import { StarsApiError, type TelegramStars } from '../delivery/telegram-stars.ts';
import { type Language, languageOfTelegram, loadTexts } from '../locales/index.ts';
import type { ServiceContext } from './context.ts';
import { balanceOf, credit, lockUser, postEntry } from './ledger.ts';
import {
  clawBackReferralBonus,
  payReferralBonus,
  type ReferralClawback,
  type ReferralEarning,
  referralClawbackOf,
  referralEarningOf,
} from './referrals.ts';
import { currentSettings } from './settings.ts';
import { userNotFound } from './users.ts';

/**
 * Telegram Stars top-ups. The bot forwards what Telegram sent it (successful_payment,
 * refunded_payment); Telegram's charge id is unique in `payments`, so a payment is credited once
 * and refunded once however often either message is retried.
 */

export const STARS_CURRENCY = 'XTR';

export interface StarsPackageOffer {
  id: string;
  title: string;
  credits: number;
  stars: number;
  currency: typeof STARS_CURRENCY;
  /** Put this on the invoice (sendInvoice payload); the confirmation names the package by it. */
  invoice_payload: string;
}

/**
 * The invoice carries the terms it was sold on — package, credits, Stars — so a payment is
 * credited what its invoice promised even if an operator changes or removes the package between
 * the pre-checkout and the payment (the bot's pre-checkout only approves current terms). Only our
 * bot can issue invoices, and only the bot may confirm them.
 */
export function invoicePayloadOf(pack: StarsPackage): string {
  return `stars:${pack.id}:${pack.credits}:${pack.stars}`;
}

const INVOICE_TERMS = /^stars:([a-z0-9][a-z0-9_-]{0,31}):(\d{1,9}):(\d{1,6})$/;

export function listStarsPackages(packages: readonly StarsPackage[]): StarsPackageOffer[] {
  return packages.map((pack) => ({
    id: pack.id,
    title: `${pack.credits} credits`,
    credits: pack.credits,
    stars: pack.stars,
    currency: STARS_CURRENCY,
    invoice_payload: invoicePayloadOf(pack),
  }));
}

export interface StarsInvoiceLink {
  package_id: string;
  credits: number;
  stars: number;
  currency: typeof STARS_CURRENCY;
  /** The same payload the bot's invoice carries: the bot's payment handling credits it. */
  invoice_payload: string;
  /** Telegram's link to the invoice, for Telegram.WebApp.openInvoice. */
  invoice_link: string;
}

let invoiceTexts: ReturnType<typeof loadTexts> | null = null;

/**
 * A Telegram link to the invoice of a Stars package, for the Mini App to open. It is the bot's
 * own invoice (title, description and price label as the bot's /topup writes them, in the user's
 * language; the same payload), so paying it reaches the bot as pre_checkout_query and
 * successful_payment and is checked and credited exactly as a payment in the chat is. Nothing is
 * recorded here: an invoice nobody pays costs nothing.
 */
export async function createStarsInvoiceLink(
  ctx: ServiceContext,
  telegram: TelegramStars | null,
  telegramId: number,
  packageId: string,
): Promise<StarsInvoiceLink> {
  const settings = await currentSettings(ctx);
  const pack = settings.STARS_PACKAGES.find((candidate) => candidate.id === packageId);
  if (!pack) {
    throw new AppError(
      'unknown_package',
      `No Stars package "${packageId}"; GET /api/v1/payments/stars/packages lists them.`,
    );
  }
  const [user] = await selectRows<{ language: Language | null; language_code: string | null }>(
    ctx.db,
    sql`SELECT language, language_code FROM users WHERE telegram_id = ${telegramId}`,
  );
  if (!user) throw userNotFound(telegramId);
  if (!telegram) {
    throw new AppError(
      'telegram_unavailable',
      'No TELEGRAM_BOT_TOKEN is set: Telegram cannot be asked for an invoice.',
    );
  }
  // The bot's choice of language: the user's own, else its Telegram client's, else the default.
  const language =
    user.language ?? languageOfTelegram(user.language_code) ?? ctx.config.defaultLanguage;
  invoiceTexts ??= loadTexts('en');
  const title = invoiceTexts.t(language, 'invoice-title', { credits: pack.credits });
  const payload = invoicePayloadOf(pack);
  let link: string;
  try {
    link = await telegram.invoiceLink({
      title,
      description: invoiceTexts.t(language, 'invoice-description', { credits: pack.credits }),
      payload,
      label: title,
      stars: pack.stars,
    });
  } catch (err) {
    if (!(err instanceof StarsApiError)) throw err;
    if (err.kind === 'refused') {
      throw new AppError(
        'invoice_refused',
        `Telegram refused to create the invoice: ${err.description ?? 'no reason given'}.`,
        { telegram_error: err.description },
      );
    }
    throw new AppError(
      'telegram_unavailable',
      `Telegram did not create the invoice (${err.status === null ? 'no answer' : `it answered ${err.status}`}): try again.`,
      {},
      err.retryAfterSeconds === null ? {} : { 'retry-after': String(err.retryAfterSeconds) },
    );
  }
  return {
    package_id: pack.id,
    credits: pack.credits,
    stars: pack.stars,
    currency: STARS_CURRENCY,
    invoice_payload: payload,
    invoice_link: link,
  };
}

export interface SuccessfulPayment {
  telegram_id: number;
  telegram_payment_charge_id: string;
  provider_payment_charge_id?: string | null;
  total_amount: number;
  currency: string;
  invoice_payload: string;
}

export interface PaymentResult {
  payment_id: number;
  telegram_id: number;
  telegram_payment_charge_id: string;
  package_id: string;
  credits: number;
  stars: number;
  status: 'paid' | 'refunded';
  /** The user's balance right after the credit. */
  balance_after: number;
  created_at: string;
  /** What the payment earned the payer's referrer (null: no referrer, or nothing due). */
  referral: ReferralEarning | null;
}

interface PaymentRow {
  id: string | number;
  user_id: string | number;
  telegram_id: string | number;
  telegram_payment_charge_id: string;
  package_id: string;
  credits: number;
  total_amount: number;
  status: 'paid' | 'refunded';
  credit_balance_after: string | number | null;
  refund_shortfall: number | null;
  refund_amount: number | null;
  created_at: string;
}

/** A Stars payment by its Telegram charge id, with its user's Telegram id; null when we have none. */
export async function findPayment(db: Queryable, chargeId: string): Promise<PaymentRow | null> {
  const [row] = await selectRows<PaymentRow>(
    db,
    sql`SELECT p.id, p.user_id, u.telegram_id, p.telegram_payment_charge_id, p.package_id, p.credits,
               p.total_amount, p.status, c.balance_after AS credit_balance_after, p.refund_shortfall,
               r.amount AS refund_amount, ${sql.raw(isoTimeText('p.created_at'))} AS created_at
        FROM payments p
        JOIN users u ON u.id = p.user_id
        LEFT JOIN ledger_entries c ON c.id = p.credit_entry_id
        LEFT JOIN ledger_entries r ON r.id = p.refund_entry_id
        WHERE p.provider = 'telegram_stars' AND p.telegram_payment_charge_id = ${chargeId}`,
  );
  return row ?? null;
}

function toResult(row: PaymentRow): Omit<PaymentResult, 'referral'> {
  return {
    payment_id: Number(row.id),
    telegram_id: Number(row.telegram_id),
    telegram_payment_charge_id: row.telegram_payment_charge_id,
    package_id: row.package_id,
    credits: row.credits,
    stars: row.total_amount,
    status: row.status,
    balance_after: Number(row.credit_balance_after ?? 0),
    created_at: row.created_at,
  };
}

function packageFor(packages: readonly StarsPackage[], payment: SuccessfulPayment): StarsPackage {
  if (payment.currency !== STARS_CURRENCY) {
    throw new AppError(
      'unsupported_currency',
      `Only Telegram Stars (XTR) are accepted, got ${payment.currency}.`,
    );
  }
  const terms = INVOICE_TERMS.exec(payment.invoice_payload);
  // An invoice of the earlier form names only the package: the current one decides.
  const pack = terms
    ? { id: terms[1] ?? '', credits: Number(terms[2]), stars: Number(terms[3]) }
    : packages.find((candidate) => `stars:${candidate.id}` === payment.invoice_payload);
  if (!pack) {
    throw new AppError(
      'unknown_package',
      `No package has invoice_payload "${payment.invoice_payload}".`,
    );
  }
  if (pack.stars !== payment.total_amount) {
    throw new AppError(
      'amount_mismatch',
      `Package ${pack.id} costs ${pack.stars} XTR; the payment says ${payment.total_amount}.`,
      { expected_amount: pack.stars },
    );
  }
  return pack;
}

function sameCharge(row: PaymentRow, payment: SuccessfulPayment): boolean {
  return (
    Number(row.telegram_id) === payment.telegram_id && row.total_amount === payment.total_amount
  );
}

/**
 * Records a successful Stars payment and credits its package, once per Telegram charge id; a
 * repeat returns the first result. The payment row and its ledger credit commit together.
 */
export async function confirmStarsPayment(
  ctx: ServiceContext,
  payment: SuccessfulPayment,
  actor: string,
): Promise<{ result: PaymentResult; replayed: boolean }> {
  // Read before the transaction: on PGlite a query outside it while it is open would wait forever.
  const settings = await currentSettings(ctx);
  const pack = packageFor(settings.STARS_PACKAGES, payment);
  const chargeId = payment.telegram_payment_charge_id;
  const recorded = await withTransaction(ctx.db, async (tx) => {
    // Money is never refused for a profile the bot forgot to sync: the user is created if missing.
    await tx.execute(
      sql`INSERT INTO users (telegram_id) VALUES (${payment.telegram_id}) ON CONFLICT (telegram_id) DO NOTHING`,
    );
    const inserted = await selectRows<{ id: string | number; user_id: string | number }>(
      tx,
      sql`INSERT INTO payments (user_id, telegram_payment_charge_id, provider_payment_charge_id, currency,
                                total_amount, invoice_payload, package_id, credits)
          SELECT id, ${chargeId}, ${payment.provider_payment_charge_id ?? null}, ${payment.currency},
                 ${payment.total_amount}, ${payment.invoice_payload}, ${pack.id}, ${pack.credits}
          FROM users WHERE telegram_id = ${payment.telegram_id}
          ON CONFLICT (provider, telegram_payment_charge_id) DO NOTHING
          RETURNING id, user_id`,
    );
    const [row] = inserted;
    if (!row) return false;
    const { entry } = await credit(
      tx,
      { userId: Number(row.user_id) },
      {
        kind: 'topup',
        amount: pack.credits,
        reference: { type: 'payment', id: String(row.id) },
        idempotencyKey: `stars-payment:${chargeId}`,
        reason: `Telegram Stars: package ${pack.id} (${pack.stars} XTR)`,
        actor,
      },
    );
    await tx.execute(
      sql`UPDATE payments SET credit_entry_id = ${entry.id} WHERE id = ${Number(row.id)}`,
    );
    await payReferralBonus(
      tx,
      { percent: settings.REFERRAL_PERCENT, joinBonus: settings.REFERRAL_JOIN_BONUS },
      {
        paymentId: Number(row.id),
        userId: Number(row.user_id),
        credits: pack.credits,
        chargeId,
        actor,
      },
    );
    return true;
  });
  const row = await findPayment(ctx.db, chargeId);
  if (!row) throw new Error(`payment ${chargeId} not found after recording it`);
  if (!recorded && !sameCharge(row, payment)) {
    throw new AppError(
      'payment_conflict',
      `Charge ${chargeId} is already recorded for another user or amount.`,
    );
  }
  const referral = await referralEarningOf(ctx.db, Number(row.id));
  return { result: { ...toResult(row), referral }, replayed: !recorded };
}

export interface RefundedPayment {
  telegram_id: number;
  telegram_payment_charge_id: string;
  total_amount: number;
  currency: string;
  invoice_payload?: string;
}

export interface RefundResult {
  payment_id: number;
  telegram_payment_charge_id: string;
  status: 'refunded';
  credits: number;
  /** Credits taken back from the balance. */
  clawed_back: number;
  /** Credits that could not be taken back: the user had already spent them. */
  shortfall: number;
  balance: number;
  /** What the refund took back from the payer's referrer (null: the payment earned nobody anything). */
  referral: ReferralClawback | null;
}

/**
 * Records Telegram's refunded_payment: takes the package's credits back once. The balance never
 * goes below zero, so what was already spent is reported as the shortfall.
 */
export async function refundStarsPayment(
  ctx: ServiceContext,
  refund: RefundedPayment,
  actor: string,
): Promise<{ result: RefundResult; replayed: boolean }> {
  const chargeId = refund.telegram_payment_charge_id;
  const replayed = await withTransaction(ctx.db, async (tx) => {
    const row = await findPayment(tx, chargeId);
    if (!row) {
      throw new AppError('payment_not_found', `No Stars payment with charge id ${chargeId}.`);
    }
    if (
      Number(row.telegram_id) !== refund.telegram_id ||
      row.total_amount !== refund.total_amount ||
      refund.currency !== STARS_CURRENCY
    ) {
      throw new AppError(
        'refund_mismatch',
        `Charge ${chargeId} was ${row.total_amount} XTR from telegram_id ${row.telegram_id}.`,
      );
    }
    const userId = await lockUser(tx, { userId: Number(row.user_id) });
    // Under the user's lock: a concurrent refund of the same payment waits here, then sees it done.
    const [open] = await selectRows<{ status: string }>(
      tx,
      sql`SELECT status FROM payments WHERE id = ${Number(row.id)} FOR UPDATE`,
    );
    if (open?.status === 'refunded') return true;
    const clawback = Math.min(row.credits, await balanceOf(tx, userId));
    let refundEntryId: number | null = null;
    if (clawback > 0) {
      const { entry } = await postEntry(
        tx,
        { userId },
        {
          kind: 'payment_refund',
          amount: -clawback,
          reference: { type: 'payment', id: String(row.id) },
          idempotencyKey: `stars-refund:${chargeId}`,
          reason: `Telegram Stars refund of package ${row.package_id}`,
          actor,
        },
      );
      refundEntryId = entry.id;
    }
    await tx.execute(
      sql`UPDATE payments SET status = 'refunded', refunded_at = now(), refund_entry_id = ${refundEntryId},
                              refund_shortfall = ${row.credits - clawback}
          WHERE id = ${Number(row.id)}`,
    );
    await clawBackReferralBonus(tx, { paymentId: Number(row.id), chargeId, actor });
    return false;
  });
  const row = await findPayment(ctx.db, chargeId);
  if (!row) throw new Error(`payment ${chargeId} vanished`);
  return {
    result: {
      payment_id: Number(row.id),
      telegram_payment_charge_id: chargeId,
      status: 'refunded',
      credits: row.credits,
      // No refund entry when nothing could be taken back: 0, not -0.
      clawed_back: row.refund_amount === null ? 0 : -row.refund_amount,
      shortfall: row.refund_shortfall ?? 0,
      balance: await balanceOf(ctx.db, Number(row.user_id)),
      referral: await referralClawbackOf(ctx.db, Number(row.id)),
    },
    replayed,
  };
}
