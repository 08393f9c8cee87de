import { randomUUID } from 'node:crypto';
import { mkdtempSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { runHousekeeping } from '../src/jobs/housekeeping.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import type { ImageProvider, ProviderRequest, ProviderStatus } from '../src/providers/types.ts';
import { sweepStoredObjects } from '../src/services/storage-retention.ts';
import { createResultStore } from '../src/storage/create.ts';
import { LocalResultStore } from '../src/storage/local.ts';
import { S3ResultStore } from '../src/storage/s3.ts';
import { type FakeResultHost, startResultHost } from './fakes/result-host.ts';
import { type FakeS3, startFakeS3 } from './fakes/s3-server.ts';
import { buildTestApp, testConfig } from './helpers/app.ts';
import { freshTelegramId, sharedDatabase, silentLogger } from './helpers/database.ts';
import { testPhoto } from './helpers/images.ts';
import {
  balanceOf,
  createTestModel,
  entriesFor,
  generation,
  submit,
  userWithCredits,
  waitFor,
} from './helpers/pipeline.ts';

/**
 * A provider that hands back its result as a URL on `host` (as WaveSpeed and Replicate do): the
 * prompt's first word names the file it points at.
 */
class UrlProvider implements ImageProvider {
  readonly name = `by-url-${randomUUID().slice(0, 8)}`;
  readonly acceptsWebhooks = false;
  private readonly jobs = new Map<string, ProviderRequest>();
  constructor(private readonly host: FakeResultHost) {}

  async submit(request: ProviderRequest): Promise<{ providerJobId: string }> {
    const id = `job-${randomUUID()}`;
    this.jobs.set(id, request);
    return { providerJobId: id };
  }

  async status(providerJobId: string): Promise<ProviderStatus> {
    const request = this.jobs.get(providerJobId);
    const name = request?.prompt.split(' ')[0] ?? 'missing';
    return {
      state: 'succeeded',
      images: [{ url: `${this.host.base}/${name}`, mimeType: 'image/png', width: 60, height: 40 }],
    };
  }
}

const settled = (g: { status: string }) => g.status === 'succeeded' || g.status === 'failed';

let database: DatabaseHandle;
let host: FakeResultHost;
let s3: FakeS3;

beforeAll(async () => {
  database = await sharedDatabase();
  host = await startResultHost();
  s3 = await startFakeS3();
});

afterAll(async () => {
  await host?.close();
  await s3?.close();
});

interface Backend {
  name: string;
  env: () => Record<string, string>;
}

const backends: Backend[] = [
  {
    name: 'a folder under DATA_DIR',
    env: () => ({ DATA_DIR: mkdtempSync(join(tmpdir(), 'st-')) }),
  },
  { name: 'S3, redirecting to presigned URLs', env: () => s3.env },
  { name: 'S3, streamed by the API', env: () => ({ ...s3.env, S3_PRESIGN_SECONDS: '0' }) },
];

describe.each(backends)('results kept in $name', (backend) => {
  let app: FastifyInstance;
  let provider: UrlProvider;
  let modelKey: string;

  beforeAll(async () => {
    provider = new UrlProvider(host);
    app = await buildTestApp(
      { TRIAL_GENERATIONS: '0', PROVIDER_POLL_SECONDS: '1', RESULT_MAX_MB: '1', ...backend.env() },
      undefined,
      { providers: new ProviderRegistry([provider], 'catalog'), worker: true },
    );
    modelKey = (await createTestModel(database.db, { provider: provider.name })).key;
  });

  afterAll(async () => {
    await app?.close();
  });

  async function run(prompt: string) {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 10);
    const accepted = await submit(app, { telegram_id: telegramId, model: modelKey, prompt });
    expect(accepted.statusCode, accepted.body).toBe(202);
    const id: string = accepted.json().id;
    return { id, telegramId, done: await waitFor(() => generation(app, id), settled) };
  }

  it("copies the provider's result when it completes and serves the copy after the provider's link expired", async () => {
    const name = `${randomUUID()}.png`;
    const original = await testPhoto('png');
    host.put(name, original);
    const { id, done } = await run(`${name} a red fox`);
    expect(done.status).toBe('succeeded');
    expect(host.downloads(name)).toBe(1);
    // Our URL, never the provider's.
    expect(done.results).toEqual([
      expect.objectContaining({
        url: `/api/v1/generations/${id}/images/0`,
        mime_type: 'image/png',
      }),
    ]);
    host.expire(name);
    const served = await app.inject({ method: 'GET', url: done.results[0].url });
    let bytes: Buffer;
    if (app.deps.store.backend === 's3' && app.deps.config.storage.s3?.presignSeconds) {
      expect(served.statusCode).toBe(302);
      const location = served.headers.location as string;
      expect(location.startsWith(`${s3.endpoint}/${s3.bucket}/results/${id}/0.png?`)).toBe(true);
      expect(new URL(location).searchParams.get('X-Amz-Expires')).toBe('300');
      const direct = await fetch(location);
      expect(direct.status).toBe(200);
      bytes = Buffer.from(await direct.arrayBuffer());
    } else {
      expect(served.statusCode).toBe(200);
      expect(served.headers['content-type']).toBe('image/png');
      bytes = served.rawPayload;
    }
    expect(bytes.equals(original)).toBe(true);
  });

  it('fails and refunds a result that is not an image, whatever type its server claims', async () => {
    const name = `${randomUUID()}.png`;
    host.put(name, Buffer.from('<html>AccessDenied</html>'), 'image/png');
    const { id, telegramId, done } = await run(`${name} a red fox`);
    expect(done).toMatchObject({ status: 'failed', payment: { refunded: true } });
    expect(done.error.message).toContain('not a PNG, JPEG, WebP or GIF');
    expect(await balanceOf(app, telegramId)).toBe(10);
    expect((await entriesFor(database.db, id)).map((entry) => entry.kind)).toEqual([
      'generation_charge',
      'generation_refund',
    ]);
  });

  it('fails and refunds a result over RESULT_MAX_MB, without keeping it', async () => {
    const name = `${randomUUID()}.png`;
    // A PNG's signature followed by 1.5 MB: an image by its magic bytes, too big by the setting.
    const big = Buffer.concat([await testPhoto('png'), Buffer.alloc(1_572_864, 1)]);
    host.put(name, big);
    const { id, telegramId, done } = await run(`${name} a red fox`);
    expect(done).toMatchObject({ status: 'failed', payment: { refunded: true } });
    expect(done.error.message).toContain('over RESULT_MAX_MB (1 MB)');
    expect(await balanceOf(app, telegramId)).toBe(10);
    expect(await app.deps.store.get(`results/${id}/0.png`)).toBeNull();
  });
});

async function storeOf(backend: 'local' | 's3', env: Record<string, string> = {}) {
  const overrides =
    backend === 's3'
      ? { ...s3.env, ...env }
      : { DATA_DIR: mkdtempSync(join(tmpdir(), 'st-')), ...env };
  const config = testConfig(overrides);
  return { config, store: await createResultStore(config) };
}

describe.each(['local', 's3'] as const)('the %s backend', (backend) => {
  it('keeps, reads and refuses keys that would leave the store', async () => {
    const { store } = await storeOf(backend);
    expect(store).toBeInstanceOf(backend === 's3' ? S3ResultStore : LocalResultStore);
    const png = await testPhoto('png');
    const id = randomUUID();
    const key = await store.save(id, 0, png, 'image/png');
    expect(key).toBe(`results/${id}/0.png`);
    expect((await store.read(key))?.equals(png)).toBe(true);
    const object = await store.get(key);
    expect(object).toMatchObject({ size: png.length, contentType: 'image/png' });
    object?.body.destroy();
    expect(await store.get(`results/${randomUUID()}/0.png`)).toBeNull();
    await expect(store.put('results/../../etc/passwd.png', png, 'image/png')).rejects.toThrow(
      'not a key of the result store',
    );
  });

  it('deletes results past RESULT_RETENTION_DAYS at housekeeping, and keeps them all with 0', async () => {
    const day = 86_400_000;
    for (const [retention, kept] of [
      ['2', false],
      ['0', true],
    ] as const) {
      const { config, store } = await storeOf(backend, { RESULT_RETENTION_DAYS: retention });
      const key = await store.save(randomUUID(), 0, await testPhoto('png'), 'image/png');
      const ctx = { db: database.db, config, providers: new ProviderRegistry([], 'catalog') };
      // Two days from now the image is three days old (S3's LastModified cannot be set back).
      if (backend === 'local') {
        const old = new Date(Date.now() - 3 * day);
        utimesSync((store as LocalResultStore).localFile(key), old, old);
      }
      if (backend === 'local') {
        await runHousekeeping({ ctx, logger: silentLogger, store });
      } else {
        await sweepStoredObjects(ctx, store, Date.now() + 3 * day);
      }
      expect((await store.get(key)) === null).toBe(!kept);
    }
  });
});
