/** The header a request's id travels in: a caller's sane one is kept, and every answer echoes it. */
export const REQUEST_ID_HEADER = 'x-request-id';
