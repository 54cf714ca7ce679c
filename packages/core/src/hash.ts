/**
 * sha256 for every digest in Custos. On Node it is OpenSSL's (node:crypto),
 * about thirty times faster than the pure-JavaScript one for the small objects
 * Custos hashes, and every intent, approval, governance entry and audit entry
 * is hashed on the hot path. Elsewhere (a browser bundle) it is @noble/hashes.
 * Both are checked against each other and the FIPS 180-4 vectors in
 * hash.test.ts. The module is looked up without a static import so core still
 * bundles for a browser.
 */
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';

type NodeCrypto = typeof import('node:crypto');
const nodeCrypto = (
  globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }
).process?.getBuiltinModule?.('node:crypto') as NodeCrypto | undefined;

export const SHA256_BACKEND: 'openssl' | 'noble' = nodeCrypto === undefined ? 'noble' : 'openssl';

/** sha256 of `data` (FIPS 180-4). */
export function sha256(data: Uint8Array): Uint8Array {
  if (nodeCrypto !== undefined) {
    const out = nodeCrypto.createHash('sha256').update(data).digest();
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }
  return nobleSha256(data);
}

/** The pure-JavaScript sha256, for cross-checks. */
export const sha256Noble: (data: Uint8Array) => Uint8Array = nobleSha256;
