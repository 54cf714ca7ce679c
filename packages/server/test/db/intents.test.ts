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
    const inserted = await store.insertIntent(signed, body);
    const read = await store.getIntent(intentDigest(signed.intent));
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
    expect(await store.getIntent(intentDigest(makeIntent(9).intent))).toBeNull();
  });

  it('refuses a second insert of the same intent with DUPLICATE_INTENT', async () => {
    const { store } = await backend.fresh();
    const signed = makeIntent(2);
    await store.insertIntent(signed);
    expect(await codeOf(store.insertIntent(signed))).toBe('DUPLICATE_INTENT');
    // Also after it moved on: a signed, broadcast intent is never stored twice.
    await store.updateIntentStatus(intentDigest(signed.intent), { from: 'pending', to: 'broadcast' });
    expect(await codeOf(store.insertIntent(signed))).toBe('DUPLICATE_INTENT');
  });

  it('lets exactly one of several concurrent inserts of one intent win', async () => {
    const { peer } = await backend.fresh();
    const signed = makeIntent(3);
    const { values, errors } = await settle(
      Array.from({ length: 8 }, (_, i) => peer(i).insertIntent(signed)),
    );
    expect(values).toHaveLength(1);
    expect(errors).toHaveLength(7);
    for (const e of errors) expect((e as { code: string }).code).toBe('DUPLICATE_INTENT');
  });

  it('refuses a received body that is not the canonical text of the intent', async () => {
    const { store } = await backend.fresh();
    const signed = makeIntent(4);
    const spaced = JSON.stringify(signed, null, 1);
    expect(await codeOf(store.insertIntent(signed, spaced))).toBe('INVALID_VALUE');
    expect(await store.getIntent(intentDigest(signed.intent))).toBeNull();
  });

  it('pages through intents newest first with a stable cursor while new ones arrive', async () => {
    const { store } = await backend.fresh();
    const ids: string[] = [];
    for (let n = 0; n < 25; n++) ids.push((await store.insertIntent(makeIntent(n))).id);
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await store.listIntents({ limit: 10, ...(cursor !== undefined ? { cursor } : {}) });
      seen.push(...page.intents.map((i) => i.id));
      cursor = page.next ?? undefined;
      pages++;
      // An intent arriving mid-way lands before the first page, never inside a later one.
      if (pages === 1) await store.insertIntent(makeIntent(100));
    } while (cursor !== undefined);
    expect(pages).toBe(3);
    expect(seen).toEqual([...ids].reverse());
  });

  it('pages oldest first when asked, and the cursor keeps that order', async () => {
    const { store } = await backend.fresh();
    const ids: string[] = [];
    for (let n = 0; n < 7; n++) ids.push((await store.insertIntent(makeIntent(n))).id);
    const first = await store.listIntents({ limit: 3, order: 'asc' });
    expect(first.intents.map((i) => i.id)).toEqual(ids.slice(0, 3));
    const second = await store.listIntents({ limit: 3, cursor: first.next! });
    expect(second.intents.map((i) => i.id)).toEqual(ids.slice(3, 6));
    const third = await store.listIntents({ limit: 3, cursor: second.next! });
    expect(third.intents.map((i) => i.id)).toEqual(ids.slice(6));
    expect(third.next).toBeNull();
    expect(await codeOf(store.listIntents({ cursor: first.next!, order: 'desc' }))).toBe('INVALID_VALUE');
  });

  it('filters by status, requester and wallet across pages', async () => {
    const { store } = await backend.fresh();
    const byAlice: string[] = [];
    for (let n = 0; n < 12; n++) {
      const requester = n % 3 === 0 ? 'alice' : 'bob';
      const wallet = n % 2 === 0 ? 'btc-main' : 'btc-cold';
      const rec = await store.insertIntent(makeIntent(n, { requester, wallet }));
      if (requester === 'alice') byAlice.push(rec.id);
      if (n % 4 === 0) await store.updateIntentStatus(rec.id, { from: 'pending', to: 'approved' });
    }
    const collect = async (q: { status?: 'approved'; requester?: string; wallet?: string }) => {
      const out: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await store.listIntents({ ...q, limit: 2, ...(cursor !== undefined ? { cursor } : {}) });
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
    for (let n = 0; n < MAX_PAGE + 3; n++) await store.insertIntent(makeIntent(n));
    const page = await store.listIntents({ limit: 10_000 });
    expect(page.intents).toHaveLength(MAX_PAGE);
    const rest = await store.listIntents({ limit: 10_000, cursor: page.next! });
    expect(rest.intents).toHaveLength(3);
    expect(rest.next).toBeNull();
  });

  it('refuses a malformed cursor with INVALID_VALUE', async () => {
    const { store } = await backend.fresh();
    for (const cursor of ['', 'not a cursor', Buffer.from('desc:-1').toString('base64url'), 'ZGVzYzox=']) {
      expect(await codeOf(store.listIntents({ cursor }))).toBe('INVALID_VALUE');
    }
  });

  it('changes status only from the expected one (compare-and-set)', async () => {
    const { store } = await backend.fresh();
    const { id } = await store.insertIntent(makeIntent(1));
    expect(await store.updateIntentStatus(id, { from: 'pending', to: 'approved' })).toBe(true);
    expect(await store.updateIntentStatus(id, { from: 'pending', to: 'refused', code: 'FROZEN' })).toBe(
      false,
    );
    expect(
      await store.updateIntentStatus(id, {
        from: ['approved', 'signing'],
        to: 'signing',
        psbt: 'cHNidP8BAA==',
      }),
    ).toBe(true);
    expect(
      await store.updateIntentStatus(id, { from: 'signing', to: 'broadcast', txid: 'ab'.repeat(32) }),
    ).toBe(true);
    const rec = await store.getIntent(id);
    expect(rec?.status).toBe('broadcast');
    expect(rec?.psbt).toBe('cHNidP8BAA==');
    expect(rec?.txid).toBe('ab'.repeat(32));
    expect(rec?.statusCode).toBeNull();
    expect(
      await store.updateIntentStatus(id, { from: 'broadcast', to: 'refused', code: 'CHAIN_REJECTED' }),
    ).toBe(true);
    expect((await store.getIntent(id))?.statusCode).toBe('CHAIN_REJECTED');
  });

  it('lets exactly one of concurrent status changes win', async () => {
    const { store, peer } = await backend.fresh();
    const { id } = await store.insertIntent(makeIntent(1));
    const wins = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        peer(i).updateIntentStatus(id, { from: 'pending', to: 'approved' }),
      ),
    );
    expect(wins.filter(Boolean)).toHaveLength(1);
  });

  it('says NOT_FOUND when changing the status of an unknown intent', async () => {
    const { store } = await backend.fresh();
    const id = intentDigest(makeIntent(1).intent);
    expect(await codeOf(store.updateIntentStatus(id, { from: 'pending', to: 'approved' }))).toBe('NOT_FOUND');
  });
});

describe.each(backends)('approvals on $name', (backend) => {
  it('stores an approval once and accepts the exact same one again', async () => {
    const { store } = await backend.fresh();
    const { id } = await store.insertIntent(makeIntent(1));
    const a = approve(id, org.approvers[0]!);
    expect(await store.insertApproval(a)).toBe(true);
    expect(await store.insertApproval(a)).toBe(false);
    const list = await store.approvalsFor(id);
    expect(list).toHaveLength(1);
    expect(list[0]?.signed).toEqual(a);
    expect(list[0]?.body).toBe(canonicalize(a));
    expect(list[0]?.decision).toBe('approve');
  });

  it('refuses a different approval from the same device for the same intent with CONFLICT', async () => {
    const { store } = await backend.fresh();
    const { id } = await store.insertIntent(makeIntent(1));
    await store.insertApproval(approve(id, org.approvers[0]!));
    expect(await codeOf(store.insertApproval(approve(id, org.approvers[0]!, { decision: 'reject' })))).toBe(
      'CONFLICT',
    );
    expect(await codeOf(store.insertApproval(approve(id, org.approvers[0]!, { at: T0 + 9999 })))).toBe(
      'CONFLICT',
    );
    expect((await store.approvalsFor(id))[0]?.decision).toBe('approve');
  });

  it('lists the approvals of one intent only, in order received', async () => {
    const { store } = await backend.fresh();
    const one = (await store.insertIntent(makeIntent(1))).id;
    const two = (await store.insertIntent(makeIntent(2))).id;
    for (const p of org.approvers) await store.insertApproval(approve(one, p));
    await store.insertApproval(approve(two, org.approvers[0]!));
    const list = await store.approvalsFor(one);
    expect(list.map((a) => a.approver)).toEqual(org.approvers.map((p) => p.id));
    expect(await store.approvalsFor(intentDigest(makeIntent(3).intent))).toEqual([]);
  });

  it('says NOT_FOUND for an approval of an unknown intent', async () => {
    const { store } = await backend.fresh();
    const id = intentDigest(makeIntent(1).intent);
    expect(await codeOf(store.insertApproval(approve(id, org.approvers[0]!)))).toBe('NOT_FOUND');
  });

  it('keeps one approval when the same one arrives concurrently', async () => {
    const { store, peer } = await backend.fresh();
    const { id } = await store.insertIntent(makeIntent(1));
    const a = approve(id, org.approvers[1]!);
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => peer(i).insertApproval(a)));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await store.approvalsFor(id)).toHaveLength(1);
  });
});

describe.each(backends)('transactions on $name', (backend) => {
  it('records one transaction per intent and tracks its confirmations', async () => {
    const { store } = await backend.fresh({ now: () => T0 });
    const { id } = await store.insertIntent(makeIntent(1));
    const txid = 'cd'.repeat(32);
    expect(await store.recordTransaction({ intent: id, txid, rawHex: '0200', broadcastAt: T0 })).toBe(true);
    expect(await store.recordTransaction({ intent: id, txid, rawHex: '0200', broadcastAt: T0 })).toBe(false);
    expect(
      await codeOf(
        store.recordTransaction({ intent: id, txid: 'ef'.repeat(32), rawHex: '0201', broadcastAt: T0 }),
      ),
    ).toBe('CONFLICT');
    expect(await store.transactionsBelow(1)).toHaveLength(1);
    await store.updateTransaction(id, { confirmations: 3, blockHeight: 812_345, blockHash: '00'.repeat(32) });
    expect(await store.getTransaction(id)).toEqual({
      intent: id,
      txid,
      rawHex: '0200',
      broadcastAt: T0,
      confirmations: 3,
      blockHeight: 812_345,
      blockHash: '00'.repeat(32),
      updatedAt: T0,
    });
    expect(await store.transactionsBelow(3)).toHaveLength(0);
    expect(await store.transactionsBelow(6)).toHaveLength(1);
  });

  it('says NOT_FOUND for the transaction of an unknown intent', async () => {
    const { store } = await backend.fresh();
    const id = intentDigest(makeIntent(1).intent);
    expect(
      await codeOf(
        store.recordTransaction({ intent: id, txid: 'ab'.repeat(32), rawHex: '00', broadcastAt: 1 }),
      ),
    ).toBe('NOT_FOUND');
    expect(
      await codeOf(store.updateTransaction(id, { confirmations: 1, blockHeight: 1, blockHash: null })),
    ).toBe('NOT_FOUND');
    expect(await store.getTransaction(id)).toBeNull();
  });
});
