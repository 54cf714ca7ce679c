/**
 * On a real regtest node: a 2-of-3 wallet is funded, a withdrawal is signed
 * by two signer processes (each with its own keystore, database and HTTP
 * connection), combined, finalized, accepted by the node and mined; the same
 * transaction with its amount changed after signing is rejected by the node.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addressToScript, buildPsbt, deriveAddress, syncChain } from '@custos/bitcoin';
import { type RegtestNode, startRegtestNode } from '@custos/bitcoin/regtest';
import { CustosError, toHex } from '@custos/core';
import type { FakeCoordinator } from '@custos/test-support/fake-coordinator';
import { initKeystore, type RunningSigner } from '@custos/test-support/signer-process';
import { COLD_STORAGE, makeWorld, type World } from '@custos/test-support/world';
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
  dir = mkdtempSync(join(tmpdir(), 'custos-regtest-'));
  const keys = await Promise.all([initKeystore(dir, 'signer-1'), initKeystore(dir, 'signer-2')]);
  world = makeWorld({ firstKey: keys[0]!.descriptorKey, secondKey: keys[1]!.descriptorKey });
  world.clock.now = Date.now();
  node = await startRegtestNode();
  await node.activateSegwit();
  ({ coordinator, signers } = await startStand(dir, keys, world));
}, 120_000);

afterAll(async () => {
  await stopStand(signers, coordinator, dir);
  await node?.close();
});

describe('a 2-of-3 withdrawal on a real regtest node', () => {
  it('is funded and signed by two signer processes; the node rejects it altered after signing, accepts and mines it as signed', async () => {
    // Fund two receive addresses of the wallet and confirm them.
    for (const index of [0, 1]) {
      await node.fund(deriveAddress(world.descriptor, 0, index).script, 30_000_000n);
    }
    await node.mine(1);
    const tracker = await trackWallet(node, world);
    const utxos = tracker.utxos('btc-main');
    expect(utxos.map((u) => u.value)).toEqual([30_000_000n, 30_000_000n]);

    const intent = world.intent(45_000_000n);
    const built = buildPsbt({
      wallet: world.descriptor,
      utxos: builderInputs(tracker),
      to: intent.intent.to,
      amount: 45_000_000n,
      feeRate: 3n,
      changeIndex: 0,
    });
    if (!built.ok) throw new Error(built.message);
    const final = await signByBoth(coordinator, world, intent, built.value.psbt, 'rt');
    expect(final.txid).toBe(built.value.txid);
    const rawTx = final.tx;

    // First, the same signed transaction with one output amount changed after signing: the node refuses it.
    const tampered = Transaction.fromRaw(rawTx, { allowUnknownOutputs: true, disableScriptCheck: true });
    tampered.updateOutput(0, { amount: (tampered.getOutput(0).amount ?? 0n) - 1000n }, true);
    let caught: unknown;
    try {
      await node.rpc.sendRawTransaction(toHex(tampered.toBytes(true, true)));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CustosError);
    expect((caught as CustosError).code).toBe('CHAIN_REJECTED');
    expect(String((caught as CustosError).details.reason)).toMatch(/script-verify/);

    // Then the real one is accepted and mined.
    const txid = await node.rpc.sendRawTransaction(final.hex);
    expect(txid).toBe(built.value.txid);
    await node.mine(1);
    await syncChain(node.rpc, tracker);
    // The two wallet inputs are spent, the change came back to the wallet's change branch.
    const after = tracker.utxos('btc-main');
    expect(after).toHaveLength(1);
    expect(after[0]).toMatchObject({ txid, branch: 1, index: 0 });
    const tip = await node.rpc.getBlockCount();
    expect(after[0]!.confirmations(tip)).toBe(1);
    // The cold-storage address received exactly the intent's amount in the mined block.
    const block = await node.rpc.getBlockRaw(await node.rpc.getBlockHash(tip));
    expect(block.length).toBeGreaterThan(0);
    const paid = Transaction.fromRaw(rawTx, { allowUnknownOutputs: true });
    const destination = addressToScript(COLD_STORAGE, 'regtest')!;
    const outputs = Array.from({ length: paid.outputsLength }, (_, i) => paid.getOutput(i));
    expect(
      outputs.find((o) => o.script !== undefined && toHex(o.script) === toHex(destination))?.amount,
    ).toBe(45_000_000n);
  });
});
