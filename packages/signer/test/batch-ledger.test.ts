/**
 * Batch payouts in the signer's ledger (issue 13): one row per intent, its
 * total and first destination, carrying the batch's outputs. The store's
 * running totals answer every sum a decision asks exactly as core's scan of
 * the same entries (the wallet and requester keys count a batch's total,
 * each destination key what the batch paid it), a retry of a signed batch
 * (its own digest excluded) counts nothing of it, FIRST_PAYMENT sees every
 * destination, and a ledger file from before batches is migrated.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Amount,
  type Digest,
  type Intent,
  type LedgerEntry,
  ledgerSums,
  ledgerViewOf,
  type Policy,
  type RollingLimit,
} from '@custos/core';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { type LedgerRow, SignerStore } from '../src/store.js';

const dir = mkdtempSync(join(tmpdir(), 'custos-batch-ledger-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

const NOW = 1_700_000_000_000;
const digestOf = (n: number) => n.toString(16).padStart(64, '0') as Digest;
const DESTS = ['bcrt1qa', 'bcrt1qb', 'bcrt1qc', 'bcrt1qd'] as LedgerEntry['to'][];

const outputsArb = fc.array(
  fc.record({
    to: fc.constantFrom(...DESTS),
    amount: fc.bigInt({ min: 1n, max: 10n ** 12n }).map((a) => a.toString() as Amount),
  }),
  { minLength: 2, maxLength: 6 },
);

const entryArb = fc
  .record({
    intent: fc.integer({ min: 0, max: 60 }).map(digestOf),
    wallet: fc.constantFrom('hot', 'cold'),
    asset: fc.constant('BTC'),
    requester: fc.constantFrom('svc', 'rita'),
    at: fc.integer({ min: NOW - 2 * 86_400_000, max: NOW + 60_000 }),
    single: fc.record({
      to: fc.constantFrom(...DESTS),
      amount: fc.bigInt({ min: 1n, max: 10n ** 12n }).map((a) => a.toString() as Amount),
    }),
    outputs: fc.option(outputsArb, { nil: undefined }),
  })
  .map(({ single, outputs, ...rest }): LedgerEntry => {
    if (outputs === undefined) return { ...rest, ...single };
    const total = outputs.reduce((s, o) => s + BigInt(o.amount), 0n);
    return { ...rest, to: outputs[0]!.to, amount: total.toString() as Amount, outputs };
  });

const limitArb = fc.record({
  id: fc.constant('l'),
  scope: fc.constantFrom('wallet-asset', 'destination', 'requester') as fc.Arbitrary<RollingLimit['scope']>,
  asset: fc.constant('BTC'),
  max: fc.constant('1'),
  windowMs: fc.integer({ min: 1, max: 2 * 86_400_000 }),
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

describe('the signer ledger with batches', () => {
  it('answers sums and first payments as the in-memory scan, for batch and single intents, retries excluded (property)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(entryArb, { selector: (e) => e.intent, maxLength: 25 }),
        fc.array(limitArb, { minLength: 1, maxLength: 4 }),
        entryArb,
        fc.boolean(),
        fc.boolean(),
        (entries, limits, shape, retry, reopen) => {
          const path = join(dir, `ledger-${files++}.db`);
          let store = new SignerStore(path);
          try {
            store.exclusive(() => {
              for (const [i, e] of entries.entries()) store.insertLedger(row(e, i));
            });
            if (reopen) {
              store.close();
              store = new SignerStore(path);
            }
            // A retry asks again for an intent already in the ledger: it must count nothing of it.
            const asked = retry && entries.length > 0 ? entries[0]! : shape;
            const intent = { ...asked, org: 'o', chain: 'bitcoin:regtest' } as unknown as Intent;
            const sql = store.ledgerView();
            const memory = ledgerViewOf(entries);
            for (const s of ledgerSums([{ limits } as unknown as Policy], intent, asked.intent, NOW)) {
              expect(sql.sum(s.query)).toBe(memory.sum(s.query));
            }
            for (const to of DESTS) expect(sql.paid(to, asked.intent)).toBe(memory.paid(to, asked.intent));
          } finally {
            store.close();
          }
        },
      ),
      { numRuns: 120 },
    );
  });

  it('migrates a ledger file from before batches: the outputs column is added, its rows count as before', () => {
    const path = join(dir, 'pre-batch.db');
    const old = new SignerStore(path);
    const e: LedgerEntry = {
      intent: digestOf(9),
      wallet: 'hot',
      asset: 'BTC',
      amount: '700' as Amount,
      to: DESTS[0]!,
      requester: 'svc',
      at: NOW - 1000,
    };
    old.exclusive(() => old.insertLedger(row(e, 0)));
    old.close();
    // The file as an earlier release left it: no outputs column, no ledger_outputs table.
    const raw = new Database(path);
    raw.exec('ALTER TABLE ledger DROP COLUMN outputs; DROP TABLE ledger_outputs;');
    raw.close();
    const store = new SignerStore(path);
    try {
      expect(store.allLedger().map((r) => [r.intent, r.amount, r.outputs])).toEqual([
        [e.intent, '700', undefined],
      ]);
      const batch: LedgerEntry = {
        intent: digestOf(10),
        wallet: 'hot',
        asset: 'BTC',
        amount: '300' as Amount,
        to: DESTS[1]!,
        outputs: [
          { to: DESTS[1]!, amount: '100' as Amount },
          { to: DESTS[0]!, amount: '200' as Amount },
        ],
        requester: 'svc',
        at: NOW,
      };
      store.exclusive(() => store.insertLedger(row(batch, 1)));
      const view = store.ledgerView();
      expect(view.sum({ asset: 'BTC', since: 0, exclude: digestOf(1), to: DESTS[0]! })).toBe(900n);
      expect(view.sum({ asset: 'BTC', since: 0, exclude: digestOf(1), wallet: 'hot' })).toBe(1000n);
      expect(view.sum({ asset: 'BTC', since: 0, exclude: batch.intent, to: DESTS[0]! })).toBe(700n);
      expect(view.paid(DESTS[0]!, e.intent)).toBe(true);
    } finally {
      store.close();
    }
  });
});
