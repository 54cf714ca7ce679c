/**
 * 2-of-3 signing end to end: each signer signs its own copy, the coordinator
 * combines and finalizes, and the network transaction is checked with
 * bitcoinjs-lib: its txid, its witnesses, and each signature against the BIP
 * 143 digest bitcoinjs-lib computes itself. (Broadcast to a real regtest node
 * is tested with the node, elsewhere.)
 */

import {
  built,
  CAPS,
  editPsbt,
  INTENT,
  otherSigners,
  otherWallet,
  SEEDS,
  signers,
  utxosOf,
  wallet,
} from '@custos/test-support/psbt-fixtures';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { hex } from '@scure/base';
import { Transaction as BjsTransaction, script as bjsScript } from 'bitcoinjs-lib';
import { describe, expect, it } from 'vitest';
import {
  buildPsbt,
  changeIndexLimit,
  combinePsbts,
  decodePsbt,
  deriveAddress,
  descriptorKeyOf,
  finalizePsbt,
  formatDescriptor,
  parseDescriptor,
  signerKeyFromSeed,
  signPsbt,
  verifyPsbt,
} from '../src/index.js';

function sign(psbt: Uint8Array, i: number): Uint8Array {
  const r = signPsbt(psbt, signers[i]!, wallet);
  if (!r.ok) throw new Error(`${r.code}: ${r.message}`);
  return r.value.psbt;
}

function ok<T>(r: { ok: true; value: T } | { ok: false; code: string; message: string }): T {
  if (!r.ok) throw new Error(`${r.code}: ${r.message}`);
  return r.value;
}

describe('signerKeyFromSeed', () => {
  it("gives the master fingerprint and the account key that the wallet's descriptor holds", () => {
    const k = signerKeyFromSeed(SEEDS[0]!, "48'/1'/0'/2'");
    expect(k.fingerprint).toBe('3442193e'); // BIP 32 test vector 1's master key
    expect(k.path).toBe('48h/1h/0h/2h');
    expect(descriptorKeyOf(k, 'regtest')).toEqual(wallet.keys[0]);
    expect(descriptorKeyOf(k, 'regtest').xpub.startsWith('tpub')).toBe(true);
    expect(descriptorKeyOf(k, 'mainnet').xpub.startsWith('xpub')).toBe(true);
  });

  it('refuses a malformed path or seed', () => {
    expect(() => signerKeyFromSeed(SEEDS[0]!, 'm/48h')).toThrow();
    expect(() => signerKeyFromSeed(new Uint8Array(8), '48h')).toThrow();
  });
});

describe('2 of 3: sign, combine, finalize', () => {
  const b = built({ amount: 150_000n });

  it('signs every input, SIGHASH_ALL, and the PSBT still verifies', () => {
    const r = signPsbt(b.psbt, signers[0]!, wallet);
    expect(r).toMatchObject({ ok: true, value: { signed: 2 } });
    const once = ok(r).psbt;
    // OpenSSL's ECDSA nonces are hedged (random, mixed with the key and digest), not RFC 6979:
    // signing again gives other signatures of the same transaction.
    expect(ok(decodePsbt(sign(b.psbt, 0), wallet)).txid).toBe(b.txid);
    expect(
      verifyPsbt(once, { ...INTENT, amount: '150000' }, wallet, CAPS, changeIndexLimit(-1)),
    ).toMatchObject({
      ok: true,
      value: { txid: b.txid },
    });
    const summary = ok(decodePsbt(once, wallet));
    expect(summary.inputs.map((i) => i.signatures)).toEqual([1, 1]);
  });

  it('combines and finalizes into a transaction with well-formed P2WSH witnesses', () => {
    const combined = ok(combinePsbts([sign(b.psbt, 0), sign(b.psbt, 2)]));
    expect(ok(decodePsbt(combined, wallet)).inputs.map((i) => i.signatures)).toEqual([2, 2]);
    const final = ok(finalizePsbt(combined));
    expect(final.txid).toBe(b.txid); // segwit: signatures do not change the txid
    expect(final.hex).toBe(hex.encode(final.tx));

    const tx = BjsTransaction.fromBuffer(final.tx);
    expect(tx.getId()).toBe(b.txid);
    expect(tx.hasWitnesses()).toBe(true);
    expect(tx.virtualSize()).toBeLessThanOrEqual(b.vsize);
    expect(tx.virtualSize()).toBeGreaterThanOrEqual(b.vsize - b.inputs.length);
    for (const [i, input] of tx.ins.entries()) {
      const utxo = b.inputs[i]!;
      const derived = deriveAddress(wallet, utxo.branch, utxo.index);
      expect(input.script).toHaveLength(0);
      const [dummy, sig1, sig2, witnessScript, ...rest] = input.witness;
      expect(rest).toHaveLength(0);
      expect(dummy).toHaveLength(0); // BIP 147 NULLDUMMY
      expect(hex.encode(witnessScript!)).toBe(hex.encode(derived.witnessScript));
      // The witness script is 2 <sorted keys> 3 CHECKMULTISIG; signatures come in key order.
      const chunks = bjsScript.decompile(witnessScript!)!;
      const keys = chunks.slice(1, 4) as Uint8Array[];
      expect(chunks[0]).toBe(bjsScript.OPS.OP_2);
      expect(chunks[5]).toBe(bjsScript.OPS.OP_CHECKMULTISIG);
      const digest = tx.hashForWitnessV0(i, witnessScript!, utxo.value, BjsTransaction.SIGHASH_ALL);
      const signedBy = [sig1!, sig2!].map((sig) => {
        expect(sig[sig.length - 1]).toBe(0x01);
        const der = sig.subarray(0, -1);
        return keys.findIndex((k) =>
          secp256k1.verify(der, digest, k, { prehash: false, format: 'der', lowS: true }),
        );
      });
      expect(signedBy.every((k) => k >= 0)).toBe(true);
      expect(signedBy[0]!).toBeLessThan(signedBy[1]!);
      const expectedSigners = [0, 2]
        .map((s) => derived.derivations[s]!.pubkey)
        .map(hex.encode)
        .sort();
      expect(signedBy.map((k) => hex.encode(keys[k]!)).sort()).toEqual(expectedSigners);
    }
    expect(tx.outs.map((o) => o.value).reduce((s, v) => s + v, 0n)).toBe(200_000n - b.fee);
  });

  it('gives the same transaction whichever two keys sign and in whichever order they combine', () => {
    const [s0, s1] = [sign(b.psbt, 0), sign(b.psbt, 1)];
    const a = ok(finalizePsbt(ok(combinePsbts([s1, s0]))));
    const c = ok(finalizePsbt(ok(combinePsbts([s0, s1]))));
    expect(a.hex).toBe(c.hex);
    expect(a.txid).toBe(b.txid);
    const all = ok(finalizePsbt(ok(combinePsbts([sign(b.psbt, 0), sign(b.psbt, 1), sign(b.psbt, 2)]))));
    expect(all.txid).toBe(b.txid);
    expect(BjsTransaction.fromBuffer(all.tx).ins[0]!.witness).toHaveLength(4);
  });

  it('signs one after another on the same PSBT as well', () => {
    const final = ok(finalizePsbt(sign(sign(b.psbt, 2), 1)));
    expect(final.txid).toBe(b.txid);
  });

  it('refuses to finalize with one signature of two', () => {
    expect(finalizePsbt(sign(b.psbt, 0))).toMatchObject({ ok: false, code: 'INVALID_VALUE' });
    expect(finalizePsbt(b.psbt)).toMatchObject({ ok: false, code: 'INVALID_VALUE' });
  });

  it('refuses to finalize with a signature that does not verify: BAD_SIGNATURE', () => {
    const combined = ok(combinePsbts([sign(b.psbt, 0), sign(b.psbt, 2)]));
    const forged = editPsbt(combined, (p) => {
      const sigs = p.inputs[0]!.partialSig as [Uint8Array, Uint8Array][];
      const sig = Uint8Array.from(sigs[0]![1]);
      sig[sig.length - 3]! ^= 0x01; // a bit of s
      sigs[0] = [sigs[0]![0], sig];
    });
    expect(finalizePsbt(forged)).toMatchObject({ ok: false, code: 'BAD_SIGNATURE' });
  });

  it('refuses to combine PSBTs of different transactions', () => {
    const other = built({ amount: 100_000n });
    expect(combinePsbts([sign(b.psbt, 0), sign(other.psbt, 1)])).toMatchObject({
      ok: false,
      code: 'INVALID_VALUE',
    });
    expect(combinePsbts([])).toMatchObject({ ok: false, code: 'INVALID_VALUE' });
  });
});

describe('signPsbt refuses', () => {
  const b = built();

  it("a key that is not one of the wallet's: NOT_AUTHORIZED", () => {
    expect(signPsbt(b.psbt, otherSigners[0]!, wallet)).toMatchObject({ ok: false, code: 'NOT_AUTHORIZED' });
    // Right fingerprint and path, other key: still not the wallet's.
    const impostor = { ...signerKeyFromSeed(SEEDS[0]!, "48'/1'/0'/3'"), path: '48h/1h/0h/2h' };
    expect(signPsbt(b.psbt, impostor, wallet)).toMatchObject({ ok: false, code: 'NOT_AUTHORIZED' });
  });

  it("THREATS 26: a PSBT spending another wallet's coins, even for a key of both: FOREIGN_INPUT", () => {
    // A wallet that shares one key with ours; its coin must not be signed as ours.
    const shared = parseDescriptor(
      formatDescriptor({ ...otherWallet, keys: [wallet.keys[0]!, ...otherWallet.keys.slice(1)] }),
      'regtest',
    );
    const sharedWallet = ok(shared);
    const coins = utxosOf([{ w: sharedWallet, branch: 0, index: 0, value: 90_000n }], 11);
    const theirs = ok(
      buildPsbt({
        wallet: sharedWallet,
        utxos: coins,
        to: INTENT.to,
        amount: 50_000n,
        feeRate: 2n,
        changeIndex: 0,
      }),
    );
    expect(signPsbt(theirs.psbt, signers[0]!, wallet)).toMatchObject({ ok: false, code: 'FOREIGN_INPUT' });
    expect(signPsbt(theirs.psbt, signers[0]!, sharedWallet)).toMatchObject({
      ok: true,
      value: { signed: 1 },
    });
  });

  it('a PSBT asking for another sighash: SIGHASH_NOT_ALL', () => {
    const none = editPsbt(b.psbt, (p) => {
      p.inputs[0]!.sighashType = 2;
    });
    expect(signPsbt(none, signers[0]!, wallet)).toMatchObject({ ok: false, code: 'SIGHASH_NOT_ALL' });
  });

  it('a PSBT without the full previous transaction: INPUT_AMOUNT_UNPROVEN', () => {
    const stripped = editPsbt(b.psbt, (p) => {
      delete p.inputs[0]!.nonWitnessUtxo;
    });
    expect(signPsbt(stripped, signers[0]!, wallet)).toMatchObject({
      ok: false,
      code: 'INPUT_AMOUNT_UNPROVEN',
    });
  });

  it('bytes that are not a PSBT, without throwing', () => {
    expect(signPsbt(Uint8Array.from([1, 2, 3]), signers[0]!, wallet).ok).toBe(false);
    expect(finalizePsbt(Uint8Array.from([1, 2, 3])).ok).toBe(false);
    expect(combinePsbts([Uint8Array.from([1, 2, 3])]).ok).toBe(false);
  });
});
