import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Update } from 'grammy/types';
import { Type } from 'typebox';
import { AppError, unauthorized } from '../core/errors.ts';
import { problemResponses } from '../schemas/problem.ts';

const TELEGRAM_WEBHOOK_PATH = '/telegram/webhook';
/** The header Telegram sends the secret_token given to setWebhook in (see app.ts's securitySchemes). */
export const SECRET_HEADER = 'X-Telegram-Bot-Api-Secret-Token';
/** Telegram waits for the answer; past this the update goes on in the background. */
const ANSWER_WITHIN_MS = 8_000;

function sameSecret(given: unknown, expected: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Where Telegram posts updates in webhook mode (BOT_WEBHOOK_URL): on the API in one process, or
 * on a bot process's own small server. Only a call carrying the secret given to setWebhook is
 * read. `handle` is looked up per call: the API registers the route before its bot has started.
 */
export function registerTelegramWebhook(
  app: FastifyInstance,
  options: { secret: string; handle: () => ((update: Update) => Promise<void>) | null },
): void {
  app.post(
    TELEGRAM_WEBHOOK_PATH,
    {
      config: { access: 'public' },
      // Before the body is read: nobody but Telegram gets as far as a validation error.
      onRequest: async (request) => {
        if (!sameSecret(request.headers[SECRET_HEADER.toLowerCase()], options.secret)) {
          throw unauthorized('The secret token is not the one given to setWebhook.');
        }
      },
      schema: {
        operationId: 'receiveTelegramUpdate',
        summary: "Telegram's webhook: updates for the bot (checked by its secret token)",
        tags: ['telegram'],
        security: [{ telegramWebhook: [] }],
        body: Type.Object(
          { update_id: Type.Integer({ minimum: 0 }) },
          {
            additionalProperties: true,
            description:
              'A Telegram Update (https://core.telegram.org/bots/api#update), exactly as Telegram sends it',
            examples: [
              {
                update_id: 804512337,
                message: {
                  message_id: 1187,
                  from: {
                    id: 6174829305,
                    is_bot: false,
                    first_name: 'Dilnoza',
                    last_name: 'Karimova',
                    username: 'dilnoza_k',
                    language_code: 'uz',
                  },
                  chat: {
                    id: 6174829305,
                    first_name: 'Dilnoza',
                    last_name: 'Karimova',
                    username: 'dilnoza_k',
                    type: 'private',
                  },
                  date: 1795770845,
                  text: 'A snow leopard on a Tian Shan ridge at dawn, watercolour',
                },
              },
            ],
          },
        ),
        response: {
          200: Type.Object(
            { ok: Type.Literal(true) },
            {
              description: 'Taken: the bot handled the update or goes on with it in the background',
            },
          ),
          ...problemResponses(401, 429, 503),
        },
      },
    },
    async (request, reply) => {
      const handle = options.handle();
      if (!handle) {
        throw new AppError(
          'bot_unavailable',
          'The bot is not running yet; retry.',
          {},
          {
            'retry-after': '1',
          },
        );
      }
      const handling = handle(request.body as Update).catch((error: unknown) =>
        request.log.error({ err: error }, 'webhook update failed'),
      );
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        handling,
        new Promise((resolve) => {
          timer = setTimeout(resolve, ANSWER_WITHIN_MS);
        }),
      ]);
      clearTimeout(timer);
      return reply.code(200).send({ ok: true });
    },
  );
}
