import { sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
import { selectRows } from '../db/rows.ts';
import type { ResultStore, StoredObject } from '../storage/results.ts';
import type { ServiceContext } from './context.ts';

export const imageNotFound = () => new AppError('image_not_found', 'No such stored image.');

export type ImageAnswer = { redirect: string } | { object: StoredObject; mimeType: string };

/**
 * A stored image of a generation: a short-lived direct URL where the store offers one (S3's
 * presigned), else the object to stream; 404 when there is none (never stored, or deleted after
 * RESULT_RETENTION_DAYS).
 */
export async function storedImage(
  ctx: ServiceContext,
  store: ResultStore,
  generationId: string,
  position: number,
): Promise<ImageAnswer> {
  const [row] = await selectRows<{ storage_path: string | null; mime_type: string }>(
    ctx.db,
    sql`SELECT storage_path, mime_type FROM generation_results
        WHERE request_id = ${generationId} AND position = ${position}`,
  );
  if (!row?.storage_path) throw imageNotFound();
  const redirect = await store.directUrl(row.storage_path);
  if (redirect) return { redirect };
  const object = await store.get(row.storage_path);
  // The row without its object: deleted by retention, or a DATA_DIR not shared with the worker.
  if (!object) throw imageNotFound();
  return { object, mimeType: row.mime_type };
}
