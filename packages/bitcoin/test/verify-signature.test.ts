/**
 * verifyInputSignature (the coordinator's check of every partial signature
 * before it finalizes, through OpenSSL when node:crypto has secp256k1) gives
 * noble's answer on valid signatures, tampered ones, high-S twins, non-DER
 * encodings, other keys and keys that are not points (property).
 */
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ECDSA_BACKEND, verifyInputSignature } from '../src/sign.js';

const N = secp256k1.Point.Fn.ORDER;

function noble(half: Uint8Array, pubkey: Uint8Array, der: Uint8Array): boolean {
  try {
    return secp256k1.verify(der, sha256(half), pubkey, { prehash: false, format: 'der', lowS: true });
  } catch {
    return false;
  }
}

describe('verifyInputSignature', () => {
  it(`agrees with noble (${ECDSA_BACKEND}) on signatures valid, altered, high-S, re-encoded or by another key (property)`, () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 1, maxLength: 80 }),
        fc.constantFrom('valid', 'flip', 'high-s', 'trailing', 'other-key', 'bad-point', 'truncated'),
        fc.nat(),
        (seed, preimage, mutation, at) => {
          const sk = sha256(seed);
          const half = sha256(preimage);
          const pub = secp256k1.getPublicKey(sk, true);
          const sig = secp256k1.Signature.fromBytes(secp256k1.sign(sha256(half), sk, { prehash: false }));
          let der: Uint8Array = sig.toBytes('der');
          let key: Uint8Array = pub;
          switch (mutation) {
            case 'flip':
              der = Uint8Array.from(der);
              der[at % der.length]! ^= 1 << (at % 8);
              break;
            case 'high-s':
              der = new secp256k1.Signature(sig.r, N - sig.s).toBytes('der');
              break;
            case 'trailing':
              der = Uint8Array.from([...der, 0]);
              break;
            case 'other-key':
              key = secp256k1.getPublicKey(sha256(sk), true);
              break;
            case 'bad-point':
              key = Uint8Array.from(pub);
              key[5]! ^= 0xff;
              break;
            case 'truncated':
              der = der.subarray(0, der.length - 1 - (at % 4));
              break;
          }
          expect(verifyInputSignature(half, key, der)).toBe(noble(half, key, der));
          if (mutation === 'valid') expect(verifyInputSignature(half, key, der)).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
  });
});
