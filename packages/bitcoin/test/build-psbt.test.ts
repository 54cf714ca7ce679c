/**
 * buildPsbt: coin selection, change, fee, and every field a signer relies on,
 * cross-checked by decoding each PSBT it builds with bitcoinjs-lib, an
 * independent BIP 174 implementation.
 */

import {
  ATTACKER,
  built,
  DESTINATION,
  fundingTx,
  otherWallet,
  UTXOS,
  utxosOf,
  wallet,
} from '@custos/test-support/psbt-fixtures';
import { hex } from '@scure/base';
import { Transaction } from '@scure/btc-signer';
import { Transaction as BjsTransaction, address as bjsAddress, networks, Psbt } from 'bitcoinjs-lib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addressToScript,
  type BuiltPsbt,
  buildPsbt,
  deriveAddress,
  estimateVsize,
  formatPath,
  SEQUENCE,
  verifyPsbt,
  type WalletUtxo,
} from '../src/index.js';

const destScript = addressToScript(DESTINATION, 'regtest')!;

/** Decodes with bitcoinjs-lib and checks it reads exactly what was meant to be built. */
function crossCheck(b: BuiltPsbt, to: string, amount: bigint): void {
  const psbt = Psbt.fromBuffer(b.psbt, { network: networks.regtest });
  const unsigned = psbt.data.globalMap.unsignedTx.toBuffer();
  expect(hex.encode(unsigned)).toBe(hex.encode(Transaction.fromPSBT(b.psbt).unsignedTx));
  const tx = BjsTransaction.fromBuffer(unsigned);
  expect(tx.getId()).toBe(b.txid);
  expect(tx.version).toBe(2);
  expect(tx.locktime).toBe(0);

  expect(psbt.txInputs).toHaveLength(b.inputs.length);
  let totalIn = 0n;
  for (const [i, txIn] of psbt.txInputs.entries()) {
    const utxo = b.inputs[i]!;
    const data = psbt.data.inputs[i]!;
    const derived = deriveAddress(wallet, utxo.branch, utxo.index);
    expect(hex.encode(Uint8Array.from(txIn.hash).reverse())).toBe(utxo.txid);
    expect(txIn.index).toBe(utxo.vout);
    expect(txIn.sequence).toBe(SEQUENCE);
    expect(hex.encode(data.nonWitnessUtxo!)).toBe(hex.encode(utxo.prevTx));
    expect(BjsTransaction.fromBuffer(data.nonWitnessUtxo!).getId()).toBe(utxo.txid);
    expect(data.witnessUtxo!.value).toBe(utxo.value);
    expect(hex.encode(data.witnessUtxo!.script)).toBe(hex.encode(derived.script));
    expect(hex.encode(data.witnessScript!)).toBe(hex.encode(derived.witnessScript));
    expect(data.sighashType).toBeUndefined();
    expect(data.redeemScript).toBeUndefined();
    expect(sortedDerivations(data.bip32Derivation!)).toEqual(
      sortedDerivations(
        derived.derivations.map((d) => ({
          masterFingerprint: hex.decode(d.fingerprint.toString(16).padStart(8, '0')),
          pubkey: d.pubkey,
          path: `m/${formatPath(d.path).replaceAll('h', "'")}`,
        })),
      ),
    );
    totalIn += data.witnessUtxo!.value;
  }

  const outs = psbt.txOutputs;
  const toScript = hex.encode(addressToScript(to, 'regtest')!);
  const paid = outs.filter((o) => hex.encode(o.script) === toScript);
  expect(paid).toHaveLength(1);
  expect(paid[0]!.value).toBe(amount);
  // bitcoinjs-lib reads Taproot addresses only with an ECC library loaded; the other kinds it reads alone.
  if (!to.startsWith('bcrt1p')) {
    expect(bjsAddress.fromOutputScript(paid[0]!.script, networks.regtest)).toBe(to);
  }
  const changeOuts = outs.filter((o) => hex.encode(o.script) !== toScript);
  if (b.change === null) {
    expect(changeOuts).toHaveLength(0);
  } else {
    expect(changeOuts).toHaveLength(1);
    const j = outs.indexOf(changeOuts[0]!);
    const change = deriveAddress(wallet, 1, b.change.index);
    expect(changeOuts[0]!.value).toBe(b.change.value);
    expect(bjsAddress.fromOutputScript(changeOuts[0]!.script, networks.regtest)).toBe(change.address);
    expect(hex.encode(psbt.data.outputs[j]!.witnessScript!)).toBe(hex.encode(change.witnessScript));
    expect(psbt.data.outputs[j]!.bip32Derivation!.map((d) => d.path).sort()).toEqual(
      change.derivations.map((d) => `m/${formatPath(d.path).replaceAll('h', "'")}`).sort(),
    );
  }
  const totalOut = outs.reduce((s, o) => s + o.value, 0n);
  expect(totalIn - totalOut).toBe(b.fee);
  // BIP 69 order.
  const ids = psbt.txInputs.map(
    (x) => `${hex.encode(Uint8Array.from(x.hash).reverse())}:${String(x.index).padStart(10, '0')}`,
  );
  expect(ids).toEqual([...ids].sort());
  const values = outs.map((o) => o.value);
  expect(values).toEqual([...values].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));
  // Byte for byte what scure's Transaction writes for the same inputs and outputs (the builder
  // writes the PSBT itself, without checking its own derived keys as points again).
  expect(hex.encode(b.psbt)).toBe(hex.encode(scureReference(b, to, amount)));
  // And the signers' own reading agrees.
  expect(
    verifyPsbt(
      b.psbt,
      { chain: 'bitcoin:regtest', to, amount: String(amount) },
      wallet,
      { maxFee: 1_000_000n, maxFeeRate: 1_000n },
      // A signer that knows the change index the builder was given in use.
      b.change?.index ?? -1,
    ).ok,
  ).toBe(true);
}

/** The same transaction built with scure's Transaction, as buildPsbt did before it wrote PSBTs itself. */
function scureReference(b: BuiltPsbt, to: string, amount: bigint): Uint8Array {
  const tx = new Transaction({ version: 2, lockTime: 0 });
  for (const u of b.inputs) {
    const derived = deriveAddress(wallet, u.branch, u.index);
    tx.addInput({
      txid: u.txid,
      index: u.vout,
      sequence: SEQUENCE,
      nonWitnessUtxo: u.prevTx,
      witnessUtxo: { script: derived.script, amount: u.value },
      witnessScript: derived.witnessScript,
      bip32Derivation: derived.derivations.map((d) => [
        d.pubkey,
        { fingerprint: d.fingerprint, path: d.path },
      ]),
    });
  }
  const outs: { script: Uint8Array; amount: bigint; change: boolean }[] = [
    { script: addressToScript(to, 'regtest')!, amount, change: false },
  ];
  const change = b.change === null ? null : deriveAddress(wallet, 1, b.change.index);
  if (b.change !== null) outs.push({ script: change!.script, amount: b.change.value, change: true });
  outs.sort((x, y) =>
    x.amount === y.amount
      ? hex.encode(x.script).localeCompare(hex.encode(y.script))
      : x.amount < y.amount
        ? -1
        : 1,
  );
  for (const o of outs) {
    if (o.change) {
      tx.addOutput({
        script: o.script,
        amount: o.amount,
        witnessScript: change!.witnessScript,
        bip32Derivation: change!.derivations.map((d) => [
          d.pubkey,
          { fingerprint: d.fingerprint, path: d.path },
        ]),
      });
    } else tx.addOutput({ script: o.script, amount: o.amount });
  }
  return tx.toPSBT(0);
}

function sortedDerivations(
  ds: readonly { masterFingerprint: Uint8Array; pubkey: Uint8Array; path: string }[],
) {
  return ds
    .map((d) => ({
      fingerprint: hex.encode(d.masterFingerprint),
      pubkey: hex.encode(d.pubkey),
      path: d.path,
    }))
    .sort((a, b) => a.pubkey.localeCompare(b.pubkey));
}

describe('buildPsbt', () => {
  it.each([
    ['one input with change', 100_000n, 5n],
    ['two inputs with change', 150_000n, 5n],
    ['all three inputs, from both branches', 240_000n, 2n],
    ['a high fee rate', 60_000n, 300n],
  ])('%s: decodes identically in bitcoinjs-lib', (_name, amount, feeRate) => {
    const b = built({ amount, feeRate });
    crossCheck(b, DESTINATION, amount);
  });

  it('pays a P2TR, P2PKH and P2SH destination too, identically in bitcoinjs-lib', () => {
    const tr = 'bcrt1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqc8gma6';
    const pkh = bjsAddress.toBase58Check(new Uint8Array(20).fill(7), networks.regtest.pubKeyHash);
    const sh = bjsAddress.toBase58Check(new Uint8Array(20).fill(9), networks.regtest.scriptHash);
    for (const to of [tr, pkh, sh]) {
      const b = built({ to, amount: 70_000n });
      crossCheck(b, to, 70_000n);
    }
  });

  it('selects the largest coins first and needs as few inputs as possible', () => {
    expect(built({ amount: 100_000n }).inputs.map((u) => u.value)).toEqual([120_000n]);
    expect(
      built({ amount: 150_000n })
        .inputs.map((u) => u.value)
        .sort(),
    ).toEqual([120_000n, 80_000n].sort());
    expect(built({ amount: 240_000n, feeRate: 2n }).inputs).toHaveLength(3);
  });

  it('is deterministic: the same coins in any order give the same bytes', () => {
    const a = built({ amount: 150_000n });
    const b = built({ amount: 150_000n, utxos: [...UTXOS].reverse() });
    expect(hex.encode(b.psbt)).toBe(hex.encode(a.psbt));
  });

  it('computes the fee on the estimated finalized size, with change', () => {
    const b = built({ amount: 150_000n, feeRate: 7n });
    const change = deriveAddress(wallet, 1, 7);
    expect(b.vsize).toBe(estimateVsize(2, 2, 3, [destScript, change.script]));
    expect(b.fee).toBe(7n * BigInt(b.vsize));
    expect(b.change).toEqual({ index: 7, value: 200_000n - 150_000n - b.fee });
  });

  it('leaves change below the dust threshold to the fee, and no further', () => {
    const vsizeNoChange = estimateVsize(1, 2, 3, [destScript]);
    const amount = 120_000n - 5n * BigInt(vsizeNoChange) - 300n; // 300 sat over the fee: dust as change
    const b = built({ amount });
    expect(b.change).toBeNull();
    expect(b.fee).toBe(5n * BigInt(vsizeNoChange) + 300n);
    expect(b.vsize).toBe(vsizeNoChange);
    crossCheck(b, DESTINATION, amount);
  });

  it('creates change at exactly the dust threshold', () => {
    const change = deriveAddress(wallet, 1, 7);
    const feeWith = 5n * BigInt(estimateVsize(1, 2, 3, [destScript, change.script]));
    const b = built({ amount: 120_000n - feeWith - 330n });
    expect(b.change).toEqual({ index: 7, value: 330n });
  });

  it('refuses when the wallet holds too little: INSUFFICIENT_FUNDS', () => {
    const r = buildPsbt({
      wallet,
      utxos: UTXOS,
      to: DESTINATION,
      amount: 250_000n,
      feeRate: 1n,
      changeIndex: 0,
    });
    expect(r).toMatchObject({
      ok: false,
      code: 'INSUFFICIENT_FUNDS',
      details: { available: '250000', amount: '250000' },
    });
    const empty = buildPsbt({
      wallet,
      utxos: [],
      to: DESTINATION,
      amount: 1_000n,
      feeRate: 1n,
      changeIndex: 0,
    });
    expect(empty).toMatchObject({ ok: false, code: 'INSUFFICIENT_FUNDS' });
  });

  it("refuses a coin that is another wallet's: FOREIGN_INPUT", () => {
    const foreign = utxosOf([{ w: otherWallet, branch: 0, index: 0, value: 500_000n }], 3);
    expect(
      buildPsbt({ wallet, utxos: foreign, to: DESTINATION, amount: 1_000n, feeRate: 1n, changeIndex: 0 }),
    ).toMatchObject({
      ok: false,
      code: 'FOREIGN_INPUT',
    });
    const wrongIndex: WalletUtxo[] = [{ ...UTXOS[0]!, index: 5 }];
    expect(
      buildPsbt({ wallet, utxos: wrongIndex, to: DESTINATION, amount: 1_000n, feeRate: 1n, changeIndex: 0 }),
    ).toMatchObject({
      ok: false,
      code: 'FOREIGN_INPUT',
    });
  });

  it('refuses a coin its previous transaction does not prove: INPUT_AMOUNT_UNPROVEN', () => {
    const other = fundingTx([{ w: wallet, branch: 0, index: 0, value: 50_000n }], 77);
    const cases: WalletUtxo[][] = [
      [{ ...UTXOS[0]!, value: 60_000n }],
      [{ ...UTXOS[0]!, prevTx: other.raw }],
      [{ ...UTXOS[0]!, vout: 9 }],
      [{ ...UTXOS[0]!, prevTx: Uint8Array.from([1, 2, 3]) }],
    ];
    for (const utxos of cases) {
      expect(
        buildPsbt({ wallet, utxos, to: DESTINATION, amount: 1_000n, feeRate: 1n, changeIndex: 0 }),
      ).toMatchObject({
        ok: false,
        code: 'INPUT_AMOUNT_UNPROVEN',
      });
    }
  });

  it('refuses malformed requests', () => {
    const req = { wallet, utxos: UTXOS, to: DESTINATION, amount: 10_000n, feeRate: 1n, changeIndex: 0 };
    const bad = [
      { ...req, to: 'bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq' }, // mainnet address on regtest
      { ...req, to: 'nonsense' },
      { ...req, amount: 0n },
      { ...req, amount: 293n }, // below P2WPKH dust (294)
      { ...req, feeRate: 0n },
      { ...req, changeIndex: -1 },
      { ...req, changeIndex: 2 ** 31 },
      { ...req, utxos: [UTXOS[0]!, UTXOS[0]!] },
      { ...req, utxos: [{ ...UTXOS[0]!, txid: UTXOS[0]!.txid.toUpperCase() }] },
    ];
    for (const r of bad) expect(buildPsbt(r)).toMatchObject({ ok: false, code: 'INVALID_VALUE' });
  });

  it('never pays anything but the destination and its own change', () => {
    const b = built({ amount: 150_000n, to: ATTACKER });
    const tx = Transaction.fromPSBT(b.psbt);
    const scripts = Array.from({ length: tx.outputsLength }, (_, j) => hex.encode(tx.getOutput(j).script!));
    expect(scripts.sort()).toEqual(
      [
        hex.encode(addressToScript(ATTACKER, 'regtest')!),
        hex.encode(deriveAddress(wallet, 1, 7).script),
      ].sort(),
    );
  });

  it('any coins, amount and fee rate: what it builds decodes identically in bitcoinjs-lib, or it refuses', () => {
    const coin = fc.record({
      branch: fc.constantFrom(0 as const, 1 as const),
      index: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      value: fc.bigInt({ min: 1_000n, max: 2_000_000n }),
    });
    fc.assert(
      fc.property(
        fc.array(coin, { minLength: 1, maxLength: 4 }),
        fc.bigInt({ min: 300n, max: 2_000_000n }),
        fc.bigInt({ min: 1n, max: 60n }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.nat(),
        (coins, amount, feeRate, changeIndex, nonce) => {
          const utxos = utxosOf(coins, 1_000 + nonce);
          const r = buildPsbt({ wallet, utxos, to: DESTINATION, amount, feeRate, changeIndex });
          if (!r.ok) {
            expect(['INSUFFICIENT_FUNDS', 'INVALID_VALUE']).toContain(r.code);
            if (r.code === 'INVALID_VALUE') expect(amount).toBeLessThan(294n);
            return;
          }
          crossCheck(r.value, DESTINATION, amount);
          expect(r.value.fee).toBeGreaterThanOrEqual(feeRate * BigInt(r.value.vsize));
          if (r.value.change !== null) expect(r.value.fee).toBe(feeRate * BigInt(r.value.vsize));
        },
      ),
      { numRuns: 40, seed: 69 },
    );
  });
});
