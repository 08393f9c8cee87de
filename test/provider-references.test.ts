import { randomUUID } from 'node:crypto';
import { mkdtempSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { TelegramFiles } from '../src/delivery/telegram-files.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { ReplicateProvider } from '../src/providers/replicate.ts';
import { ProviderError, type ReferenceImage } from '../src/providers/types.ts';
import { WavespeedProvider } from '../src/providers/wavespeed.ts';
import type { LocalResultStore } from '../src/storage/local.ts';
import { type FakeUploadServer, startUploadServer } from './fakes/provider-uploads.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { type FakeTelegram, startFakeTelegram } from './fakes/telegram-api.ts';
import { buildTestApp, TELEGRAM_BOT_TOKEN } from './helpers/app.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';
import { testPhoto } from './helpers/images.ts';
import {
  balanceOf,
  createTestModel,
  generation,
  submit,
  userWithCredits,
  waitFor,
} from './helpers/pipeline.ts';

const KEY = 'test-provider-key-0123456789';
const settled = (g: { status: string }) => g.status === 'succeeded' || g.status === 'failed';

/** A provider with an upload API of its own (as WaveSpeed and Replicate have). */
class UploadingProvider extends ScriptedProvider {
  readonly uploaded: ReferenceImage[] = [];
  async uploadReference(image: ReferenceImage): Promise<string> {
    this.uploaded.push(image);
    return `https://uploads.provider.example/${this.uploaded.length}.png`;
  }
}

let database: DatabaseHandle;
let telegram: FakeTelegram;
let uploads: FakeUploadServer;

beforeAll(async () => {
  database = await sharedDatabase();
  telegram = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
  uploads = await startUploadServer(KEY);
});

afterAll(async () => {
  await telegram?.close();
  await uploads?.close();
});

describe("the providers' upload APIs", () => {
  it('WaveSpeed: POST /api/v3/media/upload/binary with one `file`, answering data.download_url', async () => {
    const provider = new WavespeedProvider({ apiKey: KEY, baseUrl: uploads.base });
    const png = await testPhoto('png');
    const url = await provider.uploadReference({ data: png, mimeType: 'image/png' });
    expect(url).toMatch(/^https:\/\/d1q70pf5vjeyhc\.cloudfront\.net\/media\/\w+\/reference\.png$/);
    expect(uploads.uploads.at(-1)).toMatchObject({
      provider: 'wavespeed',
      field: 'file',
      filename: 'reference.png',
      contentType: 'image/png',
    });
    expect(uploads.uploads.at(-1)?.data.equals(png)).toBe(true);
  });

  it('Replicate: POST /v1/files with `content`, answering urls.get', async () => {
    const provider = new ReplicateProvider({ apiToken: KEY, baseUrl: uploads.base });
    const jpeg = await testPhoto('jpeg');
    const url = await provider.uploadReference({ data: jpeg, mimeType: 'image/jpeg' });
    expect(url).toMatch(/^https:\/\/api\.replicate\.com\/v1\/files\/\w+$/);
    expect(uploads.uploads.at(-1)).toMatchObject({
      provider: 'replicate',
      field: 'content',
      filename: 'reference.jpg',
      contentType: 'image/jpeg',
    });
    expect(uploads.uploads.at(-1)?.data.equals(jpeg)).toBe(true);
  });

  it('a refused upload is final, a failing one is retried, and the key is never quoted', async () => {
    const image = { data: await testPhoto('png'), mimeType: 'image/png' };
    const refused = new WavespeedProvider({
      apiKey: 'wrong-key-0123456789',
      baseUrl: uploads.base,
    });
    const error = await refused.uploadReference(image).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ProviderError);
    expect((error as ProviderError).retryable).toBe(false);
    expect((error as ProviderError).message).not.toContain('wrong-key');
    uploads.failNext(503);
    const replicate = new ReplicateProvider({ apiToken: KEY, baseUrl: uploads.base });
    const failing = await replicate.uploadReference(image).catch((caught: unknown) => caught);
    expect(failing).toBeInstanceOf(ProviderError);
    expect((failing as ProviderError).retryable).toBe(true);
  });
});

describe('a Telegram reference reaches the provider', () => {
  async function setUp(env: Record<string, string>, provider: ScriptedProvider) {
    const app = await buildTestApp(
      {
        TRIAL_GENERATIONS: '0',
        PROVIDER_POLL_SECONDS: '1',
        TELEGRAM_API_ROOT: telegram.apiRoot,
        ...env,
      },
      undefined,
      {
        providers: new ProviderRegistry([provider], 'catalog'),
        delivery: {
          telegram: null,
          webhook: null,
          telegramFiles: new TelegramFiles(TELEGRAM_BOT_TOKEN, telegram.apiRoot),
        },
        worker: true,
      },
    );
    const model = await createTestModel(database.db, { provider: provider.name });
    return { app, model };
  }

  async function run(app: FastifyInstance, modelKey: string, image: Buffer) {
    const fileId = `AgAC${randomUUID().replace(/-/g, '')}`;
    telegram.addFile(fileId, image, `photos/${fileId}.png`);
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 10);
    const accepted = await submit(app, {
      telegram_id: telegramId,
      model: modelKey,
      prompt: 'instant like this one',
      references: [fileId],
    });
    expect(accepted.statusCode, accepted.body).toBe(202);
    const id: string = accepted.json().id;
    return { id, telegramId, done: await waitFor(() => generation(app, id), settled) };
  }

  it('with PUBLIC_BASE_URL: from our storage, under an unguessable name that expires', async () => {
    const provider = new ScriptedProvider();
    const dataDir = mkdtempSync(join(tmpdir(), 'refs-'));
    const { app, model } = await setUp(
      { PUBLIC_BASE_URL: 'https://bot.example.com', DATA_DIR: dataDir, REFERENCE_URL_MINUTES: '5' },
      provider,
    );
    try {
      const png = await testPhoto('png');
      const { id, done } = await run(app, model.key, png);
      expect(done.status).toBe('succeeded');
      const [submitted] = provider.submissions.filter((s) => s.generationId === id);
      const url = submitted?.referenceUrls[0] ?? '';
      const match =
        /^https:\/\/bot\.example\.com(\/api\/v1\/references\/([A-Za-z0-9_-]{43})\.png)$/.exec(url);
      expect(match, url).not.toBeNull();
      const path = match?.[1] ?? '';
      const served = await app.inject({ method: 'GET', url: path });
      expect(served.statusCode).toBe(200);
      expect(served.headers['content-type']).toBe('image/png');
      expect(served.rawPayload.equals(png)).toBe(true);
      // A name one character off, and any other shape, is nothing.
      const guessed = path.replace(/[A-Za-z0-9_-](?=\.png$)/, (c) => (c === 'A' ? 'B' : 'A'));
      expect((await app.inject({ method: 'GET', url: guessed })).statusCode).toBe(404);
      expect(
        (await app.inject({ method: 'GET', url: '/api/v1/references/..%2F..%2Fetc' })).statusCode,
      ).toBe(422);
      // Past REFERENCE_URL_MINUTES the URL answers 404, and housekeeping deletes the file.
      const store = app.deps.store as LocalResultStore;
      const key = `references/${match?.[2]}.png`;
      const old = new Date(Date.now() - 6 * 60_000);
      utimesSync(store.localFile(key), old, old);
      expect((await app.inject({ method: 'GET', url: path })).statusCode).toBe(404);
      expect(await store.deleteOlderThan('references/', new Date(Date.now() - 5 * 60_000))).toBe(1);
      expect(await store.get(key)).toBeNull();
    } finally {
      await app.close();
    }
  });

  it("without PUBLIC_BASE_URL: through the provider's upload API", async () => {
    const provider = new UploadingProvider();
    const { app, model } = await setUp({}, provider);
    try {
      const png = await testPhoto('png');
      const { id, done } = await run(app, model.key, png);
      expect(done.status).toBe('succeeded');
      expect(provider.uploaded).toHaveLength(1);
      expect(provider.uploaded[0]?.data.equals(png)).toBe(true);
      const [submitted] = provider.submissions.filter((s) => s.generationId === id);
      expect(submitted?.referenceUrls).toEqual(['https://uploads.provider.example/1.png']);
    } finally {
      await app.close();
    }
  });

  it('without either: a data URI under 1 MB; a bigger image fails and is refunded', async () => {
    const provider = new ScriptedProvider();
    const { app, model } = await setUp({}, provider);
    try {
      const png = await testPhoto('png');
      const small = await run(app, model.key, png);
      expect(small.done.status).toBe('succeeded');
      const [submitted] = provider.submissions.filter((s) => s.generationId === small.id);
      expect(submitted?.referenceUrls).toEqual([`data:image/png;base64,${png.toString('base64')}`]);

      const big = Buffer.concat([png, Buffer.alloc(1_100_000, 7)]);
      const refused = await run(app, model.key, big);
      expect(refused.done).toMatchObject({ status: 'failed', payment: { refunded: true } });
      expect(refused.done.error.message).toContain('set PUBLIC_BASE_URL');
      expect(provider.submissionsFor(refused.id)).toBe(0);
      expect(await balanceOf(app, refused.telegramId)).toBe(10);
    } finally {
      await app.close();
    }
  });
});
