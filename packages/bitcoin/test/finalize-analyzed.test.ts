/**
 * finalizeAnalyzed (finalize.ts), the coordinator's combine-and-finalize from
 * analyses it already holds: byte for byte the transaction that combinePsbts
 * and finalizePsbt extract from the same signed PSBTs, whichever signers and
 * in whichever order; and every refusal finalizePsbt gives (a missing
 * signature, one that does not verify, parts of different transactions).
 */

import { built, editPsbt, signers, wallet } from '@custos/test-support/psbt-fixtures';
import { describe, expect, it } from 'vitest';
import {
  analyzePsbt,
  combinePsbts,
  finalizeAnalyzed,
  finalizePsbt,
  type PsbtAnalysis,
  signPsbt,
} from '../src/index.js';

function ok<T>(r: { ok: true; value: T } | { ok: false; code: string; message: string }): T {
  if (!r.ok) throw new Error(`${r.code}: ${r.message}`);
  return r.value;
}

function sign(psbt: Uint8Array, i: number): Uint8Array {
  return ok(signPsbt(psbt, signers[i]!, wallet)).psbt;
}

function analyzed(psbt: Uint8Array): PsbtAnalysis {
  return ok(analyzePsbt(psbt, wallet));
}

describe('finalizeAnalyzed', () => {
  const b = built({ amount: 150_000n });

  it('extracts exactly the transaction combinePsbts + finalizePsbt extract, for any two or three signers in any order', () => {
    for (const set of [
      [0, 1],
      [1, 0],
      [0, 2],
      [2, 1],
      [0, 1, 2],
    ]) {
      const parts = set.map((i) => sign(b.psbt, i));
      const expected = ok(finalizePsbt(ok(combinePsbts(parts))));
      const final = ok(finalizeAnalyzed(parts.map(analyzed), wallet));
      expect(final.hex).toBe(expected.hex);
      expect(final.txid).toBe(b.txid);
    }
  });

  it('refuses one signature of two, and an unsigned PSBT', () => {
    expect(finalizeAnalyzed([analyzed(sign(b.psbt, 0))], wallet)).toMatchObject({
      ok: false,
      code: 'INVALID_VALUE',
    });
    expect(finalizeAnalyzed([analyzed(b.psbt)], wallet)).toMatchObject({ ok: false, code: 'INVALID_VALUE' });
    expect(finalizeAnalyzed([], wallet)).toMatchObject({ ok: false, code: 'INVALID_VALUE' });
  });

  it('refuses a signature that does not verify: BAD_SIGNATURE', () => {
    const forged = editPsbt(sign(b.psbt, 0), (p) => {
      const sigs = p.inputs[1]!.partialSig as [Uint8Array, Uint8Array][];
      const sig = Uint8Array.from(sigs[0]![1]);
      sig[sig.length - 3]! ^= 0x01; // a bit of s
      sigs[0] = [sigs[0]![0], sig];
    });
    expect(finalizeAnalyzed([analyzed(forged), analyzed(sign(b.psbt, 2))], wallet)).toMatchObject({
      ok: false,
      code: 'BAD_SIGNATURE',
    });
  });

  it('refuses parts of different transactions', () => {
    const other = built({ amount: 100_000n });
    expect(
      finalizeAnalyzed([analyzed(sign(b.psbt, 0)), analyzed(sign(other.psbt, 1))], wallet),
    ).toMatchObject({ ok: false, code: 'INVALID_VALUE' });
  });
});
