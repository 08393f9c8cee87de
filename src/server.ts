// The API process: config → buildApp → listen; on SIGTERM/SIGINT stop accepting, let in-flight
// requests finish, close the database, exit 0.
import { buildApp } from './app.ts';
import { loadConfigOrExit } from './core/config.ts';
import { exitOnUnhandledErrors } from './core/fatal-errors.ts';
import { createLogger } from './core/logger.ts';
import { listenFailure, StartFailure } from './core/start-failure.ts';
import { DataDirLockedError } from './db/data-dir-lock.ts';
import { SchemaNotReadyError } from './db/migrate.ts';

const config = loadConfigOrExit();

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
logger.info(
  { address, database: app.deps.database.kind, docs: `${address}/docs` },
  'API listening',
);
