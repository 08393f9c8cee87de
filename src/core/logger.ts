import { pino, type Logger } from 'pino';
import type { Config } from './config.ts';

export type { Logger };

/** Paths that may carry a secret; pino replaces their values before a line is written. */
const redactedPaths = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-telegram-init-data"]',
  'headers.authorization',
  'authorization',
  'token',
  'password',
  'initData',
];

export function createLogger(config: Pick<Config, 'logLevel' | 'logPretty'>): Logger {
  return pino({
    level: config.logLevel,
    redact: { paths: redactedPaths, censor: '[redacted]' },
    ...(config.logPretty
      ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } }
      : {}),
  });
}
