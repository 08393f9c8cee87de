import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../../src/core/logger.ts';

export interface LogLine {
  level: number;
  msg: string;
  generationId?: string;
  requestId?: string;
  [field: string]: unknown;
}

/** A logger at info whose every line, parsed from the JSON the app writes, lands in `lines`. */
export function capturedLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const capture = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString().split('\n')) {
        if (text.trim()) lines.push(JSON.parse(text) as LogLine);
      }
      done();
    },
  });
  return { logger: pino({ level: 'info' }, capture), lines };
}
