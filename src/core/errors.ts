import { type ErrorCode, errorCodes } from './error-codes.ts';

/**
 * One error model for the whole backend: domain code throws AppError with a stable `code`, whose
 * status and title come from the table of codes (core/error-codes.ts); the HTTP error handler
 * (core/problem.ts) renders it as application/problem+json.
 */
export class AppError extends Error {
  readonly status: number;
  readonly title: string;

  constructor(
    readonly code: ErrorCode,
    detail?: string,
    /** Extra members of the problem document (e.g. the balance on insufficient_credits). */
    readonly extensions: Readonly<Record<string, unknown>> = {},
    /** Response headers the problem needs (e.g. Retry-After). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(detail ?? errorCodes[code].title);
    this.name = 'AppError';
    this.status = errorCodes[code].status;
    this.title = errorCodes[code].title;
  }
}

export const unauthorized = (detail: string) =>
  new AppError('unauthorized', detail, {}, { 'www-authenticate': 'Bearer realm="api", tma' });

export const forbidden = (detail: string) => new AppError('forbidden', detail);
