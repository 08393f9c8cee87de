import type { Database, Queryable, Transaction } from './client.ts';

/**
 * Runs `work` in a transaction, or inside the caller's when `db` already is one, so verbs compose
 * into one commit. On PGlite everything must go through `tx`: a query on the outer handle while a
 * transaction is open waits forever.
 */
export async function withTransaction<T>(
  db: Queryable,
  work: (tx: Transaction) => Promise<T>,
): Promise<T> {
  if (isTransaction(db)) return work(db);
  return (db as Database).transaction(work);
}

export function isTransaction(db: Queryable): db is Transaction {
  return 'rollback' in db;
}
