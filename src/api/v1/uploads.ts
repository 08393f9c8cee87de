import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AppError } from '../../core/errors.ts';
import { TelegramIdParams } from '../../schemas/common.ts';
import { problemResponses } from '../../schemas/problem.ts';
import { storeUpload } from '../../services/uploads.ts';

/** The body types an upload may be sent as; what it is, is judged by its bytes. */
export const UPLOAD_CONTENT_TYPES = [
  'image/png',
  'image/jpeg',
  'image/webp',
  'image/gif',
  'application/octet-stream',
];

/** Reference images users upload (the Mini App's composer), used by their own generations. */
export const uploadRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const maxBytes = app.deps.config.storage.uploadMaxBytes;
  // Encapsulated in this plugin: every other route still reads JSON only. A JSON body is still
  // parsed here (so a malformed path answers 422 first) and then refused below.
  app.addContentTypeParser(
    UPLOAD_CONTENT_TYPES,
    { parseAs: 'buffer', bodyLimit: maxBytes },
    (_request, body, done) => done(null, body),
  );

  app.post(
    '/users/:telegram_id/uploads',
    {
      config: { access: 'user' },
      bodyLimit: maxBytes,
      schema: {
        operationId: 'uploadReference',
        summary: 'Upload a reference image; answers the reference POST /generations takes',
        description:
          "The body is the image's bytes (Content-Type image/png, image/jpeg, image/webp, image/gif or application/octet-stream). " +
          'Only PNG, JPEG, WebP and GIF images are kept, judged by their bytes (else 415), of at most UPLOAD_MAX_MB (else 413). ' +
          "The answer's `reference` goes into POST /generations `references`, for this user's generations only. " +
          'Uploads are kept as long as results (RESULT_RETENTION_DAYS).',
        tags: ['generations'],
        params: TelegramIdParams,
        consumes: UPLOAD_CONTENT_TYPES,
        // The bytes as parsed above: a Buffer, which `type: string, format: binary` would refuse
        // (and Ajv's strict mode warns about a format without a type); the service judges them.
        body: Type.Unsafe<Buffer>({ description: "The image's bytes (binary)" }),
        response: {
          201: Type.Object(
            {
              reference: Type.String({
                pattern: '^upload:[A-Za-z0-9_-]{43}\\.(png|jpg|webp|gif)$',
              }),
              content_type: Type.String(),
              size: Type.Integer({ minimum: 1 }),
            },
            {
              examples: [
                {
                  reference: 'upload:q0lS2YfU1rY7cE3m8bT6xW9pZ4nK5vH2jD1gA0sL3eQ.jpg',
                  content_type: 'image/jpeg',
                  size: 482133,
                },
              ],
            },
          ),
          ...problemResponses(401, 403, 404, 413, 415, 422, 429),
        },
      },
    },
    async (request, reply) => {
      if (!Buffer.isBuffer(request.body)) {
        throw new AppError(
          'unsupported_media_type',
          `The body must be the image's bytes: send it with Content-Type ${UPLOAD_CONTENT_TYPES.join(', ')}.`,
        );
      }
      const upload = await storeUpload(
        app.deps.services,
        app.deps.store,
        request.params.telegram_id,
        request.body,
        maxBytes,
      );
      return reply.code(201).send(upload);
    },
  );
};
