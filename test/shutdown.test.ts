import { describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { botAuth, buildTestApp } from './helpers/app.ts';
import { freshTelegramId, openTestDatabase } from './helpers/database.ts';
import { waitFor } from './helpers/pipeline.ts';

/** Holds the users table locked until released, so requests that write it stay in flight. */
async function lockUsersTable(database: DatabaseHandle): Promise<() => Promise<void>> {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let locked!: () => void;
  const isLocked = new Promise<void>((resolve) => {
    locked = resolve;
  });
  let done: Promise<unknown>;
  if (database.pool) {
    const client = await database.pool.connect();
    await client.query('BEGIN; LOCK TABLE users IN EXCLUSIVE MODE');
    locked();
    done = gate.then(async () => {
      await client.query('COMMIT');
      client.release();
    });
  } else {
    done = database.pglite!.transaction(async (tx) => {
      await tx.query('LOCK TABLE users IN EXCLUSIVE MODE');
      locked();
      await gate;
    });
  }
  await isLocked;
  return async () => {
    release();
    await done;
  };
}

describe('graceful shutdown', () => {
  it('finishes requests in flight when closing, then refuses new connections', async () => {
    const database = await openTestDatabase();
    const app = await buildTestApp({}, database);
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    // Fastify answers 503 to a request it starts routing once closing; one the server has taken
    // (its 'request' event, which Fastify routes synchronously) before close() must finish.
    const received = new Promise<void>((resolve) => {
      let count = 0;
      app.server.on('request', () => {
        if (++count === 20) resolve();
      });
    });
    const unlock = await lockUsersTable(database);
    const inFlight = Array.from({ length: 20 }, () =>
      fetch(`${address}/api/v1/users/sync`, {
        method: 'POST',
        headers: { ...botAuth, 'content-type': 'application/json' },
        body: JSON.stringify({ telegram_id: freshTelegramId() }),
      }),
    );
    // Every request is in the server (they then wait on the lock); then the server is told to stop,
    // and the lock is released only once it no longer listens.
    await received;
    const closing = app.close();
    await waitFor(
      async () => app.server.listening,
      (listening) => !listening,
    );
    await unlock();
    const responses = await Promise.all(inFlight);
    await closing;
    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(201));
    await expect(fetch(`${address}/api/v1/health`)).rejects.toThrow();
    await database.close();
  });
});
