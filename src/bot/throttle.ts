/**
 * Per-user flood control in one bot process: `perMinute` updates in a sliding minute are served;
 * the first beyond is answered with "slow down", the rest are dropped until the minute allows
 * again. Payments never reach it (they are handled before).
 */
export class Throttle {
  private readonly seen = new Map<number, { times: number[]; warned: boolean }>();

  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  take(userId: number): 'allow' | 'warn' | 'drop' {
    const now = this.now();
    let entry = this.seen.get(userId);
    if (!entry) {
      if (this.seen.size > 200_000) this.seen.clear();
      entry = { times: [], warned: false };
      this.seen.set(userId, entry);
    }
    while (entry.times.length > 0 && (entry.times[0] ?? 0) <= now - 60_000) entry.times.shift();
    if (entry.times.length < this.perMinute) {
      entry.times.push(now);
      entry.warned = false;
      return 'allow';
    }
    if (entry.warned) return 'drop';
    entry.warned = true;
    return 'warn';
  }
}
