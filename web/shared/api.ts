import createClient, { type Middleware } from 'openapi-fetch';
import type { paths } from '../../src/api-client/schema.ts';

/**
 * The browser's view of the API: the same generated client as the bot, on this origin. The
 * operator's session travels as its HttpOnly cookie (same-origin, never readable by scripts); a
 * caller that has a bearer credential instead gives it through `authorization`.
 */

type JsonOf<T> = T extends { content: { 'application/json': infer Body } } ? Body : never;

/** The JSON a route answers with `Status`. */
export type Ok<
  Path extends keyof paths,
  Method extends keyof paths[Path],
  Status extends number = 200,
> = paths[Path][Method] extends { responses: infer R }
  ? Status extends keyof R
    ? JsonOf<R[Status]>
    : never
  : never;

/** One bad field of a validation_failed problem, as the API names it (`body.prices.0.credits`). */
export interface FieldError {
  field: string;
  message: string;
}

/** The API refused or failed: its problem document's status, code, detail and bad fields. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly errors: readonly FieldError[] = [],
  ) {
    super(detail);
    this.name = 'ApiError';
  }
}

interface ProblemBody {
  code?: unknown;
  detail?: unknown;
  title?: unknown;
  errors?: unknown;
}

function isFieldError(value: unknown): value is FieldError {
  if (typeof value !== 'object' || value === null) return false;
  const { field, message } = value as Record<string, unknown>;
  return typeof field === 'string' && typeof message === 'string';
}

/** An ApiError from a failed answer's problem document (or whatever came instead of one). */
export function apiError(status: number, body: unknown): ApiError {
  const problem = (typeof body === 'object' && body !== null ? body : {}) as ProblemBody;
  const code = typeof problem.code === 'string' ? problem.code : 'unknown';
  const detail =
    typeof problem.detail === 'string'
      ? problem.detail
      : typeof problem.title === 'string'
        ? problem.title
        : `The API answered ${status}.`;
  const errors = Array.isArray(problem.errors) ? problem.errors.filter(isFieldError) : [];
  return new ApiError(status, code, detail, errors);
}

export function createApi(authorization: () => string | null) {
  const client = createClient<paths>({
    baseUrl: window.location.origin,
    credentials: 'same-origin',
  });
  const withAuthorization: Middleware = {
    onRequest({ request }) {
      const value = authorization();
      if (value !== null) request.headers.set('authorization', value);
      return request;
    },
  };
  client.use(withAuthorization);
  return client;
}

export type Api = ReturnType<typeof createApi>;

/** The data of an openapi-fetch answer, or its problem thrown as an ApiError. */
export function dataOf<T>(answer: { data?: T; error?: unknown; response: Response }): T {
  if (answer.data !== undefined && answer.response.ok) return answer.data;
  throw apiError(answer.response.status, answer.error);
}
