/**
 * Read-only session keys for the approver console (issue 10; docs/api.md
 * "Authentication"). A passkey cannot sign HTTP requests, and asking for a
 * passkey touch on every read would make the console unusable; so the
 * browser makes an Ed25519 key with WebCrypto (non-extractable: script in
 * the page can use it, never read it), and one passkey assertion certifies
 * it for a few minutes. Requests are then signed with RFC 9421 as any device
 * signs them, under the key id `session:<member>/<device>`, with the
 * certificate in the `Custos-Session` header.
 *
 * A session key reads. It never authorizes a change: app.ts refuses it on
 * every route that is not a GET (NOT_AUTHORIZED), and the changes themselves
 * (an intent, an approval) are objects the passkey signed over their own
 * digest, which the coordinator and every signer verify (passkey-writes in
 * auth.ts). Stealing a session key therefore shows someone what the member
 * could read for at most SESSION_MAX_MS, and moves nothing.
 *
 * The certificate, what the passkey signs (its digest is core's
 * digestOf('console-session', 1, body), the assertion's challenge):
 *   {v: 1, org, member, device, key: <Ed25519 public key, hex>, issuedAt, expiresAt}
 */
import {
  type Digest,
  digestOf,
  fromBase64url,
  type GovernanceState,
  type Millis,
  parseJsonBytes,
  type Refusal,
  refuse,
  schema,
  verifyDeviceSignature,
  webauthnSignature,
} from '@custos/core';
import type { KeyResolver, ResolvedKey } from './auth.js';

/** The longest a session certificate may be valid: ten minutes. */
export const SESSION_MAX_MS = 10 * 60_000;
/** How far ahead of the server's clock `issuedAt` may be (a browser's clock is not ours). */
const ISSUED_SKEW_MS = 60_000;

export const SESSION_KEY = /^session:([^/]+)\/([^/]+)$/;

const sessionBody = schema.object({
  v: schema.literal(1),
  org: schema.string({ min: 64, max: 64, pattern: /^[0-9a-f]{64}$/ }),
  member: schema.string({ min: 1, max: 64, pattern: /^[a-z0-9][a-z0-9._-]*$/ }),
  device: schema.string({ min: 1, max: 64, pattern: /^[a-z0-9][a-z0-9._-]*$/ }),
  key: schema.string({ min: 64, max: 64, pattern: /^[0-9a-f]{64}$/ }),
  issuedAt: schema.int({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  expiresAt: schema.int({ min: 0, max: Number.MAX_SAFE_INTEGER }),
});
const sessionCertificate = schema.object({ session: sessionBody, signature: webauthnSignature });
export type SessionBody = schema.Infer<typeof sessionBody>;

/** The digest a passkey signs to certify a session key (the browser computes the same). */
export function sessionDigest(body: SessionBody): string {
  return digestOf('console-session', 1, body);
}

/**
 * A resolver that answers `session:<member>/<device>` key ids from the
 * certificate in `header` (base64url of its JSON), and every other key id as
 * `base` does. Each refusal has the code a bad request signature gets.
 */
export function withSessions(
  base: KeyResolver,
  state: GovernanceState,
  now: Millis,
  header: string | undefined,
): KeyResolver {
  return (keyId) => {
    const m = SESSION_KEY.exec(keyId);
    if (m === null) return base(keyId);
    return resolveSession(state, now, m[1] as string, m[2] as string, keyId, header);
  };
}

function resolveSession(
  state: GovernanceState,
  now: Millis,
  memberId: string,
  deviceId: string,
  keyId: string,
  header: string | undefined,
): ResolvedKey {
  if (header === undefined) {
    return refuse(
      'SIGNATURE_REQUIRED',
      'a session key id needs its certificate in the Custos-Session header',
    );
  }
  let cert: schema.Infer<typeof sessionCertificate>;
  try {
    cert = sessionCertificate.parse(parseJsonBytes(fromBase64url(header)));
  } catch {
    return refuse('BAD_SIGNATURE', 'the Custos-Session header is not a session certificate');
  }
  const s = cert.session;
  const bad = (message: string): Refusal => refuse('BAD_SIGNATURE', message);
  if (s.member !== memberId || s.device !== deviceId)
    return bad('the session certificate is for another device');
  if (s.org !== state.org) return bad('the session certificate is for another organization');
  if (s.expiresAt <= now) return bad('the session has expired: certify a new session key with the passkey');
  if (s.issuedAt > now + ISSUED_SKEW_MS) return bad('the session certificate is issued in the future');
  if (s.expiresAt - s.issuedAt > SESSION_MAX_MS) {
    return bad(`a session lasts at most ${SESSION_MAX_MS / 60_000} minutes`);
  }
  const member = state.members.get(memberId);
  if (member === undefined) return refuse('NOT_A_MEMBER', `${memberId} is not a member`);
  const d = member.devices.get(deviceId);
  if (d === undefined) return refuse('UNKNOWN_DEVICE', `${memberId} has no device ${deviceId}`);
  if (d.device.kind !== 'webauthn') return bad('only a passkey certifies a session key');
  const verified = verifyDeviceSignature(d.device, sessionDigest(s) as Digest, cert.signature);
  if (!verified.ok)
    return bad(`the session certificate's passkey assertion does not verify: ${verified.message}`);
  const principal = { kind: 'member', keyId, member: memberId, device: deviceId, readOnly: true } as const;
  if (d.revoked) {
    return {
      ok: true,
      principal,
      publicKey: s.key,
      afterVerify: refuse('DEVICE_REVOKED', `device ${deviceId} of ${memberId} is revoked`),
    };
  }
  if (d.activeFrom > now) {
    return {
      ok: true,
      principal,
      publicKey: s.key,
      afterVerify: refuse(
        'DEVICE_NOT_ACTIVE',
        `device ${deviceId} of ${memberId} is waiting out the governance delay`,
      ),
    };
  }
  return { ok: true, principal, publicKey: s.key };
}
