import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { TelegramDelivery } from '../src/delivery/telegram.ts';
import { verifyDeliveryWebhook, WebhookDelivery } from '../src/delivery/webhook.ts';
import type { DeliveryChannels } from '../src/jobs/types.ts';
import { JobWorker } from '../src/jobs/worker.ts';
import { loadTexts } from '../src/locales/index.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { LocalResultStore } from '../src/storage/local.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { type FakeTelegram, startFakeTelegram } from './fakes/telegram-api.ts';
import { botAuth, buildTestApp, TELEGRAM_BOT_TOKEN, testConfig } from './helpers/app.ts';
import { freshTelegramId, sharedDatabase, silentLogger } from './helpers/database.ts';
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

const WEBHOOK_SECRET = 'delivery-webhook-secret-0123456789';

let database: DatabaseHandle;
let telegram: FakeTelegram;
let receiver: {
  server: Server;
  url: string;
  received: { headers: IncomingHttpHeaders; body: string }[];
};
let app: FastifyInstance;
let model: TestModel;
const provider = new ScriptedProvider();

function channels(): DeliveryChannels {
  return {
    telegram: new TelegramDelivery({ botToken: TELEGRAM_BOT_TOKEN, apiRoot: telegram.apiRoot }),
    webhook: new WebhookDelivery({ url: receiver.url, secret: WEBHOOK_SECRET }),
    telegramFiles: null,
  };
}

async function startReceiver(): Promise<typeof receiver> {
  const received: { headers: IncomingHttpHeaders; body: string }[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({ headers: request.headers, body: Buffer.concat(chunks).toString() });
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}/hooks/generations`, received };
}

// The users here chose no language and have no Telegram one: they are told in DEFAULT_LANGUAGE.
const language = testConfig().defaultLanguage;
const texts = loadTexts(language);
const t = (key: string, variables?: Record<string, string | number>) =>
  texts.t(language, key, variables);

const settled = (g: { status: string }) => g.status === 'succeeded' || g.status === 'failed';

function callsTo(chatId: number) {
  return telegram.calls.filter((call) => call.chatId === chatId);
}

beforeAll(async () => {
  database = await sharedDatabase();
  telegram = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
  receiver = await startReceiver();
  app = await buildTestApp(
    { TRIAL_GENERATIONS: '0', MAX_PARALLEL_GENERATIONS_PER_USER: '20', PROVIDER_POLL_SECONDS: '1' },
    undefined,
    {
      providers: new ProviderRegistry([provider], 'catalog'),
      delivery: channels(),
      worker: true,
    },
  );
  model = await createTestModel(database.db, { provider: provider.name });
});

afterAll(async () => {
  await app?.close();
  await telegram?.close();
  receiver?.server.close();
});

async function run(prompt: string, credits = 10) {
  const telegramId = freshTelegramId();
  await userWithCredits(app, telegramId, credits);
  const accepted = await submit(app, { telegram_id: telegramId, model: model.key, prompt });
  expect(accepted.statusCode, accepted.body).toBe(202);
  const id: string = accepted.json().id;
  const done = await waitFor(() => generation(app, id), settled);
  return { telegramId, id, done };
}

describe('the generation pipeline', () => {
  it('takes a request from submit to a stored image, delivered to the chat and the webhook', async () => {
    const { telegramId, id, done } = await run('instant a lighthouse');
    expect(done).toMatchObject({
      status: 'succeeded',
      error: null,
      payment: { method: 'credits', credits: 10, refunded: false },
      results: [
        {
          position: 0,
          url: `/api/v1/generations/${id}/images/0`,
          mime_type: 'image/png',
          width: 4,
          height: 4,
          seed: 7,
        },
      ],
    });
    expect(done.started_at).not.toBeNull();
    const image = await app.inject({ method: 'GET', url: done.results[0].url });
    expect(image.statusCode).toBe(200);
    expect(image.headers['content-type']).toBe('image/png');
    expect(image.rawPayload.subarray(1, 4).toString()).toBe('PNG');
    expect(await entriesFor(database.db, id)).toEqual([{ kind: 'generation_charge', amount: -10 }]);
    expect(provider.submissionsFor(id)).toBe(1);

    const photos = await waitFor(
      async () => callsTo(telegramId),
      (calls) => calls.length > 0,
    );
    // To the user's own chat (no `telegram` was given), in its language, with the buttons.
    expect(photos).toMatchObject([
      {
        method: 'sendPhoto',
        fields: {
          caption: t('delivery-result-caption', {
            model: model.key,
            cost: t('delivery-cost-credits', { credits: 10 }),
          }),
          parse_mode: 'HTML',
          reply_markup: {
            inline_keyboard: [
              [
                { text: t('button-regenerate'), callback_data: `res:r:${id}` },
                { text: t('button-edit'), callback_data: `res:e:${id}` },
                { text: t('button-original'), callback_data: `res:o:${id}` },
              ],
            ],
          },
        },
      },
    ]);
    expect(photos[0]?.fields.reply_parameters).toBeUndefined();
    expect(photos[0]?.files[0]?.size).toBe(image.rawPayload.length);

    const hook = await waitFor(
      async () => receiver.received.filter((r) => r.body.includes(id)),
      (hooks) => hooks.length > 0,
    );
    const [event] = hook;
    expect(verifyDeliveryWebhook(WEBHOOK_SECRET, event?.headers ?? {}, event?.body ?? '')).toBe(
      true,
    );
    expect(JSON.parse(event?.body ?? '{}')).toMatchObject({
      type: 'generation.succeeded',
      generation_id: id,
      telegram_id: telegramId,
      results: [{ mime_type: 'image/png', width: 4, height: 4 }],
    });
  });

  it('gives the credits back once when the provider fails the job, and tells the user', async () => {
    const { telegramId, id, done } = await run('refuse something');
    expect(done).toMatchObject({
      status: 'failed',
      error: { code: 'provider_failed', message: 'content policy' },
      payment: { refunded: true },
    });
    expect(await balanceOf(app, telegramId)).toBe(10);
    expect(await entriesFor(database.db, id)).toEqual([
      { kind: 'generation_charge', amount: -10 },
      { kind: 'generation_refund', amount: 10 },
    ]);
    const told = await waitFor(
      async () => callsTo(telegramId),
      (calls) => calls.length > 0,
    );
    expect(told).toHaveLength(1);
    expect(told[0]?.method).toBe('sendMessage');
    expect(told[0]?.fields).toMatchObject({
      text: `${t('delivery-failed', { reason: t('failure-reason-refused') })}\n${t('delivery-refunded-credits', { credits: 10 })}`,
      parse_mode: 'HTML',
    });
    // The provider's own words stay in the API's error, never in the chat.
    expect(JSON.stringify(told[0]?.fields)).not.toContain('content policy');
  });

  it('fails and refunds a submission the provider refuses for good, without retrying it', async () => {
    const { telegramId, id, done } = await run('reject this');
    expect(done).toMatchObject({ status: 'failed', error: { code: 'provider_rejected' } });
    expect(await balanceOf(app, telegramId)).toBe(10);
    expect(provider.submissionsFor(id)).toBe(0);
    const [job] = await selectRows<{ attempts: number; status: string }>(
      database.db,
      sql`SELECT attempts, status FROM generation_jobs WHERE request_id = ${id} AND kind = 'generate'`,
    );
    expect(job).toEqual({ attempts: 1, status: 'failed' });
  });

  it('retries a transient provider error with backoff and then succeeds, charged once', async () => {
    const { telegramId, id, done } = await run('flaky:1 a boat');
    expect(done.status).toBe('succeeded');
    expect(provider.submissionsFor(id)).toBe(1);
    expect(await balanceOf(app, telegramId)).toBe(0);
    const [job] = await selectRows<{ attempts: number; last_error: string | null }>(
      database.db,
      sql`SELECT attempts, last_error FROM generation_jobs WHERE request_id = ${id} AND kind = 'generate'`,
    );
    expect(job?.attempts).toBe(2);
  });

  it('polls a slow provider until the image is ready', async () => {
    const { id, done } = await run('slow:2 a tree');
    expect(done.status).toBe('succeeded');
    expect(provider.submissionsFor(id)).toBe(1);
  });

  it('gives the free generation back when a trial generation fails', async () => {
    const trialApp = await buildTestApp({ TRIAL_GENERATIONS: '1' }, undefined, {
      providers: new ProviderRegistry([provider], 'catalog'),
    });
    try {
      const telegramId = freshTelegramId();
      await userWithCredits(trialApp, telegramId, 0);
      const accepted = await submit(trialApp, {
        telegram_id: telegramId,
        model: model.key,
        prompt: 'refuse on trial',
      });
      expect(accepted.json().payment.method).toBe('trial');
      const done = await waitFor(() => generation(trialApp, accepted.json().id), settled);
      expect(done).toMatchObject({
        status: 'failed',
        payment: { method: 'trial', refunded: true },
      });
      const trial = await trialApp.inject({
        method: 'GET',
        url: `/api/v1/users/${telegramId}/trial`,
        headers: botAuth,
      });
      expect(trial.json()).toMatchObject({ available: true, used: 0, remaining: 1 });
    } finally {
      await trialApp.close();
    }
  });

  it('never refunds or reruns a generation whose delivery fails', async () => {
    const blocked = { error_code: 403, description: 'Forbidden: bot was blocked by the user' };
    // Every sendPhoto is refused until this delivery is: the worker may also be delivering
    // another generation meanwhile (an earlier test's, still under way, or a job a previous test
    // file left behind: deliver jobs are any worker's), which must not take the planned failure.
    telegram.failNext('sendPhoto', blocked, 1_000);
    const { telegramId, id, done } = await run('instant blocked');
    expect(done.status).toBe('succeeded');
    const [deliver] = await waitFor(
      () =>
        selectRows<{ status: string; last_error: string | null }>(
          database.db,
          sql`SELECT status, last_error FROM generation_jobs WHERE request_id = ${id} AND kind = 'deliver'`,
        ),
      (rows) => rows[0]?.status === 'failed',
    );
    telegram.failNext('sendPhoto', blocked, 0);
    expect(deliver?.last_error).toMatch(/blocked/);
    expect((await generation(app, id)).status).toBe('succeeded');
    expect(await entriesFor(database.db, id)).toEqual([{ kind: 'generation_charge', amount: -10 }]);
    expect(provider.submissionsFor(id)).toBe(1);
    // The one refused attempt; a blocked chat is not tried again.
    expect(callsTo(telegramId).map((call) => call.method)).toEqual(['sendPhoto']);
  });

  it('retries a delivery Telegram throttles, after its retry_after', async () => {
    const throttled = {
      error_code: 429,
      description: 'Too Many Requests: retry after 1',
      retry_after: 1,
    };
    // Throttled until this delivery has been (see above: another delivery must not take it).
    telegram.failNext('sendPhoto', throttled, 1_000);
    const { telegramId, id } = await run('instant throttled');
    await waitFor(
      async () => callsTo(telegramId),
      (calls) => calls.length > 0,
    );
    telegram.failNext('sendPhoto', throttled, 0);
    const [deliver] = await waitFor(
      () =>
        selectRows<{ status: string; attempts: number }>(
          database.db,
          sql`SELECT status, attempts FROM generation_jobs WHERE request_id = ${id} AND kind = 'deliver'`,
        ),
      (rows) => rows[0]?.status === 'succeeded',
    );
    expect(deliver).toMatchObject({ attempts: 2 });
    // The throttled attempt and the one after it.
    expect(callsTo(telegramId).map((call) => call.method)).toEqual(['sendPhoto', 'sendPhoto']);
  });
});

describe('deadline', () => {
  // Polls are due only at the deadline here, so what happens there is the final re-query.
  const slowProvider = new ScriptedProvider();
  let deadlineApp: FastifyInstance;
  let deadlineModel: TestModel;
  beforeAll(async () => {
    deadlineApp = await buildTestApp(
      { TRIAL_GENERATIONS: '0', GENERATION_TIMEOUT_SECONDS: '2', PROVIDER_POLL_SECONDS: '300' },
      undefined,
      {
        providers: new ProviderRegistry([slowProvider], 'catalog'),
        worker: true,
        delivery: { telegram: null, webhook: null, telegramFiles: null },
      },
    );
    deadlineModel = await createTestModel(database.db, { provider: slowProvider.name });
  });
  afterAll(async () => {
    await deadlineApp.close();
  });

  async function submitNever(prompt: string) {
    const telegramId = freshTelegramId();
    await userWithCredits(deadlineApp, telegramId, 10);
    const accepted = await submit(deadlineApp, {
      telegram_id: telegramId,
      model: deadlineModel.key,
      prompt,
    });
    return { telegramId, id: accepted.json().id as string };
  }

  it('fails and refunds after one last query finds nothing', async () => {
    const { telegramId, id } = await submitNever('never done');
    const done = await waitFor(() => generation(deadlineApp, id), settled);
    expect(done).toMatchObject({
      status: 'failed',
      error: { code: 'deadline_exceeded' },
      payment: { refunded: true },
    });
    expect(Date.parse(done.completed_at)).toBeGreaterThanOrEqual(Date.parse(done.deadline_at));
    expect(await balanceOf(deadlineApp, telegramId)).toBe(10);
  });

  it('keeps the image (and the charge) when the last query finds it done', async () => {
    const { telegramId, id } = await submitNever('never unless finished');
    await waitFor(
      () =>
        selectRows<{ provider_job_id: string | null }>(
          database.db,
          sql`SELECT provider_job_id FROM generation_jobs WHERE request_id = ${id} AND kind = 'generate'`,
        ),
      (rows) => rows[0]?.provider_job_id != null,
    );
    // Made while nobody was looking: only the query at the deadline can see it.
    slowProvider.finish(id);
    const done = await waitFor(() => generation(deadlineApp, id), settled);
    expect(done).toMatchObject({ status: 'succeeded', payment: { refunded: false } });
    expect(await balanceOf(deadlineApp, telegramId)).toBe(0);
    expect(await entriesFor(database.db, id)).toEqual([{ kind: 'generation_charge', amount: -10 }]);
  });
});

describe('a worker that dies mid-job', () => {
  it('is taken over when its lease runs out, resuming from the provider job without submitting again', async () => {
    const hanging = new ScriptedProvider();
    const config = testConfig({ TRIAL_GENERATIONS: '0', JOB_LEASE_SECONDS: '2' });
    const ctx = { db: database.db, config, providers: new ProviderRegistry([hanging], 'catalog') };
    const store = new LocalResultStore(config.dataDir);
    const crashing = new JobWorker({
      ctx,
      database,
      store,
      delivery: channels(),
      logger: silentLogger,
    });
    const takingOver = new JobWorker({
      ctx,
      database,
      store,
      delivery: channels(),
      logger: silentLogger,
    });
    const hangingModel = await createTestModel(database.db, { provider: hanging.name });
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 10);
    hanging.hangStatus = true;
    await crashing.start();
    try {
      const accepted = await submit(await buildSubmitter(hanging), {
        telegram_id: telegramId,
        model: hangingModel.key,
        prompt: 'instant survive a crash',
      });
      const id: string = accepted.json().id;
      await waitFor(
        () =>
          selectRows<{ provider_job_id: string | null; locked_by: string | null }>(
            database.db,
            sql`SELECT provider_job_id, locked_by FROM generation_jobs WHERE request_id = ${id} AND kind = 'generate'`,
          ),
        (rows) => rows[0]?.provider_job_id != null,
      );
      crashing.halt();
      hanging.hangStatus = false;
      await takingOver.start();
      const done = await waitFor(() => generation(app, id), settled, 20_000);
      expect(done.status).toBe('succeeded');
      expect(hanging.submissionsFor(id)).toBe(1);
      expect(await entriesFor(database.db, id)).toEqual([
        { kind: 'generation_charge', amount: -10 },
      ]);
      const [job] = await selectRows<{ locked_by: string | null; status: string }>(
        database.db,
        sql`SELECT locked_by, status FROM generation_jobs WHERE request_id = ${id} AND kind = 'generate'`,
      );
      expect(job).toEqual({ locked_by: null, status: 'succeeded' });
      await waitFor(
        async () => callsTo(telegramId),
        (calls) => calls.length === 1,
      );
    } finally {
      await takingOver.stop(1000);
      await submitters.pop()?.close();
    }
  });
});

const submitters: FastifyInstance[] = [];
/** An app without a worker that accepts generations for `provider`. */
async function buildSubmitter(served: ScriptedProvider): Promise<FastifyInstance> {
  const submitter = await buildTestApp({ TRIAL_GENERATIONS: '0' }, undefined, {
    providers: new ProviderRegistry([served], 'catalog'),
  });
  submitters.push(submitter);
  return submitter;
}

describe('per-provider concurrency cap', () => {
  it('never has more calls in flight to a provider than its cap allows', async () => {
    const capped = new ScriptedProvider();
    capped.statusDelayMs = 150;
    const cappedApp = await buildTestApp(
      {
        TRIAL_GENERATIONS: '0',
        MAX_PARALLEL_GENERATIONS_PER_USER: '10',
        PROVIDER_CONCURRENCY: `${capped.name}=2,*=16`,
      },
      undefined,
      {
        providers: new ProviderRegistry([capped], 'catalog'),
        worker: true,
        delivery: { telegram: null, webhook: null, telegramFiles: null },
      },
    );
    try {
      const cappedModel = await createTestModel(database.db, { provider: capped.name });
      const telegramId = freshTelegramId();
      await userWithCredits(cappedApp, telegramId, 100);
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) {
        const accepted = await submit(cappedApp, {
          telegram_id: telegramId,
          model: cappedModel.key,
          prompt: `instant capped ${i}`,
        });
        ids.push(accepted.json().id);
      }
      for (const id of ids) await waitFor(() => generation(cappedApp, id), settled);
      expect(capped.submissions).toHaveLength(6);
      expect(capped.maxInFlight).toBe(2);
    } finally {
      await cappedApp.close();
    }
  });
});
