/**
 * The changes a passkey sends itself (docs/api.md "Authentication"): an
 * intent, an approval or rejection, and a governance proposal. A request with `Custos-Auth:
 * signed-object` to one of these routes is authenticated by the passkey's
 * assertion over the object's digest (Authenticator.authenticateObject)
 * instead of an HTTP signature; every other route, and these without the
 * header, are authenticated as before. A governance proposal is sent by the
 * admin whose passkey made its first signature; another admin's passkey
 * co-signs an open proposal by its id (the entry's digest) the same way, and
 * a loosening change still waits its delay.
 */
import {
  approvalDigest,
  type Digest,
  type GovernanceSignature,
  governanceDigest,
  intentDigest,
  type SignedApproval,
  type SignedGovernanceEntry,
  type SignedIntent,
} from '@custos/core';
import type { ObjectClaim } from './auth.js';

export const SIGNED_OBJECT = 'signed-object';

/** A claim from the decoded body and the route's path parameters. */
type Claim = (body: unknown, params: Readonly<Record<string, string>>) => ObjectClaim;

/** A proposal's id is its entry's digest; anything else cannot match an assertion (BAD_SIGNATURE). */
const NO_DIGEST = '0'.repeat(64) as Digest;

const CLAIMS: Readonly<Record<string, Claim>> = {
  'POST /v1/intents': (body) => {
    const s = body as SignedIntent;
    return {
      member: s.intent.requester,
      device: s.intent.device,
      digest: intentDigest(s.intent),
      signature: s.signature,
    };
  },
  'POST /v1/governance/proposals': (body) => {
    const s = body as SignedGovernanceEntry;
    const first = s.signatures[0]!;
    return {
      member: first.member,
      device: first.device,
      digest: governanceDigest(s.entry),
      signature: first.signature,
    };
  },
  'POST /v1/governance/proposals/:id/signatures': (body, params) => {
    const first = (body as { signatures: readonly GovernanceSignature[] }).signatures[0]!;
    const id = params.id ?? '';
    return {
      member: first.member,
      device: first.device,
      digest: /^[0-9a-f]{64}$/.test(id) ? (id as Digest) : NO_DIGEST,
      signature: first.signature,
    };
  },
  'POST /v1/intents/:id/approvals': (body) => {
    const s = body as SignedApproval;
    return {
      member: s.approval.approver,
      device: s.approval.device,
      digest: approvalDigest(s.approval),
      signature: s.signature,
    };
  },
};

/** How to read the signer of a route's body, when the route takes passkey-signed objects. */
export function objectClaimOf(method: string, url: string): Claim | undefined {
  return CLAIMS[`${method} ${url}`];
}
