import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/client.ts';
import { selectRows } from '../src/db/rows.ts';
import { TelegramDelivery } from '../src/delivery/telegram.ts';
import { TelegramFiles } from '../src/delivery/telegram-files.ts';
import { ProviderRegistry } from '../src/providers/registry.ts';
import { ScriptedProvider } from './fakes/scripted-provider.ts';
import { type FakeTelegram, startFakeTelegram } from './fakes/telegram-api.ts';
import { adminAuth, buildTestApp, TELEGRAM_BOT_TOKEN } from './helpers/app.ts';
import { freshTelegramId, sharedDatabase } from './helpers/database.ts';
import {
  createTestModel,
  submit,
  type TestModel,
  userWithCredits,
  waitFor,
} from './helpers/pipeline.ts';

// users.blocked_at (the operators' `blocked` filter): a delivery to the user's private chat that
// Telegram refuses with 403 marks the user; one that gets through again clears the mark; a group
// chat's 403 says nothing about the user.

let database: DatabaseHandle;
let telegram: FakeTelegram;
let app: FastifyInstance;
let model: TestModel;
const scripted = new ScriptedProvider();

beforeAll(async () => {
  database = await sharedDatabase();
  telegram = await startFakeTelegram({ token: TELEGRAM_BOT_TOKEN });
  app = await buildTestApp({ MAX_PARALLEL_GENERATIONS_PER_USER: '20' }, undefined, {
    providers: new ProviderRegistry([scripted], 'catalog'),
    delivery: {
      telegram: new TelegramDelivery({ botToken: TELEGRAM_BOT_TOKEN, apiRoot: telegram.apiRoot }),
      webhook: null,
      telegramFiles: new TelegramFiles(TELEGRAM_BOT_TOKEN, telegram.apiRoot),
    },
    worker: true,
  });
  model = await createTestModel(database.db, {
    provider: scripted.name,
    prices: [{ conditions: {}, credits: 1 }],
  });
});

afterAll(async () => {
  await app?.close();
  await telegram?.close();
});

const blocked = { error_code: 403, description: 'Forbidden: bot was blocked by the user' };

/**
 * Every sendPhoto to this fake is refused while `work` runs: this app's worker may also take
 * deliveries other test files left in the shared database, which would use up a single failure.
 */
async function refusingPhotos<T>(
  failure: { error_code: number; description: string },
  work: () => Promise<T>,
): Promise<T> {
  telegram.failNext('sendPhoto', failure, 1_000_000);
  try {
    return await work();
  } finally {
    telegram.failNext('sendPhoto', failure, 0);
  }
}

/** Submits a generation that succeeds at once and waits until its delivery job has ended. */
async function generateAndDeliver(telegramId: number, chatId?: number): Promise<string> {
  const accepted = await submit(app, {
    telegram_id: telegramId,
    model: model.key,
    prompt: 'instant a lighthouse',
    payment: 'credits',
    ...(chatId === undefined ? {} : { telegram: { chat_id: chatId, language: 'en' } }),
  });
  expect(accepted.statusCode, accepted.body).toBe(202);
  const id: string = accepted.json().id;
  const [job] = await waitFor(
    () =>
      selectRows<{ status: string }>(
        database.db,
        sql`SELECT status FROM generation_jobs WHERE request_id = ${id} AND kind = 'deliver'`,
      ),
    (rows) => rows[0]?.status === 'succeeded' || rows[0]?.status === 'failed',
  );
  return job?.status ?? '';
}

async function blockedAt(telegramId: number): Promise<string | null> {
  const [row] = await selectRows<{ blocked_at: string | null }>(
    database.db,
    sql`SELECT blocked_at::text FROM users WHERE telegram_id = ${telegramId}`,
  );
  return row?.blocked_at ?? null;
}

const listedAsBlocked = async (telegramId: number) =>
  (
    await app.inject({
      url: `/api/v1/admin/users?query=${telegramId}&filter=blocked`,
      headers: adminAuth,
    })
  ).json().counts.total === 1;

describe('users.blocked_at from deliveries', () => {
  it('a 403 on the private chat marks the user blocked; a delivery that gets through clears it', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 10);
    expect(await refusingPhotos(blocked, () => generateAndDeliver(telegramId))).toBe('failed');
    expect(await blockedAt(telegramId)).not.toBeNull();
    expect(await listedAsBlocked(telegramId)).toBe(true);
    expect(await generateAndDeliver(telegramId)).toBe('succeeded');
    expect(await blockedAt(telegramId)).toBeNull();
    expect(await listedAsBlocked(telegramId)).toBe(false);
  });

  it('a 403 in a group chat leaves the user as it is', async () => {
    const telegramId = freshTelegramId();
    await userWithCredits(app, telegramId, 10);
    const kicked = {
      error_code: 403,
      description: 'Forbidden: bot was kicked from the group chat',
    };
    const groupChat = -1_000_000_000_000 - telegramId;
    expect(await refusingPhotos(kicked, () => generateAndDeliver(telegramId, groupChat))).toBe(
      'failed',
    );
    expect(await blockedAt(telegramId)).toBeNull();
  });
});
