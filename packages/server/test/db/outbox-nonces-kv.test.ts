/**
 * The notification outbox, the RFC 9421 request-nonce store (THREATS 3) and
 * the small key-value state, on SQLite and PostgreSQL: a nonce is good once
 * even under concurrent use, and a due notification goes to one sender at a
 * time until it is delivered.
 */
import { describe, expect, it } from 'vitest';
import { useBackends } from './backends.js';
import { codeOf, T0 } from './fixtures.js';

const { backends } = useBackends();

describe.each(backends)('outbox on $name', (backend) => {
  it('hands out a due notification, leases it, and hands it out again after a failure', async () => {
    const { store } = await backend.fresh();
    const id = await store.outbox.enqueue({
      event: 'intent.received',
      payload: { intent: 'x', b: 1, a: [true, null] },
      target: 'https://hooks.example/custos',
      at: T0,
    });
    expect(await store.outbox.due(T0 - 1, 10)).toEqual([]);
    const due = await store.outbox.due(T0, 10, 30_000);
    expect(due).toEqual([
      {
        id,
        event: 'intent.received',
        payload: '{"a":[true,null],"b":1,"intent":"x"}',
        target: 'https://hooks.example/custos',
        attempts: 0,
        // Leased to this sender until then.
        nextAttemptAt: T0 + 30_000,
        deliveredAt: null,
        lastError: null,
        createdAt: T0,
      },
    ]);
    // Leased: another sender polling now does not get it.
    expect(await store.outbox.due(T0 + 1, 10)).toEqual([]);
    await store.outbox.markFailed(id, { attempts: 1, nextAttemptAt: T0 + 5_000, error: 'HTTP 503' });
    expect(await store.outbox.due(T0 + 4_999, 10)).toEqual([]);
    const retry = await store.outbox.due(T0 + 5_000, 10);
    expect(retry.map((r) => [r.id, r.attempts, r.lastError])).toEqual([[id, 1, 'HTTP 503']]);
    await store.outbox.markDelivered(id, T0 + 5_001);
    expect(await store.outbox.due(T0 + 1_000_000, 10)).toEqual([]);
    expect(await store.outbox.get(id)).toMatchObject({
      deliveredAt: T0 + 5_001,
      attempts: 2,
      lastError: null,
    });
  });

  it('gives each due notification to one of several concurrent senders', async () => {
    const { store, peer } = await backend.fresh();
    const ids: number[] = [];
    for (let i = 0; i < 30; i++)
      ids.push(await store.outbox.enqueue({ event: 'e', payload: i, target: 't', at: T0 }));
    const batches = await Promise.all([0, 1, 2, 3].map((i) => peer(i).outbox.due(T0, 10)));
    const got = batches.flat().map((r) => r.id);
    expect(got).toHaveLength(30);
    expect(new Set(got)).toEqual(new Set(ids));
  });

  it('says NOT_FOUND when marking an unknown or delivered notification', async () => {
    const { store } = await backend.fresh();
    expect(await codeOf(store.outbox.markDelivered(42, T0))).toBe('NOT_FOUND');
    const id = await store.outbox.enqueue({ event: 'e', payload: {}, target: 't', at: T0 });
    await store.outbox.markDelivered(id, T0);
    expect(await codeOf(store.outbox.markFailed(id, { attempts: 1, nextAttemptAt: T0, error: 'late' }))).toBe(
      'NOT_FOUND',
    );
  });
});

describe.each(backends)('request nonces on $name', (backend) => {
  it('uses a nonce once per key', async () => {
    const { store } = await backend.fresh();
    expect(await store.nonces.use('key-1', 'n-1', T0 + 300_000, T0)).toBe(true);
    expect(await store.nonces.use('key-1', 'n-1', T0 + 300_000, T0 + 1)).toBe(false);
    expect(await store.nonces.use('key-2', 'n-1', T0 + 300_000, T0 + 2)).toBe(true);
  });

  it('refuses a replayed nonce under concurrency: exactly one of 10 uses wins', async () => {
    const { peer } = await backend.fresh();
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => peer(i).nonces.use('key-1', 'replayed', T0 + 300_000, T0)),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
  });

  it('answers uses arriving together (one commit on SQLite) each as if alone: a replay in the same batch loses', async () => {
    const { store, db } = await backend.fresh();
    const uses = [
      ...Array.from({ length: 20 }, (_, i) => store.nonces.use('key-1', `n-${i}`, T0 + 300_000, T0)),
      ...Array.from({ length: 5 }, () => store.nonces.use('key-2', 'replayed', T0 + 300_000, T0)),
    ];
    const results = await Promise.all(uses);
    expect(results.slice(0, 20).every(Boolean)).toBe(true);
    expect(results.slice(20).filter(Boolean)).toHaveLength(1);
    const rows = await db.db.selectFrom('request_nonces').select('nonce').execute();
    expect(rows).toHaveLength(21);
    expect(await store.nonces.use('key-1', 'n-3', T0 + 300_000, T0 + 1)).toBe(false);
  });

  it('forgets expired nonces and deletes them', async () => {
    const { db, store } = await backend.fresh({ nonceSweepEveryMs: 1000 });
    expect(await store.nonces.use('key-1', 'old', T0 + 10, T0)).toBe(true);
    expect(await store.nonces.use('key-1', 'other', T0 + 10, T0)).toBe(true);
    // Expired: the request's own time window refuses it; the store no longer needs it.
    expect(await store.nonces.use('key-1', 'old', T0 + 5_000, T0 + 10)).toBe(true);
    expect(await store.nonces.use('key-1', 'old', T0 + 5_000, T0 + 1_000)).toBe(false);
    const left = await db.db.selectFrom('request_nonces').select('nonce').execute();
    expect(left.map((r) => r.nonce)).toEqual(['old']);
  });

  it('refuses an empty or oversized nonce with INVALID_VALUE', async () => {
    const { store } = await backend.fresh();
    expect(await codeOf(store.nonces.use('key-1', '', T0, T0))).toBe('INVALID_VALUE');
    expect(await codeOf(store.nonces.use('key-1', 'x'.repeat(257), T0, T0))).toBe('INVALID_VALUE');
  });
});

describe.each(backends)('key-value state on $name', (backend) => {
  it('stores, reads and overwrites small values', async () => {
    const { store } = await backend.fresh();
    expect(await store.kv.get('chain.bitcoin:regtest')).toBeNull();
    await store.kv.set('chain.bitcoin:regtest', '{"height":1}');
    await store.kv.set('chain.bitcoin:regtest', '{"height":2}');
    expect(await store.kv.get('chain.bitcoin:regtest')).toBe('{"height":2}');
  });
});
