import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { LocalProvider } from '../src/providers/local.ts';
import { pngSize } from '../src/providers/png.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { buildTestApp } from './helpers/app.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';
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
