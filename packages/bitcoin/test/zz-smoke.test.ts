import { describe, expect, it } from 'vitest';
import { verifyPsbt, signPsbt, combinePsbts, finalizePsbt, decodePsbt, formatDescriptor } from '../src/index.js';
import { built, wallet, signers, INTENT, CAPS } from './psbt-fixtures.js';

describe('smoke', () => {
  it('works', () => {
    console.log(formatDescriptor(wallet));
    const b = built();
    console.log(b.txid, b.fee, b.vsize, b.change, b.inputs.map(i => i.value));
    const v = verifyPsbt(b.psbt, INTENT, wallet, CAPS);
    console.log(v);
    const s1 = signPsbt(b.psbt, signers[0]!, wallet);
    const s2 = signPsbt(b.psbt, signers[2]!, wallet);
    if (!s1.ok || !s2.ok) throw new Error(JSON.stringify([s1, s2]));
    console.log(verifyPsbt(s1.value.psbt, INTENT, wallet, CAPS).ok);
    const c = combinePsbts([s1.value.psbt, s2.value.psbt]);
    if (!c.ok) throw new Error(JSON.stringify(c));
    const f = finalizePsbt(c.value);
    console.log(f.ok ? f.value.txid + ' ' + f.value.tx.length : f);
    console.log(decodePsbt(c.value, wallet));
    expect(v.ok).toBe(true);
  });
});
