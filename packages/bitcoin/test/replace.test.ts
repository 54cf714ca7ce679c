/**
 * Fee bumping (issue 13, BIP 125): buildReplacement keeps the inputs and the
 * payee outputs and takes the higher fee from the change; verifyReplacement
 * accepts only a transaction that conflicts with every one signed for the
 * intent, pays the payees exactly as the original did, keeps at most the
 * original's change, and beats each one's fee as Bitcoin Core requires.
 */
import { ATTACKER, built, editPsbt, utxosOf, wallet } from '@custos/test-support/psbt-fixtures';
import { describe, expect, it } from 'vitest';
import {
  analyzePsbt,
  buildPsbt,
  buildReplacement,
  INCREMENTAL_RELAY_FEE,
  type PsbtAnalysis,
  verifyReplacement,
} from '../src/index.js';

function analyzed(psbt: Uint8Array): PsbtAnalysis {
  const a = analyzePsbt(psbt, wallet);
  if (!a.ok) throw new Error(a.message);
  return a.value;
}

function replaced(original: Uint8Array, feeRate: bigint) {
  const r = buildReplacement(original, wallet, feeRate);
  if (!r.ok) throw new Error(`${r.code} ${r.message}`);
  return r.value;
}

describe('buildReplacement', () => {
  it('spends the same inputs, pays the same payees in the same order, and lowers only the change', () => {
    const original = built({ feeRate: 2n });
    const r = replaced(original.psbt, 10n);
    const before = analyzed(original.psbt);
    const after = analyzed(r.psbt);
    expect(after.inputs.map((i) => `${i.txid}:${i.vout}:${i.sequence}`)).toEqual(
      before.inputs.map((i) => `${i.txid}:${i.vout}:${i.sequence}`),
    );
    const payees = (a: PsbtAnalysis) =>
      a.outputs.filter((o) => o.changeIndex === undefined).map((o) => `${o.address}:${o.amount}`);
    expect(payees(after)).toEqual(payees(before));
    expect(r.fee).toBe(10n * BigInt(before.vsize));
    expect(r.change).toEqual({ index: 7, value: original.change!.value - (r.fee - original.fee) });
    expect(r.feeRate).toBe(10n);
    expect(after.inputs.every((i) => i.signatures === 0)).toBe(true);
  });

  it('drops change that would be dust and gives it to the fee', () => {
    // 170,000 sat in, 100,000 out: change of about 69,000 sat at 2 sat/vB; 330 sat/vB leaves less than dust.
    const original = built({ feeRate: 2n });
    const before = analyzed(original.psbt);
    const rate = (original.change!.value + original.fee) / BigInt(before.vsize);
    const r = buildReplacement(original.psbt, wallet, rate);
    if (!r.ok) throw new Error(r.message);
    expect(r.value.change).toBeNull();
    expect(r.value.fee).toBe(original.fee + original.change!.value);
  });

  it('refuses a fee rate that does not beat the original (NOT_A_REPLACEMENT)', () => {
    const original = built({ feeRate: 5n });
    expect(buildReplacement(original.psbt, wallet, 5n)).toMatchObject({
      ok: false,
      code: 'NOT_A_REPLACEMENT',
    });
    expect(buildReplacement(original.psbt, wallet, 4n)).toMatchObject({
      ok: false,
      code: 'NOT_A_REPLACEMENT',
    });
  });

  it('refuses an original without change (INSUFFICIENT_FUNDS: no input is added)', () => {
    const utxos = utxosOf([{ branch: 0, index: 0, value: 100_500n }], 9);
    const r = buildPsbt({ wallet, utxos, to: ATTACKER, amount: 100_000n, feeRate: 1n, changeIndex: 0 });
    if (!r.ok) throw new Error(r.message);
    expect(r.value.change).toBeNull();
    expect(buildReplacement(r.value.psbt, wallet, 3n)).toMatchObject({
      ok: false,
      code: 'INSUFFICIENT_FUNDS',
    });
  });
});

describe('verifyReplacement', () => {
  const original = built({ feeRate: 2n });
  const first = replaced(original.psbt, 10n);

  it('accepts the replacement of the original, and of the original and an earlier replacement', () => {
    expect(verifyReplacement(analyzed(first.psbt), [analyzed(original.psbt)])).toMatchObject({ ok: true });
    const second = replaced(first.psbt, 20n);
    expect(
      verifyReplacement(analyzed(second.psbt), [analyzed(original.psbt), analyzed(first.psbt)]),
    ).toMatchObject({ ok: true, value: { txid: second.txid } });
  });

  it('refuses a payee output changed, added or dropped', () => {
    const changedAmount = editPsbt(first.psbt, (p) => {
      const j = analyzed(first.psbt).outputs.findIndex((o) => o.changeIndex === undefined);
      p.global.unsignedTx.outputs[j]!.amount -= 1n;
    });
    const r = verifyReplacement(analyzed(changedAmount), [analyzed(original.psbt)]);
    expect(r).toMatchObject({ ok: false, code: 'NOT_A_REPLACEMENT' });
    const to = buildPsbt({
      wallet,
      utxos: utxosOf([
        { branch: 0, index: 0, value: 50_000n },
        { branch: 0, index: 1, value: 120_000n },
      ]),
      to: ATTACKER,
      amount: 100_000n,
      feeRate: 10n,
      changeIndex: 7,
    });
    if (!to.ok) throw new Error(to.message);
    expect(verifyReplacement(analyzed(to.value.psbt), [analyzed(original.psbt)])).toMatchObject({
      ok: false,
      code: 'NOT_A_REPLACEMENT',
    });
  });

  it('refuses a transaction that spends none of the inputs of one signed before (both could confirm)', () => {
    const other = buildPsbt({
      wallet,
      utxos: utxosOf([{ branch: 0, index: 2, value: 300_000n }], 42),
      to: analyzed(original.psbt).outputs.find((o) => o.changeIndex === undefined)!.address!,
      amount: 100_000n,
      feeRate: 10n,
      changeIndex: 7,
    });
    if (!other.ok) throw new Error(other.message);
    const r = verifyReplacement(analyzed(other.value.psbt), [analyzed(original.psbt)]);
    expect(r).toMatchObject({ ok: false, code: 'NOT_A_REPLACEMENT' });
    if (!r.ok) expect(r.message).toMatch(/spends none of the inputs/);
  });

  it('refuses change that grows or moves, and a fee that does not pay for its own relay', () => {
    const grown = editPsbt(first.psbt, (p) => {
      const j = analyzed(first.psbt).outputs.findIndex((o) => o.changeIndex !== undefined);
      // One satoshi more change than the original paid.
      p.global.unsignedTx.outputs[j]!.amount += first.fee - original.fee + 1n;
    });
    const g = verifyReplacement(analyzed(grown), [analyzed(original.psbt)]);
    expect(g).toMatchObject({ ok: false, code: 'NOT_A_REPLACEMENT' });
    if (!g.ok) expect(g.message).toMatch(/change/);
    const moved = buildReplacement(built({ feeRate: 2n, changeIndex: 8 }).psbt, wallet, 10n);
    if (!moved.ok) throw new Error(moved.message);
    expect(verifyReplacement(analyzed(moved.value.psbt), [analyzed(original.psbt)])).toMatchObject({
      ok: false,
      code: 'NOT_A_REPLACEMENT',
    });
    // One satoshi more fee than the original: a higher fee, but not by its size at the relay fee.
    const cheap = editPsbt(original.psbt, (p) => {
      const j = analyzed(original.psbt).outputs.findIndex((o) => o.changeIndex !== undefined);
      p.global.unsignedTx.outputs[j]!.amount -= 1n;
    });
    const r = verifyReplacement(analyzed(cheap), [analyzed(original.psbt)]);
    expect(r).toMatchObject({ ok: false, code: 'NOT_A_REPLACEMENT' });
    expect(INCREMENTAL_RELAY_FEE).toBe(1n);
  });

  it('refuses the very transaction signed before as its own replacement', () => {
    expect(verifyReplacement(analyzed(original.psbt), [analyzed(original.psbt)])).toMatchObject({
      ok: false,
      code: 'NOT_A_REPLACEMENT',
    });
  });
});
