import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Update } from 'grammy/types';
import type { Redis } from 'ioredis';
import { registerMetrics } from './api/metrics.ts';
import { documentRoute } from './api/openapi.ts';
import { rootRoutes } from './api/root.ts';
import {
  registerTelegramWebhook,
  SECRET_HEADER as TELEGRAM_SECRET_HEADER,
} from './api/telegram-webhook.ts';
import { adminRoutes } from './api/v1/admin.ts';
import { adminAuditRoutes } from './api/v1/admin-audit.ts';
import { adminAuthRoutes } from './api/v1/admin-auth.ts';
import { adminBroadcastRoutes } from './api/v1/admin-broadcasts.ts';
import { adminGenerationRoutes } from './api/v1/admin-generations.ts';
import { adminModelRoutes } from './api/v1/admin-models.ts';
import { adminPaymentRoutes } from './api/v1/admin-payments.ts';
import { adminProviderRoutes } from './api/v1/admin-providers.ts';
import { adminSettingsRoutes } from './api/v1/admin-settings.ts';
import { adminStatsRoutes } from './api/v1/admin-stats.ts';
import { generationRoutes, providerWebhookRoutes } from './api/v1/generations.ts';
import { metaRoutes } from './api/v1/meta.ts';
import { modelRoutes } from './api/v1/models.ts';
import { paymentRoutes } from './api/v1/payments.ts';
import { referenceRoutes } from './api/v1/references.ts';
import { uploadRoutes } from './api/v1/uploads.ts';
import { userRoutes } from './api/v1/users.ts';
import { registerWebApps } from './api/web.ts';
import type { Config } from './core/config.ts';
import { LazyCompilations } from './core/lazy-compilation.ts';
import { createLogger, type Logger, OneLinePerRequest } from './core/logger.ts';
import {
  answerClientError,
  answerFrameworkError,
  MAX_PARAM_LENGTH,
  registerProblemHandlers,
} from './core/problem.ts';
import { unreachableService } from './core/start-failure.ts';
import { requestValidators } from './core/validation.ts';
import { appName, appVersion } from './core/version.ts';
import { type DatabaseHandle, openDatabase } from './db/client.ts';
import { assertSchemaCurrent, migrateDatabase } from './db/migrate.ts';
import { OPERATOR_SESSION_COOKIE, registerAuth } from './deps/auth.ts';
import {
  AuthFailureLimiter,
  MemoryFailureCounts,
  RedisFailureCounts,
} from './deps/auth-failures.ts';
import type { AppDeps } from './deps/context.ts';
import { startWorker } from './jobs/runtime.ts';
import type { DeliveryChannels } from './jobs/types.ts';
import type { JobWorker } from './jobs/worker.ts';
import { registerCors } from './middlewares/cors.ts';
import { registerGracefulClose } from './middlewares/graceful-close.ts';
import { registerIdempotency } from './middlewares/idempotency.ts';
import { registerRateLimit } from './middlewares/rate-limit.ts';
import { registerRequestIdEcho, requestIdFor } from './middlewares/request-id.ts';
import { registerSecurityHeaders } from './middlewares/security-headers.ts';
import { type ProviderRegistry, providersFromConfig } from './providers/registry.ts';
import { Problem } from './schemas/problem.ts';
import { watchSettings } from './services/settings.ts';
import { createResultStore } from './storage/create.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** Starts the job worker in this process (once); the app's close stops it. */
    startWorker(): Promise<void>;
    /**
     * Webhook mode with the bot in this process: where POST /telegram/webhook hands updates; set
     * by the server once its bot has started (until then the route answers 503).
     */
    telegramUpdates: { handle: ((update: Update) => Promise<void>) | null };
    /**
     * Validators and serializers are compiled on first use (core/lazy-compilation.ts): compiles
     * the rest now and answers how many; a test checks that every one compiles.
     */
    compileAllSchemas(): number;
  }
}

export interface AppOverrides {
  /** An already open database (tests share one); the app then leaves closing it to the caller. */
  database?: DatabaseHandle;
  logger?: Logger;
  /** The image providers (default: those the configuration enables). */
  providers?: ProviderRegistry;
  /** Delivery channels of the in-process worker (default: from the configuration). */
  delivery?: DeliveryChannels;
  /**
   * Run the job worker in this process (default: config.worker.inApi). The server passes false
   * and starts it once it listens: a process that cannot listen never takes a job.
   */
  worker?: boolean;
}

/**
 * The app factory (the spec's app/main.py): wires config, database, middlewares and routes.
 * It never listens; src/server.ts does, and tests use app.inject().
 */
export async function buildApp(
  config: Config,
  overrides: AppOverrides = {},
): Promise<FastifyInstance> {
  const logger = overrides.logger ?? createLogger(config);
  const database = overrides.database ?? (await openDatabase(config.database, logger));
  const ownsDatabase = overrides.database === undefined;
  let redis: Redis | null = null;
  let worker = null as JobWorker | null;
  let stopWatchingSettings: (() => Promise<void>) | null = null;
  try {
    try {
      if (config.runMigrations) await migrateDatabase(database);
      else await assertSchemaCurrent(database);
    } catch (error) {
      if (config.database.kind !== 'postgres') throw error;
      throw unreachableService('the database', 'DATABASE_URL', config.database.url, error) ?? error;
    }

    if (config.redisUrl && (config.rateLimit.enabled || config.authFailureLimit > 0)) {
      // Loaded only when configured: the embedded default never holds the client's ~20 MB.
      const { Redis } = await import('ioredis');
      redis = new Redis(config.redisUrl, {
        lazyConnect: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        connectTimeout: 2_000,
      });
      // ioredis answers a failed first connect with "Connection is closed."; the cause is the
      // 'error' it emitted before.
      let connectError: unknown = null;
      const onConnectError = (error: unknown) => {
        connectError = error;
      };
      redis.on('error', onConnectError);
      const url = config.redisUrl;
      await redis.connect().catch((error: unknown) => {
        throw unreachableService('Redis', 'REDIS_URL', url, connectError ?? error) ?? error;
      });
      redis.off('error', onConnectError);
      redis.on('error', (error) => logger.warn({ err: error }, 'Redis connection error'));
    }

    const compilations = new LazyCompilations();
    const app = Fastify({
      loggerInstance: logger as FastifyBaseLogger,
      genReqId: requestIdFor,
      requestIdHeader: false,
      logController: new OneLinePerRequest({ requestIdLogLabel: 'requestId' }),
      trustProxy: config.trustProxy,
      bodyLimit: 1024 * 1024,
      routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
      // Path and query coerced, JSON bodies taken as typed and strict, text PostgreSQL can store.
      // …compiled on first use: a start no longer compiles every route's schemas.
      schemaController: {
        compilersFactory: {
          buildValidator: requestValidators(compilations),
          buildSerializer: compilations.serializers(),
        },
      },
      frameworkErrors: answerFrameworkError,
      clientErrorHandler: answerClientError,
    }).withTypeProvider<TypeBoxTypeProvider>();
    // Every body this API reads is JSON: any other type is a 415 that says so (core/problem.ts).
    app.removeContentTypeParser('text/plain');

    const services = { db: database.db, config };
    const pipeline = { ...services, providers: overrides.providers ?? providersFromConfig(config) };
    const store = await createResultStore(config);
    const deps: AppDeps = {
      config,
      database,
      services,
      pipeline,
      store,
      startedAt: new Date(),
      rateLimitStore: !config.rateLimit.enabled ? 'off' : redis ? 'redis' : 'memory',
    };
    app.decorate('deps', deps);
    app.decorate('compileAllSchemas', () => compilations.compileAll());
    app.addSchema(Problem);

    // Operators' changes to the runtime settings reach this process within seconds.
    stopWatchingSettings = await watchSettings(database, logger);
    app.addHook('onClose', async () => {
      await worker?.stop(config.shutdownTimeoutSeconds * 1000);
      await stopWatchingSettings?.();
      await redis?.quit().catch(() => undefined);
      if (ownsDatabase) await database.close();
    });

    registerProblemHandlers(app);
    registerRequestIdEcho(app);
    registerGracefulClose(app);
    registerSecurityHeaders(app);
    // CORS before auth: a browser's preflight carries no credentials and must still be answered.
    await registerCors(app, config);
    registerAuth(app, config, authFailureLimiter(config, redis, logger));
    registerIdempotency(app);
    await registerRateLimit(app, config, redis);
    await app.register(swagger, {
      openapi: {
        info: {
          title: appName,
          version: appVersion,
          description:
            'Backend of a Telegram bot that sells AI image generation. Errors are application/problem+json.',
        },
        components: {
          securitySchemes: {
            bot: {
              type: 'http',
              scheme: 'bearer',
              description: 'A token from API_TOKENS (the bot)',
            },
            admin: { type: 'http', scheme: 'bearer', description: 'A token from ADMIN_TOKENS' },
            operatorSession: {
              type: 'apiKey',
              in: 'cookie',
              name: OPERATOR_SESSION_COOKIE,
              description:
                'An operator signed in with Telegram (POST /api/v1/admin/auth/telegram); its role, admin or support, decides which admin routes it reaches. ' +
                'On the docs page, sign in with that operation: the browser then sends the cookie itself (a page cannot set it).',
            },
            telegramWebhook: {
              type: 'apiKey',
              in: 'header',
              name: TELEGRAM_SECRET_HEADER,
              description:
                'The BOT_WEBHOOK_SECRET given to setWebhook; Telegram sends it with every update',
            },
            miniApp: {
              type: 'apiKey',
              in: 'header',
              name: 'Authorization',
              description: '"tma <initData>" from a Telegram Mini App',
            },
          },
        },
      },
      refResolver: {
        buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`),
      },
      transform: documentRoute,
    });
    await app.register(swaggerUi, { routePrefix: '/docs' });

    app.decorate('telegramUpdates', { handle: null });
    const webhookSecret = config.bot.webhookSecret;
    if (config.telegramBotToken && config.bot.inApi && config.bot.webhookUrl && webhookSecret) {
      registerTelegramWebhook(app, {
        secret: webhookSecret,
        handle: () => app.telegramUpdates.handle,
      });
    }
    registerMetrics(app, database.db);
    await app.register(rootRoutes);
    const webApps = await registerWebApps(app);
    if (webApps.length < 2) {
      logger.info('The web apps are not built (npm run build:web): /admin/ and /app/ answer 404');
    }
    await app.register(
      async (v1) => {
        await v1.register(metaRoutes);
        await v1.register(userRoutes);
        await v1.register(modelRoutes);
        await v1.register(paymentRoutes);
        await v1.register(adminRoutes);
        await v1.register(adminAuthRoutes);
        await v1.register(adminAuditRoutes);
        await v1.register(adminSettingsRoutes);
        await v1.register(adminModelRoutes);
        await v1.register(adminGenerationRoutes);
        await v1.register(adminPaymentRoutes);
        await v1.register(adminBroadcastRoutes);
        await v1.register(adminStatsRoutes);
        await v1.register(adminProviderRoutes);
        await v1.register(generationRoutes);
        await v1.register(providerWebhookRoutes);
        await v1.register(referenceRoutes);
        await v1.register(uploadRoutes);
      },
      { prefix: '/api/v1' },
    );
    app.decorate('startWorker', async () => {
      worker ??= await startWorker({
        ctx: pipeline,
        database,
        store,
        logger,
        ...(overrides.delivery ? { delivery: overrides.delivery } : {}),
      });
    });
    await app.ready();
    if (overrides.worker ?? config.worker.inApi) await app.startWorker();
    return app;
  } catch (error) {
    await worker?.stop(0);
    await stopWatchingSettings?.().catch(() => undefined);
    // Not quit(): a client that never connected would keep trying to, to send QUIT.
    redis?.disconnect();
    if (ownsDatabase) await database.close();
    throw error;
  }
}

/** Failed authentications per address: in Redis when there is one (shared), else in memory. */
function authFailureLimiter(
  config: Config,
  redis: Redis | null,
  logger: Logger,
): AuthFailureLimiter | null {
  if (config.authFailureLimit === 0) return null;
  return new AuthFailureLimiter(
    config.authFailureLimit,
    redis ? new RedisFailureCounts(redis) : new MemoryFailureCounts(),
    (error) => logger.warn({ err: error }, 'Failed authentications not counted: Redis failed'),
  );
}
