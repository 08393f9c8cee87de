import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { ReplicateProvider } from '../src/providers/replicate.ts';
import { WavespeedProvider } from '../src/providers/wavespeed.ts';
import { type FakeReplicate, startFakeReplicate } from './fakes/replicate-server.ts';
import { type FakeWavespeed, startFakeWavespeed } from './fakes/wavespeed-server.ts';
import { buildTestApp } from './helpers/app.ts';
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

// Failover, end to end through both providers' fakes (which check each model's documented body):
// nano-banana's routes as the starting catalog has them, Wavespeed first and Replicate's
// google/nano-banana second, under provider names of this file's own.
const PRIMARY = 'wavespeed-failover';
const SECONDARY = 'replicate-failover';

let database: DatabaseHandle;
let wavespeed: FakeWavespeed;
let replicate: FakeReplicate;
let registry: ProviderRegistry;
let app: FastifyInstance;
let model: TestModel;

beforeAll(async () => {
  database = await sharedDatabase();
  wavespeed = await startFakeWavespeed({ completeAfterPolls: 1 });
  replicate = await startFakeReplicate({ pendingPolls: 0 });
  registry = new ProviderRegistry(
    [
      new WavespeedProvider({
        name: PRIMARY,
        apiKey: wavespeed.apiKey,
        baseUrl: wavespeed.baseUrl,
        requestTimeoutMs: 3_000,
      }),
      new ReplicateProvider({
        name: SECONDARY,
        apiToken: replicate.apiToken,
        baseUrl: replicate.baseUrl,
      }),
    ],
    'catalog',
    // Two failures in a row open a breaker; it stays open for the whole file.
    { failures: 2, windowMs: 60_000, openMs: 600_000 },
  );
  app = await buildTestApp(
    { TRIAL_GENERATIONS: '0', MAX_PARALLEL_GENERATIONS_PER_USER: '20', PROVIDER_POLL_SECONDS: '1' },
    undefined,
    { providers: registry, worker: true },
  );
  model = await createTestModel(database.db, {
    provider: PRIMARY,
    providerModel: 'google/nano-banana/text-to-image',
    shape: { providerEditModel: 'google/nano-banana/edit' },
    fallbacks: [
      {
        provider: SECONDARY,
        providerModel: 'google/nano-banana',
        providerEditModel: null,
        referenceField: 'image_input',
      },
    ],
  });
});

afterAll(async () => {
  await app?.close();
  await wavespeed?.close();
  await replicate?.close();
});

beforeEach(() => {
  wavespeed.setBehaviour({ error: null, delayMs: 0 });
  registry.breaker(PRIMARY).recordSuccess();
  registry.breaker(SECONDARY).recordSuccess();
});

const settled = (g: { status: string }) => g.status === 'succeeded' || g.status === 'failed';

async function job(requestId: string) {
  const [row] = await selectRows<{
    provider: string;
    provider_job_id: string | null;
    step: string;
    status: string;
  }>(
    database.db,
    sql`SELECT provider, provider_job_id, step, status FROM generation_jobs
        WHERE request_id = ${requestId} AND kind = 'generate'`,
  );
  return row;
}

async function accept(prompt: string) {
  const telegramId = freshTelegramId();
  await userWithCredits(app, telegramId, 100);
  const response = await submit(app, { telegram_id: telegramId, model: model.key, prompt });
  expect(response.statusCode, response.body).toBe(202);
  return { telegramId, id: response.json().id as string };
}

const posts = (calls: string[]) => calls.filter((call) => call.startsWith('POST ')).length;

describe('failover between a model’s routes', () => {
  it('primary down: the secondary serves, one submission each, the user charged once', async () => {
    wavespeed.setBehaviour({ error: { status: 503, message: 'upstream overloaded' } });
    const wavespeedPosts = posts(wavespeed.calls);
    const replicateSubmissions = replicate.submissions.length;

    const first = await accept('a lighthouse at dusk');
    const second = await accept('a harbour at dawn');
    const [done, alsoDone] = await Promise.all([
      waitFor(() => generation(app, first.id), settled),
      waitFor(() => generation(app, second.id), settled),
    ]);
    expect(done.status).toBe('succeeded');
    expect(alsoDone.status).toBe('succeeded');

    // Each generation was offered to Wavespeed at most once (refused: nothing made there), and
    // made by Replicate exactly once, with google/nano-banana's documented input.
    expect(posts(wavespeed.calls) - wavespeedPosts).toBeLessThanOrEqual(2);
    const made = replicate.submissions.slice(replicateSubmissions);
    expect(made).toHaveLength(2);
    for (const submission of made) {
      expect(submission.path).toBe('/v1/models/google/nano-banana/predictions');
      expect(submission.body).toEqual({
        input: { prompt: expect.any(String), aspect_ratio: '1:1' },
      });
    }
    for (const { id, telegramId } of [first, second]) {
      expect(await job(id)).toMatchObject({ provider: SECONDARY, status: 'succeeded' });
      expect(await entriesFor(database.db, id)).toEqual([
        { kind: 'generation_charge', amount: -10 },
      ]);
      expect(await balanceOf(app, telegramId)).toBe(90);
    }

    // The breaker is open now: GET /models still offers the model (its second route serves),
    // and a new generation goes to Replicate without trying Wavespeed.
    expect(registry.breaker(PRIMARY).isOpen()).toBe(true);
    const listed = (await app.inject({ url: '/api/v1/models' })).json().models;
    expect(listed.find((m: { key: string }) => m.key === model.key)).toMatchObject({
      available: true,
      unavailable_reason: null,
    });
    const before = posts(wavespeed.calls);
    const third = await accept('a lighthouse in fog');
    expect((await job(third.id))?.provider).toBe(SECONDARY);
    expect((await waitFor(() => generation(app, third.id), settled)).status).toBe('succeeded');
    expect(posts(wavespeed.calls)).toBe(before);
  });

  it('a job the primary accepted stays there while it fails, and finishes there', async () => {
    wavespeed.setBehaviour({ completeAfterPolls: 1_000 });
    const replicateSubmissions = replicate.submissions.length;
    const { id } = await accept('a lighthouse under stars');
    const submitted = await waitFor(
      () => job(id),
      (row) => row?.provider_job_id != null,
    );
    expect(submitted?.provider).toBe(PRIMARY);

    // Its status queries fail until the breaker opens: the job is not moved.
    wavespeed.setBehaviour({ error: { status: 502 } });
    await waitFor(
      async () => registry.breaker(PRIMARY).isOpen(),
      (open) => open,
      40_000,
    );
    expect(await job(id)).toMatchObject({
      provider: PRIMARY,
      provider_job_id: submitted?.provider_job_id,
      status: 'pending',
    });

    wavespeed.setBehaviour({ error: null, completeAfterPolls: 1 });
    await wavespeed.finish(submitted?.provider_job_id as string);
    const done = await waitFor(() => generation(app, id), settled, 60_000);
    expect(done.status).toBe('succeeded');
    expect(await job(id)).toMatchObject({ provider: PRIMARY, status: 'succeeded' });
    expect(replicate.submissions.length).toBe(replicateSubmissions);
  }, 90_000);

  it('a submit whose answer was lost may have made a job: it is never sent to the secondary', async () => {
    // The request reaches Wavespeed but no answer comes before the adapter's timeout.
    wavespeed.setBehaviour({ delayMs: 6_000 });
    const replicateSubmissions = replicate.submissions.length;
    const { id } = await accept('a lighthouse in a storm');
    const unconfirmed = await waitFor(
      () => job(id),
      (row) => row?.step === 'submit_unconfirmed',
    );
    expect(unconfirmed?.provider).toBe(PRIMARY);
    // Another lost answer opens the breaker; the job still stays with Wavespeed.
    await waitFor(
      async () => registry.breaker(PRIMARY).isOpen(),
      (open) => open,
      40_000,
    );
    wavespeed.setBehaviour({ delayMs: 0 });
    const done = await waitFor(() => generation(app, id), settled, 60_000);
    expect(done.status).toBe('succeeded');
    expect(await job(id)).toMatchObject({ provider: PRIMARY });
    expect(replicate.submissions.length).toBe(replicateSubmissions);
  }, 90_000);
});
