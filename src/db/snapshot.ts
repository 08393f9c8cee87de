import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Database, Queryable, Transaction } from './client.ts';
import { selectRows } from './rows.ts';

/**
 * A logical copy of the whole database, row by row, as each row's `row_to_json` text: exact for
 * every type (timestamps to the microsecond with their offset, bigints, jsonb, bytea), and read
 * back by `json_populate_recordset` on PGlite or PostgreSQL alike. Backups, restores and the move
 * to PostgreSQL are all this one copy; only where the records go differs.
 */
export const SNAPSHOT_FORMAT = 1;

/** Rows per record: bounds the memory of a copy, whatever the size of a table. */
const ROWS_PER_CHUNK = 2_000;

export interface SnapshotHeader {
  kind: 'header';
  format: number;
  /** The migrations applied to the copied database: a copy loads only into the same schema. */
  migrations: number;
  lastMigration: string;
  /** The source's triggers, `table.name:enabled`: a copy must have the same, all still enabled. */
  triggers: string[];
  createdAt: string;
}
export interface SnapshotTable {
  kind: 'table';
  name: string;
  /** The columns a row is written to (generated columns are computed again on load). */
  columns: string[];
  rows: number;
}
export interface SnapshotRows {
  kind: 'rows';
  table: string;
  /** Each row's `row_to_json` text, as the source wrote it. */
  rows: string[];
}
export interface SnapshotSequence {
  kind: 'sequence';
  name: string;
  lastValue: string;
  isCalled: boolean;
}
export type SnapshotRecord = SnapshotHeader | SnapshotTable | SnapshotRows | SnapshotSequence;

/** What two copies of one database agree on: per table its row count and a checksum of its rows. */
export interface DatabaseSummary {
  migrations: number;
  lastMigration: string;
  tables: Record<string, { rows: number; checksum: string }>;
  /** Every sequence's next state, `last_value` and `is_called`. */
  sequences: Record<string, string>;
  /** The triggers (the ledger's and audit log's rules among them) and whether each is enabled. */
  triggers: string[];
  /**
   * Users whose last ledger entry's balance, or whose `users.balance`, is not the sum of their
   * entries: must be none. The column is copied as data (the copy runs with triggers off).
   */
  unbalancedUsers: number;
}

export class SnapshotMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SnapshotMismatchError';
  }
}

/** Identifiers come from the catalog, never from input; quoted all the same. */
function quoted(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}

async function userTables(db: Queryable): Promise<string[]> {
  const rows = await selectRows<{ name: string }>(
    db,
    sql`SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`,
  );
  return rows.map((row) => row.name);
}

async function writableColumns(db: Queryable, table: string): Promise<string[]> {
  const rows = await selectRows<{ name: string }>(
    db,
    sql`SELECT attname AS name FROM pg_attribute
        WHERE attrelid = ${`public.${quoted(table)}`}::regclass AND attnum > 0
          AND NOT attisdropped AND attgenerated = ''
        ORDER BY attnum`,
  );
  return rows.map((row) => row.name);
}

async function migrationLevel(db: Queryable): Promise<{ count: number; last: string }> {
  const [registry] = await selectRows<{ present: boolean }>(
    db,
    sql`SELECT to_regclass('drizzle.__drizzle_migrations') IS NOT NULL AS present`,
  );
  if (!registry?.present) return { count: 0, last: '0' };
  const [row] = await selectRows<{ count: string | number; last: string | null }>(
    db,
    sql`SELECT count(*) AS count, max(created_at)::text AS last FROM drizzle.__drizzle_migrations`,
  );
  return { count: Number(row?.count ?? 0), last: row?.last ?? '0' };
}

/**
 * Reads the whole database in one transaction (one consistent moment, while others keep writing)
 * and hands its records to `sink` in order: the header, then each table and its rows, then the
 * sequences. On PGlite the transaction holds its only connection, so other queries wait for it.
 */
export async function dumpDatabase(
  db: Database,
  sink: (record: SnapshotRecord) => Promise<void>,
): Promise<void> {
  await db.transaction(
    async (tx) => {
      // row_to_json writes timestamps with the session's offset: one zone for every copy.
      await tx.execute(sql`SET LOCAL TimeZone = 'UTC'`);
      const level = await migrationLevel(tx);
      await sink({
        kind: 'header',
        format: SNAPSHOT_FORMAT,
        migrations: level.count,
        lastMigration: level.last,
        triggers: await triggerList(tx),
        createdAt: new Date().toISOString(),
      });
      for (const table of await userTables(tx)) {
        const columns = await writableColumns(tx, table);
        const [count] = await selectRows<{ rows: string | number }>(
          tx,
          sql.raw(`SELECT count(*) AS rows FROM public.${quoted(table)}`),
        );
        const rows = Number(count?.rows ?? 0);
        await sink({ kind: 'table', name: table, columns, rows });
        // A cursor of this transaction hands the rows over a page at a time, in one scan.
        await tx.execute(
          sql.raw(
            `DECLARE snapshot_rows NO SCROLL CURSOR FOR
             SELECT row_to_json(t)::text AS row FROM public.${quoted(table)} t`,
          ),
        );
        let read = 0;
        for (;;) {
          const chunk = await selectRows<{ row: string }>(
            tx,
            sql.raw(`FETCH ${ROWS_PER_CHUNK} FROM snapshot_rows`),
          );
          if (chunk.length === 0) break;
          read += chunk.length;
          await sink({ kind: 'rows', table, rows: chunk.map((r) => r.row) });
        }
        await tx.execute(sql`CLOSE snapshot_rows`);
        if (read !== rows) {
          throw new SnapshotMismatchError(`${table}: counted ${rows} rows, read ${read}`);
        }
      }
      for (const [name, state] of Object.entries(await sequenceStates(tx))) {
        await sink({
          kind: 'sequence',
          name,
          lastValue: state.lastValue,
          isCalled: state.isCalled,
        });
      }
    },
    { isolationLevel: 'repeatable read', accessMode: 'read only' },
  );
}

async function triggerList(db: Queryable): Promise<string[]> {
  const rows = await selectRows<{ trigger: string }>(
    db,
    sql`SELECT c.relname || '.' || t.tgname || ':' || t.tgenabled::text AS trigger
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT t.tgisinternal AND n.nspname = 'public' ORDER BY 1`,
  );
  return rows.map((row) => row.trigger);
}

async function sequenceStates(
  db: Queryable,
): Promise<Record<string, { lastValue: string; isCalled: boolean }>> {
  const names = await selectRows<{ name: string }>(
    db,
    sql`SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'S' AND n.nspname = 'public' ORDER BY c.relname`,
  );
  const states: Record<string, { lastValue: string; isCalled: boolean }> = {};
  for (const { name } of names) {
    const [state] = await selectRows<{ last_value: string; is_called: boolean }>(
      db,
      sql.raw(`SELECT last_value::text AS last_value, is_called FROM public.${quoted(name)}`),
    );
    if (state) states[name] = { lastValue: state.last_value, isCalled: state.is_called };
  }
  return states;
}

/** Anything at all in the database's own schemas: a target must have none. */
export async function isEmptyDatabase(db: Queryable): Promise<boolean> {
  const [row] = await selectRows<{ relations: string | number }>(
    db,
    sql`SELECT count(*) AS relations FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'`,
  );
  return Number(row?.relations ?? 0) === 0;
}

export class CopyNotPermittedError extends Error {
  constructor() {
    super(
      'The target refuses `SET session_replication_role = replica`, which copying the rows as ' +
        "they are needs (the ledger's triggers would otherwise compute them again): connect as a " +
        'superuser, or on PostgreSQL 15+ run `GRANT SET ON PARAMETER session_replication_role TO <role>`.',
    );
    this.name = 'CopyNotPermittedError';
  }
}

/** Before anything is written: may this session load rows as they are? */
export async function assertCanLoadRowsAsTheyAre(db: Database): Promise<void> {
  try {
    await db.transaction(async (tx) => {
      await tx.execute(sql`SET LOCAL session_replication_role = replica`);
    });
  } catch (error) {
    const code = (error as { code?: string; cause?: { code?: string } }).cause?.code;
    if (code === '42501' || (error as { code?: string }).code === '42501') {
      throw new CopyNotPermittedError();
    }
    throw error;
  }
}

/**
 * Writes a snapshot's records into a migrated database, inside `tx`. The rows go in as they were,
 * ids, running balances and entry numbers included: under `session_replication_role = replica`
 * (this transaction only; it needs a superuser, or on PostgreSQL 15+ `GRANT SET ON PARAMETER
 * session_replication_role`) ordinary triggers and rules do not fire, so the ledger's running
 * balance is not computed again and foreign keys are not checked row by row; the triggers stay
 * defined and enabled, and `summarizeDatabase` checks the result. What the migrations seeded (the
 * starting catalog) is replaced by the source's rows.
 */
export class SnapshotLoader {
  private header: SnapshotHeader | null = null;
  private current: SnapshotTable | null = null;
  private readonly expected = new Map<string, number>();

  private constructor(
    private readonly tx: Transaction,
    private readonly targetTables: Set<string>,
  ) {}

  static async start(tx: Transaction): Promise<SnapshotLoader> {
    await tx.execute(sql`SET LOCAL session_replication_role = replica`);
    const tables = await userTables(tx);
    for (const table of tables) await tx.execute(sql.raw(`DELETE FROM public.${quoted(table)}`));
    return new SnapshotLoader(tx, new Set(tables));
  }

  async apply(record: SnapshotRecord): Promise<void> {
    switch (record.kind) {
      case 'header':
        return this.checkHeader(record);
      case 'table':
        return this.startTable(record);
      case 'rows':
        return this.insertRows(record);
      case 'sequence':
        await this.tx.execute(
          sql`SELECT setval(${`public.${quoted(record.name)}`}::regclass, ${record.lastValue}::bigint, ${record.isCalled})`,
        );
        return;
    }
  }

  /** After the last record: every table of the target was in the snapshot, with all its rows. */
  async finish(): Promise<void> {
    if (!this.header) throw new SnapshotMismatchError('the copy has no header');
    const missing = [...this.targetTables].filter((table) => !this.expected.has(table));
    if (missing.length > 0) {
      throw new SnapshotMismatchError(`the copy lacks the tables ${missing.join(', ')}`);
    }
  }

  private async checkHeader(header: SnapshotHeader): Promise<void> {
    if (header.format !== SNAPSHOT_FORMAT) {
      throw new SnapshotMismatchError(
        `copy format ${header.format}; this code reads ${SNAPSHOT_FORMAT}`,
      );
    }
    const level = await migrationLevel(this.tx);
    if (level.count !== header.migrations || level.last !== header.lastMigration) {
      throw new SnapshotMismatchError(
        `the copy was taken at migration ${header.migrations} and this code is at ${level.count}: ` +
          'restore it with the version of the code that took it, then upgrade',
      );
    }
    this.header = header;
  }

  private async startTable(table: SnapshotTable): Promise<void> {
    if (!this.header) throw new SnapshotMismatchError('the copy has no header');
    if (!this.targetTables.has(table.name)) {
      throw new SnapshotMismatchError(`the target has no table ${table.name}`);
    }
    const columns = await writableColumns(this.tx, table.name);
    if (columns.join(',') !== table.columns.join(',')) {
      throw new SnapshotMismatchError(
        `${table.name} has the columns ${columns.join(', ')} here and ${table.columns.join(', ')} in the copy`,
      );
    }
    this.expected.set(table.name, table.rows);
    this.current = table;
  }

  private async insertRows(chunk: SnapshotRows): Promise<void> {
    const table = this.current;
    if (!table || table.name !== chunk.table) {
      throw new SnapshotMismatchError(`rows of ${chunk.table} outside its table`);
    }
    if (chunk.rows.length === 0) return;
    const columns = table.columns.map(quoted).join(', ');
    const name = `public.${quoted(table.name)}`;
    await this.tx.execute(
      sql`INSERT INTO ${sql.raw(name)} (${sql.raw(columns)}) OVERRIDING SYSTEM VALUE
          SELECT ${sql.raw(columns)} FROM json_populate_recordset(NULL::${sql.raw(name)}, ${`[${chunk.rows.join(',')}]`}::json)`,
    );
  }
}

/**
 * What a copy must keep: per table its rows (count and an order-free checksum of their
 * `row_to_json` texts, so the same rows give the same sum on any server), the sequences, the
 * triggers, and every user's balance (the last entry's and `users.balance`) equal to the sum of
 * their ledger.
 */
export async function summarizeDatabase(db: Database): Promise<DatabaseSummary> {
  return db.transaction(
    async (tx) => {
      await tx.execute(sql`SET LOCAL TimeZone = 'UTC'`);
      const level = await migrationLevel(tx);
      const tables: DatabaseSummary['tables'] = {};
      for (const table of await userTables(tx)) {
        const [row] = await selectRows<{ rows: string | number; checksum: string }>(
          tx,
          sql.raw(
            `SELECT count(*) AS rows, coalesce(sum(('x' || substr(md5(row_to_json(t)::text), 1, 15))::bit(60)::bigint), 0)::text AS checksum
             FROM public.${quoted(table)} t`,
          ),
        );
        tables[table] = { rows: Number(row?.rows ?? 0), checksum: row?.checksum ?? '0' };
      }
      const sequences: DatabaseSummary['sequences'] = {};
      for (const [name, state] of Object.entries(await sequenceStates(tx))) {
        sequences[name] = `${state.lastValue}${state.isCalled ? '' : ' (not called)'}`;
      }
      const [balances] = await selectRows<{ unbalanced: string | number }>(
        tx,
        sql`SELECT count(*) AS unbalanced FROM users u
              LEFT JOIN (
                SELECT user_id, sum(amount) AS total,
                       (array_agg(balance_after ORDER BY user_entry_no DESC))[1] AS last_balance
                  FROM ledger_entries GROUP BY user_id
              ) AS l ON l.user_id = u.id
            WHERE COALESCE(l.total, 0) <> COALESCE(l.last_balance, 0)
               OR u.balance <> COALESCE(l.total, 0)`,
      );
      return {
        migrations: level.count,
        lastMigration: level.last,
        tables,
        sequences,
        triggers: await triggerList(tx),
        unbalancedUsers: Number(balances?.unbalanced ?? 0),
      };
    },
    { isolationLevel: 'repeatable read', accessMode: 'read only' },
  );
}

/** A row's share of its table's checksum: the first 60 bits of the MD5 of its `row_to_json` text. */
function rowChecksum(row: string): bigint {
  return BigInt(`0x${createHash('md5').update(row).digest('hex').slice(0, 15)}`);
}

/**
 * The summary of a snapshot from its records as they pass (a backup's manifest, the expectation a
 * move checks its target against); the same sums `summarizeDatabase` takes in SQL, computed apart.
 */
export class SnapshotTally {
  private header: SnapshotHeader | null = null;
  private readonly tables: Record<string, { declared: number; rows: number; checksum: bigint }> =
    {};
  private readonly sequences: Record<string, string> = {};

  add(record: SnapshotRecord): void {
    switch (record.kind) {
      case 'header':
        this.header = record;
        return;
      case 'table':
        this.tables[record.name] = { declared: record.rows, rows: 0, checksum: 0n };
        return;
      case 'rows': {
        const table = this.tables[record.table];
        if (!table) throw new SnapshotMismatchError(`rows of ${record.table} outside its table`);
        table.rows += record.rows.length;
        for (const row of record.rows) table.checksum += rowChecksum(row);
        return;
      }
      case 'sequence':
        this.sequences[record.name] =
          `${record.lastValue}${record.isCalled ? '' : ' (not called)'}`;
        return;
    }
  }

  summary(): DatabaseSummary {
    if (!this.header) throw new SnapshotMismatchError('the copy has no header');
    for (const [name, table] of Object.entries(this.tables)) {
      if (table.rows !== table.declared) {
        throw new SnapshotMismatchError(
          `${name}: ${table.declared} rows announced, ${table.rows} read`,
        );
      }
    }
    return {
      migrations: this.header.migrations,
      lastMigration: this.header.lastMigration,
      tables: Object.fromEntries(
        Object.entries(this.tables).map(([name, t]) => [
          name,
          { rows: t.rows, checksum: t.checksum.toString() },
        ]),
      ),
      sequences: { ...this.sequences },
      triggers: this.header.triggers,
      unbalancedUsers: 0,
    };
  }
}

/** The differences between a copy and its source, as sentences; none when they agree. */
export function summaryDifferences(source: DatabaseSummary, copy: DatabaseSummary): string[] {
  const differences: string[] = [];
  if (copy.migrations !== source.migrations) {
    differences.push(`migrations: ${source.migrations} → ${copy.migrations}`);
  }
  const names = new Set([...Object.keys(source.tables), ...Object.keys(copy.tables)]);
  for (const name of [...names].sort()) {
    const a = source.tables[name];
    const b = copy.tables[name];
    if (!a || !b) differences.push(`table ${name} only in the ${a ? 'source' : 'copy'}`);
    else if (a.rows !== b.rows) differences.push(`${name}: ${a.rows} rows → ${b.rows}`);
    else if (a.checksum !== b.checksum) differences.push(`${name}: the rows differ`);
  }
  for (const [name, state] of Object.entries(source.sequences)) {
    if (copy.sequences[name] !== state) {
      differences.push(`sequence ${name}: ${state} → ${copy.sequences[name] ?? 'missing'}`);
    }
  }
  if (source.triggers.join() !== copy.triggers.join()) {
    differences.push(`triggers: ${source.triggers.join(', ')} → ${copy.triggers.join(', ')}`);
  }
  const disabled = copy.triggers.filter((trigger) => !trigger.endsWith(':O'));
  if (disabled.length > 0) differences.push(`triggers not enabled: ${disabled.join(', ')}`);
  if (copy.unbalancedUsers > 0) {
    differences.push(
      `${copy.unbalancedUsers} user(s) whose balance is not the sum of their ledger`,
    );
  }
  return differences;
}
