import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { TelegramIdParams } from '../../schemas/common.ts';
import { problemResponses } from '../../schemas/problem.ts';
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
};
