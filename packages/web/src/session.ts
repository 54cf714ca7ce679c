/**
 * A read-only session (docs/api.md "Authentication", passkeys in the
 * console): an Ed25519 key made here with WebCrypto, non-extractable, whose
 * public half one passkey assertion certifies for a few minutes. The
 * certificate's digest is core's digestOf('console-session', 1, body), the
 * one the coordinator recomputes.
 */
import { digestOf, toBase64url, toHex, utf8 } from '@custos/core';
import type { SessionKey } from './api.js';
import { assertDigest } from './passkey.js';
import type { LocalDevice } from './store.js';

/** Five minutes: long enough to review and approve, short enough that a stolen key reads little. */
export const SESSION_MS = 5 * 60_000;

export async function startSession(d: LocalDevice, org: string): Promise<SessionKey> {
  const pair = (await crypto.subtle.generateKey({ name: 'Ed25519' }, false, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
  const key = toHex(new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey)));
  const issuedAt = Date.now();
  const session = {
    v: 1,
    org,
    member: d.member,
    device: d.device,
    key,
    issuedAt,
    expiresAt: issuedAt + SESSION_MS,
  };
  const signature = await assertDigest(d.passkey.credentialId, digestOf('console-session', 1, session));
  return {
    keyId: `session:${d.member}/${d.device}`,
    privateKey: pair.privateKey,
    certificate: toBase64url(utf8(JSON.stringify({ session, signature }))),
    expiresAt: session.expiresAt,
  };
}
