import type { Config } from '../core/config.ts';
import type { Database } from '../db/client.ts';

/** What every service verb receives: the database and the settings. */
export interface ServiceContext {
  readonly db: Database;
  readonly config: Config;
}
