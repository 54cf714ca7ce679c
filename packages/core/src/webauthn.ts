/**
 * WebAuthn assertion verification for passkeys (ES256: ECDSA on P-256 with SHA-256).
 *
 * A pure function in the manner of SimpleWebAuthn's verifyAuthenticationResponse:
 * every expectation (challenge, origin, RP ID, the last counter) comes in as an
 * argument and the decision, with the new counter, goes out; the caller
 * stores the counter. Nothing here throws on the bytes of an assertion: an
 * attacker's clientDataJSON or DER is data, and gets a decision with a reason.
 *
 * The steps follow W3C Web Authentication Level 3, section 7.2 "Verifying an
 * Authentication Assertion" (https://www.w3.org/TR/webauthn-3/#sctn-verifying-assertion);
 * comments name the step numbers. Steps 1-7 (calling the browser, finding the
 * credential record) belong to the caller: here the credential record is the
 * registered device's public key, RP ID and origin.
 *
 * Parsing is strict where the spec leaves room: clientDataJSON goes through the
 * core strict JSON parser (duplicate keys, which two parsers could read
 * differently, are refused), authenticatorData must end exactly where its flags
 * say it ends, and the DER signature must be canonical (noble's DER decoder
 * rejects non-minimal lengths, leading zeros and trailing bytes). High-S
 * signatures are accepted: ECDSA authenticators emit them, and WebAuthn does not
 * require low S.
 */
import { p256 } from '@noble/curves/nist.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, constantTimeEqual, toBase64url, utf8 } from './bytes.js';
import { CustosError } from './errors.js';
import { type JsonValue, parseJsonBytes } from './json.js';

export type WebAuthnFailure =
  | 'MALFORMED'
  | 'TYPE'
  | 'CHALLENGE'
  | 'ORIGIN'
  | 'RP_ID'
  | 'USER_PRESENCE'
  | 'USER_VERIFICATION'
  | 'COUNTER'
  | 'SIGNATURE';

export interface WebAuthnAssertionInput {
  /** The registered credential public key: a SEC1 P-256 point, 33 (compressed) or 65 bytes. */
  readonly publicKey: Uint8Array;
  /** The RP ID the credential is scoped to, e.g. custos.example. */
  readonly rpId: string;
  /** The one expected origin, e.g. https://custos.example. */
  readonly origin: string;
  /** The raw challenge bytes; in Custos, the 32 bytes of the digest being approved. */
  readonly challenge: Uint8Array;
  readonly authenticatorData: Uint8Array;
  readonly clientDataJSON: Uint8Array;
  /** ASN.1 DER ECDSA signature, as WebAuthn returns it. */
  readonly signature: Uint8Array;
  /** Require the UV flag (the authenticator checked a PIN or biometric). */
  readonly requireUserVerification: boolean;
  /** The signature counter stored after the last accepted assertion (0 or absent if none). */
  readonly previousCounter?: number;
}

export type WebAuthnResult =
  | { readonly ok: true; readonly counter: number; readonly userVerified: boolean }
  | { readonly ok: false; readonly reason: WebAuthnFailure; readonly message: string };

/** Authenticator data flag bits (WebAuthn L3 section 6.1, #sctn-authenticator-data). */
const FLAG_UP = 0x01;
const FLAG_UV = 0x04;
const FLAG_BE = 0x08;
const FLAG_BS = 0x10;
const FLAG_AT = 0x40;
const FLAG_ED = 0x80;

/** rpIdHash (32) || flags (1) || signCount (4). */
const AUTH_DATA_MIN = 37;
/** Longest clientDataJSON accepted; browsers send a few hundred bytes. */
const CLIENT_DATA_MAX_BYTES = 8192;
const CLIENT_DATA_MAX_DEPTH = 8;
/** Deepest CBOR nesting accepted in the extensions map. */
const CBOR_MAX_DEPTH = 16;
const MAX_COUNTER = 0xffff_ffff;

function fail(reason: WebAuthnFailure, message: string): WebAuthnResult {
  return { ok: false, reason, message };
}

/**
 * Verifies a WebAuthn assertion made with an ES256 passkey. Returns the new
 * signature counter for the caller to store; never throws on assertion bytes.
 *
 * Throws CustosError INVALID_VALUE only for a caller's mistake: a
 * `previousCounter` that is not an integer in 0..2^32-1.
 *
 * @example
 * const r = verifyWebAuthnAssertion({ publicKey, rpId: 'custos.example', origin: 'https://custos.example',
 *   challenge: digestBytes, authenticatorData, clientDataJSON, signature, requireUserVerification: true,
 *   previousCounter: stored });
 * if (r.ok) stored = r.counter;
 */
export function verifyWebAuthnAssertion(input: WebAuthnAssertionInput): WebAuthnResult {
  const previous = input.previousCounter ?? 0;
  if (!Number.isSafeInteger(previous) || previous < 0 || previous > MAX_COUNTER) {
    throw new CustosError('INVALID_VALUE', 'previousCounter must be an integer from 0 to 2^32-1');
  }
  try {
    return verifyAssertion(input, previous);
  } catch (err) {
    // Every check below returns a decision; this is a last guard so that no
    // assertion bytes can turn into an exception in a caller's request path.
    return fail(
      'MALFORMED',
      `assertion could not be processed: ${err instanceof Error ? err.name : 'error'}`,
    );
  }
}

function verifyAssertion(input: WebAuthnAssertionInput, previous: number): WebAuthnResult {
  const { authenticatorData: authData, clientDataJSON: cData, signature: sig } = input;
  if (!(authData instanceof Uint8Array && cData instanceof Uint8Array && sig instanceof Uint8Array)) {
    return fail('MALFORMED', 'assertion fields must be bytes');
  }

  // Steps 8-9: UTF-8 decode and parse the client data. The strict parser
  // refuses a BOM, duplicate keys and trailing bytes, which the spec's
  // "implementation-specific JSON parser" would leave open.
  let parsed: JsonValue;
  try {
    parsed = parseJsonBytes(cData, { maxBytes: CLIENT_DATA_MAX_BYTES, maxDepth: CLIENT_DATA_MAX_DEPTH });
  } catch (err) {
    const code = err instanceof CustosError ? err.code : 'INVALID_JSON';
    return fail('MALFORMED', `clientDataJSON is not strict JSON (${code})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return fail('MALFORMED', 'clientDataJSON is not a JSON object');
  }
  const c = parsed;
  const type = c.type;
  const challenge = c.challenge;
  const origin = c.origin;
  if (typeof type !== 'string' || typeof challenge !== 'string' || typeof origin !== 'string') {
    return fail('MALFORMED', 'clientDataJSON needs string members type, challenge and origin');
  }
  const crossOrigin = c.crossOrigin;
  if (crossOrigin !== undefined && typeof crossOrigin !== 'boolean') {
    return fail('MALFORMED', 'clientDataJSON crossOrigin must be a boolean');
  }
  // tokenBinding (Level 2) and any other members are tolerated: the spec lets
  // clients add members, and the signature covers them all.

  // Step 10: the assertion was made by navigator.credentials.get(), not create().
  if (type !== 'webauthn.get') {
    return fail(
      'TYPE',
      `clientDataJSON type is ${JSON.stringify(type.slice(0, 32))}, expected "webauthn.get"`,
    );
  }

  // Step 11: the challenge is exactly base64url(challenge), unpadded, one spelling.
  if (!constantTimeEqual(utf8(challenge), utf8(toBase64url(input.challenge)))) {
    return fail('CHALLENGE', 'clientDataJSON challenge is not the expected one');
  }

  // Step 12: the origin is the one expected origin, compared exactly.
  if (origin !== input.origin) {
    return fail(
      'ORIGIN',
      `clientDataJSON origin ${JSON.stringify(origin.slice(0, 128))} is not the expected one`,
    );
  }

  // Steps 13-14: Custos never expects a passkey to be used inside a cross-origin
  // iframe, so crossOrigin true, or any topOrigin, is refused.
  if (crossOrigin === true) {
    return fail('ORIGIN', 'assertion was made in a cross-origin iframe');
  }
  if (c.topOrigin !== undefined) {
    return fail('ORIGIN', 'assertion names a top origin; cross-origin iframes are not expected');
  }

  // Authenticator data layout (L3 section 6.1): rpIdHash(32) flags(1) signCount(4)
  // [attestedCredentialData] [extensions CBOR map]. It must end where the flags say.
  if (authData.length < AUTH_DATA_MIN) {
    return fail(
      'MALFORMED',
      `authenticatorData is ${authData.length} bytes; at least ${AUTH_DATA_MIN} are needed`,
    );
  }
  const flags = authData[32] as number;
  if ((flags & FLAG_AT) !== 0) {
    return fail('MALFORMED', 'authenticatorData of an assertion carries attested credential data');
  }
  if ((flags & FLAG_ED) !== 0) {
    const end = cborItemEnd(authData, AUTH_DATA_MIN, 0, true);
    if (end !== authData.length) {
      return fail('MALFORMED', 'authenticatorData extensions are not exactly one well-formed CBOR map');
    }
  } else if (authData.length !== AUTH_DATA_MIN) {
    return fail('MALFORMED', 'authenticatorData has trailing bytes');
  }
  const counter = new DataView(authData.buffer, authData.byteOffset, authData.byteLength).getUint32(
    33,
    false,
  );

  // Step 15: rpIdHash is sha256 of the expected RP ID.
  if (!constantTimeEqual(authData.subarray(0, 32), sha256(utf8(input.rpId)))) {
    return fail('RP_ID', 'authenticatorData rpIdHash is not the hash of the expected RP ID');
  }

  // Step 16: user presence.
  if ((flags & FLAG_UP) === 0) {
    return fail('USER_PRESENCE', 'the authenticator did not test user presence (UP flag clear)');
  }

  // Step 17: user verification when required; otherwise the UV flag is reported, not judged.
  const userVerified = (flags & FLAG_UV) !== 0;
  if (input.requireUserVerification && !userVerified) {
    return fail('USER_VERIFICATION', 'user verification is required (UV flag clear)');
  }

  // Step 18: a credential that cannot be backed up cannot be backed up.
  if ((flags & FLAG_BE) === 0 && (flags & FLAG_BS) !== 0) {
    return fail('MALFORMED', 'authenticatorData sets backup state without backup eligibility');
  }
  // Step 19 (backup-state policy) and step 23 (extension outputs): Custos
  // requests no extensions and sets no backup policy; both are covered by the
  // signature and otherwise ignored.

  // Steps 20-21: sig is an ECDSA signature over authData || sha256(cData); ES256
  // hashes that message once more with SHA-256 (prehash).
  if (
    !(input.publicKey instanceof Uint8Array) ||
    (input.publicKey.length !== 33 && input.publicKey.length !== 65)
  ) {
    return fail('MALFORMED', 'public key is not a 33- or 65-byte SEC1 P-256 point');
  }
  try {
    p256.Point.fromBytes(input.publicKey);
  } catch {
    return fail('MALFORMED', 'public key is not a point on P-256');
  }
  try {
    p256.Signature.fromBytes(sig, 'der');
  } catch {
    return fail('MALFORMED', 'signature is not a canonical DER ECDSA signature');
  }
  const message = concatBytes(authData, sha256(cData));
  let valid: boolean;
  try {
    valid = p256.verify(sig, message, input.publicKey, { format: 'der', prehash: true, lowS: false });
  } catch {
    valid = false;
  }
  if (!valid) {
    return fail('SIGNATURE', 'signature does not verify with the registered public key');
  }

  // Step 22: if either counter is non-zero the new one must be greater: a
  // counter that did not grow signals a cloned authenticator. Checked after the
  // signature so that only a signed counter is judged.
  if ((counter !== 0 || previous !== 0) && counter <= previous) {
    return fail('COUNTER', `signature counter ${counter} is not greater than the stored ${previous}`);
  }

  return { ok: true, counter, userVerified };
}

/**
 * Returns the offset just past one well-formed CBOR data item (RFC 8949)
 * starting at `pos`, or -1. Definite lengths only, as CTAP2 canonical CBOR
 * requires. With `mustBeMap`, the item must be a map (the extensions field).
 * Only well-formedness is checked: the content is not interpreted.
 */
function cborItemEnd(bytes: Uint8Array, pos: number, depth: number, mustBeMap = false): number {
  if (depth > CBOR_MAX_DEPTH || pos >= bytes.length) return -1;
  const initial = bytes[pos] as number;
  const major = initial >> 5;
  const info = initial & 0x1f;
  if (mustBeMap && major !== 5) return -1;
  let p = pos + 1;
  let arg: number;
  if (info < 24) {
    arg = info;
  } else if (info <= 27) {
    const n = 1 << (info - 24);
    if (p + n > bytes.length) return -1;
    arg = 0;
    for (let i = 0; i < n; i++) arg = arg * 256 + (bytes[p + i] as number);
    p += n;
  } else {
    return -1; // 28-30 reserved, 31 indefinite length
  }
  switch (major) {
    case 0:
    case 1:
    case 7:
      return p;
    case 2:
    case 3:
      return arg <= bytes.length - p ? p + arg : -1;
    case 4:
    case 5: {
      const items = major === 5 ? arg * 2 : arg;
      if (items > bytes.length - p) return -1; // every item takes at least one byte
      for (let i = 0; i < items; i++) {
        p = cborItemEnd(bytes, p, depth + 1);
        if (p < 0) return -1;
      }
      return p;
    }
    case 6:
      return cborItemEnd(bytes, p, depth + 1);
    default:
      return -1;
  }
}

// ---------------------------------------------------------------- software passkeys

export interface SoftwarePasskey {
  /** 32-byte P-256 secret key. */
  readonly secretKey: Uint8Array;
  /** 65-byte uncompressed SEC1 public key, as registered on a webauthn device (hex). */
  readonly publicKey: Uint8Array;
}

export interface SoftwarePasskeyAssertion {
  readonly authenticatorData: Uint8Array;
  readonly clientDataJSON: Uint8Array;
  readonly signature: Uint8Array;
}

/**
 * Creates a software passkey: a P-256 key pair held in memory.
 *
 * For tests and development only (`custos dev`, the test suite). A software
 * passkey has none of a real authenticator's protections: the key is not bound
 * to hardware and nothing checks that a person is present.
 */
export function generateSoftwarePasskey(): SoftwarePasskey {
  const secretKey = p256.utils.randomSecretKey();
  return { secretKey, publicKey: p256.getPublicKey(secretKey, false) };
}

/**
 * Builds a WebAuthn assertion the way a browser and an authenticator would:
 * clientDataJSON with members in the browser's order, authenticatorData with
 * UP (and UV unless `userVerified` is false) and the counter, and a DER ECDSA
 * signature (high S left as is, as authenticators do).
 *
 * For tests and development only: see {@link generateSoftwarePasskey}.
 *
 * @example
 * const pk = generateSoftwarePasskey();
 * const a = createSoftwarePasskeyAssertion({ secretKey: pk.secretKey, rpId: 'custos.example',
 *   origin: 'https://custos.example', challenge: fromHex(digest), counter: 1 });
 */
export function createSoftwarePasskeyAssertion(opts: {
  secretKey: Uint8Array;
  rpId: string;
  origin: string;
  challenge: Uint8Array;
  counter: number;
  userVerified?: boolean;
}): SoftwarePasskeyAssertion {
  if (!Number.isSafeInteger(opts.counter) || opts.counter < 0 || opts.counter > MAX_COUNTER) {
    throw new CustosError('INVALID_VALUE', 'counter must be an integer from 0 to 2^32-1');
  }
  if (!(opts.secretKey instanceof Uint8Array) || opts.secretKey.length !== 32) {
    throw new CustosError('INVALID_VALUE', 'a P-256 secret key is 32 bytes');
  }
  const flags = FLAG_UP | (opts.userVerified === false ? 0 : FLAG_UV);
  const authenticatorData = new Uint8Array(AUTH_DATA_MIN);
  authenticatorData.set(sha256(utf8(opts.rpId)), 0);
  authenticatorData[32] = flags;
  new DataView(authenticatorData.buffer).setUint32(33, opts.counter, false);
  // Members in the order browsers write them (WebAuthn L3 #clientdatajson-serialization).
  const clientDataJSON = utf8(
    JSON.stringify({
      type: 'webauthn.get',
      challenge: toBase64url(opts.challenge),
      origin: opts.origin,
      crossOrigin: false,
    }),
  );
  const signature = p256.sign(concatBytes(authenticatorData, sha256(clientDataJSON)), opts.secretKey, {
    format: 'der',
    prehash: true,
    lowS: false,
  });
  return { authenticatorData, clientDataJSON, signature };
}
