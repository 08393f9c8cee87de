import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { assertKey, ResultStore, type StoredObject } from './results.ts';

const TYPES: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  webp: 'image/webp',
  gif: 'image/gif',
};

/**
 * The store as a folder under DATA_DIR (embedded mode: one host). An object's key is its path
 * below the folder; its type is told by its extension, which only we choose.
 */
export class LocalResultStore extends ResultStore {
  readonly backend = 'local' as const;
  private readonly root: string;

  constructor(dataDir: string) {
    super();
    this.root = resolve(dataDir);
  }

  async put(key: string, data: Buffer): Promise<void> {
    const target = this.pathOf(key);
    await mkdir(dirname(target), { recursive: true });
    const temporary = `${target}.${randomUUID()}.tmp`;
    await writeFile(temporary, data);
    await rename(temporary, target);
  }

  async get(key: string): Promise<StoredObject | null> {
    const path = this.pathOf(key);
    const info = await stat(path).catch(() => null);
    if (!info?.isFile()) return null;
    return {
      body: createReadStream(path),
      size: info.size,
      contentType: TYPES[path.slice(path.lastIndexOf('.') + 1)] ?? 'application/octet-stream',
      modifiedAt: info.mtime,
    };
  }

  async directUrl(): Promise<string | null> {
    return null;
  }

  override localFile(key: string): string {
    return this.pathOf(key);
  }

  async deleteOlderThan(prefix: string, cutoff: Date): Promise<number> {
    return this.sweep(join(this.root, prefix), cutoff.getTime());
  }

  /** Deletes old files below `folder`, then the folders they leave empty. */
  private async sweep(folder: string, cutoffMs: number): Promise<number> {
    const entries = await readdir(folder, { withFileTypes: true }).catch(() => []);
    let deleted = 0;
    for (const entry of entries) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) {
        deleted += await this.sweep(path, cutoffMs);
        // Fails (and is left) while something is still inside, or was just written into it.
        await rmdir(path).catch(() => undefined);
      } else {
        const info = await stat(path).catch(() => null);
        if (info && info.mtimeMs < cutoffMs) {
          await rm(path, { force: true });
          deleted += 1;
        }
      }
    }
    return deleted;
  }

  private pathOf(key: string): string {
    const target = resolve(this.root, assertKey(key));
    if (!target.startsWith(`${this.root}${sep}`)) {
      throw new Error(`key outside the result store: ${key}`);
    }
    return target;
  }
}
