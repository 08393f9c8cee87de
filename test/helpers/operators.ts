import type { FastifyInstance } from 'fastify';
import { signTelegramLogin, telegramLoginSecret } from '../../src/deps/telegram-login.ts';
import { TELEGRAM_BOT_TOKEN } from './app.ts';

/** Telegram ids of the operators the tests sign in as (each test file may add its own). */
export const ADMIN_OPERATOR_ID = 700_000_001;
export const SUPPORT_OPERATOR_ID = 700_000_002;

/** The settings that make them operators; pass to buildTestApp. */
export const operatorSettings = {
  ADMIN_TELEGRAM_IDS: String(ADMIN_OPERATOR_ID),
  SUPPORT_TELEGRAM_IDS: String(SUPPORT_OPERATOR_ID),
};

/** The Telegram Login Widget's fields for a user, signed with the test bot's token. */
export function widgetLogin(
  telegramId: number,
  authDate = Math.floor(Date.now() / 1000),
  botToken = TELEGRAM_BOT_TOKEN,
) {
  return signTelegramLogin(
    { id: telegramId, first_name: 'Operator', username: `op${telegramId}`, auth_date: authDate },
    telegramLoginSecret(botToken),
  );
}

/** Signs in through POST /admin/auth/telegram; answers the response. */
export function signIn(app: FastifyInstance, fields: object) {
  return app.inject({ method: 'POST', url: '/api/v1/admin/auth/telegram', payload: fields });
}

/** Signs the operator in and answers the Cookie header its session cookie makes. */
export async function operatorCookie(
  app: FastifyInstance,
  telegramId: number,
): Promise<{ cookie: string }> {
  const response = await signIn(app, widgetLogin(telegramId));
  if (response.statusCode !== 200) throw new Error(`sign-in failed: ${response.body}`);
  const setCookie = String(response.headers['set-cookie']);
  return { cookie: setCookie.split(';')[0] ?? '' };
}
