/**
 * verifyPsbt against the attacks of docs/threats.md lines 23-26 and the checks of
 * docs/architecture.md flow step 4. Every tampered PSBT here is a real PSBT edited at
 * the BIP 174 key-value level (scure's raw coder), as a hostile coordinator
 * or relay would edit it; the verifier sees only bytes.
 */

import { ERROR_CODES } from '@custos/core';
import {
  ATTACKER,
  built,
  CAPS,
  DESTINATION,
  type EditablePsbt,
  editPsbt,
  fundingTx,
  INTENT,
  otherWallet,
  REGTEST,
  signers,
  UTXOS,
  utxosOf,
  wallet,
} from '@custos/test-support/psbt-fixtures';
import { hex } from '@scure/base';
import { Address, RawTx, SigHash, Transaction } from '@scure/btc-signer';
import { RawPSBTV0 } from '@scure/btc-signer/psbt.js';
import { Transaction as BjsTransaction } from 'bitcoinjs-lib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addressToScript,
  changeIndexLimit,
  decodePsbt,
  deriveAddress,
  estimateVsize,
  type FeeCaps,
  signPsbt,
  verifyPsbt,
  type WalletDescriptor,
} from '../src/index.js';

const base = built(); // one input of 120 000 sat, 100 000 to the destination, change at 1/7
const script = (address: string) => addressToScript(address, 'regtest')!;

function verify(
  psbt: Uint8Array,
  intent: typeof INTENT | { chain: string; to: string; amount: string } = INTENT,
  caps: FeeCaps = CAPS,
  w: WalletDescriptor = wallet,
) {
  // A signer that has used no change yet: change up to index CHANGE_GAP_LIMIT - 1.
  return verifyPsbt(psbt, intent, w, caps, changeIndexLimit(-1));
}

/** Index of the output paying `s` in the unsigned transaction. */
function outputIndex(p: EditablePsbt, s: Uint8Array): number {
  return p.global.unsignedTx.outputs.findIndex((o) => hex.encode(o.script) === hex.encode(s));
}

function changeOf(p: EditablePsbt) {
  const j = p.outputs.findIndex((o) => o.bip32Derivation !== undefined);
  return { j, out: p.global.unsignedTx.outputs[j]!, map: p.outputs[j]! };
}

function derivationsFor(w: WalletDescriptor, branch: 0 | 1, index: number) {
  return deriveAddress(w, branch, index).derivations.map((d) => [
    d.pubkey,
    { fingerprint: d.fingerprint, path: d.path },
  ]);
}

describe('a valid PSBT', () => {
  it('is accepted with the fee, size, txid, inputs, destination and change it really has', () => {
    const r = verify(base.psbt);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const tx = Transaction.fromPSBT(base.psbt);
    expect(r.value.txid).toBe(base.txid);
    expect(r.value.txid).toBe(BjsTransaction.fromBuffer(tx.unsignedTx).getId());
    expect(r.value.fee).toBe(base.fee);
    expect(r.value.fee).toBe(120_000n - 100_000n - base.change!.value);
    expect(r.value.vsize).toBe(base.vsize);
    expect(r.value.feeRate).toBe(5n);
    expect(r.value.destination).toEqual({ address: DESTINATION, amount: 100_000n });
    expect(r.value.change).toEqual({ index: 7, value: base.change!.value });
    expect(r.value.inputs).toEqual([{ txid: UTXOS[1]!.txid, vout: 1, value: 120_000n, branch: 0, index: 1 }]);
  });

  it('is accepted without change, and with several inputs from both branches', () => {
    // All three coins (250 000 sat), leaving 100 sat over the fee: too little for a change output.
    const vsize = estimateVsize(3, 2, 3, [script(DESTINATION)]);
    const amount = 250_000n - BigInt(vsize) - 100n;
    const all = built({ amount, feeRate: 1n });
    expect(all.change).toBeNull();
    const r = verify(all.psbt, { ...INTENT, amount: String(amount) });
    expect(r).toMatchObject({ ok: true, value: { change: null, fee: BigInt(vsize) + 100n } });
    if (r.ok) {
      expect(r.value.inputs.map((i) => `${i.branch}/${i.index}`).sort()).toEqual(['0/0', '0/1', '1/4']);
    }
  });

  it('is still accepted once partially signed (SIGHASH_ALL signatures)', () => {
    const s = signPsbt(base.psbt, signers[1]!, wallet);
    expect(s.ok).toBe(true);
    if (s.ok) expect(verify(s.value.psbt)).toMatchObject({ ok: true, value: { txid: base.txid } });
  });
});

describe('the intent and the wallet', () => {
  it('THREATS 16: an intent for another chain is WRONG_CHAIN', () => {
    expect(verify(base.psbt, { ...INTENT, chain: 'bitcoin:testnet' })).toMatchObject({
      ok: false,
      code: 'WRONG_CHAIN',
    });
    expect(verify(base.psbt, { ...INTENT, chain: 'bitcoin:mainnet' })).toMatchObject({
      ok: false,
      code: 'WRONG_CHAIN',
    });
    expect(verify(base.psbt, { ...INTENT, chain: 'eip155:1' })).toMatchObject({
      ok: false,
      code: 'WRONG_CHAIN',
    });
  });

  it('a wrong amount is UNEXPECTED_OUTPUT', () => {
    expect(verify(base.psbt, { ...INTENT, amount: '100001' })).toMatchObject({
      ok: false,
      code: 'UNEXPECTED_OUTPUT',
    });
    expect(verify(base.psbt, { ...INTENT, amount: '99999' })).toMatchObject({
      ok: false,
      code: 'UNEXPECTED_OUTPUT',
    });
  });

  it('a PSBT whose destination output pays one satoshi more than the intent is UNEXPECTED_OUTPUT', () => {
    const edited = editPsbt(base.psbt, (p) => {
      p.global.unsignedTx.outputs[outputIndex(p, script(DESTINATION))]!.amount += 1n;
      changeOf(p).out.amount -= 1n;
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'UNEXPECTED_OUTPUT' });
  });

  it('another destination than the intent names is UNEXPECTED_OUTPUT', () => {
    expect(verify(base.psbt, { ...INTENT, to: ATTACKER })).toMatchObject({
      ok: false,
      code: 'UNEXPECTED_OUTPUT',
    });
  });

  it('a destination that is not a standard address of the network is UNEXPECTED_OUTPUT', () => {
    const anchor = Address(REGTEST).encode({
      type: 'p2a',
      script: Uint8Array.from([0x51, 0x02, 0x4e, 0x73]),
    });
    for (const to of ['bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq', anchor, 'not an address', '']) {
      expect(verify(base.psbt, { ...INTENT, to })).toMatchObject({ ok: false, code: 'UNEXPECTED_OUTPUT' });
    }
  });

  it('an intent amount that is not a canonical satoshi amount is refused', () => {
    for (const amount of ['0', '0100000', '1e5', '-100000', '100000.0', '2100000000000001']) {
      expect(verify(base.psbt, { ...INTENT, amount }).ok).toBe(false);
    }
  });

  it('THREATS 26: the right PSBT checked against another wallet is FOREIGN_INPUT', () => {
    expect(verify(base.psbt, INTENT, CAPS, otherWallet)).toMatchObject({ ok: false, code: 'FOREIGN_INPUT' });
  });
});

describe('THREATS 23: change', () => {
  it('THREATS 23: change sent to a foreign address is UNEXPECTED_OUTPUT', () => {
    const edited = editPsbt(base.psbt, (p) => {
      changeOf(p).out.script = script(ATTACKER);
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'UNEXPECTED_OUTPUT' });
  });

  it('THREATS 23: change sent to a foreign address without change metadata is UNEXPECTED_OUTPUT', () => {
    const edited = editPsbt(base.psbt, (p) => {
      const c = changeOf(p);
      c.out.script = script(ATTACKER);
      p.outputs[c.j] = {};
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'UNEXPECTED_OUTPUT' });
  });

  it("THREATS 23: change to another wallet's change address, with that wallet's metadata, is UNEXPECTED_OUTPUT", () => {
    const other = deriveAddress(otherWallet, 1, 7);
    const edited = editPsbt(base.psbt, (p) => {
      const c = changeOf(p);
      c.out.script = other.script;
      p.outputs[c.j] = {
        witnessScript: other.witnessScript,
        bip32Derivation: derivationsFor(otherWallet, 1, 7),
      };
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'UNEXPECTED_OUTPUT' });
  });

  it('THREATS 23: change on the receive branch (0) is UNEXPECTED_OUTPUT', () => {
    const receive = deriveAddress(wallet, 0, 7);
    const edited = editPsbt(base.psbt, (p) => {
      const c = changeOf(p);
      c.out.script = receive.script;
      p.outputs[c.j] = {
        witnessScript: receive.witnessScript,
        bip32Derivation: derivationsFor(wallet, 0, 7),
      };
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'UNEXPECTED_OUTPUT' });
  });

  it('THREATS 23: change metadata naming another index than the script paid is UNEXPECTED_OUTPUT', () => {
    const edited = editPsbt(base.psbt, (p) => {
      const c = changeOf(p);
      p.outputs[c.j] = { ...c.map, bip32Derivation: derivationsFor(wallet, 1, 8) };
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'UNEXPECTED_OUTPUT' });
  });
});

describe('THREATS 24: outputs', () => {
  it('THREATS 24: an extra output is UNEXPECTED_OUTPUT', () => {
    const edited = editPsbt(base.psbt, (p) => {
      changeOf(p).out.amount -= 5_000n;
      p.global.unsignedTx.outputs.push({ amount: 5_000n, script: script(ATTACKER) });
      p.outputs.push({});
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'UNEXPECTED_OUTPUT' });
  });

  it('THREATS 24: the amount split over two outputs to the destination is UNEXPECTED_OUTPUT', () => {
    const edited = editPsbt(base.psbt, (p) => {
      p.global.unsignedTx.outputs[outputIndex(p, script(DESTINATION))]!.amount = 60_000n;
      p.global.unsignedTx.outputs.push({ amount: 40_000n, script: script(DESTINATION) });
      p.outputs.push({});
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'UNEXPECTED_OUTPUT' });
  });

  it('THREATS 24: paying the destination twice is UNEXPECTED_OUTPUT', () => {
    const twice = buildWithLargeChange();
    const edited = editPsbt(twice, (p) => {
      changeOf(p).out.amount -= 100_000n;
      p.global.unsignedTx.outputs.push({ amount: 100_000n, script: script(DESTINATION) });
      p.outputs.push({});
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'UNEXPECTED_OUTPUT' });
  });

  it('THREATS 24: a second change output is UNEXPECTED_OUTPUT', () => {
    const second = deriveAddress(wallet, 1, 8);
    const edited = editPsbt(base.psbt, (p) => {
      changeOf(p).out.amount -= 5_000n;
      p.global.unsignedTx.outputs.push({ amount: 5_000n, script: second.script });
      p.outputs.push({ witnessScript: second.witnessScript, bip32Derivation: derivationsFor(wallet, 1, 8) });
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'UNEXPECTED_OUTPUT' });
  });

  it('THREATS 24: no output to the destination at all is UNEXPECTED_OUTPUT', () => {
    const edited = editPsbt(base.psbt, (p) => {
      p.global.unsignedTx.outputs[outputIndex(p, script(DESTINATION))]!.script = script(ATTACKER);
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'UNEXPECTED_OUTPUT' });
  });

  it('THREATS 24: an OP_RETURN output is UNEXPECTED_OUTPUT', () => {
    const edited = editPsbt(base.psbt, (p) => {
      p.global.unsignedTx.outputs.push({
        amount: 0n,
        script: Uint8Array.from([0x6a, 0x04, 0xde, 0xad, 0xbe, 0xef]),
      });
      p.outputs.push({});
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'UNEXPECTED_OUTPUT' });
  });
});

describe('THREATS 25: fee', () => {
  it('THREATS 25: a fee above the absolute cap is FEE_TOO_HIGH', () => {
    const edited = editPsbt(base.psbt, (p) => {
      changeOf(p).out.amount -= 10_000n;
    });
    const r = verify(edited);
    expect(r).toMatchObject({ ok: false, code: 'FEE_TOO_HIGH' });
    if (!r.ok) expect(r.details).toMatchObject({ fee: String(base.fee + 10_000n), maxFee: '10000' });
  });

  it('THREATS 25: a fee rate above the rate cap is FEE_TOO_HIGH', () => {
    const edited = editPsbt(base.psbt, (p) => {
      changeOf(p).out.amount -= 9_000n; // fee 9 945 sat on 189 vB: 53 sat/vB
    });
    expect(verify(edited, INTENT, { maxFee: 1_000_000n, maxFeeRate: 1_000n }).ok).toBe(true);
    const r = verify(edited, INTENT, { maxFee: 1_000_000n, maxFeeRate: 50n });
    expect(r).toMatchObject({ ok: false, code: 'FEE_TOO_HIGH' });
    if (!r.ok) expect(r.details).toMatchObject({ feeRate: '53', maxFeeRate: '50' });
  });

  it('THREATS 25: the caps bound the fee exactly', () => {
    expect(verify(base.psbt, INTENT, { maxFee: base.fee, maxFeeRate: 5n }).ok).toBe(true);
    expect(verify(base.psbt, INTENT, { maxFee: base.fee - 1n, maxFeeRate: 5n })).toMatchObject({
      code: 'FEE_TOO_HIGH',
    });
    expect(verify(base.psbt, INTENT, { maxFee: base.fee, maxFeeRate: 4n })).toMatchObject({
      code: 'FEE_TOO_HIGH',
    });
  });

  it('outputs worth more than the inputs are refused', () => {
    const edited = editPsbt(base.psbt, (p) => {
      changeOf(p).out.amount += 1_000n;
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'INVALID_VALUE' });
  });
});

/** A transfer of 100 000 sat from a 400 000 sat coin: change enough to pay the destination again. */
function buildWithLargeChange(): Uint8Array {
  return built({ utxos: utxosOf([{ branch: 0, index: 9, value: 400_000n }], 5) }).psbt;
}

describe('THREATS 26: inputs', () => {
  it('THREATS 26: an input from another wallet is FOREIGN_INPUT', () => {
    const [utxo] = utxosOf([{ w: otherWallet, branch: 0, index: 0, value: 70_000n }], 9);
    const d = deriveAddress(otherWallet, 0, 0);
    const edited = editPsbt(base.psbt, (p) => {
      p.global.unsignedTx.inputs.push({
        txid: hex.decode(utxo!.txid),
        index: 0,
        finalScriptSig: new Uint8Array(),
        sequence: 0xfffffffd,
      });
      p.inputs.push({
        nonWitnessUtxo: rawTxStruct(utxo!.prevTx),
        witnessUtxo: { amount: 70_000n, script: d.script },
        witnessScript: d.witnessScript,
        bip32Derivation: derivationsFor(otherWallet, 0, 0),
      });
      changeOf(p).out.amount += 70_000n;
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'FOREIGN_INPUT' });
  });

  it("THREATS 26: another wallet's coin described with this wallet's derivations is FOREIGN_INPUT", () => {
    const [utxo] = utxosOf([{ w: otherWallet, branch: 0, index: 0, value: 70_000n }], 9);
    const mine = deriveAddress(wallet, 0, 0);
    const edited = editPsbt(base.psbt, (p) => {
      p.global.unsignedTx.inputs.push({
        txid: hex.decode(utxo!.txid),
        index: 0,
        finalScriptSig: new Uint8Array(),
        sequence: 0xfffffffd,
      });
      p.inputs.push({
        nonWitnessUtxo: rawTxStruct(utxo!.prevTx),
        witnessScript: mine.witnessScript,
        bip32Derivation: derivationsFor(wallet, 0, 0),
      });
      changeOf(p).out.amount += 70_000n;
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'FOREIGN_INPUT' });
  });

  it('THREATS 26: an input with derivations for only some of the keys is FOREIGN_INPUT', () => {
    const edited = editPsbt(base.psbt, (p) => {
      const ders = p.inputs[0]!.bip32Derivation as unknown[];
      p.inputs[0]!.bip32Derivation = ders.slice(0, 2);
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'FOREIGN_INPUT' });
  });

  it('THREATS 26: an input without derivations is FOREIGN_INPUT', () => {
    const edited = editPsbt(base.psbt, (p) => {
      delete p.inputs[0]!.bip32Derivation;
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'FOREIGN_INPUT' });
  });

  it('THREATS 26: an input whose witnessScript is not the derived one is FOREIGN_INPUT', () => {
    const edited = editPsbt(base.psbt, (p) => {
      p.inputs[0]!.witnessScript = deriveAddress(wallet, 0, 2).witnessScript;
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'FOREIGN_INPUT' });
  });

  it('an input without the full previous transaction is INPUT_AMOUNT_UNPROVEN', () => {
    const edited = editPsbt(base.psbt, (p) => {
      delete p.inputs[0]!.nonWitnessUtxo;
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'INPUT_AMOUNT_UNPROVEN' });
  });

  it('a previous transaction whose txid does not match the input is INPUT_AMOUNT_UNPROVEN', () => {
    // Pays the same script the same amount at the same position, but it is another transaction.
    const decoy = fundingTx(
      [
        { w: wallet, branch: 0, index: 0, value: 50_000n },
        { w: wallet, branch: 0, index: 1, value: 120_000n },
      ],
      42,
    );
    const edited = editPsbt(base.psbt, (p) => {
      p.inputs[0]!.nonWitnessUtxo = rawTxStruct(decoy.raw);
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'INPUT_AMOUNT_UNPROVEN' });
  });

  it('a previous transaction that raises the amount is INPUT_AMOUNT_UNPROVEN', () => {
    const edited = editPsbt(base.psbt, (p) => {
      const prev = p.inputs[0]!.nonWitnessUtxo as { outputs: { amount: bigint }[] };
      prev.outputs[1]!.amount = 1_000_000n;
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'INPUT_AMOUNT_UNPROVEN' });
  });

  it('an input spending an output the previous transaction does not have is INPUT_AMOUNT_UNPROVEN', () => {
    const edited = editPsbt(base.psbt, (p) => {
      p.global.unsignedTx.inputs[0]!.index = 5;
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'INPUT_AMOUNT_UNPROVEN' });
  });

  it('a witness UTXO lying about the amount is refused: INPUT_AMOUNT_UNPROVEN', () => {
    const edited = editPsbt(base.psbt, (p) => {
      (p.inputs[0]!.witnessUtxo as { amount: bigint }).amount = 101_000n;
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'INPUT_AMOUNT_UNPROVEN' });
  });

  it('the same outpoint spent twice is refused', () => {
    const edited = editPsbt(base.psbt, (p) => {
      p.global.unsignedTx.inputs.push({ ...p.global.unsignedTx.inputs[0]! });
      p.inputs.push({ ...p.inputs[0]! });
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'INVALID_VALUE' });
  });
});

describe('sighash', () => {
  it.each([
    ['NONE', SigHash.NONE],
    ['SINGLE', SigHash.SINGLE],
    ['ALL|ANYONECANPAY', SigHash.ALL_ANYONECANPAY],
    ['NONE|ANYONECANPAY', SigHash.NONE_ANYONECANPAY],
    ['SINGLE|ANYONECANPAY', SigHash.SINGLE_ANYONECANPAY],
    ['DEFAULT (Taproot only)', SigHash.DEFAULT],
  ])('a sighash type of %s is SIGHASH_NOT_ALL', (_name, type) => {
    const edited = editPsbt(base.psbt, (p) => {
      p.inputs[0]!.sighashType = type;
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'SIGHASH_NOT_ALL' });
  });

  it('an explicit SIGHASH_ALL is accepted', () => {
    const edited = editPsbt(base.psbt, (p) => {
      p.inputs[0]!.sighashType = SigHash.ALL;
    });
    expect(verify(edited).ok).toBe(true);
  });

  it.each([
    ['SINGLE', SigHash.SINGLE],
    ['NONE|ANYONECANPAY', SigHash.NONE_ANYONECANPAY],
  ])(
    'a real partial signature made with %s is SIGHASH_NOT_ALL even with the field removed',
    (_name, type) => {
      // Sign the first input for real with the other sighash, then strip the sighash field.
      const tx = Transaction.fromPSBT(base.psbt);
      tx.updateInput(0, { sighashType: type });
      const s = signers[0]!;
      const input = tx.getInput(0);
      const path = (input.bip32Derivation ?? []).find(
        ([, d]) => d.fingerprint === Number.parseInt(s.fingerprint, 16),
      )![1].path;
      let key = s.account;
      for (const step of path.slice(4)) key = key.deriveChild(step);
      tx.signIdx(key.privateKey!, 0, [type]);
      const edited = editPsbt(tx.toPSBT(0), (p) => {
        delete p.inputs[0]!.sighashType;
      });
      const sig = (editPsbtView(edited).inputs[0]!.partialSig as [Uint8Array, Uint8Array][])[0]![1];
      expect(sig[sig.length - 1]).toBe(type);
      expect(verify(edited)).toMatchObject({ ok: false, code: 'SIGHASH_NOT_ALL' });
    },
  );
});

describe('fields and formats', () => {
  it('an unknown input field is UNSUPPORTED_TRANSACTION', () => {
    const edited = editPsbt(base.psbt, (p) => {
      p.inputs[0]!.unknown = [[{ type: 0xf0, key: Uint8Array.from([1, 2, 3]) }, Uint8Array.from([4, 5, 6])]];
    });
    expect(editPsbtView(edited).inputs[0]!.unknown).toBeDefined();
    expect(verify(edited)).toMatchObject({ ok: false, code: 'UNSUPPORTED_TRANSACTION' });
  });

  it('an unknown global or output field is UNSUPPORTED_TRANSACTION', () => {
    const g = editPsbt(base.psbt, (p) => {
      p.global.unknown = [[{ type: 0xf0, key: new Uint8Array() }, Uint8Array.from([1])]];
    });
    expect(verify(g)).toMatchObject({ ok: false, code: 'UNSUPPORTED_TRANSACTION' });
    const o = editPsbt(base.psbt, (p) => {
      p.outputs[0]!.unknown = [[{ type: 0xf0, key: new Uint8Array() }, Uint8Array.from([1])]];
    });
    expect(verify(o)).toMatchObject({ ok: false, code: 'UNSUPPORTED_TRANSACTION' });
  });

  it('a proprietary field is UNSUPPORTED_TRANSACTION', () => {
    const edited = editPsbt(base.psbt, (p) => {
      // identifier "custos", subtype 1, no key data
      p.global.proprietary = [
        [Uint8Array.from([6, 0x63, 0x75, 0x73, 0x74, 0x6f, 0x73, 1]), Uint8Array.from([1])],
      ];
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'UNSUPPORTED_TRANSACTION' });
  });

  it('known fields Custos never writes are UNSUPPORTED_TRANSACTION: redeem script, final witness, preimage', () => {
    const redeem = editPsbt(base.psbt, (p) => {
      p.inputs[0]!.redeemScript = Uint8Array.from([0x51]);
    });
    const final = editPsbt(base.psbt, (p) => {
      p.inputs[0]!.finalScriptWitness = [Uint8Array.from([1])];
    });
    const preimage = editPsbt(base.psbt, (p) => {
      p.inputs[0]!.sha256 = [[new Uint8Array(32), Uint8Array.from([1])]];
    });
    for (const x of [redeem, final, preimage]) {
      expect(verify(x)).toMatchObject({ ok: false, code: 'UNSUPPORTED_TRANSACTION' });
    }
  });

  it('a version 2 PSBT (BIP 370) is UNSUPPORTED_TRANSACTION', () => {
    const v2 = Transaction.fromPSBT(base.psbt).toPSBT(2);
    expect(verify(v2)).toMatchObject({ ok: false, code: 'UNSUPPORTED_TRANSACTION' });
  });

  it('a transaction version other than 1 or 2 is UNSUPPORTED_TRANSACTION', () => {
    const edited = editPsbt(base.psbt, (p) => {
      p.global.unsignedTx.version = 3;
    });
    expect(verify(edited)).toMatchObject({ ok: false, code: 'UNSUPPORTED_TRANSACTION' });
  });

  it('bytes that are not a PSBT are refused, never thrown', () => {
    const rawTx = fundingTx([{ w: wallet, branch: 0, index: 0, value: 1_000n }]).raw;
    for (const bytes of [
      new Uint8Array(),
      Uint8Array.from([0x70, 0x73, 0x62, 0x74, 0xff]),
      rawTx,
      base.psbt.slice(0, 100),
    ]) {
      const r = verify(bytes);
      expect(r.ok).toBe(false);
    }
  });
});

describe('decodePsbt', () => {
  it('shows each output with its address, amount and whether it is change, and the fee', () => {
    const r = decodePsbt(base.psbt, wallet);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.fee).toBe(base.fee);
    expect(r.value.requiredSignatures).toBe(2);
    expect(r.value.outputs).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          address: DESTINATION,
          amount: 100_000n,
          isChange: false,
          changeIndex: null,
        }),
        expect.objectContaining({
          address: deriveAddress(wallet, 1, 7).address,
          amount: base.change!.value,
          isChange: true,
          changeIndex: 7,
        }),
      ]),
    );
    expect(r.value.inputs[0]).toMatchObject({
      value: 120_000n,
      address: deriveAddress(wallet, 0, 1).address,
      signatures: 0,
    });
  });

  it('shows an output the wallet does not own as not change, with its address', () => {
    const edited = editPsbt(base.psbt, (p) => {
      const c = changeOf(p);
      c.out.script = script(ATTACKER);
      p.outputs[c.j] = {};
    });
    const r = decodePsbt(edited, wallet);
    expect(r.ok && r.value.outputs.some((o) => o.address === ATTACKER && !o.isChange)).toBe(true);
  });
});

describe('random corruption', () => {
  it('a PSBT with bytes flipped, inserted or removed is refused with a code, or verifies to the same transfer', () => {
    const codes: ReadonlySet<string> = new Set(ERROR_CODES);
    const signedOnce = signPsbt(built({ amount: 150_000n }).psbt, signers[0]!, wallet);
    if (!signedOnce.ok) throw new Error(signedOnce.message);
    const signed = signedOnce.value.psbt;
    let accepted = 0;
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('xor' as const), at: fc.nat(), byte: fc.integer({ min: 1, max: 255 }) }),
      fc.record({
        kind: fc.constant('insert' as const),
        at: fc.nat(),
        byte: fc.integer({ min: 0, max: 255 }),
      }),
      fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), byte: fc.constant(0) }),
    );
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (mutations) => {
        let bytes = Uint8Array.from(signed);
        for (const m of mutations) {
          const at = m.at % bytes.length;
          if (m.kind === 'set') bytes[at] = m.byte;
          else if (m.kind === 'xor') bytes[at]! ^= m.byte;
          else if (m.kind === 'insert') {
            bytes = Uint8Array.from([...bytes.slice(0, at), m.byte, ...bytes.slice(at)]);
          } else bytes = Uint8Array.from([...bytes.slice(0, at), ...bytes.slice(at + 1)]);
        }
        const r = verifyPsbt(bytes, { ...INTENT, amount: '150000' }, wallet, CAPS, changeIndexLimit(-1));
        if (r.ok) {
          accepted++;
          expect(r.value.destination).toEqual({ address: DESTINATION, amount: 150_000n });
          expect(r.value.fee).toBeLessThanOrEqual(CAPS.maxFee);
        } else {
          expect(codes.has(r.code)).toBe(true);
        }
      }),
      { numRuns: 400, seed: 174 },
    );
    // Some corruptions do not touch what is signed (a witness byte of a previous transaction,
    // a signature, a sequence number); most must be refused.
    expect(accepted).toBeLessThan(200);
  });
});

// ---------------------------------------------------------------- helpers

/** A previous transaction as the raw coder holds a non-witness UTXO: decoded. */
function rawTxStruct(raw: Uint8Array): unknown {
  return RawTx.decode(raw);
}

function editPsbtView(psbt: Uint8Array): EditablePsbt {
  return RawPSBTV0.decode(psbt) as unknown as EditablePsbt;
}
