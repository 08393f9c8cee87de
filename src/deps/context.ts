import type { Config } from '../core/config.ts';
import type { DatabaseHandle } from '../db/client.ts';
import type { PipelineContext, ServiceContext } from '../services/context.ts';
import type { ResultStore } from '../storage/results.ts';

/** What routes reach through `app.deps`: the service context and, for health, the database. */
export interface AppDeps {
  readonly config: Config;
  readonly database: DatabaseHandle;
  readonly services: ServiceContext;
  /** The services plus the image providers, for the generation routes. */
  readonly pipeline: PipelineContext;
  /** Images we store ourselves (served by GET /generations/{id}/images/{position}). */
  readonly store: ResultStore;
  readonly startedAt: Date;
  readonly rateLimitStore: 'memory' | 'redis' | 'off';
}

declare module 'fastify' {
  interface FastifyInstance {
    deps: AppDeps;
  }
}
