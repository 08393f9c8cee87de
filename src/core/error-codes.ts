/**
 * Every error code this API answers, with its HTTP status and the problem document's title: the
 * one place both are stated. AppError takes a code of this table (TypeScript refuses any other);
 * the README's table of errors lists the same codes (a test holds them together).
 */
export const errorCodes = {
  // Requests the framework refuses before (or instead of) a route.
  bad_request: { status: 400, title: 'Bad request' },
  invalid_url: { status: 400, title: 'Bad request' },
  not_found: { status: 404, title: 'Not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  not_acceptable: { status: 406, title: 'Not acceptable' },
  request_timeout: { status: 408, title: 'Request timeout' },
  payload_too_large: { status: 413, title: 'Payload too large' },
  uri_too_long: { status: 414, title: 'URI too long' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  request_header_fields_too_large: { status: 431, title: 'Request header fields too large' },
  internal_error: { status: 500, title: 'Internal server error' },
  database_unavailable: { status: 503, title: 'Service unavailable' },

  // Input, paging, callers.
  validation_failed: { status: 422, title: 'Validation failed' },
  invalid_cursor: { status: 400, title: 'Invalid cursor' },
  unauthorized: { status: 401, title: 'Authentication required' },
  forbidden: { status: 403, title: 'Forbidden' },
  too_many_failed_authentications: { status: 429, title: 'Too many failed authentications' },
  rate_limited: { status: 429, title: 'Too many requests' },

  // Idempotency-Key.
  invalid_idempotency_key: { status: 422, title: 'Invalid Idempotency-Key' },
  idempotency_key_reused: { status: 409, title: 'Idempotency-Key already used' },
  idempotency_request_in_progress: { status: 409, title: 'Request still in progress' },

  // Users and credits.
  user_not_found: { status: 404, title: 'User not found' },
  user_banned: { status: 403, title: 'User banned' },
  insufficient_credits: { status: 402, title: 'Insufficient credits' },
  invalid_amount: { status: 422, title: 'Invalid amount' },
  charge_not_found: { status: 404, title: 'Charge not found' },

  // Telegram Stars payments.
  unsupported_currency: { status: 422, title: 'Unsupported currency' },
  unknown_package: { status: 422, title: 'Unknown package' },
  amount_mismatch: { status: 422, title: 'Amount does not match the package' },
  payment_conflict: { status: 409, title: 'Charge id already recorded differently' },
  payment_not_found: { status: 404, title: 'Payment not found' },
  refund_mismatch: { status: 422, title: 'Refund does not match the payment' },
  invoice_refused: { status: 502, title: 'Telegram refused the invoice' },

  // Generations.
  generation_not_found: { status: 404, title: 'Generation not found' },
  image_not_found: { status: 404, title: 'Image not found' },
  too_many_active_generations: { status: 429, title: 'Too many generations at once' },
  trial_unavailable: { status: 409, title: 'No free generation left' },
  price_changed: { status: 409, title: 'The price changed' },
  provider_unavailable: { status: 503, title: 'Model unavailable' },
  bot_unavailable: { status: 503, title: 'Bot not running' },

  // Providers' webhooks.
  provider_not_found: { status: 404, title: 'Provider not found' },
  invalid_signature: { status: 401, title: 'Webhook signature refused' },
  invalid_webhook: { status: 422, title: 'Invalid webhook' },

  // Operators: generations and payments administration.
  generation_not_finished: { status: 409, title: 'Generation not finished' },
  generation_already_refunded: { status: 409, title: 'Generation already given back' },
  star_refund_refused: { status: 422, title: 'Telegram refused the refund' },
  telegram_unavailable: { status: 503, title: 'Telegram unavailable' },

  // Operators: the catalog.
  model_not_found: { status: 404, title: 'Model not found' },
  model_exists: { status: 409, title: 'Model already exists' },

  // Operators: broadcasts.
  broadcast_not_found: { status: 404, title: 'Broadcast not found' },
  broadcast_wrong_status: { status: 409, title: 'Broadcast not in a status for this' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof errorCodes;
