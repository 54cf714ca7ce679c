/**
 * Governance as this browser verified it: every entry from the pinned
 * genesis on, through core's verifyGovernanceChain, exactly as `custos`
 * does (packages/cli/src/governance.ts). Entries are remembered in
 * localStorage with the time this browser first saw each one, so a
 * loosening change counts its delay from then, and a coordinator that
 * rolls the chain back or serves another entry for a seen seq is caught.
 */
import {
  type AppliedEntry,
  type Digest,
  type GovernanceState,
  governanceDigest,
  type SignedGovernanceEntry,
  signedGovernanceEntry,
  verifyGovernanceChain,
} from '@custos/core';
import type { Api } from './api.js';

export interface Verified {
  readonly state: GovernanceState;
  readonly entries: number;
}

interface Known {
  readonly seenAt: number;
  readonly digest: string;
  readonly signed: SignedGovernanceEntry;
}

const cacheKey = (genesis: string) => `custos.governance.${genesis}`;

function cached(genesis: string): Known[] {
  try {
    const v = JSON.parse(localStorage.getItem(cacheKey(genesis)) ?? '[]') as Known[];
    return Array.isArray(v) ? v.map((k) => ({ ...k, signed: signedGovernanceEntry.parse(k.signed) })) : [];
  } catch {
    return [];
  }
}

export class GovernanceError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Fetches what is new, verifies the whole chain from `genesis`; throws GovernanceError with the code. */
export async function verifiedGovernance(api: Api, genesis: string): Promise<Verified> {
  const known = cached(genesis);
  const head = (await api.get('/v1/governance/head')) as { seq: number | null; digest: string | null };
  if (head.seq === null || head.digest === null)
    throw new GovernanceError('NOT_FOUND', 'no organization yet');
  const last = known.at(-1);
  if (last !== undefined && head.seq < last.signed.entry.seq) {
    throw new GovernanceError('GOVERNANCE_CHAIN_BROKEN', 'the coordinator rolled the governance chain back');
  }
  let after = last === undefined ? -1 : last.signed.entry.seq;
  while (after < head.seq) {
    const page = (await api.get(
      `/v1/governance/entries?after=${after}&upto=${Math.min(head.seq, after + 1000)}`,
    )) as {
      entries: unknown[];
    };
    if (page.entries.length === 0) break;
    const seenAt = Date.now();
    for (const raw of page.entries) {
      const signed = signedGovernanceEntry.parse(raw);
      if (signed.entry.seq !== after + 1) {
        throw new GovernanceError(
          'GOVERNANCE_CHAIN_BROKEN',
          `expected entry ${after + 1}, got ${signed.entry.seq}`,
        );
      }
      known.push({ seenAt, digest: governanceDigest(signed.entry), signed });
      after = signed.entry.seq;
    }
  }
  const entries: AppliedEntry[] = known.map((k) => ({ signed: k.signed, seenAt: k.seenAt }));
  const verified = verifyGovernanceChain(genesis as Digest, entries);
  if (!verified.ok) throw new GovernanceError(verified.code, verified.message);
  if (verified.value.head !== head.digest) {
    throw new GovernanceError('GOVERNANCE_EQUIVOCATION', "the coordinator's head is not the entry it served");
  }
  localStorage.setItem(cacheKey(genesis), JSON.stringify(known));
  return { state: verified.value, entries: known.length };
}
