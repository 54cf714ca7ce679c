/**
 * Batch payouts (issue 13) through a real signer process: a batch intent is
 * signed when the PSBT pays exactly its outputs plus change, and a hostile
 * coordinator (THREATS 23-24: it builds the transaction) that hands the same
 * approved batch with one output dropped, added or changed gets
 * UNEXPECTED_OUTPUT, nothing signed, a critical alert, and nothing in the
 * signer's ledger. The honest PSBT for the same intent is still signed
 * afterwards, and the ledger records the batch once with all its outputs.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildPsbt } from '@custos/bitcoin';
import { type Amount, intentDigest } from '@custos/core';
import type { FakeCoordinator } from '@custos/test-support/fake-coordinator';
import { withCustomers } from '@custos/test-support/org';
import { ATTACKER, customerAddress } from '@custos/test-support/psbt-fixtures';
import {
  initKeystore,
  type KeystoreInfo,
  type RunningSigner,
  waitForOutput,
} from '@custos/test-support/signer-process';
import { makeWorld, type World } from '@custos/test-support/world';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignerStore } from '../src/store.js';
import { startStand, stopStand } from './support/stand.js';

let dir: string;
let keystore: KeystoreInfo;
let world: World;
let coordinator: FakeCoordinator;
let signer: RunningSigner;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custos-signer-batch-'));
  keystore = await initKeystore(dir, 'signer-1');
  world = makeWorld({ firstKey: keystore.descriptorKey, policy: withCustomers });
  world.clock.now = Date.now();
  ({ coordinator, signer } = await startStand(dir, keystore, world));
});

afterAll(() => stopStand(signer, coordinator, dir));

describe('a batch through the signer process', () => {
  const outputs = Array.from({ length: 12 }, (_, k) => ({
    to: customerAddress(`process batch customer ${k}`),
    amount: (20_000 + k * 1_000).toString() as Amount,
  }));
  const total = outputs.reduce((s, o) => s + BigInt(o.amount), 0n);

  function batchIntent() {
    return world.intent(total, { to: outputs[0]!.to, outputs });
  }

  it('signs a batch whose PSBT pays exactly its outputs plus change', async () => {
    const intent = batchIntent();
    const built = world.build(intent, { utxos: world.utxos([total + 100_000n]) });
    coordinator.push(world.job(intent, world.approve(intent), built.psbt, { id: 'job-batch' }));
    const [result] = await coordinator.waitForResults(1);
    expect(result!.receipt).toMatchObject({ job: 'job-batch', outcome: 'signed', txid: built.txid });
  });

  it('THREATS 23-24: refuses the approved batch with one output dropped, added or changed (UNEXPECTED_OUTPUT, nothing signed, an alert)', async () => {
    const intent = batchIntent();
    const approvals = world.approve(intent);
    const utxos = world.utxos([total + 100_000n]);
    const pay = (list: readonly { to: string; amount: string }[]) => {
      const sum = list.reduce((s, o) => s + BigInt(o.amount), 0n);
      const r = buildPsbt({
        wallet: world.descriptor,
        utxos,
        to: list[0]!.to,
        amount: sum,
        outputs: list.map((o) => ({ to: o.to, amount: BigInt(o.amount) })),
        feeRate: 5n,
        changeIndex: 0,
      });
      if (!r.ok) throw new Error(r.message);
      return r.value.psbt;
    };
    const hostile: [string, Uint8Array][] = [
      ['job-dropped', pay(outputs.filter((_, k) => k !== 5))],
      ['job-added', pay([...outputs, { to: ATTACKER, amount: '30000' }])],
      ['job-changed', pay(outputs.map((o, k) => (k === 7 ? { ...o, to: ATTACKER } : o)))],
      [
        'job-amount',
        pay(outputs.map((o, k) => (k === 3 ? { ...o, amount: String(BigInt(o.amount) + 1n) } : o))),
      ],
    ];
    for (const [id, psbt] of hostile) coordinator.push(world.job(intent, approvals, psbt, { id }));
    const results = (await coordinator.waitForResults(1 + hostile.length)).slice(1);
    for (const [n, [id]] of hostile.entries()) {
      const r = results.find((x) => x.receipt.job === id);
      expect(r?.receipt, `${n}`).toMatchObject({ job: id, outcome: 'refused', code: 'UNEXPECTED_OUTPUT' });
      expect(r?.psbt).toBeUndefined();
      expect(r?.alert).toEqual({ severity: 'critical', code: 'UNEXPECTED_OUTPUT' });
    }
    await waitForOutput(signer, '"job":"job-amount"');
    expect(signer.output()).toContain('"code":"UNEXPECTED_OUTPUT"');

    // The honest PSBT of the same intent is signed: the refusals left nothing behind.
    coordinator.push(world.job(intent, approvals, pay(outputs), { id: 'job-honest' }));
    const all = await coordinator.waitForResults(2 + hostile.length);
    expect(all.at(-1)?.receipt).toMatchObject({
      job: 'job-honest',
      outcome: 'signed',
      intent: intentDigest(intent.intent),
    });
  });

  it('keeps each batch once in its ledger, with its outputs; the refusals recorded as decisions only', async () => {
    signer.child.kill('SIGTERM');
    expect(await signer.exited).toBe(0);
    const store = new SignerStore(join(dir, 'signer-1.db'));
    try {
      const rows = store.allLedger();
      expect(rows).toHaveLength(2);
      for (const row of rows) {
        expect(row.amount).toBe(total.toString());
        expect(row.outputs).toEqual(outputs);
      }
      expect(store.decisions().map((d) => [d.job, d.outcome, d.code])).toEqual([
        ['job-batch', 'signed', null],
        ['job-dropped', 'refused', 'UNEXPECTED_OUTPUT'],
        ['job-added', 'refused', 'UNEXPECTED_OUTPUT'],
        ['job-changed', 'refused', 'UNEXPECTED_OUTPUT'],
        ['job-amount', 'refused', 'UNEXPECTED_OUTPUT'],
        ['job-honest', 'signed', null],
      ]);
      // A destination limit reads each output from the running totals.
      const view = store.ledgerView();
      expect(
        view.sum({
          asset: 'BTC',
          since: 0,
          exclude: '0'.repeat(64) as never,
          to: customerAddress('process batch customer 5'),
        }),
      ).toBe(2n * 25_000n);
      expect(view.paid(customerAddress('process batch customer 11'), '0'.repeat(64) as never)).toBe(true);
    } finally {
      store.close();
    }
  });
});
