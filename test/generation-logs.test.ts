import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { TelegramDelivery } from '../src/delivery/telegram.ts';
import { TelegramFiles } from '../src/delivery/telegram-files.ts';
import { LocalProvider } from '../src/providers/local.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { type FakeTelegram, startFakeTelegram } from './fakes/telegram-api.ts';
import { TELEGRAM_BOT_TOKEN, testConfig } from './helpers/app.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';
import { capturedLogger, type LogLine } from './helpers/logs.ts';
import {
  createTestModel,
  submit,
  type TestModel,
  userWithCredits,
  waitFor,
} from './helpers/pipeline.ts';

// Every line the app writes, at LOG_LEVEL=info, as JSON.
const { logger, lines } = capturedLogger();

// A provider name of this file's own: no other test's worker takes its jobs.
const local = new LocalProvider({ name: `local-logs-${freshTelegramId()}` });
let telegram: FakeTelegram;
let app: FastifyInstance;
let model: TestModel;

beforeAll(async () => {
  const database = await sharedDatabase();
  telegram = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
  app = await buildApp(testConfig({ LOG_LEVEL: 'info', TRIAL_GENERATIONS: '0' }), {
    database,
    logger,
    providers: new ProviderRegistry([local], 'catalog'),
    delivery: {
      telegram: new TelegramDelivery({ botToken: TELEGRAM_BOT_TOKEN, apiRoot: telegram.apiRoot }),
      webhook: null,
      telegramFiles: new TelegramFiles(TELEGRAM_BOT_TOKEN, telegram.apiRoot),
    },
    worker: true,
  });
  model = await createTestModel(database.db, { provider: local.name });
});

afterAll(async () => {
  await app?.close();
  await telegram?.close();
});

/** Submits one generation under a request id of the test's own and waits for its delivery line. */
async function storyOf(prompt: string): Promise<{ requestId: string; story: LogLine[] }> {
  const telegramId = freshTelegramId();
  await userWithCredits(app, telegramId, 50);
  const requestId = `story-${telegramId}`;
  const accepted = await submit(
    app,
    { telegram_id: telegramId, model: model.key, prompt },
    { 'x-request-id': requestId },
  );
  expect(accepted.statusCode, accepted.body).toBe(202);
  const generationId: string = accepted.json().id;
  const story = await waitFor(
    async () => lines.filter((line) => line.generationId === generationId),
    (found) => found.some((line) => line.msg === 'generation delivered'),
  );
  return { requestId, story };
}

describe('the logs of a generation at info', () => {
  it('tell its story in four lines, each with the generation id and the request id: accepted, submitted, succeeded, delivered', async () => {
    const { requestId, story } = await storyOf('a lighthouse at dusk');
    expect(story.map((line) => line.msg)).toEqual([
      'generation accepted',
      'generation submitted to its provider',
      'generation succeeded',
      'generation delivered',
    ]);
    for (const line of story) {
      expect(line.level).toBe(30);
      expect(line.requestId).toBe(requestId);
    }
    expect(story[0]).toMatchObject({ model: model.key, payment: 'credits' });
    expect(story[1]).toMatchObject({ provider: local.name, model: `vendor/${model.key}` });
    expect(story[1]?.providerJobId).toEqual(expect.any(String));
    expect(story[2]).toMatchObject({ images: 1 });
    expect(story[3]).toMatchObject({ channel: 'telegram' });
  });

  it('say why a generation failed', async () => {
    const { requestId, story } = await storyOf('please fail now');
    expect(story.map((line) => line.msg)).toEqual([
      'generation accepted',
      'generation submitted to its provider',
      'generation failed',
      'generation delivered',
    ]);
    expect(story.every((line) => line.requestId === requestId)).toBe(true);
    expect(story[2]).toMatchObject({
      code: 'provider_failed',
      message: expect.stringContaining('fail'),
    });
  });
});
