import { sql } from 'drizzle-orm';
import { isoTimeText, selectRows } from '../db/rows.ts';
import type { ProviderBalanceStatus } from '../db/schema/index.ts';
import type { PipelineContext } from './context.ts';
import { notifyOperators } from './operator-notices.ts';
import { providerAvailability } from './provider-availability.ts';
import { currentSettings } from './settings.ts';

/**
 * The providers' account balances, read by the workers' housekeeping (at most once every
 * CHECK_EVERY_SECONDS between all processes) and kept in provider_balances for the guard
 * (provider-availability.ts) and the operators (GET /admin/providers). A provider without a
 * balance API (Replicate) is `unknown`. When a balance goes below MIN_PROVIDER_BALANCE an episode
 * starts (`low_since`) and the operators' chat is told once; when it is back at or above the
 * minimum the episode ends (`recovered_from`) and they are told that once too.
 */

/** Housekeeping runs every minute in every worker: a little less, so each minute has a check. */
export const CHECK_EVERY_SECONDS = 50;
/** The longest a balance call may take. */
const CHECK_TIMEOUT_MS = 15_000;

export interface ProviderBalanceCheck {
  provider: string;
  status: ProviderBalanceStatus;
  balance: number | null;
  error: string | null;
}

interface CheckedRow {
  low_since: string | null;
  recovered_from: string | null;
}

/**
 * Checks the balance of every provider of this process whose last check is at least
 * `everySeconds` old (claimed first, so processes do not check the same one at once), and tells
 * the operators of an episode's start or end. Answers what it checked.
 */
export async function checkProviderBalances(
  ctx: PipelineContext,
  options: { everySeconds?: number } = {},
): Promise<ProviderBalanceCheck[]> {
  const everySeconds = options.everySeconds ?? CHECK_EVERY_SECONDS;
  const checks: ProviderBalanceCheck[] = [];
  for (const name of ctx.providers.names()) {
    const provider = ctx.providers.get(name);
    if (!provider) continue;
    const claimed = await selectRows<{ provider: string }>(
      ctx.db,
      sql`INSERT INTO provider_balances AS b (provider, checked_at) VALUES (${name}, now())
          ON CONFLICT (provider) DO UPDATE SET checked_at = now()
            WHERE b.checked_at <= now() - make_interval(secs => ${everySeconds})
          RETURNING provider`,
    );
    if (claimed.length === 0) continue;
    if (!provider.balance) {
      await ctx.db.execute(
        sql`UPDATE provider_balances
            SET status = 'unknown', balance = NULL, currency = NULL, balance_at = NULL,
                error = NULL, low_since = NULL, recovered_from = NULL
            WHERE provider = ${name}`,
      );
      checks.push({ provider: name, status: 'unknown', balance: null, error: null });
      continue;
    }
    let read: { amount: number; currency: string };
    try {
      read = await provider.balance(AbortSignal.timeout(CHECK_TIMEOUT_MS));
    } catch (error) {
      // The last balance read, and the guard's state, stay as they were.
      const message = (error as Error).message.slice(0, 500);
      await ctx.db.execute(
        sql`UPDATE provider_balances SET status = 'error', error = ${message}
            WHERE provider = ${name}`,
      );
      checks.push({ provider: name, status: 'error', balance: null, error: message });
      continue;
    }
    const minimum = (await currentSettings(ctx)).MIN_PROVIDER_BALANCE;
    const low = minimum > 0 && read.amount < minimum;
    // SET reads the row as it was: an episode starts when it is low and was not, ends when it
    // was and is not.
    const [row] = await selectRows<CheckedRow>(
      ctx.db,
      sql`UPDATE provider_balances
          SET status = ${low ? 'low' : 'ok'}, balance = ${read.amount}, currency = ${read.currency},
              balance_at = now(), error = NULL,
              low_since = CASE WHEN ${low} THEN coalesce(low_since, now()) END,
              recovered_from = CASE WHEN NOT ${low} AND low_since IS NOT NULL THEN low_since
                                    ELSE recovered_from END
          WHERE provider = ${name}
          RETURNING ${sql.raw(isoTimeText('low_since'))} AS low_since,
                    ${sql.raw(isoTimeText('recovered_from'))} AS recovered_from`,
    );
    checks.push({ provider: name, status: low ? 'low' : 'ok', balance: read.amount, error: null });
    if (!row) continue;
    const variables = {
      provider: name,
      balance: `${read.amount} ${read.currency}`,
      minimum: `${minimum} ${read.currency}`,
    };
    // Tried on every check while it holds: the notice's key makes it go out once.
    if (row.low_since !== null) {
      await notifyOperators(ctx, `provider-balance-low:${name}:${row.low_since}`, (t) =>
        t('notice-provider-balance-low', variables),
      );
    } else if (row.recovered_from !== null) {
      const notice = await notifyOperators(
        ctx,
        `provider-balance-recovered:${name}:${row.recovered_from}`,
        (t) => t('notice-provider-balance-recovered', variables),
      );
      if (notice.outcome !== 'failed' || !notice.retryable) {
        await ctx.db.execute(
          sql`UPDATE provider_balances SET recovered_from = NULL
              WHERE provider = ${name}
                AND date_trunc('milliseconds', recovered_from) = ${row.recovered_from}::timestamptz`,
        );
      }
    }
  }
  return checks;
}

export interface ProviderStatusView {
  provider: string;
  status: ProviderBalanceStatus;
  balance: number | null;
  currency: string | null;
  balance_at: string | null;
  checked_at: string | null;
  error: string | null;
  low_since: string | null;
  available: boolean;
  unavailable_reason: string | null;
}

interface StatusRow {
  provider: string;
  status: ProviderBalanceStatus;
  balance: number | null;
  currency: string | null;
  balance_at: string | null;
  checked_at: string | null;
  error: string | null;
  low_since: string | null;
}

/**
 * Every provider this deployment has an account for, with its last balance check and whether new
 * generations may go to it now (a provider never checked yet is `unknown`).
 */
export async function listProviderStatus(ctx: PipelineContext): Promise<ProviderStatusView[]> {
  const names = ctx.providers.names();
  const rows = await selectRows<StatusRow>(
    ctx.db,
    sql`SELECT provider, status, balance, currency,
               ${sql.raw(isoTimeText('balance_at'))} AS balance_at,
               ${sql.raw(isoTimeText('checked_at'))} AS checked_at,
               error, ${sql.raw(isoTimeText('low_since'))} AS low_since
        FROM provider_balances`,
  );
  const byName = new Map(rows.map((row) => [row.provider, row]));
  const views: ProviderStatusView[] = [];
  for (const name of [...names].sort()) {
    const row = byName.get(name);
    const availability = await providerAvailability(ctx, name);
    views.push({
      provider: name,
      status: row?.status ?? 'unknown',
      balance: row?.balance ?? null,
      currency: row?.currency ?? null,
      balance_at: row?.balance_at ?? null,
      checked_at: row?.checked_at ?? null,
      error: row?.error ?? null,
      low_since: row?.low_since ?? null,
      available: availability.available,
      unavailable_reason: availability.available ? null : availability.detail,
    });
  }
  return views;
}
