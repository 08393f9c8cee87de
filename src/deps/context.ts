import type { Config } from '../core/config.ts';
import type { DatabaseHandle } from '../db/client.ts';
import type { ServiceContext } from '../services/context.ts';

/** What routes reach through `app.deps`: the service context and, for health, the database. */
export interface AppDeps {
  readonly config: Config;
  readonly database: DatabaseHandle;
  readonly services: ServiceContext;
  readonly startedAt: Date;
  readonly rateLimitStore: 'memory' | 'redis' | 'off';
}

declare module 'fastify' {
  interface FastifyInstance {
    deps: AppDeps;
  }
}
