import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { TelegramStars } from '../../delivery/telegram-stars.ts';
import { operatorOf } from '../../deps/auth.ts';
import { TelegramId } from '../../schemas/common.ts';
import { problemResponses } from '../../schemas/problem.ts';
import { listPayments, refundPaymentAsOperator } from '../../services/admin-payments.ts';
import { listCorrections, reconcilePayments } from '../../services/payment-reconciliation.ts';

const AdminPayment = Type.Object({
  payment_id: Type.Integer(),
  telegram_id: TelegramId,
  telegram_payment_charge_id: Type.String(),
  package_id: Type.String(),
  stars: Type.Integer({ description: 'Stars paid (XTR)' }),
  credits: Type.Integer({ description: 'Credits the package gave' }),
  status: Type.Union([Type.Literal('paid'), Type.Literal('refunded')]),
  created_at: Type.String({ format: 'date-time' }),
  refunded_at: Type.Union([Type.Null(), Type.String({ format: 'date-time' })]),
  refund_shortfall: Type.Union([Type.Null(), Type.Integer()], {
    description: 'Credits the refund could not take back (already spent)',
  }),
});

const ReferralClawback = Type.Union([
  Type.Null(),
  Type.Object({
    telegram_id: TelegramId,
    language: Type.Union([Type.Null(), Type.String()]),
    language_code: Type.Union([Type.Null(), Type.String()]),
    clawed_back: Type.Integer(),
    shortfall: Type.Integer(),
  }),
]);

const Correction = Type.Object({
  id: Type.Integer(),
  kind: Type.Union(
    [
      Type.Literal('payment_credited'),
      Type.Literal('refund_applied'),
      Type.Literal('payment_unmatched'),
    ],
    {
      description:
        "payment_credited: Telegram's payment we did not have, credited; refund_applied: Telegram's " +
        'refund of a payment we had as paid, applied; payment_unmatched: a payment whose payload or ' +
        'amount fits no package, left to an operator',
    },
  ),
  telegram_payment_charge_id: Type.String(),
  telegram_id: Type.Union([Type.Null(), TelegramId]),
  stars: Type.Integer(),
  transaction_at: Type.String({
    format: 'date-time',
    description: "The transaction's date at Telegram",
  }),
  details: Type.Union([Type.Null(), Type.Record(Type.String(), Type.Unknown())]),
  actor: Type.String({ description: 'The operator who ran it, or system (the schedule)' }),
  created_at: Type.String({ format: 'date-time' }),
});

/** Operators: Stars payments, their totals, refunds through Telegram, reconciliation. */
export const adminPaymentRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const config = app.deps.config;
  const stars = config.telegramBotToken
    ? new TelegramStars({
        botToken: config.telegramBotToken,
        apiRoot: config.delivery.telegramApiRoot,
      })
    : null;

  app.get(
    '/admin/payments',
    {
      config: { access: 'support' },
      schema: {
        operationId: 'adminListPayments',
        summary: 'Stars payments, newest first (cursor pagination), with the totals of the filter',
        description:
          'Filters combine: status, user (telegram_id), from/to (created_at, from inclusive, to ' +
          'exclusive). `totals` counts everything the filter selects, not only the page.',
        tags: ['admin'],
        querystring: Type.Object({
          status: Type.Optional(Type.Union([Type.Literal('paid'), Type.Literal('refunded')])),
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
            payments: Type.Array(AdminPayment),
            totals: Type.Object({
              count: Type.Integer(),
              stars: Type.Integer(),
              credits: Type.Integer(),
              refunded: Type.Integer({ description: 'How many of them were refunded' }),
              refunded_stars: Type.Integer(),
            }),
            next_cursor: Type.Union([Type.Null(), Type.String()]),
          }),
          ...problemResponses(400, 401, 403, 422, 429),
        },
      },
    },
    async (request) => {
      const { limit, cursor, ...filter } = request.query;
      return listPayments(
        app.deps.services,
        Object.fromEntries(Object.entries(filter).filter(([, value]) => value !== undefined)),
        { limit, ...(cursor === undefined ? {} : { cursor }) },
      );
    },
  );

  app.post(
    '/admin/payments/:charge_id/refund',
    {
      config: { access: 'admin', idempotent: true },
      schema: {
        operationId: 'adminRefundPayment',
        summary:
          'Refund a Stars payment through Telegram, then take its credits and referral earnings back',
        description:
          "Telegram's refundStarPayment first; then, as POST /payments/stars/refund does it (the " +
          "same keys: Telegram's refunded_payment reaching the bot later changes nothing), the " +
          "package's credits and the referrer's earnings are taken back as far as the balances " +
          'allow (the rest is the shortfall). Telegram saying CHARGE_ALREADY_REFUNDED: our side is ' +
          'applied if it was not. Telegram refusing otherwise: 422 star_refund_refused; Telegram ' +
          'away: 503 telegram_unavailable; both change nothing.',
        tags: ['admin'],
        params: Type.Object({ charge_id: Type.String({ minLength: 1, maxLength: 100 }) }),
        headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String()) }),
        body: Type.Object(
          { reason: Type.String({ minLength: 1, maxLength: 500, description: 'Why' }) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            telegram: Type.Union(
              [
                Type.Literal('refunded'),
                Type.Literal('already_refunded'),
                Type.Literal('not_asked'),
              ],
              {
                description:
                  'Telegram refunded now, had already, or was not asked (the payment was refunded here)',
              },
            ),
            applied: Type.Boolean({ description: 'This call took the credits back' }),
            refund: Type.Object({
              payment_id: Type.Integer(),
              telegram_payment_charge_id: Type.String(),
              status: Type.Literal('refunded'),
              credits: Type.Integer(),
              clawed_back: Type.Integer({ description: 'Credits taken back from the balance' }),
              shortfall: Type.Integer({ description: 'Credits already spent, not taken back' }),
              balance: Type.Integer(),
              referral: ReferralClawback,
            }),
          }),
          ...problemResponses(401, 403, 404, 409, 422, 429, 503),
        },
      },
    },
    async (request) => {
      const operator = operatorOf(request);
      const chargeId = request.params.charge_id;
      const { reason } = request.body;
      return refundPaymentAsOperator(app.deps.services, stars, chargeId, operator, reason);
    },
  );
  app.post(
    '/admin/payments/reconcile',
    {
      config: { access: 'admin', idempotent: true },
      schema: {
        operationId: 'adminReconcilePayments',
        summary: "Reconcile Stars payments with Telegram's Star transactions now",
        description:
          'Pages through getStarTransactions back to where the last run got (the worker does it ' +
          'every RECONCILE_MINUTES): a user payment we do not have is credited (once, by its charge ' +
          'id), a refund of a payment we have as paid is applied; each correction is recorded and ' +
          'audited. Running it again changes nothing. Telegram away: 503 telegram_unavailable.',
        tags: ['admin'],
        headers: Type.Object({ 'idempotency-key': Type.Optional(Type.String()) }),
        body: Type.Object(
          {},
          { additionalProperties: false, description: 'Nothing: {} or no body at all' },
        ),
        response: {
          200: Type.Object({
            transactions: Type.Integer({ description: 'Transactions read from Telegram' }),
            pages: Type.Integer(),
            corrections: Type.Array(Correction, { description: 'What this run corrected' }),
            complete: Type.Boolean({
              description: 'False: stopped at the page limit; the next run goes on',
            }),
          }),
          ...problemResponses(401, 403, 409, 422, 429, 503),
        },
      },
      preValidation: (request, _reply, done) => {
        request.body ??= {};
        done();
      },
    },
    async (request) => reconcilePayments(app.deps.services, stars, operatorOf(request)),
  );

  app.get(
    '/admin/payments/reconciliation',
    {
      config: { access: 'support' },
      schema: {
        operationId: 'adminListReconciliation',
        summary: 'What reconciliation with Telegram corrected, newest first, and when it last ran',
        tags: ['admin'],
        querystring: Type.Object({
          limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
          cursor: Type.Optional(
            Type.String({ maxLength: 128, description: 'next_cursor of the previous page' }),
          ),
        }),
        response: {
          200: Type.Object({
            corrections: Type.Array(Correction),
            next_cursor: Type.Union([Type.Null(), Type.String()]),
            last_run_at: Type.Union([Type.Null(), Type.String({ format: 'date-time' })]),
            reconciled_until: Type.Union([Type.Null(), Type.String({ format: 'date-time' })], {
              description: 'The newest transaction date a complete run went through',
            }),
          }),
          ...problemResponses(400, 401, 403, 422, 429),
        },
      },
    },
    async (request) =>
      listCorrections(app.deps.services.db, {
        limit: request.query.limit,
        ...(request.query.cursor === undefined ? {} : { cursor: request.query.cursor }),
      }),
  );
};
