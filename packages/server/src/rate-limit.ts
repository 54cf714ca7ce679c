/**
 * Per-key rate limiting (docs/api.md "Authentication"; THREATS 31).
 *
 * A token bucket per key id, in the memory of one process: with several
 * coordinators behind a load balancer each enforces its own budget, which
 * bounds the load on each and on the shared database without a round trip
 * per request. Buckets are charged only after a request's signature has
 * verified, so nobody can drain another key's budget by sending requests
 * that merely claim its key id; unauthenticated floods are answered at the
 * cost of one signature check and their audit entries are throttled apart
 * (audit-log.ts, RefusalAuditor).
 *
 * Memory is bounded: the keys are verified identities (members' devices and
 * signers, a governance-sized set), and buckets that have refilled are
 * dropped whenever the table grows past `maxKeys`.
 */
import type { Millis } from '@custos/core';

export interface BucketRate {
  /** Tokens added per second. */
  readonly perSecond: number;
  /** Bucket size: the most requests accepted at once after a quiet period. */
  readonly burst: number;
}

interface Bucket {
  tokens: number;
  at: Millis;
  rate: BucketRate;
}

/** The outcome of one take: allowed, or how long until a token is available. */
export type TakeResult = { readonly ok: true } | { readonly ok: false; readonly retryAfterMs: number };

export class TokenBuckets {
  readonly #buckets = new Map<string, Bucket>();
  readonly #clock: () => Millis;
  readonly #maxKeys: number;

  constructor(clock: () => Millis, maxKeys = 100_000) {
    this.#clock = clock;
    this.#maxKeys = maxKeys;
  }

  /** Takes one token from `key`'s bucket (created full at `rate`). */
  take(key: string, rate: BucketRate): TakeResult {
    const now = this.#clock();
    let b = this.#buckets.get(key);
    if (b === undefined) {
      if (this.#buckets.size >= this.#maxKeys) this.#sweep(now);
      b = { tokens: rate.burst, at: now, rate };
      this.#buckets.set(key, b);
    } else {
      // The key's rate may have changed (a role granted or taken away): it refills at the current one.
      b.rate = rate;
      refill(b, now);
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    const missing = 1 - b.tokens;
    return { ok: false, retryAfterMs: Math.ceil((missing / Math.max(rate.perSecond, 1e-9)) * 1000) };
  }

  /** Number of buckets held (for tests and metrics). */
  get size(): number {
    return this.#buckets.size;
  }

  /** Drops full buckets; if that is not enough, the oldest half. */
  #sweep(now: Millis): void {
    for (const [key, b] of this.#buckets) {
      refill(b, now);
      if (b.tokens >= b.rate.burst) this.#buckets.delete(key);
    }
    if (this.#buckets.size < this.#maxKeys) return;
    let drop = Math.ceil(this.#buckets.size / 2);
    for (const key of this.#buckets.keys()) {
      if (drop-- <= 0) break;
      this.#buckets.delete(key);
    }
  }
}

function refill(b: Bucket, now: Millis): void {
  // A clock that steps back adds nothing (and takes nothing away).
  const elapsed = Math.max(0, now - b.at);
  b.tokens = Math.min(b.rate.burst, b.tokens + (elapsed / 1000) * b.rate.perSecond);
  b.at = Math.max(b.at, now);
}
