/** Owner signatures: r||s||v with v 27/28 over the bare safeTxHash, packed in owner order. */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import fc from 'fast-check';
import { type Hex, keccak256, recoverAddress, stringToHex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import {
  compareAddresses,
  evmAddressOf,
  packSafeSignatures,
  recoverSafeSigner,
  signSafeTxHash,
} from '../src/index.js';

const KEYS = ['a', 'b', 'c'].map((l) => keccak256(stringToHex(`owner ${l}`)));
const HASH = keccak256(stringToHex('a safeTxHash'));
const N = secp256k1.Point.Fn.ORDER;

describe('owner signatures', () => {
  it('should derive the same address as viem', () => {
    for (const k of KEYS) expect(evmAddressOf(k)).toBe(privateKeyToAccount(k).address);
  });

  it('should produce 65 bytes, v 27 or 28, recoverable by viem’s recoverAddress (the peer)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.constantFrom(...KEYS),
        async (h, key) => {
          const hash = `0x${Buffer.from(h).toString('hex')}` as Hex;
          const sig = signSafeTxHash(hash, key);
          expect(sig.length).toBe(2 + 130);
          expect([27, 28]).toContain(Number.parseInt(sig.slice(-2), 16));
          expect(await recoverAddress({ hash, signature: sig })).toBe(evmAddressOf(key));
          expect(recoverSafeSigner(hash, sig)).toEqual({ ok: true, value: evmAddressOf(key) });
        },
      ),
      { numRuns: 30 },
    );
  });

  it('should equal viem’s own signature for the same hash and key (RFC 6979, low s)', async () => {
    for (const k of KEYS) {
      const viemSig = await privateKeyToAccount(k).sign({ hash: HASH });
      expect(signSafeTxHash(HASH, k)).toBe(viemSig);
    }
  });

  it('should refuse v other than 27/28 (contract, approved-hash and eth_sign kinds)', () => {
    const sig = signSafeTxHash(HASH, KEYS[0]!);
    for (const v of ['00', '01', '1f', '20', '1d']) {
      const r = recoverSafeSigner(HASH, `${sig.slice(0, -2)}${v}` as Hex);
      expect(!r.ok && r.code).toBe('BAD_SIGNATURE');
    }
  });

  it('should refuse the high-s twin of a valid signature', () => {
    const sig = signSafeTxHash(HASH, KEYS[0]!);
    const s = BigInt(`0x${sig.slice(66, 130)}`);
    const v = Number.parseInt(sig.slice(-2), 16);
    const twin =
      `${sig.slice(0, 66)}${(N - s).toString(16).padStart(64, '0')}${(v === 27 ? 28 : 27).toString(16)}` as Hex;
    const r = recoverSafeSigner(HASH, twin);
    expect(!r.ok && r.code).toBe('BAD_SIGNATURE');
  });

  it('should refuse a signature that is not 65 bytes', () => {
    const sig = signSafeTxHash(HASH, KEYS[0]!);
    expect(recoverSafeSigner(HASH, `${sig}00` as Hex).ok).toBe(false);
    expect(recoverSafeSigner(HASH, sig.slice(0, -2) as Hex).ok).toBe(false);
  });

  it('should pack in ascending owner order whatever the input order, and refuse duplicates', () => {
    const sigs = KEYS.map((k) => ({ owner: evmAddressOf(k), signature: signSafeTxHash(HASH, k) }));
    const sorted = [...sigs].sort((a, b) => compareAddresses(a.owner, b.owner));
    const expected = `0x${sorted.map((s) => s.signature.slice(2)).join('')}`;
    expect(packSafeSignatures(sigs)).toBe(expected);
    expect(packSafeSignatures([...sigs].reverse())).toBe(expected);
    expect(() => packSafeSignatures([sigs[0]!, sigs[0]!])).toThrow(/two signatures/);
  });
});
