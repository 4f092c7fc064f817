import { performance } from "node:perf_hooks";

/** A token bucket's shape: tokens added per second, and the most it holds. */
export interface RateLimit {
  readonly perSecond: number;
  readonly burst: number;
}

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date (performance.now() ms). */
  at: number;
}

/**
 * Buckets kept by default. Each costs about 150 bytes plus its name, so the
 * map stays under a few MB whatever names callers send.
 */
export const DEFAULT_MAX_BUCKETS = 10_000;

/** After an eviction the map holds at most this share of its bound, so evictions stay rare. */
const EVICT_TO = 0.9;

/**
 * One token bucket per name (a project), refilled continuously. Names come
 * from callers, so the map is bounded: a bucket that has refilled to its
 * burst behaves exactly like a missing one and is dropped first; only when
 * more than `maxBuckets` names are all busy at once are the fullest of the
 * busy ones dropped too (their projects start again from a full bucket).
 */
export class TokenBuckets {
  readonly #buckets = new Map<string, Bucket>();
  readonly #perMs: number;
  readonly #burst: number;

  constructor(
    limit: RateLimit,
    private readonly maxBuckets: number = DEFAULT_MAX_BUCKETS,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(limit.perSecond > 0) || !(limit.burst >= 1)) {
      throw new RangeError("a rate limit needs a positive rate and a burst of at least 1");
    }
    this.#perMs = limit.perSecond / 1000;
    this.#burst = limit.burst;
  }

  /** Buckets held now. */
  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Takes one token from the name's bucket. Returns 0 when there was one,
   * else how many ms until there will be (nothing is taken then).
   */
  take(name: string): number {
    const now = this.now();
    let bucket = this.#buckets.get(name);
    if (bucket === undefined) {
      if (this.#buckets.size >= this.maxBuckets) this.#evict(now);
      bucket = { tokens: this.#burst, at: now };
      this.#buckets.set(name, bucket);
    } else {
      bucket.tokens = this.#refilled(bucket, now);
      bucket.at = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return (1 - bucket.tokens) / this.#perMs;
  }

  #refilled(bucket: Bucket, now: number): number {
    return Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#perMs);
  }

  #evict(now: number): void {
    for (const [name, bucket] of this.#buckets) {
      if (this.#refilled(bucket, now) >= this.#burst) this.#buckets.delete(name);
    }
    const keep = Math.floor(this.maxBuckets * EVICT_TO);
    if (this.#buckets.size <= keep) return;
    // Every bucket is in use: drop those closest to full, whose projects
    // gain the least from starting over.
    const fullest = [...this.#buckets].sort(
      ([, a], [, b]) => this.#refilled(b, now) - this.#refilled(a, now),
    );
    for (const [name] of fullest.slice(0, this.#buckets.size - keep)) this.#buckets.delete(name);
  }
}
