/**
 * LedgerIndex (the coordinator's preview ledger, kept in memory and indexed)
 * answers every question exactly as the linear scan of ledgerViewOf does,
 * after any sequence of additions (in or out of time order), removals and
 * prunes (property), and a sum costs two binary searches, not a scan.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LedgerIndex, type LedgerSum, ledgerViewOf } from '../src/ledger.js';
import type { LedgerEntry } from '../src/objects.js';
import type { Address, Amount, Digest, Millis } from '../src/types.js';

const NOW = 1_700_000_000_000;
const digestOf = (n: number) => n.toString(16).padStart(64, '0') as Digest;

const entryArb = fc.record({
  intent: fc.integer({ min: 0, max: 60 }).map(digestOf),
  wallet: fc.constantFrom('hot', 'cold'),
  asset: fc.constantFrom('BTC', 'ETH'),
  amount: fc
    .oneof(fc.bigInt({ min: 1n, max: 10n ** 9n }), fc.bigInt({ min: 1n, max: 10n ** 77n }))
    .map((a) => a.toString() as Amount),
  to: fc.constantFrom('addr-a', 'addr-b', 'addr-c').map((a) => a as Address),
  requester: fc.constantFrom('rita', 'ralph'),
  // Few distinct times, so ties (same at, ordered by intent) are common.
  at: fc.integer({ min: 0, max: 30 }).map((m) => (NOW + m * 60_000) as Millis),
});
type Op =
  | { kind: 'add'; e: LedgerEntry }
  | { kind: 'remove'; intent: Digest }
  | { kind: 'prune'; before: Millis };
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: entryArb.map((e) => ({ kind: 'add' as const, e })) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 0, max: 60 }).map((n) => ({ kind: 'remove' as const, intent: digestOf(n) })),
  },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 0, max: 30 })
      .map((m) => ({ kind: 'prune' as const, before: (NOW + m * 60_000) as Millis })),
  },
);
const queryArb: fc.Arbitrary<LedgerSum> = fc.record(
  {
    asset: fc.constantFrom('BTC', 'ETH'),
    since: fc.integer({ min: -1, max: 31 }).map((m) => (NOW + m * 60_000) as Millis),
    exclude: fc.integer({ min: 0, max: 60 }).map(digestOf),
    wallet: fc.constantFrom('hot', 'cold'),
    to: fc.constantFrom('addr-a', 'addr-b', 'addr-c'),
    requester: fc.constantFrom('rita', 'ralph'),
  },
  { requiredKeys: ['asset', 'since', 'exclude'] },
);

describe('LedgerIndex', () => {
  it('answers sum, paid and recent exactly as the scan of the same entries (property)', () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { maxLength: 80 }),
        fc.array(queryArb, { minLength: 1, maxLength: 20 }),
        (ops, queries) => {
          const index = new LedgerIndex();
          const held = new Map<Digest, LedgerEntry>();
          for (const op of ops) {
            if (op.kind === 'add') {
              expect(index.add(op.e)).toBe(!held.has(op.e.intent));
              if (!held.has(op.e.intent)) held.set(op.e.intent, op.e);
            } else if (op.kind === 'remove') {
              expect(index.remove(op.intent)).toBe(held.delete(op.intent));
            } else {
              index.prune(op.before);
              for (const [k, e] of held) if (e.at <= op.before) held.delete(k);
            }
          }
          const scan = ledgerViewOf([...held.values()]);
          expect(index.size).toBe(held.size);
          for (const q of queries) {
            expect(index.sum(q)).toBe(scan.sum(q));
            expect(index.paid(q.to ?? 'addr-a', q.exclude)).toBe(scan.paid(q.to ?? 'addr-a', q.exclude));
            const wallet = q.wallet ?? 'hot';
            expect(index.recent(wallet, q.asset, 5, q.exclude)).toEqual(
              scan.recent(wallet, q.asset, 5, q.exclude),
            );
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("sums over 100,000 entries, before and after pruning half of them, are the scan's", () => {
    const entries: LedgerEntry[] = [];
    for (let i = 0; i < 100_000; i++) {
      entries.push({
        intent: digestOf(i),
        wallet: 'hot',
        asset: 'BTC',
        amount: '1000' as Amount,
        to: `addr-${i % 7}` as Address,
        requester: 'rita',
        at: (NOW + i) as Millis,
      });
    }
    const index = new LedgerIndex(entries);
    const q: LedgerSum = {
      asset: 'BTC',
      wallet: 'hot',
      since: (NOW + 49_999) as Millis,
      exclude: digestOf(0),
    };
    expect(index.sum(q)).toBe(50_000n * 1000n);
    expect(index.sum({ ...q, to: 'addr-3' })).toBe(ledgerViewOf(entries).sum({ ...q, to: 'addr-3' }));
    // The same answers after the early half is pruned.
    index.prune((NOW + 49_999) as Millis);
    expect(index.size).toBe(50_000);
    expect(index.sum(q)).toBe(50_000n * 1000n);
  });
});
