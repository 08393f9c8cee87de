import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signDeliveryWebhook, verifyDeliveryWebhook } from '../src/delivery/webhook.ts';
import { initDataSecret, signInitData, verifyInitData } from '../src/deps/telegram-init-data.ts';
import { signReplicateWebhook, verifyReplicateWebhook } from '../src/providers/replicate.ts';
import { signWavespeedWebhook, verifyWavespeedWebhook } from '../src/providers/wavespeed.ts';

/**
 * Our signers and verifiers against vectors published by others (or computed by another
 * implementation), so that a mistake made the same way in a signer and its verifier shows.
 *
 * Not here: the Telegram Login Widget hash (https://core.telegram.org/widgets/login#checking-authorization;
 * aiogram's tests/test_utils/test_auth_widget.py has a vector): nothing in this backend verifies
 * one yet; it comes with the admin panel's sign-in.
 */

const at = (unixSeconds: number) => new Date(unixSeconds * 1000);

describe('Telegram Mini App initData (https://core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app)', () => {
  // aiogram, tests/test_utils/test_web_app.py (github.com/aiogram/aiogram): bot token "42:TEST".
  const aiogram =
    'auth_date=1650385342' +
    '&user=%7B%22id%22%3A42%2C%22first_name%22%3A%22Test%22%7D' +
    '&query_id=test' +
    '&hash=46d2ea5e32911ec8d30999b56247654460c0d20949b6277af519e76271182803';

  it("accepts aiogram's valid initData, and refuses it under another bot token", () => {
    expect(verifyInitData(aiogram, initDataSecret('42:TEST'), 60, at(1650385342 + 10))).toEqual({
      telegramId: 42,
      authDate: at(1650385342),
    });
    expect(() =>
      verifyInitData(aiogram, initDataSecret('42:INVALID'), 60, at(1650385342 + 10)),
    ).toThrow(/signature does not match/);
  });

  it("checks the signature of aiogram's second vector (non-ASCII, '+' for spaces) before its user", () => {
    // Signed correctly, but its user id is a string, which we refuse after the signature passed.
    const raw =
      'auth_date=1650385342' +
      '&user=%7B%22id%22%3A+%22123456789%22%2C+%22first_name%22%3A+%22PlaceholderFirstName%22%2C+%22last_name%22%3A+%22PlaceholderLastName+%5Cud83c%5Cuddfa%5Cud83c%5Cudde6%22%2C+%22username%22%3A+%22Latand%22%2C+%22language_code%22%3A+%22en%22%2C+%22is_premium%22%3A+%22true%22%2C+%22allows_write_to_pm%22%3A+%22true%22%7D' +
      '&query_id=test' +
      '&hash=b3c8b293f14ad0f7f0abcf769aea1209a72295d30a87eb0e74df855d32e53bfe';
    expect(() => verifyInitData(raw, initDataSecret('42:TEST'), 60, at(1650385342))).toThrow(
      /no user id/,
    );
    expect(() => verifyInitData(raw, initDataSecret('42:TEST2'), 60, at(1650385342))).toThrow(
      /signature does not match/,
    );
  });

  // @telegram-apps/init-data-node, packages/init-data-node/src/entries/node.test.ts
  // (github.com/Telegram-Mini-Apps/telegram-apps).
  const tmaToken = '5768337691:AAH5YkoiEuPk8-FZa32hStHTqXiLPtAEhx8';
  const tma =
    'auth_date=1&can_send_after=10000&chat=%7B%22id%22%3A1%2C%22type%22%3A%22group%22%2C%22title%22%3A%22chat-title%22%2C%22photo_url%22%3A%22group%22%2C%22username%22%3A%22my-chat%22%7D&chat_instance=888&chat_type=sender&hash=47cfa22e72b887cba90c9cb833c5ea0f599975b6ce7193741844b5c4a4228b40&query_id=QUERY&receiver=%7B%22added_to_attachment_menu%22%3Afalse%2C%22allows_write_to_pm%22%3Atrue%2C%22first_name%22%3A%22receiver-first-name%22%2C%22id%22%3A991%2C%22is_bot%22%3Afalse%2C%22is_premium%22%3Atrue%2C%22language_code%22%3A%22ru%22%2C%22last_name%22%3A%22receiver-last-name%22%2C%22photo_url%22%3A%22receiver-photo%22%2C%22username%22%3A%22receiver-username%22%7D&start_param=debug&user=%7B%22added_to_attachment_menu%22%3Afalse%2C%22allows_write_to_pm%22%3Afalse%2C%22first_name%22%3A%22user-first-name%22%2C%22id%22%3A222%2C%22is_bot%22%3Atrue%2C%22is_premium%22%3Afalse%2C%22language_code%22%3A%22en%22%2C%22last_name%22%3A%22user-last-name%22%2C%22photo_url%22%3A%22user-photo%22%2C%22username%22%3A%22user-username%22%7D';

  it('derives the secret key as @telegram-apps/init-data-node does', () => {
    // Its "secretTokenHashed" and signData('abc', 'my-secret-token') vectors.
    expect(initDataSecret(tmaToken).toString('hex')).toBe(
      'a5c609aa52f63cb5e6d8ceb6e4138726ea82bbc36bb786d64482d445ea38ee5f',
    );
    expect(
      createHmac('sha256', initDataSecret('my-secret-token')).update('abc').digest('hex'),
    ).toBe('6ecc2e9b51f30dde6877ce374ede54eb626c84e78a5d9a9dcac54d2d248f6bde');
  });

  it("verifies @telegram-apps/init-data-node's initData, and signs its fields to the same hash", () => {
    const secret = initDataSecret(tmaToken);
    expect(verifyInitData(tma, secret, 60, at(1 + 10))).toEqual({
      telegramId: 222,
      authDate: at(1),
    });
    expect(() => verifyInitData(tma, initDataSecret(`${tmaToken}A`), 60, at(11))).toThrow(
      /signature does not match/,
    );
    expect(() => verifyInitData(tma, secret, 60, at(1 + 61))).toThrow(/expired/);
    const fields = Object.fromEntries([...new URLSearchParams(tma)].filter(([k]) => k !== 'hash'));
    expect(new URLSearchParams(signInitData(fields, secret)).get('hash')).toBe(
      '47cfa22e72b887cba90c9cb833c5ea0f599975b6ce7193741844b5c4a4228b40',
    );
  });
});

/**
 * Standard Webhooks' reference libraries' vectors (github.com/standard-webhooks/standard-webhooks,
 * libraries/javascript/src/webhook.test.ts and libraries/go/webhook_test.go): "sign function
 * works", "multi sig payload is valid", "invalid signature", "partial signature", "old/new
 * timestamp fails", "verification works with and without signature prefix".
 */
const sw = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  payload: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
  // The libraries' stand-in for someone else's signature.
  foreign: 'v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=',
};
const swHeaders = (signature = sw.signature, timestamp = sw.timestamp) => ({
  'webhook-id': sw.id,
  'webhook-timestamp': String(timestamp),
  'webhook-signature': signature,
});
// The tolerance the libraries (and we) use: five minutes.
const FIVE_MINUTES = 5 * 60;

describe('Standard Webhooks vectors: Replicate (src/providers/replicate.ts)', () => {
  const verify = (
    headers: Record<string, string>,
    now = sw.timestamp,
    secret = sw.secret,
    body = sw.payload,
  ) => verifyReplicateWebhook(secret, { headers, rawBody: Buffer.from(body) }, now);

  it('signs the vector to the published signature', () => {
    expect(
      signReplicateWebhook(sw.secret, sw.payload, { id: sw.id, timestamp: sw.timestamp }),
    ).toEqual(swHeaders());
  });

  it('verifies it with and without the whsec_ prefix, also among other signatures', () => {
    expect(() => verify(swHeaders())).not.toThrow();
    expect(() => verify(swHeaders(), sw.timestamp, sw.secret.slice('whsec_'.length))).not.toThrow();
    const multi = [sw.foreign, sw.foreign.replace('v1,', 'v2,'), sw.signature, sw.foreign];
    expect(() => verify(swHeaders(multi.join(' ')))).not.toThrow();
  });

  it('refuses what the libraries refuse', () => {
    for (const signature of [
      sw.foreign,
      'v1,dawfeoifkpqwoekfpqoekf',
      sw.signature.slice(0, 8),
      'v1,',
      sw.signature.replace('v1,', 'v2,'),
    ]) {
      expect(() => verify(swHeaders(signature)), signature).toThrow(/signature/);
    }
    expect(() => verify(swHeaders(), sw.timestamp + FIVE_MINUTES + 1)).toThrow(/timestamp/);
    expect(() => verify(swHeaders(), sw.timestamp - FIVE_MINUTES - 1)).toThrow(/timestamp/);
    expect(() => verify(swHeaders(), sw.timestamp, sw.secret, `${sw.payload} `)).toThrow(
      /signature/,
    );
    for (const header of ['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const) {
      const headers: Record<string, string> = swHeaders();
      delete headers[header];
      expect(() => verify(headers), header).toThrow(/missing/);
    }
  });
});

describe('Standard Webhooks vectors: delivery webhooks (src/delivery/webhook.ts)', () => {
  const nowMs = sw.timestamp * 1000;

  it('signs the vector to the published signature and verifies it', () => {
    expect(signDeliveryWebhook(sw.secret, sw.id, sw.timestamp, sw.payload)).toBe(sw.signature);
    expect(verifyDeliveryWebhook(sw.secret, swHeaders(), sw.payload, FIVE_MINUTES, nowMs)).toBe(
      true,
    );
    const multi = [sw.foreign, sw.foreign.replace('v1,', 'v2,'), sw.signature, sw.foreign];
    expect(
      verifyDeliveryWebhook(sw.secret, swHeaders(multi.join(' ')), sw.payload, FIVE_MINUTES, nowMs),
    ).toBe(true);
  });

  it('refuses what the libraries refuse', () => {
    const verify = (headers: Record<string, string>, now = nowMs) =>
      verifyDeliveryWebhook(sw.secret, headers, sw.payload, FIVE_MINUTES, now);
    for (const signature of [
      sw.foreign,
      'v1,dawfeoifkpqwoekfpqoekf',
      sw.signature.slice(0, 8),
      'v1,',
    ]) {
      expect(verify(swHeaders(signature)), signature).toBe(false);
    }
    expect(verify(swHeaders(), nowMs + (FIVE_MINUTES + 1) * 1000)).toBe(false);
    expect(verify(swHeaders(), nowMs - (FIVE_MINUTES + 1) * 1000)).toBe(false);
    expect(verify({ ...swHeaders(), 'webhook-timestamp': 'hello' })).toBe(false);
  });
});

describe('WaveSpeed webhook signature (src/providers/wavespeed.ts), computed with OpenSSL', () => {
  // https://wavespeed.ai/docs/docs-api/verifying_webhook: `v3,` + hex HMAC-SHA256 of
  // "{webhook-id}.{webhook-timestamp}.{raw body}", keyed with the secret minus `whsec_`, as text.
  const secret = 'whsec_5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH';
  const key = '5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH';
  const id = 'e3b0c44298fc1c149afbf4c8996fb924';
  const timestamp = 1735689600;
  const body =
    '{"id":"e3b0c44298fc1c149afbf4c8996fb924","model":"wavespeed-ai/flux-dev","status":"completed","outputs":["https://d1q70pf5vjeyhc.cloudfront.net/predictions/e3b0c442/1.png"],"error":""}';
  // printf '%s' "$id.$timestamp.$body" | openssl dgst -sha256 -hmac "$key"   (OpenSSL 3.0.19)
  const opensslHex = 'aa8452d33d9d88e730747a2c773a0c82a12a260b66be232c5dd0d28d17d87188';
  const headers = (signature: string) => ({
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signature,
  });
  const verify = (signature: string, signedBody = body) =>
    verifyWavespeedWebhook(
      secret,
      { headers: headers(signature), rawBody: Buffer.from(signedBody) },
      timestamp,
    );

  it('verifies the signature OpenSSL computed, and signs to it', () => {
    expect(() => verify(`v3,${opensslHex}`)).not.toThrow();
    expect(() => verify(`v3,${opensslHex.toUpperCase()}`)).not.toThrow();
    expect(signWavespeedWebhook(secret, body, { id, timestamp })).toEqual(
      headers(`v3,${opensslHex}`),
    );
    expect(() => verify(`v3,${opensslHex}`, `${body} `)).toThrow(/signature/);
    expect(() => verify(`v1,${opensslHex}`)).toThrow(/signature/);
    // Keyed with the base64-decoded secret (the Standard Webhooks way) it must not verify.
    const decodedKey = createHmac('sha256', Buffer.from(key, 'base64'))
      .update(`${id}.${timestamp}.${body}`)
      .digest('hex');
    expect(() => verify(`v3,${decodedKey}`)).toThrow(/signature/);
  });

  it.skipIf(!hasOpenssl())('matches OpenSSL run now', () => {
    const output = execFileSync('openssl', ['dgst', '-sha256', '-hmac', key], {
      input: `${id}.${timestamp}.${body}`,
    }).toString();
    expect(output.trim().split('= ').at(-1)).toBe(opensslHex);
  });
});

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
