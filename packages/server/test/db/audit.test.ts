/**
 * The audit log in the coordinator's store, on SQLite and PostgreSQL: appends
 * from many concurrent callers (on PostgreSQL, from two coordinators' pools)
 * form one unbroken chain that core's verifier accepts, the log streams out in
 * pages, and signer checkpoints are stored once (THREATS 30).
 */
import { AUDIT_GENESIS_PREV, AuditChainVerifier, auditEntryDigest, verifyAuditChain } from '@custos/core';
import { describe, expect, it } from 'vitest';
import type { Store } from '../../src/db/repository.js';
import { useBackends } from './backends.js';
import { codeOf, digestOf, makeCheckpoint, SIGNER_KEYS, T0 } from './fixtures.js';

const { backends } = useBackends();

const event = (n: number) => ({
  at: T0 + n,
  actor: 'coordinator',
  event: 'intent.received',
  subject: `intent-${n}`,
  digest: digestOf(n),
});

async function allEntries(store: Store) {
  return store.audit.range(0, 10_000);
}

describe.each(backends)('audit log on $name', (backend) => {
  it('starts the chain at seq 0 from the genesis prev and links each entry to the one before', async () => {
    const { store } = await backend.fresh();
    const first = await store.audit.append(event(0));
    expect(first.entry.seq).toBe(0);
    expect(first.entry.prev).toBe(AUDIT_GENESIS_PREV);
    expect(first.hash).toBe(auditEntryDigest(first.entry));
    const second = await store.audit.append(event(1));
    expect(second.entry).toEqual({ ...event(1), seq: 1, prev: first.hash });
    expect(await store.audit.head()).toEqual({ seq: 1, hash: second.hash });
    expect(verifyAuditChain(await allEntries(store))).toEqual({
      ok: true,
      entries: 2,
      head: second.hash,
      checkpointsVerified: 0,
    });
  });

  it('keeps one unbroken chain under 20 concurrent appends', async () => {
    const { store, peer } = await backend.fresh();
    const appended = await Promise.all(Array.from({ length: 20 }, (_, i) => peer(i).audit.append(event(i))));
    expect(appended.map((a) => a.entry.seq).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 20 }, (_, i) => i),
    );
    const entries = await allEntries(store);
    expect(entries).toHaveLength(20);
    const result = verifyAuditChain(entries);
    expect(result.ok).toBe(true);
    expect(new Set(entries.map((e) => e.subject)).size).toBe(20);
  });

  it('appends entries given together (one commit on SQLite) as one chain; a bad one among them fails alone', async () => {
    const { store } = await backend.fresh();
    const calls = Array.from({ length: 10 }, (_, i) =>
      store.audit.append(i === 4 ? { ...event(i), event: 'Not An Event' } : event(i)),
    );
    const settled = await Promise.allSettled(calls);
    const bad = settled[4];
    expect(bad?.status === 'rejected' && (bad.reason as { code?: string }).code).toBe('INVALID_VALUE');
    const good = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    expect(good).toHaveLength(9);
    const entries = await allEntries(store);
    expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 9 }, (_, i) => i));
    expect(verifyAuditChain(entries).ok).toBe(true);
    // Each caller's record is the entry stored for its own event.
    for (const r of good) expect(entries[r.entry.seq]).toEqual(r.entry);
    expect(new Set(entries.map((e) => e.subject))).toEqual(
      new Set(Array.from({ length: 10 }, (_, i) => `intent-${i}`).filter((s) => s !== 'intent-4')),
    );
  });

  it('streams the log in pages into the verifier', async () => {
    const { store } = await backend.fresh();
    for (let i = 0; i < 23; i++) await store.audit.append(event(i));
    const verifier = new AuditChainVerifier();
    let from = 0;
    for (;;) {
      const page = await store.audit.range(from, 5);
      if (page.length === 0) break;
      for (const e of page) expect(verifier.push(e)).toBeNull();
      from += page.length;
    }
    expect(verifier.finish()).toMatchObject({ ok: true, entries: 23 });
    expect(await store.audit.range(23, 5)).toEqual([]);
  });

  it('refuses to append after an edited last entry with AUDIT_CHAIN_BROKEN', async () => {
    const { db, store } = await backend.fresh();
    await store.audit.append(event(0));
    await store.audit.append(event(1));
    await db.db.updateTable('audit_log').set({ subject: 'intent-forged' }).where('seq', '=', 1).execute();
    expect(await codeOf(store.audit.append(event(2)))).toBe('AUDIT_CHAIN_BROKEN');
    expect(await allEntries(store)).toHaveLength(2);
  });

  it('refuses an event that does not fit the audit entry schema, storing nothing', async () => {
    const { store } = await backend.fresh();
    expect(await codeOf(store.audit.append({ ...event(0), event: 'Not An Event' }))).toBe('INVALID_VALUE');
    expect(await store.audit.head()).toBeNull();
  });

  it('stores checkpoints once and they verify against the chain', async () => {
    const { store } = await backend.fresh();
    const heads = [];
    for (let i = 0; i < 4; i++) heads.push((await store.audit.append(event(i))).hash);
    const cp1 = makeCheckpoint(1, heads[1]!);
    const cp3 = makeCheckpoint(3, heads[3]!);
    expect(await store.audit.insertCheckpoint(cp3)).toBe(true);
    expect(await store.audit.insertCheckpoint(cp1)).toBe(true);
    expect(await store.audit.insertCheckpoint(cp1)).toBe(false);
    expect(await codeOf(store.audit.insertCheckpoint(makeCheckpoint(1, heads[2]!)))).toBe('CONFLICT');
    const stored = await store.audit.checkpoints();
    expect(stored).toEqual([cp1, cp3]);
    expect(await store.audit.checkpoints({ signer: 'someone-else' })).toEqual([]);
    const result = verifyAuditChain(await allEntries(store), {
      checkpoints: stored,
      signerKeys: SIGNER_KEYS,
    });
    expect(result).toMatchObject({ ok: true, entries: 4, checkpointsVerified: 2 });
  });
});
