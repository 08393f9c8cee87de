// The bot alone (`npm run start:bot`, server mode): a client of the API at API_URL with API_TOKEN.
// Long polling by default (one process per bot token); with BOT_WEBHOOK_URL it serves Telegram's
// webhook on BOT_PORT, and any number of these processes may run behind a balancer.
import Fastify, { type FastifyBaseLogger } from 'fastify';
import { registerTelegramWebhook } from './api/telegram-webhook.ts';
import { startBot } from './bot/run.ts';
import { loadConfigOrExit } from './core/config.ts';
import { exitOnUnhandledErrors } from './core/fatal-errors.ts';
import { createLogger } from './core/logger.ts';
import { registerProblemHandlers } from './core/problem.ts';
import { listenFailure } from './core/start-failure.ts';
import { Problem } from './schemas/problem.ts';

const config = loadConfigOrExit();
const logger = createLogger(config);
exitOnUnhandledErrors(logger);

const token = config.bot.apiToken;
if (!config.telegramBotToken || !config.bot.apiUrl || !token) {
  logger.fatal(
    'npm run start:bot needs TELEGRAM_BOT_TOKEN, API_URL (where the API is) and API_TOKEN (one of its API_TOKENS)',
  );
  process.exit(78);
}

const bot = await startBot({ config, logger, apiUrl: config.bot.apiUrl, apiToken: token });
const server = Fastify({ loggerInstance: logger as FastifyBaseLogger });
if (config.bot.webhookSecret) {
  registerProblemHandlers(server);
  // The route's refusals are declared as the shared Problem schema.
  server.addSchema(Problem);
  registerTelegramWebhook(server, {
    secret: config.bot.webhookSecret,
    handle: () => bot.handleUpdate,
  });
  try {
    await server.listen({ host: config.host, port: config.bot.port });
  } catch (error) {
    const failure = listenFailure(config.host, config.bot.port, error);
    await bot.stop();
    logger.fatal(failure.message.replace('(PORT)', '(BOT_PORT)'));
    process.exit(failure.exitCode);
  }
}

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await server.close();
  await bot.stop();
  process.exit(0);
}
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
