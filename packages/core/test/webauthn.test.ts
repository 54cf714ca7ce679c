import { p256 } from '@noble/curves/nist.js';
import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { concatBytes, fromHex, toBase64url, toHex, utf8 } from '../src/bytes.js';
import { CustosError } from '../src/errors.js';
import { verifyDeviceSignature } from '../src/keys.js';
import {
  type Approval,
  approvalDigest,
  type Device,
  type DeviceSignature,
  device as deviceSchema,
  deviceSignature as deviceSignatureSchema,
} from '../src/objects.js';
import type { Digest } from '../src/types.js';
import {
  createSoftwarePasskeyAssertion,
  generateSoftwarePasskey,
  verifyWebAuthnAssertion,
  type WebAuthnAssertionInput,
} from '../src/webauthn.js';

const RP_ID = 'custos.example';
const ORIGIN = 'https://custos.example';
const passkey = generateSoftwarePasskey();
const challenge = sha256(utf8('an approval digest'));

/** A valid assertion input made by the software passkey, with `overrides` applied. */
function input(overrides: Partial<WebAuthnAssertionInput> = {}, counter = 7): WebAuthnAssertionInput {
  const a = createSoftwarePasskeyAssertion({
    secretKey: passkey.secretKey,
    rpId: RP_ID,
    origin: ORIGIN,
    challenge,
    counter,
  });
  return {
    publicKey: passkey.publicKey,
    rpId: RP_ID,
    origin: ORIGIN,
    challenge,
    ...a,
    requireUserVerification: true,
    ...overrides,
  };
}

/** authenticatorData as an authenticator builds it: rpIdHash || flags || signCount (big-endian). */
function authData(
  opts: { rpId?: string; flags?: number; counter?: number; extra?: Uint8Array } = {},
): Uint8Array {
  const out = new Uint8Array(37);
  out.set(sha256(utf8(opts.rpId ?? RP_ID)), 0);
  out[32] = opts.flags ?? 0x05;
  new DataView(out.buffer).setUint32(33, opts.counter ?? 7, false);
  return opts.extra === undefined ? out : concatBytes(out, opts.extra);
}

function clientData(members: Record<string, unknown>): Uint8Array {
  return utf8(
    JSON.stringify({ type: 'webauthn.get', challenge: toBase64url(challenge), origin: ORIGIN, ...members }),
  );
}

/**
 * Signs exactly what the verifier checks, so a test of a field check shows
 * that the check itself refuses, not the signature.
 */
function signed(authenticatorData: Uint8Array, clientDataJSON: Uint8Array): WebAuthnAssertionInput {
  const signature = p256.sign(concatBytes(authenticatorData, sha256(clientDataJSON)), passkey.secretKey, {
    format: 'der',
    lowS: false,
  });
  return input({ authenticatorData, clientDataJSON, signature });
}

function reasonOf(i: WebAuthnAssertionInput): string {
  const r = verifyWebAuthnAssertion(i);
  return r.ok ? 'OK' : r.reason;
}

describe('verifyWebAuthnAssertion (W3C WebAuthn L3 section 7.2)', () => {
  it('should accept a valid assertion and return its counter', () => {
    const r = verifyWebAuthnAssertion(input({ previousCounter: 6 }, 7));
    expect(r).toEqual({ ok: true, counter: 7, userVerified: true });
  });

  it('should accept a high-S signature, as ECDSA authenticators emit them', () => {
    const i = input();
    const sig = p256.Signature.fromBytes(i.signature, 'der');
    const flipped = sig.hasHighS() ? sig : new p256.Signature(sig.r, p256.Point.Fn.ORDER - sig.s);
    expect(flipped.hasHighS()).toBe(true);
    expect(verifyWebAuthnAssertion({ ...i, signature: flipped.toBytes('der') }).ok).toBe(true);
  });

  it('should accept a compressed (33-byte) public key', () => {
    const compressed = p256.getPublicKey(passkey.secretKey, true);
    expect(compressed.length).toBe(33);
    expect(verifyWebAuthnAssertion(input({ publicKey: compressed })).ok).toBe(true);
  });

  it('should refuse when the client data type is not webauthn.get (step 10)', () => {
    expect(reasonOf(signed(authData(), clientData({ type: 'webauthn.create' })))).toBe('TYPE');
  });

  it('should refuse when the challenge is not the expected one (step 11)', () => {
    expect(reasonOf(input({ challenge: sha256(utf8('another digest')) }))).toBe('CHALLENGE');
    // The same bytes spelled another way (padded base64url) are not the expected spelling.
    expect(reasonOf(signed(authData(), clientData({ challenge: `${toBase64url(challenge)}=` })))).toBe(
      'CHALLENGE',
    );
  });

  it('should refuse when the origin is not the expected one (step 12)', () => {
    expect(reasonOf(signed(authData(), clientData({ origin: 'https://evil.example' })))).toBe('ORIGIN');
    expect(reasonOf(signed(authData(), clientData({ origin: `${ORIGIN}/` })))).toBe('ORIGIN');
    expect(reasonOf(input({ origin: 'https://other.custos.example' }))).toBe('ORIGIN');
  });

  it('should refuse an assertion made in a cross-origin iframe (crossOrigin true, step 13)', () => {
    expect(reasonOf(signed(authData(), clientData({ crossOrigin: true })))).toBe('ORIGIN');
  });

  it('should refuse an assertion that names a top origin (step 14)', () => {
    expect(reasonOf(signed(authData(), clientData({ crossOrigin: true, topOrigin: ORIGIN })))).toBe('ORIGIN');
    expect(reasonOf(signed(authData(), clientData({ topOrigin: 'https://evil.example' })))).toBe('ORIGIN');
  });

  it('should tolerate crossOrigin false, tokenBinding and other extra client data members', () => {
    const cd = clientData({
      crossOrigin: false,
      tokenBinding: { status: 'supported' },
      other_keys_can_be_added_here: 'do not compare clientDataJSON against a template',
    });
    expect(verifyWebAuthnAssertion(signed(authData(), cd))).toEqual({
      ok: true,
      counter: 7,
      userVerified: true,
    });
  });

  it('should refuse when the rpIdHash is not the hash of the expected RP ID (step 15)', () => {
    expect(reasonOf(signed(authData({ rpId: 'evil.example' }), clientData({})))).toBe('RP_ID');
    expect(reasonOf(input({ rpId: 'other.example' }))).toBe('RP_ID');
  });

  it('should refuse when the user presence flag is clear (step 16)', () => {
    expect(reasonOf(signed(authData({ flags: 0x04 }), clientData({})))).toBe('USER_PRESENCE');
  });

  it('should refuse when user verification is required and the UV flag is clear (step 17)', () => {
    expect(reasonOf(signed(authData({ flags: 0x01 }), clientData({})))).toBe('USER_VERIFICATION');
  });

  it('should accept a clear UV flag when user verification is not required, and report it', () => {
    const a = createSoftwarePasskeyAssertion({
      secretKey: passkey.secretKey,
      rpId: RP_ID,
      origin: ORIGIN,
      challenge,
      counter: 1,
      userVerified: false,
    });
    const r = verifyWebAuthnAssertion({ ...input(), ...a, requireUserVerification: false });
    expect(r).toEqual({ ok: true, counter: 1, userVerified: false });
    expect(verifyWebAuthnAssertion({ ...input(), ...a, requireUserVerification: true })).toMatchObject({
      ok: false,
      reason: 'USER_VERIFICATION',
    });
  });

  it('should refuse backup state without backup eligibility (step 18)', () => {
    expect(reasonOf(signed(authData({ flags: 0x05 | 0x10 }), clientData({})))).toBe('MALFORMED');
    expect(reasonOf(signed(authData({ flags: 0x05 | 0x08 | 0x10 }), clientData({})))).toBe('OK');
  });

  it('should refuse a counter that did not grow: a cloned authenticator (step 22)', () => {
    expect(reasonOf(input({ previousCounter: 7 }, 7))).toBe('COUNTER');
    expect(reasonOf(input({ previousCounter: 8 }, 7))).toBe('COUNTER');
    expect(reasonOf(input({ previousCounter: 3 }, 0))).toBe('COUNTER');
    expect(reasonOf(input({ previousCounter: 6 }, 7))).toBe('OK');
    expect(reasonOf(input({ previousCounter: 0xffff_fffe }, 0xffff_ffff))).toBe('OK');
  });

  it('should accept a counter of zero when the stored counter is zero (authenticators without counters)', () => {
    expect(verifyWebAuthnAssertion(input({ previousCounter: 0 }, 0))).toEqual({
      ok: true,
      counter: 0,
      userVerified: true,
    });
    expect(verifyWebAuthnAssertion(input({}, 0))).toMatchObject({ ok: true, counter: 0 });
  });

  it('should refuse a signature over other data (steps 20-21)', () => {
    const i = input();
    // Valid signature, but over another assertion's bytes.
    const other = createSoftwarePasskeyAssertion({
      secretKey: passkey.secretKey,
      rpId: RP_ID,
      origin: ORIGIN,
      challenge,
      counter: 8,
    });
    expect(reasonOf({ ...i, signature: other.signature })).toBe('SIGNATURE');
    // The counter raised after signing.
    expect(reasonOf({ ...i, authenticatorData: authData({ counter: 1000 }) })).toBe('SIGNATURE');
    // Another key's signature over the right bytes.
    const stranger = generateSoftwarePasskey();
    const foreign = createSoftwarePasskeyAssertion({
      secretKey: stranger.secretKey,
      rpId: RP_ID,
      origin: ORIGIN,
      challenge,
      counter: 7,
    });
    expect(reasonOf({ ...i, ...foreign })).toBe('SIGNATURE');
  });

  it('should refuse truncated authenticatorData', () => {
    const i = input();
    expect(reasonOf({ ...i, authenticatorData: i.authenticatorData.subarray(0, 36) })).toBe('MALFORMED');
    expect(reasonOf({ ...i, authenticatorData: new Uint8Array(0) })).toBe('MALFORMED');
  });

  it('should refuse authenticatorData with bytes its flags do not account for', () => {
    expect(reasonOf(signed(authData({ extra: new Uint8Array([0xa0]) }), clientData({})))).toBe('MALFORMED');
    // AT: attested credential data has no place in an assertion.
    expect(reasonOf(signed(authData({ flags: 0x45 }), clientData({})))).toBe('MALFORMED');
  });

  it('should accept signed extensions (ED flag) that are exactly one CBOR map, and refuse anything else', () => {
    // {"credProtect": 2}
    const map = new Uint8Array([0xa1, 0x6b, ...utf8('credProtect'), 0x02]);
    expect(reasonOf(signed(authData({ flags: 0x85, extra: map }), clientData({})))).toBe('OK');
    expect(reasonOf(signed(authData({ flags: 0x85 }), clientData({})))).toBe('MALFORMED');
    expect(
      reasonOf(
        signed(authData({ flags: 0x85, extra: concatBytes(map, new Uint8Array([0x00])) }), clientData({})),
      ),
    ).toBe('MALFORMED');
    expect(reasonOf(signed(authData({ flags: 0x85, extra: map.subarray(0, 5) }), clientData({})))).toBe(
      'MALFORMED',
    );
    expect(
      reasonOf(signed(authData({ flags: 0x85, extra: new Uint8Array([0x82, 0x01, 0x02]) }), clientData({}))),
    ).toBe('MALFORMED');
    // Indefinite-length map: not canonical CTAP2 CBOR.
    expect(
      reasonOf(signed(authData({ flags: 0x85, extra: new Uint8Array([0xbf, 0xff]) }), clientData({}))),
    ).toBe('MALFORMED');
  });

  it('should refuse garbage clientDataJSON', () => {
    const garbage: Uint8Array[] = [
      new Uint8Array(0),
      utf8('not json'),
      new Uint8Array([0xff, 0xfe, 0x7b, 0x7d]),
      utf8('[]'),
      utf8('"webauthn.get"'),
      utf8('{"type":"webauthn.get"}'),
      utf8(`{"type":"webauthn.get","challenge":"${toBase64url(challenge)}","origin":"${ORIGIN}"} x`),
      utf8(`{"type":"webauthn.get","challenge":1,"origin":"${ORIGIN}"}`),
      utf8(`\ufeff{"type":"webauthn.get","challenge":"${toBase64url(challenge)}","origin":"${ORIGIN}"}`),
      clientData({ crossOrigin: 'true' }),
      clientData({ number: 1.5 }),
    ];
    for (const cd of garbage) expect(reasonOf(signed(authData(), cd))).toBe('MALFORMED');
  });

  it('should refuse a duplicate key in clientDataJSON, which two parsers could read differently', () => {
    // JSON.parse keeps the last origin; a strict verifier must not pick either.
    const cd = utf8(
      `{"type":"webauthn.get","challenge":"${toBase64url(challenge)}",` +
        `"origin":"https://evil.example","origin":"${ORIGIN}"}`,
    );
    const r = verifyWebAuthnAssertion(signed(authData(), cd));
    expect(r).toMatchObject({ ok: false, reason: 'MALFORMED' });
    expect(r.ok ? '' : r.message).toContain('DUPLICATE_KEY');
  });

  it('should refuse garbage DER signatures without throwing', () => {
    const i = input();
    const sig = p256.Signature.fromBytes(i.signature, 'der');
    const cases: Uint8Array[] = [
      new Uint8Array(0),
      new Uint8Array([0x30, 0x00]),
      utf8('garbage'),
      sig.toBytes('compact'),
      concatBytes(i.signature, new Uint8Array([0x00])),
      i.signature.subarray(0, i.signature.length - 1),
      new Uint8Array(72).fill(0x30),
    ];
    for (const signature of cases) expect(reasonOf({ ...i, signature })).toBe('MALFORMED');
  });

  it('should refuse a public key that is not a P-256 point', () => {
    const i = input();
    expect(reasonOf({ ...i, publicKey: new Uint8Array(0) })).toBe('MALFORMED');
    expect(reasonOf({ ...i, publicKey: new Uint8Array(65).fill(4) })).toBe('MALFORMED');
    expect(reasonOf({ ...i, publicKey: passkey.publicKey.subarray(1) })).toBe('MALFORMED');
  });

  it('should throw a CustosError for a stored counter that is not a 32-bit unsigned integer (a caller mistake)', () => {
    expect(() => verifyWebAuthnAssertion(input({ previousCounter: -1 }))).toThrow(CustosError);
    expect(() => verifyWebAuthnAssertion(input({ previousCounter: 2 ** 32 }))).toThrow(CustosError);
    expect(() => verifyWebAuthnAssertion(input({ previousCounter: 1.5 }))).toThrow(CustosError);
  });

  it('should never throw on any assertion bytes, and never accept them', () => {
    const valid = input();
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 120 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 80 }),
        fc.constantFrom('authenticatorData', 'clientDataJSON', 'signature', 'all'),
        (ad, cd, sig, which) => {
          const i: WebAuthnAssertionInput =
            which === 'authenticatorData'
              ? { ...valid, authenticatorData: ad }
              : which === 'clientDataJSON'
                ? { ...valid, clientDataJSON: cd }
                : which === 'signature'
                  ? { ...valid, signature: sig }
                  : { ...valid, authenticatorData: ad, clientDataJSON: cd, signature: sig };
          expect(verifyWebAuthnAssertion(i).ok).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('should refuse any single-bit flip of a valid assertion', () => {
    const valid = input();
    fc.assert(
      fc.property(
        fc.constantFrom('authenticatorData', 'clientDataJSON', 'signature'),
        fc.nat(),
        (field, n) => {
          const bytes = Uint8Array.from(valid[field]);
          const bit = n % (bytes.length * 8);
          bytes[bit >> 3] = (bytes[bit >> 3] as number) ^ (1 << (bit & 7));
          expect(verifyWebAuthnAssertion({ ...valid, [field]: bytes }).ok).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('createSoftwarePasskeyAssertion', () => {
  it('should write clientDataJSON as browsers do', () => {
    const a = createSoftwarePasskeyAssertion({
      secretKey: passkey.secretKey,
      rpId: RP_ID,
      origin: ORIGIN,
      challenge,
      counter: 1,
    });
    expect(new TextDecoder().decode(a.clientDataJSON)).toBe(
      `{"type":"webauthn.get","challenge":"${toBase64url(challenge)}","origin":"${ORIGIN}","crossOrigin":false}`,
    );
    expect(a.authenticatorData.length).toBe(37);
    expect(toHex(a.authenticatorData.subarray(32))).toBe('0500000001');
  });

  it('should throw a CustosError for a counter out of range or a secret key of the wrong size', () => {
    const base = { secretKey: passkey.secretKey, rpId: RP_ID, origin: ORIGIN, challenge };
    expect(() => createSoftwarePasskeyAssertion({ ...base, counter: -1 })).toThrow(CustosError);
    expect(() => createSoftwarePasskeyAssertion({ ...base, counter: 2 ** 32 })).toThrow(CustosError);
    expect(() =>
      createSoftwarePasskeyAssertion({ ...base, counter: 1, secretKey: new Uint8Array(31) }),
    ).toThrow(CustosError);
  });
});

describe('verifyDeviceSignature with a WebAuthn passkey device', () => {
  const dev: Device = deviceSchema.parse({
    id: 'alice-passkey',
    kind: 'webauthn',
    credentialId: toBase64url(sha256(utf8('credential id')).subarray(0, 16)),
    publicKey: toHex(passkey.publicKey),
    rpId: RP_ID,
    origin: ORIGIN,
  });

  function approval(intentSeed: string): Approval {
    return {
      v: 1,
      intent: toHex(sha256(utf8(intentSeed))) as Digest,
      approver: 'alice',
      device: 'alice-passkey',
      decision: 'approve',
      at: 1_700_000_000_000,
      expiresAt: 1_700_000_600_000,
    };
  }

  function passkeySignature(digest: Digest, counter: number): DeviceSignature {
    const a = createSoftwarePasskeyAssertion({
      secretKey: passkey.secretKey,
      rpId: RP_ID,
      origin: ORIGIN,
      challenge: fromHex(digest),
      counter,
    });
    return deviceSignatureSchema.parse({
      kind: 'webauthn',
      authenticatorData: toBase64url(a.authenticatorData),
      clientDataJSON: toBase64url(a.clientDataJSON),
      signature: toBase64url(a.signature),
    });
  }

  it('should accept a passkey assertion over an approval digest and return the new counter', () => {
    const digest = approvalDigest(approval('intent-1'));
    const r = verifyDeviceSignature(dev, digest, passkeySignature(digest, 42), { previousCounter: 41 });
    expect(r).toEqual({ ok: true, value: { counter: 42, userVerified: true } });
  });

  it('THREATS 13: should refuse an assertion over one approval replayed onto another', () => {
    const first = approvalDigest(approval('intent-1'));
    const second = approvalDigest(approval('intent-2'));
    const r = verifyDeviceSignature(dev, second, passkeySignature(first, 42));
    expect(r).toMatchObject({ ok: false, code: 'BAD_SIGNATURE', details: { reason: 'CHALLENGE' } });
  });

  it('should refuse a replayed assertion whose counter did not grow', () => {
    const digest = approvalDigest(approval('intent-1'));
    const r = verifyDeviceSignature(dev, digest, passkeySignature(digest, 42), { previousCounter: 42 });
    expect(r).toMatchObject({ ok: false, code: 'BAD_SIGNATURE', details: { reason: 'COUNTER' } });
  });

  it('should refuse an assertion for a passkey registered to another origin', () => {
    const digest = approvalDigest(approval('intent-1'));
    const other = deviceSchema.parse({ ...dev, origin: 'https://evil.example' });
    expect(verifyDeviceSignature(other, digest, passkeySignature(digest, 1))).toMatchObject({
      ok: false,
      code: 'BAD_SIGNATURE',
      details: { reason: 'ORIGIN' },
    });
  });

  it('should refuse an Ed25519 signature presented for a passkey device', () => {
    const digest = approvalDigest(approval('intent-1'));
    const sig = deviceSignatureSchema.parse({ kind: 'ed25519', sig: '00'.repeat(64) });
    const r = verifyDeviceSignature(dev, digest, sig);
    expect(r).toMatchObject({ ok: false, code: 'BAD_SIGNATURE' });
  });
});
