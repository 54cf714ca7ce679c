/**
 * The watcher's coin view (follow.ts) on real transactions of the fixture
 * wallet: a funding output within the gap becomes a coin, a use extends the
 * derivation past the gap, a spend of a coin is reported once with the inputs
 * it spent (seen in the mempool, then mined: not twice), a transaction that
 * touches no coin is not a spend; a block disconnected by a reorg is taken
 * back (its spends' coins watched again, its outputs dropped) so a double
 * spend of a coin in the new chain is reported; a mempool spend leaves its
 * coin watched, so a replacement is reported too; and a record file that does not parse
 * stops the watcher with INVALID_VALUE rather than forgetting its freezes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BitcoinRpc, parseTransaction } from '@custos/bitcoin';
import { type Digest, memoryDeviceSigner } from '@custos/core';
import { fundingTx, otherWallet } from '@custos/test-support/psbt-fixtures';
import { makeWorld } from '@custos/test-support/world';
import { Transaction } from '@scure/btc-signer';
import { describe, expect, it } from 'vitest';
import { CoordinatorClient } from '../src/coordinator.js';
import { CoinView } from '../src/follow.js';
import { parentsFirst, Watcher } from '../src/watcher.js';

const world = makeWorld();

/** The unsigned transaction of a withdrawal built from `utxos`: its inputs are what it spends. */
function spendOf(utxos: ReturnType<typeof world.utxos>, amount = 100_000n) {
  const intent = world.intent(amount);
  const built = world.build(intent, { utxos });
  return parseTransaction(Transaction.fromPSBT(built.psbt).unsignedTx);
}

describe('watcher coin view', () => {
  it('tracks coins within the gap, reports a spend once with the inputs it spent, and ignores unrelated transactions', () => {
    const view = new CoinView(20);
    view.setWallets(world.org.state);
    const utxos = world.utxos([500_000n, 700_000n]);
    expect(view.read(parseTransaction(utxos[0]!.prevTx), 101)).toBeNull();
    expect(view.coinCount).toBe(2);

    const spend = spendOf([utxos[0]!]);
    const seen = view.read(spend, 'mempool');
    expect(seen).toEqual({
      txid: spend.txid,
      seenIn: 'mempool',
      inputs: [{ txid: utxos[0]!.txid, vout: 0, value: '500000', wallet: world.wallet.id }],
    });
    // Listed again by the mempool, then mined: judged once.
    expect(view.read(spend, 'mempool')).toBeNull();
    expect(view.read(spend, 102)).toBeNull();
    // Its change output is a coin too; the other funding output still is.
    expect(view.coinCount).toBe(2);

    const unrelated = parseTransaction(
      fundingTx([{ w: otherWallet, branch: 0, index: 0, value: 9_000n }], 99).raw,
    );
    expect(view.read(unrelated, 103)).toBeNull();
    expect(view.coinCount).toBe(2);
  });

  it('extends the derivation when an index is used: a coin past the first gap is found after one within it', () => {
    const view = new CoinView(5);
    view.setWallets(world.org.state);
    const far = fundingTx([{ w: world.descriptor, branch: 0, index: 8, value: 10_000n }], 7);
    expect(view.read(parseTransaction(far.raw), 1)).toBeNull();
    expect(view.coinCount).toBe(0);
    const near = fundingTx([{ w: world.descriptor, branch: 0, index: 4, value: 10_000n }], 8);
    view.read(parseTransaction(near.raw), 2);
    const far2 = fundingTx([{ w: world.descriptor, branch: 0, index: 8, value: 20_000n }], 9);
    view.read(parseTransaction(far2.raw), 3);
    expect(view.coinCount).toBe(2);
  });

  it('a reorg takes a block back: coins its spend consumed are watched again, its outputs dropped, and a double spend in the new chain is reported', () => {
    const view = new CoinView(20);
    view.setWallets(world.org.state);
    const utxos = world.utxos([500_000n, 700_000n]);
    const coinbase = parseTransaction(
      fundingTx([{ w: otherWallet, branch: 0, index: 0, value: 9_000n }], 42).raw,
    );
    expect(
      view.readBlock({ hash: 'b101', txs: [coinbase, parseTransaction(utxos[0]!.prevTx)] }, 101),
    ).toEqual([]);
    expect(view.tip).toEqual({ hash: 'b101', height: 101 });
    const withdrawal = spendOf([utxos[0]!]);
    const [spend] = view.readBlock({ hash: 'b102', txs: [coinbase, withdrawal] }, 102);
    expect(spend).toMatchObject({ txid: withdrawal.txid, seenIn: 102 });
    // The withdrawal's change is a coin; the coin it spent is not.
    expect(view.coinCount).toBe(2);

    // Only the tip is taken back.
    expect(view.undoBlock('b101')).toBeNull();
    expect(view.undoBlock('b102')).toEqual({ hash: 'b102', height: 102, restored: 1, dropped: 1 });
    expect(view.tip).toEqual({ hash: 'b101', height: 101 });
    expect(view.coinCount).toBe(2);
    expect(view.undoBlock('b102')).toBeNull();

    // The new chain spends the same coin differently: reported, under its own txid.
    const doubleSpend = spendOf([utxos[0]!], 200_000n);
    expect(doubleSpend.txid).not.toBe(withdrawal.txid);
    expect(view.readBlock({ hash: 'c102', txs: [coinbase, doubleSpend] }, 102)).toEqual([
      expect.objectContaining({ txid: doubleSpend.txid, seenIn: 102 }),
    ]);
    // Both blocks back: the funding's two outputs go too, and nothing is left of the fixture's coins.
    view.undoBlock('c102');
    expect(view.undoBlock('b101')).toEqual({ hash: 'b101', height: 101, restored: 0, dropped: 2 });
    expect(view.coinCount).toBe(0);
    expect(view.tip).toBeNull();
  });

  it('a reorg of a spend first seen in the mempool: the coin comes back when its block goes', () => {
    const view = new CoinView(20);
    view.setWallets(world.org.state);
    const utxos = world.utxos([500_000n]);
    view.read(parseTransaction(utxos[0]!.prevTx), 101);
    const coinbase = parseTransaction(
      fundingTx([{ w: otherWallet, branch: 0, index: 0, value: 9_000n }], 43).raw,
    );
    const withdrawal = spendOf([utxos[0]!]);
    expect(view.read(withdrawal, 'mempool')).toMatchObject({ txid: withdrawal.txid });
    expect(view.readBlock({ hash: 'b102', txs: [coinbase, withdrawal] }, 102)).toEqual([]);
    view.undoBlock('b102');
    const replacement = spendOf([utxos[0]!], 300_000n);
    expect(view.read(replacement, 'mempool')).toMatchObject({ txid: replacement.txid });
  });

  it('a mempool spend leaves its coin watched: a replacement of it is reported too, and neither again when mined', () => {
    const view = new CoinView(20);
    view.setWallets(world.org.state);
    const utxos = world.utxos([500_000n]);
    view.read(parseTransaction(utxos[0]!.prevTx), 101);
    const first = spendOf([utxos[0]!]);
    const replacement = spendOf([utxos[0]!], 250_000n);
    expect(view.read(first, 'mempool')).toMatchObject({ txid: first.txid, seenIn: 'mempool' });
    expect(view.read(replacement, 'mempool')).toMatchObject({ txid: replacement.txid, seenIn: 'mempool' });
    expect(view.read(replacement, 'mempool')).toBeNull();
    expect(view.read(replacement, 102)).toBeNull();
    // Mined, the coin is spent: the first one can no longer spend it.
    expect(view.read(first, 'mempool')).toBeNull();
  });

  it('a mempool spend read before its coin was known is judged when mined', () => {
    const view = new CoinView(20);
    view.setWallets(world.org.state);
    const utxos = world.utxos([500_000n]);
    const spend = spendOf([utxos[0]!]);
    expect(view.read(spend, 'mempool')).toBeNull();
    view.read(parseTransaction(utxos[0]!.prevTx), 101);
    expect(view.read(spend, 102)).toMatchObject({ txid: spend.txid, seenIn: 102 });
  });

  it('mempool transactions are read parents first, so a spend listed before the payment that made its coin is judged', () => {
    const utxos = world.utxos([500_000n]);
    const funding = parseTransaction(utxos[0]!.prevTx);
    const spend = spendOf([utxos[0]!]);
    const unrelated = parseTransaction(
      fundingTx([{ w: otherWallet, branch: 0, index: 0, value: 9_000n }], 44).raw,
    );
    const ordered = parentsFirst([spend, unrelated, funding]);
    expect(ordered.map((t) => t.txid)).toEqual([unrelated.txid, funding.txid, spend.txid]);
    const view = new CoinView(20);
    view.setWallets(world.org.state);
    expect(ordered.map((t) => view.read(t, 'mempool')?.txid ?? null)).toEqual([null, null, spend.txid]);
    expect(parentsFirst([])).toEqual([]);
  });

  it('a record file that does not parse stops the start with INVALID_VALUE', () => {
    const dir = mkdtempSync(join(tmpdir(), 'custos-watcher-record-'));
    try {
      const device = memoryDeviceSigner({
        member: 'watcher-1',
        device: 'w',
        secretKey: new Uint8Array(32).fill(7),
      });
      const opts = {
        coordinator: new CoordinatorClient('http://127.0.0.1:1', device),
        device,
        pinnedGenesis: world.org.orgId as Digest,
        rpc: {} as BitcoinRpc,
      };
      for (const [name, text] of [
        ['torn.json', '{"v":1,"height":'],
        ['other.json', '{"v":2,"height":0,"matched":[],"unexplained":[],"freezes":[]}'],
        ['forged.json', '{"v":1,"height":0,"matched":[],"unexplained":[],"freezes":[{"entry":{}}]}'],
      ] as const) {
        writeFileSync(join(dir, name), text);
        expect(() => new Watcher({ ...opts, recordPath: join(dir, name) })).toThrow(
          expect.objectContaining({ code: expect.stringMatching(/INVALID_VALUE|MISSING_FIELD|WRONG_TYPE/) }),
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
