import { Api, GrammyError } from 'grammy';

/**
 * The bot's Telegram Stars through the Bot API (grammY's `Api`, no polling): invoice links the
 * Mini App opens (createInvoiceLink), refunding a payment (refundStarPayment) and reading the
 * bot's Star transactions (getStarTransactions). Errors are
 * StarsApiError with our own words and Telegram's description only: the bot token, which is in
 * every Bot API URL, never reaches an error or a log.
 */

export type StarsApiErrorKind =
  /** Telegram answered 4xx: it will not do it (the description says why). */
  | 'refused'
  /** 5xx, 429, a timeout or no answer: nothing is known to have happened; try again later. */
  | 'unavailable';

export class StarsApiError extends Error {
  readonly kind: StarsApiErrorKind;
  /** Telegram's description (e.g. "Bad Request: CHARGE_ALREADY_REFUNDED"), when it answered. */
  readonly description: string | null;
  readonly status: number | null;
  readonly retryAfterSeconds: number | null;

  constructor(
    kind: StarsApiErrorKind,
    message: string,
    details: { description?: string; status?: number; retryAfterSeconds?: number } = {},
  ) {
    super(message);
    this.name = 'StarsApiError';
    this.kind = kind;
    this.description = details.description ?? null;
    this.status = details.status ?? null;
    this.retryAfterSeconds = details.retryAfterSeconds ?? null;
  }
}

/** TransactionPartnerUser (core.telegram.org/bots/api#transactionpartneruser), as much as we read. */
export interface StarTransactionPartner {
  type: string;
  user?: { id: number };
  invoice_payload?: string;
}

/** StarTransaction (core.telegram.org/bots/api#startransaction). */
export interface StarTransaction {
  /** For a user's payment, its telegram_payment_charge_id. */
  id: string;
  amount: number;
  nanostar_amount?: number;
  /** Unix time. */
  date: number;
  /** Where incoming Stars came from (a user's payment). */
  source?: StarTransactionPartner;
  /** Where outgoing Stars went (a refund to a user). */
  receiver?: StarTransactionPartner;
}

/**
 * An invoice in Telegram Stars (core.telegram.org/bots/api#createinvoicelink): currency XTR,
 * exactly one price, and an empty provider_token.
 */
export interface StarsInvoice {
  /** 1–32 characters. */
  title: string;
  /** 1–255 characters. */
  description: string;
  /** 1–128 bytes; comes back in pre_checkout_query and successful_payment. */
  payload: string;
  /** The price's label. */
  label: string;
  stars: number;
}

export interface TelegramStarsOptions {
  botToken: string;
  /** Root of the Bot API server, without a trailing slash. Default https://api.telegram.org. */
  apiRoot?: string;
  /** Longest a single call may take. Default 30 s. */
  timeoutSeconds?: number;
}

export class TelegramStars {
  private readonly api: Api;

  constructor(options: TelegramStarsOptions) {
    this.api = new Api(options.botToken, {
      apiRoot: (options.apiRoot ?? 'https://api.telegram.org').replace(/\/+$/, ''),
      timeoutSeconds: options.timeoutSeconds ?? 30,
    });
  }

  /** A link (https://t.me/$…) that opens the invoice: Telegram.WebApp.openInvoice takes it. */
  async invoiceLink(invoice: StarsInvoice): Promise<string> {
    try {
      return await this.api.createInvoiceLink(
        invoice.title,
        invoice.description,
        invoice.payload,
        '',
        'XTR',
        [{ label: invoice.label, amount: invoice.stars }],
      );
    } catch (err) {
      throw toStarsApiError(err, 'createInvoiceLink');
    }
  }

  /**
   * Refunds the payment to the user. Answers `already_refunded` when Telegram says it was
   * (CHARGE_ALREADY_REFUNDED); throws StarsApiError otherwise.
   */
  async refund(userId: number, chargeId: string): Promise<'refunded' | 'already_refunded'> {
    try {
      await this.api.refundStarPayment(userId, chargeId);
      return 'refunded';
    } catch (err) {
      const error = toStarsApiError(err, 'refundStarPayment');
      if (error.kind === 'refused' && /CHARGE_ALREADY_REFUNDED/i.test(error.description ?? '')) {
        return 'already_refunded';
      }
      throw error;
    }
  }

  /** One page of the bot's Star transactions: `limit` (1–100) from `offset`. */
  async transactions(offset: number, limit: number): Promise<StarTransaction[]> {
    try {
      const page = await this.api.getStarTransactions({ offset, limit });
      return page.transactions as unknown as StarTransaction[];
    } catch (err) {
      throw toStarsApiError(err, 'getStarTransactions');
    }
  }
}

function toStarsApiError(err: unknown, method: string): StarsApiError {
  if (err instanceof GrammyError) {
    const retryAfter = err.parameters.retry_after;
    const details = {
      description: err.description,
      status: err.error_code,
      ...(retryAfter === undefined ? {} : { retryAfterSeconds: retryAfter }),
    };
    if (err.error_code >= 500 || err.error_code === 429) {
      return new StarsApiError(
        'unavailable',
        `Telegram ${method}: ${err.error_code} ${err.description}`,
        details,
      );
    }
    return new StarsApiError(
      'refused',
      `Telegram ${method}: ${err.error_code} ${err.description}`,
      details,
    );
  }
  // HttpError (network, timeout) or anything else: its text may hold the URL, so not repeated.
  return new StarsApiError('unavailable', `Telegram ${method}: no answer from the Bot API`);
}
