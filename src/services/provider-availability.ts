import { sql } from 'drizzle-orm';
import { selectRows } from '../db/rows.ts';
import type { PipelineContext } from './context.ts';
import { currentSettings } from './settings.ts';

/**
 * Whether new generations may go to a provider: the one place that decides it (route choice at
 * acceptance and failover, GET /models and GET /admin/providers ask here). A provider is
 * unavailable when this deployment has no account for it, when its circuit breaker is open (it
 * keeps failing: providers/circuit-breaker.ts), or when its last balance read
 * (provider_balances, written by the workers' balance check) is below MIN_PROVIDER_BALANCE —
 * compared at each question, so a change of the setting applies at once.
 */

export type UnavailableReason = 'no_account' | 'failing' | 'low_balance';

export type ProviderAvailability =
  | { available: true }
  | { available: false; reason: UnavailableReason; detail: string };

/**
 * `takeTrial`: a caller about to send a job may be given a half-open breaker's one trial call;
 * listings only look.
 */
export async function providerAvailability(
  ctx: PipelineContext,
  providerName: string,
  options: { takeTrial?: boolean } = {},
): Promise<ProviderAvailability> {
  if (!ctx.providers.get(providerName)) {
    return {
      available: false,
      reason: 'no_account',
      detail: `this deployment has no account for ${providerName}`,
    };
  }
  const breaker = ctx.providers.breaker(providerName);
  if (!(options.takeTrial ? breaker.allowsNewWork() : !breaker.isOpen())) {
    return {
      available: false,
      reason: 'failing',
      detail: `${providerName} keeps failing (its circuit breaker is open)`,
    };
  }
  const minimum = (await currentSettings(ctx)).MIN_PROVIDER_BALANCE;
  if (minimum > 0) {
    const [low] = await selectRows<{ balance: number; currency: string | null }>(
      ctx.db,
      sql`SELECT balance, currency FROM provider_balances
          WHERE provider = ${providerName} AND balance < ${minimum}`,
    );
    if (low) {
      return {
        available: false,
        reason: 'low_balance',
        detail: `${providerName}'s balance (${low.balance}${low.currency ? ` ${low.currency}` : ''}) is below the minimum of ${minimum}`,
      };
    }
  }
  return { available: true };
}
