/**
 * The coordinator's intent answers, read as data to check: the signed
 * intent and approvals go through core's strict schemas; everything else is
 * carried for display of status only. What the console shows about money is
 * what cli's reviewIntent derived from these signed objects and the PSBT.
 */

import type { IntentView } from '@custos/cli/client';
import { signedApproval, signedIntent } from '@custos/core';

type Rec = Record<string, unknown>;

export function readIntentView(value: unknown, withApprovals: boolean): IntentView {
  const r = value as Rec;
  const approvals =
    withApprovals && Array.isArray(r.approvals) ? r.approvals.map((a) => signedApproval.parse(a)) : [];
  return {
    id: String(r.id),
    status: String(r.status),
    statusCode: typeof r.statusCode === 'string' ? r.statusCode : null,
    statusMessage: typeof r.statusMessage === 'string' ? r.statusMessage.slice(0, 1000) : null,
    intent: signedIntent.parse(r.intent),
    approvals,
    psbt: typeof r.psbt === 'string' ? r.psbt : null,
    safeTx: safeTxOf(r.safeTx),
    txid: typeof r.txid === 'string' ? r.txid : null,
    confirmations: typeof r.confirmations === 'number' ? r.confirmations : null,
    signers: [],
    decision: null,
  } as unknown as IntentView;
}

/** A Safe's SafeTx block as the coordinator sent it: cli's reviewSafeTx checks its shape and every field. */
function safeTxOf(value: unknown): { proposal: unknown; executionTxHash: string | null } | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const r = value as Rec;
  return {
    proposal: r.proposal ?? null,
    executionTxHash: typeof r.executionTxHash === 'string' ? r.executionTxHash : null,
  };
}
