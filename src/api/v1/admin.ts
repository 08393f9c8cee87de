import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { operatorOf } from '../../deps/auth.ts';
import { TelegramId, TelegramIdParams } from '../../schemas/common.ts';
import { LedgerEntry } from '../../schemas/ledger.ts';
import { problemResponses } from '../../schemas/problem.ts';
import {
  adjustCredits,
  getAdminUserDetail,
  listUsers,
  USER_COUNT_CAP,
  type UserFilter,
  userFilters,
} from '../../services/admin-users.ts';
import { banUser, unbanUser } from '../../services/bans.ts';
import { Generation } from './generations.ts';
import { UserProfile } from './users.ts';

/** A user as the operator sees it: the profile with its ban, who invited it, whom it invited. */
const AdminUser = Type.Intersect([
  UserProfile,
  Type.Object({
    referred_by: Type.Union([Type.Null(), TelegramId], {
      description: 'The telegram_id of the user whose referral code this user was created with',
    }),
    referrals: Type.Integer({ description: "Users created with this user's referral code" }),
    last_seen_at: Type.Union([Type.Null(), Type.String({ format: 'date-time' })], {
      description: 'The last POST /users/sync for the user',
    }),
  }),
]);

const Timestamp = Type.String({ format: 'date-time' });
const NullableText = Type.Union([Type.String(), Type.Null()]);

/** The user's page: the operator's view with who invited it and its latest activity. */
const AdminUserDetail = Type.Intersect([
  AdminUser,
  Type.Object({
    referrer: Type.Union(
      [
        Type.Null(),
        Type.Object({
          telegram_id: TelegramId,
          username: NullableText,
          first_name: NullableText,
          last_name: NullableText,
        }),
      ],
      { description: 'The user whose referral code this user was created with' },
    ),
    blocked_at: Type.Union([Type.Null(), Timestamp], {
      description: 'When a delivery to its private chat was refused: it blocked the bot',
    }),
    recent: Type.Object({
      generations: Type.Array(Generation, { description: 'The 10 newest generations' }),
      payments: Type.Array(
        Type.Object({
          id: Type.Integer(),
          telegram_payment_charge_id: Type.String(),
          package_id: Type.String(),
          stars: Type.Integer(),
          credits: Type.Integer(),
          status: Type.Union([Type.Literal('paid'), Type.Literal('refunded')]),
          refund_shortfall: Type.Union([Type.Integer(), Type.Null()]),
          created_at: Timestamp,
          refunded_at: Type.Union([Type.Null(), Timestamp]),
        }),
        { description: 'The 10 newest Telegram Stars payments' },
      ),
      ledger: Type.Array(LedgerEntry, { description: 'The 20 newest ledger entries' }),
    }),
  }),
]);

const filterList = userFilters.join('|');

const UserListQuery = Type.Object(
  {
    query: Type.Optional(
      Type.String({
        maxLength: 100,
        description:
          'A telegram id (exact), or the start of a username (with or without @), of a full name or of a last name; case-insensitive',
      }),
    ),
    filter: Type.Optional(
      Type.String({
        pattern: `^(${filterList})(,(${filterList}))*$`,
        description:
          'Comma list, all must hold: active_7d, active_30d (seen by the bot within 7 / 30 days), paying (a paid Stars payment), with_balance, banned, blocked (blocked the bot), new (created within 7 days)',
      }),
    ),
    cursor: Type.Optional(Type.String({ description: 'The next_cursor of the previous page' })),
    limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
  },
  { additionalProperties: false },
);

const UserListItem = Type.Object({
  telegram_id: TelegramId,
  username: NullableText,
  first_name: NullableText,
  last_name: NullableText,
  language: Type.Union([Type.String(), Type.Null()], {
    description: 'The language the user chose for the bot',
  }),
  language_code: Type.Union([Type.String(), Type.Null()], {
    description: "Telegram's language of the user's client",
  }),
  balance: Type.Integer(),
  created_at: Timestamp,
  last_seen_at: Type.Union([Type.Null(), Timestamp]),
  banned: Type.Boolean(),
  blocked: Type.Boolean({ description: 'A delivery to its private chat was refused (403)' }),
});

const idempotencyKeyHeader = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({ description: 'Stripe-style; replays the first response' }),
  ),
});

/**
 * Operators' user routes: reading and crediting users is for support operators too (credits up to
 * SUPPORT_CREDIT_LIMIT); banning is for administrators. Every write is in the audit log.
 */
export const adminRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/admin/users',
    {
      config: { access: 'support' },
      schema: {
        operationId: 'adminListUsers',
        summary: 'Find users: by telegram id, username or name, and by filters; newest first',
        description: `Support and admin operators. \`counts.total\` is how many users match the query and filters, counted up to ${USER_COUNT_CAP}: \`counts.capped\` true means more than \`total\` match.`,
        tags: ['admin'],
        querystring: UserListQuery,
        response: {
          200: Type.Object({
            items: Type.Array(UserListItem),
            next_cursor: Type.Union([Type.Null(), Type.String()]),
            counts: Type.Object({
              total: Type.Integer({
                description: `Users matching, counted up to ${USER_COUNT_CAP}`,
              }),
              capped: Type.Boolean({
                description: 'More than `total` match: the count stopped at its cap',
              }),
            }),
          }),
          ...problemResponses(400, 401, 403, 422, 429),
        },
      },
    },
    async (request) => {
      const { query, filter, cursor, limit } = request.query;
      return listUsers(app.deps.services, {
        ...(query === undefined ? {} : { query }),
        filters: filter === undefined ? [] : (filter.split(',') as UserFilter[]),
        ...(cursor === undefined ? {} : { cursor }),
        limit,
      });
    },
  );

  app.get(
    '/admin/users/:telegram_id',
    {
      config: { access: 'support' },
      schema: {
        operationId: 'adminGetUser',
        summary:
          "A user's page: profile, balance, trial, ban, language, referrer and referrals, latest generations, payments and ledger",
        description: 'Support and admin operators.',
        tags: ['admin'],
        params: TelegramIdParams,
        response: { 200: AdminUserDetail, ...problemResponses(401, 403, 404, 422, 429) },
      },
    },
    async (request) => getAdminUserDetail(app.deps.services, request.params.telegram_id),
  );

  app.post(
    '/admin/users/:telegram_id/ban',
    {
      config: { access: 'admin', idempotent: true },
      schema: {
        operationId: 'adminBanUser',
        summary: 'Ban a user: no quotes or generations until unbanned; payments still work',
        description:
          "Administrators only. A banned user's POST /generations/quote and POST /generations answer " +
          '403 user_banned with the reason. Banning a banned user keeps when the ban began and takes ' +
          'the new reason. Recorded in the audit log (user.ban).',
        tags: ['admin'],
        params: TelegramIdParams,
        headers: idempotencyKeyHeader,
        body: Type.Object(
          {
            reason: Type.String({
              minLength: 1,
              maxLength: 500,
              description: 'Why; shown to the user by the bot',
            }),
          },
          { additionalProperties: false },
        ),
        response: { 200: AdminUser, ...problemResponses(401, 403, 404, 409, 422, 429) },
      },
    },
    async (request) =>
      banUser(
        app.deps.services,
        request.params.telegram_id,
        request.body.reason,
        operatorOf(request),
      ),
  );

  app.post(
    '/admin/users/:telegram_id/unban',
    {
      config: { access: 'admin', idempotent: true },
      schema: {
        operationId: 'adminUnbanUser',
        summary: "Lift a user's ban",
        description:
          'Administrators only. Nothing changes for a user not banned. Recorded in the audit log (user.unban).',
        tags: ['admin'],
        params: TelegramIdParams,
        headers: idempotencyKeyHeader,
        body: Type.Object(
          {
            reason: Type.Optional(
              Type.String({ minLength: 1, maxLength: 500, description: 'Why, for the audit log' }),
            ),
          },
          { additionalProperties: false, description: '{}, a reason, or no body at all' },
        ),
        response: { 200: AdminUser, ...problemResponses(401, 403, 404, 409, 422, 429) },
      },
      // A POST without a body is this route's usual call: it is read as {}.
      preValidation: (request, _reply, done) => {
        request.body ??= {};
        done();
      },
    },
    async (request) =>
      unbanUser(
        app.deps.services,
        request.params.telegram_id,
        request.body.reason ?? null,
        operatorOf(request),
      ),
  );

  app.post(
    '/admin/users/:telegram_id/credits',
    {
      config: { access: 'support', idempotent: true },
      schema: {
        operationId: 'adminAdjustCredits',
        summary:
          "Adjust a user's credits (positive gives, negative takes), recorded with who did it",
        description:
          'Support operators up to SUPPORT_CREDIT_LIMIT credits either way (403 beyond), admins any ' +
          'amount. The ledger entry and its audit entry (user.credits, the balance before and ' +
          'after) commit together. Send an Idempotency-Key: a retry with the same key and body ' +
          'returns the first result. A negative amount beyond the balance is refused with 402 ' +
          'insufficient_credits.',
        tags: ['admin'],
        params: TelegramIdParams,
        headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String()) }),
        body: Type.Object(
          {
            amount: Type.Integer({
              minimum: -1_000_000_000,
              maximum: 1_000_000_000,
              not: { const: 0 },
            }),
            reason: Type.String({ minLength: 1, maxLength: 500 }),
          },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({
            telegram_id: TelegramIdParams.properties.telegram_id,
            entry: LedgerEntry,
          }),
          ...problemResponses(401, 402, 403, 404, 409, 422, 429),
        },
      },
    },
    async (request, reply) => {
      const effectId = request.idempotencyClaim?.effectId;
      const entry = await adjustCredits(
        app.deps.services,
        request.params.telegram_id,
        {
          amount: request.body.amount,
          reason: request.body.reason,
          // The effect itself is unique per claimed key, beyond the response replay: a retry after
          // a crash between the entry and the key's answer finds the entry instead of a second one.
          ...(effectId === undefined ? {} : { idempotencyKey: `admin-credit:${effectId}` }),
        },
        operatorOf(request),
      );
      return reply.code(201).send({ telegram_id: request.params.telegram_id, entry });
    },
  );
};
