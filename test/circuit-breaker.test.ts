import { beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { CircuitBreaker } from '../src/providers/circuit-breaker.ts';
import { LocalProvider } from '../src/providers/local.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import type { ModelRoute } from '../src/services/catalog.ts';
import { availabilityOf, chooseRoute, modelAvailability } from '../src/services/model-routes.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { testConfig } from './helpers/app.ts';
import { sharedDatabase } from './helpers/database.ts';

/** A clock the test moves. */
function clock() {
  let now = 1_000_000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

const options = { failures: 3, windowMs: 60_000, openMs: 30_000 };

describe('circuit breaker', () => {
  it('opens after `failures` failures in a row, not after fewer or scattered ones', () => {
    const time = clock();
    const breaker = new CircuitBreaker(options, time.now);
    breaker.recordFailure();
    breaker.recordFailure();
    breaker.recordSuccess();
    breaker.recordFailure();
    breaker.recordFailure();
    expect(breaker.state()).toBe('closed');
    // Failures more than a window apart do not add up.
    time.advance(61_000);
    breaker.recordFailure();
    expect(breaker.state()).toBe('closed');
    breaker.recordFailure();
    breaker.recordFailure();
    expect(breaker.state()).toBe('open');
    expect(breaker.allowsNewWork()).toBe(false);
  });

  it('lets one trial through after openMs: its success closes, its failure opens again', () => {
    const time = clock();
    const breaker = new CircuitBreaker(options, time.now);
    for (let i = 0; i < 3; i++) breaker.recordFailure();
    time.advance(29_999);
    expect(breaker.allowsNewWork()).toBe(false);
    time.advance(1);
    expect(breaker.state()).toBe('half_open');
    expect(breaker.isOpen()).toBe(false);
    expect(breaker.allowsNewWork()).toBe(true);
    // One trial at a time.
    expect(breaker.allowsNewWork()).toBe(false);
    breaker.recordFailure();
    expect(breaker.state()).toBe('open');
    time.advance(30_000);
    expect(breaker.allowsNewWork()).toBe(true);
    breaker.recordSuccess();
    expect(breaker.state()).toBe('closed');
    expect(breaker.allowsNewWork()).toBe(true);
    expect(breaker.allowsNewWork()).toBe(true);
  });

  it('gives the trial again when the one who took it never reported', () => {
    const time = clock();
    const breaker = new CircuitBreaker(options, time.now);
    for (let i = 0; i < 3; i++) breaker.recordFailure();
    time.advance(30_000);
    expect(breaker.allowsNewWork()).toBe(true);
    time.advance(29_000);
    expect(breaker.allowsNewWork()).toBe(false);
    time.advance(1_000);
    expect(breaker.allowsNewWork()).toBe(true);
  });
});

function route(provider: string, priority: number, maxReferences = 4): ModelRoute {
  return {
    priority,
    provider,
    provider_model: `${provider}/model`,
    inputs: {},
    provider_edit_model: null,
    edit_inputs: {},
    reference_field: 'images',
    reference_arity: 'array',
    max_references: maxReferences,
  };
}

describe('choosing a route', () => {
  const primary = new ScriptedProvider();
  const secondary = new ScriptedProvider();
  let database: DatabaseHandle;
  beforeAll(async () => {
    database = await sharedDatabase();
  });
  const context = (registry: ProviderRegistry) => ({
    db: database.db,
    config: testConfig(),
    providers: registry,
  });

  it('takes the best configured, healthy route that takes the references', async () => {
    const ctx = context(new ProviderRegistry([primary, secondary], 'catalog', options));
    const routes = [route(primary.name, 1, 1), route(secondary.name, 2, 4)];
    const now = () => availabilityOf(ctx);
    expect(await chooseRoute(ctx, routes, 0)).toMatchObject({ providerName: primary.name });
    // Three references: only the second route takes that many.
    expect(await chooseRoute(ctx, routes, 3)).toMatchObject({ providerName: secondary.name });
    for (let i = 0; i < 3; i++) ctx.providers.breaker(primary.name).recordFailure();
    expect(await chooseRoute(ctx, routes, 0)).toMatchObject({ providerName: secondary.name });
    expect(await modelAvailability(ctx, routes, now())).toEqual({
      available: true,
      unavailable_reason: null,
    });
    for (let i = 0; i < 3; i++) ctx.providers.breaker(secondary.name).recordFailure();
    expect(await chooseRoute(ctx, routes, 0)).toMatchObject({
      unavailable: 'failing',
      provider: primary.name,
    });
    expect(await modelAvailability(ctx, routes, now())).toEqual({
      available: false,
      unavailable_reason: 'failing',
    });
  });

  it('says a model nobody here can serve has no account; local mode serves every route', async () => {
    const routes = [route('wavespeed', 1), route('replicate', 2)];
    const catalog = context(new ProviderRegistry([primary], 'catalog', options));
    expect(await modelAvailability(catalog, routes, availabilityOf(catalog))).toEqual({
      available: false,
      unavailable_reason: 'no_account',
    });
    const local = context(new ProviderRegistry([new LocalProvider()], 'local', options));
    expect(await chooseRoute(local, routes, 0)).toMatchObject({
      providerName: 'local',
      route: { provider: 'wavespeed' },
    });
  });
});
