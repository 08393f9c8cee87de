import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { operatorOf } from '../../deps/auth.ts';
import { TelegramId } from '../../schemas/common.ts';
import { problemResponses } from '../../schemas/problem.ts';
import {
  listAllGenerations,
  queueState,
  refundSucceededGeneration,
} from '../../services/admin-generations.ts';
import { Generation } from './generations.ts';

/** A generation as the operator sees it: the user's view, its job and how long it took. */
const AdminGeneration = Type.Intersect([
  Generation,
  Type.Object({
    job: Type.Union([
      Type.Null(),
      Type.Object({
        provider: Type.Union([Type.Null(), Type.String()], {
          description: 'The provider that has the job (null until submitted)',
        }),
        provider_job_id: Type.Union([Type.Null(), Type.String()]),
        attempts: Type.Integer({ minimum: 0 }),
      }),
    ]),
    duration_seconds: Type.Union([Type.Null(), Type.Number()], {
      description: 'From accepted to finished; null while not finished',
    }),
  }),
]);

const Status = Type.Union([
  Type.Literal('queued'),
  Type.Literal('running'),
  Type.Literal('succeeded'),
  Type.Literal('failed'),
  Type.Literal('cancelled'),
]);

const Reason = Type.Object(
  {
    reason: Type.String({
      minLength: 1,
      maxLength: 500,
      description: 'Why; kept in the ledger entry and the audit log',
    }),
  },
  { additionalProperties: false },
);

/** Operators (support and admin): every user's generations, the queue, giving a generation back. */
export const adminGenerationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/admin/generations',
    {
      config: { access: 'support' },
      schema: {
        operationId: 'adminListGenerations',
        summary: "Every user's generations, newest first (cursor pagination), filtered",
        description:
          'Filters combine: status, model (its key), user (telegram_id), from/to (created_at, ' +
          'from inclusive, to exclusive). Pass next_cursor back as cursor for the next page.',
        tags: ['admin'],
        querystring: Type.Object({
          status: Type.Optional(Status),
          model: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
          user: Type.Optional(TelegramId),
          from: Type.Optional(Type.String({ format: 'date-time' })),
          to: Type.Optional(Type.String({ format: 'date-time' })),
          limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
          cursor: Type.Optional(
            Type.String({ maxLength: 128, description: 'next_cursor of the previous page' }),
          ),
        }),
        response: {
          200: Type.Object({
            generations: Type.Array(AdminGeneration),
            next_cursor: Type.Union([Type.Null(), Type.String()]),
          }),
          ...problemResponses(400, 401, 403, 422, 429),
        },
      },
    },
    async (request) => {
      const { limit, cursor, ...filter } = request.query;
      return listAllGenerations(
        app.deps.services,
        Object.fromEntries(Object.entries(filter).filter(([, value]) => value !== undefined)),
        { limit, ...(cursor === undefined ? {} : { cursor }) },
      );
    },
  );

  app.get(
    '/admin/queue',
    {
      config: { access: 'support' },
      schema: {
        operationId: 'adminGetQueue',
        summary: 'The job queue now: waiting and running jobs, the oldest wait, recent failures',
        tags: ['admin'],
        response: {
          200: Type.Object({
            jobs: Type.Array(
              Type.Object({
                kind: Type.String({ description: 'generate or deliver' }),
                provider: Type.Union([Type.Null(), Type.String()], {
                  description: "The job's provider (a generation's model's until submitted)",
                }),
                waiting: Type.Integer({ minimum: 0 }),
                running: Type.Integer({ minimum: 0 }),
              }),
            ),
            oldest_waiting_seconds: Type.Union([Type.Null(), Type.Number()], {
              description: 'Age of the oldest job due and not yet claimed; null: none',
            }),
            failed_last_hour: Type.Integer({ minimum: 0 }),
            active_generations: Type.Integer({
              minimum: 0,
              description: 'Generations queued or running now',
            }),
          }),
          ...problemResponses(401, 403, 429),
        },
      },
    },
    async () => queueState(app.deps.services),
  );

  app.post(
    '/admin/generations/:id/refund',
    {
      config: { access: 'support', idempotent: true },
      schema: {
        operationId: 'adminRefundGeneration',
        summary:
          'Give back what a succeeded generation cost (credits or the free generation), once',
        description:
          'Only a succeeded generation: a failed one was given back when it failed (409 ' +
          'generation_already_refunded), a queued or running one is 409 generation_not_finished. ' +
          'A second refund is 409 generation_already_refunded; send an Idempotency-Key to replay ' +
          'the first answer instead.',
        tags: ['admin'],
        params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
        headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String()) }),
        body: Reason,
        response: {
          200: Type.Object({
            generation: AdminGeneration,
            refund: Type.Object({
              method: Type.Union([Type.Literal('credits'), Type.Literal('trial')]),
              credits: Type.Integer({ minimum: 0, description: 'Credits given back (0: trial)' }),
              entry_id: Type.Union([Type.Null(), Type.Integer()], {
                description: 'The ledger entry of the refund (null: a free generation)',
              }),
            }),
          }),
          ...problemResponses(401, 403, 404, 409, 422, 429),
        },
      },
    },
    async (request) => {
      const operator = operatorOf(request);
      const { id } = request.params;
      const { reason } = request.body;
      return refundSucceededGeneration(app.deps.services, id, operator, reason);
    },
  );
};
