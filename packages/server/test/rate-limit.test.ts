/**
 * Per-key token buckets (rate-limit.ts): a key's rate may change while its
 * bucket lives (a role with its own rate granted or taken away).
 */
import { describe, expect, it } from 'vitest';
import { TokenBuckets } from '../src/rate-limit.js';

describe('token buckets', () => {
  it('refills up to the rate the key has now, not the one its bucket was made with', () => {
    const clock = { now: 1_000_000 };
    const buckets = new TokenBuckets(() => clock.now);
    const slow = { perSecond: 1, burst: 2 };
    const fast = { perSecond: 1, burst: 10 };
    expect(buckets.take('k', slow).ok).toBe(true);
    expect(buckets.take('k', slow).ok).toBe(true);
    expect(buckets.take('k', slow)).toEqual({ ok: false, retryAfterMs: 1000 });
    clock.now += 20_000;
    let taken = 0;
    while (buckets.take('k', fast).ok) taken++;
    expect(taken).toBe(10);
    // Back to the slow rate: what is left is capped at its burst.
    clock.now += 20_000;
    taken = 0;
    while (buckets.take('k', slow).ok) taken++;
    expect(taken).toBe(2);
  });
});
