import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { problemResponses } from '../../schemas/problem.ts';
import { listAudit } from '../../services/audit.ts';

const AuditEntry = Type.Object({
  id: Type.Integer(),
  created_at: Type.String({ format: 'date-time' }),
  actor: Type.String({
    description: 'admin:<token id> (ADMIN_TOKENS), operator:<telegram id>, or system',
  }),
  role: Type.Union([Type.Literal('admin'), Type.Literal('support'), Type.Literal('system')]),
  action: Type.String({ description: '<subject>.<verb>, e.g. user.ban, user.credits' }),
  subject_type: Type.Union([Type.String(), Type.Null()]),
  subject_id: Type.Union([Type.String(), Type.Null()]),
  before: Type.Unknown({ description: "The subject's state before the change (JSON), or null" }),
  after: Type.Unknown({ description: "The subject's state after the change (JSON), or null" }),
  reason: Type.Union([Type.String(), Type.Null()]),
  request_id: Type.Union([Type.String(), Type.Null()], {
    description: 'The X-Request-ID of the request that made the change',
  }),
});

const Text = (description: string) => Type.Optional(Type.String({ maxLength: 200, description }));

/** The audit log, for administrators. */
export const adminAuditRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/admin/audit',
    {
      config: { access: 'admin' },
      schema: {
        operationId: 'adminListAudit',
        summary: 'What operators did: the audit log, newest first, filtered',
        description:
          'Administrators only. Every admin write is recorded in the transaction of the change; ' +
          'the database refuses to change or remove an entry.',
        tags: ['admin'],
        querystring: Type.Object(
          {
            actor: Text('Exactly, e.g. operator:123456'),
            action: Text('Exactly, e.g. user.credits'),
            subject_type: Text('Exactly, e.g. user'),
            subject_id: Text('Exactly, e.g. a telegram id'),
            from: Type.Optional(
              Type.String({ format: 'date-time', description: 'From this instant (inclusive)' }),
            ),
            to: Type.Optional(
              Type.String({ format: 'date-time', description: 'Up to this instant (exclusive)' }),
            ),
            cursor: Type.Optional(
              Type.String({ description: 'The next_cursor of the previous page' }),
            ),
            limit: Type.Integer({ minimum: 1, maximum: 200, default: 50 }),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            items: Type.Array(AuditEntry),
            next_cursor: Type.Union([Type.Null(), Type.String()]),
          }),
          ...problemResponses(400, 401, 403, 422, 429),
        },
      },
    },
    async (request) => {
      const { subject_type, subject_id, ...rest } = request.query;
      return listAudit(app.deps.services.db, {
        ...rest,
        ...(subject_type === undefined ? {} : { subjectType: subject_type }),
        ...(subject_id === undefined ? {} : { subjectId: subject_id }),
      });
    },
  );
};
