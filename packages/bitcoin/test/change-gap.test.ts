/**
 * Change beyond the gap limit (issue 8, item 4): a PSBT whose change goes to
 * the wallet's own change branch but far past the last index used pays coins
 * that a wallet restored from the descriptor never finds. verifyPsbt takes
 * the caller's bound and refuses CHANGE_BEYOND_GAP past it (or past
 * CHANGE_GAP_LIMIT beyond a change-branch input it proved).
 */

import { CAPS, DESTINATION, INTENT, utxosOf, wallet } from '@custos/test-support/psbt-fixtures';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildPsbt,
  CHANGE_GAP_LIMIT,
  changeIndexLimit,
  claimedChangeIndex,
  verifyPsbt,
  type WalletUtxo,
} from '../src/index.js';

const RECEIVE_COIN = utxosOf([{ branch: 0, index: 3, value: 150_000n }], 77);

function psbtWithChangeAt(changeIndex: number, utxos: readonly WalletUtxo[] = RECEIVE_COIN): Uint8Array {
  const r = buildPsbt({ wallet, utxos, to: DESTINATION, amount: 100_000n, feeRate: 5n, changeIndex });
  if (!r.ok) throw new Error(r.message);
  expect(r.value.change?.index).toBe(changeIndex);
  return r.value.psbt;
}

describe('change beyond the gap limit', () => {
  it('is BIP 44 gap limit 20: a wallet with no change used yet takes change at 0..19', () => {
    expect(CHANGE_GAP_LIMIT).toBe(20);
    expect(changeIndexLimit(-1)).toBe(19);
    expect(changeIndexLimit(41)).toBe(61);
  });

  it('change at /1/100000 and /1/2147483647 is CHANGE_BEYOND_GAP; at the bound it is accepted', () => {
    for (const index of [100_000, 2_147_483_647, 20]) {
      const r = verifyPsbt(psbtWithChangeAt(index), INTENT, wallet, CAPS, changeIndexLimit(-1));
      expect(r).toMatchObject({
        ok: false,
        code: 'CHANGE_BEYOND_GAP',
        details: { changeIndex: index, maxChangeIndex: 19 },
      });
    }
    expect(verifyPsbt(psbtWithChangeAt(19), INTENT, wallet, CAPS, changeIndexLimit(-1))).toMatchObject({
      ok: true,
      value: { change: { index: 19 } },
    });
    // The caller's own record moves the bound: a signer that signed change at 99 990 takes 100 000.
    expect(verifyPsbt(psbtWithChangeAt(100_000), INTENT, wallet, CAPS, changeIndexLimit(99_990)).ok).toBe(
      true,
    );
  });

  it('a change-branch input proven in the PSBT shows its index used and moves the bound', () => {
    const spent = utxosOf([{ branch: 1, index: 99_990, value: 150_000n }], 78);
    expect(verifyPsbt(psbtWithChangeAt(100_010, spent), INTENT, wallet, CAPS, 19).ok).toBe(true);
    expect(verifyPsbt(psbtWithChangeAt(100_011, spent), INTENT, wallet, CAPS, 19)).toMatchObject({
      ok: false,
      code: 'CHANGE_BEYOND_GAP',
    });
    // A receive-branch input at a high index says nothing about the change branch.
    const receive = utxosOf([{ branch: 0, index: 99_990, value: 150_000n }], 79);
    expect(verifyPsbt(psbtWithChangeAt(100_000, receive), INTENT, wallet, CAPS, 19)).toMatchObject({
      ok: false,
      code: 'CHANGE_BEYOND_GAP',
    });
  });

  it('property: accepted exactly when change <= max(bound, highest change input + 20)', () => {
    // Small indexes as often as large ones, so the floor of 0..19 and the edges are tried every run.
    const index = fc.oneof(fc.integer({ min: 0, max: 45 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }));
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: -1, max: 45 }), fc.integer({ min: -1, max: 2 ** 31 - 1 })),
        fc.option(index),
        index,
        (bound, inputChange, change) => {
          const utxos =
            inputChange === null
              ? RECEIVE_COIN
              : utxosOf([{ branch: 1, index: inputChange, value: 150_000n }], inputChange);
          const r = verifyPsbt(psbtWithChangeAt(change, utxos), INTENT, wallet, CAPS, bound);
          // With no change-branch input the PSBT still proves nothing used, so the floor is 0..19.
          const limit = Math.max(bound, (inputChange ?? -1) + CHANGE_GAP_LIMIT);
          expect(r.ok).toBe(change <= limit);
          if (!r.ok) expect(r.code).toBe('CHANGE_BEYOND_GAP');
        },
      ),
      { numRuns: 30 },
    );
  });

  it('a PSBT without change is not bounded; a bound that is not an integer from -1 up is a caller error', () => {
    const exact = buildPsbt({
      wallet,
      utxos: RECEIVE_COIN,
      to: DESTINATION,
      amount: 150_000n - 1_000n,
      feeRate: 5n,
      changeIndex: 2 ** 31 - 1,
    });
    if (!exact.ok) throw new Error(exact.message);
    expect(exact.value.change).toBeNull();
    expect(verifyPsbt(exact.value.psbt, { ...INTENT, amount: '149000' }, wallet, CAPS, -1).ok).toBe(true);
    expect(() => verifyPsbt(exact.value.psbt, INTENT, wallet, CAPS, -2)).toThrow();
    expect(() => verifyPsbt(exact.value.psbt, INTENT, wallet, CAPS, 1.5)).toThrow();
  });

  it('claimedChangeIndex reads the change index a built PSBT names (for a signer ledger of verified PSBTs)', () => {
    expect(claimedChangeIndex(psbtWithChangeAt(12))).toBe(12);
    const none = buildPsbt({
      wallet,
      utxos: RECEIVE_COIN,
      to: DESTINATION,
      amount: 149_000n,
      feeRate: 5n,
      changeIndex: 3,
    });
    if (!none.ok) throw new Error(none.message);
    expect(claimedChangeIndex(none.value.psbt)).toBeNull();
    expect(claimedChangeIndex(new Uint8Array([1, 2, 3]))).toBeNull();
  });
});
