import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { ReplicateProvider, signReplicateWebhook } from '../src/providers/replicate.ts';
import type { ImageProvider } from '../src/providers/types.ts';
import { signWavespeedWebhook, WavespeedProvider } from '../src/providers/wavespeed.ts';
import { type FakeReplicate, startFakeReplicate } from './fakes/replicate-server.ts';
import { type FakeWavespeed, startFakeWavespeed } from './fakes/wavespeed-server.ts';
import { buildTestApp, testConfig } from './helpers/app.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';
import { capturedLogger } from './helpers/logs.ts';
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

/**
 * Provider webhooks through the real HTTP route, for both adapters. The fakes POST their signed
 * webhooks to PUBLIC_BASE_URL, which is a small recording proxy in front of the listening app: the
 * proxy's port is known before the app is built (no free-port race), and it keeps each answer's
 * body, which the fakes do not (they record only the HTTP status). Polling is every 300 s in the
 * webhook app, so only a webhook can finish a generation within a test.
 */

interface ProxiedCall {
  path: string;
  status: number;
  contentType: string;
  body: { outcome?: string; generation_id?: string | null; [key: string]: unknown };
}

interface RecordingProxy {
  url: string;
  calls: ProxiedCall[];
  target: string | null;
  close(): Promise<void>;
}

/** Forwards every request byte for byte to `target` (set once the app listens) and records the answers. */
async function startRecordingProxy(): Promise<RecordingProxy> {
  const calls: ProxiedCall[] = [];
  const proxy: RecordingProxy = {
    url: '',
    calls,
    target: null,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  const server: Server = createServer((incoming, outgoing) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      if (!proxy.target) {
        outgoing.writeHead(503).end('proxy has no target yet');
        return;
      }
      const body = Buffer.concat(chunks);
      const forwarded = httpRequest(
        `${proxy.target}${incoming.url ?? '/'}`,
        { method: incoming.method, headers: incoming.headers },
        (answer) => {
          const parts: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => parts.push(chunk));
          answer.on('end', () => {
            const text = Buffer.concat(parts).toString('utf8');
            let parsed: ProxiedCall['body'] = {};
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = { raw: text };
            }
            calls.push({
              path: new URL(incoming.url ?? '/', 'http://proxy').pathname,
              status: answer.statusCode ?? 0,
              contentType: String(answer.headers['content-type'] ?? ''),
              body: parsed,
            });
            outgoing.writeHead(answer.statusCode ?? 502, answer.headers).end(text);
          });
        },
      );
      forwarded.on('error', (error) => {
        if (!outgoing.headersSent) outgoing.writeHead(502).end(String(error));
      });
      forwarded.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}

/** What a test needs of one adapter and its fake, so every scenario runs for both. */
interface Kit {
  label: string;
  /** The adapter of the webhook app (a name of this test's own). */
  hooked: ImageProvider;
  /** The adapter of the polling app. */
  polled: ImageProvider;
  hookedModel: TestModel;
  polledModel: TestModel;
  secret: string;
  wrongSecret: string;
  /** How the fake behaves for the predictions created (or ended) from now on. */
  configure(options: { duplicates?: boolean; failWith?: string | null; webhook?: boolean }): void;
  /** The webhook URL of the submission of `prompt` (null: none was asked for). */
  submittedWebhook(prompt: string): string | null | undefined;
  submissionsOf(prompt: string): number;
  /** Ends the prediction at the provider, which then sends its webhook(s). */
  finish(providerJobId: string): Promise<void>;
  deliveriesFor(providerJobId: string): { status: number | 'error' | null }[];
  outputUrl(providerJobId: string): string;
  /** A finished prediction as the provider would post it. */
  completedBody(providerJobId: string): string;
  sign(secret: string, body: string, timestamp?: number): Record<string, string>;
  /** Makes the next two status queries answer 429 and then 503. */
  throttleThenFail(): Promise<void>;
  /** Back to answering normally, whatever throttleThenFail left. */
  recover(): void;
}

let database: DatabaseHandle;
let wavespeed: FakeWavespeed;
let replicate: FakeReplicate;
let proxy: RecordingProxy;
let hookApp: FastifyInstance;
let pollApp: FastifyInstance;
const kits: Kit[] = [];

function suffix(): string {
  return randomUUID().slice(0, 8);
}

async function wavespeedKit(): Promise<Kit> {
  const fake = wavespeed;
  const make = (name: string) =>
    new WavespeedProvider({
      apiKey: fake.apiKey,
      baseUrl: fake.baseUrl,
      webhookSecret: fake.webhookSecret,
      name,
    });
  const hooked = make(`wavespeed-hook-${suffix()}`);
  const polled = make(`wavespeed-poll-${suffix()}`);
  const submission = (prompt: string) => fake.submissions.filter((s) => s.body.prompt === prompt);
  return {
    label: 'wavespeed',
    hooked,
    polled,
    hookedModel: await createTestModel(database.db, { provider: hooked.name }),
    polledModel: await createTestModel(database.db, { provider: polled.name }),
    secret: fake.webhookSecret,
    wrongSecret: `whsec_${randomBytes(24).toString('base64')}`,
    configure({ duplicates = false, failWith = null, webhook = true }) {
      fake.setBehaviour({
        error: null,
        failWith,
        webhookDeliveries: webhook ? (duplicates ? 2 : 1) : 0,
        // A webhook test ends predictions itself (finish); a polling test on the second poll.
        completeAfterPolls: webhook ? 1_000_000 : 2,
        completeAfterMs: null,
      });
    },
    submittedWebhook: (prompt) => submission(prompt)[0]?.webhook,
    submissionsOf: (prompt) => submission(prompt).length,
    finish: (id) => fake.finish(id),
    deliveriesFor: (id) => fake.webhookDeliveries.filter((d) => d.predictionId === id),
    outputUrl: (id) => `${fake.baseUrl}/outputs/${id}.png`,
    completedBody: (id) =>
      JSON.stringify({
        id,
        model: 'vendor/model',
        input: { prompt: 'x' },
        outputs: [`${fake.baseUrl}/outputs/${id}.png`],
        urls: { get: `${fake.baseUrl}/api/v3/predictions/${id}/result` },
        has_nsfw_contents: [false],
        status: 'completed',
        created_at: new Date().toISOString(),
        error: '',
      }),
    sign: (secret, body, timestamp) =>
      signWavespeedWebhook(secret, body, timestamp === undefined ? {} : { timestamp }),
    async throttleThenFail() {
      fake.setBehaviour({ error: { status: 429, message: 'slow down', retryAfterSeconds: 1 } });
      await waitForLastError(/answered 429/);
      fake.setBehaviour({ error: { status: 503, message: 'overloaded' } });
      await waitForLastError(/answered 503/);
      fake.setBehaviour({ error: null });
    },
    recover() {
      fake.setBehaviour({ error: null });
    },
  };
}

async function replicateKit(): Promise<Kit> {
  const fake = replicate;
  const make = (name: string) =>
    new ReplicateProvider({
      apiToken: fake.apiToken,
      baseUrl: fake.baseUrl,
      webhookSecret: fake.webhookSecret,
      name,
    });
  const hooked = make(`replicate-hook-${suffix()}`);
  const polled = make(`replicate-poll-${suffix()}`);
  const submission = (prompt: string) =>
    fake.submissions.filter((s) => (s.body.input as { prompt?: string })?.prompt === prompt);
  return {
    label: 'replicate',
    hooked,
    polled,
    hookedModel: await createTestModel(database.db, { provider: hooked.name }),
    polledModel: await createTestModel(database.db, { provider: polled.name }),
    secret: fake.webhookSecret,
    wrongSecret: `whsec_${randomBytes(24).toString('base64')}`,
    configure({ duplicates = false, failWith = null }) {
      fake.setBehaviour({
        duplicateWebhooks: duplicates,
        failWith,
        rateLimitNext: 0,
        serverErrorNext: 0,
        // The first status query answers `processing`, the second completes the prediction; with
        // a webhook, the prediction never completes on its own timer (finish() ends it).
        pendingPolls: 1,
        webhookCompleteAfterMs: 10 * 60_000,
      });
    },
    submittedWebhook: (prompt) => {
      const [first] = submission(prompt);
      if (!first) return undefined;
      return typeof first.body.webhook === 'string' ? first.body.webhook : null;
    },
    submissionsOf: (prompt) => submission(prompt).length,
    async finish(id) {
      // The fake completes a prediction on a status query past `pendingPolls`, and then posts its
      // webhook(s) in the background: ask as the provider's dashboard would, until it is done.
      await waitFor(
        async () => {
          const response = await fetch(`${fake.baseUrl}/v1/predictions/${id}`, {
            headers: { authorization: `Bearer ${fake.apiToken}` },
          });
          return ((await response.json()) as { status: string }).status;
        },
        (status) => status === 'succeeded' || status === 'failed',
        5_000,
      );
    },
    deliveriesFor: (id) => fake.webhookDeliveries.filter((d) => d.predictionId === id),
    outputUrl: (id) => `${fake.baseUrl}/outputs/${id}.png`,
    completedBody: (id) =>
      JSON.stringify({
        id,
        model: 'vendor/model',
        version: null,
        input: { prompt: 'x' },
        output: `${fake.baseUrl}/outputs/${id}.png`,
        error: null,
        status: 'succeeded',
        metrics: { predict_time: 0.4 },
      }),
    sign: (secret, body, timestamp) =>
      signReplicateWebhook(secret, body, timestamp === undefined ? {} : { timestamp }),
    async throttleThenFail() {
      fake.setBehaviour({
        rateLimitNext: 1,
        retryAfterSeconds: 1,
        serverErrorNext: 1,
        serverErrorStatus: 503,
      });
      await waitForLastError(/answered 429/);
      await waitForLastError(/answered 503/);
    },
    recover() {
      fake.setBehaviour({ rateLimitNext: 0, serverErrorNext: 0 });
    },
  };
}

/** The generation whose job last recorded this error (the one test running at the time). */
let watched: string | null = null;
async function waitForLastError(pattern: RegExp): Promise<void> {
  const id = watched;
  if (!id) throw new Error('no generation is watched');
  await waitFor(
    () => jobOf(id),
    (job) => pattern.test(job?.last_error ?? ''),
    20_000,
  );
}

interface JobRow {
  status: string;
  step: string;
  provider_job_id: string | null;
  attempts: number;
  last_error: string | null;
}

async function jobOf(id: string): Promise<JobRow | undefined> {
  const [job] = await selectRows<JobRow>(
    database.db,
    sql`SELECT status, step, provider_job_id, attempts, last_error FROM generation_jobs
        WHERE request_id = ${id} AND kind = 'generate'`,
  );
  return job;
}

async function resultRows(id: string) {
  return selectRows<{ position: number; url: string | null; storage_path: string | null }>(
    database.db,
    sql`SELECT position, url, storage_path FROM generation_results WHERE request_id = ${id}
        ORDER BY position`,
  );
}

const settled = (g: { status: string }) => g.status === 'succeeded' || g.status === 'failed';

/** Submits a generation for a fresh user with 10 credits (the model's price). */
async function accepted(app: FastifyInstance, model: TestModel, prompt: string) {
  const telegramId = freshTelegramId();
  await userWithCredits(app, telegramId, 10);
  const requestId = `hook-${telegramId}`;
  const response = await submit(
    app,
    { telegram_id: telegramId, model: model.key, prompt },
    { 'x-request-id': requestId },
  );
  expect(response.statusCode, response.body).toBe(202);
  return { telegramId, id: response.json().id as string, requestId };
}

/** Waits until the worker has submitted, recorded the provider's job id and parked the job to poll later. */
async function parked(id: string): Promise<string> {
  const job = await waitFor(
    () => jobOf(id),
    (row) => row?.provider_job_id != null && row.status === 'pending',
  );
  return job?.provider_job_id as string;
}

function webhookCallsFor(kit: Kit, id: string): ProxiedCall[] {
  return proxy.calls.filter(
    (call) =>
      call.path === `/api/v1/providers/${kit.hooked.name}/webhook` &&
      call.body.generation_id === id,
  );
}

function postWebhook(provider: string, body: string, headers: Record<string, string>) {
  return hookApp.inject({
    method: 'POST',
    url: `/api/v1/providers/${provider}/webhook`,
    headers: { 'content-type': 'application/json', ...headers },
    payload: body,
  });
}

// What the webhook app logs, to read a generation's story from.
const { logger: hookLogger, lines: logLines } = capturedLogger();

beforeAll(async () => {
  database = await sharedDatabase();
  wavespeed = await startFakeWavespeed();
  replicate = await startFakeReplicate();
  proxy = await startRecordingProxy();
  kits.push(await wavespeedKit(), await replicateKit());
  const common = {
    TRIAL_GENERATIONS: '0',
    MAX_PARALLEL_GENERATIONS_PER_USER: '5',
    // No deliveries: these apps' workers have no channel, and no other test's worker should
    // get deliver jobs of ours.
    TELEGRAM_BOT_TOKEN: '',
  };
  const noDelivery = { telegram: null, webhook: null, telegramFiles: null };
  hookApp = await buildApp(
    testConfig({
      ...common,
      PUBLIC_BASE_URL: proxy.url,
      PROVIDER_POLL_SECONDS: '300',
      LOG_LEVEL: 'info',
    }),
    {
      database,
      logger: hookLogger,
      providers: new ProviderRegistry(
        kits.map((kit) => kit.hooked),
        'catalog',
      ),
      worker: true,
      delivery: noDelivery,
    },
  );
  await hookApp.listen({ port: 0, host: '127.0.0.1' });
  proxy.target = `http://127.0.0.1:${(hookApp.server.address() as AddressInfo).port}`;
  pollApp = await buildTestApp({ ...common, PROVIDER_POLL_SECONDS: '1' }, undefined, {
    providers: new ProviderRegistry(
      kits.map((kit) => kit.polled),
      'catalog',
    ),
    worker: true,
    delivery: noDelivery,
  });
});

afterAll(async () => {
  await hookApp?.close();
  await pollApp?.close();
  await proxy?.close();
  await wavespeed?.close();
  await replicate?.close();
});

describe.each(['wavespeed', 'replicate'])('%s webhooks', (label) => {
  const kit = () => kits.find((k) => k.label === label) as Kit;

  it('settles a generation once when the signed completion webhook arrives twice', async () => {
    const k = kit();
    k.configure({ duplicates: true });
    const prompt = `twice ${randomUUID()}`;
    const { telegramId, id, requestId } = await accepted(hookApp, k.hookedModel, prompt);
    const providerJobId = await parked(id);
    expect(k.submittedWebhook(prompt)).toBe(
      `${proxy.url}/api/v1/providers/${k.hooked.name}/webhook`,
    );

    await k.finish(providerJobId);
    const calls = await waitFor(
      async () => webhookCallsFor(k, id),
      (found) => found.length >= 2,
    );
    expect(calls.map((call) => [call.status, call.body])).toEqual([
      [200, { outcome: 'settled', generation_id: id }],
      [200, { outcome: 'duplicate', generation_id: id }],
    ]);
    await waitFor(
      async () => k.deliveriesFor(providerJobId),
      (found) => found.length >= 2,
    );
    expect(k.deliveriesFor(providerJobId).map((d) => d.status)).toEqual([200, 200]);

    const done = await generation(hookApp, id);
    expect(done).toMatchObject({
      status: 'succeeded',
      error: null,
      payment: { method: 'credits', credits: 10, refunded: false },
      // Served from our copy: the provider's link expires.
      results: [
        {
          position: 0,
          url: `${proxy.url}/api/v1/generations/${id}/images/0`,
          mime_type: 'image/png',
        },
      ],
    });
    expect(await resultRows(id)).toEqual([
      { position: 0, url: k.outputUrl(providerJobId), storage_path: `results/${id}/0.png` },
    ]);
    expect(await entriesFor(database.db, id)).toEqual([{ kind: 'generation_charge', amount: -10 }]);
    expect(await balanceOf(hookApp, telegramId)).toBe(0);
    expect(k.submissionsOf(prompt)).toBe(1);
    expect(await jobOf(id)).toMatchObject({ status: 'succeeded', step: 'done' });
    // The story at info, settled by the webhook: one line for the success (none for the
    // duplicate), with the generation id and the id of the request that accepted it.
    const story = logLines.filter((line) => line.generationId === id);
    expect(story.map((line) => line.msg)).toEqual([
      'generation accepted',
      'generation submitted to its provider',
      'generation succeeded',
    ]);
    expect(story.every((line) => line.requestId === requestId && line.level === 30)).toBe(true);
    expect(story[2]).toMatchObject({ by: 'webhook' });
  });

  it('refuses a webhook with a bad signature (401) and changes nothing', async () => {
    const k = kit();
    k.configure({});
    const prompt = `forged ${randomUUID()}`;
    const { id } = await accepted(hookApp, k.hookedModel, prompt);
    const providerJobId = await parked(id);
    const before = await generation(hookApp, id);
    expect(before.status).toBe('running');

    const body = k.completedBody(providerJobId);
    const now = Math.floor(Date.now() / 1000);
    const attempts = [
      // Signed with another secret.
      k.sign(k.wrongSecret, body),
      // The right secret, over other bytes than those sent.
      k.sign(k.secret, body.replace('"id"', '"id" ')),
      // The right secret, replayed after the tolerance.
      k.sign(k.secret, body, now - 3600),
      // No signature at all.
      {},
    ];
    for (const headers of attempts) {
      const response = await postWebhook(k.hooked.name, body, headers);
      expect(response.statusCode, response.body).toBe(401);
      expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(response.json()).toMatchObject({ status: 401, code: 'invalid_signature' });
    }

    expect(await generation(hookApp, id)).toEqual(before);
    expect(await resultRows(id)).toEqual([]);
    expect(await entriesFor(database.db, id)).toEqual([{ kind: 'generation_charge', amount: -10 }]);
    expect(await jobOf(id)).toMatchObject({ status: 'pending', provider_job_id: providerJobId });

    // The provider's own, correctly signed webhook still settles it.
    await k.finish(providerJobId);
    const [call] = await waitFor(
      async () => webhookCallsFor(k, id),
      (found) => found.length >= 1,
    );
    expect(call).toMatchObject({ status: 200, body: { outcome: 'settled' } });
    expect((await generation(hookApp, id)).status).toBe('succeeded');
  });

  it('fails and refunds once a prediction the webhook reports failed', async () => {
    const k = kit();
    k.configure({ failWith: 'NSFW content detected' });
    try {
      const prompt = `fail ${randomUUID()}`;
      const { telegramId, id } = await accepted(hookApp, k.hookedModel, prompt);
      const providerJobId = await parked(id);
      await k.finish(providerJobId);
      const calls = await waitFor(
        async () => webhookCallsFor(k, id),
        (found) => found.length >= 1,
      );
      expect(calls.map((call) => [call.status, call.body.outcome])).toEqual([[200, 'settled']]);
      const done = await waitFor(() => generation(hookApp, id), settled);
      expect(done).toMatchObject({
        status: 'failed',
        error: { code: 'provider_failed' },
        payment: { method: 'credits', credits: 10, refunded: true },
        results: [],
      });
      expect(done.error.message).toContain('NSFW content detected');
      expect(await entriesFor(database.db, id)).toEqual([
        { kind: 'generation_charge', amount: -10 },
        { kind: 'generation_refund', amount: 10 },
      ]);
      expect(await balanceOf(hookApp, telegramId)).toBe(10);

      // A later report (even of success) changes nothing and gives back nothing more.
      const body = k.completedBody(providerJobId);
      const again = await postWebhook(k.hooked.name, body, k.sign(k.secret, body));
      expect(again.statusCode, again.body).toBe(200);
      expect(again.json()).toEqual({ outcome: 'duplicate', generation_id: id });
      expect((await generation(hookApp, id)).status).toBe('failed');
      expect(await entriesFor(database.db, id)).toHaveLength(2);
      expect(k.submissionsOf(prompt)).toBe(1);
    } finally {
      k.configure({});
    }
  });

  it('ignores a signed webhook for a provider job it does not know', async () => {
    const k = kit();
    const body = k.completedBody(`unknown-${randomBytes(8).toString('hex')}`);
    const response = await postWebhook(k.hooked.name, body, k.sign(k.secret, body));
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toEqual({ outcome: 'ignored', generation_id: null });

    // A provider this deployment does not have: 404, whatever the signature.
    const missing = await postWebhook(`${k.label}-nobody`, body, k.sign(k.secret, body));
    expect(missing.statusCode, missing.body).toBe(404);
    expect(missing.headers['content-type']).toMatch(/^application\/problem\+json/);
  });

  it('without a webhook, polling finishes the job, retrying a 429 and then a 503 on status', async () => {
    const k = kit();
    k.configure({ webhook: false });
    const prompt = `polled ${randomUUID()}`;
    const { id } = await accepted(pollApp, k.polledModel, prompt);
    watched = id;
    try {
      await waitFor(
        () => jobOf(id),
        (job) => job?.provider_job_id != null,
      );
      await k.throttleThenFail();
      const done = await waitFor(() => generation(pollApp, id), settled, 30_000);
      const job = await jobOf(id);
      const providerJobId = job?.provider_job_id as string;
      expect(done).toMatchObject({
        status: 'succeeded',
        payment: { refunded: false },
        results: [{ url: `/api/v1/generations/${id}/images/0` }],
      });
      // Two attempts lost to the errors, one that succeeded (waiting to poll is no attempt).
      expect(job).toMatchObject({ status: 'succeeded', attempts: 3 });
      expect(k.submittedWebhook(prompt)).toBeNull();
      expect(k.submissionsOf(prompt)).toBe(1);
      expect(k.deliveriesFor(providerJobId)).toEqual([]);
      expect(await entriesFor(database.db, id)).toEqual([
        { kind: 'generation_charge', amount: -10 },
      ]);
    } finally {
      watched = null;
      k.recover();
    }
  }, 60_000);
});
