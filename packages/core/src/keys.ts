/**
 * Device keys and the signatures they make.
 *
 * Ed25519 (RFC 8032): OpenSSL through node:crypto on Node for signing and
 * verification, @noble/curves elsewhere (the same bytes: signing is
 * deterministic, and both verify strictly); WebAuthn passkeys (ES256) in
 * webauthn.ts. A device signs the 32 raw bytes of a digest. Verification
 * returns a decision and never throws on bad data: an attacker's bytes are
 * data, not a program error.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { fromBase64url, fromHex, toHex } from './bytes.js';
import { accept, type Result, refuse } from './errors.js';
import type { Device, DeviceSignature } from './objects.js';
import type { Digest, Hex } from './types.js';
import { verifyWebAuthnAssertion } from './webauthn.js';

export interface Ed25519KeyPair {
  readonly secretKey: Uint8Array;
  readonly publicKey: Hex;
}

export function generateEd25519(): Ed25519KeyPair {
  const secretKey = ed25519.utils.randomSecretKey();
  return { secretKey, publicKey: toHex(ed25519.getPublicKey(secretKey)) as Hex };
}

export function ed25519PublicKey(secretKey: Uint8Array): Hex {
  return toHex(ed25519.getPublicKey(secretKey)) as Hex;
}

/** Signs the raw bytes of a digest with an Ed25519 secret key. */
export function signDigest(secretKey: Uint8Array, digest: Digest): DeviceSignature {
  return { kind: 'ed25519', sig: signBytes(secretKey, fromHex(digest)) };
}

/**
 * Ed25519 signature over arbitrary bytes (receipts, checkpoints, HTTP
 * messages). Through OpenSSL (node:crypto) on Node, about twenty times faster
 * than noble; Ed25519 signatures are deterministic (RFC 8032), so both give
 * the same bytes (keys.test.ts checks them against each other and the RFC
 * 8032 vectors). noble where node:crypto is absent.
 */
export function signBytes(secretKey: Uint8Array, message: Uint8Array): Hex {
  if (nodeCrypto !== undefined) {
    const key = nodePrivateKey(nodeCrypto, secretKey);
    if (key !== null) return nodeCrypto.sign(null, message, key).toString('hex') as Hex;
  }
  return signBytesNoble(secretKey, message);
}

/** The pure-JavaScript signing path (@noble/curves), used where node:crypto is absent and in cross-checks. */
export function signBytesNoble(secretKey: Uint8Array, message: Uint8Array): Hex {
  return toHex(ed25519.sign(message, secretKey)) as Hex;
}

/** The group order L of edwards25519 (RFC 8032 section 5.1). */
const ED25519_L = 2n ** 252n + 27742317777372353535851937790883648493n;
const HEX32 = /^[0-9a-f]{64}$/;
const HEX64 = /^[0-9a-f]{128}$/;

/** RFC 8032 section 5.1.7 step 1: S must be below L, so signatures are not malleable. */
function canonicalScalar(sig: Uint8Array): boolean {
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i] as number);
  return s < ED25519_L;
}

type NodeCrypto = typeof import('node:crypto');
type NodeKey = ReturnType<NodeCrypto['createPublicKey']>;
/**
 * OpenSSL's Ed25519 through node:crypto verifies about ten times faster than
 * the pure-JavaScript implementation on the same core, and every signer and
 * coordinator checks many signatures per withdrawal. It is looked up without
 * a static import so that core still bundles for a browser, where noble is used.
 */
const nodeCrypto = (
  globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }
).process?.getBuiltinModule?.('node:crypto') as NodeCrypto | undefined;
const SPKI_ED25519_PREFIX = new Uint8Array([
  0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
]);
const keyCache = new Map<string, NodeKey | null>();
const KEY_CACHE_MAX = 10_000;

function nodePublicKey(crypto: NodeCrypto, hex: string): NodeKey | null {
  let key = keyCache.get(hex);
  if (key !== undefined) return key;
  try {
    key = crypto.createPublicKey({
      key: Buffer.concat([SPKI_ED25519_PREFIX, Buffer.from(hex, 'hex')]),
      format: 'der',
      type: 'spki',
    });
  } catch {
    key = null;
  }
  if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
  keyCache.set(hex, key);
  return key;
}

const PKCS8_ED25519_PREFIX = new Uint8Array([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);
/**
 * OpenSSL key objects of the secret keys this process signs with, by the
 * array that holds the secret (a signer's identity key is one array for the
 * process's life). Each entry keeps a copy of the bytes it was made from: an
 * array changed in place since (a key wiped or replaced) gets a new key object.
 */
const privateKeys = new WeakMap<Uint8Array, { readonly bytes: Uint8Array; readonly key: NodeKey }>();

function nodePrivateKey(crypto: NodeCrypto, secret: Uint8Array): NodeKey | null {
  if (!(secret instanceof Uint8Array) || secret.length !== 32) return null;
  const known = privateKeys.get(secret);
  if (known !== undefined && crypto.timingSafeEqual(known.bytes, secret)) return known.key;
  let key: NodeKey;
  try {
    key = crypto.createPrivateKey({
      key: Buffer.concat([PKCS8_ED25519_PREFIX, secret]),
      format: 'der',
      type: 'pkcs8',
    });
  } catch {
    return null;
  }
  privateKeys.set(secret, { bytes: Uint8Array.from(secret), key });
  return key;
}

/** Which implementation {@link verifyEd25519} and {@link signBytes} use here: 'openssl' on Node, 'noble' elsewhere. */
export const ED25519_BACKEND: 'openssl' | 'noble' = nodeCrypto === undefined ? 'noble' : 'openssl';

/**
 * Verifies an Ed25519 signature (RFC 8032, strict: canonical S, no ZIP 215
 * leniency); false on any malformed input. Both backends give the same answer
 * on the RFC 8032 vectors and on malleated signatures (keys.test.ts).
 */
export function verifyEd25519(publicKey: string, message: Uint8Array, signature: string): boolean {
  if (!HEX32.test(publicKey) || !HEX64.test(signature)) return false;
  const sig = fromHex(signature);
  if (!canonicalScalar(sig)) return false;
  if (nodeCrypto !== undefined) {
    const key = nodePublicKey(nodeCrypto, publicKey);
    if (key === null) return false;
    try {
      return nodeCrypto.verify(null, message, key, sig);
    } catch {
      return false;
    }
  }
  return verifyEd25519Noble(publicKey, message, signature);
}

/** The pure-JavaScript path (@noble/curves), used where node:crypto is absent and in cross-checks. */
export function verifyEd25519Noble(publicKey: string, message: Uint8Array, signature: string): boolean {
  try {
    // zip215: false gives RFC 8032 / FIPS 186-5 strict verification (no malleable encodings).
    return ed25519.verify(fromHex(signature), message, fromHex(publicKey), { zip215: false });
  } catch {
    return false;
  }
}

export interface DeviceVerification {
  /** The passkey's signature counter after this assertion (WebAuthn only). */
  readonly counter?: number;
  /** The authenticator verified the user (WebAuthn UV flag; always true for Ed25519 devices). */
  readonly userVerified: boolean;
}

export interface DeviceVerifyOptions {
  /** Last signature counter seen for this passkey; a non-zero counter must grow. */
  readonly previousCounter?: number;
  /** Require the WebAuthn user-verified flag (default true). */
  readonly requireUserVerification?: boolean;
}

/**
 * Checks that `signature` is `device`'s signature over `digest`. Returns
 * BAD_SIGNATURE (with a reason in `details`) on any mismatch; the caller maps
 * it to the context's code (INTENT_SIGNATURE_INVALID, ...).
 */
export function verifyDeviceSignature(
  device: Device,
  digest: Digest,
  signature: DeviceSignature,
  opts: DeviceVerifyOptions = {},
): Result<DeviceVerification> {
  if (device.kind !== signature.kind) {
    return refuse('BAD_SIGNATURE', `a ${device.kind} device cannot make a ${signature.kind} signature`);
  }
  if (device.kind === 'ed25519' && signature.kind === 'ed25519') {
    let message: Uint8Array;
    try {
      message = fromHex(digest);
    } catch {
      return refuse('BAD_SIGNATURE', 'digest is not hex');
    }
    return verifyEd25519(device.publicKey, message, signature.sig)
      ? accept({ userVerified: true })
      : refuse('BAD_SIGNATURE', 'Ed25519 signature does not verify');
  }
  if (device.kind === 'webauthn' && signature.kind === 'webauthn') {
    let challenge: Uint8Array;
    let authenticatorData: Uint8Array;
    let clientDataJSON: Uint8Array;
    let sig: Uint8Array;
    try {
      challenge = fromHex(digest);
      authenticatorData = fromBase64url(signature.authenticatorData);
      clientDataJSON = fromBase64url(signature.clientDataJSON);
      sig = fromBase64url(signature.signature);
    } catch {
      return refuse('BAD_SIGNATURE', 'WebAuthn assertion fields are not valid base64url');
    }
    const result = verifyWebAuthnAssertion({
      publicKey: fromHexSafe(device.publicKey),
      rpId: device.rpId,
      origin: device.origin,
      challenge,
      authenticatorData,
      clientDataJSON,
      signature: sig,
      requireUserVerification: opts.requireUserVerification ?? true,
      ...(opts.previousCounter === undefined ? {} : { previousCounter: opts.previousCounter }),
    });
    if (!result.ok) return refuse('BAD_SIGNATURE', result.message, { reason: result.reason });
    return accept({ counter: result.counter, userVerified: result.userVerified });
  }
  return refuse('BAD_SIGNATURE', 'unsupported device kind');
}

function fromHexSafe(hex: string): Uint8Array {
  try {
    return fromHex(hex);
  } catch {
    return new Uint8Array(0);
  }
}
