import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataDirLockedError, lockDataDir } from '../src/db/data-dir-lock.ts';
import { startServer } from './helpers/process.ts';

const dataDir = mkdtempSync(join(tmpdir(), 'imagegen-data-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('the server process on the embedded database', () => {
  it('serves, refuses a second process on the same DATA_DIR, and stops cleanly on SIGTERM', async () => {
    const first = startServer({ DATA_DIR: dataDir });
    try {
      const url = await first.listening;
      const health = await fetch(`${url}/api/v1/health`);
      expect(health.status).toBe(200);
      expect(existsSync(join(dataDir, 'backend.lock'))).toBe(true);

      const second = startServer({ DATA_DIR: dataDir });
      const code = await second.exited;
      expect(code).toBe(75);
      expect(second.output()).toMatch(/already in use by another process \(pid \d+/);
      // The first one was not disturbed.
      expect((await fetch(`${url}/api/v1/health`)).status).toBe(200);

      first.child.kill('SIGTERM');
      expect(await first.exited).toBe(0);
      expect(first.output()).toContain('stopped cleanly');
      expect(existsSync(join(dataDir, 'backend.lock'))).toBe(false);
    } finally {
      if (first.child.exitCode === null) {
        first.child.kill('SIGKILL');
        await first.exited;
      }
    }
  }, 120_000);

  it('keeps its data across restarts and takes over the lock of a killed process', async () => {
    const first = startServer({ DATA_DIR: dataDir, API_TOKENS: 'process-test-token-123456' });
    const url = await first.listening;
    const headers = {
      authorization: 'Bearer process-test-token-123456',
      'content-type': 'application/json',
    };
    const created = await fetch(`${url}/api/v1/users/sync`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ telegram_id: 4242, username: 'persisted' }),
    });
    expect([200, 201]).toContain(created.status);
    // A crash: no chance to release the lock.
    first.child.kill('SIGKILL');
    await first.exited;
    expect(existsSync(join(dataDir, 'backend.lock'))).toBe(true);

    const second = startServer({ DATA_DIR: dataDir, API_TOKENS: 'process-test-token-123456' });
    try {
      const again = await second.listening;
      const balance = await fetch(`${again}/api/v1/users/4242/balance`, { headers });
      expect(balance.status).toBe(200);
      expect(await balance.json()).toEqual({ telegram_id: 4242, balance: 0 });
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  }, 120_000);

  it('stops cleanly when `npm start` gets SIGTERM (a service manager stopping it), leaving no process behind', async () => {
    const started = startServer({ DATA_DIR: dataDir }, 'npm start');
    let serverPid = 0;
    try {
      const url = await started.listening;
      expect((await fetch(`${url}/api/v1/health`)).status).toBe(200);
      serverPid = Number(/"pid":(\d+)/.exec(started.output())?.[1]);
      expect(serverPid).not.toBe(started.child.pid);
      // npm passes the signal to its script's process: the server itself, not a shell around it.
      started.child.kill('SIGTERM');
      await started.exited;
      expect(started.output()).toContain('stopped cleanly');
      expect(() => process.kill(serverPid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
      expect(existsSync(join(dataDir, 'backend.lock'))).toBe(false);
    } finally {
      if (started.child.exitCode === null) started.child.kill('SIGKILL');
      // A server npm left running would hold the data folder's lock for the next test.
      if (serverPid > 0) {
        try {
          process.kill(serverPid, 'SIGKILL');
        } catch {
          // Gone, as it should be.
        }
      }
    }
  }, 120_000);

  it('stops at start with a message naming a bad setting', async () => {
    const server = startServer({ DATABASE_URL: 'memory://', RATE_LIMIT_MAX: 'lots' });
    expect(await server.exited).toBe(78);
    expect(server.output()).toMatch(/RATE_LIMIT_MAX must be an integer/);
  }, 60_000);
});

describe('lockDataDir', () => {
  it('refuses a second lock in the same process and frees on release', () => {
    const dir = mkdtempSync(join(tmpdir(), 'imagegen-lock-'));
    try {
      const lock = lockDataDir(dir);
      expect(() => lockDataDir(dir)).toThrow(DataDirLockedError);
      lock.release();
      lockDataDir(dir).release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
