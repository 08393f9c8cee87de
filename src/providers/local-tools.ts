import type Sharp from 'sharp';
import { loadSharp } from './load-sharp.ts';
import { ProviderError } from './types.ts';

/**
 * What the offline provider does for the catalog's tools, so the whole tool flow (a photo in, a
 * processed photo out) runs with no provider account. Each tool is a plain, deterministic image
 * operation on the given image (libvips through sharp): the same image and parameters always give
 * the same bytes. They stand in for the real models' work; they are not meant to be as good.
 *
 * - upscale (`wavespeed-ai/ultimate-image-upscaler`): really enlarges, ×2 / ×3 / ×4 for
 *   `target_resolution` 2k / 4k / 8k, the long side capped at LOCAL_TOOL_MAX_SIDE (an image
 *   already that big keeps its size), then a light sharpen.
 * - watermark removal: a 5-pixel median filter (small marks and text melt away).
 * - denoise: a median filter of 3 / 5 / 7 pixels for `model` Normal / Strong / Extreme.
 * - restore: a median filter (3, or 5 for Dust-Scratch V2) and a contrast stretch.
 * - enhance (and any other tool model): a sharpen, a contrast stretch and a little more saturation.
 * The result has the input's size (except upscale) and format (JPEG stays JPEG, anything else
 * becomes PNG).
 */

/** The longest side the offline upscaler makes: outputs stay small, as tests and disks like. */
export const LOCAL_TOOL_MAX_SIDE = 2048;
/** Bigger inputs are refused rather than decoded (a decompression bomb costs memory, not bytes). */
const MAX_INPUT_PIXELS = 40_000_000;
/** Data URIs bigger than Telegram's 20 MB bot download limit are not ours. */
const MAX_INPUT_BYTES = 20 * 1024 * 1024;

export type LocalToolOperation = 'upscale' | 'remove-watermark' | 'denoise' | 'restore' | 'enhance';

/** The provider models the catalog's tools name, and what the offline provider does for each. */
const OPERATIONS: Readonly<Record<string, LocalToolOperation>> = {
  'wavespeed-ai/ultimate-image-upscaler': 'upscale',
  'wavespeed-ai/image-watermark-remover': 'remove-watermark',
  'topaz/image/denoise': 'denoise',
  'topaz/image/restore': 'restore',
  'topaz/image/enhance': 'enhance',
};

/** The operation for a tool's provider model; an unknown one upscales if asked for a resolution. */
export function localToolOperation(
  providerModel: string,
  parameters: Readonly<Record<string, string>>,
): LocalToolOperation {
  return OPERATIONS[providerModel] ?? ('target_resolution' in parameters ? 'upscale' : 'enhance');
}

export interface ToolOutput {
  data: Buffer;
  mimeType: 'image/jpeg' | 'image/png';
  width: number;
  height: number;
}

/** A refusal of the input itself: the generation fails as bad input, never retried. */
function badInput(message: string): ProviderError {
  return new ProviderError(`local: ${message}`, false, undefined, 'invalid_input');
}

/**
 * The image a reference stands for. Only data URIs are read (the worker hands Telegram files over
 * as data URIs): the offline provider never goes to the network, so an https reference is refused.
 */
export function imageFromReference(reference: string | undefined): Buffer {
  if (reference === undefined) throw badInput('this tool needs an image');
  if (/^https?:/i.test(reference)) {
    throw badInput(
      'the offline provider does not download images from URLs; send the image as a Telegram file',
    );
  }
  const match = /^data:([^;,]*)(;base64)?,(.*)$/s.exec(reference);
  if (!match) throw badInput('the reference is not an image it can read');
  const payload = match[3] ?? '';
  if (payload.length > (MAX_INPUT_BYTES * 4) / 3 + 4) throw badInput('the image is too big');
  return match[2] ? Buffer.from(payload, 'base64') : Buffer.from(decodeURIComponent(payload));
}

export async function runLocalTool(
  operation: LocalToolOperation,
  input: Buffer,
  parameters: Readonly<Record<string, string>>,
): Promise<ToolOutput> {
  const sharp = await loadSharp();
  const source = sharp(input, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error' });
  let metadata: Sharp.Metadata;
  try {
    metadata = await source.metadata();
  } catch (error) {
    throw badInput(`the image cannot be read (${(error as Error).message})`);
  }
  const { width, height, format } = metadata;
  if (!width || !height || !['jpeg', 'png', 'webp', 'gif', 'tiff'].includes(format ?? '')) {
    throw badInput('the image is not a JPEG, PNG or WebP picture');
  }
  // Photos carry their orientation in EXIF: apply it, so the result looks like what the user saw.
  let image = source.clone().rotate().removeAlpha().toColourspace('srgb');
  switch (operation) {
    case 'upscale': {
      const factor = { '2k': 2, '4k': 3, '8k': 4 }[parameters.target_resolution ?? '4k'] ?? 3;
      const long = Math.max(width, height);
      const target = Math.min(long * factor, Math.max(LOCAL_TOOL_MAX_SIDE, long));
      const scale = target / long;
      image = image
        .resize(Math.round(width * scale), Math.round(height * scale), {
          kernel: 'lanczos3',
          fit: 'fill',
        })
        .sharpen({ sigma: 0.8 });
      break;
    }
    case 'remove-watermark':
      image = image.median(5);
      break;
    case 'denoise':
      image = image.median({ Strong: 5, Extreme: 7 }[parameters.model ?? ''] ?? 3);
      break;
    case 'restore':
      image = image.median(parameters.model === 'Dust-Scratch V2' ? 5 : 3).normalise();
      break;
    case 'enhance':
      image = image.sharpen({ sigma: 1.2 }).normalise().modulate({ saturation: 1.15 });
      break;
  }
  const asJpeg = format === 'jpeg';
  try {
    const { data, info } = await (asJpeg
      ? image.jpeg({ quality: 90, mozjpeg: false })
      : image.png({ compressionLevel: 6 })
    ).toBuffer({ resolveWithObject: true });
    return {
      data,
      mimeType: asJpeg ? 'image/jpeg' : 'image/png',
      width: info.width,
      height: info.height,
    };
  } catch (error) {
    throw badInput(`the image cannot be processed (${(error as Error).message})`);
  }
}
