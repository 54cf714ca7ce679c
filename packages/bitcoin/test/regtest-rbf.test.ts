/**
 * The regtest node replaces by fee as Bitcoin Core does (regtest.ts; BIP 125
 * rules 3, 4 and 6, full RBF), or fee bumping could not be tested against a
 * node: a replacement one satoshi richer is refused `insufficient fee` and the
 * original stays; one that pays its own relay is accepted and evicts the
 * original; the original sent again is then refused (its fee rate is lower);
 * the replacement is mined and the original can never be.
 */
import { editPsbt, signers, wallet } from '@custos/test-support/psbt-fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBlock } from '../src/block.js';
import { buildPsbt } from '../src/build.js';
import { deriveAddress } from '../src/descriptor.js';
import { type RegtestNode, startRegtestNode } from '../src/regtest.js';
import { buildReplacement } from '../src/replace.js';
import { combinePsbts, finalizePsbt, signPsbt } from '../src/sign.js';

let node: RegtestNode;

beforeAll(async () => {
  node = await startRegtestNode();
  await node.activateSegwit();
}, 120_000);

afterAll(async () => {
  await node?.close();
});

/** Signs with two of the fixture wallet's three keys and finalizes. */
function signed(psbt: Uint8Array): { hex: string; txid: string } {
  const parts = signers.slice(0, 2).map((k) => {
    const r = signPsbt(psbt, k, wallet);
    if (!r.ok) throw new Error(r.message);
    return r.value.psbt;
  });
  const combined = combinePsbts(parts);
  if (!combined.ok) throw new Error(combined.message);
  const final = finalizePsbt(combined.value);
  if (!final.ok) throw new Error(final.message);
  return final.value;
}

describe('replace-by-fee on the regtest node', () => {
  it('refuses a replacement that does not pay for its relay, takes one that does, and mines it', async () => {
    const f = await node.fund(deriveAddress(wallet, 0, 0).script, 1_000_000n);
    await node.mine(1);
    const built = buildPsbt({
      wallet,
      utxos: [{ txid: f.txid, vout: f.vout, value: 1_000_000n, branch: 0, index: 0, prevTx: f.raw }],
      to: deriveAddress(wallet, 0, 5).address,
      amount: 400_000n,
      feeRate: 2n,
      changeIndex: 0,
    });
    if (!built.ok) throw new Error(built.message);
    const original = signed(built.value.psbt);
    expect(await node.rpc.sendRawTransaction(original.hex)).toBe(original.txid);

    // One satoshi more fee: a higher fee, not by the replacement's size at 1 sat/vB.
    const change = built.value.change!.value;
    const stingy = signed(
      editPsbt(built.value.psbt, (p) => {
        const out = p.global.unsignedTx.outputs.find((o) => o.amount === change)!;
        out.amount -= 1n;
      }),
    );
    await expect(node.rpc.sendRawTransaction(stingy.hex)).rejects.toMatchObject({
      code: 'CHAIN_REJECTED',
      message: expect.stringMatching(/insufficient fee/),
    });
    expect(await node.rpc.getRawMempool()).toEqual([original.txid]);

    const r = buildReplacement(built.value.psbt, wallet, 10n);
    if (!r.ok) throw new Error(r.message);
    const replacement = signed(r.value.psbt);
    expect(await node.rpc.sendRawTransaction(replacement.hex)).toBe(replacement.txid);
    expect(await node.rpc.getRawMempool()).toEqual([replacement.txid]);
    // The original's fee rate is below the replacement's now in the mempool.
    await expect(node.rpc.sendRawTransaction(original.hex)).rejects.toMatchObject({ code: 'CHAIN_REJECTED' });

    await node.mine(1);
    expect(await node.rpc.getRawMempool()).toEqual([]);
    const rpc = node.rpc;
    const block = parseBlock(await rpc.getBlockRaw(await rpc.getBlockHash(await rpc.getBlockCount())));
    expect(block.txs.map((t) => t.txid)).toContain(replacement.txid);
    expect(block.txs.map((t) => t.txid)).not.toContain(original.txid);
    await expect(node.rpc.sendRawTransaction(original.hex)).rejects.toMatchObject({ code: 'CHAIN_REJECTED' });
  });
});
