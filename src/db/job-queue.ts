import { type SQL, sql } from 'drizzle-orm';
import type { Pool, PoolClient } from 'pg';
import type { Logger } from '../core/logger.ts';
import type { Database, DatabaseHandle, Queryable } from '../db/client.ts';
import { isoTimeText, selectRows } from '../db/rows.ts';
import { isTransaction } from './transaction.ts';

/**
 * The job queue: rows of `generation_jobs`, claimed with FOR UPDATE SKIP LOCKED under a lease.
 *
 * Contract, for every job kind (generate, deliver):
 * - enqueue inside the transaction that creates the work, so a job exists iff its work does
 *   (accepting a generation is one statement, accept_generation() in migration 0005, which
 *   inserts its generate job itself);
 * - claim takes due pending jobs, marks them running with `locked_until = now() + lease` and counts
 *   the attempt; only the claimant (`locked_by`) may then heartbeat, record a step, finish or retry;
 * - a worker that dies stops heartbeating; `recoverExpired` hands its jobs back as pending, and the
 *   next claimant resumes from the recorded `step` and `provider_job_id`;
 * - workers are woken by a NOTIFY sent after the enqueueing transaction commits (`wakeWorkers`;
 *   PostgreSQL and PGlite alike) and poll as a fallback.
 */

const JOBS_CHANNEL = 'generation_jobs';

export type JobKind = 'generate' | 'deliver' | 'broadcast';

export interface Job {
  id: number;
  kind: JobKind;
  requestId: string | null;
  step: string;
  provider: string | null;
  providerJobId: string | null;
  payload: Record<string, unknown> | null;
  attempts: number;
  maxAttempts: number;
  deadlineAt: string | null;
  lockedBy: string;
}

export interface NewJob {
  kind: JobKind;
  requestId?: string;
  /** The outside service the job talks to; workers claim only providers they have. */
  provider?: string;
  payload?: Record<string, unknown>;
  /** Seconds from now before the job may run. */
  delaySeconds?: number;
  deadlineAt?: Date;
  maxAttempts?: number;
}

interface JobRow {
  id: string | number;
  kind: JobKind;
  request_id: string | null;
  step: string;
  provider: string | null;
  provider_job_id: string | null;
  payload: Record<string, unknown> | null;
  attempts: number;
  max_attempts: number;
  deadline_at: string | null;
  locked_by: string;
}

const jobColumns = sql.raw(
  `id, kind, request_id, step, provider, provider_job_id, payload, attempts, max_attempts,
   ${isoTimeText('deadline_at')} AS deadline_at, locked_by`,
);

function toJob(row: JobRow): Job {
  return {
    id: Number(row.id),
    kind: row.kind,
    requestId: row.request_id,
    step: row.step,
    provider: row.provider,
    providerJobId: row.provider_job_id,
    payload: row.payload,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    deadlineAt: row.deadline_at,
    lockedBy: row.locked_by,
  };
}

/**
 * Adds a job (at most one per request and kind: enqueueing again is a no-op). Answers the job id,
 * or null if the job already existed. Inside a transaction, call `wakeWorkers` once it commits;
 * outside one, this does.
 */
export async function enqueue(db: Queryable, job: NewJob): Promise<number | null> {
  const rows = await selectRows<{ id: string | number }>(
    db,
    sql`INSERT INTO generation_jobs (kind, request_id, provider, payload, run_at, deadline_at, max_attempts)
        VALUES (${job.kind}, ${job.requestId ?? null}, ${job.provider ?? null},
                ${job.payload ? JSON.stringify(job.payload) : null}::jsonb,
                now() + make_interval(secs => ${job.delaySeconds ?? 0}),
                ${job.deadlineAt?.toISOString() ?? null}::timestamptz, ${job.maxAttempts ?? 10})
        ON CONFLICT (request_id, kind) DO NOTHING
        RETURNING id`,
  );
  if (!isTransaction(db)) wakeWorkers(db as Database);
  const [row] = rows;
  return row ? Number(row.id) : null;
}

const wakeups = new WeakMap<object, { sending: boolean; again: boolean }>();

/**
 * Tells the workers new jobs are due, sending at most one NOTIFY at a time per database handle:
 * calls while one is on its way are folded into one more after it. Never inside the enqueueing
 * transaction: PostgreSQL serialises the commits of notifying transactions (a global lock held
 * through the WAL flush), which capped accepting generations at one per fsync (~300/s here).
 * A lost wake-up costs at most the workers' poll interval.
 */
export function wakeWorkers(db: Database): void {
  let state = wakeups.get(db);
  if (!state) {
    state = { sending: false, again: false };
    wakeups.set(db, state);
  }
  if (state.sending) {
    state.again = true;
    return;
  }
  const wake = state;
  wake.sending = true;
  const send = (): void => {
    wake.again = false;
    db.execute(sql`SELECT pg_notify(${JOBS_CHANNEL}, '')`)
      .catch(() => undefined)
      .finally(() => {
        if (wake.again) send();
        else wake.sending = false;
      });
  };
  send();
}

export interface ClaimOptions {
  kinds: readonly JobKind[];
  workerId: string;
  leaseSeconds: number;
  limit: number;
  /** Only jobs for this provider (a worker claims per provider, within its cap for each). */
  provider?: string;
}

/** Takes up to `limit` due jobs; concurrent claimants skip each other's rows, never wait. */
export async function claim(db: Database, options: ClaimOptions): Promise<Job[]> {
  const rows = await selectRows<JobRow>(
    db,
    sql`UPDATE generation_jobs SET status = 'running', locked_by = ${options.workerId},
               locked_until = now() + make_interval(secs => ${options.leaseSeconds}),
               attempts = attempts + 1, updated_at = now()
        WHERE id IN (
          SELECT id FROM generation_jobs
          WHERE status = 'pending' AND run_at <= now()
            AND kind IN (${sql.join(
              options.kinds.map((kind) => sql`${kind}`),
              sql`, `,
            )})
            ${options.provider === undefined ? sql`` : sql`AND provider = ${options.provider}`}
          ORDER BY run_at
          LIMIT ${options.limit}
          FOR UPDATE SKIP LOCKED)
        RETURNING ${jobColumns}`,
  );
  return rows.map(toJob);
}

/** Runs an update only while the job is still this worker's; answers whether it was. */
async function whileClaimed(
  db: Queryable,
  job: Pick<Job, 'id' | 'lockedBy'>,
  set: SQL,
): Promise<boolean> {
  const rows = await selectRows<{ id: string | number }>(
    db,
    sql`UPDATE generation_jobs SET ${set}, updated_at = now()
        WHERE id = ${job.id} AND status = 'running' AND locked_by = ${job.lockedBy}
        RETURNING id`,
  );
  return rows.length === 1;
}

/**
 * Extends the leases of the jobs this worker is running, in one statement, locking them in id
 * order (as every multi-job statement here does, so two never wait on each other in a cycle).
 * Answers the ids still held: a job missing from it was taken back and must be abandoned. Only
 * the ids given are renewed: a claim whose handler is gone runs out and is taken back.
 */
export async function heartbeatAll(
  db: Queryable,
  workerId: string,
  jobIds: readonly number[],
  leaseSeconds: number,
): Promise<Set<number>> {
  if (jobIds.length === 0) return new Set();
  const rows = await selectRows<{ id: string | number }>(
    db,
    sql`UPDATE generation_jobs
        SET locked_until = now() + make_interval(secs => ${leaseSeconds}), updated_at = now()
        WHERE id IN (
          SELECT id FROM generation_jobs
          WHERE id IN (${sql.join(
            jobIds.map((id) => sql`${id}`),
            sql`, `,
          )}) AND status = 'running' AND locked_by = ${workerId}
          ORDER BY id FOR UPDATE)
        RETURNING id`,
  );
  return new Set(rows.map((row) => Number(row.id)));
}

export interface StepRecord {
  job: Pick<Job, 'id' | 'lockedBy'>;
  step: string;
  provider?: string;
  providerJobId?: string;
}

/** Records progress (e.g. the provider's job id once submitted) so a takeover resumes from it. */
export async function recordStep(
  db: Queryable,
  job: Job,
  step: Omit<StepRecord, 'job'>,
): Promise<boolean> {
  const [recorded] = await recordSteps(db, [{ job, ...step }]);
  return recorded === true;
}

/**
 * Records the steps of many jobs in one statement (the worker's group commit). Each answer says
 * whether the job was still its worker's: a job taken back meanwhile is not touched.
 */
export async function recordSteps(db: Queryable, steps: readonly StepRecord[]): Promise<boolean[]> {
  const payload = [...steps]
    .sort((a, b) => a.job.id - b.job.id)
    .map((record) => ({
      id: record.job.id,
      locked_by: record.job.lockedBy,
      step: record.step,
      provider: record.provider ?? null,
      provider_job_id: record.providerJobId ?? null,
    }));
  const rows = await selectRows<{ id: string | number }>(
    db,
    sql`UPDATE generation_jobs j
        SET step = v.step, provider = COALESCE(v.provider, j.provider),
            provider_job_id = COALESCE(v.provider_job_id, j.provider_job_id), updated_at = now()
        FROM jsonb_to_recordset(${JSON.stringify(payload)}::jsonb)
             AS v(id bigint, locked_by text, step text, provider text, provider_job_id text)
        WHERE j.id = v.id AND j.status = 'running' AND j.locked_by = v.locked_by
          AND j.id IN (SELECT id FROM generation_jobs
                       WHERE id IN (SELECT (e->>'id')::bigint
                                    FROM jsonb_array_elements(${JSON.stringify(payload)}::jsonb) e)
                       ORDER BY id FOR UPDATE)
        RETURNING j.id`,
  );
  const recorded = new Set(rows.map((row) => Number(row.id)));
  return steps.map((record) => recorded.has(record.job.id));
}

export function complete(db: Queryable, job: Job): Promise<boolean> {
  return whileClaimed(db, job, sql`status = 'succeeded', locked_until = NULL, last_error = NULL`);
}

/** Gives up on the job for good. */
export function fail(db: Queryable, job: Job, error: string): Promise<boolean> {
  return whileClaimed(db, job, sql`status = 'failed', locked_until = NULL, last_error = ${error}`);
}

/**
 * Puts the job back to run again after `delaySeconds` (a retry with backoff, or the next poll of
 * a provider). `countsAsAttempt: false` gives the attempt back: waiting is not failing.
 */
export function runLater(
  db: Queryable,
  job: Job,
  options: { delaySeconds: number; error?: string; countsAsAttempt?: boolean },
): Promise<boolean> {
  return whileClaimed(
    db,
    job,
    sql`status = 'pending', locked_by = NULL, locked_until = NULL,
        run_at = now() + make_interval(secs => ${options.delaySeconds}),
        attempts = attempts - ${options.countsAsAttempt === false ? 1 : 0},
        last_error = COALESCE(${options.error ?? null}, last_error)`,
  );
}

/**
 * Hands a generation's job to another provider (the next route of its model), to be claimed
 * under that provider's cap at once. Only a job no provider has yet: one whose provider job id is
 * recorded, or whose submit may have arrived (`step` other than `submit`), is never moved, here
 * by the statement itself. The attempt is given back: the move is not the job failing.
 */
export async function moveToProvider(
  db: Queryable,
  job: Job,
  provider: string,
  reason: string,
): Promise<boolean> {
  const rows = await selectRows<{ id: string | number }>(
    db,
    sql`UPDATE generation_jobs
        SET provider = ${provider}, status = 'pending', locked_by = NULL, locked_until = NULL,
            run_at = now(), attempts = greatest(attempts - 1, 0), last_error = ${reason},
            updated_at = now()
        WHERE id = ${job.id} AND status = 'running' AND locked_by = ${job.lockedBy}
          AND provider_job_id IS NULL AND step = 'submit'
        RETURNING id`,
  );
  return rows.length === 1;
}

/** Exponential backoff with jitter: 2 s, 4 s, 8 s … capped, for the n-th attempt. */
export function backoffSeconds(attempt: number, capSeconds = 300): number {
  const base = Math.min(capSeconds, 2 ** Math.max(1, attempt));
  return Math.round(base * (0.75 + Math.random() * 0.5) * 100) / 100;
}

/**
 * Hands back, at once and without counting the attempt, the jobs the database says this worker
 * runs but it does not (`heldIds` are those it does): a claim whose answer was lost with its
 * connection, or a job it could not put back while the database was away. Without this they
 * would wait for their lease to run out. Answers the ids handed back.
 */
export async function releaseUnheld(
  db: Queryable,
  workerId: string,
  heldIds: readonly number[],
): Promise<number[]> {
  const held =
    heldIds.length === 0
      ? sql``
      : sql`AND id NOT IN (${sql.join(
          heldIds.map((id) => sql`${id}`),
          sql`, `,
        )})`;
  const rows = await selectRows<{ id: string | number }>(
    db,
    sql`UPDATE generation_jobs
        SET status = 'pending', locked_by = NULL, locked_until = NULL, run_at = now(),
            attempts = greatest(attempts - 1, 0), updated_at = now()
        WHERE id IN (
          SELECT id FROM generation_jobs
          WHERE status = 'running' AND locked_by = ${workerId} ${held}
          ORDER BY id FOR UPDATE)
        RETURNING id`,
  );
  return rows.map((row) => Number(row.id));
}

/** Hands jobs whose lease ran out (their worker died or hung) back to the queue. */
export async function recoverExpired(db: Queryable): Promise<number[]> {
  const rows = await selectRows<{ id: string | number }>(
    db,
    sql`UPDATE generation_jobs SET status = 'pending', locked_by = NULL, locked_until = NULL,
               run_at = now(), last_error = 'lease expired: worker stopped heartbeating',
               updated_at = now()
        WHERE status = 'running' AND locked_until < now()
        RETURNING id`,
  );
  return rows.map((row) => Number(row.id));
}

export interface ListenOptions {
  /** Where a lost connection and the reconnects are reported. */
  logger?: Pick<Logger, 'info' | 'warn'>;
  /** The first and the longest pause between two attempts to LISTEN again. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** How often the idle LISTEN connection is checked with a query (a dead one may stay silent). */
  checkIntervalMs?: number;
}

/**
 * Calls `onWake` when a job is enqueued anywhere (NOTIFY on commit). Answers a function that stops
 * listening. On PostgreSQL this holds one pool connection for the LISTEN; the first LISTEN must
 * succeed, and a connection lost after it (a restart, a failover, pg_terminate_backend) is
 * replaced with backoff, never crashing the process. `onWake` is called once listening again,
 * since NOTIFYs sent meanwhile were missed; until then the workers find jobs by polling.
 */
export async function listenForJobs(
  handle: DatabaseHandle,
  onWake: () => void,
  options: ListenOptions = {},
): Promise<() => Promise<void>> {
  return listenOnChannel(handle, JOBS_CHANNEL, onWake, options);
}

/**
 * `listenForJobs` for any channel (e.g. settings_changed): the same resilient LISTEN connection,
 * `onNotify` called for each NOTIFY and once more after a lost connection is replaced.
 */
export async function listenOnChannel(
  handle: DatabaseHandle,
  channel: string,
  onNotify: () => void,
  options: ListenOptions = {},
): Promise<() => Promise<void>> {
  if (handle.pglite) {
    return handle.pglite.listen(channel, onNotify);
  }
  if (!handle.pool) throw new Error('database handle has neither a pool nor PGlite');
  const listener = new PoolListener(handle.pool, channel, onNotify, options);
  await listener.start();
  return () => listener.stop();
}

const LISTEN_CHECK_TIMEOUT_MS = 10_000;

/**
 * A LISTEN connection: `close` gives it back to the pool once (destroyed after an error); `lose`
 * closes it and, if it was the one in use, starts listening again.
 */
interface Listening {
  client: PoolClient;
  close: (error?: unknown) => boolean;
  lose: (error: unknown) => void;
}

/** One LISTEN connection at a time, replaced whenever it is lost. */
class PoolListener {
  private current: Listening | null = null;
  private connecting: Promise<void> | null = null;
  private stopped = false;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private checkTimer: NodeJS.Timeout | null = null;
  private checking = false;

  constructor(
    private readonly pool: Pool,
    private readonly channel: string,
    private readonly onWake: () => void,
    private readonly options: ListenOptions,
  ) {}

  async start(): Promise<void> {
    await this.connect();
    this.checkTimer = setInterval(() => this.check(), this.options.checkIntervalMs ?? 30_000);
    this.checkTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.checkTimer) clearInterval(this.checkTimer);
    await this.connecting?.catch(() => undefined);
    const listening = this.current;
    this.current = null;
    if (!listening) return;
    const failed = await listening.client.query(`UNLISTEN ${this.channel}`).then(
      () => undefined,
      (error: unknown) => error ?? new Error('UNLISTEN failed'),
    );
    listening.close(failed);
  }

  private connect(): Promise<void> {
    const attempt = this.listen().finally(() => {
      this.connecting = null;
    });
    this.connecting = attempt;
    return attempt;
  }

  private async listen(): Promise<void> {
    const client = await this.pool.connect();
    let closed = false;
    const listening: Listening = {
      client,
      lose: (error) => {
        if (!listening.close(error) || this.current !== listening) return;
        this.current = null;
        if (this.stopped) return;
        this.options.logger?.warn(
          { err: error, channel: this.channel },
          'lost the LISTEN connection for jobs; listening again (polling meanwhile)',
        );
        this.retryLater();
      },
      close: (error) => {
        if (closed) return false;
        closed = true;
        client.off('notification', this.onWake);
        // After an error the connection is destroyed instead of pooled. The listeners stay on the
        // client, so whatever the dead client emits later is still heard.
        client.release(
          error === undefined
            ? undefined
            : error instanceof Error
              ? error
              : new Error(String(error)),
        );
        return true;
      },
    };
    client.on('error', listening.lose);
    client.on('end', () => listening.lose(new Error('the LISTEN connection ended')));
    client.on('notification', this.onWake);
    try {
      await client.query(`LISTEN ${this.channel}`);
    } catch (error) {
      listening.close(error);
      throw error;
    }
    if (closed) throw new Error('the LISTEN connection was lost as it started');
    if (this.stopped) {
      listening.close();
      return;
    }
    this.current = listening;
  }

  private retryLater(): void {
    const min = this.options.retryMinMs ?? 200;
    const max = this.options.retryMaxMs ?? 10_000;
    const delay = Math.min(max, min * 2 ** this.failures) * (0.75 + Math.random() * 0.5);
    this.failures++;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.stopped) return;
      this.connect().then(
        () => {
          if (this.stopped) return;
          this.options.logger?.info(
            { attempts: this.failures },
            'listening for jobs again after a lost connection',
          );
          this.failures = 0;
          // NOTIFYs sent while no one listened are lost: look for jobs now.
          this.onWake();
        },
        (error: unknown) => {
          if (this.stopped) return;
          this.options.logger?.warn(
            { err: error, attempts: this.failures },
            'could not LISTEN for jobs again; retrying',
          );
          this.retryLater();
        },
      );
    }, delay);
    this.retryTimer.unref();
  }

  /** A connection cut without a word (no FATAL, no RST) stays silent: ask it something. */
  private check(): void {
    const listening = this.current;
    if (!listening || this.checking || this.stopped) return;
    this.checking = true;
    let timer: NodeJS.Timeout | undefined;
    Promise.race([
      listening.client.query('SELECT 1'),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${LISTEN_CHECK_TIMEOUT_MS} ms`)),
          LISTEN_CHECK_TIMEOUT_MS,
        );
      }),
    ])
      .catch((error: unknown) => listening.lose(error))
      .finally(() => {
        clearTimeout(timer);
        this.checking = false;
      });
  }
}
