import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
import type { Queryable } from '../db/client.ts';
import { selectRows } from '../db/rows.ts';

/**
 * Stripe's Idempotency-Key semantics: the same key with the same request replays the first
 * response; with a different request it is refused (409); while the first is still running (past
 * a short wait) the retry is refused (409) too. Effects themselves are also unique in the database (ledger and
 * payment keys), so even a crash between the effect and recording its response cannot double it:
 * a claim left running past its lease is taken over and the effect answers "already done".
 */

const IDEMPOTENCY_LEASE_SECONDS = 60;

export type Claim =
  | { outcome: 'claimed'; effectId: string }
  | { outcome: 'replay'; status: number; body: string };

/** What "the same request" means: method, path and body with keys in a stable order. */
export function requestFingerprint(method: string, path: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method} ${path}\n${stableJson(body)}`)
    .digest('hex');
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, inner]) => inner !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, inner]) => `${JSON.stringify(key)}:${stableJson(inner)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export interface ClaimInput {
  scope: string;
  key: string;
  fingerprint: string;
  ttlHours: number;
  /** How long a retry waits for the first request to finish before being told it is in progress. */
  waitMs?: number;
}

/**
 * Claims the key for this request, or answers with the first request's response. A retry that
 * arrives while the first is still running waits for it (up to `waitMs`), so a burst of
 * duplicates gets one identical answer rather than a mix of answers and 409s.
 */
export async function claimIdempotencyKey(db: Queryable, input: ClaimInput): Promise<Claim> {
  const deadline = Date.now() + (input.waitMs ?? 0);
  for (let pause = 10; ; pause = Math.min(pause * 2, 200)) {
    const claim = await tryClaim(db, input);
    if (claim !== 'in_progress') return claim;
    if (Date.now() + pause > deadline) {
      throw new AppError(
        'idempotency_request_in_progress',
        'A request with this Idempotency-Key is still being processed; retry shortly.',
        {},
        { 'retry-after': '1' },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}

/**
 * Names the effect a claimed key stands for: the same for a retry that takes over a crashed
 * attempt's claim, another once the key has expired and is used afresh. Effects made under the
 * key are keyed by it in the database (a generation's id, a ledger entry's key), so the effect
 * and the key's answer are one fact even when the process dies between writing the two.
 */
function effectIdOf(input: ClaimInput, claimedAt: string): string {
  return createHash('sha256')
    .update(`${input.scope}\n${input.key}\n${input.fingerprint}\n${claimedAt}`)
    .digest('hex');
}

async function tryClaim(db: Queryable, input: ClaimInput): Promise<Claim | 'in_progress'> {
  // A claim left running past its lease (the first attempt crashed) is taken over keeping its
  // created_at, so the retry names the same effect; an expired key starts a new one.
  const claimed = await selectRows<{ claimed_at: string }>(
    db,
    sql`INSERT INTO idempotency_keys (scope, key, request_hash, locked_until)
        VALUES (${input.scope}, ${input.key}, ${input.fingerprint},
                now() + make_interval(secs => ${IDEMPOTENCY_LEASE_SECONDS}))
        ON CONFLICT (scope, key) DO UPDATE SET
          request_hash = EXCLUDED.request_hash, locked_until = EXCLUDED.locked_until,
          created_at = CASE
            WHEN idempotency_keys.created_at < now() - make_interval(hours => ${input.ttlHours})
            THEN now() ELSE idempotency_keys.created_at END,
          response_status = NULL, response_body = NULL, completed_at = NULL
        WHERE idempotency_keys.created_at < now() - make_interval(hours => ${input.ttlHours})
           OR (idempotency_keys.completed_at IS NULL
               AND idempotency_keys.locked_until < now()
               AND idempotency_keys.request_hash = EXCLUDED.request_hash)
        RETURNING to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') AS claimed_at`,
  );
  const [claim] = claimed;
  if (claim) return { outcome: 'claimed', effectId: effectIdOf(input, claim.claimed_at) };

  const [existing] = await selectRows<{
    request_hash: string;
    response_status: number | null;
    response_body: string | null;
  }>(
    db,
    sql`SELECT request_hash, response_status, response_body FROM idempotency_keys
        WHERE scope = ${input.scope} AND key = ${input.key}`,
  );
  // Released by a failed first attempt between our two statements: claim again.
  if (!existing) return 'in_progress';
  if (existing.request_hash !== input.fingerprint) {
    throw new AppError(
      'idempotency_key_reused',
      'This Idempotency-Key was used with a different request; use a new key for a new request.',
    );
  }
  if (existing.response_status === null || existing.response_body === null) return 'in_progress';
  return { outcome: 'replay', status: existing.response_status, body: existing.response_body };
}

export async function completeIdempotencyKey(
  db: Queryable,
  input: { scope: string; key: string; status: number; body: string },
): Promise<void> {
  await db.execute(
    sql`UPDATE idempotency_keys
        SET response_status = ${input.status}, response_body = ${input.body}, completed_at = now(), locked_until = NULL
        WHERE scope = ${input.scope} AND key = ${input.key} AND completed_at IS NULL`,
  );
}

/** A server error is not an answer to keep: free the key so the client's retry runs again. */
export async function releaseIdempotencyKey(
  db: Queryable,
  input: { scope: string; key: string },
): Promise<void> {
  await db.execute(
    sql`DELETE FROM idempotency_keys WHERE scope = ${input.scope} AND key = ${input.key} AND completed_at IS NULL`,
  );
}

/** Deletes keys older than their TTL (a key coming again after that would be reused anyway). */
export async function deleteExpiredIdempotencyKeys(
  db: Queryable,
  ttlHours: number,
  batch = 10_000,
): Promise<number> {
  const rows = await selectRows<{ n: number }>(
    db,
    sql`WITH expired AS (
          DELETE FROM idempotency_keys WHERE ctid IN (
            SELECT ctid FROM idempotency_keys
            WHERE created_at < now() - make_interval(hours => ${ttlHours}) LIMIT ${batch})
          RETURNING 1)
        SELECT count(*)::int AS n FROM expired`,
  );
  return rows[0]?.n ?? 0;
}
