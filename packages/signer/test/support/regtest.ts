/**
 * What the signer's regtest tests share after their stand is up: a tracker of
 * the world's wallet on the node, the tracked coins as builder inputs, and a
 * job signed by two signer processes, combined and finalized.
 */
import {
  combinePsbts,
  deriveAddress,
  finalizePsbt,
  psbtFromBase64,
  syncChain,
  UtxoTracker,
  type WalletUtxo,
} from '@custos/bitcoin';
import type { RegtestNode } from '@custos/bitcoin/regtest';
import { toHex } from '@custos/core';
import type { FakeCoordinator } from '@custos/test-support/fake-coordinator';
import type { World } from '@custos/test-support/world';
import { expect } from 'vitest';

/** A tracker of the world's wallet (`btc-main`), both branches, indexes 0 to `indexes` - 1, synced to the node's tip. */
export async function trackWallet(node: RegtestNode, world: World, indexes = 5): Promise<UtxoTracker> {
  const watch = new Map<string, { wallet: string; branch: 0 | 1; index: number }>();
  for (const branch of [0, 1] as const) {
    for (let index = 0; index < indexes; index++) {
      watch.set(toHex(deriveAddress(world.descriptor, branch, index).script), {
        wallet: 'btc-main',
        branch,
        index,
      });
    }
  }
  const tracker = new UtxoTracker((script) => watch.get(toHex(script)) ?? null);
  await syncChain(node.rpc, tracker);
  return tracker;
}

/** The tracker's coins of `btc-main` as the builder takes them. */
export function builderInputs(tracker: UtxoTracker): WalletUtxo[] {
  return tracker.utxos('btc-main').map((u) => ({
    txid: u.txid,
    vout: u.vout,
    value: u.value,
    branch: u.branch,
    index: u.index,
    prevTx: u.prevTx,
  }));
}

/**
 * Hands the approved job to signer-1 and signer-2 (job ids `<prefix>-1` and
 * `<prefix>-2`), expects both to sign, and returns the combined, finalized
 * transaction.
 */
export async function signByBoth(
  coordinator: FakeCoordinator,
  world: World,
  intent: ReturnType<World['intent']>,
  psbt: Uint8Array,
  prefix: string,
): Promise<{ tx: Uint8Array; txid: string; hex: string }> {
  const approvals = world.approve(intent);
  coordinator.push(world.job(intent, approvals, psbt, { id: `${prefix}-1`, signer: 'signer-1' }));
  coordinator.push(world.job(intent, approvals, psbt, { id: `${prefix}-2`, signer: 'signer-2' }));
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
  return final.value;
}
