import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { BotUsername } from '../../delivery/telegram-bot-username.ts';
import { TelegramId, TelegramIdParams, TrialStatus } from '../../schemas/common.ts';
import { exampleTelegramUser, exampleUserProfile } from '../../schemas/examples.ts';
import { LedgerEntry } from '../../schemas/ledger.ts';
import { problemResponses } from '../../schemas/problem.ts';
import { listEntries } from '../../services/ledger.ts';
import { getReferralSummary } from '../../services/referrals.ts';
import {
  getBalance,
  getTrialStatus,
  MAX_PREFERENCES_BYTES,
  syncUser,
  updateUserSettings,
} from '../../services/users.ts';

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
    referral_code: Type.Optional(
      Type.Union([Type.Null(), Type.String({ maxLength: 64 })], {
        description:
          "Another user's referral code (e.g. the payload of the bot's /start link): the new user " +
          'becomes its referral. Kept only when this call creates the user; an unknown code is ignored.',
      }),
    ),
  },
  {
    description:
      "Telegram's User object as the bot received it (telegram_id is its id). Other fields are refused.",
    additionalProperties: false,
    examples: [{ ...exampleTelegramUser, is_bot: false }],
  },
);

const Language = Type.Union([Type.Literal('uz'), Type.Literal('ru'), Type.Literal('en')]);

/** TypeBox's Record bounds only the values: the keys are bounded by propertyNames. */
const shortKeys = { propertyNames: { minLength: 1, maxLength: 64 } };

const Preferences = Type.Object(
  {
    model: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: 'The model key last chosen' }),
    ),
    parameters: Type.Optional(
      Type.Record(
        Type.String(),
        Type.Record(Type.String(), Type.String({ maxLength: 64 }), {
          ...shortKeys,
          maxProperties: 16,
          description: 'Parameter name → value',
        }),
        {
          ...shortKeys,
          maxProperties: 32,
          description: 'Per model key, the parameter values last chosen',
        },
      ),
    ),
  },
  {
    additionalProperties: false,
    description:
      `What the user chose to keep: the model and, per model, parameter values. Keys and values are ` +
      `strings of at most 64 characters; at most ${MAX_PREFERENCES_BYTES} bytes as JSON.`,
    examples: [exampleUserProfile.preferences],
  },
);

export const UserProfile = Type.Object(
  {
    telegram_id: TelegramId,
    username: Type.Union([Type.String(), Type.Null()]),
    first_name: Type.Union([Type.String(), Type.Null()]),
    last_name: Type.Union([Type.String(), Type.Null()]),
    language_code: Type.Union([Type.String(), Type.Null()], {
      description: "Telegram's language of the user's client",
    }),
    is_premium: Type.Boolean(),
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
    balance: Type.Integer({ description: 'Credits, derived from the ledger' }),
    trial: TrialStatus,
    language: Type.Union([Language, Type.Null()], {
      description: 'The language the user chose for the bot; null until it chooses one',
    }),
    preferences: Preferences,
    referral_code: Type.String({
      description: "The user's own code to invite others with (8 characters, A-Z and 2-9)",
    }),
    banned: Type.Union(
      [
        Type.Null(),
        Type.Object({
          reason: Type.Union([Type.String(), Type.Null()]),
          since: Type.String({ format: 'date-time' }),
        }),
      ],
      { description: 'null, or the ban in force: no quotes or generations until it is lifted' },
    ),
  },
  { examples: [exampleUserProfile] },
);

export const userRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const config = app.deps.config;
  // The referral link names the bot: TELEGRAM_BOT_USERNAME, else what getMe says (kept an hour).
  const botUsername = new BotUsername({
    configured: config.operators.loginBotUsername,
    botToken: config.telegramBotToken,
    apiRoot: config.delivery.telegramApiRoot,
  });

  app.post(
    '/users/sync',
    {
      config: { access: 'user' },
      schema: {
        operationId: 'syncUser',
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

  app.patch(
    '/users/:telegram_id',
    {
      config: { access: 'user' },
      schema: {
        operationId: 'updateUser',
        summary: "Set the user's language and preferences",
        description:
          'Fields left out keep their value; language null clears the choice; preferences replaces ' +
          'the stored object whole. Answers the user as POST /users/sync does.',
        tags: ['users'],
        params: TelegramIdParams,
        body: Type.Object(
          {
            language: Type.Optional(Type.Union([Language, Type.Null()])),
            preferences: Type.Optional(Preferences),
          },
          { additionalProperties: false },
        ),
        response: { 200: UserProfile, ...problemResponses(401, 403, 404, 422, 429) },
      },
    },
    async (request) =>
      updateUserSettings(app.deps.services, request.params.telegram_id, request.body),
  );

  app.get(
    '/users/:telegram_id/referrals',
    {
      config: { access: 'user' },
      schema: {
        operationId: 'getUserReferrals',
        summary: "The user's referral code and what inviting others has earned it",
        description:
          'A user created with this code (POST /users/sync referral_code) is a referral: each of its ' +
          'confirmed Stars payments earns the user `percent` per cent of the credits (rounded down), and ' +
          'its first one `join_bonus` credits; a refund takes them back as far as the balance allows.',
        tags: ['users'],
        params: TelegramIdParams,
        response: {
          200: Type.Object({
            telegram_id: TelegramId,
            code: Type.String({ description: "The user's referral code" }),
            percent: Type.Integer({
              description: 'REFERRAL_PERCENT: per cent of paid credits earned',
            }),
            join_bonus: Type.Integer({
              description: "REFERRAL_JOIN_BONUS: credits earned on a referral's first top-up",
            }),
            joined: Type.Integer({ description: "Users created with the user's code" }),
            earned_credits: Type.Integer({
              description: 'Referral bonuses earned, less what refunds took back',
            }),
            link: Type.Union([Type.String(), Type.Null()], {
              description:
                'The invitation: https://t.me/<bot>?start=r_<code>. The bot is TELEGRAM_BOT_USERNAME, ' +
                "else the Bot API's getMe; null when neither is available (no bot token, Telegram away)",
              examples: ['https://t.me/image_studio_bot?start=r_K7Q2M9XA'],
            }),
          }),
          ...problemResponses(401, 403, 404, 422, 429),
        },
      },
    },
    async (request) =>
      getReferralSummary(app.deps.services, request.params.telegram_id, await botUsername.get()),
  );

  app.get(
    '/users/:telegram_id/balance',
    {
      config: { access: 'user' },
      schema: {
        operationId: 'getUserBalance',
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
        operationId: 'getUserTrial',
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
        operationId: 'listUserLedger',
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
