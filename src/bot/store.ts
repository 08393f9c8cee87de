import type { Redis } from 'ioredis';

/**
 * Conversation state that must outlive one update: a draft being composed, an album being
 * collected, a confirm waiting to be retried, a history page's cursor. In Redis when REDIS_URL is
 * set (it then survives a restart and is shared by every bot process), in memory otherwise.
 */
export interface ConversationStore {
  get<T>(key: string): Promise<T | null>;
  set(key: string, value: unknown, ttlSeconds: number): Promise<void>;
  delete(key: string): Promise<void>;
  /** Keys starting with `prefix` (for the retry of confirms after a restart). */
  keys(prefix: string): Promise<string[]>;
}

export class MemoryConversationStore implements ConversationStore {
  private readonly entries = new Map<string, { value: string; expiresAt: number }>();

  async get<T>(key: string): Promise<T | null> {
    const entry = this.entries.get(key);
    if (!entry) return null;
    if (entry.expiresAt <= Date.now()) {
      this.entries.delete(key);
      return null;
    }
    return JSON.parse(entry.value) as T;
  }

  async set(key: string, value: unknown, ttlSeconds: number): Promise<void> {
    // Copied, as Redis would: a caller changing its object later does not change what is stored.
    this.entries.set(key, {
      value: JSON.stringify(value),
      expiresAt: Date.now() + ttlSeconds * 1000,
    });
    if (this.entries.size > 100_000) this.sweep();
  }

  async delete(key: string): Promise<void> {
    this.entries.delete(key);
  }

  async keys(prefix: string): Promise<string[]> {
    this.sweep();
    return [...this.entries.keys()].filter((key) => key.startsWith(prefix));
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(key);
  }
}

export class RedisConversationStore implements ConversationStore {
  constructor(
    private readonly redis: Redis,
    private readonly namespace = 'imagegen:bot:',
  ) {}

  async get<T>(key: string): Promise<T | null> {
    const raw = await this.redis.get(this.namespace + key);
    return raw === null ? null : (JSON.parse(raw) as T);
  }

  async set(key: string, value: unknown, ttlSeconds: number): Promise<void> {
    await this.redis.set(this.namespace + key, JSON.stringify(value), 'EX', ttlSeconds);
  }

  async delete(key: string): Promise<void> {
    await this.redis.del(this.namespace + key);
  }

  async keys(prefix: string): Promise<string[]> {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await this.redis.scan(
        cursor,
        'MATCH',
        `${this.namespace}${prefix}*`,
        'COUNT',
        500,
      );
      cursor = next;
      found.push(...batch.map((key) => key.slice(this.namespace.length)));
    } while (cursor !== '0');
    return found;
  }
}
