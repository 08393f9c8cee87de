import type { Config, GenerationProviderMode } from '../core/config.ts';
import { type BreakerOptions, CircuitBreaker } from './circuit-breaker.ts';
import { LocalProvider } from './local.ts';
import { ReplicateProvider } from './replicate.ts';
import type { ImageProvider } from './types.ts';
import { WavespeedProvider } from './wavespeed.ts';

/** Breakers open after this window without a success is over, failures further apart reset. */
const BREAKER_WINDOW_MS = 60_000;

/**
 * The providers this deployment can use, by name, which one serves a catalog route (the route's
 * own in `catalog` mode, the offline one for every route in `local` mode), and how each is doing:
 * a circuit breaker per provider, fed by the generation jobs' calls.
 */
export class ProviderRegistry {
  private readonly byName: ReadonlyMap<string, ImageProvider>;
  private readonly breakers = new Map<string, CircuitBreaker>();

  constructor(
    providers: readonly ImageProvider[],
    private readonly mode: GenerationProviderMode,
    private readonly breakerOptions: BreakerOptions = {
      failures: 5,
      windowMs: BREAKER_WINDOW_MS,
      openMs: 30_000,
    },
    private readonly now: () => number = Date.now,
  ) {
    this.byName = new Map(providers.map((provider) => [provider.name, provider]));
  }

  /** The provider name that serves a route whose catalog row names `catalogProvider`. */
  nameFor(catalogProvider: string): string {
    return this.mode === 'local' ? 'local' : catalogProvider;
  }

  get(name: string): ImageProvider | undefined {
    return this.byName.get(name);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  breaker(name: string): CircuitBreaker {
    let breaker = this.breakers.get(name);
    if (!breaker) {
      breaker = new CircuitBreaker(this.breakerOptions, this.now);
      this.breakers.set(name, breaker);
    }
    return breaker;
  }
}

/** Every provider the configuration enables; the offline one always. */
export function providersFromConfig(config: Config): ProviderRegistry {
  const providers: ImageProvider[] = [new LocalProvider()];
  const { wavespeed, replicate } = config.providers;
  if (wavespeed) {
    providers.push(
      new WavespeedProvider({
        apiKey: wavespeed.apiKey,
        baseUrl: wavespeed.baseUrl,
        webhookSecret: wavespeed.webhookSecret,
      }),
    );
  }
  if (replicate) {
    providers.push(
      new ReplicateProvider({
        apiToken: replicate.apiKey,
        baseUrl: replicate.baseUrl,
        webhookSecret: replicate.webhookSecret,
      }),
    );
  }
  return new ProviderRegistry(providers, config.generations.providerMode, {
    failures: config.providers.breakerFailures,
    windowMs: BREAKER_WINDOW_MS,
    openMs: config.providers.breakerOpenSeconds * 1000,
  });
}
