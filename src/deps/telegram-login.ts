import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The Telegram Login Widget's authorization (core.telegram.org/widgets/login): the fields Telegram
 * hands the page that embeds the widget, which the page posts to POST /admin/auth/telegram.
 */
export interface TelegramLoginFields {
  id: number;
  first_name?: string | undefined;
  last_name?: string | undefined;
  username?: string | undefined;
  photo_url?: string | undefined;
  auth_date: number;
  hash: string;
}

export class TelegramLoginError extends Error {}

/** The widget's key: SHA-256 of the bot token (Mini App initData uses another, see there). */
export function telegramLoginSecret(botToken: string): Buffer {
  return createHash('sha256').update(botToken).digest();
}

/** Every received field but `hash`, sorted by name, as `name=value` lines. */
function dataCheckString(fields: Omit<TelegramLoginFields, 'hash'>): string {
  return Object.entries(fields)
    .filter(([key, value]) => key !== 'hash' && value !== undefined)
    .map(([key, value]) => `${key}=${value}`)
    .sort()
    .join('\n');
}

/**
 * Checks the widget's authorization as Telegram documents it: `hash` must be the hex HMAC-SHA256
 * of the data-check-string under SHA-256(bot token), compared in constant time, and `auth_date`
 * at most `maxAgeSeconds` old (and not from the future, beyond a little clock skew).
 */
export function verifyTelegramLogin(
  fields: TelegramLoginFields,
  secret: Buffer,
  maxAgeSeconds: number,
  now: Date = new Date(),
): { telegramId: number; authDate: Date } {
  if (!/^[0-9a-f]{64}$/i.test(fields.hash)) throw new TelegramLoginError('hash is not valid');
  const expected = createHmac('sha256', secret).update(dataCheckString(fields)).digest();
  if (!timingSafeEqual(expected, Buffer.from(fields.hash, 'hex'))) {
    throw new TelegramLoginError('the signature does not match');
  }
  const ageSeconds = now.getTime() / 1000 - fields.auth_date;
  if (ageSeconds > maxAgeSeconds) throw new TelegramLoginError('the authorization has expired');
  if (ageSeconds < -300) throw new TelegramLoginError('auth_date is in the future');
  return { telegramId: fields.id, authDate: new Date(fields.auth_date * 1000) };
}

/** Signs widget fields as Telegram does; the tests (and a developer trying the login) use it. */
export function signTelegramLogin(
  fields: Omit<TelegramLoginFields, 'hash'>,
  secret: Buffer,
): TelegramLoginFields {
  const hash = createHmac('sha256', secret).update(dataCheckString(fields)).digest('hex');
  return { ...fields, hash };
}
