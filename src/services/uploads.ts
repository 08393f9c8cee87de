import { randomBytes } from 'node:crypto';
import { AppError } from '../core/errors.ts';
import { queryText } from '../db/rows.ts';
import { extensionOf, sniffImageType } from '../storage/image-type.ts';
import { assertKey, type ResultStore, UPLOADS_PREFIX } from '../storage/results.ts';
import type { ServiceContext } from './context.ts';
import type { FieldProblem, Reference } from './generation-input.ts';
import { userNotFound } from './users.ts';

/**
 * Reference images a user uploads (the Mini App takes them from the phone): kept in the result
 * store under the user's own folder with an unguessable name (256 random bits), and given to a
 * generation as `upload:<name>`. Only the owner's generations can use them: the name is looked up
 * in the requesting user's folder. Housekeeping deletes them with the results.
 */

export interface StoredUpload {
  /** What POST /generations takes in `references`. */
  reference: string;
  content_type: string;
  size: number;
}

export function uploadKey(telegramId: number, name: string): string {
  return assertKey(`${UPLOADS_PREFIX}${telegramId}/${name}`);
}

/** Stores an image a user uploaded, judged by its bytes; `maxBytes` is UPLOAD_MAX_MB. */
export async function storeUpload(
  ctx: ServiceContext,
  store: ResultStore,
  telegramId: number,
  data: Buffer,
  maxBytes: number,
): Promise<StoredUpload> {
  if (data.length === 0) throw new AppError('validation_failed', 'The upload is empty.');
  if (data.length > maxBytes) {
    throw new AppError(
      'payload_too_large',
      `An upload may be at most ${maxBytes / 1024 / 1024} MB (UPLOAD_MAX_MB).`,
    );
  }
  const contentType = sniffImageType(data);
  if (!contentType) {
    throw new AppError(
      'unsupported_media_type',
      'Only PNG, JPEG, WebP and GIF images can be uploaded (judged by their bytes).',
    );
  }
  const [user] = await queryText(ctx.db, 'SELECT 1 FROM users WHERE telegram_id = $1', [
    telegramId,
  ]);
  if (!user) throw userNotFound(telegramId);
  const name = `${randomBytes(32).toString('base64url')}.${extensionOf(contentType)}`;
  await store.put(uploadKey(telegramId, name), data, contentType);
  return { reference: `upload:${name}`, content_type: contentType, size: data.length };
}

/** The references of kind `upload` that are not the user's own stored uploads. */
export async function missingUploads(
  store: ResultStore | undefined,
  telegramId: number,
  references: readonly Reference[],
): Promise<FieldProblem[]> {
  const problems = await Promise.all(
    references.map(async (reference, index): Promise<FieldProblem | null> => {
      if (reference.kind !== 'upload') return null;
      const object = store ? await store.get(uploadKey(telegramId, reference.value)) : null;
      if (object) {
        object.body.destroy();
        return null;
      }
      return {
        field: `body.references.${index}`,
        message: 'is not an upload of this user (or it has been deleted)',
      };
    }),
  );
  return problems.filter((problem) => problem !== null);
}

/** An uploaded reference's bytes, for the job that sends it to a provider. */
export async function readUpload(
  store: ResultStore,
  telegramId: number,
  name: string,
): Promise<Buffer> {
  const data = await store.read(uploadKey(telegramId, name));
  if (!data) throw new Error(`the uploaded reference ${name} is no longer stored`);
  return data;
}
