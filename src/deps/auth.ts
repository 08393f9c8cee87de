import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../core/config.ts';
import { AppError, forbidden, unauthorized } from '../core/errors.ts';
import { withHook } from '../core/route-hooks.ts';
import type { OperatorRole } from '../db/schema/index.ts';
import type { Operator } from '../services/audit.ts';
import { findSession, operatorRole } from '../services/operator-sessions.ts';
import { currentSettings } from '../services/settings.ts';
import type { AuthFailureLimiter } from './auth-failures.ts';
import { InitDataError, initDataSecret, verifyInitData } from './telegram-init-data.ts';

/**
 * Who is calling. The bot (API_TOKENS) acts for any user; an admin (ADMIN_TOKENS) can do all the
 * bot can and the admin routes; a Mini App user (Telegram initData) acts only for itself; an
 * operator is a person signed in with Telegram (a session cookie), whose role — admin or support,
 * by ADMIN_TELEGRAM_IDS and SUPPORT_TELEGRAM_IDS as they are now — decides which admin routes it
 * reaches. An operator's cookie is read on the admin routes only.
 */
export type Principal =
  | { kind: 'bot'; tokenId: string }
  | { kind: 'admin'; tokenId: string }
  | { kind: 'miniapp'; telegramId: number }
  | {
      kind: 'operator';
      telegramId: number;
      role: OperatorRole;
      sessionId: number;
      expiresAt: string;
    };

/**
 * What a route requires, declared in its `config.access`: `user` admits the bot, admins and a Mini
 * App user acting for itself; `bot` admits the bot and admins only (e.g. recording a payment,
 * which a Mini App user must never be able to assert about itself); `support` admits admin tokens
 * and operators of either role (reads, credit adjustments within SUPPORT_CREDIT_LIMIT); `admin`
 * admits admin tokens and operators whose role is admin.
 */
export type Access = 'public' | 'user' | 'bot' | 'support' | 'admin';

/** The cookie that carries an operator's session (Path=/api/v1/admin). */
export const OPERATOR_SESSION_COOKIE = 'operator_session';

/**
 * How a `user` route keeps a Mini App user to its own data, declared in its `config.ownership`.
 * `telegram_id` (the default): the telegram_id in the path or the body must be the caller's, and a
 * Mini App request that names none is refused (403). `handler`: the route names no telegram_id
 * (e.g. a generation by its id) and its handler checks the owner of what it found with
 * `callerMayActFor`; a successful answer to a Mini App user whose handler did not is refused (403).
 */
export type Ownership = 'telegram_id' | 'handler';

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
    ownership?: Ownership;
  }
  interface FastifyInstance {
    /**
     * For a route that checks a credential of its own (the Telegram Login): 429 while the address
     * is past AUTH_FAILURE_LIMIT, and a 401 of `check` counted as a failed authentication.
     */
    checkCredential<T>(request: FastifyRequest, check: () => T | Promise<T>): Promise<T>;
  }
  interface FastifyRequest {
    principal: Principal | null;
    /** Set by callerMayActFor: the handler of an `ownership: 'handler'` route checked the owner. */
    ownershipChecked: boolean;
  }
}

/**
 * Whether the caller may act for (or see what belongs to) `telegramId`: the bot and admins for
 * anyone, a Mini App user for itself only. Records that the owner was checked.
 */
export function callerMayActFor(request: FastifyRequest, telegramId: number): boolean {
  request.ownershipChecked = true;
  const principal = request.principal;
  return (
    principal !== null && (principal.kind !== 'miniapp' || principal.telegramId === telegramId)
  );
}

/** Names a token in logs and rate-limit keys without revealing it. */
export function tokenId(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 12);
}

export function principalLabel(principal: Principal): string {
  switch (principal.kind) {
    case 'miniapp':
      return `tma:${principal.telegramId}`;
    case 'operator':
      return `operator:${principal.telegramId}`;
    default:
      return `${principal.kind}:${principal.tokenId}`;
  }
}

/** An operator's role: an admin token's is admin; bots and Mini App users have none. */
export function roleOf(principal: Principal | null): OperatorRole | null {
  if (principal?.kind === 'admin') return 'admin';
  if (principal?.kind === 'operator') return principal.role;
  return null;
}

/**
 * Who makes an admin write, as the audit log records it: the caller's label (`admin:<token id>`,
 * `operator:<telegram id>`), its role and the request's id. Only on `support` and `admin` routes.
 */
export function operatorOf(request: FastifyRequest): Operator {
  const role = roleOf(request.principal);
  if (request.principal === null || role === null) {
    throw new Error('operatorOf called for a caller that is not an operator');
  }
  return { actor: principalLabel(request.principal), role, requestId: request.id };
}

/** The value of one cookie of a Cookie header, or null. */
function cookieValue(header: string | undefined, name: string): string | null {
  if (header === undefined) return null;
  for (const pair of header.split(';')) {
    const equals = pair.indexOf('=');
    if (equals !== -1 && pair.slice(0, equals).trim() === name) {
      return pair.slice(equals + 1).trim();
    }
  }
  return null;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Cross-site request forgery, beyond SameSite=Strict: a request that changes something and is
 * authenticated by the cookie alone must come from this site. Browsers say where a request comes
 * from in Sec-Fetch-Site and Origin; a request with neither is no browser's (and carries no
 * cookie a browser was made to send).
 */
export function crossSiteRefusal(request: FastifyRequest, config: Config): AppError | null {
  if (SAFE_METHODS.has(request.method)) return null;
  if (request.headers['sec-fetch-site'] === 'cross-site') {
    return forbidden('A cross-site request cannot use an operator session.');
  }
  const origin = request.headers.origin;
  if (origin === undefined) return null;
  let host: string | null = null;
  try {
    host = new URL(origin).host;
  } catch {
    host = null;
  }
  if (host === request.host || config.corsOrigins.includes(origin)) return null;
  return forbidden(`A request from ${origin} cannot use an operator session.`);
}

/**
 * Tokens are looked up by their SHA-256: the lookup's timing depends on the hash of what the
 * caller sent, never on how much of a real token it guessed.
 */
function tokenTable(tokens: readonly string[]): Map<string, string> {
  return new Map(
    tokens.map((token) => [createHash('sha256').update(token).digest('hex'), tokenId(token)]),
  );
}

function tooManyFailures(retryAfterSeconds: number, limit: number): AppError {
  return new AppError(
    'too_many_failed_authentications',
    `More than ${limit} failed authentications from this address in a minute; retry in ${retryAfterSeconds} s.`,
    { retryAfterSeconds },
    { 'retry-after': String(retryAfterSeconds) },
  );
}

/**
 * `failures` (null: no limit) counts the failed authentications of each client address; past its
 * limit the address is answered 429 before its credentials are looked at.
 */
export function registerAuth(
  app: FastifyInstance,
  config: Config,
  failures: AuthFailureLimiter | null = null,
): void {
  const botTokens = tokenTable(config.apiTokens);
  const adminTokens = tokenTable(config.adminTokens);
  const miniAppSecret = config.telegramBotToken ? initDataSecret(config.telegramBotToken) : null;

  /** The operator whose session the cookie holds, with its role as the settings say now. */
  async function authenticateSession(token: string): Promise<Principal> {
    const session = await findSession(app.deps.services.db, token);
    if (session === null) {
      throw unauthorized('The operator session has ended (expired or logged out): sign in again.');
    }
    const role = operatorRole(await currentSettings(app.deps.services), session.telegramId);
    if (role === null) throw unauthorized('This Telegram account is no longer an operator.');
    return {
      kind: 'operator',
      telegramId: session.telegramId,
      role,
      sessionId: session.id,
      expiresAt: session.expiresAt,
    };
  }

  function authenticate(header: string): Principal {
    const space = header.indexOf(' ');
    const scheme = (space === -1 ? header : header.slice(0, space)).toLowerCase();
    const credentials = space === -1 ? '' : header.slice(space + 1).trim();
    if (scheme === 'bearer' && credentials !== '') {
      const digest = createHash('sha256').update(credentials).digest('hex');
      const adminId = adminTokens.get(digest);
      if (adminId) return { kind: 'admin', tokenId: adminId };
      const botId = botTokens.get(digest);
      if (botId) return { kind: 'bot', tokenId: botId };
      throw unauthorized('The bearer token is not valid.');
    }
    if (scheme === 'tma' && credentials !== '') {
      if (!miniAppSecret) {
        throw unauthorized(
          'Mini App authentication is not enabled (TELEGRAM_BOT_TOKEN is not set).',
        );
      }
      try {
        const { telegramId } = verifyInitData(
          credentials,
          miniAppSecret,
          config.telegramInitDataMaxAgeSeconds,
        );
        return { kind: 'miniapp', telegramId };
      } catch (error) {
        if (error instanceof InitDataError)
          throw unauthorized(`Telegram initData rejected: ${error.message}.`);
        throw error;
      }
    }
    throw unauthorized('Use "Authorization: Bearer <token>" or "Authorization: tma <initData>".');
  }

  app.decorate(
    'checkCredential',
    async <T>(request: FastifyRequest, check: () => T | Promise<T>): Promise<T> => {
      const wait = failures?.retryAfterSeconds(request.ip) ?? 0;
      if (wait > 0) throw tooManyFailures(wait, config.authFailureLimit);
      try {
        return await check();
      } catch (error) {
        if (!failures || !(error instanceof AppError) || error.status !== 401) throw error;
        const blocked = await failures.failed(request.ip);
        throw blocked > 0 ? tooManyFailures(blocked, config.authFailureLimit) : error;
      }
    },
  );

  app.decorateRequest('principal', null);
  app.decorateRequest('ownershipChecked', false);

  /** A refused credential counts against the address; past the limit the answer is 429. */
  function refuse(request: FastifyRequest, error: unknown, done: (error?: Error) => void): void {
    if (!failures || !(error instanceof AppError) || error.status !== 401) {
      done(error as Error);
      return;
    }
    failures.failed(request.ip).then(
      (blocked) => done(blocked > 0 ? tooManyFailures(blocked, config.authFailureLimit) : error),
      () => done(error as Error),
    );
  }

  // Who the caller is, before anything else looks at the request (the rate limit keys on it).
  app.addHook('onRequest', (request, _reply, done) => {
    const access = request.routeOptions.config.access ?? 'public';
    const header = request.headers.authorization;
    try {
      if (header === undefined || header === '') {
        const session =
          access === 'admin' || access === 'support'
            ? cookieValue(request.headers.cookie, OPERATOR_SESSION_COOKIE)
            : null;
        if (session === null) {
          if (access !== 'public')
            throw unauthorized('This endpoint needs an Authorization header.');
          done();
          return;
        }
        const wait = failures?.retryAfterSeconds(request.ip) ?? 0;
        if (wait > 0) throw tooManyFailures(wait, config.authFailureLimit);
        const csrf = crossSiteRefusal(request, config);
        if (csrf) throw csrf;
        authenticateSession(session).then(
          (principal) => {
            request.principal = principal;
            done(accessRefusal(access, principal) ?? undefined);
          },
          (error: unknown) => refuse(request, error, done),
        );
        return;
      }
      const wait = failures?.retryAfterSeconds(request.ip) ?? 0;
      if (wait > 0) throw tooManyFailures(wait, config.authFailureLimit);
      try {
        // A bad credential on a public route is still refused: the caller believes it is signed in.
        request.principal = authenticate(header);
      } catch (error) {
        refuse(request, error, done);
        return;
      }
      const refusal = accessRefusal(access, request.principal);
      if (refusal) throw refusal;
      done();
    } catch (error) {
      done(error as Error);
    }
  });

  // A Mini App user may only act for its own telegram_id, wherever the route takes it from; where
  // it cannot be checked, the request is refused (fail closed). Added to the routes that act for a
  // user only, so the others do not pay for the hooks.
  app.addHook('onRoute', (route) => {
    if (route.config?.access !== 'user') return;
    const ownership: Ownership = route.config.ownership ?? 'telegram_id';
    if (ownership === 'handler') {
      const checked = (
        request: FastifyRequest,
        reply: FastifyReply,
        payload: unknown,
        done: (error: Error | null, payload?: unknown) => void,
      ) => {
        if (
          request.principal?.kind === 'miniapp' &&
          reply.statusCode < 400 &&
          !request.ownershipChecked
        ) {
          done(forbidden('This endpoint did not check that the Mini App user owns the resource.'));
          return;
        }
        done(null, payload);
      };
      route.onSend = withHook(route.onSend, checked);
      return;
    }
    const sameUser = (request: FastifyRequest, _reply: unknown, done: (error?: Error) => void) => {
      const principal = request.principal;
      if (principal?.kind !== 'miniapp') {
        done();
        return;
      }
      const target = telegramIdOf(request);
      if (target === null) {
        done(forbidden('This endpoint names no telegram_id, so a Mini App user cannot call it.'));
        return;
      }
      if (target !== principal.telegramId) {
        done(forbidden('A Mini App user can only act for its own telegram_id.'));
        return;
      }
      done();
    };
    route.preHandler = withHook(route.preHandler, sameUser);
  });
}

/** Why this caller may not use a route of this access level, or null when it may. */
function accessRefusal(access: Access, principal: Principal): AppError | null {
  switch (access) {
    case 'admin':
      return roleOf(principal) === 'admin'
        ? null
        : forbidden(
            principal.kind === 'operator'
              ? 'This endpoint is for administrators, not for support operators.'
              : 'This endpoint is for administrators.',
          );
    case 'support':
      return roleOf(principal) === null ? forbidden('This endpoint is for operators.') : null;
    case 'bot':
      return principal.kind === 'miniapp'
        ? forbidden('This endpoint is for the bot, not for Mini App users.')
        : null;
    default:
      return null;
  }
}

/** The telegram_id a request acts for: from the path, else from the body. */
export function telegramIdOf(request: FastifyRequest): number | null {
  const fromParams = (request.params as { telegram_id?: unknown } | undefined)?.telegram_id;
  const fromBody = (request.body as { telegram_id?: unknown } | undefined)?.telegram_id;
  const value = fromParams ?? fromBody;
  if (value === undefined || value === null) return null;
  const number = Number(value);
  return Number.isSafeInteger(number) ? number : null;
}
