import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { REQUEST_ID_HEADER } from '../core/headers.ts';

/** A caller's id is kept when it is short and harmless in logs and headers; else we make one. */
const saneRequestId = /^[A-Za-z0-9._:-]{1,128}$/;

/** Fastify's genReqId: runs for every request before anything else. */
export function requestIdFor(request: IncomingMessage): string {
  const incoming = request.headers[REQUEST_ID_HEADER];
  if (typeof incoming === 'string' && saneRequestId.test(incoming)) return incoming;
  return randomUUID();
}

/** Echo the id on every response, errors included, so a caller can quote it. */
export function registerRequestIdEcho(app: FastifyInstance): void {
  app.addHook('onRequest', (request, reply, done) => {
    reply.header(REQUEST_ID_HEADER, request.id);
    done();
  });
}
