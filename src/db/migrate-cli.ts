// `npm run db:migrate`: apply pending migrations to the configured database and exit.
import { loadConfig, readEnvironment } from '../core/config.ts';
import { createLogger } from '../core/logger.ts';
import { openDatabase } from './client.ts';
import { migrateDatabase } from './migrate.ts';

const config = loadConfig(readEnvironment());
const logger = createLogger(config);
const handle = await openDatabase(config.database, logger);
try {
  await migrateDatabase(handle);
  logger.info({ database: handle.kind }, 'migrations applied');
} finally {
  await handle.close();
}
