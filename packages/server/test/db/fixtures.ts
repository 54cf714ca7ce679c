/**
 * Signed objects for the storage tests, built on core's fixture organization
 * (real Ed25519 keys and signatures; nothing mocked). The store does not
 * verify signatures, but storing real ones keeps the tests honest about what
 * the coordinator really holds.
 */
import {
  type Approval,
  approvalDigest,
  type Checkpoint,
  type Digest,
  fromHex,
  type GovernanceState,
  type Intent,
  intentDigest,
  type Millis,
  type Receipt,
  receiptDigest,
  type SignedApproval,
  type SignedCheckpoint,
  type SignedGovernanceEntry,
  type SignedIntent,
  type SignerJob,
  type SignerResult,
  signBytes,
  signCheckpoint,
  signDigest,
} from '@custos/core';
import {
  ASSET,
  COLD_STORAGE,
  createOrg,
  HOUR,
  type Org,
  type Person,
  propose,
  T0,
  WALLET_ID,
} from '@custos/test-support/org';

export { HOUR, T0 };

export const org: Org = createOrg();

/** A distinct, validly signed intent for each `n`. */
export function makeIntent(
  n: number,
  opts: { requester?: string; wallet?: string; createdAt?: Millis } = {},
): SignedIntent {
  const createdAt = opts.createdAt ?? T0;
  const intent = {
    v: 1,
    org: org.orgId,
    wallet: opts.wallet ?? WALLET_ID,
    chain: 'bitcoin:regtest',
    asset: ASSET,
    amount: String(10_000 + n),
    to: COLD_STORAGE,
    requester: opts.requester ?? org.requester.id,
    device: org.requester.device.id,
    nonce: n.toString(16).padStart(32, '0'),
    createdAt,
    expiresAt: createdAt + HOUR,
  } as Intent;
  return { intent, signature: signDigest(org.requester.device.secretKey, intentDigest(intent)) };
}

export function approve(
  intent: Digest,
  by: Person,
  opts: { decision?: 'approve' | 'reject'; at?: Millis } = {},
): SignedApproval {
  const at = opts.at ?? T0 + 1000;
  const approval: Approval = {
    v: 1,
    intent,
    approver: by.id,
    device: by.device.id,
    decision: opts.decision ?? 'approve',
    at,
    expiresAt: at + HOUR,
  };
  return { approval, signature: signDigest(by.device.secretKey, approvalDigest(approval)) };
}

/** A freeze entry after `state` (one admin suffices), distinct per `reason`. */
export function freezeAfter(state: GovernanceState, reason: string): SignedGovernanceEntry {
  return propose(state, 'freeze', { reason }, [org.admins[0] as Person]);
}

export const PSBT = 'cHNidP8BAA==';

export function makeJob(signed: SignedIntent, id: string, signer = org.signer.record.id): SignerJob {
  return {
    v: 1,
    id,
    signer,
    intent: signed,
    approvals: [],
    governance: { seq: 0, digest: org.orgId },
    psbt: PSBT,
  };
}

export function makeResult(
  job: SignerJob,
  opts: { outcome?: 'signed' | 'refused'; at?: Millis; signer?: string } = {},
): SignerResult {
  const outcome = opts.outcome ?? 'refused';
  const receipt: Receipt = {
    v: 1,
    signer: opts.signer ?? job.signer,
    job: job.id,
    intent: intentDigest(job.intent.intent),
    txid: null,
    outcome,
    code: outcome === 'refused' ? 'FROZEN' : null,
    governanceSeq: 0,
    governanceHead: org.orgId,
    at: opts.at ?? T0,
  };
  return { receipt, signature: signBytes(org.signer.secretKey, fromHex(receiptDigest(receipt))) };
}

export function makeCheckpoint(seq: number, head: Digest, at: Millis = T0): SignedCheckpoint {
  const c: Checkpoint = { v: 1, org: org.orgId, signer: org.signer.record.id, seq, head, at };
  return signCheckpoint(org.signer.secretKey, c);
}

export const SIGNER_KEYS: ReadonlyMap<string, string> = new Map([
  [org.signer.record.id, org.signer.record.publicKey],
]);

/** A digest-shaped value that is different for each `n`. */
export function digestOf(n: number): Digest {
  return n.toString(16).padStart(64, '0') as Digest;
}

/** Settles every promise; returns the values and the errors. */
export async function settle<T>(
  promises: readonly Promise<T>[],
): Promise<{ values: T[]; errors: unknown[] }> {
  const results = await Promise.allSettled(promises);
  const values: T[] = [];
  const errors: unknown[] = [];
  for (const r of results) {
    if (r.status === 'fulfilled') values.push(r.value);
    else errors.push(r.reason);
  }
  return { values, errors };
}

/** The CustosError code of a rejected promise (fails the test if it resolves or throws something else). */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    const code = (err as { code?: unknown; name?: unknown }).code;
    if ((err as { name?: unknown }).name === 'CustosError' && typeof code === 'string') return code;
    throw err;
  }
  throw new Error('expected a CustosError, but the operation succeeded');
}
