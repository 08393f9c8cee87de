import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../core/errors.ts';
import { PROBLEM_CONTENT_TYPE } from '../core/problem.ts';
import { withHook } from '../core/route-hooks.ts';
import { principalLabel } from '../deps/auth.ts';
import {
  claimIdempotencyKey,
  completeIdempotencyKey,
  releaseIdempotencyKey,
  requestFingerprint,
} from '../services/idempotency.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route creates effects and honours an Idempotency-Key header. */
    idempotent?: boolean;
  }
  interface FastifyRequest {
    /** The claimed key; `effectId` names, stably across retries, what the request creates. */
    idempotencyClaim: { scope: string; key: string; effectId: string } | null;
  }
}

const IDEMPOTENCY_HEADER = 'idempotency-key';
/** A duplicate arriving while the first request runs waits this long for its answer. */
const WAIT_FOR_FIRST_MS = 5_000;
const saneKey = /^[\x21-\x7e]{1,255}$/;

function keyOf(request: FastifyRequest): string | null {
  const raw = request.headers[IDEMPOTENCY_HEADER];
  if (raw === undefined) return null;
  if (typeof raw !== 'string' || !saneKey.test(raw)) {
    throw new AppError(
      'invalid_idempotency_key',
      'An Idempotency-Key is 1 to 255 visible ASCII characters, e.g. a UUID.',
    );
  }
  return raw;
}

/**
 * Idempotency-Key for effect-creating routes (config.idempotent); see services/idempotency.ts.
 * The hooks are attached to those routes only.
 */
export function registerIdempotency(app: FastifyInstance): void {
  app.decorateRequest('idempotencyClaim', null);

  // After validation (and the auth checks): a request refused earlier never claims a key.
  const claimKey = async (request: FastifyRequest, reply: FastifyReply) => {
    const key = keyOf(request);
    if (key === null) return;
    const scope = request.principal ? principalLabel(request.principal) : `ip:${request.ip}`;
    const claim = await claimIdempotencyKey(app.deps.services.db, {
      scope,
      key,
      fingerprint: requestFingerprint(
        request.method,
        request.url.split('?')[0] ?? '',
        request.body,
      ),
      ttlHours: app.deps.config.idempotencyKeyTtlHours,
      waitMs: WAIT_FOR_FIRST_MS,
    });
    if (claim.outcome === 'claimed') {
      request.idempotencyClaim = { scope, key, effectId: claim.effectId };
      return;
    }
    return reply
      .code(claim.status)
      .header('idempotent-replayed', 'true')
      .type(claim.status >= 400 ? PROBLEM_CONTENT_TYPE : 'application/json; charset=utf-8')
      .send(claim.body);
  };

  const recordAnswer = async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const claim = request.idempotencyClaim;
    if (!claim) return payload;
    request.idempotencyClaim = null;
    try {
      if (reply.statusCode >= 500 || typeof payload !== 'string') {
        await releaseIdempotencyKey(app.deps.services.db, claim);
      } else {
        await completeIdempotencyKey(app.deps.services.db, {
          ...claim,
          status: reply.statusCode,
          body: payload,
        });
      }
    } catch (error) {
      // The effect is done and this is its answer: send it. The key stays claimed until its
      // lease ends; a retry then takes it over and finds the same effect (it is keyed by the
      // claim), so nothing is made twice.
      request.log.warn({ err: error }, 'Idempotency-Key answer not recorded');
    }
    return payload;
  };

  app.addHook('onRoute', (route) => {
    if (!route.config?.idempotent) return;
    route.preHandler = withHook(route.preHandler, claimKey);
    route.onSend = withHook(route.onSend, recordAnswer);
  });
}
