// The worker process (server mode). Job handlers arrive with the generation pipeline; until then
// the process starts, checks the schema and waits for a signal, so deployments can include it.
import { ConfigError, loadConfig, readEnvironment } from './core/config.ts';
import { createLogger } from './core/logger.ts';
import { openDatabase } from './db/client.ts';
import { assertSchemaCurrent } from './db/migrate.ts';

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(readEnvironment());
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\nSee .env.example for every setting and its default.\n`);
    process.exit(78);
  }
  throw error;
}
const logger = createLogger(config);
if (config.database.kind === 'embedded') {
  logger.fatal(
    'the worker runs as its own process only on PostgreSQL; embedded mode runs it inside `npm start`',
  );
  process.exit(78);
}
const database = await openDatabase(config.database, logger);
await assertSchemaCurrent(database);
logger.info('worker ready (no job kinds registered yet)');
const keepAlive = setInterval(() => undefined, 1 << 30);
const stop = async () => {
  clearInterval(keepAlive);
  await database.close();
  process.exit(0);
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
