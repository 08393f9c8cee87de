import type { RequestShape } from '../providers/request-shape.ts';
import type { ModelRoute } from './catalog.ts';
import type { PipelineContext } from './context.ts';
import {
  type ProviderAvailability,
  providerAvailability,
  type UnavailableReason,
} from './provider-availability.ts';

/**
 * Which of a model's routes takes a generation: the best (lowest priority) one whose provider is
 * available (provider-availability.ts: an account, not failing, its balance above the minimum)
 * and that takes as many references as the request has.
 */

export interface ChosenRoute {
  route: ModelRoute;
  /** The provider that runs it (the offline one for every route in `local` mode). */
  providerName: string;
}

export interface NoRoute {
  unavailable: UnavailableReason;
  /** The provider of the best route that takes the references, and why it cannot. */
  provider: string;
  detail: string;
}

/** Asks providerAvailability once per provider, however many routes name it. */
export type AvailabilityOf = (providerName: string) => Promise<ProviderAvailability>;

export function availabilityOf(
  ctx: PipelineContext,
  options: { takeTrial?: boolean } = {},
): AvailabilityOf {
  const known = new Map<string, Promise<ProviderAvailability>>();
  return (name) => {
    let answer = known.get(name);
    if (!answer) {
      answer = providerAvailability(ctx, name, options);
      known.set(name, answer);
    }
    return answer;
  };
}

/**
 * The best usable route. `takeTrial`: a caller about to submit may be given a half-open breaker's
 * one trial call. `excluding`: a provider not to consider (the one a job is leaving). When none is
 * usable, why the best route that takes the references cannot (a failing or short provider says
 * more than one we have no account for).
 */
export async function chooseRoute(
  ctx: PipelineContext,
  routes: readonly ModelRoute[],
  referenceCount: number,
  options: { takeTrial?: boolean; excluding?: string; availability?: AvailabilityOf } = {},
): Promise<ChosenRoute | NoRoute> {
  const availability = options.availability ?? availabilityOf(ctx, options);
  let why: NoRoute | null = null;
  for (const route of routes) {
    if (route.max_references < referenceCount) continue;
    const providerName = ctx.providers.nameFor(route.provider);
    if (providerName === options.excluding) continue;
    const answer = await availability(providerName);
    if (answer.available) return { route, providerName };
    if (why === null || (why.unavailable === 'no_account' && answer.reason !== 'no_account')) {
      why = { unavailable: answer.reason, provider: providerName, detail: answer.detail };
    }
  }
  return (
    why ?? {
      unavailable: 'no_account',
      provider: options.excluding ?? '(none)',
      detail: 'no other provider serves this model',
    }
  );
}

/** The route a job was given (by provider name), or null if the catalog no longer has it. */
export function routeServedBy(
  ctx: PipelineContext,
  routes: readonly ModelRoute[],
  providerName: string,
): ModelRoute | null {
  return routes.find((route) => ctx.providers.nameFor(route.provider) === providerName) ?? null;
}

/** Whether a model can be generated now, and if not, why (for GET /models). */
export async function modelAvailability(
  ctx: PipelineContext,
  routes: readonly ModelRoute[],
  availability: AvailabilityOf,
): Promise<{ available: boolean; unavailable_reason: UnavailableReason | null }> {
  const choice = await chooseRoute(ctx, routes, 0, { availability });
  return 'unavailable' in choice
    ? { available: false, unavailable_reason: choice.unavailable }
    : { available: true, unavailable_reason: null };
}

/** The provider model and request shape a route uses, with references (an edit) or without. */
export function routeRequest(
  route: ModelRoute,
  withReferences: boolean,
): { model: string; shape: RequestShape } {
  const edit = withReferences && route.provider_edit_model !== null;
  return {
    model: edit ? (route.provider_edit_model as string) : route.provider_model,
    shape: {
      referenceField: route.reference_field,
      referenceArity: route.reference_arity,
      maxReferences: route.max_references,
      inputs: edit ? route.edit_inputs : route.inputs,
    },
  };
}
