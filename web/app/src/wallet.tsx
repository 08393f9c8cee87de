import { useMutation, useQuery } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { type Api, dataOf } from '../../shared/api.ts';
import type { Translate } from './i18n.ts';
import { type InvoiceStatus, type Launch, openInvoice, openTelegramLink } from './telegram.ts';

/**
 * The user's balance, top-up with Telegram Stars and invitation link. Paying is Telegram's: the
 * API makes the bot's own invoice into a link (createInvoiceLink), the Mini App opens it, and the
 * bot credits the payment when Telegram tells it (successful_payment). So "paid" here only means
 * the credits are on their way: the balance is read again until it has grown.
 */

/** How long the balance is looked at after "paid" before saying the credits are late. */
const WAIT_FOR_CREDIT_MS = 60_000;
const POLL_MS = 1_000;

type Payment =
  | { step: 'idle' }
  /** Telegram's payment sheet is open (a second one would be refused). */
  | { step: 'open' }
  /** Paid (or pending at Telegram): waiting until the balance is above `before`. */
  | { step: 'waiting'; before: number; pending: boolean }
  | { step: 'credited' }
  | { step: 'slow' }
  | { step: 'failed' }
  | { step: 'unsupported' };

/** Telegram's share sheet for a link and a text (core.telegram.org/widgets/share). */
export function shareLink(url: string, text: string): string {
  return `https://t.me/share/url?url=${encodeURIComponent(url)}&text=${encodeURIComponent(text)}`;
}

export function Wallet({ api, launch, t }: { api: Api; launch: Launch; t: Translate }) {
  const telegramId = launch.telegramId;
  const [payment, setPayment] = useState<Payment>({ step: 'idle' });
  const waiting = payment.step === 'waiting';
  const balance = useQuery({
    queryKey: ['balance'],
    queryFn: async () =>
      dataOf(
        await api.GET('/api/v1/users/{telegram_id}/balance', {
          params: { path: { telegram_id: telegramId } },
        }),
      ).balance,
    refetchInterval: waiting ? POLL_MS : false,
  });
  const trial = useQuery({
    queryKey: ['trial'],
    queryFn: async () =>
      dataOf(
        await api.GET('/api/v1/users/{telegram_id}/trial', {
          params: { path: { telegram_id: telegramId } },
        }),
      ),
  });
  const packages = useQuery({
    queryKey: ['stars-packages'],
    queryFn: async () => dataOf(await api.GET('/api/v1/payments/stars/packages')).packages,
  });
  const referrals = useQuery({
    queryKey: ['referrals'],
    queryFn: async () =>
      dataOf(
        await api.GET('/api/v1/users/{telegram_id}/referrals', {
          params: { path: { telegram_id: telegramId } },
        }),
      ),
  });

  const topUp = useMutation({
    mutationFn: async (packageId: string) => {
      // The balance before paying: the credit is seen when the balance is above it.
      const before = (await balance.refetch()).data ?? balance.data ?? 0;
      const invoice = dataOf(
        await api.POST('/api/v1/payments/stars/invoice-link', {
          body: { telegram_id: telegramId, package_id: packageId },
        }),
      );
      return { before, link: invoice.invoice_link };
    },
    onSuccess: ({ before, link }) => {
      setPayment({ step: 'open' });
      const opened = openInvoice(link, (status: InvoiceStatus) => {
        if (status === 'paid' || status === 'pending') {
          setPayment({ step: 'waiting', before, pending: status === 'pending' });
        } else {
          // cancelled (the user closed it) says nothing.
          setPayment({ step: status === 'failed' ? 'failed' : 'idle' });
        }
      });
      if (!opened) setPayment({ step: 'unsupported' });
    },
  });

  // The credit arrived: the balance grew past what it was before paying.
  useEffect(() => {
    if (payment.step === 'waiting' && balance.data !== undefined && balance.data > payment.before) {
      setPayment({ step: 'credited' });
    }
  }, [payment, balance.data]);
  useEffect(() => {
    if (!waiting) return;
    const late = setTimeout(() => setPayment({ step: 'slow' }), WAIT_FOR_CREDIT_MS);
    return () => clearTimeout(late);
  }, [waiting]);

  if (balance.isPending) return <p className="note">{t('app-loading')}</p>;
  if (balance.isError) {
    return <p className="note">{t('app-error', { detail: balance.error.message })}</p>;
  }
  const said: Record<Exclude<Payment['step'], 'idle' | 'open'>, string> = {
    waiting:
      payment.step === 'waiting' && payment.pending ? 'app-payment-pending' : 'app-payment-waiting',
    credited: 'app-payment-credited',
    slow: 'app-payment-slow',
    failed: 'app-payment-failed',
    unsupported: 'app-payment-unsupported',
  };
  const link = referrals.data?.link ?? null;
  return (
    <div className="wallet">
      <section className="card" aria-labelledby="balance">
        <p id="balance" className="balance">
          {t('app-balance', { balance: balance.data })}
        </p>
        {trial.data && (
          <p className="hint">{t('app-free-left', { trial: trial.data.remaining })}</p>
        )}
      </section>

      <section className="card" aria-labelledby="topup">
        <h2 id="topup">{t('app-topup-title')}</h2>
        {packages.data?.map((offer) => (
          <button
            key={offer.id}
            type="button"
            className="button primary"
            disabled={topUp.isPending || waiting || payment.step === 'open'}
            onClick={() => topUp.mutate(offer.id)}
          >
            {t('topup-package', { credits: offer.credits, stars: offer.stars })}
          </button>
        ))}
        {payment.step !== 'idle' && payment.step !== 'open' && (
          <p
            role="status"
            className={
              payment.step === 'failed' || payment.step === 'unsupported' ? 'error' : 'hint'
            }
          >
            {t(said[payment.step], { balance: balance.data })}
          </p>
        )}
        {(topUp.error ?? packages.error) && (
          <p className="error">
            {t('app-error', { detail: (topUp.error ?? packages.error)?.message ?? '' })}
          </p>
        )}
      </section>

      <section className="card" aria-labelledby="invite">
        <h2 id="invite">{t('app-referral-title')}</h2>
        {referrals.data && (
          <p className="hint">
            {t('app-referral-terms', {
              percent: referrals.data.percent,
              count: referrals.data.joined,
              earned: referrals.data.earned_credits,
            })}
          </p>
        )}
        {link ? (
          <>
            <input className="link" readOnly value={link} aria-label={t('app-referral-title')} />
            <button
              type="button"
              className="button primary"
              onClick={() => openTelegramLink(shareLink(link, t('app-referral-share-text')))}
            >
              {t('app-referral-share')}
            </button>
          </>
        ) : (
          referrals.isSuccess && <p className="hint">{t('app-referral-no-link')}</p>
        )}
      </section>
    </div>
  );
}
