import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { sweepStoredObjects } from '../src/services/storage-retention.ts';
import type { ResultStore } from '../src/storage/results.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { buildTestApp, miniAppAuth, testConfig } from './helpers/app.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';
import { testPhoto } from './helpers/images.ts';
import {
  createTestModel,
  generation,
  submit,
  type TestModel,
  userWithCredits,
  waitFor,
} from './helpers/pipeline.ts';

const settled = (g: { status: string }) => g.status === 'succeeded' || g.status === 'failed';

let database: DatabaseHandle;
let app: FastifyInstance;
let provider: ScriptedProvider;
let model: TestModel;

beforeAll(async () => {
  database = await sharedDatabase();
  provider = new ScriptedProvider();
  app = await buildTestApp(
    {
      TRIAL_GENERATIONS: '0',
      PROVIDER_POLL_SECONDS: '1',
      UPLOAD_MAX_MB: '1',
      DATA_DIR: mkdtempSync(join(tmpdir(), 'uploads-')),
    },
    database,
    {
      providers: new ProviderRegistry([provider], 'catalog'),
      delivery: { telegram: null, webhook: null, telegramFiles: null },
      worker: true,
    },
  );
  model = await createTestModel(database.db, { provider: provider.name });
});

afterAll(async () => {
  await app?.close();
});

function upload(telegramId: number, body: Buffer, contentType = 'image/png', asUser = telegramId) {
  return app.inject({
    method: 'POST',
    url: `/api/v1/users/${telegramId}/uploads`,
    headers: { ...miniAppAuth(asUser), 'content-type': contentType },
    payload: body,
  });
}

describe('POST /users/{telegram_id}/uploads', () => {
  it("stores a Mini App user's image; its reference reaches the provider in that user's generation", async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 50);
    const png = await testPhoto('png');
    // The type is judged by the bytes, not by what the request claims.
    const stored = await upload(telegramId, png, 'application/octet-stream');
    expect(stored.statusCode, stored.body).toBe(201);
    const { reference, content_type, size } = stored.json();
    expect(reference).toMatch(/^upload:[A-Za-z0-9_-]{43}\.png$/);
    expect({ content_type, size }).toEqual({ content_type: 'image/png', size: png.length });

    const accepted = await submit(
      app,
      { telegram_id: telegramId, model: model.key, prompt: 'like this', references: [reference] },
      miniAppAuth(telegramId),
    );
    expect(accepted.statusCode, accepted.body).toBe(202);
    const id: string = accepted.json().id;
    expect(accepted.json().references).toEqual([
      { kind: 'upload', value: reference.slice('upload:'.length) },
    ]);
    const done = await waitFor(() => generation(app, id), settled);
    expect(done.status).toBe('succeeded');
    // Neither PUBLIC_BASE_URL nor a provider upload API: the image itself, as a data URI.
    const [submitted] = provider.submissions.filter((s) => s.generationId === id);
    expect(submitted?.referenceUrls).toEqual([`data:image/png;base64,${png.toString('base64')}`]);
  });

  it("refuses another user's upload, an unknown one, and uploads for someone else", async () => {
    const owner = freshTelegramId();
    const other = freshTelegramId();
    await userWithCredits(app, owner, 0);
    await userWithCredits(app, other, 50);
    const reference: string = (await upload(owner, await testPhoto('jpeg'), 'image/jpeg')).json()
      .reference;
    expect(reference).toMatch(/\.jpg$/);
    const borrowed = await submit(
      app,
      { telegram_id: other, model: model.key, prompt: 'mine now', references: [reference] },
      miniAppAuth(other),
    );
    expect(borrowed.statusCode).toBe(422);
    expect(borrowed.json()).toMatchObject({
      code: 'validation_failed',
      errors: [{ field: 'body.references.0' }],
    });
    const forSomeoneElse = await upload(owner, await testPhoto('png'), 'image/png', other);
    expect(forSomeoneElse.statusCode).toBe(403);
    expect(forSomeoneElse.headers['content-type']).toContain('application/problem+json');
    const unknownUser = freshTelegramId();
    expect((await upload(unknownUser, await testPhoto('png'))).json().code).toBe('user_not_found');
  });

  it('refuses what is not an image (415), too big (413) or empty (422), as problem+json', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 0);
    const notImage = await upload(
      telegramId,
      Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'),
    );
    expect(notImage.statusCode).toBe(415);
    expect(notImage.json().code).toBe('unsupported_media_type');
    const tooBig = Buffer.concat([await testPhoto('png'), Buffer.alloc(1024 * 1024 + 1)]);
    const big = await upload(telegramId, tooBig);
    expect(big.statusCode).toBe(413);
    expect(big.json().code).toBe('payload_too_large');
    const text = await upload(telegramId, Buffer.from('hello'), 'text/plain');
    expect(text.statusCode).toBe(415);
    expect(text.json().detail).toContain('image/png');
    const json = await upload(telegramId, Buffer.from('{"image":"x"}'), 'application/json');
    expect(json.statusCode).toBe(415);
    const empty = await upload(telegramId, Buffer.alloc(0));
    expect(empty.statusCode).toBe(422);
  });

  it('housekeeping deletes uploads with the results, past RESULT_RETENTION_DAYS', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 0);
    const reference: string = (await upload(telegramId, await testPhoto('png'))).json().reference;
    const store: ResultStore = app.deps.store;
    const key = `uploads/${telegramId}/${reference.slice('upload:'.length)}`;
    expect(await store.read(key)).not.toBeNull();
    // Two days from now the upload is two days old (S3's LastModified cannot be set back).
    const ctx = { db: database.db, config: testConfig({ RESULT_RETENTION_DAYS: '1' }) };
    const swept = await sweepStoredObjects(ctx, store, Date.now() + 2 * 86_400_000);
    expect(swept?.results).toBeGreaterThanOrEqual(1);
    expect(await store.read(key)).toBeNull();
  });
});
