/**
 * A provider that keeps failing (5xx, timeouts, unreachable, a storm of 429s) is given a rest:
 * after `failures` failed calls in a row within `windowMs`, the breaker opens for `openMs` and new
 * generations go to the model's next route. Then one trial call is let through (half-open): its
 * success closes the breaker, its failure opens it again. Each process keeps its own breakers, as
 * each sees the provider from where it stands; a job a provider already has is never moved.
 */
export interface BreakerOptions {
  /** Failed calls in a row that open the breaker. */
  failures: number;
  /** Failures further apart than this do not add up. */
  windowMs: number;
  /** How long an open breaker refuses before it lets one trial through. */
  openMs: number;
}

export type BreakerState = 'closed' | 'open' | 'half_open';

export class CircuitBreaker {
  private consecutive = 0;
  private lastFailureAt = 0;
  private openedAt: number | null = null;
  private trialStartedAt: number | null = null;

  constructor(
    private readonly options: BreakerOptions,
    private readonly now: () => number = Date.now,
  ) {}

  state(): BreakerState {
    if (this.openedAt === null) return 'closed';
    return this.now() - this.openedAt >= this.options.openMs ? 'half_open' : 'open';
  }

  /**
   * Whether a new job may be sent now. Half-open, the first caller gets the trial; the others
   * are refused until it reports (or, if it never does, until another `openMs` has passed).
   */
  allowsNewWork(): boolean {
    const state = this.state();
    if (state === 'closed') return true;
    if (state === 'open') return false;
    const now = this.now();
    if (this.trialStartedAt !== null && now - this.trialStartedAt < this.options.openMs) {
      return false;
    }
    this.trialStartedAt = now;
    return true;
  }

  /** Whether the provider is failing, without taking the trial: for listings. */
  isOpen(): boolean {
    return this.state() === 'open';
  }

  recordSuccess(): void {
    this.consecutive = 0;
    this.openedAt = null;
    this.trialStartedAt = null;
  }

  recordFailure(): void {
    const now = this.now();
    if (this.state() === 'half_open') {
      this.open(now);
      return;
    }
    if (now - this.lastFailureAt > this.options.windowMs) this.consecutive = 0;
    this.consecutive++;
    this.lastFailureAt = now;
    if (this.consecutive >= this.options.failures && this.openedAt === null) this.open(now);
  }

  private open(now: number): void {
    this.openedAt = now;
    this.trialStartedAt = null;
  }
}
