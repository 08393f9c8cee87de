import { sql } from 'drizzle-orm';
import type { Config } from '../core/config.ts';
import type { Queryable, Transaction } from '../db/client.ts';
import { selectRows } from '../db/rows.ts';
import type { UserLanguage } from '../db/schema/index.ts';
import type { ServiceContext } from './context.ts';
import { balanceOf, credit, lockUser, postEntry } from './ledger.ts';
import { currentSettings } from './settings.ts';
import { userNotFound } from './users.ts';

/**
 * Referrals. A user created with someone's referral code (POST /users/sync) is that user's
 * referee. When a referee's Stars payment is confirmed, the referrer earns REFERRAL_PERCENT of its
 * credits and, on the referee's first paid top-up only, REFERRAL_JOIN_BONUS: `referral_bonus`
 * ledger entries posted in the payment's transaction, each referencing the payment. A refund of
 * the payment takes them back (`referral_clawback`) in the refund's transaction, as far as the
 * referrer's balance allows. What a payment earned or lost is read back from those entries, so a
 * replayed confirm or refund answers the same.
 *
 * Locks: the payment's transaction holds the referee's row, then takes the referrer's. A referrer
 * always existed before its referee (the code is applied at the referee's creation), so these
 * waits always run from newer users to older ones and cannot form a cycle.
 */

/** Who a payment's referral bonus went to, in the words the bot needs to tell them. */
export interface ReferralEarning {
  telegram_id: number;
  /** The referrer's chosen language (null: none chosen; then `language_code`, Telegram's). */
  language: UserLanguage | null;
  language_code: string | null;
  /** Credits this payment earned the referrer (its share, plus the join bonus it triggered). */
  credits: number;
}

export interface ReferralClawback {
  telegram_id: number;
  language: UserLanguage | null;
  language_code: string | null;
  /** Credits taken back from the referrer because the payment was refunded. */
  clawed_back: number;
  /** Credits of the bonus the referrer had already spent, which could not be taken back. */
  shortfall: number;
}

/** The payment whose referral bonus is paid or taken back. */
export interface ReferredPayment {
  paymentId: number;
  /** The payer (the referee), by our id. */
  userId: number;
  credits: number;
  chargeId: string;
  actor: string;
}

const paymentReference = (paymentId: number) => ({ type: 'payment', id: String(paymentId) });

/**
 * Credits the payer's referrer for a payment just recorded, in the payment's transaction (the
 * payer's row is locked by its top-up). Nothing when the payer has no referrer or nothing is due.
 */
export async function payReferralBonus(
  tx: Transaction,
  settings: Config['referrals'],
  payment: ReferredPayment,
): Promise<void> {
  const [referee] = await selectRows<{ referred_by: string | number | null; earlier: number }>(
    tx,
    sql`SELECT u.referred_by,
               (SELECT count(*)::int FROM payments p
                WHERE p.user_id = u.id AND p.id <> ${payment.paymentId}) AS earlier
        FROM users u WHERE u.id = ${payment.userId}`,
  );
  if (referee?.referred_by === null || referee?.referred_by === undefined) return;
  const referrer = { userId: Number(referee.referred_by) };
  const share = Math.floor((payment.credits * settings.percent) / 100);
  if (share > 0) {
    await credit(tx, referrer, {
      kind: 'referral_bonus',
      amount: share,
      reference: paymentReference(payment.paymentId),
      idempotencyKey: `referral-bonus:${payment.chargeId}`,
      reason: `Referral: ${settings.percent}% of a referred user's top-up`,
      actor: payment.actor,
      metadata: { part: 'share', referee_user_id: payment.userId },
    });
  }
  // The first paid top-up of the referee: no payment of it before this one (the referee's row is
  // locked, so a concurrent first payment has committed or waits). The key is the referee's, so
  // the join bonus is paid once whatever happens to its payments later.
  if (settings.joinBonus > 0 && referee.earlier === 0) {
    await credit(tx, referrer, {
      kind: 'referral_bonus',
      amount: settings.joinBonus,
      reference: paymentReference(payment.paymentId),
      idempotencyKey: `referral-join:${payment.userId}`,
      reason: "Referral: a referred user's first top-up",
      actor: payment.actor,
      metadata: { part: 'join', referee_user_id: payment.userId },
    });
  }
}

/**
 * Takes back from the referrer what this payment earned it, in the refund's transaction, as far as
 * the referrer's balance allows (never below zero), once per refund.
 */
export async function clawBackReferralBonus(
  tx: Transaction,
  payment: Omit<ReferredPayment, 'credits' | 'userId'>,
): Promise<void> {
  const [earned] = await selectRows<{ user_id: string | number; credits: string | number }>(
    tx,
    sql`SELECT l.user_id, sum(l.amount) AS credits FROM ledger_entries l
        WHERE l.reference_type = 'payment' AND l.reference_id = ${String(payment.paymentId)}
          AND l.kind = 'referral_bonus'
        GROUP BY l.user_id`,
  );
  if (!earned) return;
  const referrerId = await lockUser(tx, { userId: Number(earned.user_id) });
  const takeBack = Math.min(Number(earned.credits), await balanceOf(tx, referrerId));
  if (takeBack <= 0) return;
  await postEntry(
    tx,
    { userId: referrerId },
    {
      kind: 'referral_clawback',
      amount: -takeBack,
      reference: paymentReference(payment.paymentId),
      idempotencyKey: `referral-clawback:${payment.chargeId}`,
      reason: "Referral: a referred user's top-up was refunded",
      actor: payment.actor,
    },
  );
}

interface PaymentReferralRow {
  telegram_id: string | number;
  language: UserLanguage | null;
  language_code: string | null;
  earned: string | number;
  clawed_back: string | number;
}

async function referralEntriesOf(
  db: Queryable,
  paymentId: number,
): Promise<PaymentReferralRow | null> {
  const [row] = await selectRows<PaymentReferralRow>(
    db,
    sql`SELECT r.telegram_id, r.language, r.language_code,
               COALESCE(sum(l.amount) FILTER (WHERE l.kind = 'referral_bonus'), 0) AS earned,
               COALESCE(-sum(l.amount) FILTER (WHERE l.kind = 'referral_clawback'), 0) AS clawed_back
        FROM ledger_entries l JOIN users r ON r.id = l.user_id
        WHERE l.reference_type = 'payment' AND l.reference_id = ${String(paymentId)}
          AND l.kind IN ('referral_bonus', 'referral_clawback')
        GROUP BY r.telegram_id, r.language, r.language_code`,
  );
  return row ?? null;
}

/** What a payment earned its payer's referrer: null when it earned nobody anything. */
export async function referralEarningOf(
  db: Queryable,
  paymentId: number,
): Promise<ReferralEarning | null> {
  const row = await referralEntriesOf(db, paymentId);
  if (!row || Number(row.earned) <= 0) return null;
  return {
    telegram_id: Number(row.telegram_id),
    language: row.language,
    language_code: row.language_code,
    credits: Number(row.earned),
  };
}

/** What the refund of a payment took back from the referrer: null when it had earned nothing. */
export async function referralClawbackOf(
  db: Queryable,
  paymentId: number,
): Promise<ReferralClawback | null> {
  const row = await referralEntriesOf(db, paymentId);
  if (!row || Number(row.earned) <= 0) return null;
  const clawedBack = Number(row.clawed_back);
  return {
    telegram_id: Number(row.telegram_id),
    language: row.language,
    language_code: row.language_code,
    clawed_back: clawedBack,
    shortfall: Number(row.earned) - clawedBack,
  };
}

export interface ReferralSummary {
  telegram_id: number;
  /** The user's referral code, for its invite link. */
  code: string;
  /** REFERRAL_PERCENT: the share of a referred user's paid credits the user earns. */
  percent: number;
  /** REFERRAL_JOIN_BONUS: credits earned once per referred user, on its first paid top-up. */
  join_bonus: number;
  /** Users created with the user's code. */
  joined: number;
  /** Referral bonuses earned, less what refunds took back. */
  earned_credits: number;
  /** t.me/<bot>?start=r_<code>; null when the bot's username is not known. */
  link: string | null;
}

/**
 * The link that invites into the bot with a referral code: /start r_<code>, which the bot reads
 * when it creates the user (create-bot.ts) and writes the same way in /referral (flows/referral.ts,
 * which knows its own username and never loads a service).
 */
export function referralLink(botUsername: string, code: string): string {
  return `https://t.me/${botUsername}?start=r_${code}`;
}

/** The summary, with the invitation link when the bot's username is known. */
export async function getReferralSummary(
  ctx: ServiceContext,
  telegramId: number,
  botUsername: string | null = null,
): Promise<ReferralSummary> {
  const [row] = await selectRows<{ code: string; joined: number; earned: string | number }>(
    ctx.db,
    sql`SELECT u.referral_code AS code,
               (SELECT count(*)::int FROM users j WHERE j.referred_by = u.id) AS joined,
               (SELECT COALESCE(sum(l.amount), 0) FROM ledger_entries l
                WHERE l.user_id = u.id AND l.kind IN ('referral_bonus', 'referral_clawback')) AS earned
        FROM users u WHERE u.telegram_id = ${telegramId}`,
  );
  if (!row) throw userNotFound(telegramId);
  const settings = await currentSettings(ctx);
  return {
    telegram_id: telegramId,
    code: row.code,
    percent: settings.REFERRAL_PERCENT,
    join_bonus: settings.REFERRAL_JOIN_BONUS,
    joined: row.joined,
    earned_credits: Number(row.earned),
    link: botUsername === null ? null : referralLink(botUsername, row.code),
  };
}
