import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex, utf8 } from '../src/bytes.js';
import {
  ED25519_BACKEND,
  ed25519PublicKey,
  signBytes,
  signBytesNoble,
  signDigest,
  verifyEd25519,
  verifyEd25519Noble,
} from '../src/keys.js';

// RFC 8032 section 7.1, tests 1-3.
const RFC8032 = [
  {
    secret: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature:
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    secret: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature:
      '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
  {
    secret: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    publicKey: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    message: 'af82',
    signature:
      '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
  },
];

const L = 2n ** 252n + 27742317777372353535851937790883648493n;

/** Adds L to S: the same signature, malleated; strict verifiers refuse it. */
function malleate(sigHex: string): string {
  const sig = fromHex(sigHex);
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i] as number);
  s += L;
  const out = new Uint8Array(sig);
  for (let i = 32; i < 64; i++) {
    out[i] = Number(s & 0xffn);
    s >>= 8n;
  }
  return toHex(out);
}

describe('Ed25519 verification backends agree', () => {
  it('uses OpenSSL through node:crypto on Node', () => {
    expect(ED25519_BACKEND).toBe('openssl');
  });

  it.each(RFC8032)('RFC 8032 vector for message "$message" verifies on both backends', (v) => {
    expect(ed25519PublicKey(fromHex(v.secret))).toBe(v.publicKey);
    expect(signBytes(fromHex(v.secret), fromHex(v.message))).toBe(v.signature);
    expect(signBytesNoble(fromHex(v.secret), fromHex(v.message))).toBe(v.signature);
    expect(verifyEd25519(v.publicKey, fromHex(v.message), v.signature)).toBe(true);
    expect(verifyEd25519Noble(v.publicKey, fromHex(v.message), v.signature)).toBe(true);
  });

  it.each(RFC8032)('a malleated signature (S + L) is refused by both backends', (v) => {
    const bad = malleate(v.signature);
    expect(verifyEd25519(v.publicKey, fromHex(v.message), bad)).toBe(false);
    expect(verifyEd25519Noble(v.publicKey, fromHex(v.message), bad)).toBe(false);
  });

  it('gives the same answer as noble for random keys, messages and bit flips (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.string(),
        fc.nat(511),
        fc.boolean(),
        (secret, text, bit, flip) => {
          const message = utf8(text);
          const publicKey = ed25519PublicKey(secret);
          let sig = signBytes(secret, message);
          if (flip) {
            const bytes = fromHex(sig);
            bytes[bit >> 3] = (bytes[bit >> 3] as number) ^ (1 << (bit & 7));
            sig = toHex(bytes) as typeof sig;
          }
          const a = verifyEd25519(publicKey, message, sig);
          expect(a).toBe(verifyEd25519Noble(publicKey, message, sig));
          expect(a).toBe(!flip);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses malformed keys and signatures without throwing', () => {
    const v = RFC8032[0]!;
    for (const [pk, sig] of [
      ['zz', v.signature],
      [v.publicKey, 'zz'],
      [v.publicKey.toUpperCase(), v.signature],
      ['00'.repeat(32), v.signature],
      [v.publicKey, v.signature.slice(0, 126)],
    ] as const) {
      expect(verifyEd25519(pk, new Uint8Array(0), sig)).toBe(false);
    }
  });
});

describe('Ed25519 signing backends agree', () => {
  it('OpenSSL and noble make the same signature for random keys and messages (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 300 }),
        (secret, message) => {
          const a = signBytes(secret, message);
          expect(a).toBe(signBytesNoble(secret, message));
          expect(verifyEd25519Noble(ed25519PublicKey(secret), message, a)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a secret array changed in place signs with the new key, not a remembered one', () => {
    const secret = fromHex(RFC8032[0]!.secret);
    const message = fromHex('af82');
    const first = signBytes(secret, message);
    secret.set(fromHex(RFC8032[2]!.secret));
    expect(signBytes(secret, message)).toBe(RFC8032[2]!.signature);
    expect(signBytes(secret, message)).not.toBe(first);
    secret.fill(0);
    expect(signBytes(secret, message)).toBe(signBytesNoble(new Uint8Array(32), message));
  });

  it('signDigest signs the digest bytes, as noble would', () => {
    const secret = fromHex(RFC8032[1]!.secret);
    const digest = 'ab'.repeat(32) as Parameters<typeof signDigest>[1];
    expect(signDigest(secret, digest)).toEqual({
      kind: 'ed25519',
      sig: signBytesNoble(secret, fromHex(digest)),
    });
  });
});
