import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Update } from 'grammy/types';
import { AppError, unauthorized } from '../core/errors.ts';

const TELEGRAM_WEBHOOK_PATH = '/telegram/webhook';
const SECRET_HEADER = 'x-telegram-bot-api-secret-token';
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
      schema: {
        summary: "Telegram's webhook: updates for the bot (checked by its secret token)",
        tags: ['telegram'],
        body: { type: 'object', required: ['update_id'], additionalProperties: true },
      },
    },
    async (request, reply) => {
      if (!sameSecret(request.headers[SECRET_HEADER], options.secret)) {
        throw unauthorized('The secret token is not the one given to setWebhook.');
      }
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
