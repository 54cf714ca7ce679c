/**
 * The audit log read from the coordinator and verified in this browser
 * (THREATS 30), as `custos audit verify` does: page by page through core's
 * AuditChainVerifier, with the checkpoints the signers countersigned and the
 * signers' keys from the governance verified here. Every view that reads
 * the log (the audit view shows it, the alerts view picks its alerts out of
 * it) walks it here, so what a view lists is only what verified.
 */
import {
  AuditChainVerifier,
  type AuditEntry,
  type AuditVerifyResult,
  auditEntry,
  type Digest,
  signedCheckpoint,
} from '@custos/core';
import type { Signed } from './context.js';

/** Entries asked for per request. */
const PAGE = 1000;

export interface AuditPage {
  /** This page's entries that verified, in order (up to the first bad one). */
  readonly entries: readonly AuditEntry[];
  /** Entries verified so far. */
  readonly done: number;
  /** Entries in the log by the last head the coordinator reported; null while it reported none. */
  readonly total: number | null;
}

/**
 * Reads and verifies the whole log, calling `onPage` after each page, until
 * the end, the first bad entry, or `stopped()` (the view went away). Returns
 * the verifier's result: the first failure, or what finish() says.
 */
export async function verifyAuditLog(
  s: Signed,
  onPage: (page: AuditPage) => void,
  stopped: () => boolean,
): Promise<AuditVerifyResult> {
  const raw = (await s.api.get('/v1/audit/checkpoints')) as { checkpoints: unknown[] };
  const checkpoints = raw.checkpoints.map((c) => signedCheckpoint.parse(c));
  const signerKeys = new Map([...s.state.signers.values()].map((sg) => [sg.id, sg.publicKey as string]));
  const verifier = new AuditChainVerifier({ checkpoints, signerKeys, expectedOrg: s.genesis as Digest });
  let from = 0;
  let total: number | null = null;
  let failed: AuditVerifyResult | null = null;
  while (!stopped()) {
    const page = (await s.api.get(`/v1/audit?from=${from}&limit=${PAGE}`)) as {
      entries: unknown[];
      head: { seq: number } | null;
    };
    if (page.head !== null) total = page.head.seq + 1;
    const entries = page.entries.map((e) => auditEntry.parse(e));
    const verified: AuditEntry[] = [];
    for (const e of entries) {
      failed = verifier.push(e);
      if (failed !== null) break;
      verified.push(e);
    }
    onPage({ entries: verified, done: verifier.entries, total });
    if (failed !== null || entries.length === 0) break;
    from = entries.at(-1)!.seq + 1;
    if (total !== null && from >= total) break;
  }
  return failed ?? verifier.finish();
}
