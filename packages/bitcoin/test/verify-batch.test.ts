/**
 * Batch payouts (issue 13) in the PSBT verifier and the builder: a batch
 * intent's PSBT must pay exactly its list of outputs, compared as a multiset
 * of (script, amount) since BIP 69 reorders them, plus at most the wallet's
 * change; anything dropped, added, duplicated or changed is
 * UNEXPECTED_OUTPUT, and the fee caps apply to the batch's one fee. Tampered
 * PSBTs are real PSBTs edited at the BIP 174 level, as a hostile coordinator
 * would.
 */
import { ATTACKER, CAPS, editPsbt, utxosOf, wallet } from '@custos/test-support/psbt-fixtures';
import { sha256 } from '@noble/hashes/sha2.js';
import { hex } from '@scure/base';
import { describe, expect, it } from 'vitest';
import {
  addressToScript,
  buildPsbt,
  changeIndexLimit,
  estimateVsize,
  scriptToAddress,
  verifyPsbt,
} from '../src/index.js';

/** A regtest P2WPKH address per customer, nobody's key. */
function customer(k: number): string {
  const program = sha256(new TextEncoder().encode(`batch customer ${k}`)).slice(0, 20);
  return scriptToAddress(new Uint8Array([0x00, 0x14, ...program]), 'regtest')!;
}

const UTXOS = utxosOf([
  { branch: 0, index: 0, value: 2_000_000n },
  { branch: 0, index: 1, value: 500_000n },
]);

function batchOf(n: number, amount = (k: number) => 10_000n + BigInt(k)) {
  const outputs = Array.from({ length: n }, (_, k) => ({ to: customer(k), amount: amount(k) }));
  const total = outputs.reduce((s, o) => s + o.amount, 0n);
  const intent = {
    chain: 'bitcoin:regtest',
    to: outputs[0]!.to,
    amount: total.toString(),
    outputs: outputs.map((o) => ({ to: o.to, amount: o.amount.toString() })),
  };
  return { outputs, total, intent };
}

function build(outputs: readonly { to: string; amount: bigint }[], feeRate = 5n) {
  const total = outputs.reduce((s, o) => s + o.amount, 0n);
  const r = buildPsbt({
    wallet,
    utxos: UTXOS,
    to: outputs[0]!.to,
    amount: total,
    outputs,
    feeRate,
    changeIndex: 3,
  });
  if (!r.ok) throw new Error(`${r.code} ${r.message}`);
  return r.value;
}

const caps = { maxFee: 100_000n, maxFeeRate: CAPS.maxFeeRate };
const verify = (psbt: Uint8Array, intent: ReturnType<typeof batchOf>['intent']) =>
  verifyPsbt(psbt, intent, wallet, caps, changeIndexLimit(-1));

describe('building a batch', () => {
  it('pays every output and change in one BIP 69 ordered transaction, fee at the rate on the estimated size', () => {
    const { outputs, intent } = batchOf(20);
    const b = build(outputs);
    const v = verify(b.psbt, intent);
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    expect(v.value.outputs.map((o) => [o.address, o.amount])).toEqual(outputs.map((o) => [o.to, o.amount]));
    expect(v.value.change?.index).toBe(3);
    expect(b.fee).toBe(5n * BigInt(b.vsize));
  });

  it('refuses a batch whose amount is not the sum of its outputs', () => {
    const { outputs, total } = batchOf(3);
    const r = buildPsbt({
      wallet,
      utxos: UTXOS,
      to: outputs[0]!.to,
      amount: total + 1n,
      outputs,
      feeRate: 5n,
      changeIndex: 3,
    });
    expect(r.ok ? 'built' : r.code).toBe('INVALID_VALUE');
  });

  it('costs far less than the same payouts one by one (one set of inputs, one change)', () => {
    const { outputs } = batchOf(100);
    const b = build(outputs);
    const script = addressToScript(outputs[0]!.to, 'regtest')!;
    const change = addressToScript(customer(999), 'regtest')!;
    const single = estimateVsize(1, wallet.m, wallet.keys.length, [script, change]);
    expect(b.vsize).toBeLessThan((100 * single) / 3);
  });
});

describe('verifyPsbt against a batch intent', () => {
  const { outputs, intent } = batchOf(10);
  const good = build(outputs);
  const scriptOf = (k: number) => addressToScript(customer(k), 'regtest')!;
  const at = (tx: { outputs: { script: Uint8Array }[] }, k: number) =>
    tx.outputs.findIndex((o) => hex.encode(o.script) === hex.encode(scriptOf(k)));

  it('accepts the exact list plus change', () => {
    expect(verify(good.psbt, intent).ok).toBe(true);
  });

  const tampered: [string, (p: Parameters<Parameters<typeof editPsbt>[1]>[0]) => void, RegExp][] = [
    [
      'drops one output (its value goes to the fee)',
      (p) => {
        const j = at(p.global.unsignedTx, 4);
        p.global.unsignedTx.outputs.splice(j, 1);
        p.outputs.splice(j, 1);
      },
      /no output pays outputs\[4\]/,
    ],
    [
      'adds one output to the attacker',
      (p) => {
        p.global.unsignedTx.outputs.push({ amount: 1_000n, script: addressToScript(ATTACKER, 'regtest')! });
        p.outputs.push({});
      },
      /which no remaining output of the batch names/,
    ],
    [
      'changes one output to the attacker',
      (p) => {
        p.global.unsignedTx.outputs[at(p.global.unsignedTx, 6)]!.script = addressToScript(
          ATTACKER,
          'regtest',
        )!;
      },
      /which no remaining output of the batch names/,
    ],
    [
      'changes one amount by one satoshi',
      (p) => {
        p.global.unsignedTx.outputs[at(p.global.unsignedTx, 2)]!.amount -= 1n;
      },
      /which no remaining output of the batch names/,
    ],
    [
      'pays one output twice in place of another',
      (p) => {
        const tx = p.global.unsignedTx;
        const two = tx.outputs[at(tx, 2)]!;
        tx.outputs[at(tx, 3)] = { amount: two.amount, script: two.script };
      },
      /which no remaining output of the batch names/,
    ],
  ];
  it.each(tampered)('refuses UNEXPECTED_OUTPUT when the PSBT %s', (_why, edit, message) => {
    const r = verify(editPsbt(good.psbt, edit), intent);
    expect(r.ok ? 'accepted' : r.code).toBe('UNEXPECTED_OUTPUT');
    expect(r.ok ? '' : r.message).toMatch(message);
  });

  it('refuses a PSBT for another batch (the list reordered is fine, another list is not)', () => {
    const other = batchOf(10, (k) => 10_000n + BigInt(k === 9 ? 0 : k));
    expect(verify(build(other.outputs).psbt, intent)).toMatchObject({ ok: false, code: 'UNEXPECTED_OUTPUT' });
    const reversed = build([...outputs].reverse());
    expect(verify(reversed.psbt, intent).ok).toBe(true);
  });

  it('refuses the single-output reading of a batch: a PSBT paying the total to the first destination', () => {
    const single = buildPsbt({
      wallet,
      utxos: UTXOS,
      to: intent.to,
      amount: BigInt(intent.amount),
      feeRate: 5n,
      changeIndex: 3,
    });
    if (!single.ok) throw new Error(single.message);
    expect(verify(single.value.psbt, intent)).toMatchObject({ ok: false, code: 'UNEXPECTED_OUTPUT' });
  });

  it('refuses an intent whose amount or first destination disagree with its outputs', () => {
    expect(verify(good.psbt, { ...intent, amount: (BigInt(intent.amount) + 1n).toString() })).toMatchObject({
      ok: false,
      code: 'UNEXPECTED_OUTPUT',
    });
  });

  it('applies the fee caps to the batch as a whole', () => {
    const r = verifyPsbt(good.psbt, intent, wallet, { maxFee: good.fee - 1n, maxFeeRate: 50n }, 19);
    expect(r.ok ? 'accepted' : r.code).toBe('FEE_TOO_HIGH');
  });
});
