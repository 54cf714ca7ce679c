/**
 * Cold storage signed offline (issue 13), the coordinator's side: a signer
 * that never polls (an air-gapped machine) gets its job on removable media,
 * and its answer comes back the same way.
 *
 * - Export: the job queued for that signer, exactly as `/v1/signer/jobs`
 *   would hand it, with the governance entries after `after` up to the job's
 *   head (what the signer would fetch from `/v1/governance/entries`). Reading
 *   it changes nothing: the job stays queued until its result comes back.
 * - Import: the signer's result, posted by the member who carried it. The
 *   request is signed by that member's device (RFC 9421), the receipt by the
 *   signer's identity key; the receipt is checked exactly as an online
 *   signer's (pipeline/results.ts: the identity key governance lists for the
 *   receipt's signer, the job is that signer's), and the pipeline combines
 *   and broadcasts as usual. A refusal with an alert is audited as an `alert`.
 *
 * The coordinator stays trusted for availability only: a job file it writes
 * wrong is refused by the signer, and a result file it is handed is believed
 * only as far as the receipt's signature goes.
 */
import {
  ADMIN_ROLE,
  CustosError,
  type Digest,
  type GovernanceState,
  hasRole,
  OFFLINE_JOB_KIND,
  type OfflineJobFile,
  type OfflineResultFile,
} from '@custos/core';
import type { SigningPipeline } from './contracts.js';
import { type JobRecord, MAX_GOVERNANCE_PAGE, type Store } from './db/repository.js';

/** Members who may carry job files: admins, and members given this role by governance. */
export const OPERATOR_ROLE = 'operator';

/** Whether `member` may export jobs and import results: an admin or an operator now. */
export function mayCarryJobs(state: GovernanceState, member: string, now: number): boolean {
  return hasRole(state, member, ADMIN_ROLE, now) || hasRole(state, member, OPERATOR_ROLE, now);
}

/**
 * The job file of `signer` for intent `id`: its latest job, still waiting for
 * an answer, and the governance entries with after < seq <= the job's head
 * (after = -1: from the genesis, for a signer that has none yet).
 * NOT_FOUND: no such intent, or no job for that signer; CONFLICT: the intent
 * is not being signed, or the signer already answered.
 */
export async function exportJob(
  store: Store,
  id: Digest,
  signer: string,
  after: number,
): Promise<OfflineJobFile> {
  const rec = await store.intents.get(id);
  if (rec === null) throw new CustosError('NOT_FOUND', 'no such intent', { intent: id });
  // A broadcast withdrawal may have a fee bump's job waiting for this signer (issue 13): the latest.
  const bumped = rec.status === 'broadcast';
  const mine = (await store.jobs.of(id)).filter(
    (j) => j.signer === signer && (j.job.bump !== undefined) === bumped,
  );
  if (rec.status !== 'signing' && !(bumped && mine.length > 0)) {
    throw new CustosError('CONFLICT', `the intent is ${rec.status}, not signing: there is no job to carry`, {
      intent: id,
    });
  }
  const latest = bumped
    ? (mine.at(-1) ?? null)
    : mine.reduce<JobRecord | null>(
        (best, j) => (best === null || attemptOf(j.id) > attemptOf(best.id) ? j : best),
        null,
      );
  if (latest === null) {
    throw new CustosError('NOT_FOUND', `no job for signer ${signer} on this intent`, { intent: id, signer });
  }
  if (latest.status === 'done') {
    throw new CustosError('CONFLICT', `signer ${signer} already answered job ${latest.id}`, {
      intent: id,
      job: latest.id,
    });
  }
  const head = latest.job.governance.seq;
  if (after >= head) return { v: 1, kind: OFFLINE_JOB_KIND, job: latest.job, governance: [] };
  if (head - after > MAX_GOVERNANCE_PAGE) {
    throw new CustosError(
      'INVALID_VALUE',
      `the signer needs ${head - after} governance entries, more than ${MAX_GOVERNANCE_PAGE} in one file: export with a later --after (its seq: custos signer status)`,
    );
  }
  const entries = await store.governance.range(after, head, MAX_GOVERNANCE_PAGE);
  return { v: 1, kind: OFFLINE_JOB_KIND, job: latest.job, governance: entries.map((e) => e.signed) };
}

/** What an import answers: the job, its intent and where the intent stands now. */
export interface ImportAnswer {
  readonly job: string;
  readonly intent: Digest;
  readonly signer: string;
  readonly outcome: 'signed' | 'refused';
  readonly code: string | null;
  readonly status: string;
}

/**
 * Hands an offline signer's result to the pipeline as if that signer had
 * posted it: the receipt must verify with the identity key of the signer it
 * names (else BAD_SIGNATURE, with the pipeline's critical alert), for a job
 * of that signer (NOT_FOUND, NOT_AUTHORIZED); the same result again changes
 * nothing (CONFLICT for a different one).
 */
export async function importResult(
  store: Store,
  pipeline: SigningPipeline,
  file: OfflineResultFile,
): Promise<ImportAnswer> {
  const r = file.result.receipt;
  await pipeline.acceptResult(r.signer, file.result);
  const job = await store.jobs.get(r.job);
  if (job === null) throw new CustosError('INTERNAL', 'an accepted result has no job');
  const rec = await store.intents.get(job.intent);
  return {
    job: job.id,
    intent: job.intent,
    signer: r.signer,
    outcome: r.outcome,
    code: r.code,
    status: rec?.status ?? 'unknown',
  };
}

function attemptOf(id: string): number {
  const m = /-([1-9][0-9]{0,3})$/.exec(id);
  return m === null ? 1 : Number(m[1]);
}
