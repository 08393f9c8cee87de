import { hostname } from 'node:os';
import type { Logger } from '../core/logger.ts';
import { sleep } from '../core/sleep.ts';
import type { DatabaseHandle } from '../db/client.ts';
import { GroupCommit } from '../db/group-commit.ts';
import {
  backoffSeconds,
  claim,
  heartbeatAll,
  type Job,
  listenForJobs,
  recordSteps,
  recoverExpired,
  releaseUnheld,
  runLater,
} from '../db/job-queue.ts';
import { broadcastSender } from '../services/broadcasts.ts';
import type { PipelineContext } from '../services/context.ts';
import { settleSuccesses } from '../services/generation-outcomes.ts';
import { currentSettings, watchSettings } from '../services/settings.ts';
import type { ResultStore } from '../storage/results.ts';
import { runBroadcastJob } from './broadcast.ts';
import { runDeliverJob } from './deliver.ts';
import { runGenerateJob, startGenerations } from './generate.ts';
import { runHousekeeping } from './housekeeping.ts';
import type { DeliveryChannels, JobEnvironment } from './types.ts';

export interface WorkerOptions {
  ctx: PipelineContext;
  database: DatabaseHandle;
  store: ResultStore;
  delivery: DeliveryChannels;
  logger: Logger;
  workerId?: string;
  /** How often to look for due jobs when no NOTIFY arrives (delayed polls, retries). */
  pollIntervalMs?: number;
}

const DELIVERY_KIND_CAP = 16;
/** Broadcast jobs one worker runs at once (the shared pacing decides the rate anyway). */
const BROADCAST_KIND_CAP = 2;
const HOUSEKEEPING_INTERVAL_MS = 60_000;
const CLAIM_GATHER_MS = 5;
/** After a failed claim (the database is away): 250 ms, 500 ms, 1 s … up to this. */
const CLAIM_RETRY_MAX_MS = 30_000;
/** Putting a failed job back is tried again (the database may be away) for up to its lease. */
const PUT_BACK_RETRY_MS = [250, 500, 1_000, 2_000, 4_000, 8_000];

/**
 * Runs jobs of the queue: claims due jobs per provider up to that provider's cap (and the
 * process's), runs each handler concurrently, heartbeats every held job in one statement, hands
 * expired leases of dead workers back, and stops gracefully (jobs not finished in time are
 * released at once, so another worker resumes them without waiting for the lease).
 */
export class JobWorker {
  readonly workerId: string;
  private readonly env: JobEnvironment;
  private readonly running = new Map<
    number,
    { job: Job; abort: AbortController; done: Promise<void> }
  >();
  private readonly runningPerProvider = new Map<string, number>();
  private stopping = false;
  private wake: (() => void) | null = null;
  private wakeRequested = false;
  /** The last claim filled every free slot: due jobs may be waiting for a slot to free. */
  private backlog = false;
  private loopDone: Promise<void> | null = null;
  /**
   * The database may hold jobs as ours that we do not run (a claim whose answer was lost, a job
   * we could not put back): hand them back before the next claim.
   */
  private releaseUnheldNext = false;
  private stopListening: (() => Promise<void>) | null = null;
  private stopWatchingSettings: (() => Promise<void>) | null = null;
  private timers: NodeJS.Timeout[] = [];

  constructor(private readonly options: WorkerOptions) {
    this.workerId =
      options.workerId ?? `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
    this.env = {
      ctx: options.ctx,
      store: options.store,
      delivery: options.delivery,
      logger: options.logger.child({ worker: this.workerId }),
      steps: new GroupCommit((steps) => recordSteps(options.ctx.db, steps)),
      successes: new GroupCommit((successes) => settleSuccesses(options.ctx, successes)),
    };
  }

  async start(): Promise<void> {
    const { ctx, database } = this.options;
    this.stopListening = await listenForJobs(database, () => this.poke(), {
      logger: this.env.logger,
    });
    this.stopWatchingSettings = await watchSettings(database, this.env.logger);
    const lease = ctx.config.worker.leaseSeconds;
    this.every(Math.max(500, (lease * 1000) / 3), () => this.heartbeat());
    this.every(Math.max(1000, (lease * 1000) / 2), async () => {
      const recovered = await recoverExpired(ctx.db);
      if (recovered.length > 0) {
        this.env.logger.warn(
          { jobs: recovered },
          'took back jobs whose worker stopped heartbeating',
        );
        this.poke();
      }
    });
    this.every(HOUSEKEEPING_INTERVAL_MS, () => runHousekeeping(this.env));
    this.loopDone = this.loop();
    this.env.logger.info(
      { providers: ctx.providers.names(), concurrency: ctx.config.worker.concurrency },
      'worker started',
    );
  }

  /** Stops claiming, waits up to `timeoutMs` for running jobs, then releases the rest. */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    this.poke();
    await this.loopDone;
    await this.stopListening?.();
    await this.stopWatchingSettings?.();
    const finished = Promise.all([...this.running.values()].map((entry) => entry.done));
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      finished.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (late) {
      const unfinished = [...this.running.values()];
      for (const { abort } of unfinished) abort.abort();
      await this.release(unfinished.map(({ job }) => job));
    }
    this.env.logger.info('worker stopped');
  }

  /**
   * Stops at once without finishing or releasing anything, as a crash would: its jobs stay
   * claimed until their leases run out. For tests of takeover, and for a process about to die.
   */
  halt(): void {
    this.stopping = true;
    for (const timer of this.timers) clearInterval(timer);
    for (const { abort } of this.running.values()) abort.abort();
    this.wake?.();
    void this.stopListening?.();
  }

  /** Hands claimed jobs back at once, without counting the attempt (they never ran). */
  private async release(jobs: readonly Job[]): Promise<void> {
    await Promise.all(
      jobs.map((job) =>
        runLater(this.options.ctx.db, job, { delaySeconds: 0, countsAsAttempt: false }).catch(
          () => false,
        ),
      ),
    );
  }

  /** Look for jobs now (a NOTIFY arrived, or a slot freed). */
  private poke(): void {
    this.wakeRequested = true;
    this.wake?.();
  }

  private every(ms: number, task: () => Promise<unknown>): void {
    let busy = false;
    const timer = setInterval(() => {
      if (busy || this.stopping) return;
      busy = true;
      task()
        .catch((error: unknown) => this.env.logger.error({ err: error }, 'worker task failed'))
        .finally(() => {
          busy = false;
        });
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private async loop(): Promise<void> {
    const pollMs = this.options.pollIntervalMs ?? 1000;
    let failures = 0;
    while (!this.stopping) {
      this.wakeRequested = false;
      let full = false;
      let waitMs = pollMs;
      try {
        full = await this.fillSlots();
        failures = 0;
      } catch (error) {
        // The database is away (a restart, a failover) or refused: never let it end the loop.
        // Back off; a wake-up after this (the LISTEN connection is back, a NOTIFY) retries at once.
        failures++;
        this.releaseUnheldNext = true;
        waitMs = Math.min(CLAIM_RETRY_MAX_MS, 250 * 2 ** (failures - 1));
        this.env.logger.error(
          { err: error, failures, retryInMs: waitMs },
          'claiming jobs failed; retrying',
        );
        this.wakeRequested = false;
      }
      this.backlog = full;
      if (this.stopping) break;
      // A batch that filled every slot may have left more due jobs: look again at once.
      if (full || this.wakeRequested) continue;
      const woken = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), waitMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      this.wake = null;
      // Wake-ups come in bursts (one per accepted generation): gather a burst into one claim.
      if (woken) await new Promise((resolve) => setTimeout(resolve, CLAIM_GATHER_MS));
    }
  }

  private freeSlots(): number {
    return this.options.ctx.config.worker.concurrency - this.running.size;
  }

  private providerCap(name: string, caps: Readonly<Record<string, number>>): number {
    return caps[name] ?? caps['*'] ?? 16;
  }

  /** Claims what each provider's cap and the process's allow; answers whether a batch came back full. */
  private async fillSlots(): Promise<boolean> {
    const { ctx } = this.options;
    const lease = ctx.config.worker.leaseSeconds;
    if (this.releaseUnheldNext) {
      const released = await releaseUnheld(ctx.db, this.workerId, [...this.running.keys()]);
      this.releaseUnheldNext = false;
      if (released.length > 0) {
        this.env.logger.warn(
          { jobs: released },
          'handed back jobs claimed while the database was failing, which this worker does not run',
        );
      }
    }
    let full = false;
    const caps = (await currentSettings(ctx)).PROVIDER_CONCURRENCY;
    for (const provider of ctx.providers.names()) {
      const limit = Math.min(
        this.providerCap(provider, caps) - (this.runningPerProvider.get(provider) ?? 0),
        this.freeSlots(),
      );
      if (limit <= 0) continue;
      const jobs = await claim(ctx.db, {
        kinds: ['generate'],
        provider,
        workerId: this.workerId,
        leaseSeconds: lease,
        limit,
      });
      if (jobs.length === limit) full = true;
      if (this.stopping) {
        await this.release(jobs);
        return false;
      }
      let work: Awaited<ReturnType<typeof startGenerations>>;
      try {
        work = await startGenerations(
          ctx.db,
          jobs.map((job) => job.requestId).filter((id): id is string => id !== null),
        );
      } catch (error) {
        await this.release(jobs);
        throw error;
      }
      for (const job of jobs) {
        this.launch(job, provider, (signal) =>
          runGenerateJob(this.env, job, (job.requestId && work.get(job.requestId)) || null, signal),
        );
      }
    }
    const { telegram, webhook } = this.options.delivery;
    // A worker with no channel leaves deliveries to one that has them.
    const deliveries =
      telegram || webhook
        ? Math.min(DELIVERY_KIND_CAP - this.kindRunning('deliver'), this.freeSlots())
        : 0;
    if (deliveries > 0) {
      const jobs = await claim(ctx.db, {
        kinds: ['deliver'],
        workerId: this.workerId,
        leaseSeconds: lease,
        limit: deliveries,
      });
      if (jobs.length === deliveries) full = true;
      if (this.stopping) {
        await this.release(jobs);
        return false;
      }
      for (const job of jobs) {
        this.launch(job, null, (signal) => runDeliverJob(this.env, job, signal));
      }
    }
    // Broadcasts: only a worker with the bot's token, for the Bot API server the job was started for.
    const broadcasts = ctx.config.telegramBotToken
      ? Math.min(BROADCAST_KIND_CAP - this.kindRunning('broadcast'), this.freeSlots())
      : 0;
    if (broadcasts > 0) {
      const jobs = await claim(ctx.db, {
        kinds: ['broadcast'],
        provider: broadcastSender(ctx),
        workerId: this.workerId,
        leaseSeconds: lease,
        limit: broadcasts,
      });
      if (this.stopping) {
        await this.release(jobs);
        return false;
      }
      for (const job of jobs) {
        this.launch(job, null, (signal) => runBroadcastJob(this.env, job, signal));
      }
    }
    return full;
  }

  private kindRunning(kind: Job['kind']): number {
    let count = 0;
    for (const { job } of this.running.values()) if (job.kind === kind) count++;
    return count;
  }

  private launch(
    job: Job,
    provider: string | null,
    handler: (signal: AbortSignal) => Promise<void>,
  ): void {
    const abort = new AbortController();
    if (provider)
      this.runningPerProvider.set(provider, (this.runningPerProvider.get(provider) ?? 0) + 1);
    const done = handler(abort.signal)
      .catch(async (error: unknown) => {
        this.env.logger.error({ err: error, jobId: job.id, kind: job.kind }, 'job handler failed');
        // The handler could not even put the job back: do it here, so it is not left claimed.
        await this.putBack(
          job,
          {
            delaySeconds: backoffSeconds(job.attempts),
            error: error instanceof Error ? error.message.slice(0, 500) : String(error),
          },
          abort.signal,
        );
      })
      .finally(() => {
        this.running.delete(job.id);
        if (provider)
          this.runningPerProvider.set(provider, (this.runningPerProvider.get(provider) ?? 1) - 1);
        // A freed slot matters only if jobs were left waiting for one.
        if (this.backlog) this.poke();
      });
    this.running.set(job.id, { job, abort, done });
  }

  /**
   * Puts a job whose handler failed back in the queue. The failure is often the database being
   * away, so this tries again (the job keeps its slot, and its heartbeat, meanwhile) for up to its
   * lease; if the database stays away that long, the next claim round hands it back (or, if this
   * worker stops first, its lease runs out).
   */
  private async putBack(
    job: Job,
    retry: { delaySeconds: number; error: string },
    signal: AbortSignal,
  ): Promise<void> {
    const giveUpAt = Date.now() + this.options.ctx.config.worker.leaseSeconds * 1000;
    for (let attempt = 0; ; attempt++) {
      try {
        await runLater(this.options.ctx.db, job, retry);
        return;
      } catch (error) {
        const pause = PUT_BACK_RETRY_MS[Math.min(attempt, PUT_BACK_RETRY_MS.length - 1)] ?? 1_000;
        if (signal.aborted || this.stopping || Date.now() + pause > giveUpAt) {
          this.env.logger.warn(
            { err: error, jobId: job.id },
            'could not put a failed job back; handing it back before the next claim',
          );
          this.releaseUnheldNext = true;
          return;
        }
        await sleep(pause, signal);
      }
    }
  }

  private async heartbeat(): Promise<void> {
    if (this.running.size === 0) return;
    const held = await heartbeatAll(
      this.options.ctx.db,
      this.workerId,
      [...this.running.keys()],
      this.options.ctx.config.worker.leaseSeconds,
    );
    for (const [id, entry] of this.running) {
      // Taken back while we worked (we stalled past the lease): stop before doing anything twice.
      if (!held.has(id)) entry.abort.abort();
    }
  }
}
