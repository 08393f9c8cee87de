import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { AppError } from '../../core/errors.ts';
import { callerMayActFor, principalLabel } from '../../deps/auth.ts';
import { TelegramId, TelegramIdParams, TrialStatus } from '../../schemas/common.ts';
import {
  exampleGeneration,
  exampleGenerationRequest,
  exampleQueuedGeneration,
  exampleTrial,
} from '../../schemas/examples.ts';
import { problemResponses } from '../../schemas/problem.ts';
import { PROMPT_LENGTH_CEILING, REFERENCES_CEILING } from '../../services/catalog.ts';
import { acceptGeneration } from '../../services/generation-accept.ts';
import { storedImage } from '../../services/generation-images.ts';
import { quoteGeneration } from '../../services/generation-quote.ts';
import {
  type GenerationView,
  getGenerationById,
  listActiveGenerations,
  listGenerations,
} from '../../services/generation-views.ts';
import { handleProviderWebhook } from '../../services/provider-webhooks.ts';

const Parameters = Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 64 }), {
  description:
    'Values for the model\'s parameters (GET /api/v1/models), e.g. {"aspect_ratio": "16:9"}; omitted ones take their default',
  maxProperties: 16,
});

const TelegramContext = Type.Object(
  {
    chat_id: Type.Integer({
      minimum: -Number.MAX_SAFE_INTEGER,
      maximum: Number.MAX_SAFE_INTEGER,
      description:
        "The chat to send the result to: the user's private chat (its telegram_id) or a group (negative); not 0",
    }),
    reply_to_message_id: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 2_147_483_647,
        description: "The prompt's message: the result replies to it (sent anyway if it is gone)",
      }),
    ),
    status_message_id: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 2_147_483_647,
        description:
          "The bot's message saying the generation is queued: the worker edits it to running, done or the failure",
      }),
    ),
    language: Type.Optional(
      Type.Union([Type.Literal('uz'), Type.Literal('ru'), Type.Literal('en')], {
        description: "The texts' language; default the user's own, else DEFAULT_LANGUAGE",
      }),
    ),
  },
  {
    additionalProperties: false,
    description:
      "Where the worker delivers the result (texts in parse_mode HTML, with regenerate/edit/original buttons whose callback_data is res:<r|e|o>:<id>); without it, to the user's own chat. A Mini App user may only name its own chat.",
  },
);

export const Generation = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    telegram_id: TelegramId,
    model: Type.String(),
    prompt: Type.String(),
    parameters: Type.Record(Type.String(), Type.String()),
    references: Type.Array(
      Type.Object({
        kind: Type.Union([
          Type.Literal('telegram_file'),
          Type.Literal('url'),
          Type.Literal('upload'),
        ]),
        value: Type.String(),
      }),
    ),
    status: Type.Union([
      Type.Literal('queued'),
      Type.Literal('running'),
      Type.Literal('succeeded'),
      Type.Literal('failed'),
      Type.Literal('cancelled'),
    ]),
    payment: Type.Object({
      method: Type.Union([Type.Literal('credits'), Type.Literal('trial')]),
      credits: Type.Integer({ description: 'Credits charged (0 for a free generation)' }),
      refunded: Type.Boolean({ description: 'The credits or the free generation were given back' }),
    }),
    error: Type.Union([
      Type.Null(),
      Type.Object({ code: Type.String(), message: Type.Union([Type.Null(), Type.String()]) }),
    ]),
    results: Type.Array(
      Type.Object({
        position: Type.Integer(),
        url: Type.String({
          description:
            'Stored images are served by this API under /generations/{id}/images/{position}',
        }),
        mime_type: Type.String(),
        width: Type.Union([Type.Null(), Type.Integer()]),
        height: Type.Union([Type.Null(), Type.Integer()]),
        seed: Type.Union([Type.Null(), Type.Integer()]),
      }),
    ),
    created_at: Type.String({ format: 'date-time' }),
    started_at: Type.Union([Type.Null(), Type.String({ format: 'date-time' })]),
    completed_at: Type.Union([Type.Null(), Type.String({ format: 'date-time' })]),
    deadline_at: Type.Union([Type.Null(), Type.String({ format: 'date-time' })]),
  },
  { examples: [exampleGeneration] },
);

const GenerationIdParams = Type.Object({ id: Type.String({ format: 'uuid' }) });

/** A Mini App user sees only its own generations; others' answer 404, as if they did not exist. */
function assertVisibleTo(request: FastifyRequest, generation: GenerationView): void {
  if (!callerMayActFor(request, generation.telegram_id)) {
    throw new AppError('generation_not_found', `No generation ${generation.id}.`);
  }
}

/**
 * The chat a generation's news may go to: any for the bot, only the user's own for a Mini App user
 * (else it could have our bot post into any chat the bot is in).
 */
function checkTelegramChat(request: FastifyRequest, telegramId: number, chatId: number): void {
  if (request.principal?.kind === 'miniapp' && chatId !== telegramId) {
    throw new AppError('forbidden', 'A Mini App user can have results sent to its own chat only.');
  }
}

export const generationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/generations/quote',
    {
      config: { access: 'user' },
      schema: {
        operationId: 'quoteGeneration',
        summary: 'What a generation would cost: price, whether a free generation applies, balance',
        tags: ['generations'],
        body: Type.Object(
          {
            telegram_id: TelegramId,
            model: Type.String({ maxLength: 64 }),
            parameters: Type.Optional(Parameters),
          },
          {
            additionalProperties: false,
            examples: [
              {
                telegram_id: exampleGenerationRequest.telegram_id,
                model: exampleGenerationRequest.model,
                parameters: exampleGenerationRequest.parameters,
              },
            ],
          },
        ),
        response: {
          200: Type.Object(
            {
              model: Type.String(),
              parameters: Type.Record(Type.String(), Type.String()),
              price_credits: Type.Integer(),
              balance: Type.Integer(),
              trial: TrialStatus,
              payment_method: Type.Union([
                Type.Null(),
                Type.Literal('trial'),
                Type.Literal('credits'),
              ]),
            },
            {
              examples: [
                {
                  model: exampleGenerationRequest.model,
                  parameters: exampleGenerationRequest.parameters,
                  price_credits: 38,
                  balance: 112,
                  trial: exampleTrial,
                  payment_method: 'credits',
                },
              ],
            },
          ),
          ...problemResponses(401, 403, 404, 422, 429),
        },
      },
    },
    async (request) =>
      quoteGeneration(app.deps.services, {
        telegramId: request.body.telegram_id,
        model: request.body.model,
        parameters: request.body.parameters ?? {},
      }),
  );

  app.post(
    '/generations',
    {
      config: { access: 'user', idempotent: true },
      schema: {
        operationId: 'createGeneration',
        summary: 'Accept a generation: charge it (or use a free one) and queue it',
        description:
          'One transaction: the credits are charged or a free generation used, and the request, its references and its job are stored. ' +
          'Send an Idempotency-Key: a retry with it returns the first answer and charges nothing. ' +
          "References are Telegram file_ids, https URLs (private and loopback addresses are refused) or `upload:` references from POST /users/{telegram_id}/uploads (the same user's). " +
          '402 when the balance does not cover the price, 409 when payment=trial and none is left, ' +
          '429 too_many_active_generations at MAX_PARALLEL_GENERATIONS_PER_USER.',
        tags: ['generations'],
        headers: Type.Object({
          'idempotency-key': Type.Optional(
            Type.String({ description: 'Stripe-style; replays the first response' }),
          ),
        }),
        body: Type.Object(
          {
            telegram_id: TelegramId,
            model: Type.String({ maxLength: 64 }),
            prompt: Type.Optional(
              Type.String({
                maxLength: PROMPT_LENGTH_CEILING,
                description:
                  'Required (not blank) for image models; optional for tools (kind tool), which work on their one reference image. ' +
                  `At most the model's max_prompt_length characters (GET /api/v1/models; no model takes more than ${PROMPT_LENGTH_CEILING})`,
              }),
            ),
            parameters: Type.Optional(Parameters),
            references: Type.Optional(
              Type.Array(Type.String({ minLength: 1, maxLength: 2048 }), {
                maxItems: REFERENCES_CEILING,
                description:
                  "Telegram file_ids, https URLs or upload: references (POST /users/{telegram_id}/uploads); at most the model's max_references",
              }),
            ),
            payment: Type.Optional(
              Type.Union([Type.Literal('auto'), Type.Literal('credits'), Type.Literal('trial')], {
                description: 'auto (default): a free generation while one is left, else credits',
              }),
            ),
            telegram: Type.Optional(TelegramContext),
          },
          { additionalProperties: false, examples: [exampleGenerationRequest] },
        ),
        response: {
          202: Type.Intersect(
            [
              Generation,
              Type.Object({
                queue_position: Type.Integer({ minimum: 1 }),
                balance: Type.Integer({ description: 'The balance after the charge' }),
                trial: TrialStatus,
              }),
            ],
            {
              examples: [
                { ...exampleQueuedGeneration, queue_position: 3, balance: 74, trial: exampleTrial },
              ],
            },
          ),
          ...problemResponses(401, 402, 403, 404, 409, 422, 429, 503),
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const telegram = body.telegram;
      if (telegram) checkTelegramChat(request, body.telegram_id, telegram.chat_id);
      const accepted = await acceptGeneration(
        app.deps.pipeline,
        {
          telegramId: body.telegram_id,
          model: body.model,
          prompt: body.prompt ?? '',
          parameters: body.parameters ?? {},
          references: body.references ?? [],
          payment: body.payment ?? 'auto',
          ...(telegram
            ? {
                telegram: {
                  chatId: telegram.chat_id,
                  ...(telegram.reply_to_message_id === undefined
                    ? {}
                    : { replyToMessageId: telegram.reply_to_message_id }),
                  ...(telegram.status_message_id === undefined
                    ? {}
                    : { statusMessageId: telegram.status_message_id }),
                  ...(telegram.language === undefined ? {} : { language: telegram.language }),
                },
              }
            : {}),
        },
        request.principal ? principalLabel(request.principal) : 'system',
        {
          effectId: request.idempotencyClaim?.effectId,
          requestId: request.id,
          uploads: app.deps.store,
        },
      );
      // The first line of the generation's story; the worker's lines carry the same requestId.
      request.log.info(
        { generationId: accepted.id, model: accepted.model, payment: accepted.payment.method },
        'generation accepted',
      );
      return reply.code(202).send(accepted);
    },
  );

  app.get(
    '/generations/:id',
    {
      // No telegram_id to compare before the generation is read: the handler checks its owner.
      config: { access: 'user', ownership: 'handler' },
      schema: {
        operationId: 'getGeneration',
        summary: 'A generation: status, timestamps, results, error',
        tags: ['generations'],
        params: GenerationIdParams,
        response: { 200: Generation, ...problemResponses(401, 403, 404, 422, 429) },
      },
    },
    async (request) => {
      const generation = await getGenerationById(app.deps.services, request.params.id);
      assertVisibleTo(request, generation);
      return generation;
    },
  );

  app.get(
    '/generations/:id/images/:position',
    {
      schema: {
        operationId: 'getGenerationImage',
        summary: 'A stored image of a generation (every result is copied into our storage)',
        description:
          "Public, like a provider's result URL: the generation id is an unguessable UUID, so a Mini App can show it in an <img>.",
        tags: ['generations'],
        params: Type.Object({
          id: Type.String({ format: 'uuid' }),
          position: Type.Integer({ minimum: 0, maximum: 100 }),
        }),
        response: {
          200: {
            description: 'The image, with its type (image/png, image/webp, …)',
            // Unsafe<unknown>: the bytes are streamed, never serialised from a value.
            content: {
              'image/*': { schema: Type.Unsafe<unknown>({ type: 'string', format: 'binary' }) },
            },
          },
          302: {
            description:
              'With S3 storage and S3_PRESIGN_SECONDS above 0: a short-lived presigned URL of the image',
            headers: { location: { type: 'string' } },
          },
          ...problemResponses(404, 422, 429),
        },
      },
    },
    async (request, reply) => {
      const image = await storedImage(
        app.deps.services,
        app.deps.store,
        request.params.id,
        request.params.position,
      );
      // A presigned URL expires: the redirect itself must not be cached for longer.
      if ('redirect' in image) {
        return reply.header('cache-control', 'private, max-age=60').redirect(image.redirect, 302);
      }
      return reply
        .type(image.mimeType)
        .header('content-length', image.object.size)
        .header('cache-control', 'public, max-age=31536000, immutable')
        .send(image.object.body);
    },
  );

  app.get(
    '/users/:telegram_id/generations',
    {
      config: { access: 'user' },
      schema: {
        operationId: 'listUserGenerations',
        summary: "The user's generations, newest first (cursor pagination)",
        tags: ['generations'],
        params: TelegramIdParams,
        querystring: Type.Object({
          limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
          cursor: Type.Optional(
            Type.String({ maxLength: 128, description: 'next_cursor of the previous page' }),
          ),
        }),
        response: {
          200: Type.Object({
            telegram_id: TelegramId,
            generations: Type.Array(Generation),
            next_cursor: Type.Union([Type.Null(), Type.String()]),
          }),
          ...problemResponses(401, 403, 404, 422, 429),
        },
      },
    },
    async (request) => ({
      telegram_id: request.params.telegram_id,
      ...(await listGenerations(app.deps.services, request.params.telegram_id, {
        limit: request.query.limit,
        ...(request.query.cursor === undefined ? {} : { cursor: request.query.cursor }),
      })),
    }),
  );

  app.get(
    '/users/:telegram_id/generations/active',
    {
      config: { access: 'user' },
      schema: {
        operationId: 'listActiveGenerations',
        summary: "The user's queued and running generations, oldest first",
        tags: ['generations'],
        params: TelegramIdParams,
        response: {
          200: Type.Object({
            telegram_id: TelegramId,
            generations: Type.Array(Generation),
          }),
          ...problemResponses(401, 403, 404, 422, 429),
        },
      },
    },
    async (request) => ({
      telegram_id: request.params.telegram_id,
      generations: await listActiveGenerations(app.deps.services, request.params.telegram_id),
    }),
  );
};

/** What each provider posts when a prediction finishes, as its documentation shows it. */
const providerReports = {
  // WaveSpeedAI posts the bare prediction object, not its usual {code, message, data} envelope.
  wavespeed: {
    id: '6c2b2d0f9a1e4b0c8d7f3e21a9b5c4d0',
    model: 'google/nano-banana/text-to-image',
    input: { prompt: exampleGeneration.prompt, aspect_ratio: '16:9' },
    outputs: ['https://d1q70pf5vjeyhc.cloudfront.net/predictions/6c2b2d0f/1.png'],
    urls: {
      get: 'https://api.wavespeed.ai/api/v3/predictions/6c2b2d0f9a1e4b0c8d7f3e21a9b5c4d0/result',
    },
    has_nsfw_contents: [false],
    status: 'completed',
    created_at: '2026-11-27T09:14:06.204Z',
    error: '',
  },
  replicate: {
    id: 'gm3qorzdhgbfurvjtvhg6dckhu',
    model: 'black-forest-labs/flux-schnell',
    version: 'dp-4d0bcc010b3049749a251855f12800be',
    input: { prompt: exampleGeneration.prompt, aspect_ratio: '16:9' },
    output: ['https://replicate.delivery/xezq/gm3qorzdhgbfurvjtvhg6dckhu/out-0.webp'],
    error: null,
    status: 'succeeded',
    metrics: { predict_time: 1.43 },
    created_at: '2026-11-27T09:14:06.204Z',
    completed_at: '2026-11-27T09:14:07.851Z',
    urls: {
      get: 'https://api.replicate.com/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu',
      cancel: 'https://api.replicate.com/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu/cancel',
    },
  },
};

/**
 * Providers' webhooks. Public (providers hold no token of ours) but only signed calls are read:
 * the signature covers the exact bytes, so this scope keeps JSON bodies raw.
 */
export const providerWebhookRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => {
    done(null, body);
  });
  app.post(
    '/providers/:provider/webhook',
    {
      schema: {
        operationId: 'receiveProviderWebhook',
        summary: "A provider's webhook: a signed report that its job finished",
        tags: ['providers'],
        description:
          'Each provider signs its report as Standard Webhooks do: HMAC-SHA256 of ' +
          "`{webhook-id}.{webhook-timestamp}.{body}` under the account's `whsec_…` secret " +
          '(REPLICATE_WEBHOOK_SECRET, WAVESPEED_WEBHOOK_SECRET); an unsigned, forged or stale ' +
          'report is 401. Deliveries may repeat: a second one is `duplicate`.',
        params: Type.Object({
          provider: Type.String({
            pattern: '^[a-z0-9_-]{1,64}$',
            description: 'replicate or wavespeed',
            examples: ['wavespeed'],
          }),
        }),
        headers: Type.Object({
          'webhook-id': Type.Optional(Type.String({ description: "The delivery's id" })),
          'webhook-timestamp': Type.Optional(
            Type.String({ description: 'When it was signed, in Unix seconds' }),
          ),
          'webhook-signature': Type.Optional(
            Type.String({
              description:
                'Space-separated signatures: `v1,<base64>` (Replicate), `v3,<hex>` (WaveSpeed)',
            }),
          ),
        }),
        // Read raw (the signature covers the bytes): any body passes here, the provider checks it.
        body: Type.Unknown({
          description:
            "The provider's report, exactly as it signed it: the prediction object of WaveSpeedAI " +
            '(https://wavespeed.ai/docs/docs-api/webhooks; example 1) or of Replicate ' +
            '(https://replicate.com/docs/topics/webhooks; example 2)',
          examples: [providerReports.wavespeed, providerReports.replicate],
        }),
        response: {
          200: Type.Object(
            {
              outcome: Type.Union([
                Type.Literal('settled'),
                Type.Literal('duplicate'),
                Type.Literal('ignored'),
              ]),
              generation_id: Type.Union([Type.Null(), Type.String({ format: 'uuid' })]),
            },
            {
              description:
                'settled: the generation took the result; duplicate: it had already; ignored: no generation of ours',
              examples: [{ outcome: 'settled', generation_id: exampleGeneration.id }],
            },
          ),
          ...problemResponses(401, 404, 422, 429),
        },
      },
    },
    async (request) =>
      handleProviderWebhook(
        app.deps.pipeline,
        app.deps.store,
        request.params.provider,
        {
          headers: request.headers,
          rawBody: Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0),
        },
        request.log,
      ),
  );
};
