/**
 * The signer job protocol: what the coordinator hands a signer and what the
 * signer hands back. The coordinator is trusted for availability only, so a
 * job carries nothing the signer believes without checking: the signed
 * intent, the signed approvals, the governance head it claims, and the
 * transaction bytes. The signer's answer is a receipt signed by its identity
 * key, so the coordinator (and the audit log) cannot forge a signer's word.
 */

import { ERROR_CODES } from './errors.js';
import { digestOf } from './jcs.js';
import { signedApproval, signedGovernanceEntry, signedIntent } from './objects.js';
import { digest, hexBytes, id, millis } from './primitives.js';
import { array, type Infer, int, literal, nullable, object, oneOf, string } from './schema.js';
import type { Digest } from './types.js';

/** Standard base64 (RFC 4648 section 4), as Bitcoin Core spells PSBTs. At most 3 MB of PSBT. */
export const base64Psbt = string({
  min: 4,
  max: 4_000_000,
  pattern: /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/,
  description: 'PSBT (BIP 174), standard base64',
});

export const governanceHead = object({ seq: int({ min: 0, max: Number.MAX_SAFE_INTEGER }), digest });
export type GovernanceHead = Infer<typeof governanceHead>;

export const signerJob = object(
  {
    v: literal(1),
    id,
    signer: id,
    intent: signedIntent,
    approvals: array(signedApproval, { max: 100 }),
    governance: governanceHead,
    psbt: base64Psbt,
  },
  {},
  'A request to one signer to check and sign one transaction for one intent.',
);
export type SignerJob = Infer<typeof signerJob>;

/** The coordinator asks a signer to countersign its audit head (docs/api.md "Signer feed"). */
export const checkpointRequest = object({ seq: int({ min: 0, max: Number.MAX_SAFE_INTEGER }), head: digest });
export type CheckpointRequest = Infer<typeof checkpointRequest>;

/** Entries the signer asks for to bring its governance view up to the job's head. */
export const governanceEntries = array(signedGovernanceEntry, { max: 1000 });

export const errorCode = oneOf(ERROR_CODES);

export const receipt = object(
  {
    v: literal(1),
    signer: id,
    job: id,
    intent: nullable(digest),
    txid: nullable(hexBytes(32)),
    outcome: oneOf(['signed', 'refused'] as const),
    code: nullable(errorCode),
    governanceSeq: int({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    /** The digest of the signer's governance entry at `governanceSeq`: a fork shows in every receipt. */
    governanceHead: digest,
    at: millis,
  },
  {},
  "A signer's signed statement of what it decided for a job.",
);
export type Receipt = Infer<typeof receipt>;

export function receiptDigest(r: Receipt): Digest {
  return digestOf('receipt', 1, r);
}

/**
 * One governance entry named as evidence: with an equivocation, the signer's
 * own entry and the conflicting one (both quorum-signed; the signer keeps both).
 */
export const evidenceEntry = object({ seq: int({ min: 0, max: Number.MAX_SAFE_INTEGER }), digest });
export type EvidenceEntry = Infer<typeof evidenceEntry>;

export const signerAlert = object(
  { severity: oneOf(['warning', 'critical'] as const), code: errorCode },
  { evidence: array(evidenceEntry, { min: 1, max: 2 }) },
  'Something the signer caught; `evidence` names the entries of a governance equivocation.',
);
export type SignerAlert = Infer<typeof signerAlert>;

export const signerResult = object(
  {
    receipt,
    signature: hexBytes(64),
  },
  {
    psbt: base64Psbt,
    message: string({ max: 512 }),
    alert: signerAlert,
  },
  'A receipt signed by the signer identity key, with the partially signed PSBT when it signed.',
);
export type SignerResult = Infer<typeof signerResult>;
