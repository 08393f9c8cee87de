// The worker process (server mode). Job handlers arrive with the generation pipeline; until then
// the process starts, checks the schema and waits for a signal, so deployments can include it.
import { loadConfigOrExit } from './core/config.ts';
import { createLogger } from './core/logger.ts';
import { type DatabaseHandle, openDatabase } from './db/client.ts';
import { assertSchemaCurrent, SchemaNotReadyError } from './db/migrate.ts';

let database: DatabaseHandle | null = null;
let keepAlive: NodeJS.Timeout | undefined;
// Installed first, so a signal during start-up still stops the process cleanly.
const stop = async () => {
  clearInterval(keepAlive);
  await database?.close();
  process.exit(0);
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());

const config = loadConfigOrExit();
const logger = createLogger(config);
if (config.database.kind === 'embedded') {
  logger.fatal(
    'the worker runs as its own process only on PostgreSQL; embedded mode runs it inside `npm start`',
  );
  process.exit(78);
}
try {
  database = await openDatabase(config.database, logger);
  await assertSchemaCurrent(database);
} catch (error) {
  logger.fatal(
    error instanceof SchemaNotReadyError ? error.message : { err: error },
    'worker cannot start',
  );
  await database?.close();
  process.exit(error instanceof SchemaNotReadyError ? 75 : 1);
}
logger.info('worker ready (no job kinds registered yet)');
keepAlive = setInterval(() => undefined, 1 << 30);
