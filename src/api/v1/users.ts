import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { TelegramId, TelegramIdParams, TrialStatus } from '../../schemas/common.ts';
import { LedgerEntry } from '../../schemas/ledger.ts';
import { problemResponses } from '../../schemas/problem.ts';
import { listEntries } from '../../services/ledger.ts';
import { getBalance, getTrialStatus, syncUser } from '../../services/users.ts';

const nullableText = (maxLength: number) =>
  Type.Optional(Type.Union([Type.Null(), Type.String({ maxLength })]));

/** The rest of Telegram's User object: accepted, so the bot can forward it whole, and not kept. */
const telegramUserFlag = Type.Optional(Type.Union([Type.Null(), Type.Boolean()]));

const SyncUserBody = Type.Object(
  {
    telegram_id: TelegramId,
    username: nullableText(64),
    first_name: nullableText(256),
    last_name: nullableText(256),
    language_code: nullableText(35),
    is_premium: Type.Optional(Type.Union([Type.Null(), Type.Boolean()])),
    is_bot: telegramUserFlag,
    added_to_attachment_menu: telegramUserFlag,
    can_join_groups: telegramUserFlag,
    can_read_all_group_messages: telegramUserFlag,
    supports_inline_queries: telegramUserFlag,
    can_connect_to_business: telegramUserFlag,
    has_main_web_app: telegramUserFlag,
  },
  {
    description:
      "Telegram's User object as the bot received it (telegram_id is its id). Other fields are refused.",
    additionalProperties: false,
  },
);

export const UserProfile = Type.Object({
  telegram_id: TelegramId,
  username: Type.Union([Type.String(), Type.Null()]),
  first_name: Type.Union([Type.String(), Type.Null()]),
  last_name: Type.Union([Type.String(), Type.Null()]),
  language_code: Type.Union([Type.String(), Type.Null()]),
  is_premium: Type.Boolean(),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
  balance: Type.Integer({ description: 'Credits, derived from the ledger' }),
  trial: TrialStatus,
});

export const userRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/users/sync',
    {
      config: { access: 'user' },
      schema: {
        summary: 'Create the Telegram user (201) or refresh its profile (200)',
        description:
          'Idempotent and safe under concurrent calls. Fields left out keep their stored value; null clears one.',
        tags: ['users'],
        body: SyncUserBody,
        response: { 200: UserProfile, 201: UserProfile, ...problemResponses(401, 403, 422, 429) },
      },
    },
    async (request, reply) => {
      const { created, user } = await syncUser(app.deps.services, request.body);
      return reply.code(created ? 201 : 200).send(user);
    },
  );

  app.get(
    '/users/:telegram_id/balance',
    {
      config: { access: 'user' },
      schema: {
        summary: "The user's balance in credits, derived from the ledger",
        tags: ['users'],
        params: TelegramIdParams,
        response: {
          200: Type.Object({ telegram_id: TelegramId, balance: Type.Integer() }),
          ...problemResponses(401, 403, 404, 422, 429),
        },
      },
    },
    async (request) => getBalance(app.deps.services, request.params.telegram_id),
  );

  app.get(
    '/users/:telegram_id/trial',
    {
      config: { access: 'user' },
      schema: {
        summary: "The user's free trial: whether one is available, used, limit, remaining",
        tags: ['users'],
        params: TelegramIdParams,
        response: {
          200: Type.Intersect([Type.Object({ telegram_id: TelegramId }), TrialStatus]),
          ...problemResponses(401, 403, 404, 422, 429),
        },
      },
    },
    async (request) => getTrialStatus(app.deps.services, request.params.telegram_id),
  );

  app.get(
    '/users/:telegram_id/ledger',
    {
      config: { access: 'user' },
      schema: {
        summary: "The user's ledger entries, newest first (cursor pagination)",
        tags: ['users'],
        params: TelegramIdParams,
        querystring: Type.Object({
          limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
          cursor: Type.Optional(
            Type.String({ maxLength: 64, description: 'next_cursor of the previous page' }),
          ),
        }),
        response: {
          200: Type.Object({
            telegram_id: TelegramId,
            entries: Type.Array(LedgerEntry),
            next_cursor: Type.Union([Type.String(), Type.Null()]),
          }),
          ...problemResponses(401, 403, 404, 422, 429),
        },
      },
    },
    async (request) => ({
      telegram_id: request.params.telegram_id,
      ...(await listEntries(app.deps.services.db, request.params.telegram_id, {
        limit: request.query.limit,
        ...(request.query.cursor === undefined ? {} : { cursor: request.query.cursor }),
      })),
    }),
  );
};
