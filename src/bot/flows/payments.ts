import { Composer } from 'grammy';
import type { Logger } from '../../core/logger.ts';
import { type Language, languageOfTelegram } from '../../locales/index.ts';
import { ApiUnavailable, type BotApi, type ConfirmBody } from '../api.ts';
import type { BotContext } from '../context.ts';
import { html } from '../replies.ts';
import type { ConversationStore } from '../store.ts';

/**
 * Money updates. This composer runs before the ban check and the throttle: a payer is never
 * refused their credits. A confirm is idempotent by Telegram's charge id, so it is retried until
 * the API takes it; one still failing is kept (in Redis when there is one) and retried in the
 * background, also after a restart.
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
  const confirmed = await confirmWithRetries(ctx.services.api, body, ctx.services.logger, 4);
  if (!confirmed) {
    await keepForRetry(ctx.services.store, body, ctx.language);
    await ctx.reply(ctx.t('error-unavailable'), html);
    return;
  }
  await ctx.reply(
    ctx.t('payment-confirmed', { credits: confirmed.credits, balance: confirmed.balance_after }),
    html,
  );
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
  try {
    const result = await ctx.services.api.refundPayment({
      telegram_id: ctx.from.id,
      telegram_payment_charge_id: refund.telegram_payment_charge_id,
      provider_payment_charge_id: refund.provider_payment_charge_id ?? null,
      total_amount: refund.total_amount,
      currency: refund.currency,
    });
    await ctx.reply(ctx.t('payment-refunded', { credits: result.clawed_back }), html);
  } catch (error) {
    ctx.services.logger.error({ err: error, update: ctx.update.update_id }, 'refund not recorded');
    throw error;
  }
});

/** Tries a confirm up to `attempts` times with backoff; null when the API stays unavailable. */
async function confirmWithRetries(
  api: BotApi,
  body: ConfirmBody,
  logger: Logger,
  attempts: number,
): Promise<Awaited<ReturnType<BotApi['confirmPayment']>> | null> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    try {
      return await api.confirmPayment(body);
    } catch (error) {
      if (!(error instanceof ApiUnavailable)) throw error;
      logger.warn({ err: error, attempt }, 'Stars confirm failed; retrying');
      await new Promise((resolve) => setTimeout(resolve, Math.min(200 * 2 ** attempt, 5_000)));
    }
  }
  return null;
}

const PENDING = 'pending-confirm:';
const PENDING_TTL_SECONDS = 30 * 86_400;

/** A confirm kept for retry, with the payer's language to tell them in once it lands. */
interface KeptConfirm {
  body: ConfirmBody;
  language: Language;
}

async function keepForRetry(
  store: ConversationStore,
  body: ConfirmBody,
  language: Language,
): Promise<void> {
  const kept: KeptConfirm = { body, language };
  await store.set(`${PENDING}${body.telegram_payment_charge_id}`, kept, PENDING_TTL_SECONDS);
}

/**
 * Confirms kept for retry, until each lands: started with the bot, runs every `everyMs`. A
 * landed one tells the payer; several bot processes may send the same one (the API credits once).
 */
export function retryKeptConfirms(
  options: {
    api: BotApi;
    store: ConversationStore;
    logger: Logger;
    notify: (
      telegramId: number,
      credits: number,
      balance: number,
      language: Language,
    ) => Promise<void>;
  },
  everyMs = 30_000,
): { stop(): void; runOnce(): Promise<void> } {
  const runOnce = async () => {
    for (const key of await options.store.keys(PENDING)) {
      const kept = await options.store.get<KeptConfirm>(key);
      if (!kept) continue;
      const { body, language } = kept;
      try {
        const result = await options.api.confirmPayment(body);
        await options.store.delete(key);
        await options
          .notify(body.telegram_id, result.credits, result.balance_after, language)
          .catch(() => undefined);
      } catch (error) {
        options.logger.warn({ err: error }, 'kept Stars confirm still failing');
        if (!(error instanceof ApiUnavailable)) await options.store.delete(key);
      }
    }
  };
  const timer = setInterval(() => {
    runOnce().catch((error) => options.logger.error({ err: error }, 'confirm retry failed'));
  }, everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer), runOnce };
}
