import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { principalLabel } from '../../deps/auth.ts';
import { TelegramId, TelegramIdParams } from '../../schemas/common.ts';
import { LedgerEntry } from '../../schemas/ledger.ts';
import { problemResponses } from '../../schemas/problem.ts';
import { banUser, unbanUser } from '../../services/bans.ts';
import { postEntry } from '../../services/ledger.ts';
import { getAdminUserView } from '../../services/users.ts';
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

const idempotencyKeyHeader = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({ description: 'Stripe-style; replays the first response' }),
  ),
});

/** Operator routes: ADMIN_TOKENS only. */
export const adminRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/admin/users/:telegram_id',
    {
      config: { access: 'admin' },
      schema: {
        summary:
          'A user as the operator sees it: profile, balance, trial, ban, language and referrals',
        tags: ['admin'],
        params: TelegramIdParams,
        response: { 200: AdminUser, ...problemResponses(401, 403, 404, 422, 429) },
      },
    },
    async (request) => getAdminUserView(app.deps.services, request.params.telegram_id),
  );

  app.post(
    '/admin/users/:telegram_id/ban',
    {
      config: { access: 'admin', idempotent: true },
      schema: {
        summary: 'Ban a user: no quotes or generations until unbanned; payments still work',
        description:
          "A banned user's POST /generations/quote and POST /generations answer 403 user_banned " +
          'with the reason. Banning a banned user keeps when the ban began and takes the new reason.',
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
    async (request) => banUser(app.deps.services, request.params.telegram_id, request.body.reason),
  );

  app.post(
    '/admin/users/:telegram_id/unban',
    {
      config: { access: 'admin', idempotent: true },
      schema: {
        summary: "Lift a user's ban",
        description: 'Nothing happens to a user not banned.',
        tags: ['admin'],
        params: TelegramIdParams,
        headers: idempotencyKeyHeader,
        body: Type.Object(
          {},
          { additionalProperties: false, description: 'Nothing: {} or no body at all' },
        ),
        response: { 200: AdminUser, ...problemResponses(401, 403, 404, 409, 422, 429) },
      },
      // A POST without a body is this route's usual call: it is read as {}.
      preValidation: (request, _reply, done) => {
        request.body ??= {};
        done();
      },
    },
    async (request) => unbanUser(app.deps.services, request.params.telegram_id),
  );

  app.post(
    '/admin/users/:telegram_id/credits',
    {
      config: { access: 'admin', idempotent: true },
      schema: {
        summary:
          "Adjust a user's credits (positive gives, negative takes), recorded with who did it",
        description:
          'Send an Idempotency-Key: a retry with the same key and body returns the first result. ' +
          'A negative amount beyond the balance is refused with 402 insufficient_credits.',
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
      const actor = request.principal ? principalLabel(request.principal) : 'admin';
      const effectId = request.idempotencyClaim?.effectId;
      const { entry } = await postEntry(
        app.deps.services.db,
        { telegramId: request.params.telegram_id },
        {
          kind: 'admin_adjustment',
          amount: request.body.amount,
          reason: request.body.reason,
          actor,
          // The effect itself is unique per claimed key, beyond the response replay: a retry after
          // a crash between the entry and the key's answer finds the entry instead of a second one.
          ...(effectId === undefined ? {} : { idempotencyKey: `admin-credit:${effectId}` }),
        },
      );
      return reply.code(201).send({ telegram_id: request.params.telegram_id, entry });
    },
  );
};
