import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from '../core/logger.ts';
import { type BackupManifest, writeBackup } from './backup.ts';
import type { Database } from './client.ts';
import { lockHolderPid } from './data-dir-lock.ts';

/**
 * A backup of the embedded database while the server runs. Only the server may open its data
 * folder (see data-dir-lock.ts), so `npm run db:backup` asks it: it leaves a request file in the
 * folder and sends SIGUSR2; the server writes the backup and answers with a response file. Whoever
 * can signal the process and write its data folder may ask; nothing is reachable over HTTP.
 * The server names itself in `backup.listener`, so no other process (a migration, which SIGUSR2
 * would end) is ever signalled.
 */
const LISTENER_FILE = 'backup.listener';
const REQUEST_PREFIX = 'backup.request-';
const RESPONSE_PREFIX = 'backup.response-';

interface BackupRequest {
  out: string;
}
type BackupResponse = { ok: true; manifest: BackupManifest } | { ok: false; error: string };

export interface BackupRequestListener {
  stop(): void;
}

/** Serves backup requests in the server process until `stop`. */
export function acceptBackupRequests(
  db: Database,
  dataDir: string,
  logger: Logger,
): BackupRequestListener {
  let queue = Promise.resolve();
  const onSignal = () => {
    queue = queue.then(() => serveRequests(db, dataDir, logger));
  };
  process.on('SIGUSR2', onSignal);
  writeFileSync(join(dataDir, LISTENER_FILE), String(process.pid));
  return {
    stop() {
      process.off('SIGUSR2', onSignal);
      rmSync(join(dataDir, LISTENER_FILE), { force: true });
    },
  };
}

async function serveRequests(db: Database, dataDir: string, logger: Logger): Promise<void> {
  const requests = (await readdir(dataDir)).filter((name) => name.startsWith(REQUEST_PREFIX));
  for (const name of requests) {
    const id = name.slice(REQUEST_PREFIX.length, -'.json'.length);
    const path = join(dataDir, name);
    let response: BackupResponse;
    const started = performance.now();
    try {
      const request = JSON.parse(await readFile(path, 'utf8')) as BackupRequest;
      await rm(path, { force: true });
      const manifest = await writeBackup(db, dataDir, request.out);
      const rows = Object.values(manifest.database.tables).reduce((sum, t) => sum + t.rows, 0);
      logger.info(
        {
          out: request.out,
          rows,
          images: manifest.results.files,
          ms: Math.round(performance.now() - started),
        },
        'backup written',
      );
      response = { ok: true, manifest };
    } catch (error) {
      await rm(path, { force: true });
      logger.error({ err: error }, 'backup failed');
      response = { ok: false, error: error instanceof Error ? error.message : String(error) };
    }
    const answer = join(dataDir, `${RESPONSE_PREFIX}${id}.json`);
    await writeFile(`${answer}.tmp`, JSON.stringify(response));
    await rename(`${answer}.tmp`, answer);
  }
}

export class NoBackupListenerError extends Error {
  constructor(dataDir: string, pid: number) {
    super(
      `${dataDir} is in use by pid ${pid}, which does not take backup requests (a migration, or ` +
        'an older version of the server). Wait for it to finish or stop it, then run db:backup again.',
    );
    this.name = 'NoBackupListenerError';
  }
}

/**
 * Asks the server holding `dataDir` for a backup into `out` (an absolute path) and waits for it.
 * Answers null when no live process holds the folder (then open it directly).
 */
export async function requestBackup(
  dataDir: string,
  out: string,
  timeoutMs: number,
): Promise<BackupManifest | null> {
  const pid = lockHolderPid(dataDir);
  if (pid === null) return null;
  const listener = join(dataDir, LISTENER_FILE);
  if (!existsSync(listener) || readFileSync(listener, 'utf8').trim() !== String(pid)) {
    throw new NoBackupListenerError(dataDir, pid);
  }
  const id = randomUUID();
  const request: BackupRequest = { out };
  await writeFile(join(dataDir, `${REQUEST_PREFIX}${id}.json`), JSON.stringify(request));
  process.kill(pid, 'SIGUSR2');
  const answer = join(dataDir, `${RESPONSE_PREFIX}${id}.json`);
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(answer)) {
    if (lockHolderPid(dataDir) !== pid) {
      throw new Error(`the server (pid ${pid}) stopped before it answered`);
    }
    if (Date.now() > deadline) {
      throw new Error(`the server (pid ${pid}) did not answer within ${timeoutMs / 1000} s`);
    }
    await delay(100);
  }
  const response = JSON.parse(await readFile(answer, 'utf8')) as BackupResponse;
  await rm(answer, { force: true });
  if (!response.ok) throw new Error(`the server could not write the backup: ${response.error}`);
  return response.manifest;
}
