import type { Config } from '../core/config.ts';
import type { Database } from '../db/client.ts';
import type { ProviderRegistry } from '../providers/registry.ts';

/** What every service verb receives: the database and the settings. */
export interface ServiceContext {
  readonly db: Database;
  readonly config: Config;
}

/** What the generation verbs need beyond the database and settings: who can make images. */
export interface PipelineContext extends ServiceContext {
  readonly providers: ProviderRegistry;
}
