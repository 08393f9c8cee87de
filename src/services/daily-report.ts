import type { AdminStats } from './admin-stats.ts';
import { adminStats, statsRange } from './admin-stats.ts';
import type { ServiceContext } from './context.ts';
import { type NoticeOutcome, type NoticeText, notifyOperators } from './operator-notices.ts';

/**
 * The daily report to the operators' chat: the day before's numbers (GET /admin/stats of that UTC
 * day), from DAILY_REPORT_HOUR (UTC) on. Every worker's housekeeping asks each minute; the notice
 * key `daily-report:<day>` makes it go out once a day between them all, and a day whose hour was
 * missed (every worker down) is still reported, late, that day.
 */

const DAY_MS = 86_400_000;

/** Sends the report of the day before `now` if it is due and not sent; null when it is not due. */
export async function sendDailyReportIfDue(
  ctx: ServiceContext,
  now: Date = new Date(),
): Promise<NoticeOutcome | null> {
  const { adminChatId, dailyReportHour } = ctx.config.operators;
  if (adminChatId === null || now.getUTCHours() < dailyReportHour) return null;
  const day = new Date(Math.floor(now.getTime() / DAY_MS) * DAY_MS - DAY_MS)
    .toISOString()
    .slice(0, 10);
  return notifyOperators(ctx, `daily-report:${day}`, async (t) =>
    reportText(t, await adminStats(ctx.db, statsRange({ from: day, to: day }))),
  );
}

function reportText(t: NoticeText, stats: AdminStats): string {
  const { users, generations, money, referrals } = stats;
  const seconds = (value: number | null) =>
    value === null ? t('notice-none') : t('notice-seconds', { seconds: round(value) });
  return t('notice-daily-report', {
    date: stats.range.from,
    users_new: users.new,
    users_active: users.active,
    users_total: users.total,
    generations: generations.total,
    succeeded: generations.by_status.succeeded ?? 0,
    failed: generations.by_status.failed ?? 0,
    success_rate:
      generations.success_rate === null
        ? t('notice-none')
        : `${round(generations.success_rate * 100)}%`,
    median: seconds(generations.seconds_p50),
    ninety_fifth: seconds(generations.seconds_p95),
    stars: money.stars_received,
    payments: money.payments,
    credits_sold: money.credits_sold,
    credits_spent: money.credits_spent,
    credits_refunded: money.credits_refunded,
    credits_given_free: money.credits_given_free,
    free_generations: money.free_generations_used,
    referred_users: referrals.new_referred_users,
    referral_credits: referrals.bonus_credits,
  });
}

/** One decimal at most: 12.3, 40. */
const round = (value: number) => Math.round(value * 10) / 10;
