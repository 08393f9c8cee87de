import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { LocalProvider } from '../src/providers/local.ts';
import { LOCAL_TOOL_MAX_SIDE } from '../src/providers/local-tools.ts';
import { pngSize } from '../src/providers/png.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { buildTestApp } from './helpers/app.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';
import { testPhoto } from './helpers/images.ts';
import {
  createTestModel,
  entriesFor,
  generation,
  submit,
  userWithCredits,
  waitFor,
} from './helpers/pipeline.ts';

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
  it('draws a PNG of the requested shape, scaled down to at most 512 px a side', async () => {
    const cases: [Record<string, string>, { width: number; height: number }][] = [
      [{ aspect_ratio: '16:9' }, { width: 512, height: 288 }],
      [{ aspect_ratio: '9:16' }, { width: 288, height: 512 }],
      [{ size: '1024*1536' }, { width: 341, height: 512 }],
      [{ size: '400*300' }, { width: 400, height: 300 }],
      [{}, { width: 512, height: 512 }],
    ];
    for (const [parameters, size] of cases) {
      const drawn = await draw('a lighthouse', parameters);
      if (drawn.state !== 'succeeded') throw new Error('expected an image');
      const png = drawn.images[0]!.data!;
      expect(png.subarray(0, 8)).toEqual(
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      );
      expect(pngSize(png)).toEqual(size);
      expect(drawn.images[0]).toMatchObject(size);
      expect(await sharp(png).metadata()).toMatchObject({ format: 'png', ...size });
    }
  });

  it('writes the prompt on the image: more words, more ink; another word, other ink', async () => {
    /** Near-black pixels: the prompt (#1b1b1b); the footer (#555) and the background are lighter. */
    async function ink(prompt: string): Promise<{ count: number; mask: boolean[] }> {
      const drawn = await draw(prompt, { aspect_ratio: '1:1' });
      if (drawn.state !== 'succeeded') throw new Error('expected an image');
      const { data, info } = await sharp(drawn.images[0]!.data!)
        .raw()
        .toBuffer({ resolveWithObject: true });
      const mask: boolean[] = [];
      for (let i = 0; i < data.length; i += info.channels) {
        mask.push(data[i]! < 60 && data[i + 1]! < 60 && data[i + 2]! < 60);
      }
      return { count: mask.filter(Boolean).length, mask };
    }
    const none = await ink(' ');
    const short = await ink('fox');
    const long = await ink('a red fox runs through deep snow at dawn under a violet sky');
    expect(none.count).toBe(0);
    expect(short.count).toBeGreaterThan(500);
    expect(long.count).toBeGreaterThan(short.count);
    // Same length, one letter apart: the ink differs where the letter is.
    const cat = await ink('a cat');
    const cot = await ink('a cot');
    const differing = cat.mask.filter((dark, index) => dark !== cot.mask[index]).length;
    expect(differing).toBeGreaterThan(50);
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

  it('gives each submission its own job id, and the same request the same image', async () => {
    const first = await provider.submit({ ...request('a cat', {}), generationId: 'g-1' });
    const second = await provider.submit({ ...request('a cat', {}), generationId: 'g-2' });
    expect(first.providerJobId).not.toBe(second.providerJobId);
    const [a, b] = await Promise.all([
      provider.status(first.providerJobId),
      provider.status(second.providerJobId),
    ]);
    if (a.state !== 'succeeded' || b.state !== 'succeeded') throw new Error('expected images');
    expect(a.images[0]!.data).toEqual(b.images[0]!.data);
  });

  it('fails on demand (a prompt with the word "fail"), not retryably', async () => {
    expect(await draw('please fail now', {})).toEqual({
      state: 'failed',
      error: expect.stringContaining('fail'),
      retryable: false,
    });
  });
});

const dataUri = (bytes: Buffer, type: string) => `data:${type};base64,${bytes.toString('base64')}`;

describe('local provider: tools', () => {
  const tool = async (
    model: string,
    parameters: Record<string, string>,
    reference: string,
    generationId = 'g',
  ) => {
    const { providerJobId } = await provider.submit({
      generationId,
      model,
      kind: 'tool',
      prompt: '',
      parameters,
      referenceUrls: [reference],
    });
    const status = await provider.status(providerJobId);
    if (status.state !== 'succeeded')
      throw new Error(`expected an image: ${JSON.stringify(status)}`);
    const image = status.images[0]!;
    const metadata = await sharp(image.data!).metadata();
    return { image, metadata };
  };

  it('upscales: ×2, ×3, ×4 for 2k, 4k, 8k, capped, in the input format', async () => {
    const jpeg = dataUri(await testPhoto('jpeg'), 'image/jpeg');
    for (const [resolution, factor] of [
      ['2k', 2],
      ['4k', 3],
      ['8k', 4],
    ] as const) {
      const { image, metadata } = await tool(
        'wavespeed-ai/ultimate-image-upscaler',
        { target_resolution: resolution },
        jpeg,
      );
      expect(metadata.format).toBe('jpeg');
      expect(image.mimeType).toBe('image/jpeg');
      expect({ width: metadata.width, height: metadata.height }).toEqual({
        width: 60 * factor,
        height: 40 * factor,
      });
      expect({ width: image.width, height: image.height }).toEqual({
        width: metadata.width,
        height: metadata.height,
      });
    }
    const big = dataUri(await testPhoto('png', 900, 300), 'image/png');
    const { metadata } = await tool(
      'wavespeed-ai/ultimate-image-upscaler',
      { target_resolution: '8k' },
      big,
    );
    expect(metadata.format).toBe('png');
    expect({ width: metadata.width, height: metadata.height }).toEqual({
      width: LOCAL_TOOL_MAX_SIDE,
      height: Math.round((300 * LOCAL_TOOL_MAX_SIDE) / 900),
    });
  });

  it('watermark removal, denoise, restore and enhance keep the size and change the pixels', async () => {
    const png = await testPhoto('png');
    const input = await sharp(png).raw().toBuffer();
    const outputs: Buffer[] = [];
    for (const [model, parameters] of [
      ['wavespeed-ai/image-watermark-remover', {}],
      ['topaz/image/denoise', { model: 'Normal' }],
      ['topaz/image/denoise', { model: 'Extreme' }],
      ['topaz/image/restore', { model: 'Dust-Scratch' }],
      ['topaz/image/restore', { model: 'Dust-Scratch V2' }],
      ['topaz/image/enhance', {}],
    ] as const) {
      const { image, metadata } = await tool(model, parameters, dataUri(png, 'image/png'));
      expect(image.mimeType).toBe('image/png');
      expect({ width: metadata.width, height: metadata.height }).toEqual({ width: 60, height: 40 });
      const pixels = await sharp(image.data!).raw().toBuffer();
      expect(pixels.length).toBe(input.length);
      expect(pixels.equals(input), `${model} ${JSON.stringify(parameters)}`).toBe(false);
      outputs.push(image.data!);
    }
    // Different tools (and strengths) do different things.
    expect(new Set(outputs.map((data) => data.toString('base64'))).size).toBe(outputs.length);
  });

  it('is deterministic: the same image and parameters give the same bytes', async () => {
    const jpeg = dataUri(await testPhoto('jpeg'), 'image/jpeg');
    const a = await tool('topaz/image/denoise', { model: 'Strong' }, jpeg, 'g-1');
    const b = await tool('topaz/image/denoise', { model: 'Strong' }, jpeg, 'g-2');
    expect(a.image.data!.equals(b.image.data!)).toBe(true);
  });

  it('refuses, as bad input, an https reference (it never goes online) and what is not an image', async () => {
    for (const reference of [
      'https://example.com/photo.jpg',
      'data:image/png;base64,bm90IGFuIGltYWdl',
    ]) {
      const error = await provider
        .submit({
          generationId: 'g',
          model: 'topaz/image/enhance',
          kind: 'tool',
          prompt: '',
          parameters: {},
          referenceUrls: [reference],
        })
        .then(
          () => null,
          (caught: unknown) => caught,
        );
      expect(error).toMatchObject({ retryable: false, failureCode: 'invalid_input' });
    }
  });
});

describe('the local provider in the pipeline', () => {
  it('completes the same prompt and settings twice (a "regenerate")', async () => {
    const database = await sharedDatabase();
    // A name of this test's own: no other test's worker claims its jobs.
    const local = new LocalProvider({ name: `local-${freshTelegramId()}` });
    const app = await buildTestApp({ TRIAL_GENERATIONS: '0' }, undefined, {
      providers: new ProviderRegistry([local], 'catalog'),
      worker: true,
    });
    try {
      const model = await createTestModel(database.db, { provider: local.name });
      const telegramId = freshTelegramId();
      await userWithCredits(app, telegramId, 20);
      const ids: string[] = [];
      for (const attempt of [1, 2]) {
        const accepted = await submit(
          app,
          { telegram_id: telegramId, model: model.key, prompt: 'a lighthouse at dusk' },
          { 'idempotency-key': `regenerate-${telegramId}-${attempt}` },
        );
        expect(accepted.statusCode, accepted.body).toBe(202);
        ids.push(accepted.json().id);
      }
      const done = await Promise.all(
        ids.map((id) =>
          waitFor(
            () => generation(app, id),
            (g) => g.status !== 'queued' && g.status !== 'running',
          ),
        ),
      );
      expect(done.map((g) => g.status)).toEqual(['succeeded', 'succeeded']);
      expect(done[0].results[0].seed).toBe(done[1].results[0].seed);
      for (const id of ids) {
        expect(await entriesFor(database.db, id)).toEqual([
          { kind: 'generation_charge', amount: -10 },
        ]);
      }
    } finally {
      await app.close();
    }
  });
});
