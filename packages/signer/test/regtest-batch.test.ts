/**
 * Batch payouts (issue 13) on a real regtest node: a 100-output batch from a
 * 2-of-3 wallet is signed by two signer processes (each with its own
 * keystore, database and HTTP connection), combined, finalized, accepted by
 * the node and mined; the mined transaction pays each of the 100 outputs
 * exactly, plus the wallet's change.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildPsbt, deriveAddress, scriptToAddress, syncChain } from '@custos/bitcoin';
import { type RegtestNode, startRegtestNode } from '@custos/bitcoin/regtest';
import type { Amount } from '@custos/core';
import type { FakeCoordinator } from '@custos/test-support/fake-coordinator';
import { withCustomers } from '@custos/test-support/org';
import { customerAddress } from '@custos/test-support/psbt-fixtures';
import { initKeystore, type RunningSigner } from '@custos/test-support/signer-process';
import { makeWorld, type World } from '@custos/test-support/world';
import { Transaction } from '@scure/btc-signer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builderInputs, signByBoth, trackWallet } from './support/regtest.js';
import { startStand, stopStand } from './support/stand.js';

let dir: string;
let node: RegtestNode;
let coordinator: FakeCoordinator;
let world: World;
let signers: RunningSigner[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custos-regtest-batch-'));
  const keys = await Promise.all([initKeystore(dir, 'signer-1'), initKeystore(dir, 'signer-2')]);
  world = makeWorld({
    firstKey: keys[0]!.descriptorKey,
    secondKey: keys[1]!.descriptorKey,
    policy: withCustomers,
  });
  world.clock.now = Date.now();
  node = await startRegtestNode();
  await node.activateSegwit();
  ({ coordinator, signers } = await startStand(dir, keys, world));
}, 120_000);

afterAll(async () => {
  await stopStand(signers, coordinator, dir);
  await node?.close();
});

describe('a 100-output batch on a real regtest node', () => {
  it('is signed by two signer processes, accepted and mined, each output exact', async () => {
    await node.fund(deriveAddress(world.descriptor, 0, 0).script, 30_000_000n);
    await node.mine(1);
    const tracker = await trackWallet(node, world, 1);

    const outputs = Array.from({ length: 100 }, (_, k) => ({
      to: customerAddress(`regtest batch customer ${k}`),
      amount: (20_000 + 211 * k).toString() as Amount,
    }));
    const total = outputs.reduce((s, o) => s + BigInt(o.amount), 0n);
    const intent = world.intent(total, { to: outputs[0]!.to, outputs });
    const built = buildPsbt({
      wallet: world.descriptor,
      utxos: builderInputs(tracker),
      to: intent.intent.to,
      amount: total,
      outputs: outputs.map((o) => ({ to: o.to, amount: BigInt(o.amount) })),
      feeRate: 3n,
      changeIndex: 0,
    });
    if (!built.ok) throw new Error(built.message);
    const final = await signByBoth(coordinator, world, intent, built.value.psbt, 'b');

    const txid = await node.rpc.sendRawTransaction(final.hex);
    expect(txid).toBe(built.value.txid);
    await node.mine(1);
    await syncChain(node.rpc, tracker);
    // The wallet's coin is spent; its change came back to the change branch, confirmed.
    const after = tracker.utxos('btc-main');
    expect(after).toHaveLength(1);
    expect(after[0]).toMatchObject({ txid, branch: 1, index: 0 });
    expect(after[0]!.value).toBe(30_000_000n - total - built.value.fee);
    expect(built.value.fee).toBeLessThanOrEqual(100_000n);

    const paid = Transaction.fromRaw(final.tx, { allowUnknownOutputs: true });
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
