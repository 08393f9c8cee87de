import { sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
import { selectRows } from '../db/rows.ts';
import type { ResultStore } from '../storage/results.ts';
import type { ServiceContext } from './context.ts';

export const imageNotFound = () => new AppError('image_not_found', 'No such stored image.');

/** A stored image of a generation: its file and type, or 404 when there is none. */
export async function storedImage(
  ctx: ServiceContext,
  store: ResultStore,
  generationId: string,
  position: number,
): Promise<{ path: string; mimeType: string }> {
  const [row] = await selectRows<{ storage_path: string | null; mime_type: string }>(
    ctx.db,
    sql`SELECT storage_path, mime_type FROM generation_results
        WHERE request_id = ${generationId} AND position = ${position}`,
  );
  if (!row?.storage_path) throw imageNotFound();
  return { path: store.absolute(row.storage_path), mimeType: row.mime_type };
}
