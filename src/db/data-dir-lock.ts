import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

/**
 * PGlite has no locking of its own: two processes opening one folder both appear to work and one
 * silently loses its writes. Embedded mode therefore holds this lock for the life of the process.
 */
export class DataDirLockedError extends Error {
  constructor(dataDir: string, holder: string) {
    super(
      `The embedded database in ${dataDir} is already in use by another process (${holder}). ` +
        'Only one process may open it: stop the other one, or for several processes use ' +
        'PostgreSQL (DATABASE_URL=postgres://…).',
    );
    this.name = 'DataDirLockedError';
  }
}

export interface DataDirLock {
  release(): void;
}

interface LockOwner {
  pid: number;
  host: string;
  startedAt: string;
}

/** Locks this process holds: a lock file naming our own pid but not in here was left by an earlier
 * process that had the same pid (a restarted container is pid 1 again), so it is stale. */
const heldByThisProcess = new Set<string>();

export function lockDataDir(dataDir: string): DataDirLock {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, 'backend.lock');
  const me: LockOwner = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, JSON.stringify(me));
      closeSync(fd);
      heldByThisProcess.add(path);
      let released = false;
      return {
        release() {
          if (released) return;
          released = true;
          heldByThisProcess.delete(path);
          rmSync(path, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = readOwner(path);
      if (owner && isAlive(owner, heldByThisProcess.has(path))) {
        throw new DataDirLockedError(
          dataDir,
          `pid ${owner.pid} on ${owner.host} since ${owner.startedAt}`,
        );
      }
      // The holder died without releasing (crash, kill -9): the lock is stale, take it over.
      rmSync(path, { force: true });
    }
  }
  throw new DataDirLockedError(dataDir, 'another process took the lock at the same moment');
}

/** The live process on this host that holds the data folder's lock, if any. */
export function lockHolderPid(dataDir: string): number | null {
  const owner = readOwner(join(dataDir, 'backend.lock'));
  if (!owner || owner.host !== hostname()) return null;
  return isAlive(owner, heldByThisProcess.has(join(dataDir, 'backend.lock'))) ? owner.pid : null;
}

function readOwner(path: string): LockOwner | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as LockOwner;
  } catch {
    return null;
  }
}

function isAlive(owner: LockOwner, heldHere: boolean): boolean {
  // A lock written on another host (a shared volume) cannot be checked from here: respect it.
  if (owner.host !== hostname()) return true;
  if (owner.pid === process.pid) return heldHere;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
