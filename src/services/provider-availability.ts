import { sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
import { selectRows } from '../db/rows.ts';
import type { PipelineContext } from './context.ts';
import { currentSettings } from './settings.ts';

/**
 * Whether new generations may go to a provider: the one place that decides it (generation
 * acceptance asks here, and so does GET /admin/providers). A provider is unavailable when this
 * deployment has no account for it, or when its last balance read (provider_balances, written by
 * the workers' balance check) is below MIN_PROVIDER_BALANCE — compared at each question, so a
 * change of the setting applies at once.
 */

export type UnavailableReason = 'no_account' | 'low_balance';

export type ProviderAvailability =
  | { available: true }
  | { available: false; reason: UnavailableReason; detail: string };

export async function providerAvailability(
  ctx: PipelineContext,
  providerName: string,
): Promise<ProviderAvailability> {
  if (!ctx.providers.get(providerName)) {
    return {
      available: false,
      reason: 'no_account',
      detail: `this deployment has no account for ${providerName}`,
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

/** Throws 503 provider_unavailable, with the provider and the reason, unless it is available. */
export async function ensureProviderAvailable(
  ctx: PipelineContext,
  modelKey: string,
  providerName: string,
): Promise<void> {
  const availability = await providerAvailability(ctx, providerName);
  if (availability.available) return;
  throw new AppError(
    'provider_unavailable',
    `${modelKey} is served by ${providerName}, which is unavailable: ${availability.detail}.`,
    { provider: providerName, reason: availability.reason },
  );
}
