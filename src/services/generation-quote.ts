import { sql } from 'drizzle-orm';
import type { Queryable } from '../db/client.ts';
import { selectRows } from '../db/rows.ts';
import { userBanned } from './bans.ts';
import { type CatalogModel, findActiveModel, resolvePrice } from './catalog.ts';
import type { ServiceContext } from './context.ts';
import {
  checkAgainstModel,
  type FieldProblem,
  type GenerationInput,
  invalidGeneration,
} from './generation-input.ts';
import type { PaymentMethod } from './generation-views.ts';
import { currentSettings } from './settings.ts';
import { type TrialSummary, trialSummary, userNotFound } from './users.ts';

export interface Quote {
  model: string;
  parameters: Record<string, string>;
  price_credits: number;
  balance: number;
  trial: TrialSummary;
  /** How the generation would be paid now; null when neither a free generation nor the balance covers it. */
  payment_method: PaymentMethod | null;
}

/** What a quote needs of the user: free generations used and the balance; a banned user gets none. */
async function userFacts(
  db: Queryable,
  telegramId: number,
): Promise<{ trials_used: number; balance: string | number }> {
  const [row] = await selectRows<{
    trials_used: number;
    balance: string | number;
    banned: boolean;
    ban_reason: string | null;
  }>(
    db,
    sql`SELECT (SELECT count(*)::int FROM trial_uses t
                WHERE t.user_id = u.id AND t.returned_at IS NULL) AS trials_used,
               COALESCE((SELECT balance_after FROM ledger_entries l WHERE l.user_id = u.id
                         ORDER BY l.user_entry_no DESC LIMIT 1), 0) AS balance,
               u.banned_at IS NOT NULL AS banned, u.ban_reason
        FROM users u WHERE u.telegram_id = ${telegramId}`,
  );
  if (!row) throw userNotFound(telegramId);
  if (row.banned) throw userBanned(telegramId, row.ban_reason);
  return row;
}

export const unknownModel = (key: string): FieldProblem => ({
  field: 'body.model',
  message: `"${key}" is not an active model (GET /api/v1/models lists them)`,
});

/** The price for these parameters, with what is wrong with the request for this model. */
export function priceFor(
  model: CatalogModel,
  input: Pick<GenerationInput, 'prompt' | 'parameters' | 'references'>,
  options: { parametersOnly?: boolean } = {},
): {
  parameters: Record<string, string>;
  price: { id: number; credits: number } | null;
  problems: FieldProblem[];
} {
  const { parameters, problems } = checkAgainstModel(model, input, options);
  const price = resolvePrice(model.prices, parameters);
  if (!price && problems.length === 0) {
    problems.push({
      field: 'body.parameters',
      message: `${model.key} has no price for these parameters`,
    });
  }
  return { parameters, price, problems };
}

export async function quoteGeneration(
  ctx: ServiceContext,
  input: Pick<GenerationInput, 'telegramId' | 'model' | 'parameters'>,
): Promise<Quote> {
  const facts = await userFacts(ctx.db, input.telegramId);
  const model = await findActiveModel(ctx, input.model);
  if (!model) throw invalidGeneration([unknownModel(input.model)]);
  const { parameters, price, problems } = priceFor(
    model,
    { prompt: '', parameters: input.parameters, references: [] },
    { parametersOnly: true },
  );
  if (problems.length > 0 || !price) throw invalidGeneration(problems);
  const limit = (await currentSettings(ctx)).TRIAL_GENERATIONS;
  const balance = Number(facts.balance);
  const trialsLeft = facts.trials_used < limit;
  return {
    model: model.key,
    parameters,
    price_credits: price.credits,
    balance,
    trial: trialSummary(facts.trials_used, limit),
    payment_method: trialsLeft ? 'trial' : balance >= price.credits ? 'credits' : null,
  };
}
