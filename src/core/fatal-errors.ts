import type { Logger } from './logger.ts';

/**
 * What a process entry does with an error nothing handled: log it as one structured line, then
 * exit 1 so the supervisor starts a clean process. Lost database or Redis connections are not such
 * errors: those are handled where they happen (the pool, the LISTEN connection, the worker's loop
 * retry with backoff), so reaching this is a bug to fix, never the way an outage is survived.
 */
export function exitOnUnhandledErrors(logger: Logger): void {
  process.on('unhandledRejection', (reason) => {
    logger.fatal({ err: reason }, 'unhandled promise rejection; exiting');
    process.exit(1);
  });
  process.on('uncaughtException', (error) => {
    logger.fatal({ err: error }, 'uncaught exception; exiting');
    process.exit(1);
  });
}
