/**
 * One error model for the whole backend: domain code throws AppError with a stable `code`;
 * the HTTP error handler (core/problem.ts) renders it as application/problem+json.
 */
export class AppError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    readonly title: string,
    detail?: string,
    /** Extra members of the problem document (e.g. the balance on insufficient_credits). */
    readonly extensions: Readonly<Record<string, unknown>> = {},
    /** Response headers the problem needs (e.g. Retry-After). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(detail ?? title);
    this.name = 'AppError';
  }
}

export const notFound = (what: string, detail?: string) =>
  new AppError(`${what}_not_found`, 404, `${humanise(what)} not found`, detail);

export const unauthorized = (detail: string) =>
  new AppError(
    'unauthorized',
    401,
    'Authentication required',
    detail,
    {},
    {
      'www-authenticate': 'Bearer realm="api", tma',
    },
  );

export const forbidden = (detail: string) => new AppError('forbidden', 403, 'Forbidden', detail);

function humanise(snake: string): string {
  const words = snake.replaceAll('_', ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}
