import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { TelegramFiles } from '../src/delivery/telegram-files.ts';
import { encodePng } from '../src/providers/png.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { ProviderError } from '../src/providers/types.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { DOWNLOAD_LIMIT, type FakeTelegram, startFakeTelegram } from './fakes/telegram-api.ts';
import { buildTestApp, TELEGRAM_BOT_TOKEN } from './helpers/app.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';
import {
  balanceOf,
  createTestModel,
  entriesFor,
  generation,
  submit,
  type TestModel,
  userWithCredits,
  waitFor,
} from './helpers/pipeline.ts';

const TOKEN = TELEGRAM_BOT_TOKEN;
const PNG = encodePng(3, 2, new Uint8Array(18).fill(90));
const JPEG = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), randomBytes(1_000)]);

/** A file_id of the form Telegram hands out (and the API accepts as a reference). */
function fileIdOf(label: string): string {
  return `AgACAgIAAxkBAAI${label}_${randomBytes(12).toString('base64url')}`;
}

/** Every error a test provoked, to check none of them quotes the bot token. */
const seenErrors: ProviderError[] = [];

async function failure(promise: Promise<unknown>): Promise<ProviderError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ProviderError);
    seenErrors.push(error as ProviderError);
    return error as ProviderError;
  }
  throw new Error('expected the download to fail');
}

describe('the fake Bot API serves files as the real one does', () => {
  let fake: FakeTelegram;
  beforeEach(async () => {
    fake = await startFakeTelegram({ token: TOKEN });
  });
  afterEach(async () => {
    await fake.close();
  });

  it('describes a file with getFile and serves its bytes at /file/bot<token>/<file_path>', async () => {
    const fileId = fileIdOf('shape');
    const filePath = fake.addFile(fileId, PNG);
    expect(filePath).toMatch(/^documents\/file_\d+\.png$/);
    const answer = await fetch(`${fake.apiRoot}/bot${TOKEN}/getFile?file_id=${fileId}`);
    expect(answer.status).toBe(200);
    const body = (await answer.json()) as { result: { file_path: string } };
    expect(body).toEqual({
      ok: true,
      result: {
        file_id: fileId,
        file_unique_id: expect.stringMatching(/^[A-Za-z0-9_-]+$/),
        file_size: PNG.length,
        file_path: filePath,
      },
    });
    const download = await fetch(`${fake.apiRoot}/file/bot${TOKEN}/${body.result.file_path}`);
    expect(download.status).toBe(200);
    expect(download.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await download.arrayBuffer())).toEqual(PNG);
    expect(fake.calls).toMatchObject([{ method: 'getFile', fields: { file_id: fileId } }]);
    expect(fake.downloads).toEqual([{ filePath, status: 200 }]);
  });

  it('refuses an unknown file_id, an unknown path, a wrong token and a file over 20 MB', async () => {
    const unknown = await fetch(`${fake.apiRoot}/bot${TOKEN}/getFile`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ file_id: fileIdOf('unknown') }),
    });
    expect(unknown.status).toBe(400);
    expect(await unknown.json()).toEqual({
      ok: false,
      error_code: 400,
      description: 'Bad Request: invalid file_id',
    });

    const path = fake.addFile(fileIdOf('jpeg'), JPEG);
    expect(path).toMatch(/^photos\/file_\d+\.jpg$/);
    const wrongToken = await fetch(`${fake.apiRoot}/file/bot123:wrong/${path}`);
    expect(wrongToken.status).toBe(401);
    const missing = await fetch(`${fake.apiRoot}/file/bot${TOKEN}/photos/file_999.jpg`);
    expect(missing.status).toBe(404);
    const jpeg = await fetch(`${fake.apiRoot}/file/bot${TOKEN}/${path}`);
    expect(jpeg.headers.get('content-type')).toBe('image/jpeg');

    const big = fileIdOf('big');
    fake.addFile(big, Buffer.alloc(DOWNLOAD_LIMIT + 1));
    const tooBig = await fetch(`${fake.apiRoot}/bot${TOKEN}/getFile?file_id=${big}`);
    expect(tooBig.status).toBe(400);
    expect(((await tooBig.json()) as { description: string }).description).toBe(
      'Bad Request: file is too big',
    );
  });
});

describe('TelegramFiles', () => {
  let fake: FakeTelegram;
  let files: TelegramFiles;

  beforeEach(async () => {
    fake = await startFakeTelegram({ token: TOKEN });
    files = new TelegramFiles(TOKEN, fake.apiRoot, { timeoutSeconds: 5 });
  });
  afterEach(async () => {
    await fake.close();
  });

  it('hands over a PNG as a data URI of its exact bytes', async () => {
    const fileId = fileIdOf('png');
    const filePath = fake.addFile(fileId, PNG);
    const uri = await files.dataUri(fileId);
    expect(uri).toBe(`data:image/png;base64,${PNG.toString('base64')}`);
    expect(fake.calls.map((call) => [call.method, call.fields.file_id])).toEqual([
      ['getFile', fileId],
    ]);
    expect(fake.downloads).toEqual([{ filePath, status: 200 }]);
  });

  it('hands over a Telegram photo (a JPEG) as image/jpeg', async () => {
    const fileId = fileIdOf('photo');
    fake.addFile(fileId, JPEG);
    expect(await files.dataUri(fileId)).toBe(`data:image/jpeg;base64,${JPEG.toString('base64')}`);
  });

  it('types the bytes by what they are, not by a misleading extension', async () => {
    const fileId = fileIdOf('renamed');
    fake.addFile(fileId, PNG, 'documents/file_7.jpg');
    expect(await files.dataUri(fileId)).toBe(`data:image/png;base64,${PNG.toString('base64')}`);
  });

  it('refuses for good a file that is not an image', async () => {
    const fileId = fileIdOf('pdf');
    fake.addFile(fileId, Buffer.from('%PDF-1.7\n%\u00e2\u00e3\n1 0 obj'), 'documents/file_3.pdf');
    const error = await failure(files.dataUri(fileId));
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/not an image/);
  });

  it('refuses for good a file_id Telegram does not know', async () => {
    const error = await failure(files.dataUri(fileIdOf('nope')));
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/400: Bad Request: invalid file_id/);
    expect(fake.downloads).toEqual([]);
  });

  it('retries when getFile answers 5xx, then downloads on the next try', async () => {
    const fileId = fileIdOf('flaky');
    fake.addFile(fileId, PNG);
    fake.failNext('getFile', { error_code: 502, description: 'Bad Gateway' });
    const error = await failure(files.dataUri(fileId));
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/502/);
    expect(await files.dataUri(fileId)).toBe(`data:image/png;base64,${PNG.toString('base64')}`);
  });

  it('retries a throttled getFile after the retry_after Telegram asks for', async () => {
    const fileId = fileIdOf('throttled');
    fake.addFile(fileId, PNG);
    fake.failNext('getFile', {
      error_code: 429,
      description: 'Too Many Requests: retry after 7',
      retry_after: 7,
    });
    const error = await failure(files.dataUri(fileId));
    expect(error.retryable).toBe(true);
    expect(error.retryAfterSeconds).toBe(7);
  });

  it('retries a download the file server fails with 5xx', async () => {
    const fileId = fileIdOf('download');
    fake.addFile(fileId, PNG);
    fake.failNext('download', { error_code: 500, description: 'Internal Server Error' });
    const error = await failure(files.dataUri(fileId));
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/HTTP 500/);
    expect(await files.dataUri(fileId)).toMatch(/^data:image\/png;base64,/);
  });

  it('refuses for good a file over the 20 MB the Bot API lets bots download', async () => {
    const fileId = fileIdOf('huge');
    fake.addFile(fileId, Buffer.alloc(DOWNLOAD_LIMIT + 1));
    const error = await failure(files.dataUri(fileId));
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/file is too big/);
    expect(fake.downloads).toEqual([]);
  });

  it('refuses a file over maxBytes by its file_size, without downloading it', async () => {
    const small = new TelegramFiles(TOKEN, fake.apiRoot, { maxBytes: 1_000 });
    const fileId = fileIdOf('over');
    fake.addFile(fileId, Buffer.concat([PNG, Buffer.alloc(1_001)]));
    const error = await failure(small.dataUri(fileId));
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/over 1000 bytes/);
    expect(fake.downloads).toEqual([]);
  });

  it('stops a download that grows past maxBytes when getFile gave no file_size', async () => {
    const small = new TelegramFiles(TOKEN, fake.apiRoot, { maxBytes: 1_000 });
    const fileId = fileIdOf('unsized');
    fake.addFile(fileId, Buffer.concat([PNG, Buffer.alloc(1_001)]), undefined, { omitSize: true });
    const error = await failure(small.dataUri(fileId));
    expect(error.retryable).toBe(false);
    expect(fake.downloads).toHaveLength(1);
    // Exactly at the limit is still accepted.
    const exact = fileIdOf('exact');
    const bytes = Buffer.concat([PNG, Buffer.alloc(1_000 - PNG.length)]);
    fake.addFile(exact, bytes, undefined, { omitSize: true });
    expect(await small.dataUri(exact)).toBe(`data:image/png;base64,${bytes.toString('base64')}`);
  });

  it('retries when Telegram cannot be reached or does not answer in time', async () => {
    const slow = new TelegramFiles(TOKEN, fake.apiRoot, { timeoutSeconds: 1 });
    fake.delayMs(2_000);
    const timedOut = await failure(slow.dataUri(fileIdOf('slow')));
    expect(timedOut.retryable).toBe(true);
    fake.delayMs(0);

    const unreachable = new TelegramFiles(TOKEN, 'http://127.0.0.1:9', { timeoutSeconds: 2 });
    const refused = await failure(unreachable.dataUri(fileIdOf('down')));
    expect(refused.retryable).toBe(true);
  });

  it('never names the bot token in an error, whatever the failure', async () => {
    // A revoked token (401), and every failure the tests above provoked.
    const revoked = new TelegramFiles('987654:revoked-token-AAAA', fake.apiRoot);
    const error = await failure(revoked.dataUri(fileIdOf('revoked')));
    expect(error.retryable).toBe(false);
    expect(error.message).toMatch(/401/);
    expect(error.message).not.toContain('revoked-token-AAAA');
    expect(seenErrors.length).toBeGreaterThan(8);
    for (const seen of seenErrors) {
      expect(seen.message).not.toContain(TOKEN);
      expect(seen.message).not.toContain(encodeURIComponent(TOKEN));
      expect(seen.message).not.toContain(TOKEN.split(':')[1]);
    }
  });
});

describe('Telegram file references in the generation pipeline', () => {
  let database: DatabaseHandle;
  let fake: FakeTelegram;
  let app: FastifyInstance;
  let model: TestModel;
  const scripted = new ScriptedProvider();
  const settled = (g: { status: string }) => g.status === 'succeeded' || g.status === 'failed';

  beforeAll(async () => {
    database = await sharedDatabase();
    fake = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
    app = await buildTestApp(
      {
        TRIAL_GENERATIONS: '0',
        MAX_PARALLEL_GENERATIONS_PER_USER: '20',
        PROVIDER_POLL_SECONDS: '1',
      },
      undefined,
      {
        providers: new ProviderRegistry([scripted], 'catalog'),
        worker: true,
        delivery: {
          telegram: null,
          webhook: null,
          telegramFiles: new TelegramFiles(TELEGRAM_BOT_TOKEN, fake.apiRoot),
        },
      },
    );
    model = await createTestModel(database.db, { provider: scripted.name, maxReferences: 2 });
  });

  afterAll(async () => {
    await app?.close();
    await fake?.close();
  });

  async function run(references: string[]) {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 10);
    const accepted = await submit(app, {
      telegram_id: telegramId,
      model: model.key,
      prompt: 'instant the same cat, as a watercolour',
      references,
    });
    expect(accepted.statusCode, accepted.body).toBe(202);
    const id: string = accepted.json().id;
    const done = await waitFor(() => generation(app, id), settled);
    return { telegramId, id, done };
  }

  function noTokenIn(value: unknown): void {
    const text = JSON.stringify(value);
    expect(text).not.toContain(TELEGRAM_BOT_TOKEN);
    expect(text).not.toContain(TELEGRAM_BOT_TOKEN.split(':')[1]);
  }

  it('gives the provider a Telegram file as a data URI and a URL as it is, in order', async () => {
    const fileId = fileIdOf('pipeline');
    fake.addFile(fileId, PNG);
    const { id, done } = await run([fileId, 'https://93.184.215.14/x.png']);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    const submitted = scripted.submissions.filter((request) => request.generationId === id);
    expect(submitted).toHaveLength(1);
    expect(submitted[0]?.model).toBe(`vendor/${model.key}/edit`);
    expect(submitted[0]?.referenceUrls).toEqual([
      `data:image/png;base64,${PNG.toString('base64')}`,
      'https://93.184.215.14/x.png',
    ]);
    for (const request of scripted.submissions) noTokenIn(request);
    expect(fake.calls.filter((call) => call.fields.file_id === fileId)).toHaveLength(1);
  });

  it('fails a generation whose Telegram file is unknown and gives the credits back', async () => {
    const { telegramId, id, done } = await run([fileIdOf('gone'), 'https://93.184.215.14/x.png']);
    expect(done).toMatchObject({
      status: 'failed',
      // A file_id Telegram does not know is the request's fault: bad input, not the provider's.
      error: { code: 'invalid_input', message: expect.stringMatching(/invalid file_id/) },
      payment: { method: 'credits', credits: 10, refunded: true },
    });
    noTokenIn(done);
    expect(await balanceOf(app, telegramId)).toBe(10);
    expect(await entriesFor(database.db, id)).toEqual([
      { kind: 'generation_charge', amount: -10 },
      { kind: 'generation_refund', amount: 10 },
    ]);
    expect(scripted.submissionsFor(id)).toBe(0);
    const jobs = await selectRows<{ attempts: number; status: string; last_error: string | null }>(
      database.db,
      sql`SELECT attempts, status, last_error FROM generation_jobs
          WHERE request_id = ${id} AND kind = 'generate'`,
    );
    expect(jobs).toMatchObject([{ attempts: 1, status: 'failed' }]);
    noTokenIn(jobs);
  });

  it('retries a generation whose getFile Telegram answers with 5xx, charged once', async () => {
    const fileId = fileIdOf('retry');
    fake.addFile(fileId, JPEG);
    fake.failNext('getFile', { error_code: 500, description: 'Internal Server Error' });
    const { telegramId, id, done } = await run([fileId]);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    expect(scripted.submissionsFor(id)).toBe(1);
    expect(scripted.submissions.find((r) => r.generationId === id)?.referenceUrls).toEqual([
      `data:image/jpeg;base64,${JPEG.toString('base64')}`,
    ]);
    expect(await balanceOf(app, telegramId)).toBe(0);
    const jobs = await selectRows<{ attempts: number; last_error: string | null }>(
      database.db,
      sql`SELECT attempts, last_error FROM generation_jobs
          WHERE request_id = ${id} AND kind = 'generate'`,
    );
    expect(jobs[0]?.attempts).toBe(2);
    noTokenIn(jobs);
  });
});
