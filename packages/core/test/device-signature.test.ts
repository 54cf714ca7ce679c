import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex, utf8 } from '../src/bytes.js';
import { generateEd25519, signDigest, verifyDeviceSignature } from '../src/keys.js';
import {
  type Device,
  type DeviceSignature,
  device as deviceSchema,
  deviceSignature as deviceSignatureSchema,
} from '../src/objects.js';
import type { Digest, Hex } from '../src/types.js';

const alice = generateEd25519();
const aliceDevice: Device = deviceSchema.parse({
  id: 'alice-laptop',
  kind: 'ed25519',
  publicKey: alice.publicKey,
});
const digest = toHex(sha256(utf8('an intent'))) as Digest;

function flipBit(hex: string, bit: number): Hex {
  const bytes = Buffer.from(hex, 'hex');
  const i = bit >> 3;
  bytes[i] = (bytes[i] as number) ^ (1 << (bit & 7));
  return bytes.toString('hex') as Hex;
}

describe('verifyDeviceSignature with an Ed25519 device', () => {
  it('should accept the device key signature over a digest', () => {
    expect(verifyDeviceSignature(aliceDevice, digest, signDigest(alice.secretKey, digest))).toEqual({
      ok: true,
      value: { userVerified: true },
    });
  });

  it("should refuse another device key's signature (THREATS 1: a session is not a key)", () => {
    const mallory = generateEd25519();
    const r = verifyDeviceSignature(aliceDevice, digest, signDigest(mallory.secretKey, digest));
    expect(r).toMatchObject({ ok: false, code: 'BAD_SIGNATURE' });
  });

  it('should refuse a signature over another digest (THREATS 6: a rewritten intent)', () => {
    const other = toHex(sha256(utf8('a rewritten intent'))) as Digest;
    const r = verifyDeviceSignature(aliceDevice, other, signDigest(alice.secretKey, digest));
    expect(r).toMatchObject({ ok: false, code: 'BAD_SIGNATURE' });
  });

  it('should refuse a signature with one bit flipped', () => {
    const sig = signDigest(alice.secretKey, digest);
    if (sig.kind !== 'ed25519') throw new Error('expected an Ed25519 signature');
    const r = verifyDeviceSignature(aliceDevice, digest, { kind: 'ed25519', sig: flipBit(sig.sig, 77) });
    expect(r).toMatchObject({ ok: false, code: 'BAD_SIGNATURE' });
  });

  it('should return BAD_SIGNATURE, not throw, for a malformed hex signature', () => {
    const sig = signDigest(alice.secretKey, digest);
    if (sig.kind !== 'ed25519') throw new Error('expected an Ed25519 signature');
    const malformed = [
      '',
      'zz'.repeat(64),
      sig.sig.toUpperCase(),
      sig.sig.slice(1),
      sig.sig.slice(0, 126),
      `${sig.sig}00`,
      `0x${sig.sig}`,
    ];
    for (const bad of malformed) {
      const r = verifyDeviceSignature(aliceDevice, digest, { kind: 'ed25519', sig: bad as Hex });
      expect(r).toMatchObject({ ok: false, code: 'BAD_SIGNATURE' });
    }
  });

  it('should return BAD_SIGNATURE, not throw, for a digest or device key that is not hex', () => {
    const sig = signDigest(alice.secretKey, digest);
    expect(verifyDeviceSignature(aliceDevice, 'not hex' as Digest, sig)).toMatchObject({
      ok: false,
      code: 'BAD_SIGNATURE',
    });
    const broken = { ...aliceDevice, publicKey: 'zz' } as Device;
    expect(verifyDeviceSignature(broken, digest, sig)).toMatchObject({ ok: false, code: 'BAD_SIGNATURE' });
  });

  it('should refuse a WebAuthn signature presented for an Ed25519 device (kind mismatch)', () => {
    const webauthn = deviceSignatureSchema.parse({
      kind: 'webauthn',
      authenticatorData: 'AAAA',
      clientDataJSON: 'AAAA',
      signature: 'AAAA',
    });
    const r = verifyDeviceSignature(aliceDevice, digest, webauthn);
    expect(r).toMatchObject({ ok: false, code: 'BAD_SIGNATURE' });
    expect(r.ok ? '' : r.message).toContain('ed25519 device cannot make a webauthn signature');
  });

  it('should accept a signature over any digest and refuse it after any single-bit flip', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.integer({ min: 0, max: 511 }),
        (bytes, bit) => {
          const d = toHex(bytes) as Digest;
          const sig = signDigest(alice.secretKey, d);
          if (sig.kind !== 'ed25519') throw new Error('expected an Ed25519 signature');
          expect(verifyDeviceSignature(aliceDevice, d, sig).ok).toBe(true);
          const flipped: DeviceSignature = { kind: 'ed25519', sig: flipBit(sig.sig, bit) };
          expect(verifyDeviceSignature(aliceDevice, d, flipped)).toMatchObject({
            ok: false,
            code: 'BAD_SIGNATURE',
          });
        },
      ),
      { numRuns: 200 },
    );
  });
});
