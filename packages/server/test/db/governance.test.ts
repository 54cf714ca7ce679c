/**
 * Governance entries and proposals in the coordinator's store, on SQLite and
 * PostgreSQL: one entry per seq, appended only at head + 1, and of
 * coordinators racing to append, exactly one wins (the others get CONFLICT).
 * The store keeps the chain straight; signers still verify every entry
 * themselves (THREATS 9, 10).
 */
import {
  buildEntry,
  canonicalize,
  governanceDigest,
  type Hex,
  signEntry,
  signGovernanceEntry,
  ZERO_DIGEST,
} from '@custos/core';
import { describe, expect, it } from 'vitest';
import { useBackends } from './backends.js';
import { codeOf, freezeAfter, org, settle, T0 } from './fixtures.js';

const { backends } = useBackends();

const admin = (i: number) => org.admins[i]!.device.signer;

describe.each(backends)('governance on $name', (backend) => {
  it('starts with the genesis at seq 0 and reports the head', async () => {
    const { store } = await backend.fresh({ now: () => T0 });
    expect(await store.governanceHead()).toBeNull();
    expect(await codeOf(store.appendGovernance(freezeAfter(org.state, 'too early')))).toBe('CONFLICT');
    expect(await store.appendGovernance(org.genesis)).toBe(true);
    expect(await store.governanceHead()).toEqual({ seq: 0, digest: org.orgId });
    const next = freezeAfter(org.state, 'lost laptop');
    expect(await store.appendGovernance(next)).toBe(true);
    expect(await store.governanceHead()).toEqual({ seq: 1, digest: governanceDigest(next.entry) });
  });

  it('accepts the exact same entry again without storing it twice', async () => {
    const { store } = await backend.fresh();
    await store.appendGovernance(org.genesis);
    expect(await store.appendGovernance(org.genesis)).toBe(false);
    expect(await store.governanceRange(-1, 100)).toHaveLength(1);
  });

  it('refuses a different entry for a seq already taken with CONFLICT', async () => {
    const { store } = await backend.fresh();
    await store.appendGovernance(org.genesis);
    await store.appendGovernance(freezeAfter(org.state, 'first'));
    expect(await codeOf(store.appendGovernance(freezeAfter(org.state, 'second')))).toBe('CONFLICT');
  });

  it('refuses an entry past head + 1 or not linked to the head with CONFLICT', async () => {
    const { store } = await backend.fresh();
    await store.appendGovernance(org.genesis);
    const gap = buildEntry({ ...org.state, seq: 1 }, 'freeze', { reason: 'gap' }, T0);
    expect(await codeOf(store.appendGovernance(signGovernanceEntry(gap, [admin(0)])))).toBe('CONFLICT');
    const unlinked = buildEntry({ ...org.state, head: ZERO_DIGEST }, 'freeze', { reason: 'fork' }, T0);
    expect(await codeOf(store.appendGovernance(signGovernanceEntry(unlinked, [admin(0)])))).toBe('CONFLICT');
    expect(await store.governanceHead()).toEqual({ seq: 0, digest: org.orgId });
  });

  it('lets exactly one of 10 concurrent appends for the same seq win', async () => {
    const { store, peer } = await backend.fresh();
    await store.appendGovernance(org.genesis);
    const candidates = Array.from({ length: 10 }, (_, i) => freezeAfter(org.state, `racer ${i}`));
    const { values, errors } = await settle(candidates.map((c, i) => peer(i).appendGovernance(c)));
    expect(values).toEqual([true]);
    expect(errors).toHaveLength(9);
    for (const e of errors) expect((e as { code: string }).code).toBe('CONFLICT');
    const head = await store.governanceHead();
    expect(candidates.map((c) => governanceDigest(c.entry))).toContain(head?.digest);
    expect(await store.governanceRange(-1, 10)).toHaveLength(2);
  });

  it('stores one copy when the same entry is appended concurrently', async () => {
    const { store, peer } = await backend.fresh();
    await store.appendGovernance(org.genesis);
    const entry = freezeAfter(org.state, 'everyone saw this');
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => peer(i).appendGovernance(entry)));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await store.governanceRange(0, 10)).toHaveLength(1);
  });

  it('returns a range of entries in order with their exact bodies', async () => {
    const { store } = await backend.fresh({ now: () => T0 + 7 });
    await store.appendGovernance(org.genesis);
    const one = freezeAfter(org.state, 'one');
    await store.appendGovernance(one);
    const all = await store.governanceRange(-1, 10);
    expect(all.map((g) => g.seq)).toEqual([0, 1]);
    expect(all[0]?.signed).toEqual(org.genesis);
    expect(all[0]?.body).toBe(canonicalize(org.genesis));
    expect(all[1]?.kind).toBe('freeze');
    expect(all[1]?.receivedAt).toBe(T0 + 7);
    expect((await store.governanceRange(0, 1)).map((g) => g.seq)).toEqual([1]);
    expect(await store.governanceRange(1, 1)).toEqual([]);
    expect(await codeOf(store.governanceRange(-2, 1))).toBe('INVALID_VALUE');
  });
});

describe.each(backends)('governance proposals on $name', (backend) => {
  const entry = freezeAfter(org.state, 'proposed').entry;
  const id = governanceDigest(entry);

  it('creates a proposal once, keyed by the entry digest', async () => {
    const { store } = await backend.fresh({ now: () => T0 });
    const first = freezeAfter(org.state, 'proposed').signatures;
    expect(await store.createProposal(entry, first)).toBe(true);
    expect(await store.createProposal(entry, [])).toBe(false);
    expect(await store.getProposal(id)).toEqual({
      id,
      seq: 1,
      kind: 'freeze',
      entry,
      signatures: first,
      status: 'open',
      createdAt: T0,
      updatedAt: T0,
    });
    expect(await store.getProposal(org.orgId)).toBeNull();
  });

  it('adds signatures, keeping the first of each member device', async () => {
    const { store } = await backend.fresh();
    await store.createProposal(entry);
    const first = signEntry(entry, admin(0));
    const second = signEntry(entry, admin(1));
    const after = await store.addProposalSignatures(id, [first, second]);
    expect(after.signatures).toEqual([first, second]);
    const forged = { ...first, signature: { kind: 'ed25519' as const, sig: 'aa'.repeat(64) as Hex } };
    const again = await store.addProposalSignatures(id, [forged]);
    expect(again.signatures).toEqual([first, second]);
    expect((await store.getProposal(id))?.signatures).toEqual([first, second]);
  });

  it('moves a proposal from open to applied once, and then refuses more signatures', async () => {
    const { store } = await backend.fresh();
    await store.createProposal(entry);
    expect(await store.setProposalStatus(id, 'open', 'applied')).toBe(true);
    expect(await store.setProposalStatus(id, 'open', 'superseded')).toBe(false);
    expect((await store.getProposal(id))?.status).toBe('applied');
    expect(await codeOf(store.addProposalSignatures(id, freezeAfter(org.state, 'proposed').signatures))).toBe(
      'CONFLICT',
    );
  });

  it('lists proposals by status and deletes them', async () => {
    const { store } = await backend.fresh();
    const other = freezeAfter(org.state, 'other').entry;
    await store.createProposal(entry);
    await store.createProposal(other);
    await store.setProposalStatus(governanceDigest(other), 'open', 'superseded');
    expect((await store.listProposals()).map((p) => p.id).sort()).toEqual(
      [id, governanceDigest(other)].sort(),
    );
    expect((await store.listProposals({ status: 'open' })).map((p) => p.id)).toEqual([id]);
    expect(await store.deleteProposal(id)).toBe(true);
    expect(await store.deleteProposal(id)).toBe(false);
    expect(await store.listProposals({ status: 'open' })).toEqual([]);
  });

  it('says NOT_FOUND for an unknown proposal', async () => {
    const { store } = await backend.fresh();
    expect(await codeOf(store.addProposalSignatures(id, []))).toBe('NOT_FOUND');
    expect(await codeOf(store.setProposalStatus(id, 'open', 'applied'))).toBe('NOT_FOUND');
  });
});
