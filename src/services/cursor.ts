import { AppError } from '../core/errors.ts';

/**
 * Page cursors: the next_cursor a listing gives is opaque to callers (base64url of a short text)
 * and is decoded strictly, so whatever a caller sends back either is a value PostgreSQL takes in
 * the keyset query or is refused with 400 invalid_cursor, the same on every listing.
 */
export interface CursorCodec<T> {
  encode(value: T): string;
  /** The value, or AppError invalid_cursor (400). */
  decode(cursor: string): T;
}

function invalidCursor(): AppError {
  return new AppError(
    'invalid_cursor',
    'cursor is not a next_cursor this API gave: pass back the next_cursor of the previous page, or leave it out for the first page.',
  );
}

const base64url = /^[A-Za-z0-9_-]{1,512}$/;

function cursorCodec<T>(format: {
  toText(value: T): string;
  /** The value the text names, or null when it is not one this format writes. */
  fromText(text: string): T | null;
}): CursorCodec<T> {
  return {
    encode: (value) => Buffer.from(format.toText(value)).toString('base64url'),
    decode(cursor) {
      if (!base64url.test(cursor)) throw invalidCursor();
      const text = Buffer.from(cursor, 'base64url').toString();
      // Only the canonical encoding of valid UTF-8: what encode() writes, and nothing else.
      if (Buffer.from(text).toString('base64url') !== cursor) throw invalidCursor();
      const value = format.fromText(text);
      if (value === null) throw invalidCursor();
      return value;
    },
  };
}

/** PostgreSQL's integer (int4). */
const INT4_MAX = 2_147_483_647;

/** The ledger's cursor: the user_entry_no (an integer column) the next page is below. */
export const ledgerCursor = cursorCodec<number>({
  toText: (entryNo) => `e${entryNo}`,
  fromText(text) {
    const match = /^e([1-9][0-9]{0,9})$/.exec(text);
    const entryNo = match ? Number(match[1]) : Number.NaN;
    return entryNo <= INT4_MAX ? entryNo : null;
  },
});

/** The audit log's cursor: the entry id (a bigint identity) the next page is below. */
export const auditCursor = cursorCodec<number>({
  toText: (id) => `a${id}`,
  fromText(text) {
    const match = /^a([1-9][0-9]{0,15})$/.exec(text);
    const id = match ? Number(match[1]) : Number.NaN;
    return Number.isSafeInteger(id) ? id : null;
  },
});

/** The operators' user list's cursor: the users.id (a bigint identity) the next page is below. */
export const usersCursor = cursorCodec<number>({
  toText: (id) => `u${id}`,
  fromText(text) {
    const match = /^u([1-9][0-9]{0,15})$/.exec(text);
    const id = match ? Number(match[1]) : Number.NaN;
    return Number.isSafeInteger(id) ? id : null;
  },
});

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const utcMicros = /^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.[0-9]{6}Z$/;

/** A UTC timestamp to the microsecond, as to_char(…, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') writes it. */
function isUtcMicros(text: string): boolean {
  const match = utcMicros.exec(text);
  if (!match) return false;
  const [year, month, day, hours, minutes, seconds] = match.slice(1).map(Number) as number[];
  if (year === undefined || year < 1) return false;
  const date = new Date(0);
  date.setUTCFullYear(year, (month ?? 0) - 1, day);
  date.setUTCHours(hours ?? 0, minutes, seconds, 0);
  // Out-of-range fields (month 13, 31 February, hour 24, second 60) roll over and differ.
  return (
    date.getUTCFullYear() === year &&
    date.getUTCMonth() === (month ?? 0) - 1 &&
    date.getUTCDate() === day &&
    date.getUTCHours() === hours &&
    date.getUTCMinutes() === minutes &&
    date.getUTCSeconds() === seconds
  );
}

/** The generations' cursor: the (created_at, id) key the next page is below. */
export const generationCursor = cursorCodec<{ createdAt: string; id: string }>({
  toText: ({ createdAt, id }) => `${createdAt}|${id}`,
  fromText(text) {
    const [createdAt, id, ...rest] = text.split('|');
    if (createdAt === undefined || id === undefined || rest.length > 0) return null;
    return isUtcMicros(createdAt) && uuid.test(id) ? { createdAt, id } : null;
  },
});

/** The operators' payment list's cursor: the payments.id (a bigint identity) the next page is below. */
export const paymentCursor = cursorCodec<number>({
  toText: (id) => `p${id}`,
  fromText(text) {
    const match = /^p([1-9][0-9]{0,15})$/.exec(text);
    const id = match ? Number(match[1]) : Number.NaN;
    return Number.isSafeInteger(id) ? id : null;
  },
});
