import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import { Type } from 'typebox';
import type { Config } from '../../core/config.ts';
import { forbidden, unauthorized } from '../../core/errors.ts';
import {
  crossSiteRefusal,
  OPERATOR_SESSION_COOKIE,
  operatorOf,
  principalLabel,
  roleOf,
} from '../../deps/auth.ts';
import {
  TelegramLoginError,
  telegramLoginSecret,
  verifyTelegramLogin,
} from '../../deps/telegram-login.ts';
import { TelegramId } from '../../schemas/common.ts';
import { problemResponses } from '../../schemas/problem.ts';
import { openSession, operatorRole, revokeSession } from '../../services/operator-sessions.ts';
import { currentSettings } from '../../services/settings.ts';

/** Where the session cookie is sent: the admin routes, and nothing else. */
const COOKIE_PATH = '/api/v1/admin';

/** The operator session's cookie: HttpOnly, Secure, SameSite=Strict, the admin routes only. */
function setSessionCookie(reply: FastifyReply, token: string, maxAgeSeconds: number): void {
  reply.header(
    'set-cookie',
    `${OPERATOR_SESSION_COOKIE}=${token}; Max-Age=${maxAgeSeconds}; Path=${COOKIE_PATH}; HttpOnly; Secure; SameSite=Strict`,
  );
}

const Role = Type.Union([Type.Literal('admin'), Type.Literal('support')]);

const Me = Type.Object({
  actor: Type.String({
    description: 'As the audit log names the caller: operator:<telegram id> or admin:<token id>',
  }),
  telegram_id: Type.Union([Type.Null(), TelegramId], {
    description: 'The operator signed in with Telegram; null for an ADMIN_TOKENS token',
  }),
  role: Role,
  expires_at: Type.Union([Type.Null(), Type.String({ format: 'date-time' })], {
    description: 'When the session ends; null for a token',
  }),
});

const NoBody = Type.Object({}, { additionalProperties: false, description: '{} or no body' });

function loginSecret(config: Config): Buffer {
  if (!config.telegramBotToken) {
    throw unauthorized('Telegram Login is not enabled (TELEGRAM_BOT_TOKEN is not set).');
  }
  return telegramLoginSecret(config.telegramBotToken);
}

/** Operators sign in with Telegram, see who they are, and sign out. */
export const adminAuthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const config = app.deps.config;

  app.get(
    '/admin/auth/options',
    {
      schema: {
        operationId: 'adminGetSignInOptions',
        summary: 'How operators may sign in: the bot the Telegram Login Widget names, if any',
        description:
          'Public: what the operator panel needs to show its sign-in. telegram_login is null unless ' +
          'both TELEGRAM_BOT_TOKEN (which checks the widget) and TELEGRAM_BOT_USERNAME (which the ' +
          'widget names) are set.',
        tags: ['admin'],
        response: {
          200: Type.Object({
            telegram_login: Type.Union([
              Type.Null(),
              Type.Object({
                bot_username: Type.String({ description: 'The bot, without @' }),
              }),
            ]),
          }),
          ...problemResponses(429),
        },
      },
    },
    async () => {
      const botUsername = config.operators.loginBotUsername;
      return {
        telegram_login:
          config.telegramBotToken && botUsername ? { bot_username: botUsername } : null,
      };
    },
  );

  app.post(
    '/admin/auth/telegram',
    {
      schema: {
        operationId: 'adminSignIn',
        summary: 'Sign an operator in with the Telegram Login Widget: opens a session (a cookie)',
        description:
          "Post the widget's fields as Telegram gave them. The hash must be Telegram's signature " +
          '(HMAC-SHA256 under SHA-256 of the bot token), auth_date at most ' +
          'OPERATOR_LOGIN_MAX_AGE_SECONDS old (401 otherwise), and the id in ADMIN_TELEGRAM_IDS or ' +
          'SUPPORT_TELEGRAM_IDS (403 otherwise). Answers the session and sets its cookie ' +
          `(${OPERATOR_SESSION_COOKIE}: HttpOnly, Secure, SameSite=Strict, Path=${COOKIE_PATH}, ` +
          'Max-Age OPERATOR_SESSION_SECONDS), which the admin routes then accept. Recorded in the ' +
          'audit log (operator.login).',
        tags: ['admin'],
        body: Type.Object(
          {
            id: TelegramId,
            first_name: Type.Optional(Type.String({ maxLength: 256 })),
            last_name: Type.Optional(Type.String({ maxLength: 256 })),
            username: Type.Optional(Type.String({ maxLength: 64 })),
            photo_url: Type.Optional(Type.String({ maxLength: 2048 })),
            auth_date: Type.Integer({ minimum: 1, description: 'Unix time of the authorization' }),
            hash: Type.String({ maxLength: 128, description: "Telegram's signature (hex)" }),
          },
          { additionalProperties: false },
        ),
        response: { 200: Me, ...problemResponses(401, 403, 422, 429) },
      },
    },
    async (request, reply) => {
      const crossSite = crossSiteRefusal(request, config);
      if (crossSite) throw crossSite;
      // A refused login counts against the address, as a refused token does (AUTH_FAILURE_LIMIT).
      const { telegramId } = await app.checkCredential(request, () => {
        try {
          return verifyTelegramLogin(
            request.body,
            loginSecret(config),
            config.operators.loginMaxAgeSeconds,
          );
        } catch (error) {
          if (error instanceof TelegramLoginError) {
            throw unauthorized(`Telegram Login refused: ${error.message}.`);
          }
          throw error;
        }
      });
      const role = operatorRole(await currentSettings(app.deps.services), telegramId);
      if (role === null) throw forbidden('This Telegram account is not an operator.');
      const { token, session } = await openSession(app.deps.services, {
        telegramId,
        role,
        requestId: request.id,
      });
      setSessionCookie(reply, token, config.operators.sessionSeconds);
      return {
        actor: `operator:${telegramId}`,
        telegram_id: telegramId,
        role,
        expires_at: session.expiresAt,
      };
    },
  );

  app.get(
    '/admin/auth/me',
    {
      config: { access: 'support' },
      schema: {
        operationId: 'adminGetSession',
        summary: 'Who the caller is: the operator, its role as the settings say now, its session',
        tags: ['admin'],
        response: { 200: Me, ...problemResponses(401, 403, 429) },
      },
    },
    async (request) => {
      const principal = request.principal;
      const role = roleOf(principal);
      if (principal === null || role === null) throw forbidden('This endpoint is for operators.');
      const operator = principal.kind === 'operator' ? principal : null;
      return {
        actor: principalLabel(principal),
        telegram_id: operator?.telegramId ?? null,
        role,
        expires_at: operator?.expiresAt ?? null,
      };
    },
  );

  app.post(
    '/admin/auth/logout',
    {
      config: { access: 'support' },
      schema: {
        operationId: 'adminSignOut',
        summary: "End the operator's session: its cookie no longer opens anything",
        description:
          'Revokes the session on the server and clears the cookie. A token caller has no session: ' +
          'nothing is revoked. Recorded in the audit log (operator.logout).',
        tags: ['admin'],
        body: NoBody,
        response: {
          200: Type.Object({
            revoked: Type.Boolean({ description: 'A session was ended' }),
          }),
          ...problemResponses(401, 403, 422, 429),
        },
      },
      preValidation: (request, _reply, done) => {
        request.body ??= {};
        done();
      },
    },
    async (request, reply) => {
      const principal = request.principal;
      if (principal?.kind !== 'operator') return { revoked: false };
      await revokeSession(app.deps.services, principal.sessionId, operatorOf(request));
      setSessionCookie(reply, '', 0);
      return { revoked: true };
    },
  );
};
