/**
 * Rolling limits from sums (issue 11): the signer's SQLite answers the
 * questions a decision asks of its ledger (running totals, an EXISTS, a
 * bounded history) exactly as core's in-memory scan of the same entries,
 * over random ledgers inserted in random order (clocks stepped back
 * included), amounts beyond 2^63, and a store reopened from disk; and the
 * running totals are rebuilt for a file that lacks them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Amount,
  type Digest,
  type Intent,
  LARGE_AMOUNT_HISTORY,
  type LedgerEntry,
  ledgerSums,
  ledgerViewOf,
  type Policy,
  type RollingLimit,
} from '@custos/core';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { type LedgerRow, SignerStore } from '../src/store.js';

const dir = mkdtempSync(join(tmpdir(), 'custos-ledger-sums-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

const NOW = 1_700_000_000_000;
const digestOf = (n: number) => n.toString(16).padStart(64, '0') as Digest;

const entryArb = fc.record({
  intent: fc.integer({ min: 0, max: 60 }).map(digestOf),
  wallet: fc.constantFrom('hot', 'cold'),
  asset: fc.constantFrom('BTC', 'ETH'),
  amount: fc
    .oneof(fc.bigInt({ min: 1n, max: 10n ** 9n }), fc.bigInt({ min: 1n, max: 10n ** 77n }))
    .map((a) => a.toString() as Amount),
  to: fc.constantFrom('bcrt1qa', 'bcrt1qb', 'x|"y"'),
  requester: fc.constantFrom('rita', 'ralph'),
  // Often the same moment (entries of one millisecond), sometimes dated after others already written.
  at: fc.oneof(
    fc.integer({ min: NOW - 3 * 86_400_000, max: NOW + 3_600_000 }),
    fc.constantFrom(NOW - 60_000, NOW, NOW + 5),
  ),
});
const limitArb = fc.record({
  id: fc.constant('l'),
  scope: fc.constantFrom('wallet-asset', 'destination', 'requester') as fc.Arbitrary<RollingLimit['scope']>,
  asset: fc.constantFrom('BTC', 'ETH'),
  max: fc.constant('1'),
  windowMs: fc.integer({ min: 0, max: 2 * 86_400_000 }),
  wallet: fc.option(fc.constantFrom('hot', 'cold'), { nil: undefined }),
});

function row(e: LedgerEntry, i: number): LedgerRow {
  return {
    ...e,
    txid: e.intent,
    job: `job-${i}`,
    result: {
      receipt: {
        v: 1,
        signer: 's',
        job: `job-${i}`,
        intent: e.intent,
        txid: null,
        outcome: 'refused',
        code: 'INTERNAL',
        governanceSeq: 0,
        governanceHead: digestOf(0),
        at: e.at,
      },
      signature: '00'.repeat(64),
    } as unknown as LedgerRow['result'],
    changeIndex: null,
  };
}

describe('the signer store answers ledger questions as the in-memory scan does', () => {
  it('sums, earlier payments and recent history agree over random ledgers (property)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(entryArb, { selector: (e) => e.intent, maxLength: 30 }),
        fc.array(limitArb, { minLength: 1, maxLength: 5 }),
        entryArb,
        fc.boolean(),
        (entries, rawLimits, shape, reopen) => {
          const path = join(dir, `ledger-${files++}.db`);
          let store = new SignerStore(path);
          try {
            store.exclusive(() => {
              for (const [i, e] of entries.entries()) store.insertLedger(row(e as LedgerEntry, i));
            });
            if (reopen) {
              store.close();
              store = new SignerStore(path);
            }
            const limits = rawLimits.map(
              ({ wallet, ...rest }) => (wallet === undefined ? rest : { ...rest, wallet }) as RollingLimit,
            );
            const intent = { ...shape, org: 'o', chain: 'bitcoin:regtest' } as unknown as Intent;
            const sql = store.ledgerView();
            const memory = ledgerViewOf(entries as LedgerEntry[]);
            for (const s of ledgerSums([{ limits } as unknown as Policy], intent, shape.intent, NOW)) {
              expect(sql.sum(s.query)).toBe(memory.sum(s.query));
              // Every window edge, including at an entry's own time.
              for (const e of entries.slice(0, 5)) {
                const q = { ...s.query, since: e.at };
                expect(sql.sum(q)).toBe(memory.sum(q));
              }
            }
            for (const e of [shape, ...entries.slice(0, 3)]) {
              expect(sql.paid(e.to, shape.intent)).toBe(memory.paid(e.to, shape.intent));
              expect(sql.recent(e.wallet, e.asset, LARGE_AMOUNT_HISTORY, shape.intent)).toEqual(
                memory.recent(e.wallet, e.asset, LARGE_AMOUNT_HISTORY, shape.intent),
              );
              expect(sql.recent(e.wallet, e.asset, 3, shape.intent)).toEqual(
                memory.recent(e.wallet, e.asset, 3, shape.intent),
              );
            }
          } finally {
            store.close();
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('rebuilds the running totals of a ledger file that has none', () => {
    const path = join(dir, 'old-file.db');
    const entries = Array.from({ length: 12 }, (_, i) => ({
      intent: digestOf(100 + i),
      wallet: 'hot',
      asset: 'BTC',
      amount: String(1000 + i) as Amount,
      to: 'bcrt1qa' as LedgerEntry['to'],
      requester: 'rita',
      at: NOW - i * 60_000,
    }));
    const store = new SignerStore(path);
    store.exclusive(() => {
      for (const [i, e] of entries.entries()) store.insertLedger(row(e, i));
    });
    store.db.exec('DELETE FROM ledger_totals');
    store.close();
    const reopened = new SignerStore(path);
    try {
      const q = { asset: 'BTC', wallet: 'hot', since: NOW - 5 * 60_000 - 1, exclude: digestOf(1) };
      expect(reopened.ledgerView().sum(q)).toBe(ledgerViewOf(entries).sum(q));
      expect(reopened.ledgerView().sum(q)).toBe(1000n + 1001n + 1002n + 1003n + 1004n + 1005n);
    } finally {
      reopened.close();
    }
  });

  it('a ledger row altered on disk is refused when read, not counted', () => {
    const path = join(dir, 'altered.db');
    const store = new SignerStore(path);
    try {
      const e = {
        intent: digestOf(7),
        wallet: 'hot',
        asset: 'BTC',
        amount: '5' as Amount,
        to: 'bcrt1qa' as LedgerEntry['to'],
        requester: 'rita',
        at: NOW,
      };
      store.exclusive(() => store.insertLedger(row(e, 0)));
      store.db.prepare("UPDATE ledger SET amount = '-5' WHERE intent = ?").run(e.intent);
      expect(() => store.ledgerFor(e.intent)).toThrow();
      store.db.prepare("UPDATE ledger_totals SET cum = '1e9'").run();
      expect(() =>
        store.ledgerView().sum({ asset: 'BTC', wallet: 'hot', since: 0, exclude: digestOf(1) }),
      ).toThrow();
    } finally {
      store.close();
    }
  });
});
