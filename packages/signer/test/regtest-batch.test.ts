/**
 * Batch payouts (issue 13) on a real regtest node: a 100-output batch from a
 * 2-of-3 wallet is signed by two signer processes (each with its own
 * keystore, database and HTTP connection), combined, finalized, accepted by
 * the node and mined; the mined transaction pays each of the 100 outputs
 * exactly, plus the wallet's change.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildPsbt,
  combinePsbts,
  deriveAddress,
  finalizePsbt,
  psbtFromBase64,
  scriptToAddress,
  syncChain,
  UtxoTracker,
} from '@custos/bitcoin';
import { type RegtestNode, startRegtestNode } from '@custos/bitcoin/regtest';
import { type Address, type Amount, type Policy, sha256, toHex, utf8 } from '@custos/core';
import {
  initKeystore,
  type RunningSigner,
  runSigner,
  waitForOutput,
  writeConfig,
} from '@custos/test-support/signer-process';
import { makeWorld, type World } from '@custos/test-support/world';
import { Transaction } from '@scure/btc-signer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeCoordinator, startFakeCoordinator } from './support/fake-coordinator.js';

let dir: string;
let node: RegtestNode;
let coordinator: FakeCoordinator;
let world: World;
const signers: RunningSigner[] = [];

/** Customers' addresses (in no book) under the same two approvals as the book. */
function withCustomers(p: Policy): Policy {
  return {
    ...p,
    rules: [
      ...p.rules,
      {
        id: 'customers',
        match: { destination: { kind: 'any' } },
        action: 'allow',
        approvals: [{ m: 2, role: 'approver' }],
      },
    ],
  };
}

function customer(k: number): Address {
  const program = sha256(utf8(`regtest batch customer ${k}`)).slice(0, 20);
  return scriptToAddress(new Uint8Array([0x00, 0x14, ...program]), 'regtest') as Address;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custos-regtest-batch-'));
  const [k1, k2] = await Promise.all([initKeystore(dir, 'signer-1'), initKeystore(dir, 'signer-2')]);
  world = makeWorld({ firstKey: k1.descriptorKey, secondKey: k2.descriptorKey, policy: withCustomers });
  world.clock.now = Date.now();
  node = await startRegtestNode();
  await node.activateSegwit();
  coordinator = await startFakeCoordinator(
    new Map([
      ['signer-1', k1.identityKey],
      ['signer-2', k2.identityKey],
    ]),
  );
  coordinator.setGovernance(world.governance);
  for (const id of ['signer-1', 'signer-2']) {
    const s = runSigner(writeConfig(dir, id, coordinator.url, world.org.orgId));
    signers.push(s);
    await waitForOutput(s, 'signer.started');
  }
}, 120_000);

afterAll(async () => {
  for (const s of signers) s.child.kill('SIGTERM');
  await Promise.all(signers.map((s) => s.exited));
  await coordinator?.close();
  await node?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('a 100-output batch on a real regtest node', () => {
  it('is signed by two signer processes, accepted and mined, each output exact', async () => {
    await node.fund(deriveAddress(world.descriptor, 0, 0).script, 30_000_000n);
    await node.mine(1);
    const watch = new Map<string, { wallet: string; branch: 0 | 1; index: number }>();
    for (const branch of [0, 1] as const) {
      watch.set(toHex(deriveAddress(world.descriptor, branch, 0).script), {
        wallet: 'btc-main',
        branch,
        index: 0,
      });
    }
    const tracker = new UtxoTracker((script) => watch.get(toHex(script)) ?? null);
    await syncChain(node.rpc, tracker);
    const utxos = tracker.utxos('btc-main');

    const outputs = Array.from({ length: 100 }, (_, k) => ({
      to: customer(k),
      amount: (20_000 + 211 * k).toString() as Amount,
    }));
    const total = outputs.reduce((s, o) => s + BigInt(o.amount), 0n);
    const intent = world.intent(total, { to: outputs[0]!.to, outputs });
    const built = buildPsbt({
      wallet: world.descriptor,
      utxos: utxos.map((u) => ({
        txid: u.txid,
        vout: u.vout,
        value: u.value,
        branch: u.branch,
        index: u.index,
        prevTx: u.prevTx,
      })),
      to: intent.intent.to,
      amount: total,
      outputs: outputs.map((o) => ({ to: o.to, amount: BigInt(o.amount) })),
      feeRate: 3n,
      changeIndex: 0,
    });
    if (!built.ok) throw new Error(built.message);
    const approvals = world.approve(intent);
    coordinator.push(world.job(intent, approvals, built.value.psbt, { id: 'b-1', signer: 'signer-1' }));
    coordinator.push(world.job(intent, approvals, built.value.psbt, { id: 'b-2', signer: 'signer-2' }));
    const results = await coordinator.waitForResults(2);
    expect(results.map((r) => [r.receipt.signer, r.receipt.outcome]).sort()).toEqual([
      ['signer-1', 'signed'],
      ['signer-2', 'signed'],
    ]);
    const combined = combinePsbts(
      results.map((r) => {
        const p = psbtFromBase64(r.psbt!);
        if (!p.ok) throw new Error(p.message);
        return p.value;
      }),
    );
    if (!combined.ok) throw new Error(combined.message);
    const final = finalizePsbt(combined.value);
    if (!final.ok) throw new Error(final.message);

    const txid = await node.rpc.sendRawTransaction(final.value.hex);
    expect(txid).toBe(built.value.txid);
    await node.mine(1);
    await syncChain(node.rpc, tracker);
    // The wallet's coin is spent; its change came back to the change branch, confirmed.
    const after = tracker.utxos('btc-main');
    expect(after).toHaveLength(1);
    expect(after[0]).toMatchObject({ txid, branch: 1, index: 0 });
    expect(after[0]!.value).toBe(30_000_000n - total - built.value.fee);
    expect(built.value.fee).toBeLessThanOrEqual(100_000n);

    const paid = Transaction.fromRaw(final.value.tx, { allowUnknownOutputs: true });
    const got: string[] = [];
    for (let j = 0; j < paid.outputsLength; j++) {
      const o = paid.getOutput(j);
      const address = scriptToAddress(o.script!, 'regtest');
      if (address !== undefined && outputs.some((x) => x.to === address)) got.push(`${address}:${o.amount}`);
    }
    expect(got.sort()).toEqual(outputs.map((o) => `${o.to}:${o.amount}`).sort());
    expect(paid.outputsLength).toBe(101);
  });
});
