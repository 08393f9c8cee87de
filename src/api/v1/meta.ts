import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { apiVersion, appName, appVersion } from '../../core/version.ts';
import { problemResponses } from '../../schemas/problem.ts';
import { checkDatabase } from '../../services/health.ts';
import { currentSettings } from '../../services/settings.ts';

const HealthResponse = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  uptime_seconds: Type.Number(),
  request_id: Type.String(),
  version: Type.String({ examples: [appVersion] }),
  database: Type.Object({
    status: Type.Union([Type.Literal('up'), Type.Literal('down')]),
    kind: Type.String(),
    latency_ms: Type.Number(),
  }),
});

const healthy = {
  status: 'ok',
  uptime_seconds: 86412.3,
  request_id: '5b1e7c90-2f4d-4a8e-9c3b-7d6a0e1f2b84',
  version: appVersion,
  database: { status: 'up', kind: 'postgres', latency_ms: 0.8 },
};

export const metaRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/health',
    {
      // Probes from a load balancer or orchestrator must never be throttled.
      config: { rateLimit: false },
      schema: {
        operationId: 'getHealth',
        summary: 'Liveness and database check; 503 when the database does not answer',
        tags: ['meta'],
        response: {
          200: { ...HealthResponse, examples: [healthy] },
          503: {
            ...HealthResponse,
            description: 'The database does not answer',
            examples: [
              {
                ...healthy,
                status: 'unavailable',
                database: { status: 'down', kind: 'postgres', latency_ms: 2000.4 },
              },
            ],
          },
        },
      },
    },
    async (request, reply) => {
      const database = await checkDatabase(app.deps.database);
      if (database.status === 'down') {
        request.log.error({ error: database.error }, 'health check: database is down');
      }
      const uptime = (Date.now() - app.deps.startedAt.getTime()) / 1000;
      return reply.code(database.status === 'up' ? 200 : 503).send({
        status: database.status === 'up' ? 'ok' : 'unavailable',
        uptime_seconds: Math.round(uptime * 10) / 10,
        request_id: request.id,
        version: appVersion,
        database,
      });
    },
  );

  app.get(
    '/info',
    {
      schema: {
        operationId: 'getInfo',
        summary: 'What this API is and how it is set up',
        tags: ['meta'],
        response: {
          200: Type.Object({
            name: Type.String({ examples: [appName] }),
            version: Type.String({ examples: [appVersion] }),
            api_version: Type.String({ examples: [apiVersion] }),
            database: Type.Union([Type.Literal('embedded'), Type.Literal('postgres')]),
            rate_limit: Type.Object({
              enabled: Type.Boolean(),
              max: Type.Integer(),
              window_seconds: Type.Integer(),
              store: Type.String(),
            }),
            trial_generations: Type.Integer(),
            support_contact: Type.Union([Type.String(), Type.Null()], {
              description:
                'Whom users contact for help (the runtime setting SUPPORT_CONTACT); null: none',
            }),
          }),
          ...problemResponses(429),
        },
      },
    },
    async () => {
      const { config, database, rateLimitStore } = app.deps;
      const settings = await currentSettings(app.deps.services);
      return {
        name: appName,
        version: appVersion,
        api_version: apiVersion,
        database: database.kind,
        rate_limit: {
          enabled: config.rateLimit.enabled,
          max: config.rateLimit.max,
          window_seconds: config.rateLimit.windowSeconds,
          store: rateLimitStore,
        },
        trial_generations: settings.TRIAL_GENERATIONS,
        support_contact: settings.SUPPORT_CONTACT,
      };
    },
  );
};
