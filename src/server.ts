// The API process: config → buildApp → listen → worker (in-process when configured) → the
// Telegram bot (when TELEGRAM_BOT_TOKEN is set): the whole product in one process. On
// SIGTERM/SIGINT stop accepting, let in-flight requests finish, close the database, exit 0.
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { buildApp } from './app.ts';
import type { RunningBot } from './bot/run.ts';
import { type Config, loadConfigOrExit } from './core/config.ts';
import { exitOnUnhandledErrors } from './core/fatal-errors.ts';
import { createLogger } from './core/logger.ts';
import { listenFailure, StartFailure } from './core/start-failure.ts';
import { acceptBackupRequests, type BackupRequestListener } from './db/backup-requests.ts';
import { DataDirLockedError } from './db/data-dir-lock.ts';
import { SchemaNotReadyError } from './db/migrate.ts';

const loaded = loadConfigOrExit();
const runBot = loaded.telegramBotToken !== null && loaded.bot.inApi;
// The bot calls this API over loopback with a bot token: one of API_TOKENS, or one of its own.
const botToken = loaded.bot.apiToken ?? loaded.apiTokens[0] ?? randomBytes(32).toString('hex');
const config: Config =
  runBot && !loaded.apiTokens.includes(botToken)
    ? Object.freeze({ ...loaded, apiTokens: [...loaded.apiTokens, botToken] })
    : loaded;

const logger = createLogger(config);
exitOnUnhandledErrors(logger);
let app: Awaited<ReturnType<typeof buildApp>>;
try {
  // The worker starts once the API listens: a process that cannot listen never takes a job.
  app = await buildApp(config, { logger, worker: false });
} catch (error) {
  if (error instanceof DataDirLockedError || error instanceof SchemaNotReadyError) {
    logger.fatal(error.message);
    process.exit(75);
  }
  if (error instanceof StartFailure) {
    logger.fatal(error.message);
    process.exit(error.exitCode);
  }
  logger.fatal({ err: error }, 'could not start');
  process.exit(1);
}

let bot: RunningBot | null = null;
let backupRequests: BackupRequestListener | null = null;
let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'shutting down: no new connections, finishing in-flight requests');
  const timer = setTimeout(() => {
    logger.error('in-flight work did not finish in time; exiting anyway');
    process.exit(1);
  }, config.shutdownTimeoutSeconds * 1000);
  timer.unref();
  try {
    await bot?.stop();
    backupRequests?.stop();
    await app.close();
    logger.info('stopped cleanly');
    process.exit(0);
  } catch (error) {
    logger.error({ err: error }, 'error while shutting down');
    process.exit(1);
  }
}
process.once('SIGTERM', () => void shutdown('SIGTERM'));
process.once('SIGINT', () => void shutdown('SIGINT'));

let address: string;
try {
  address = await app.listen({ port: config.port, host: config.host });
} catch (error) {
  const failure = listenFailure(config.host, config.port, error);
  // Releases the database (and the embedded data folder's lock) before saying why.
  await app.close().catch(() => undefined);
  logger.fatal(failure.message);
  process.exit(failure.exitCode);
}
if (config.worker.inApi) await app.startWorker();
// `npm run db:backup` asks the process that holds the embedded database (see db/backup-requests.ts).
backupRequests =
  config.database.kind === 'embedded' && config.database.dataDir !== null
    ? acceptBackupRequests(app.deps.database.db, config.database.dataDir, logger)
    : null;
if (runBot) void startBotWhenPossible();
logger.info(
  { address, database: app.deps.database.kind, docs: `${address}/docs` },
  'API listening',
);

/** The API serves whether or not Telegram can be reached; the bot starts as soon as it can. */
async function startBotWhenPossible(): Promise<void> {
  const { port } = app.server.address() as AddressInfo;
  for (let delayMs = 1_000; !stopping; delayMs = Math.min(delayMs * 2, 60_000)) {
    try {
      // The bot's modules (grammY's runner, the flows) are loaded only by a process that runs it.
      const { startBot } = await import('./bot/run.ts');
      bot = await startBot({
        config,
        logger,
        apiUrl: `http://127.0.0.1:${port}`,
        apiToken: botToken,
      });
      app.telegramUpdates.handle = bot.handleUpdate;
      return;
    } catch (error) {
      logger.error({ err: error }, `the bot could not start; trying again in ${delayMs / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, delayMs).unref());
    }
  }
}
