import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from './errors.ts';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance: string;
  code: string;
  requestId: string;
  [extension: string]: unknown;
}

const titles: Record<number, string> = {
  400: 'Bad request',
  401: 'Authentication required',
  403: 'Forbidden',
  404: 'Not found',
  405: 'Method not allowed',
  406: 'Not acceptable',
  409: 'Conflict',
  413: 'Payload too large',
  415: 'Unsupported media type',
  422: 'Validation failed',
  429: 'Too many requests',
  500: 'Internal server error',
  503: 'Service unavailable',
};

const codesForStatus: Record<number, string> = {
  400: 'bad_request',
  404: 'not_found',
  405: 'method_not_allowed',
  406: 'not_acceptable',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
};

function problem(
  request: FastifyRequest,
  status: number,
  code: string,
  title: string,
  detail: string | undefined,
  extensions: Record<string, unknown> = {},
): ProblemDocument {
  return {
    ...extensions,
    type: `urn:problem:${code}`,
    title,
    status,
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

/** Maps any error to a problem document: the one place where errors become HTTP responses. */
export function toProblem(error: unknown, request: FastifyRequest): ProblemDocument {
  if (error instanceof AppError) {
    return problem(request, error.status, error.code, error.title, error.message, {
      ...error.extensions,
    });
  }
  const fastifyError = error as Partial<FastifyError>;
  if (fastifyError.validation) {
    const errors = fastifyError.validation.map((issue) => ({
      field: fieldOf(issue, fastifyError.validationContext),
      message: issue.message ?? 'is invalid',
    }));
    return problem(
      request,
      422,
      'validation_failed',
      titles[422] ?? 'Validation failed',
      errors.map((e) => `${e.field} ${e.message}`).join('; '),
      { errors },
    );
  }
  const status = fastifyError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    // Fastify's own client errors (bad JSON, wrong content type, body too large) are safe to show.
    return problem(
      request,
      status,
      codesForStatus[status] ?? 'bad_request',
      titles[status] ?? 'Bad request',
      fastifyError.message,
    );
  }
  return problem(
    request,
    500,
    'internal_error',
    titles[500] ?? 'Internal server error',
    'An unexpected error occurred. Quote the request id when you report it.',
  );
}

export function sendProblem(reply: FastifyReply, document: ProblemDocument): FastifyReply {
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
    return sendProblem(reply, document);
  });

  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      problem(
        request,
        404,
        'not_found',
        'Not found',
        `No route for ${request.method} ${request.url.split('?')[0]}`,
      ),
    ),
  );
}
