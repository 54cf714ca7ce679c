/**
 * A governance proposal as a change to the state this browser verified: the
 * part of the state in force it replaces (before) and what it would be
 * (after), as a line diff of their canonical JSON, and how long it would
 * wait. An admin co-signs what this shows, computed here from the entry and
 * the verified chain, never the coordinator's summary: a hostile console or
 * coordinator that describes an attacker's address as "Cold storage 2"
 * still shows its address as the added line.
 */
import {
  effectiveDelay,
  effectiveQuorum,
  GOVERNANCE_EFFECTS,
  type GovernanceEntry,
  type GovernanceState,
  policiesInForce,
} from '@custos/core';
import { keyFingerprint } from './passkey.js';

export interface DiffLine {
  readonly sign: '+' | '-' | ' ';
  readonly text: string;
}

export interface ProposalChange {
  readonly lines: readonly DiffLine[];
  /** From core's GOVERNANCE_EFFECTS: `widens` and `both` wait out the delay. */
  readonly effect: string;
  readonly how: string;
  /** How long after it is applied it binds (each signer counts from when it first sees it). */
  readonly delayMs: number;
  readonly quorum: number;
}

function json(v: unknown): string[] {
  return v === null || v === undefined ? [] : JSON.stringify(v, null, 2).split('\n');
}

/** A line diff by longest common subsequence (the objects here are small: at most a few hundred lines). */
export function lineDiff(before: readonly string[], after: readonly string[]): DiffLine[] {
  const n = before.length;
  const m = after.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i]![j] =
        before[i] === after[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && before[i] === after[j]) {
      out.push({ sign: ' ', text: before[i]! });
      i++;
      j++;
    } else if (j < m && (i === n || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) {
      out.push({ sign: '+', text: after[j]! });
      j++;
    } else {
      out.push({ sign: '-', text: before[i]! });
      i++;
    }
  }
  return out;
}

/** The part of `state` an entry replaces, and what it would be. */
function beforeAfter(state: GovernanceState, entry: GovernanceEntry, now: number): [unknown, unknown] {
  switch (entry.kind) {
    case 'address.add':
      return [state.addresses.get(entry.body.id)?.value ?? null, entry.body];
    case 'address.remove':
      return [state.addresses.get(entry.body.id)?.value ?? null, null];
    case 'policy.set':
      return [policiesInForce(state, now).at(-1) ?? null, entry.body];
    case 'quorum.set':
      return [{ quorum: effectiveQuorum(state, now), delayMs: effectiveDelay(state, now) }, entry.body];
    case 'device.add': {
      const d = entry.body.device;
      const shown = d.kind === 'webauthn' ? { ...d, fingerprint: keyFingerprint(d.publicKey) } : d;
      return [null, { member: entry.body.member, device: shown }];
    }
    case 'device.revoke': {
      const d = state.members.get(entry.body.member)?.devices.get(entry.body.device)?.device;
      return [d === undefined ? null : { member: entry.body.member, device: d }, null];
    }
    default:
      return [null, entry.body];
  }
}

export function proposalChange(state: GovernanceState, entry: GovernanceEntry, now: number): ProposalChange {
  const [before, after] = beforeAfter(state, entry, now);
  const row = entry.kind === 'genesis' ? undefined : GOVERNANCE_EFFECTS[entry.kind];
  const waits = row !== undefined && (row.effect === 'widens' || row.effect === 'both');
  return {
    lines: lineDiff(json(before), json(after)),
    effect: row?.effect ?? 'genesis',
    how: row?.how ?? '',
    delayMs: waits ? effectiveDelay(state, now) : 0,
    quorum: effectiveQuorum(state, now),
  };
}

/** 86400000 → "1 d", 8000 → "8 s": the delay as people read it. */
export function duration(ms: number): string {
  if (ms === 0) return 'none: binds at once';
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['min', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size} ${unit}`;
  }
  return `${ms} ms`;
}
