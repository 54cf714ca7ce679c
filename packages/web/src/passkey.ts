/**
 * Passkeys in the browser (WebAuthn Level 3, ES256 only). Enrolment makes a
 * discoverable credential on this device and returns what governance
 * registers: the credential id, the public key as a SEC1 point, the RP ID and
 * the origin (core's `webauthnDevice`). The admins compare the fingerprint
 * shown here with the one their CLI shows before they co-sign the addition,
 * so a console that swapped the key would be caught out of band.
 *
 * Signing an object is one assertion whose challenge is the object's 32-byte
 * digest (core `verifyDeviceSignature`, W3C §7.2 step 12): no session, cookie
 * or token ever authorizes a state change.
 */
import { fromBase64url, fromHex, sha256, toBase64url, toHex } from '@custos/core';

/** COSE algorithm -7: ECDSA with P-256 and SHA-256 (RFC 9053 §2.1). */
export const ES256 = -7;

/** The DER prefix of a P-256 SubjectPublicKeyInfo (RFC 5480) before its 65-byte uncompressed point. */
const P256_SPKI_PREFIX = fromHex('3059301306072a8648ce3d020106082a8648ce3d030107034200');

export interface EnrolledPasskey {
  readonly kind: 'webauthn';
  readonly credentialId: string;
  /** SEC1 uncompressed P-256 point, hex (65 bytes). */
  readonly publicKey: string;
  readonly rpId: string;
  readonly origin: string;
}

/** The raw P-256 point out of an SPKI, or null when it is not exactly a P-256 SPKI. */
export function p256PointFromSpki(spki: Uint8Array): Uint8Array | null {
  if (spki.length !== P256_SPKI_PREFIX.length + 65) return null;
  for (let i = 0; i < P256_SPKI_PREFIX.length; i++) if (spki[i] !== P256_SPKI_PREFIX[i]) return null;
  const point = spki.slice(P256_SPKI_PREFIX.length);
  return point[0] === 0x04 ? point : null;
}

/**
 * A short fingerprint of a public key for people to compare: the first 80
 * bits of its sha256, in five groups of four hex digits.
 */
export function keyFingerprint(publicKeyHex: string): string {
  const h = toHex(sha256(fromHex(publicKeyHex))).slice(0, 20);
  return h.match(/.{4}/g)!.join(' ');
}

/** Creates a passkey for `member` on this device (user verification required). */
export async function enrolPasskey(member: string, location: Location): Promise<EnrolledPasskey> {
  const rpId = location.hostname;
  const userId = crypto.getRandomValues(new Uint8Array(16));
  const cred = (await navigator.credentials.create({
    publicKey: {
      rp: { id: rpId, name: 'Custos' },
      user: { id: userId, name: member, displayName: member },
      challenge: crypto.getRandomValues(new Uint8Array(32)),
      pubKeyCredParams: [{ type: 'public-key', alg: ES256 }],
      authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
      attestation: 'none',
      timeout: 120_000,
    },
  })) as PublicKeyCredential | null;
  if (cred === null) throw new Error('the browser created no passkey');
  const response = cred.response as AuthenticatorAttestationResponse;
  if (response.getPublicKeyAlgorithm() !== ES256) throw new Error('the passkey is not ES256 (P-256)');
  const spki = response.getPublicKey();
  const point = spki === null ? null : p256PointFromSpki(new Uint8Array(spki));
  if (point === null) throw new Error('the passkey did not give a P-256 public key');
  return {
    kind: 'webauthn',
    credentialId: toBase64url(new Uint8Array(cred.rawId)),
    publicKey: toHex(point),
    rpId,
    origin: location.origin,
  };
}

export interface PasskeyAssertion {
  readonly kind: 'webauthn';
  readonly authenticatorData: string;
  readonly clientDataJSON: string;
  readonly signature: string;
}

/** One assertion over a 32-byte digest (hex) with the given credential; the user verifies on the device. */
export async function assertDigest(credentialId: string, digestHex: string): Promise<PasskeyAssertion> {
  const cred = (await navigator.credentials.get({
    publicKey: {
      challenge: new Uint8Array(fromHex(digestHex)),
      allowCredentials: [{ type: 'public-key', id: new Uint8Array(fromBase64url(credentialId)) }],
      userVerification: 'required',
      timeout: 120_000,
    },
  })) as PublicKeyCredential | null;
  if (cred === null) throw new Error('the passkey gave no signature');
  const r = cred.response as AuthenticatorAssertionResponse;
  return {
    kind: 'webauthn',
    authenticatorData: toBase64url(new Uint8Array(r.authenticatorData)),
    clientDataJSON: toBase64url(new Uint8Array(r.clientDataJSON)),
    signature: toBase64url(new Uint8Array(r.signature)),
  };
}
