import { createHash } from 'node:crypto';
import { loadSharp } from './load-sharp.ts';

/**
 * What the offline provider draws for a text→image request: a picture of the requested shape
 * (scaled down so its long side is at most DRAWING_MAX_SIDE) with the prompt written on it, on a
 * background whose colours come from the request, so a new user trying the README sees their own
 * words come back. SVG rendered by sharp (librsvg, system fonts through fontconfig); the same
 * request gives the same bytes on a machine.
 */

export const DRAWING_MAX_SIDE = 512;
const DRAWING_MIN_SIDE = 64;

export interface Drawing {
  data: Buffer;
  width: number;
  height: number;
  seed: number;
}

/** The requested size: `size` (1024*1536), else `aspect_ratio` (16:9) and `resolution` (2k). */
export function requestedSize(parameters: Readonly<Record<string, string>>): {
  width: number;
  height: number;
} {
  const explicit = /^(\d+)\*(\d+)$/.exec(parameters.size ?? '');
  if (explicit) return { width: Number(explicit[1]), height: Number(explicit[2]) };
  const long = { '2k': 2048, '4k': 4096 }[parameters.resolution ?? ''] ?? 1024;
  const ratio = /^(\d+):(\d+)$/.exec(parameters.aspect_ratio ?? '');
  if (!ratio) return { width: long, height: long };
  const [across, down] = [Number(ratio[1]), Number(ratio[2])];
  return across >= down
    ? { width: long, height: Math.round((long * down) / across) }
    : { width: Math.round((long * across) / down), height: long };
}

/** The drawing's size: the requested shape, its long side at most DRAWING_MAX_SIDE. */
export function drawingSize(parameters: Readonly<Record<string, string>>): {
  width: number;
  height: number;
} {
  const { width, height } = requestedSize(parameters);
  const scale = Math.min(1, DRAWING_MAX_SIDE / Math.max(width, height));
  return {
    width: Math.max(DRAWING_MIN_SIDE, Math.round(width * scale)),
    height: Math.max(DRAWING_MIN_SIDE, Math.round(height * scale)),
  };
}

export async function drawPrompt(request: {
  prompt: string;
  model: string;
  parameters: Readonly<Record<string, string>>;
}): Promise<Drawing> {
  const { width, height } = drawingSize(request.parameters);
  const seed = createHash('sha256')
    .update(JSON.stringify([request.prompt, request.parameters, request.model]))
    .digest()
    .readUInt32BE(0);
  const svg = pictureSvg(request.prompt, request.model, width, height, seed);
  const sharp = await loadSharp();
  const data = await sharp(Buffer.from(svg)).removeAlpha().png({ compressionLevel: 6 }).toBuffer();
  return { data, width, height, seed };
}

function pictureSvg(prompt: string, model: string, width: number, height: number, seed: number) {
  const hue = seed % 360;
  const margin = Math.round(Math.min(width, height) * 0.06);
  const footerSize = Math.max(9, Math.round(Math.min(width, height) / 28));
  const text = layOut(
    prompt.replace(/\s+/g, ' ').trim(),
    width - 4 * margin,
    height - 4 * margin - 2 * footerSize,
  );
  const lineHeight = Math.round(text.fontSize * 1.25);
  const top = (height - footerSize * 2 - lineHeight * text.lines.length) / 2 + text.fontSize;
  const lines = text.lines
    .map(
      (line, index) =>
        `<text x="${width / 2}" y="${Math.round(top + index * lineHeight)}">${escapeXml(line)}</text>`,
    )
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
<defs><linearGradient id="bg" x1="0" y1="0" x2="1" y2="1">
<stop offset="0" stop-color="hsl(${hue},70%,55%)"/>
<stop offset="1" stop-color="hsl(${(hue + 40 + ((seed >>> 9) % 140)) % 360},70%,35%)"/>
</linearGradient></defs>
<rect width="${width}" height="${height}" fill="url(#bg)"/>
<rect x="${margin}" y="${margin}" width="${width - 2 * margin}" height="${height - 2 * margin}" rx="${margin}" fill="#ffffff" fill-opacity="0.85"/>
<g font-family="DejaVu Sans, Liberation Sans, sans-serif" font-size="${text.fontSize}" fill="#1b1b1b" text-anchor="middle">${lines}</g>
<text x="${width / 2}" y="${height - margin - footerSize * 0.6}" font-family="DejaVu Sans, sans-serif" font-size="${footerSize}" fill="#555555" text-anchor="middle">${escapeXml(model)}</text>
</svg>`;
}

/**
 * The prompt in lines that fit the box: the biggest font (of a sensible range) at which it fits,
 * else the smallest with the text cut short by an ellipsis. Widths are estimated (an average
 * glyph is about 0.6 em wide in DejaVu Sans), which is enough to keep the text inside the panel.
 */
function layOut(prompt: string, boxWidth: number, boxHeight: number) {
  const largest = Math.max(10, Math.min(48, Math.round(boxWidth / 8)));
  let fontSize = largest;
  for (; fontSize >= 10; fontSize -= 2) {
    const lines = wrap(prompt, Math.max(4, Math.floor(boxWidth / (fontSize * 0.6))));
    if (lines.length * fontSize * 1.25 <= boxHeight) return { fontSize, lines };
  }
  fontSize = 10;
  const maxLines = Math.max(1, Math.floor(boxHeight / (fontSize * 1.25)));
  const lines = wrap(prompt, Math.max(4, Math.floor(boxWidth / (fontSize * 0.6))));
  const kept = lines.slice(0, maxLines);
  if (lines.length > maxLines) kept[maxLines - 1] = `${kept[maxLines - 1]?.slice(0, -1)}…`;
  return { fontSize, lines: kept };
}

/** Words into lines of at most `columns` characters; a longer word is cut into pieces. */
function wrap(text: string, columns: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    const chars = [...word];
    const pieces: string[] = [];
    for (let i = 0; i < chars.length; i += columns)
      pieces.push(chars.slice(i, i + columns).join(''));
    for (const piece of pieces) {
      if (line === '') line = piece;
      else if ([...line].length + 1 + [...piece].length <= columns) line = `${line} ${piece}`;
      else {
        lines.push(line);
        line = piece;
      }
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

function escapeXml(text: string): string {
  return (
    text
      // Control characters have no place in XML 1.0.
      .replace(/\p{Cc}/gu, '')
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;')
  );
}
