/**
 * The signer job protocol: what the coordinator hands a signer and what the
 * signer hands back. The coordinator is trusted for availability only, so a
 * job carries nothing the signer believes without checking: the signed
 * intent, the signed approvals, the governance head it claims, and the
 * transaction bytes. The signer's answer is a receipt signed by its identity
 * key, so the coordinator (and the audit log) cannot forge a signer's word.
 *
 * A job is for one chain family: a Bitcoin job carries a `psbt`, an EVM Safe
 * job a `safeTx` (issue 9), never both. The `safeTx` is the coordinator's
 * proposal only: the signer builds the one SafeTx the intent allows itself,
 * compares the proposal with it field by field (THREATS 28-29), and signs the
 * EIP-712 hash it computed, never one it was handed.
 */

import { signedBump } from './bump.js';
import { ERROR_CODES } from './errors.js';
import { evmAddress } from './evm.js';
import { digestOf } from './jcs.js';
import { signedApproval, signedGovernanceEntry, signedIntent } from './objects.js';
import { digest, hexBytes, id, millis } from './primitives.js';
import {
  array,
  type Infer,
  int,
  literal,
  nullable,
  object,
  oneOf,
  type Problem,
  refine,
  type Schema,
  string,
} from './schema.js';
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

const UINT256_MAX = (1n << 256n) - 1n;

/**
 * An EVM uint256 as a canonical decimal string (no sign, no leading zero):
 * JSON numbers lose precision above 2^53, and wei amounts and nonces do not fit.
 */
const uint256 = refine(
  string({
    min: 1,
    max: 78,
    pattern: /^(?:0|[1-9][0-9]*)$/,
    description: 'uint256 as a canonical decimal string',
  }),
  (v) => (BigInt(v) > UINT256_MAX ? 'exceeds 2^256 - 1' : undefined),
);

/** Calldata: 0x and lower-case hex, whole bytes, at most 10 KB (a token transfer is 68 bytes). */
const calldata = string({
  min: 2,
  max: 2 + 2 * 10_240,
  pattern: /^0x(?:[0-9a-f]{2})*$/,
  description: 'calldata, 0x and lower-case hex, at most 10 KB',
});

/**
 * A Safe 1.4.1 transaction as the coordinator PROPOSES it, with its EIP-712
 * domain (`safe`, `chainId`). The schema only checks the shape: every field,
 * including DELEGATECALL (`operation` 1) and the gas-refund fields, is
 * representable so that an attack arrives at the signer's decision and is
 * refused there with its own code (OPERATION_FORBIDDEN, CALLDATA_MISMATCH,
 * WRONG_CHAIN) and alert, not lost as a malformed job.
 */
export const jobSafeTx = object(
  {
    safe: evmAddress,
    chainId: uint256,
    to: evmAddress,
    value: uint256,
    data: calldata,
    operation: int({ min: 0, max: 1, description: '0 CALL, 1 DELEGATECALL (Safe Enum.Operation)' }),
    safeTxGas: uint256,
    baseGas: uint256,
    gasPrice: uint256,
    gasToken: evmAddress,
    refundReceiver: evmAddress,
    nonce: uint256,
  },
  {},
  'A Safe transaction proposed for signing, with its EIP-712 domain; the signer never trusts it, it compares it with the one it builds from the intent.',
);
export type JobSafeTx = Infer<typeof jobSafeTx>;

const signerJobFields = object(
  {
    v: literal(1),
    id,
    signer: id,
    intent: signedIntent,
    approvals: array(signedApproval, { max: 100 }),
    governance: governanceHead,
  },
  { psbt: base64Psbt, safeTx: jobSafeTx, bump: signedBump },
  'A request to one signer to check and sign one transaction for one intent: a Bitcoin PSBT (`psbt`) or an EVM Safe transaction (`safeTx`), exactly one of the two. With `bump` (issue 13), the PSBT is a replacement of the transaction the signer signed for the intent.',
);
/**
 * A signer job. `psbt` and `safeTx` are both optional in the type, but a
 * parsed job has exactly one of them (see {@link signerJob}).
 */
export type SignerJob = Infer<typeof signerJobFields>;

/** Exactly one of `psbt` and `safeTx`: a job that carries both is ambiguous about what would be signed. */
function oneTransaction(job: SignerJob): Problem | undefined {
  const hasPsbt = job.psbt !== undefined;
  const hasSafeTx = job.safeTx !== undefined;
  if (hasPsbt && hasSafeTx) {
    return {
      code: 'INVALID_VALUE',
      field: 'safeTx',
      message: 'a job carries exactly one of psbt (Bitcoin) and safeTx (EVM Safe), not both',
    };
  }
  if (!hasPsbt && !hasSafeTx) {
    return {
      code: 'MISSING_FIELD',
      field: 'psbt',
      message: 'a job carries a psbt (Bitcoin) or a safeTx (EVM Safe)',
    };
  }
  // A fee bump replaces a Bitcoin transaction (BIP 125); a Safe transaction has no such thing.
  if (job.bump !== undefined && !hasPsbt) {
    return {
      code: 'INVALID_VALUE',
      field: 'bump',
      message: 'a fee bump replaces a Bitcoin transaction: it goes with a psbt',
    };
  }
  return undefined;
}

const refinedJob = refine(signerJobFields, oneTransaction);

/** A signer job; parsing refuses one with neither or both of `psbt` and `safeTx`. */
export const signerJob: Schema<SignerJob> = {
  jsonSchema: {
    ...signerJobFields.jsonSchema,
    oneOf: [{ required: ['psbt'] }, { required: ['safeTx'] }],
  },
  parse: (value, path) => refinedJob.parse(value, path),
};

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
    /**
     * What was signed: for a Bitcoin job the txid; for an EVM Safe job the
     * safeTxHash the signer computed itself (EIP-712, no 0x). Null in a
     * refusal (the signer names no transaction it did not sign).
     */
    txid: nullable(
      hexBytes(
        32,
        'Bitcoin: the txid; EVM Safe: the safeTxHash the signer computed (EIP-712, 32 bytes, lower-case hex, no 0x)',
      ),
    ),
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
    /**
     * The signer's Safe owner signature over the receipt's `txid` (the
     * safeTxHash): r || s || v, v 27 or 28, as Safe.checkSignatures takes it.
     */
    safeSignature: string({
      min: 132,
      max: 132,
      pattern: /^0x[0-9a-f]{130}$/,
      description:
        'Safe owner signature over the safeTxHash: 0x and 65 bytes r || s || v (v 27 or 28), lower-case hex',
    }),
    message: string({ max: 512 }),
    alert: signerAlert,
  },
  "A receipt signed by the signer identity key, with the partially signed PSBT (Bitcoin) or the owner's safeSignature (EVM Safe) when it signed. For an EVM job the receipt's txid is the safeTxHash.",
);
export type SignerResult = Infer<typeof signerResult>;

// ---------------------------------------------------------------- offline signing (issue 13)

/**
 * Any JSON value, checked by whoever reads it: the job and the governance
 * entries of an offline job file reach the signer exactly as a job and a
 * page of entries reach it online, so a tampered byte is refused by the same
 * decoder with the same code, not by the file's envelope.
 */
const anyJson: Schema<unknown> = {
  jsonSchema: { description: 'any JSON value, decoded by the signer as it decodes the online feed' },
  parse: (value) => value,
};

export const OFFLINE_JOB_KIND = 'custos.offline-job';
export const OFFLINE_RESULT_KIND = 'custos.offline-result';

/**
 * What `custos intents export` writes for a signer that is offline (cold
 * storage): the signer job as the feed would hand it, and the governance
 * entries it may need to reach the job's head (the coordinator's entries
 * after `after`, up to the job's head). Unsigned: everything in it that the
 * signer acts on is a signed object it verifies from its pinned genesis.
 */
export const offlineJobFile = object(
  {
    v: literal(1),
    kind: literal(OFFLINE_JOB_KIND),
    job: anyJson,
    governance: array(anyJson, { max: 1000 }),
  },
  {},
  'A signer job carried to an offline signer on removable media, with the governance entries it may need.',
);
export type OfflineJobFile = Infer<typeof offlineJobFile>;

/** What `custos signer offline` writes: its signed result, carried back and posted by `custos intents import`. */
export const offlineResultFile = object(
  { v: literal(1), kind: literal(OFFLINE_RESULT_KIND), result: signerResult },
  {},
  "An offline signer's signed result for one job, carried back on removable media.",
);
export type OfflineResultFile = Infer<typeof offlineResultFile>;
