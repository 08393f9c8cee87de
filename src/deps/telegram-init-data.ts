import { createHmac, timingSafeEqual } from 'node:crypto';

export interface VerifiedInitData {
  telegramId: number;
  authDate: Date;
}

export class InitDataError extends Error {}

/** The key Telegram signs Mini App initData with: HMAC-SHA256(key = "WebAppData", bot token). */
export function initDataSecret(botToken: string): Buffer {
  return createHmac('sha256', 'WebAppData').update(botToken).digest();
}

/**
 * Checks Telegram Mini App initData as Telegram documents it: the data-check-string is every
 * received field but `hash`, sorted, as key=value lines; its HMAC-SHA256 under the secret must
 * equal `hash`, and `auth_date` must be recent.
 */
export function verifyInitData(
  raw: string,
  secret: Buffer,
  maxAgeSeconds: number,
  now: Date = new Date(),
): VerifiedInitData {
  const params = new URLSearchParams(raw);
  const hash = params.get('hash');
  if (!hash || !/^[0-9a-f]{64}$/i.test(hash)) throw new InitDataError('initData has no valid hash');
  const dataCheckString = [...params.entries()]
    .filter(([key]) => key !== 'hash')
    .map(([key, value]) => `${key}=${value}`)
    .sort()
    .join('\n');
  const expected = createHmac('sha256', secret).update(dataCheckString).digest();
  if (!timingSafeEqual(expected, Buffer.from(hash, 'hex'))) {
    throw new InitDataError('initData signature does not match');
  }
  const authDate = Number(params.get('auth_date'));
  if (!Number.isSafeInteger(authDate) || authDate <= 0) {
    throw new InitDataError('initData has no auth_date');
  }
  const ageSeconds = now.getTime() / 1000 - authDate;
  if (ageSeconds > maxAgeSeconds) throw new InitDataError('initData has expired');
  if (ageSeconds < -300) throw new InitDataError('initData auth_date is in the future');
  let user: unknown;
  try {
    user = JSON.parse(params.get('user') ?? 'null');
  } catch {
    throw new InitDataError('initData user is not JSON');
  }
  const id = (user as { id?: unknown } | null)?.id;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0) {
    throw new InitDataError('initData has no user id');
  }
  return { telegramId: id, authDate: new Date(authDate * 1000) };
}

/** Builds signed initData; the tests (and a developer trying the Mini App flow) use it. */
export function signInitData(fields: Record<string, string>, secret: Buffer): string {
  const dataCheckString = Object.entries(fields)
    .map(([key, value]) => `${key}=${value}`)
    .sort()
    .join('\n');
  const hash = createHmac('sha256', secret).update(dataCheckString).digest('hex');
  return new URLSearchParams({ ...fields, hash }).toString();
}
