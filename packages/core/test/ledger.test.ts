/**
 * The ledger questions of a decision (ledger.ts) ask exactly what the old
 * linear scan summed: for random ledgers, limits and intents, each limit's
 * query over the entries is rollingUsage (the scan kept as the reference),
 * and evaluate decides the same given the entries or their view.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LARGE_AMOUNT_HISTORY, ledgerSums, ledgerViewOf } from '../src/ledger.js';
import type { Intent, LedgerEntry, Policy, RollingLimit } from '../src/objects.js';
import { rollingUsage } from '../src/policy.js';
import type { Address, Amount, Digest, Millis } from '../src/types.js';

const NOW = 1_700_000_000_000 as Millis;
const digestOf = (n: number) => n.toString(16).padStart(64, '0') as Digest;

const amountArb = fc.oneof(
  fc.bigInt({ min: 1n, max: 10n ** 9n }),
  fc.bigInt({ min: 1n, max: 10n ** 77n }), // beyond 2^63: wei-sized amounts, summed exactly
);
const entryArb = fc.record({
  intent: fc.integer({ min: 0, max: 40 }).map(digestOf),
  wallet: fc.constantFrom('hot', 'cold'),
  asset: fc.constantFrom('BTC', 'ETH'),
  amount: amountArb.map((a) => a.toString() as Amount),
  to: fc.constantFrom('addr-a', 'addr-b', 'addr-c').map((a) => a as Address),
  requester: fc.constantFrom('rita', 'ralph'),
  at: fc.integer({ min: NOW - 3 * 86_400_000, max: NOW + 3_600_000 }),
});
const limitArb = fc.record({
  id: fc.constant('l'),
  scope: fc.constantFrom('wallet-asset', 'destination', 'requester') as fc.Arbitrary<RollingLimit['scope']>,
  asset: fc.constantFrom('BTC', 'ETH'),
  max: fc.constant('1000000000000'),
  windowMs: fc.integer({ min: 0, max: 2 * 86_400_000 }),
  wallet: fc.option(fc.constantFrom('hot', 'cold'), { nil: undefined }),
});

describe('ledger questions', () => {
  it('each binding limit sums what rollingUsage (the old scan) sums, exactly (property)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(entryArb, { selector: (e) => e.intent, maxLength: 40 }),
        fc.array(limitArb, { minLength: 1, maxLength: 4 }),
        entryArb,
        (entries: LedgerEntry[], rawLimits, shape) => {
          const limits = rawLimits.map((l) => {
            const { wallet, ...rest } = l;
            return (wallet === undefined ? rest : { ...rest, wallet }) as RollingLimit;
          });
          const intent = { ...shape, org: 'o', chain: 'bitcoin:regtest' } as unknown as Intent;
          const digest = shape.intent;
          const policy = { limits } as unknown as Policy;
          const view = ledgerViewOf(entries);
          const sums = ledgerSums([policy], intent, digest, NOW);
          const binding = limits.filter(
            (l) => l.asset === intent.asset && (l.wallet === undefined || l.wallet === intent.wallet),
          );
          expect(sums.map((s) => s.limit)).toEqual(binding);
          for (const s of sums) {
            expect(view.sum(s.query)).toBe(rollingUsage(entries, s.limit, intent, NOW, digest));
          }
          expect(view.paid(intent.to, digest)).toBe(
            entries.some((e) => e.to === intent.to && e.intent !== digest),
          );
          const history = view.recent(intent.wallet, intent.asset, LARGE_AMOUNT_HISTORY, digest);
          expect([...history].sort()).toEqual(
            entries
              .filter((e) => e.wallet === intent.wallet && e.asset === intent.asset && e.intent !== digest)
              .map((e) => BigInt(e.amount))
              .sort(),
          );
        },
      ),
      { numRuns: 400 },
    );
  });

  it('recent history is bounded, newest first', () => {
    const entries: LedgerEntry[] = Array.from({ length: 5 }, (_, i) => ({
      intent: digestOf(i),
      wallet: 'hot',
      asset: 'BTC',
      amount: String(i + 1) as Amount,
      to: 'addr-a' as Address,
      requester: 'rita',
      at: NOW - i * 1000,
    }));
    expect(ledgerViewOf(entries).recent('hot', 'BTC', 3, digestOf(1))).toEqual([1n, 3n, 4n]);
  });
});
