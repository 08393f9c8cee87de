import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { apiVersion, appName, appVersion } from '../core/version.ts';
import { problemResponses } from '../schemas/problem.ts';

/** What GET / answers: the same on every call. */
const serviceIndex = {
  name: appName,
  version: appVersion,
  api_version: apiVersion,
  links: {
    health: '/api/v1/health',
    info: '/api/v1/info',
    models: '/api/v1/models',
    docs: '/docs',
    openapi: '/docs/json',
  },
};

export const rootRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/',
    {
      schema: {
        operationId: 'getServiceIndex',
        summary: 'What this service is, and where to go next',
        tags: ['meta'],
        response: {
          200: Type.Object(
            {
              name: Type.String(),
              version: Type.String(),
              api_version: Type.String(),
              links: Type.Object({
                health: Type.String(),
                info: Type.String(),
                models: Type.String(),
                docs: Type.String(),
                openapi: Type.String(),
              }),
            },
            { examples: [serviceIndex] },
          ),
          ...problemResponses(429),
        },
      },
    },
    async () => serviceIndex,
  );
};
