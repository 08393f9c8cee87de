import type Sharp from 'sharp';

let loaded: Promise<typeof Sharp> | null = null;

/**
 * sharp (libvips), loaded by the first image the offline provider draws or edits: a process that
 * never does (an API on PostgreSQL, whose worker runs elsewhere) does not hold its ~20 MB. Its
 * operation cache is off: every call reads a new image, so cached results would only hold memory.
 */
export function loadSharp(): Promise<typeof Sharp> {
  loaded ??= import('sharp').then(({ default: sharp }) => {
    sharp.cache(false);
    return sharp;
  });
  return loaded;
}
