// The worker process (server mode, PostgreSQL): runs generation and delivery jobs. Start as many
// as the providers' capacity needs; they share the queue through SKIP LOCKED and leases.
import { loadConfigOrExit } from './core/config.ts';
import { exitOnUnhandledErrors } from './core/fatal-errors.ts';
import { createLogger } from './core/logger.ts';
import { unreachableService } from './core/start-failure.ts';
import { type DatabaseHandle, openDatabase } from './db/client.ts';
import { assertSchemaCurrent, SchemaNotReadyError } from './db/migrate.ts';
import { startWorker } from './jobs/runtime.ts';
import type { JobWorker } from './jobs/worker.ts';
import { providersFromConfig } from './providers/registry.ts';
import { createResultStore } from './storage/create.ts';

let database: DatabaseHandle | null = null;
let worker: JobWorker | null = null;
let stopping = false;
// Installed first, so a signal during start-up still stops the process cleanly.
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await worker?.stop(config.shutdownTimeoutSeconds * 1000);
  await database?.close();
  process.exit(0);
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());

const config = loadConfigOrExit();
const logger = createLogger(config);
exitOnUnhandledErrors(logger);
if (config.database.kind === 'embedded') {
  logger.fatal(
    'the worker runs as its own process only on PostgreSQL; embedded mode runs it inside `npm start`',
  );
  process.exit(78);
}
try {
  database = await openDatabase(config.database, logger);
  await assertSchemaCurrent(database);
  worker = await startWorker({
    ctx: { db: database.db, config, providers: providersFromConfig(config) },
    database,
    store: await createResultStore(config),
    logger,
  });
} catch (error) {
  await database?.close().catch(() => undefined);
  const unreachable = unreachableService(
    'the database',
    'DATABASE_URL',
    config.database.url,
    error,
  );
  if (error instanceof SchemaNotReadyError) {
    logger.fatal(error.message);
    process.exit(75);
  } else if (unreachable) {
    logger.fatal(unreachable.message);
    process.exit(unreachable.exitCode);
  }
  logger.fatal({ err: error }, 'worker cannot start');
  process.exit(1);
}
