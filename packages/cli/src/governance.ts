/**
 * The governance state as this client verified it itself: every entry from
 * the pinned genesis on, each signed by a quorum of the state before it
 * (core verifyGovernanceChain). Nothing the coordinator says about members,
 * devices, wallets, the address book or the policy is used until it has been
 * through this (docs/architecture.md "Trust model"; THREATS 9).
 *
 * Entries are kept in the home (governance/<genesis>.json) with the time this
 * client first saw each one, as a signer does: loosening changes are shown as
 * pending from that moment, not from the proposer's `proposedAt`. Keeping them
 * also catches a coordinator that later serves a different entry for a
 * sequence number already seen (GOVERNANCE_EQUIVOCATION, THREATS 10) or
 * rolls the chain back.
 */
import { existsSync, readFileSync } from 'node:fs';
import {
  type AppliedEntry,
  CustosError,
  type Digest,
  decode,
  type GovernanceState,
  governanceDigest,
  primitives,
  type SignedGovernanceEntry,
  schema,
  signedGovernanceEntry,
  verifyGovernanceChain,
} from '@custos/core';
import type { CustosClient } from './client.js';
import { type Home, writeJson } from './home.js';

const { digest, millis } = primitives;
const { array, literal, object } = schema;

const cacheFile = object({
  v: literal(1),
  genesis: digest,
  entries: array(object({ seenAt: millis, digest, signed: signedGovernanceEntry }), { max: 10_000_000 }),
});

/** Page size of GET /v1/governance/entries (docs/api.md: at most 1000). */
const PAGE = 1000;

export interface VerifiedGovernance {
  readonly state: GovernanceState;
  readonly entries: readonly AppliedEntry[];
}

/**
 * Fetches the entries this client has not seen, verifies the whole chain
 * from `genesis`, remembers the new ones, and returns the state.
 * Refusals are thrown as CustosError with the verifier's code.
 */
export async function verifiedGovernance(
  client: CustosClient,
  home: Home,
  genesis: string,
  now: () => number = Date.now,
): Promise<VerifiedGovernance> {
  const pinned = digest.parse(genesis, 'genesis') as Digest;
  const path = home.governanceCachePath(pinned);
  const cached = existsSync(path)
    ? decode(cacheFile, readFileSync(path), { maxBytes: 1 << 30, maxDepth: 64 }).entries
    : [];
  const known: { seenAt: number; digest: string; signed: SignedGovernanceEntry }[] = [...cached];

  const head = await client.governanceHead();
  if (head === null) {
    throw new CustosError(
      'NOT_FOUND',
      'the coordinator has no organization yet (no genesis): run `custos init`',
    );
  }
  const last = known.at(-1);
  if (last !== undefined && head.seq < last.signed.entry.seq) {
    throw new CustosError(
      'GOVERNANCE_CHAIN_BROKEN',
      `the coordinator's governance head is seq ${head.seq}, but this client already verified seq ${last.signed.entry.seq}: the chain was rolled back`,
    );
  }
  if (last !== undefined && head.seq === last.signed.entry.seq && head.digest !== last.digest) {
    throw new CustosError(
      'GOVERNANCE_EQUIVOCATION',
      `the coordinator's entry ${head.seq} is ${head.digest}, but this client saw ${last.digest}`,
    );
  }
  let after = last === undefined ? -1 : last.signed.entry.seq;
  let added = 0;
  while (after < head.seq) {
    const page = await client.governanceEntries(after, Math.min(head.seq, after + PAGE));
    if (page.length === 0) break;
    const seenAt = now();
    for (const signed of page) {
      if (signed.entry.seq !== after + 1) {
        throw new CustosError(
          'GOVERNANCE_CHAIN_BROKEN',
          `asked for the entries after ${after}, the coordinator sent seq ${signed.entry.seq}`,
        );
      }
      known.push({ seenAt, digest: governanceDigest(signed.entry), signed });
      after = signed.entry.seq;
      added++;
    }
  }
  if (after < head.seq) {
    throw new CustosError(
      'GOVERNANCE_CHAIN_BROKEN',
      `the coordinator claims head ${head.seq} but serves entries only up to ${after}`,
    );
  }
  const entries: AppliedEntry[] = known.map((k) => ({ signed: k.signed, seenAt: k.seenAt }));
  const verified = verifyGovernanceChain(pinned, entries);
  if (!verified.ok) throw new CustosError(verified.code, verified.message, verified.details ?? {});
  if (verified.value.head !== head.digest) {
    throw new CustosError(
      'GOVERNANCE_EQUIVOCATION',
      `the coordinator's head digest ${head.digest} is not the entry it served for seq ${head.seq}`,
    );
  }
  // Only verified entries are remembered; a refused chain leaves the cache as it was.
  if (added > 0) writeJson(path, { v: 1, genesis: pinned, entries: known });
  return { state: verified.value, entries };
}
