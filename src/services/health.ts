import type { DatabaseHandle } from '../db/client.ts';

export interface DatabaseHealth {
  status: 'up' | 'down';
  kind: DatabaseHandle['kind'];
  latency_ms: number;
  error?: string;
}

const PING_TIMEOUT_MS = 2_000;

/** Whether the database answers a trivial query, and how fast. Never throws. */
export async function checkDatabase(handle: DatabaseHandle): Promise<DatabaseHealth> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      handle.ping(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${PING_TIMEOUT_MS} ms`)),
          PING_TIMEOUT_MS,
        );
      }),
    ]);
    return { status: 'up', kind: handle.kind, latency_ms: elapsed(started) };
  } catch (error) {
    return {
      status: 'down',
      kind: handle.kind,
      latency_ms: elapsed(started),
      error: error instanceof Error ? error.message : String(error),
    };
  } finally {
    clearTimeout(timer);
  }
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 100) / 100;
}
