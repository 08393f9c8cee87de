import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { principalLabel } from '../../deps/auth.ts';
import { TelegramIdParams } from '../../schemas/common.ts';
import { LedgerEntry } from '../../schemas/ledger.ts';
import { problemResponses } from '../../schemas/problem.ts';
import { postEntry } from '../../services/ledger.ts';
import { getUserProfile } from '../../services/users.ts';
import { UserProfile } from './users.ts';

/** Operator routes: ADMIN_TOKENS only. */
export const adminRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/admin/users/:telegram_id',
    {
      config: { access: 'admin' },
      schema: {
        summary: 'A user as the operator sees it: profile, balance and trial',
        tags: ['admin'],
        params: TelegramIdParams,
        response: { 200: UserProfile, ...problemResponses(401, 403, 404, 422, 429) },
      },
    },
    async (request) => getUserProfile(app.deps.services, request.params.telegram_id),
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
