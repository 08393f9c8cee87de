/** The PostgreSQL error under whatever the driver or Drizzle wrapped it in. */
export interface PgErrorInfo {
  code: string;
  detail?: string;
  constraint?: string;
}

export function pgError(error: unknown): PgErrorInfo | null {
  for (let current = error, depth = 0; current && depth < 4; depth++) {
    const candidate = current as {
      code?: unknown;
      detail?: unknown;
      constraint?: unknown;
      cause?: unknown;
    };
    if (typeof candidate.code === 'string' && /^[0-9A-Z]{5}$/.test(candidate.code)) {
      return {
        code: candidate.code,
        ...(typeof candidate.detail === 'string' ? { detail: candidate.detail } : {}),
        ...(typeof candidate.constraint === 'string' ? { constraint: candidate.constraint } : {}),
      };
    }
    current = candidate.cause;
  }
  return null;
}

/**
 * SQLSTATEs this code reacts to. C0001 and C0002 are ours: the ledger trigger's "balance below
 * zero" and generation_requests' "the user is banned" (migration 0011), each with JSON in DETAIL.
 */
export const SQLSTATE = {
  insufficientCredits: 'C0001',
  userBanned: 'C0002',
  uniqueViolation: '23505',
  foreignKeyViolation: '23503',
} as const;
