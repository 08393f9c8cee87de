import { type SQL, sql } from 'drizzle-orm';
import { AppError } from '../core/errors.ts';
import { isoTimeText, selectRows } from '../db/rows.ts';
import { withTransaction } from '../db/transaction.ts';
import { type Operator, recordAudit } from './audit.ts';
import type { ServiceContext } from './context.ts';
import { usersCursor } from './cursor.ts';
import { type GenerationView, listGenerationsOfUser } from './generation-views.ts';
import { type LedgerEntry, listEntriesOfUser, postEntry } from './ledger.ts';
import { currentSettings } from './settings.ts';
import { type AdminUserView, type Referrer, readAdminUser } from './users.ts';

/** Users as operators find, read and credit them (GET /admin/users, POST …/credits). */

/**
 * Gives (positive) or takes (negative) credits, recorded in the ledger with who did it and in the
 * audit log with the balance before and after, in one transaction. A support operator may move at
 * most SUPPORT_CREDIT_LIMIT credits in one adjustment (403 otherwise); an admin any amount. With an
 * idempotency key, a retry answers the first entry and records nothing again.
 */
export async function adjustCredits(
  ctx: ServiceContext,
  telegramId: number,
  input: { amount: number; reason: string; idempotencyKey?: string },
  operator: Operator,
): Promise<LedgerEntry> {
  const limit = (await currentSettings(ctx)).SUPPORT_CREDIT_LIMIT;
  if (operator.role === 'support' && Math.abs(input.amount) > limit) {
    throw new AppError(
      'forbidden',
      `A support operator may adjust at most ${limit} credits at once (the setting SUPPORT_CREDIT_LIMIT); ask an administrator.`,
      { limit },
    );
  }
  return withTransaction(ctx.db, async (tx) => {
    const { entry, replayed } = await postEntry(
      tx,
      { telegramId },
      {
        kind: 'admin_adjustment',
        amount: input.amount,
        reason: input.reason,
        actor: operator.actor,
        ...(input.idempotencyKey === undefined ? {} : { idempotencyKey: input.idempotencyKey }),
      },
    );
    if (!replayed) {
      await recordAudit(tx, {
        ...operator,
        action: 'user.credits',
        subjectType: 'user',
        subjectId: telegramId,
        before: { balance: entry.balance_after - entry.amount },
        after: { balance: entry.balance_after, amount: entry.amount, entry_id: entry.id },
        reason: input.reason,
      });
    }
    return entry;
  });
}

export const userFilters = [
  'active_7d',
  'active_30d',
  'paying',
  'with_balance',
  'banned',
  'blocked',
  'new',
] as const;
export type UserFilter = (typeof userFilters)[number];

/** A user in the operators' list. */
export interface UserListItem {
  telegram_id: number;
  username: string | null;
  first_name: string | null;
  last_name: string | null;
  /** The language the user chose, else null; `language_code` is its Telegram client's. */
  language: string | null;
  language_code: string | null;
  balance: number;
  created_at: string;
  last_seen_at: string | null;
  banned: boolean;
  blocked: boolean;
}

export interface UserListPage {
  items: UserListItem[];
  next_cursor: string | null;
  /**
   * How many users match the query and filters, on every page, counted up to a cap: `capped` says
   * more than `total` match (the panel shows "10,000+").
   */
  counts: { total: number; capped: boolean };
}

/**
 * The most matches GET /admin/users counts exactly. Counting tens of thousands of matches costs
 * ~300 ms at 1M users (docs/benchmarks.md, bench:admin) and an operator needs no exact number
 * beyond this to narrow a search.
 */
export const USER_COUNT_CAP = 10_000;

/** The copy the ledger's trigger keeps (migration 0023): no ledger read per listed user. */
const BALANCE = sql`u.balance`;

const FILTER_CONDITIONS: Record<UserFilter, SQL> = {
  active_7d: sql`u.last_seen_at >= now() - interval '7 days'`,
  active_30d: sql`u.last_seen_at >= now() - interval '30 days'`,
  // The copy the payments' trigger keeps (migration 0028) of EXISTS (a payment with status 'paid').
  paying: sql`u.paying`,
  with_balance: sql`${BALANCE} > 0`,
  banned: sql`u.banned_at IS NOT NULL`,
  blocked: sql`u.blocked_at IS NOT NULL`,
  new: sql`u.created_at >= now() - interval '7 days'`,
};

/**
 * The least string greater than every string that starts with `prefix`, in the byte order of
 * UTF-8 (which is code point order, the order of `~<~`): the prefix with its last code point one
 * higher; a last U+10FFFF has none, so it goes and the one before it moves. Null when no string
 * is above them all (an empty prefix, or one of U+10FFFF only).
 */
export function prefixEnd(prefix: string): string | null {
  const points = [...prefix].map((char) => char.codePointAt(0) ?? 0);
  while (points.length > 0) {
    const last = points.pop() ?? 0;
    if (last < 0x10ffff) {
      // No string holds a surrogate: the code point after U+D7FF is U+E000.
      points.push(last === 0xd7ff ? 0xe000 : last + 1);
      return String.fromCodePoint(...points);
    }
  }
  return null;
}

/**
 * `expression` starts with `prefix`, written as the range [prefix, prefixEnd(prefix)) in byte
 * order (`~>=~`, `~<~`): exactly the strings with that prefix, and the range is the whole index
 * condition of a text_pattern_ops index, so nothing is left to check on the table's rows (LIKE
 * 'abc%' leaves itself as a filter, which reads each candidate's row). The operators compare the
 * text as it is, so `%`, `_` and `\` stand for themselves.
 */
function startsWith(expression: SQL, prefix: string): SQL {
  const end = prefixEnd(prefix);
  return end === null
    ? sql`${expression} ~>=~ ${prefix}`
    : sql`(${expression} ~>=~ ${prefix} AND ${expression} ~<~ ${end})`;
}

/**
 * What a query matches, as alternatives: a username (with or without its @), a full name ("first
 * last") or a last name by a case-insensitive prefix, and a telegram id exactly (when it is one).
 * The name expressions are those of the indexes of migrations 0014 and 0029, so each is an index
 * range.
 */
function queryAlternatives(query: string): SQL[] {
  const text = query.trim().toLowerCase();
  const prefix = text.replace(/^@/, '');
  // In this order the count's parts (usersMatchingParts) measured fastest in bench:admin: a short
  // prefix or a first name fills the cap from the usernames alone; a later part evaluates each
  // earlier alternative again on its rows.
  const alternatives = [
    startsWith(sql`lower(u.username)`, prefix),
    startsWith(
      sql`lower(btrim(coalesce(u.first_name, '') || ' ' || coalesce(u.last_name, '')))`,
      prefix,
    ),
    startsWith(sql`lower(u.last_name)`, prefix),
  ];
  if (/^[1-9][0-9]{0,15}$/.test(text) && Number.isSafeInteger(Number(text))) {
    alternatives.push(sql`u.telegram_id = ${Number(text)}`);
  }
  return alternatives;
}

const hasQuery = (query: string | undefined): query is string =>
  query !== undefined && query.trim() !== '';

const filterConditions = (filters: readonly UserFilter[]): SQL[] =>
  [...new Set(filters)].map((filter) => FILTER_CONDITIONS[filter]);

const allOf = (conditions: SQL[]): SQL =>
  conditions.length === 0 ? sql`TRUE` : sql.join(conditions, sql` AND `);

/** The users (alias `u`) a query and filters select, as GET /admin/users lists them (broadcasts too). */
export function usersMatching(options: { query?: string; filters: readonly UserFilter[] }): SQL {
  const conditions = filterConditions(options.filters);
  if (hasQuery(options.query)) {
    conditions.unshift(sql`(${sql.join(queryAlternatives(options.query), sql` OR `)})`);
  }
  return allOf(conditions);
}

/**
 * usersMatching as disjoint parts, one per alternative of the query: the first alternative, the
 * second where the first does not hold, and so on (`NOT coalesce(…, false)`: a null name matches
 * nothing). Their union is usersMatching's. Counted as a UNION ALL, each part is an index-only
 * range of its own name index (their INCLUDE columns, migration 0029), and the count stops at the
 * cap wherever it is; one condition with OR is a bitmap over all three indexes, and a bitmap scan
 * reads every matching row.
 */
function usersMatchingParts(options: { query?: string; filters: readonly UserFilter[] }): SQL[] {
  const filters = filterConditions(options.filters);
  if (!hasQuery(options.query)) return [allOf(filters)];
  const alternatives = queryAlternatives(options.query);
  return alternatives.map((alternative, i) =>
    allOf([
      alternative,
      ...alternatives.slice(0, i).map((earlier) => sql`NOT coalesce(${earlier}, false)`),
      ...filters,
    ]),
  );
}

interface UserListRow extends Omit<UserListItem, 'telegram_id' | 'balance'> {
  id: string | number;
  telegram_id: string | number;
  balance: string | number;
}

/** Users matching a query and filters (all of them), newest first, with how many match. */
export async function listUsers(
  ctx: ServiceContext,
  options: {
    query?: string;
    filters: readonly UserFilter[];
    cursor?: string;
    limit: number;
    countCap?: number;
  },
): Promise<UserListPage> {
  const countCap = options.countCap ?? USER_COUNT_CAP;
  const matching = usersMatching(options);
  const before = options.cursor === undefined ? null : usersCursor.decode(options.cursor);
  const page = before === null ? matching : sql`${matching} AND u.id < ${before}`;
  const [rows, [count]] = await Promise.all([
    selectRows<UserListRow>(
      ctx.db,
      sql`SELECT u.id, u.telegram_id, u.username, u.first_name, u.last_name, u.language,
                 u.language_code, ${BALANCE} AS balance,
                 ${sql.raw(isoTimeText('u.created_at'))} AS created_at,
                 ${sql.raw(isoTimeText('u.last_seen_at'))} AS last_seen_at,
                 u.banned_at IS NOT NULL AS banned, u.blocked_at IS NOT NULL AS blocked
          FROM users u WHERE ${page} ORDER BY u.id DESC LIMIT ${options.limit + 1}`,
    ),
    selectRows<{ total: number }>(
      ctx.db,
      // One row past the cap says "more": the count stops reading there.
      sql`SELECT count(*)::int AS total
          FROM (${sql.join(
            usersMatchingParts(options).map((part) => sql`(SELECT 1 FROM users u WHERE ${part})`),
            sql` UNION ALL `,
          )} LIMIT ${countCap + 1}) AS matches`,
    ),
  ]);
  const items = rows.slice(0, options.limit);
  const last = items.at(-1);
  return {
    items: items.map(({ id: _id, telegram_id, balance, ...fields }) => ({
      ...fields,
      telegram_id: Number(telegram_id),
      balance: Number(balance),
    })),
    next_cursor: rows.length > options.limit && last ? usersCursor.encode(Number(last.id)) : null,
    counts: {
      total: Math.min(count?.total ?? 0, countCap),
      capped: (count?.total ?? 0) > countCap,
    },
  };
}

/** A Stars payment as the operator sees it on a user's page. */
export interface UserPaymentView {
  id: number;
  telegram_payment_charge_id: string;
  package_id: string;
  stars: number;
  credits: number;
  status: 'paid' | 'refunded';
  refund_shortfall: number | null;
  created_at: string;
  refunded_at: string | null;
}

/** The user as the operator sees it, with who invited it and its latest activity. */
export interface AdminUserDetail extends AdminUserView {
  referrer: Referrer | null;
  blocked_at: string | null;
  recent: {
    generations: GenerationView[];
    payments: UserPaymentView[];
    ledger: LedgerEntry[];
  };
}

export async function getAdminUserDetail(
  ctx: ServiceContext,
  telegramId: number,
): Promise<AdminUserDetail> {
  const user = await readAdminUser(ctx, telegramId);
  const [generations, payments, ledger] = await Promise.all([
    listGenerationsOfUser(ctx, user.userId, { limit: 10 }),
    selectRows<UserPaymentView & { id: string | number }>(
      ctx.db,
      sql`SELECT id, telegram_payment_charge_id, package_id, total_amount AS stars, credits, status,
                 refund_shortfall, ${sql.raw(isoTimeText('created_at'))} AS created_at,
                 ${sql.raw(isoTimeText('refunded_at'))} AS refunded_at
          FROM payments WHERE user_id = ${user.userId}
          ORDER BY created_at DESC, id DESC LIMIT 10`,
    ),
    listEntriesOfUser(ctx.db, user.userId, { limit: 20 }),
  ]);
  return {
    ...user.view,
    referrer: user.referrer,
    blocked_at: user.blockedAt,
    recent: {
      generations: generations.generations,
      payments: payments.map((payment) => ({ ...payment, id: Number(payment.id) })),
      ledger: ledger.entries,
    },
  };
}
