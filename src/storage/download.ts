import { type StoredImageType, sniffImageType } from './image-type.ts';

/** An image we will not keep: final (not an image, too big, refused) or worth retrying. */
export class ImageRefused extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'ImageRefused';
  }
}

export interface CheckedImage {
  data: Buffer;
  mimeType: StoredImageType;
}

const DOWNLOAD_TIMEOUT_MS = 60_000;

/**
 * Bytes we are about to keep, checked: an image by its magic bytes (PNG, JPEG, WebP, GIF), at
 * most `maxBytes`. Anything else is a final failure of the generation, never stored or sent.
 */
export function checkImage(data: Buffer, maxBytes: number): CheckedImage {
  if (data.length > maxBytes) throw tooBig(maxBytes);
  const mimeType = sniffImageType(data);
  if (!mimeType)
    throw new ImageRefused('the provider result is not a PNG, JPEG, WebP or GIF', false);
  return { data, mimeType };
}

/**
 * Downloads a provider's result from its (expiring) URL, refusing it as soon as it grows past
 * `maxBytes`. Network errors, timeouts, 429 and 5xx are worth retrying (the job or the poll tries
 * again); any other answer is final.
 */
export async function downloadImage(
  url: string,
  maxBytes: number,
  signal?: AbortSignal,
): Promise<CheckedImage> {
  const timeout = AbortSignal.timeout(DOWNLOAD_TIMEOUT_MS);
  let response: Response;
  try {
    response = await fetch(url, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
  } catch (error) {
    throw new ImageRefused(`result download failed: ${(error as Error).message}`, true);
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => undefined);
    const status = response.status;
    throw new ImageRefused(
      `result download answered HTTP ${status}`,
      status >= 500 || status === 429 || status === 408,
    );
  }
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (declared > maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    throw tooBig(maxBytes);
  }
  let data: Buffer;
  try {
    data = await readCapped(response, maxBytes);
  } catch (error) {
    if (error instanceof ImageRefused) throw error;
    throw new ImageRefused(`result download failed: ${(error as Error).message}`, true);
  }
  return checkImage(data, maxBytes);
}

async function readCapped(response: Response, maxBytes: number): Promise<Buffer> {
  if (!response.body) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw tooBig(maxBytes);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, total);
}

function tooBig(maxBytes: number): ImageRefused {
  return new ImageRefused(
    `the provider result is over RESULT_MAX_MB (${Math.round(maxBytes / 1024 / 1024)} MB)`,
    false,
  );
}
