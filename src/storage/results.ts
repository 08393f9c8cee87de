import type { Readable } from 'node:stream';
import { extensionOf } from './image-type.ts';

/**
 * Where images we keep live: every provider result (copied when it completes, before delivery)
 * and the references we serve to providers. Two backends behind this one interface: a folder
 * under DATA_DIR (local.ts, embedded) and S3-compatible object storage (s3.ts, several hosts).
 *
 * Objects are named by keys: `results/<generation id>/<position>.<ext>` and
 * `references/<token>.<ext>`; reference images users upload: `uploads/<telegram id>/<token>.<ext>`. The key, not a path or URL, is what the database records, so the
 * store can move.
 */

export interface StoredObject {
  body: Readable;
  size: number;
  contentType: string;
  modifiedAt: Date;
}

export type StorageBackend = 'local' | 's3';

export const RESULTS_PREFIX = 'results/';
export const REFERENCES_PREFIX = 'references/';
export const UPLOADS_PREFIX = 'uploads/';

/** Keys are made by us; anything else (a `..`, a leading slash) is refused before it is used. */
const KEY_PATTERN = /^(results|references|uploads)\/[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)?\.[a-z0-9]+$/;

export function assertKey(key: string): string {
  if (!KEY_PATTERN.test(key)) throw new Error(`not a key of the result store: ${key}`);
  return key;
}

export abstract class ResultStore {
  abstract readonly backend: StorageBackend;

  /** Writes the object whole (a retry or a reader never sees half of it). */
  abstract put(key: string, data: Buffer, contentType: string): Promise<void>;

  /** The object as a stream, or null when there is none. */
  abstract get(key: string): Promise<StoredObject | null>;

  /** A short-lived URL a client may fetch the object from directly, or null: the API streams it. */
  abstract directUrl(key: string): Promise<string | null>;

  /** Deletes the objects under `prefix` last written before `cutoff`; answers how many. */
  abstract deleteOlderThan(prefix: string, cutoff: Date): Promise<number>;

  /** The object's file on this host, when the backend is a folder (Telegram uploads stream it). */
  localFile(_key: string): string | null {
    return null;
  }

  /** Stores a generation's image and answers its key. */
  async save(
    generationId: string,
    position: number,
    data: Buffer,
    mimeType: string,
  ): Promise<string> {
    const key = assertKey(`${RESULTS_PREFIX}${generationId}/${position}.${extensionOf(mimeType)}`);
    await this.put(key, data, mimeType);
    return key;
  }

  /** The whole object in memory (images are bounded by RESULT_MAX_MB), or null. */
  async read(key: string): Promise<Buffer | null> {
    const object = await this.get(key);
    if (!object) return null;
    const chunks: Buffer[] = [];
    for await (const chunk of object.body) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }
}
