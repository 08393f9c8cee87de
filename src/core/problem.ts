import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type ErrorCode, errorCodes } from './error-codes.ts';
import { AppError } from './errors.ts';
import { REQUEST_ID_HEADER } from './headers.ts';

export const PROBLEM_MEDIA_TYPE = 'application/problem+json';
export const PROBLEM_CONTENT_TYPE = `${PROBLEM_MEDIA_TYPE}; charset=utf-8`;

interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance: string;
  code: string;
  requestId: string;
  [extension: string]: unknown;
}

/** The code of a 4xx Fastify (or a plugin) raises itself: bad JSON, wrong content type, too large… */
const codesForStatus: Partial<Record<number, ErrorCode>> = {
  400: 'bad_request',
  404: 'not_found',
  405: 'method_not_allowed',
  406: 'not_acceptable',
  408: 'request_timeout',
  413: 'payload_too_large',
  414: 'uri_too_long',
  415: 'unsupported_media_type',
  429: 'rate_limited',
  431: 'request_header_fields_too_large',
};

/** Any other 4xx the framework raises is a bad_request with its own status, under its usual title. */
const otherClientErrorTitles: Partial<Record<number, string>> = {
  401: errorCodes.unauthorized.title,
  403: errorCodes.forbidden.title,
  409: 'Conflict',
  422: errorCodes.validation_failed.title,
};

/** The code, status and title of a 4xx the framework raised. */
function clientError(status: number): { code: ErrorCode; status: number; title: string } {
  const code = codesForStatus[status];
  if (code) return { code, status, title: errorCodes[code].title };
  return {
    code: 'bad_request',
    status,
    title: otherClientErrorTitles[status] ?? errorCodes.bad_request.title,
  };
}

/** Fastify's maxParamLength: a longer path parameter is answered 414 uri_too_long. */
export const MAX_PARAM_LENGTH = 100;

/** A problem document: `code`'s status and title unless `shown` says otherwise. */
function problem(
  request: FastifyRequest,
  code: ErrorCode,
  detail: string | undefined,
  extensions: Record<string, unknown> = {},
  shown: { status: number; title: string } = errorCodes[code],
): ProblemDocument {
  return {
    ...extensions,
    type: `urn:problem:${code}`,
    title: shown.title,
    status: shown.status,
    ...(detail === undefined ? {} : { detail }),
    instance: request.url.split('?')[0] ?? request.url,
    code,
    requestId: request.id,
  };
}

type ValidationIssue = NonNullable<FastifyError['validation']>[number];

function fieldOf(issue: ValidationIssue, context: string | undefined): string {
  const path = issue.instancePath
    .split('/')
    .filter((part) => part !== '')
    .join('.');
  const missing = (issue.params as { missingProperty?: string }).missingProperty;
  const additional = (issue.params as { additionalProperty?: string }).additionalProperty;
  const leaf = missing ?? additional;
  return [context, path, leaf].filter((part) => part !== undefined && part !== '').join('.');
}

function messageOf(issue: ValidationIssue): string {
  if (issue.keyword === 'additionalProperties') return 'is not a known field';
  return issue.message ?? 'is invalid';
}

/**
 * Every body this API reads is JSON but an upload's (api/v1/uploads.ts): the 415 says which,
 * rather than only what it refused.
 */
function unsupportedMediaType(request: FastifyRequest): string {
  const given = request.headers['content-type'];
  if (request.routeOptions.url?.endsWith('/uploads')) {
    return `The body must be the image's bytes: send it with Content-Type image/png, image/jpeg, image/webp, image/gif or application/octet-stream${given ? ` (not ${given.split(';')[0]})` : ''}.`;
  }
  return `The body must be JSON: send it with Content-Type: application/json${given ? ` (not ${given.split(';')[0]})` : ''}.`;
}

/** Maps any error to a problem document: the one place where errors become HTTP responses. */
function toProblem(error: unknown, request: FastifyRequest): ProblemDocument {
  if (error instanceof AppError) {
    return problem(request, error.code, error.message, { ...error.extensions });
  }
  const fastifyError = error as Partial<FastifyError>;
  if (fastifyError.validation) {
    const errors = fastifyError.validation.map((issue) => ({
      field: fieldOf(issue, fastifyError.validationContext),
      message: messageOf(issue),
    }));
    return problem(
      request,
      'validation_failed',
      errors.map((e) => `${e.field} ${e.message}`).join('; '),
      { errors },
    );
  }
  if (lostConnection(error)) {
    return problem(
      request,
      'database_unavailable',
      'The database cannot be reached right now; retry in a few seconds.',
    );
  }
  const status = fastifyError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    // Fastify's own client errors (bad JSON, wrong content type, body too large) are safe to show.
    const { code, ...shown } = clientError(status);
    const detail = status === 415 ? unsupportedMediaType(request) : fastifyError.message;
    return problem(request, code, detail, {}, shown);
  }
  return problem(
    request,
    'internal_error',
    'An unexpected error occurred. Quote the request id when you report it.',
  );
}

/**
 * Whether the error is the database (or the network to it) being away — a restart, a failover —
 * rather than a bug: such a request is worth retrying, so it is a 503 with Retry-After, not a 500.
 * Drivers and Drizzle wrap the cause; it is looked for down the chain.
 */
function lostConnection(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    const candidate = current as { code?: unknown; message?: unknown; cause?: unknown };
    const code = typeof candidate.code === 'string' ? candidate.code : '';
    // SQLSTATE class 08 (connection exception), 57P01-03 (shutdown, crash, not yet accepting).
    if (/^08[0-9A-Z]{3}$/.test(code) || /^57P0[123]$/.test(code)) return true;
    if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH'].includes(code)) {
      return true;
    }
    const message = typeof candidate.message === 'string' ? candidate.message : '';
    if (
      /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/.test(
        message,
      )
    ) {
      return true;
    }
    current = candidate.cause;
  }
  return false;
}

function sendProblem(reply: FastifyReply, document: ProblemDocument): FastifyReply {
  return reply.code(document.status).type(PROBLEM_CONTENT_TYPE).send(document);
}

export function registerProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    const document = toProblem(error, request);
    if (document.status >= 500) {
      request.log.error({ err: error }, 'request failed');
    } else if (!(error instanceof AppError)) {
      request.log.info({ code: document.code, detail: document.detail }, 'request refused');
    }
    if (error instanceof AppError) {
      for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
    }
    if (document.code === 'database_unavailable') reply.header('retry-after', '5');
    return sendProblem(reply, document);
  });

  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      problem(request, 'not_found', `No route for ${request.method} ${request.url.split('?')[0]}`),
    ),
  );
}

/**
 * Fastify's frameworkErrors: what its router refuses before any route runs (a path that is not
 * percent-encoded UTF-8, a path parameter over MAX_PARAM_LENGTH) is a problem document too.
 */
export function answerFrameworkError(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  // No route ran, so neither did the hook that echoes the request id.
  reply.header(REQUEST_ID_HEADER, request.id);
  let document: ProblemDocument;
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    document = problem(
      request,
      'uri_too_long',
      `A path segment is longer than ${MAX_PARAM_LENGTH} characters.`,
    );
  } else if (error.code === 'FST_ERR_BAD_URL') {
    document = problem(request, 'invalid_url', 'The path is not valid percent-encoded UTF-8.');
  } else {
    document = toProblem(error, request);
  }
  request.log.info({ code: document.code, detail: document.detail }, 'request refused');
  return sendProblem(reply, document);
}

const clientErrors: Record<string, { status: number; detail: string }> = {
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, detail: 'The request did not arrive in time.' },
  HPE_HEADER_OVERFLOW: { status: 431, detail: 'The request headers are too large.' },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: { status: 413, detail: 'The chunk extensions are too large.' },
};

/**
 * Fastify's clientErrorHandler: a request Node's HTTP parser refuses (malformed HTTP) never
 * becomes a request, so the answer is written to the socket here, as a problem document.
 */
export function answerClientError(
  this: FastifyInstance,
  error: Error & { code?: string },
  socket: Socket,
): void {
  // A reset connection has nobody left to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const { status, detail } = clientErrors[error.code ?? ''] ?? {
    status: 400,
    detail: 'The request is not valid HTTP/1.1.',
  };
  const { code, title } = clientError(status);
  const requestId = randomUUID();
  const body = JSON.stringify({
    type: `urn:problem:${code}`,
    title,
    status,
    detail,
    code,
    requestId,
  });
  this.log.info({ requestId, code, err: error }, 'malformed request refused');
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
        `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        `${REQUEST_ID_HEADER}: ${requestId}\r\n` +
        'Connection: close\r\n\r\n' +
        body,
    );
  }
  socket.destroy(error);
}
