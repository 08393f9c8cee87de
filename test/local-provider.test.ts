import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { LocalProvider } from '../src/providers/local.ts';
import { pngSize } from '../src/providers/png.ts';

const provider = new LocalProvider();
const request = (prompt: string, parameters: Record<string, string>) => ({
  generationId: 'g',
  model: 'local/test',
  prompt,
  parameters,
  referenceUrls: [],
});

async function draw(prompt: string, parameters: Record<string, string>) {
  const { providerJobId } = await provider.submit(request(prompt, parameters));
  return provider.status(providerJobId);
}

describe('local provider', () => {
  it('draws a valid PNG whose shape follows the parameters', async () => {
    const wide = await draw('a lighthouse', { aspect_ratio: '16:9' });
    expect(wide.state).toBe('succeeded');
    if (wide.state !== 'succeeded') return;
    const png = wide.images[0]!.data!;
    expect(png.subarray(0, 8)).toEqual(
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    );
    const { width, height } = pngSize(png);
    expect(width).toBeGreaterThan(height);
    expect({ width, height }).toEqual({
      width: wide.images[0]!.width,
      height: wide.images[0]!.height,
    });
    // The IDAT holds height rows of 1 + 3·width bytes.
    const idatLength = png.readUInt32BE(33);
    expect(inflateSync(png.subarray(41, 41 + idatLength)).length).toBe(height * (1 + 3 * width));

    const sized = await draw('a lighthouse', { size: '1024*1536' });
    if (sized.state !== 'succeeded') throw new Error('expected an image');
    expect(pngSize(sized.images[0]!.data!)).toEqual({ width: 102, height: 154 });
  });

  it('is deterministic: same request, same image; another prompt, another image', async () => {
    const a = await draw('a cat', { aspect_ratio: '1:1' });
    const b = await draw('a cat', { aspect_ratio: '1:1' });
    const c = await draw('a dog', { aspect_ratio: '1:1' });
    if (a.state !== 'succeeded' || b.state !== 'succeeded' || c.state !== 'succeeded')
      throw new Error('expected images');
    expect(a.images[0]!.data).toEqual(b.images[0]!.data);
    expect(a.images[0]!.data).not.toEqual(c.images[0]!.data);
  });

  it('fails on demand (a prompt with the word "fail"), not retryably', async () => {
    expect(await draw('please fail now', {})).toEqual({
      state: 'failed',
      error: expect.stringContaining('fail'),
      retryable: false,
    });
  });
});
