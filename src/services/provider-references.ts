import { randomBytes } from 'node:crypto';
import type { Config } from '../core/config.ts';
import { type ImageProvider, ProviderError, type ReferenceImage } from '../providers/types.ts';
import { extensionOf, sniffImageType } from '../storage/image-type.ts';
import { REFERENCES_PREFIX, type ResultStore, type StoredObject } from '../storage/results.ts';
import { imageNotFound } from './generation-images.ts';

/**
 * How a reference image the user sent the bot reaches a provider. Its Telegram download link holds
 * the bot token and never leaves this process; big data URIs are what providers advise against
 * (Replicate: only under 1 MB; WaveSpeed documents URLs). In order of preference:
 * 1. PUBLIC_BASE_URL set: we keep it in our storage under an unguessable name (256 random bits)
 *    and serve it at `/api/v1/references/<name>` for REFERENCE_URL_MINUTES, then delete it;
 * 2. else the provider's own upload API (WaveSpeed's media upload, Replicate's files API);
 * 3. else a data URI, when under 1 MB; a bigger image then fails the generation (refunded).
 */

export const DATA_URI_MAX_BYTES = 1024 * 1024;

export async function referenceUrlFor(
  config: Config,
  store: ResultStore,
  provider: ImageProvider,
  image: ReferenceImage,
  signal?: AbortSignal,
): Promise<string> {
  const mimeType = sniffImageType(image.data);
  if (!mimeType) {
    throw new ProviderError(
      'the reference is not a PNG, JPEG, WebP or GIF image',
      false,
      undefined,
      'invalid_input',
    );
  }
  if (config.publicBaseUrl) {
    const name = `${randomBytes(32).toString('base64url')}.${extensionOf(mimeType)}`;
    await store.put(`${REFERENCES_PREFIX}${name}`, image.data, mimeType);
    return `${config.publicBaseUrl}/api/v1/references/${name}`;
  }
  if (provider.uploadReference) return provider.uploadReference({ ...image, mimeType }, signal);
  if (image.data.length < DATA_URI_MAX_BYTES) {
    return `data:${mimeType};base64,${image.data.toString('base64')}`;
  }
  throw new ProviderError(
    `a reference image of ${(image.data.length / 1024 / 1024).toFixed(1)} MB cannot reach ${provider.name}: set PUBLIC_BASE_URL (served from our storage); data URIs are sent only under 1 MB`,
    false,
  );
}

/** 43 base64url characters (32 random bytes) and the image's extension. */
const REFERENCE_NAME = /^[A-Za-z0-9_-]{43}\.(png|jpg|webp|gif)$/;

/** A reference we serve to providers, while its URL lives; 404 for anything else. */
export async function servedReference(
  config: Config,
  store: ResultStore,
  name: string,
): Promise<StoredObject> {
  if (!REFERENCE_NAME.test(name)) throw imageNotFound();
  const object = await store.get(`${REFERENCES_PREFIX}${name}`);
  if (!object) throw imageNotFound();
  const ageMs = Date.now() - object.modifiedAt.getTime();
  if (ageMs > config.storage.referenceUrlMinutes * 60_000) {
    object.body.destroy();
    throw imageNotFound();
  }
  return object;
}
