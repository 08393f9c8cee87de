// `npm run db:migrate`: apply pending migrations to the configured database and exit.
import { loadConfigOrExit } from '../core/config.ts';
import { createLogger } from '../core/logger.ts';
import { unreachableService } from '../core/start-failure.ts';
import { openDatabase } from './client.ts';
import { DataDirLockedError } from './data-dir-lock.ts';
import { migrateDatabase } from './migrate.ts';

const config = loadConfigOrExit();
const logger = createLogger(config);
try {
  const handle = await openDatabase(config.database, logger);
  try {
    await migrateDatabase(handle);
    logger.info({ database: handle.kind }, 'migrations applied');
  } finally {
    await handle.close();
  }
} catch (error) {
  const unreachable =
    config.database.kind === 'postgres'
      ? unreachableService('the database', 'DATABASE_URL', config.database.url, error)
      : null;
  if (unreachable) {
    logger.fatal(unreachable.message);
    process.exit(unreachable.exitCode);
  }
  if (error instanceof DataDirLockedError) {
    logger.fatal(error.message);
    process.exit(75);
  }
  logger.fatal({ err: error }, 'migrations failed');
  process.exit(1);
}
