/**
 * Intents, approvals and transactions in the coordinator's store, on SQLite
 * and PostgreSQL alike: exact bodies, duplicate refusal (THREATS 14), stable
 * cursor pagination, compare-and-set status changes, idempotent approvals.
 */
import { canonicalize, intentDigest } from '@custos/core';
import { describe, expect, it } from 'vitest';
import { MAX_PAGE } from '../../src/db/repository.js';
import { useBackends } from './backends.js';
import { approve, codeOf, makeIntent, org, settle, T0 } from './fixtures.js';

const { backends } = useBackends();

describe.each(backends)('intents on $name', (backend) => {
  it('stores an intent with its exact canonical body and reads it back', async () => {
    const { store } = await backend.fresh({ now: () => T0 + 5 });
    const signed = makeIntent(1);
    const body = canonicalize(signed);
    const inserted = await store.intents.insert(signed, body);
    const read = await store.intents.get(intentDigest(signed.intent));
    expect(read).toEqual(inserted);
    expect(read?.id).toBe(intentDigest(signed.intent));
    expect(read?.body).toBe(body);
    expect(read?.signed).toEqual(signed);
    expect(read?.status).toBe('pending');
    expect(read?.statusCode).toBeNull();
    // BIGINT columns come back as numbers from both drivers.
    expect(read?.receivedAt).toBe(T0 + 5);
    expect(typeof read?.receivedSeq).toBe('number');
  });

  it('returns null for an unknown intent', async () => {
    const { store } = await backend.fresh();
    expect(await store.intents.get(intentDigest(makeIntent(9).intent))).toBeNull();
  });

  it('refuses a second insert of the same intent with DUPLICATE_INTENT', async () => {
    const { store } = await backend.fresh();
    const signed = makeIntent(2);
    await store.intents.insert(signed);
    expect(await codeOf(store.intents.insert(signed))).toBe('DUPLICATE_INTENT');
    // Also after it moved on: a signed, broadcast intent is never stored twice.
    await store.intents.updateStatus(intentDigest(signed.intent), { from: 'pending', to: 'broadcast' });
    expect(await codeOf(store.intents.insert(signed))).toBe('DUPLICATE_INTENT');
  });

  it('lets exactly one of several concurrent inserts of one intent win', async () => {
    const { peer } = await backend.fresh();
    const signed = makeIntent(3);
    const { values, errors } = await settle(
      Array.from({ length: 8 }, (_, i) => peer(i).intents.insert(signed)),
    );
    expect(values).toHaveLength(1);
    expect(errors).toHaveLength(7);
    for (const e of errors) expect((e as { code: string }).code).toBe('DUPLICATE_INTENT');
  });

  it('refuses a received body that is not the canonical text of the intent', async () => {
    const { store } = await backend.fresh();
    const signed = makeIntent(4);
    const spaced = JSON.stringify(signed, null, 1);
    expect(await codeOf(store.intents.insert(signed, spaced))).toBe('INVALID_VALUE');
    expect(await store.intents.get(intentDigest(signed.intent))).toBeNull();
  });

  it('pages through intents newest first with a stable cursor while new ones arrive', async () => {
    const { store } = await backend.fresh();
    const ids: string[] = [];
    for (let n = 0; n < 25; n++) ids.push((await store.intents.insert(makeIntent(n))).id);
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await store.intents.list({ limit: 10, ...(cursor !== undefined ? { cursor } : {}) });
      seen.push(...page.intents.map((i) => i.id));
      cursor = page.next ?? undefined;
      pages++;
      // An intent arriving mid-way lands before the first page, never inside a later one.
      if (pages === 1) await store.intents.insert(makeIntent(100));
    } while (cursor !== undefined);
    expect(pages).toBe(3);
    expect(seen).toEqual([...ids].reverse());
  });

  it('pages oldest first when asked, and the cursor keeps that order', async () => {
    const { store } = await backend.fresh();
    const ids: string[] = [];
    for (let n = 0; n < 7; n++) ids.push((await store.intents.insert(makeIntent(n))).id);
    const first = await store.intents.list({ limit: 3, order: 'asc' });
    expect(first.intents.map((i) => i.id)).toEqual(ids.slice(0, 3));
    const second = await store.intents.list({ limit: 3, cursor: first.next! });
    expect(second.intents.map((i) => i.id)).toEqual(ids.slice(3, 6));
    const third = await store.intents.list({ limit: 3, cursor: second.next! });
    expect(third.intents.map((i) => i.id)).toEqual(ids.slice(6));
    expect(third.next).toBeNull();
    expect(await codeOf(store.intents.list({ cursor: first.next!, order: 'desc' }))).toBe('INVALID_VALUE');
  });

  it('filters by status, requester and wallet across pages', async () => {
    const { store } = await backend.fresh();
    const byAlice: string[] = [];
    for (let n = 0; n < 12; n++) {
      const requester = n % 3 === 0 ? 'alice' : 'bob';
      const wallet = n % 2 === 0 ? 'btc-main' : 'btc-cold';
      const rec = await store.intents.insert(makeIntent(n, { requester, wallet }));
      if (requester === 'alice') byAlice.push(rec.id);
      if (n % 4 === 0) await store.intents.updateStatus(rec.id, { from: 'pending', to: 'approved' });
    }
    const collect = async (q: { status?: 'approved'; requester?: string; wallet?: string }) => {
      const out: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await store.intents.list({
          ...q,
          limit: 2,
          ...(cursor !== undefined ? { cursor } : {}),
        });
        out.push(...page.intents.map((i) => i.id));
        cursor = page.next ?? undefined;
      } while (cursor !== undefined);
      return out;
    };
    expect(await collect({ requester: 'alice' })).toEqual([...byAlice].reverse());
    expect(await collect({ status: 'approved' })).toHaveLength(3); // n = 0, 4, 8
    expect(await collect({ wallet: 'btc-cold' })).toHaveLength(6);
    expect(await collect({ requester: 'alice', wallet: 'btc-main', status: 'approved' })).toHaveLength(1); // n = 0
  });

  it('cuts a page at 200 intents', async () => {
    const { store } = await backend.fresh();
    for (let n = 0; n < MAX_PAGE + 3; n++) await store.intents.insert(makeIntent(n));
    const page = await store.intents.list({ limit: 10_000 });
    expect(page.intents).toHaveLength(MAX_PAGE);
    const rest = await store.intents.list({ limit: 10_000, cursor: page.next! });
    expect(rest.intents).toHaveLength(3);
    expect(rest.next).toBeNull();
  });

  it('refuses a malformed cursor with INVALID_VALUE', async () => {
    const { store } = await backend.fresh();
    for (const cursor of ['', 'not a cursor', Buffer.from('desc:-1').toString('base64url'), 'ZGVzYzox=']) {
      expect(await codeOf(store.intents.list({ cursor }))).toBe('INVALID_VALUE');
    }
  });

  it('changes status only from the expected one (compare-and-set)', async () => {
    const { store } = await backend.fresh();
    const { id } = await store.intents.insert(makeIntent(1));
    expect(await store.intents.updateStatus(id, { from: 'pending', to: 'approved' })).toBe(true);
    expect(await store.intents.updateStatus(id, { from: 'pending', to: 'refused', code: 'FROZEN' })).toBe(
      false,
    );
    expect(
      await store.intents.updateStatus(id, {
        from: ['approved', 'signing'],
        to: 'signing',
        psbt: 'cHNidP8BAA==',
      }),
    ).toBe(true);
    expect(
      await store.intents.updateStatus(id, { from: 'signing', to: 'broadcast', txid: 'ab'.repeat(32) }),
    ).toBe(true);
    const rec = await store.intents.get(id);
    expect(rec?.status).toBe('broadcast');
    expect(rec?.psbt).toBe('cHNidP8BAA==');
    expect(rec?.txid).toBe('ab'.repeat(32));
    expect(rec?.statusCode).toBeNull();
    expect(
      await store.intents.updateStatus(id, { from: 'broadcast', to: 'refused', code: 'CHAIN_REJECTED' }),
    ).toBe(true);
    expect((await store.intents.get(id))?.statusCode).toBe('CHAIN_REJECTED');
  });

  it('lets exactly one of concurrent status changes win', async () => {
    const { store, peer } = await backend.fresh();
    const { id } = await store.intents.insert(makeIntent(1));
    const wins = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        peer(i).intents.updateStatus(id, { from: 'pending', to: 'approved' }),
      ),
    );
    expect(wins.filter(Boolean)).toHaveLength(1);
  });

  it('says NOT_FOUND when changing the status of an unknown intent', async () => {
    const { store } = await backend.fresh();
    const id = intentDigest(makeIntent(1).intent);
    expect(await codeOf(store.intents.updateStatus(id, { from: 'pending', to: 'approved' }))).toBe(
      'NOT_FOUND',
    );
  });
});

describe.each(backends)('approvals on $name', (backend) => {
  it('stores an approval once and accepts the exact same one again', async () => {
    const { store } = await backend.fresh();
    const { id } = await store.intents.insert(makeIntent(1));
    const a = approve(id, org.approvers[0]!);
    expect(await store.approvals.insert(a)).toBe(true);
    expect(await store.approvals.insert(a)).toBe(false);
    const list = await store.approvals.of(id);
    expect(list).toHaveLength(1);
    expect(list[0]?.signed).toEqual(a);
    expect(list[0]?.body).toBe(canonicalize(a));
    expect(list[0]?.decision).toBe('approve');
  });

  it('refuses a different approval from the same device for the same intent with CONFLICT', async () => {
    const { store } = await backend.fresh();
    const { id } = await store.intents.insert(makeIntent(1));
    await store.approvals.insert(approve(id, org.approvers[0]!));
    expect(await codeOf(store.approvals.insert(approve(id, org.approvers[0]!, { decision: 'reject' })))).toBe(
      'CONFLICT',
    );
    expect(await codeOf(store.approvals.insert(approve(id, org.approvers[0]!, { at: T0 + 9999 })))).toBe(
      'CONFLICT',
    );
    expect((await store.approvals.of(id))[0]?.decision).toBe('approve');
  });

  it('lists the approvals of one intent only, in order received', async () => {
    const { store } = await backend.fresh();
    const one = (await store.intents.insert(makeIntent(1))).id;
    const two = (await store.intents.insert(makeIntent(2))).id;
    for (const p of org.approvers) await store.approvals.insert(approve(one, p));
    await store.approvals.insert(approve(two, org.approvers[0]!));
    const list = await store.approvals.of(one);
    expect(list.map((a) => a.approver)).toEqual(org.approvers.map((p) => p.id));
    expect(await store.approvals.of(intentDigest(makeIntent(3).intent))).toEqual([]);
  });

  it('says NOT_FOUND for an approval of an unknown intent', async () => {
    const { store } = await backend.fresh();
    const id = intentDigest(makeIntent(1).intent);
    expect(await codeOf(store.approvals.insert(approve(id, org.approvers[0]!)))).toBe('NOT_FOUND');
  });

  it('keeps one approval when the same one arrives concurrently', async () => {
    const { store, peer } = await backend.fresh();
    const { id } = await store.intents.insert(makeIntent(1));
    const a = approve(id, org.approvers[1]!);
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => peer(i).approvals.insert(a)));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await store.approvals.of(id)).toHaveLength(1);
  });
});

describe.each(backends)('transactions on $name', (backend) => {
  it('records one transaction per intent and tracks its confirmations', async () => {
    const { store } = await backend.fresh({ now: () => T0 });
    const { id } = await store.intents.insert(makeIntent(1));
    const txid = 'cd'.repeat(32);
    expect(await store.transactions.record({ intent: id, txid, rawHex: '0200', broadcastAt: T0 })).toBe(true);
    expect(await store.transactions.record({ intent: id, txid, rawHex: '0200', broadcastAt: T0 })).toBe(
      false,
    );
    expect(
      await codeOf(
        store.transactions.record({ intent: id, txid: 'ef'.repeat(32), rawHex: '0201', broadcastAt: T0 }),
      ),
    ).toBe('CONFLICT');
    expect(await store.transactions.below(1)).toHaveLength(1);
    await store.transactions.update(id, {
      confirmations: 3,
      blockHeight: 812_345,
      blockHash: '00'.repeat(32),
    });
    expect(await store.transactions.get(id)).toEqual({
      intent: id,
      txid,
      rawHex: '0200',
      broadcastAt: T0,
      confirmations: 3,
      blockHeight: 812_345,
      blockHash: '00'.repeat(32),
      updatedAt: T0,
    });
    expect(await store.transactions.below(3)).toHaveLength(0);
    expect(await store.transactions.below(6)).toHaveLength(1);
  });

  it('says NOT_FOUND for the transaction of an unknown intent', async () => {
    const { store } = await backend.fresh();
    const id = intentDigest(makeIntent(1).intent);
    expect(
      await codeOf(
        store.transactions.record({ intent: id, txid: 'ab'.repeat(32), rawHex: '00', broadcastAt: 1 }),
      ),
    ).toBe('NOT_FOUND');
    expect(
      await codeOf(store.transactions.update(id, { confirmations: 1, blockHeight: 1, blockHash: null })),
    ).toBe('NOT_FOUND');
    expect(await store.transactions.get(id)).toBeNull();
  });
});
