import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { operatorOf } from '../../deps/auth.ts';
import { problemResponses } from '../../schemas/problem.ts';
import { type UserFilter, userFilters } from '../../services/admin-users.ts';
import {
  changeBroadcast,
  countAudience,
  createBroadcast,
  getBroadcast,
  listBroadcasts,
  previewBroadcast,
  startBroadcast,
} from '../../services/broadcasts.ts';

const Timestamp = Type.String({ format: 'date-time' });
const filterList = userFilters.join('|');

const Reason = Type.Object(
  { reason: Type.String({ minLength: 1, maxLength: 500, description: 'Why; audited' }) },
  { additionalProperties: false },
);

const BroadcastId = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER });
const IdParams = Type.Object({ broadcast_id: BroadcastId });

const Entity = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 32 }),
    offset: Type.Integer({ minimum: 0 }),
    length: Type.Integer({ minimum: 1 }),
  },
  {
    additionalProperties: true,
    description: 'A Telegram MessageEntity (url, user, language, custom_emoji_id as it needs)',
  },
);

const Copy = Type.Object(
  {
    from_chat_id: Type.Integer({ description: 'The chat holding the message to copy' }),
    message_id: Type.Integer({ minimum: 1 }),
  },
  { additionalProperties: false, description: 'A message to send a copy of (copyMessage)' },
);

const Button = Type.Object(
  {
    text: Type.String({ minLength: 1, maxLength: 64 }),
    url: Type.String({
      pattern: '^(https?|tg)://',
      maxLength: 2048,
      examples: ['https://t.me/imagegen_bot?start=winter'],
    }),
  },
  { additionalProperties: false, description: 'One inline URL button under the message' },
);

const Audience = Type.Object(
  {
    filters: Type.Array(
      Type.Union([
        Type.Literal('active_7d'),
        Type.Literal('active_30d'),
        Type.Literal('paying'),
        Type.Literal('with_balance'),
        Type.Literal('banned'),
        Type.Literal('blocked'),
        Type.Literal('new'),
      ]),
      {
        maxItems: userFilters.length,
        description:
          'All must hold, as GET /admin/users filters: active_7d, active_30d, paying, with_balance, banned, blocked, new; [] = every user',
      },
    ),
    query: Type.Optional(
      Type.String({ maxLength: 100, description: 'As GET /admin/users `query`' }),
    ),
  },
  { additionalProperties: false },
);

const BroadcastStatus = Type.Union([
  Type.Literal('draft'),
  Type.Literal('running'),
  Type.Literal('paused'),
  Type.Literal('completed'),
  Type.Literal('cancelled'),
]);

const Broadcast = Type.Object({
  id: Type.Integer(),
  status: BroadcastStatus,
  text: Type.Union([Type.String(), Type.Null()]),
  entities: Type.Union([Type.Array(Type.Unknown()), Type.Null()]),
  copy: Type.Union([Copy, Type.Null()]),
  button: Type.Union([Button, Type.Null()]),
  audience: Audience,
  created_by: Type.String(),
  created_at: Timestamp,
  started_at: Type.Union([Timestamp, Type.Null()]),
  completed_at: Type.Union([Timestamp, Type.Null()]),
  progress: Type.Object(
    {
      total: Type.Integer({ description: 'Recipients snapshotted at the start' }),
      sent: Type.Integer(),
      failed: Type.Integer({
        description: 'Refused, or unknown (no answer, or the sender died during the call)',
      }),
      blocked: Type.Integer({ description: 'Telegram answered 403 (the user blocked the bot)' }),
      remaining: Type.Integer({ description: 'Not sent yet, or being sent' }),
    },
    { description: 'Each recipient is sent the message at most once, never twice' },
  ),
});

/** Broadcasts to users (src/services/broadcasts.ts; sending: src/jobs/broadcast.ts). */
export const adminBroadcastRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/admin/broadcasts',
    {
      config: { access: 'admin' },
      schema: {
        operationId: 'adminCreateBroadcast',
        summary: 'Create a broadcast (a draft)',
        description:
          'Either `text` (with optional Telegram `entities`; no parse_mode, so nothing in the ' +
          'text is read as markup) or `copy` of a message (copyMessage), an optional URL ' +
          '`button`, and the `audience` (the filters of GET /admin/users). Audited ' +
          '(`broadcast.create`).',
        tags: ['admin'],
        body: Type.Object(
          {
            text: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
            entities: Type.Optional(Type.Array(Entity, { maxItems: 100 })),
            copy: Type.Optional(Copy),
            button: Type.Optional(Button),
            audience: Audience,
          },
          { additionalProperties: false },
        ),
        response: { 201: Broadcast, ...problemResponses(401, 403, 422, 429) },
      },
    },
    async (request, reply) => {
      const view = await createBroadcast(app.deps.services, request.body, operatorOf(request));
      return reply.code(201).send(view);
    },
  );

  app.get(
    '/admin/broadcasts',
    {
      config: { access: 'support' },
      schema: {
        operationId: 'adminListBroadcasts',
        summary: 'Broadcasts, newest first, with their progress',
        description: '`before`: the smallest id of the previous page, for the next one.',
        tags: ['admin'],
        querystring: Type.Object(
          {
            before: Type.Optional(BroadcastId),
            limit: Type.Integer({ minimum: 1, maximum: 100, default: 50 }),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ items: Type.Array(Broadcast) }),
          ...problemResponses(401, 403, 422, 429),
        },
      },
    },
    async (request) => ({
      items: await listBroadcasts(app.deps.services, {
        limit: request.query.limit,
        ...(request.query.before === undefined ? {} : { before: request.query.before }),
      }),
    }),
  );

  app.get(
    '/admin/broadcasts/audience',
    {
      config: { access: 'support' },
      schema: {
        operationId: 'adminCountBroadcastAudience',
        summary: 'How many users an audience selects now, before a broadcast is created',
        description:
          'The `filter` and `query` of GET /admin/users, counted exactly (no cap): what a start ' +
          'of a broadcast with this audience would snapshot as recipients now.',
        tags: ['admin'],
        querystring: Type.Object(
          {
            filter: Type.Optional(
              Type.String({
                pattern: `^(${filterList})(,(${filterList}))*$`,
                description: 'Comma list, all must hold (as GET /admin/users `filter`)',
                examples: ['active_30d,paying'],
              }),
            ),
            query: Type.Optional(
              Type.String({ maxLength: 100, description: 'As GET /admin/users `query`' }),
            ),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ recipients: Type.Integer({ minimum: 0 }) }),
          ...problemResponses(401, 403, 422, 429),
        },
      },
    },
    async (request) => {
      const { filter, query } = request.query;
      return {
        recipients: await countAudience(app.deps.services, {
          filters: filter === undefined ? [] : (filter.split(',') as UserFilter[]),
          ...(query === undefined ? {} : { query }),
        }),
      };
    },
  );

  app.get(
    '/admin/broadcasts/:broadcast_id',
    {
      config: { access: 'support' },
      schema: {
        operationId: 'adminGetBroadcast',
        summary: 'A broadcast and its progress (sent, failed, blocked, remaining)',
        description: 'The progress counts its recipients as the workers mark them.',
        tags: ['admin'],
        params: IdParams,
        response: { 200: Broadcast, ...problemResponses(401, 403, 404, 422, 429) },
      },
    },
    async (request) => getBroadcast(app.deps.services, request.params.broadcast_id),
  );

  app.get(
    '/admin/broadcasts/:broadcast_id/preview',
    {
      config: { access: 'support' },
      schema: {
        operationId: 'adminPreviewBroadcast',
        summary: 'How many users its audience selects now',
        description: 'What a start would snapshot as recipients, counted now.',
        tags: ['admin'],
        params: IdParams,
        response: {
          200: Type.Object({ id: Type.Integer(), recipients: Type.Integer() }),
          ...problemResponses(401, 403, 404, 422, 429),
        },
      },
    },
    async (request) => previewBroadcast(app.deps.services, request.params.broadcast_id),
  );

  app.post(
    '/admin/broadcasts/:broadcast_id/start',
    {
      config: { access: 'admin' },
      schema: {
        operationId: 'adminStartBroadcast',
        summary: 'Start a draft: snapshot its recipients and send',
        description:
          'The audience is snapshotted in one statement (one row per recipient), and the ' +
          'workers send at BROADCAST_RATE messages per second across all of them. An audience ' +
          'of nobody completes at once. 409 unless a draft. Audited (`broadcast.start`).',
        tags: ['admin'],
        params: IdParams,
        body: Reason,
        response: { 200: Broadcast, ...problemResponses(401, 403, 404, 409, 422, 429) },
      },
    },
    async (request) =>
      startBroadcast(
        app.deps.services,
        request.params.broadcast_id,
        operatorOf(request),
        request.body.reason,
      ),
  );

  for (const [action, operationId, summary, from] of [
    [
      'pause',
      'adminPauseBroadcast',
      'Pause a running broadcast: the workers stop before their next batch',
      'running',
    ],
    ['resume', 'adminResumeBroadcast', 'Resume a paused broadcast where it stopped', 'paused'],
    [
      'cancel',
      'adminCancelBroadcast',
      'Cancel a broadcast: nothing more is sent',
      'a draft, running or paused',
    ],
  ] as const) {
    app.post(
      `/admin/broadcasts/:broadcast_id/${action}`,
      {
        config: { access: 'admin' },
        schema: {
          operationId,
          summary,
          description: `409 unless ${from}. Audited (\`broadcast.${action}\`).`,
          tags: ['admin'],
          params: IdParams,
          body: Reason,
          response: { 200: Broadcast, ...problemResponses(401, 403, 404, 409, 422, 429) },
        },
      },
      async (request) =>
        changeBroadcast(
          app.deps.services,
          request.params.broadcast_id,
          action,
          operatorOf(request),
          request.body.reason,
        ),
    );
  }
};
