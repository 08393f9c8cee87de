import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { Config } from '../core/config.ts';
import { AppError } from '../core/errors.ts';
import { principalLabel, telegramIdOf } from '../deps/auth.ts';

/**
 * Who a request counts against. All of the bot's traffic comes from one IP with one token, so on
 * routes that act for a Telegram user the key also names that user: one heavy user is throttled,
 * the others are not.
 */
function rateLimitKey(request: FastifyRequest): string {
  const caller = request.principal ? principalLabel(request.principal) : `ip:${request.ip}`;
  if (request.routeOptions.config.access !== 'user') return caller;
  const telegramId = telegramIdOf(request);
  return telegramId === null ? caller : `${caller}:tg:${telegramId}`;
}

export async function registerRateLimit(
  app: FastifyInstance,
  config: Config,
  redis: Redis | null,
): Promise<void> {
  if (!config.rateLimit.enabled) return;
  await app.register(rateLimit, {
    global: true,
    max: config.rateLimit.max,
    timeWindow: config.rateLimit.windowSeconds * 1000,
    // After auth and body parsing: the key needs the caller and the telegram_id in the body.
    hook: 'preValidation',
    keyGenerator: rateLimitKey,
    enableDraftSpec: true,
    ...(redis ? { redis, nameSpace: 'imagegen:ratelimit:' } : {}),
    // If Redis is down, serve rather than fail every request; the outage is logged by the client.
    skipOnError: true,
    errorResponseBuilder: (_request, context) =>
      new AppError(
        'rate_limited',
        `Rate limit of ${context.max} requests per ${config.rateLimit.windowSeconds} s exceeded; retry in ${Math.ceil(context.ttl / 1000)} s.`,
        { retryAfterSeconds: Math.ceil(context.ttl / 1000) },
      ),
  });
}
