import type { Redis } from 'ioredis';
import ipaddr from 'ipaddr.js';

/**
 * Failed authentications per client address, so that nobody can guess tokens or forge initData
 * at the speed of the network: past `limit` failures in a window the address is answered 429
 * before its credentials are even looked at. Only failures count, and only per address, so a
 * caller that signs in from elsewhere is never held back by them.
 *
 * With Redis the counts are shared by every API process. A process learns that an address is
 * blocked when one of that address's failures comes back past the limit, and then remembers it
 * locally until the window ends; so the only Redis call is on a failure, and an address gets at
 * most one more try per API process after the shared limit (it can only hit the limit by failing).
 * If Redis fails, failures are not counted (as the request rate limit, it fails open).
 *
 * An IPv6 client is counted by its /64, since one host usually has the whole /64 to pick from.
 */
export interface FailureCounts {
  /** Counts one failure of `key`; answers the failures in its window and the ms the window has left. */
  increment(key: string, windowMs: number): Promise<{ count: number; resetInMs: number }>;
}

export class MemoryFailureCounts implements FailureCounts {
  private readonly windows = new Map<string, { count: number; resetAt: number }>();
  private nextSweep = 0;

  constructor(private readonly now: () => number = Date.now) {}

  async increment(key: string, windowMs: number) {
    const now = this.now();
    // Windows that ended are dropped once per window length, so the map holds about one
    // window's worth of addresses.
    if (now >= this.nextSweep) {
      for (const [stale, window] of this.windows) {
        if (window.resetAt <= now) this.windows.delete(stale);
      }
      this.nextSweep = now + windowMs;
    }
    let window = this.windows.get(key);
    if (!window || window.resetAt <= now) {
      window = { count: 0, resetAt: now + windowMs };
      this.windows.set(key, window);
    }
    window.count += 1;
    return { count: window.count, resetInMs: window.resetAt - now };
  }
}

// One round trip: count, start the window on the first failure, answer the count and what is left.
const INCREMENT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return { count, ttl }`;

export class RedisFailureCounts implements FailureCounts {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'imagegen:authfail:',
  ) {}

  async increment(key: string, windowMs: number) {
    const [count, ttl] = (await this.redis.eval(
      INCREMENT,
      1,
      `${this.prefix}${key}`,
      windowMs,
    )) as [number, number];
    return { count, resetInMs: ttl };
  }
}

/** What a client address counts as: the IPv4 address (also when IPv4-mapped), or the IPv6 /64. */
export function clientKey(address: string): string {
  if (!ipaddr.isValid(address)) return address;
  const parsed = ipaddr.process(address);
  if (parsed.kind() === 'ipv4') return parsed.toString();
  const parts = (parsed as ipaddr.IPv6).parts.slice(0, 4).map((part) => part.toString(16));
  return `${parts.join(':')}::/64`;
}

export class AuthFailureLimiter {
  /** Addresses known to be past the limit, and when their window ends (epoch ms). */
  private readonly blocked = new Map<string, number>();

  constructor(
    private readonly limit: number,
    private readonly counts: FailureCounts,
    private readonly onStoreError: (error: unknown) => void = () => undefined,
    readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until `address` may try again; 0 when its credentials may be checked now. */
  retryAfterSeconds(address: string): number {
    if (this.blocked.size === 0) return 0;
    const key = clientKey(address);
    const until = this.blocked.get(key);
    if (until === undefined) return 0;
    const left = until - this.now();
    if (left > 0) return Math.ceil(left / 1000);
    this.blocked.delete(key);
    return 0;
  }

  /**
   * Counts a failure of `address`. Answers the seconds it must now wait when this failure went
   * past the limit (the limit-th failure itself is still answered 401), else 0.
   */
  async failed(address: string): Promise<number> {
    const key = clientKey(address);
    let counted: { count: number; resetInMs: number };
    try {
      counted = await this.counts.increment(key, this.windowMs);
    } catch (error) {
      this.onStoreError(error);
      return 0;
    }
    if (counted.count < this.limit) return 0;
    const resetInMs = Math.max(1, Math.min(counted.resetInMs, this.windowMs));
    const now = this.now();
    if (this.blocked.size > 100_000) {
      for (const [stale, until] of this.blocked) if (until <= now) this.blocked.delete(stale);
    }
    this.blocked.set(key, now + resetInMs);
    return counted.count > this.limit ? Math.ceil(resetInMs / 1000) : 0;
  }
}
