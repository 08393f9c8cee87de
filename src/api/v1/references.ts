import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { problemResponses } from '../../schemas/problem.ts';
import { servedReference } from '../../services/provider-references.ts';

/** Reference images we serve to providers (services/provider-references.ts). */
export const referenceRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/references/:name',
    {
      schema: {
        operationId: 'getProviderReference',
        summary: 'A reference image served to a provider, for REFERENCE_URL_MINUTES',
        description:
          'Public: its name is 256 random bits, made for one generation, and it answers 404 once its time is up.',
        tags: ['generations'],
        params: Type.Object({
          name: Type.String({ pattern: '^[A-Za-z0-9_-]{43}\\.(png|jpg|webp|gif)$' }),
        }),
        response: {
          200: {
            description: 'The image, with its type',
            content: {
              'image/*': { schema: Type.Unsafe<unknown>({ type: 'string', format: 'binary' }) },
            },
          },
          ...problemResponses(404, 422, 429),
        },
      },
    },
    async (request, reply) => {
      const object = await servedReference(app.deps.config, app.deps.store, request.params.name);
      return reply
        .type(object.contentType)
        .header('content-length', object.size)
        .header('cache-control', 'private, no-store')
        .send(object.body);
    },
  );
};
