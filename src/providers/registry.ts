import type { Config, GenerationProviderMode } from '../core/config.ts';
import { LocalProvider } from './local.ts';
import { ReplicateProvider } from './replicate.ts';
import type { ImageProvider } from './types.ts';
import { WavespeedProvider } from './wavespeed.ts';

/**
 * The providers this deployment can use, by name, and which one serves a catalog model: the
 * model's own (`catalog` mode) or the offline one for every model (`local` mode).
 */
export class ProviderRegistry {
  private readonly byName: ReadonlyMap<string, ImageProvider>;

  constructor(
    providers: readonly ImageProvider[],
    private readonly mode: GenerationProviderMode,
  ) {
    this.byName = new Map(providers.map((provider) => [provider.name, provider]));
  }

  /** The provider name that serves a model whose catalog row names `catalogProvider`. */
  nameFor(catalogProvider: string): string {
    return this.mode === 'local' ? 'local' : catalogProvider;
  }

  get(name: string): ImageProvider | undefined {
    return this.byName.get(name);
  }

  names(): string[] {
    return [...this.byName.keys()];
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
  return new ProviderRegistry(providers, config.generations.providerMode);
}
