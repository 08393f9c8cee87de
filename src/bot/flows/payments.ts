import { Composer } from 'grammy';
import type { Logger } from '../../core/logger.ts';
import { type Language, languageOfTelegram } from '../../locales/index.ts';
import {
  ApiUnavailable,
  type BotApi,
  type ConfirmBody,
  type PaymentResult,
  type RefundBody,
  type RefundResult,
} from '../api.ts';
import type { BotContext } from '../context.ts';
import { html } from '../replies.ts';
import type { ConversationStore } from '../store.ts';

/**
 * Money updates. This composer runs before the ban check and the throttle: a payer is never
 * refused their credits. A confirm or a refund is idempotent by Telegram's charge id, so it is
 * retried until the API takes it; one still failing is kept (in Redis when there is one) and
 * retried in the background, also after a restart.
 */
export const paymentsFlow = new Composer<BotContext>();

paymentsFlow.on('pre_checkout_query', async (ctx) => {
  const query = ctx.preCheckoutQuery;
  // Telegram waits 10 s for the answer: a cached package list answers at once.
  let offers: Awaited<ReturnType<BotApi['starsPackages']>> = [];
  try {
    offers = await ctx.services.api.starsPackages();
    if (!offers.some((offer) => offer.invoice_payload === query.invoice_payload)) {
      offers = await ctx.services.api.starsPackages({ fresh: true });
    }
  } catch (error) {
    ctx.services.logger.warn({ err: error }, 'Stars packages unavailable for a pre-checkout');
    await ctx.answerPreCheckoutQuery(false, { error_message: ctx.t('error-unavailable') });
    return;
  }
  const offer = offers.find((candidate) => candidate.invoice_payload === query.invoice_payload);
  const valid =
    offer !== undefined && query.currency === 'XTR' && query.total_amount === offer.stars;
  if (valid) await ctx.answerPreCheckoutQuery(true);
  else await ctx.answerPreCheckoutQuery(false, { error_message: ctx.t('precheckout-invalid') });
});

paymentsFlow.on('message:successful_payment', async (ctx) => {
  const payment = ctx.message.successful_payment;
  const body: ConfirmBody = {
    telegram_id: ctx.from.id,
    telegram_payment_charge_id: payment.telegram_payment_charge_id,
    provider_payment_charge_id: payment.provider_payment_charge_id || null,
    total_amount: payment.total_amount,
    currency: payment.currency,
    invoice_payload: payment.invoice_payload,
  };
  const confirmed = await withRetries(
    () => ctx.services.api.confirmPayment(body),
    ctx.services.logger,
  );
  if (!confirmed) {
    await keepForRetry(ctx.services.store, 'confirm', { body, language: ctx.language });
    await ctx.reply(ctx.t('error-unavailable'), html);
    return;
  }
  await ctx.reply(ctx.t(...told.confirm(confirmed)), html);
  const referral = confirmed.referral;
  if (referral && referral.credits > 0) {
    // In the referrer's language, not the payer's.
    const language =
      referral.language ??
      languageOfTelegram(referral.language_code) ??
      ctx.services.settings.defaultLanguage;
    await ctx.api
      .sendMessage(
        referral.telegram_id,
        ctx.services.texts.t(language, 'referral-earned', { credits: referral.credits }),
        html,
      )
      .catch((error: unknown) =>
        ctx.services.logger.info({ err: error }, 'referrer not told (blocked the bot?)'),
      );
  }
});

paymentsFlow.on('message:refunded_payment', async (ctx) => {
  const refund = ctx.message.refunded_payment;
  const body: RefundBody = {
    telegram_id: ctx.from.id,
    telegram_payment_charge_id: refund.telegram_payment_charge_id,
    provider_payment_charge_id: refund.provider_payment_charge_id ?? null,
    total_amount: refund.total_amount,
    currency: refund.currency,
  };
  const refunded = await withRetries(
    () => ctx.services.api.refundPayment(body),
    ctx.services.logger,
  );
  if (!refunded) {
    // Telegram has given the Stars back: the credits must go too, once the API is back.
    await keepForRetry(ctx.services.store, 'refund', { body, language: ctx.language });
    await ctx.reply(ctx.t('error-unavailable'), html);
    return;
  }
  await ctx.reply(ctx.t(...told.refund(refunded)), html);
});

/** What the payer is told once the API took their payment or refund: a text and its values. */
type Told = [key: string, variables: Record<string, number>];
const told = {
  confirm: (result: PaymentResult): Told => [
    'payment-confirmed',
    { credits: result.credits, balance: result.balance_after },
  ],
  refund: (result: RefundResult): Told => ['payment-refunded', { credits: result.clawed_back }],
};

const RETRY_ATTEMPTS = 4;

/** Tries a money call a few times with backoff; null when the API stays unavailable. */
async function withRetries<Result>(
  call: () => Promise<Result>,
  logger: Logger,
): Promise<Result | null> {
  for (let attempt = 0; attempt < RETRY_ATTEMPTS; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof ApiUnavailable)) throw error;
      logger.warn({ err: error, attempt }, 'Stars payment call failed; retrying');
      await new Promise((resolve) => setTimeout(resolve, Math.min(200 * 2 ** attempt, 5_000)));
    }
  }
  return null;
}

/**
 * A payment or a refund Telegram has made and the API has not taken yet, with the payer's
 * language to tell them in once it lands. Both are idempotent by the charge id.
 */
interface Kept<Body> {
  body: Body;
  language: Language;
}

const PENDING = { confirm: 'pending-confirm:', refund: 'pending-refund:' } as const;
const PENDING_TTL_SECONDS = 30 * 86_400;

async function keepForRetry<Kind extends keyof typeof PENDING>(
  store: ConversationStore,
  kind: Kind,
  kept: Kept<Kind extends 'confirm' ? ConfirmBody : RefundBody>,
): Promise<void> {
  const key = `${PENDING[kind]}${kept.body.telegram_payment_charge_id}`;
  await store.set(key, kept, PENDING_TTL_SECONDS);
}

/**
 * Payments and refunds kept for retry, until each lands: started with the bot, runs every
 * `everyMs`. A landed one tells the payer; several bot processes may send the same one (the API
 * applies it once).
 */
export function retryKeptPayments(
  options: {
    api: BotApi;
    store: ConversationStore;
    logger: Logger;
    tell: (
      telegramId: number,
      language: Language,
      key: string,
      variables: Record<string, number>,
    ) => Promise<void>;
  },
  everyMs = 30_000,
): { stop(): void; runOnce(): Promise<void> } {
  const { api, store, logger } = options;
  const landEach = async <Body extends { telegram_id: number }>(
    prefix: string,
    land: (body: Body) => Promise<Told>,
  ) => {
    for (const key of await store.keys(prefix)) {
      const kept = await store.get<Kept<Body>>(key);
      if (!kept) continue;
      try {
        const [text, variables] = await land(kept.body);
        await store.delete(key);
        await options
          .tell(kept.body.telegram_id, kept.language, text, variables)
          .catch(() => undefined);
      } catch (error) {
        logger.warn({ err: error, key }, 'kept Stars payment still failing');
        if (!(error instanceof ApiUnavailable)) await store.delete(key);
      }
    }
  };
  const runOnce = async () => {
    await landEach(PENDING.confirm, async (body: ConfirmBody) =>
      told.confirm(await api.confirmPayment(body)),
    );
    await landEach(PENDING.refund, async (body: RefundBody) =>
      told.refund(await api.refundPayment(body)),
    );
  };
  const timer = setInterval(() => {
    runOnce().catch((error) => logger.error({ err: error }, 'payment retry failed'));
  }, everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer), runOnce };
}
