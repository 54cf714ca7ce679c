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
    expect(await store.governance.head()).toBeNull();
    expect(await codeOf(store.governance.append(freezeAfter(org.state, 'too early')))).toBe('CONFLICT');
    expect(await store.governance.append(org.genesis)).toBe(true);
    expect(await store.governance.head()).toEqual({ seq: 0, digest: org.orgId });
    const next = freezeAfter(org.state, 'lost laptop');
    expect(await store.governance.append(next)).toBe(true);
    expect(await store.governance.head()).toEqual({ seq: 1, digest: governanceDigest(next.entry) });
  });

  it('accepts the exact same entry again without storing it twice', async () => {
    const { store } = await backend.fresh();
    await store.governance.append(org.genesis);
    expect(await store.governance.append(org.genesis)).toBe(false);
    expect(await store.governance.range(-1, 100)).toHaveLength(1);
  });

  it('refuses a different entry for a seq already taken with CONFLICT', async () => {
    const { store } = await backend.fresh();
    await store.governance.append(org.genesis);
    await store.governance.append(freezeAfter(org.state, 'first'));
    expect(await codeOf(store.governance.append(freezeAfter(org.state, 'second')))).toBe('CONFLICT');
  });

  it('refuses an entry past head + 1 or not linked to the head with CONFLICT', async () => {
    const { store } = await backend.fresh();
    await store.governance.append(org.genesis);
    const gap = buildEntry({ ...org.state, seq: 1 }, 'freeze', { reason: 'gap' }, T0);
    expect(await codeOf(store.governance.append(signGovernanceEntry(gap, [admin(0)])))).toBe('CONFLICT');
    const unlinked = buildEntry({ ...org.state, head: ZERO_DIGEST }, 'freeze', { reason: 'fork' }, T0);
    expect(await codeOf(store.governance.append(signGovernanceEntry(unlinked, [admin(0)])))).toBe('CONFLICT');
    expect(await store.governance.head()).toEqual({ seq: 0, digest: org.orgId });
  });

  it('lets exactly one of 10 concurrent appends for the same seq win', async () => {
    const { store, peer } = await backend.fresh();
    await store.governance.append(org.genesis);
    const candidates = Array.from({ length: 10 }, (_, i) => freezeAfter(org.state, `racer ${i}`));
    const { values, errors } = await settle(candidates.map((c, i) => peer(i).governance.append(c)));
    expect(values).toEqual([true]);
    expect(errors).toHaveLength(9);
    for (const e of errors) expect((e as { code: string }).code).toBe('CONFLICT');
    const head = await store.governance.head();
    expect(candidates.map((c) => governanceDigest(c.entry))).toContain(head?.digest);
    expect(await store.governance.range(-1, 10)).toHaveLength(2);
  });

  it('stores one copy when the same entry is appended concurrently', async () => {
    const { store, peer } = await backend.fresh();
    await store.governance.append(org.genesis);
    const entry = freezeAfter(org.state, 'everyone saw this');
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => peer(i).governance.append(entry)));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await store.governance.range(0, 10)).toHaveLength(1);
  });

  it('returns a range of entries in order with their exact bodies', async () => {
    const { store } = await backend.fresh({ now: () => T0 + 7 });
    await store.governance.append(org.genesis);
    const one = freezeAfter(org.state, 'one');
    await store.governance.append(one);
    const all = await store.governance.range(-1, 10);
    expect(all.map((g) => g.seq)).toEqual([0, 1]);
    expect(all[0]?.signed).toEqual(org.genesis);
    expect(all[0]?.body).toBe(canonicalize(org.genesis));
    expect(all[1]?.kind).toBe('freeze');
    expect(all[1]?.receivedAt).toBe(T0 + 7);
    expect((await store.governance.range(0, 1)).map((g) => g.seq)).toEqual([1]);
    expect(await store.governance.range(1, 1)).toEqual([]);
    expect(await codeOf(store.governance.range(-2, 1))).toBe('INVALID_VALUE');
  });
});

describe.each(backends)('governance proposals on $name', (backend) => {
  const entry = freezeAfter(org.state, 'proposed').entry;
  const id = governanceDigest(entry);

  it('creates a proposal once, keyed by the entry digest', async () => {
    const { store } = await backend.fresh({ now: () => T0 });
    const first = freezeAfter(org.state, 'proposed').signatures;
    expect(await store.proposals.create(entry, first)).toBe(true);
    expect(await store.proposals.create(entry, [])).toBe(false);
    expect(await store.proposals.get(id)).toEqual({
      id,
      seq: 1,
      kind: 'freeze',
      entry,
      signatures: first,
      status: 'open',
      createdAt: T0,
      updatedAt: T0,
    });
    expect(await store.proposals.get(org.orgId)).toBeNull();
  });

  it('adds signatures, keeping the first of each member device', async () => {
    const { store } = await backend.fresh();
    await store.proposals.create(entry);
    const first = signEntry(entry, admin(0));
    const second = signEntry(entry, admin(1));
    const after = await store.proposals.addSignatures(id, [first, second]);
    expect(after.signatures).toEqual([first, second]);
    const forged = { ...first, signature: { kind: 'ed25519' as const, sig: 'aa'.repeat(64) as Hex } };
    const again = await store.proposals.addSignatures(id, [forged]);
    expect(again.signatures).toEqual([first, second]);
    expect((await store.proposals.get(id))?.signatures).toEqual([first, second]);
  });

  it('moves a proposal from open to applied once, and then refuses more signatures', async () => {
    const { store } = await backend.fresh();
    await store.proposals.create(entry);
    expect(await store.proposals.setStatus(id, 'open', 'applied')).toBe(true);
    expect(await store.proposals.setStatus(id, 'open', 'superseded')).toBe(false);
    expect((await store.proposals.get(id))?.status).toBe('applied');
    expect(
      await codeOf(store.proposals.addSignatures(id, freezeAfter(org.state, 'proposed').signatures)),
    ).toBe('CONFLICT');
  });

  it('lists proposals by status and deletes them', async () => {
    const { store } = await backend.fresh();
    const other = freezeAfter(org.state, 'other').entry;
    await store.proposals.create(entry);
    await store.proposals.create(other);
    await store.proposals.setStatus(governanceDigest(other), 'open', 'superseded');
    expect((await store.proposals.list()).map((p) => p.id).sort()).toEqual(
      [id, governanceDigest(other)].sort(),
    );
    expect((await store.proposals.list({ status: 'open' })).map((p) => p.id)).toEqual([id]);
    expect(await store.proposals.delete(id)).toBe(true);
    expect(await store.proposals.delete(id)).toBe(false);
    expect(await store.proposals.list({ status: 'open' })).toEqual([]);
  });

  it('says NOT_FOUND for an unknown proposal', async () => {
    const { store } = await backend.fresh();
    expect(await codeOf(store.proposals.addSignatures(id, []))).toBe('NOT_FOUND');
    expect(await codeOf(store.proposals.setStatus(id, 'open', 'applied'))).toBe('NOT_FOUND');
  });
});
