import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { TelegramStars } from '../../delivery/telegram-stars.ts';
import { principalLabel } from '../../deps/auth.ts';
import { TelegramId } from '../../schemas/common.ts';
import {
  examplePayment,
  exampleStarsInvoiceLink,
  exampleStarsPackage,
  exampleSuccessfulPayment,
} from '../../schemas/examples.ts';
import { problemResponses } from '../../schemas/problem.ts';
import {
  confirmStarsPayment,
  createStarsInvoiceLink,
  listStarsPackages,
  refundStarsPayment,
} from '../../services/payments.ts';
import { currentSettings } from '../../services/settings.ts';

/** What Telegram's successful_payment and refunded_payment share, with the payer's id. */
const telegramPaymentFields = {
  telegram_id: TelegramId,
  telegram_payment_charge_id: Type.String({ minLength: 1, maxLength: 255 }),
  provider_payment_charge_id: Type.Optional(
    Type.Union([Type.Null(), Type.String({ maxLength: 255 })]),
  ),
  total_amount: Type.Integer({ minimum: 1 }),
  currency: Type.String({ minLength: 3, maxLength: 3 }),
};

/**
 * The rest of Telegram's SuccessfulPayment: accepted, so the bot can forward the object whole, and
 * not used (a package is priced by its invoice_payload; subscriptions and shipping are not sold).
 */
const successfulPaymentExtras = {
  subscription_expiration_date: Type.Optional(Type.Integer()),
  is_recurring: Type.Optional(Type.Boolean()),
  is_first_recurring: Type.Optional(Type.Boolean()),
  shipping_option_id: Type.Optional(Type.String({ maxLength: 255 })),
  order_info: Type.Optional(
    Type.Object(
      {},
      { additionalProperties: true, description: "Telegram's OrderInfo, if the invoice asked" },
    ),
  ),
};

/** The user whose referral code the payer was created with, in the words the bot needs. */
const referrerFields = {
  telegram_id: TelegramId,
  language: Type.Union([Type.Literal('uz'), Type.Literal('ru'), Type.Literal('en'), Type.Null()], {
    description: "The referrer's chosen language; null: none chosen (then language_code)",
  }),
  language_code: Type.Union([Type.String(), Type.Null()], {
    description: "Telegram's language of the referrer's client",
  }),
};

const PaymentResult = Type.Object(
  {
    payment_id: Type.Integer(),
    telegram_id: TelegramId,
    telegram_payment_charge_id: Type.String(),
    package_id: Type.String(),
    credits: Type.Integer(),
    stars: Type.Integer(),
    status: Type.Union([Type.Literal('paid'), Type.Literal('refunded')]),
    balance_after: Type.Integer({ description: 'The balance right after this credit' }),
    created_at: Type.String({ format: 'date-time' }),
    referral: Type.Union(
      [
        Type.Null(),
        Type.Object({
          ...referrerFields,
          credits: Type.Integer({
            description:
              'Credits this payment earned the referrer: REFERRAL_PERCENT of its credits, plus ' +
              "REFERRAL_JOIN_BONUS if it was the payer's first top-up",
          }),
        }),
      ],
      {
        description:
          'Who earned a referral bonus from this payment, so the bot can tell them in their language; ' +
          'null when nobody did',
      },
    ),
  },
  { examples: [examplePayment] },
);

const RefundResult = Type.Object({
  payment_id: Type.Integer(),
  telegram_payment_charge_id: Type.String(),
  status: Type.Literal('refunded'),
  credits: Type.Integer({ description: 'Credits the payment had bought' }),
  clawed_back: Type.Integer({ description: 'Credits taken back from the balance' }),
  shortfall: Type.Integer({ description: 'Credits already spent, which could not be taken back' }),
  balance: Type.Integer(),
  referral: Type.Union(
    [
      Type.Null(),
      Type.Object({
        ...referrerFields,
        clawed_back: Type.Integer({
          description: "Referral bonus credits taken back from the referrer's balance",
        }),
        shortfall: Type.Integer({
          description: 'Referral bonus credits the referrer had already spent: not taken back',
        }),
      }),
    ],
    {
      description:
        "What the refund took back from the payer's referrer; null when the payment had earned nobody anything",
    },
  ),
});

const idempotencyHeader = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({ description: 'Stripe-style; replays the first response' }),
  ),
});

export const paymentRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const config = app.deps.config;
  const stars = config.telegramBotToken
    ? new TelegramStars({
        botToken: config.telegramBotToken,
        apiRoot: config.delivery.telegramApiRoot,
      })
    : null;

  app.get(
    '/payments/stars/packages',
    {
      schema: {
        operationId: 'listStarsPackages',
        summary: 'Credit packages sold for Telegram Stars, with the invoice_payload to use',
        tags: ['payments'],
        response: {
          200: Type.Object({
            packages: Type.Array(
              Type.Object({
                id: Type.String(),
                title: Type.String(),
                credits: Type.Integer(),
                stars: Type.Integer(),
                currency: Type.Literal('XTR'),
                invoice_payload: Type.String(),
              }),
              { examples: [[exampleStarsPackage]] },
            ),
          }),
          ...problemResponses(429),
        },
      },
    },
    async () => ({
      packages: listStarsPackages((await currentSettings(app.deps.services)).STARS_PACKAGES),
    }),
  );

  app.post(
    '/payments/stars/invoice-link',
    {
      config: { access: 'user' },
      schema: {
        operationId: 'createStarsInvoiceLink',
        summary: "A Telegram link to a Stars package's invoice, for the Mini App's openInvoice",
        description:
          "Telegram's createInvoiceLink with the bot's own invoice for the package (currency XTR, " +
          "one price, empty provider_token, the package's invoice_payload; title and description in " +
          "the user's language). Paying it reaches the bot as successful_payment, which credits it " +
          '(POST /payments/stars/confirm): this call records nothing. Unknown package: 422 ' +
          'unknown_package; no bot token or Telegram away: 503 telegram_unavailable; Telegram ' +
          'refusing: 502 invoice_refused.',
        tags: ['payments'],
        body: Type.Object(
          {
            telegram_id: TelegramId,
            package_id: Type.String({
              minLength: 1,
              maxLength: 32,
              description: 'A package id from GET /payments/stars/packages',
            }),
          },
          {
            additionalProperties: false,
            examples: [
              { telegram_id: exampleSuccessfulPayment.telegram_id, package_id: 'popular' },
            ],
          },
        ),
        response: {
          200: Type.Object(
            {
              package_id: Type.String(),
              credits: Type.Integer(),
              stars: Type.Integer(),
              currency: Type.Literal('XTR'),
              invoice_payload: Type.String(),
              invoice_link: Type.String({
                description: "Telegram's invoice link: pass it to Telegram.WebApp.openInvoice",
              }),
            },
            { examples: [exampleStarsInvoiceLink] },
          ),
          ...problemResponses(401, 403, 404, 422, 429, 502, 503),
        },
      },
    },
    async (request) =>
      createStarsInvoiceLink(
        app.deps.services,
        stars,
        request.body.telegram_id,
        request.body.package_id,
      ),
  );

  app.post(
    '/payments/stars/confirm',
    {
      config: { access: 'bot', idempotent: true },
      schema: {
        operationId: 'confirmStarsPayment',
        summary:
          "Credit a successful Stars payment (Telegram's successful_payment), once per charge id",
        description:
          'A repeat with the same telegram_payment_charge_id returns the first result (200) and credits nothing. ' +
          'Currency must be XTR and total_amount must match the package the invoice_payload names.',
        tags: ['payments'],
        headers: idempotencyHeader,
        body: Type.Object(
          {
            ...telegramPaymentFields,
            invoice_payload: Type.String({ maxLength: 128 }),
            ...successfulPaymentExtras,
          },
          { additionalProperties: false, examples: [exampleSuccessfulPayment] },
        ),
        response: {
          200: PaymentResult,
          201: PaymentResult,
          ...problemResponses(401, 403, 409, 422, 429),
        },
      },
    },
    async (request, reply) => {
      const actor = request.principal ? principalLabel(request.principal) : 'system';
      const { result, replayed } = await confirmStarsPayment(
        app.deps.services,
        request.body,
        actor,
      );
      return reply.code(replayed ? 200 : 201).send(result);
    },
  );

  app.post(
    '/payments/stars/refund',
    {
      config: { access: 'bot', idempotent: true },
      schema: {
        operationId: 'refundStarsPayment',
        summary: "Take back a refunded Stars payment's credits (Telegram's refunded_payment), once",
        description:
          'The balance never goes below zero: credits already spent are reported as the shortfall.',
        tags: ['payments'],
        headers: idempotencyHeader,
        body: Type.Object(
          {
            ...telegramPaymentFields,
            invoice_payload: Type.Optional(Type.String({ maxLength: 128 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: RefundResult, ...problemResponses(401, 403, 404, 409, 422, 429) },
      },
    },
    async (request) => {
      const actor = request.principal ? principalLabel(request.principal) : 'system';
      return (await refundStarsPayment(app.deps.services, request.body, actor)).result;
    },
  );
};
