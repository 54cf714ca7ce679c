/**
 * docs/architecture.md flow steps 3-5 through the pipeline, on a real regtest node with
 * two real signers, on SQLite and on PostgreSQL: an approved intent is built,
 * queued, signed by two of the 2-of-3 keys, combined, broadcast, mined and
 * confirmed, and every step is in an audit log that verifies with the
 * signers' checkpoints. Intents approved at once, built by two coordinators
 * on one database, never spend the same coin: the node accepts and mines
 * them all.
 */
import { analyzePsbt, psbtFromBase64 } from '@custos/bitcoin';
import type { Digest } from '@custos/core';
import { describe, expect, it } from 'vitest';
import { useBackends } from '../db/backends.js';
import {
  approvedIntent,
  auditEvents,
  type Coordinator,
  fund,
  makeCoordinator,
  makeOrg,
  type Org,
  type Signers,
  seedGovernance,
  startSigners,
  tempDir,
  useCleanups,
  useRegtest,
  verifyAudit,
  waitFor,
} from './support/harness.js';

const { backends } = useBackends();
const regtest = useRegtest();

const cleanups = useCleanups();

async function setUp(
  store: Coordinator['store'],
  org: Org,
): Promise<{ c: Coordinator; start: (s: Parameters<typeof startSigners>[4]) => Signers }> {
  const node = regtest();
  await seedGovernance(store, org);
  const c = await makeCoordinator(store, org, {
    rpc: node.rpc,
    startHeight: (await node.rpc.getBlockCount()) + 1,
  });
  cleanups.push(() => c.pipeline.stop());
  const tmp = tempDir();
  cleanups.push(() => tmp.remove());
  return {
    c,
    start: (opts) => {
      const s = startSigners(tmp.dir, org, c.pipeline, store, opts);
      cleanups.push(() => s.stop());
      return s;
    },
  };
}

function inputsOf(psbt: string | null, org: Org): string[] {
  const bytes = psbtFromBase64(psbt ?? '');
  if (!bytes.ok) throw new Error(bytes.message);
  const a = analyzePsbt(bytes.value, org.world.descriptor);
  if (!a.ok) throw new Error(a.message);
  return a.value.inputs.map((i) => `${i.txid}:${i.vout}`);
}

describe.each(backends)('the signing pipeline on $name', (backend) => {
  it('builds an approved intent, two real signers sign, it is combined, broadcast, mined and confirmed; the audit log verifies', async () => {
    const { store } = await backend.fresh();
    const org = makeOrg();
    const node = regtest();
    const { c, start } = await setUp(store, org);
    await fund(node, org, [30_000_000n]);

    const id = await approvedIntent(store, org, 10_000_000n);
    await c.pipeline.onApproved(id);
    const signing = await store.intents.get(id);
    expect(signing).toMatchObject({ status: 'signing', statusCode: null });
    const jobs = await store.jobs.of(id);
    expect(jobs.map((j) => [j.id, j.signer, j.status])).toEqual([
      [`${id.slice(0, 16)}-signer-1-1`, 'signer-1', 'queued'],
      [`${id.slice(0, 16)}-signer-2-1`, 'signer-2', 'queued'],
    ]);
    expect(jobs[0]?.job).toMatchObject({ psbt: signing?.psbt, governance: { seq: 1 } });
    expect(jobs[0]?.job.approvals).toHaveLength(2);
    // The wallet's only coin is now promised to this intent.
    const [wallet] = await c.pipeline.wallets();
    expect(wallet).toMatchObject({ id: 'btc-main', chain: 'bitcoin:regtest', balance: '30000000', utxos: 1 });

    const signers = start({});
    const broadcast = await waitFor('broadcast', async () => {
      const rec = await store.intents.get(id);
      return rec?.status === 'broadcast' ? rec : undefined;
    });
    await signers.stop();
    expect(
      signers.runs.flatMap((r) => r.results.map((x) => [x.receipt.signer, x.receipt.outcome])).sort(),
    ).toEqual([
      ['signer-1', 'signed'],
      ['signer-2', 'signed'],
    ]);
    expect(signers.runs.flatMap((r) => r.errors)).toEqual([]);
    const txid = broadcast.txid as string;
    expect(await node.rpc.getRawMempool()).toEqual([txid]);
    expect(await store.transactions.get(id)).toMatchObject({ txid, confirmations: 0, blockHeight: null });

    await node.mine(1);
    await c.pipeline.runOnce();
    expect(await store.intents.get(id)).toMatchObject({ status: 'confirmed', txid });
    expect(await store.transactions.get(id)).toMatchObject({ txid, confirmations: 1 });
    expect(await node.rpc.getRawMempool()).toEqual([]);
    // The change came back to the wallet's change branch; the spent coin is gone.
    const [after] = await c.pipeline.wallets();
    expect(after?.utxos).toBe(1);
    expect(BigInt(after?.balance ?? '0')).toBeGreaterThan(19_990_000n);
    expect(BigInt(after?.balance ?? '0')).toBeLessThan(20_000_000n);

    const events = (await auditEvents(store)).filter((e) => e.subject === id).map((e) => e.event);
    expect(events).toEqual([
      'transaction.built',
      'signing.queued',
      'signing.signed',
      'signing.signed',
      'intent.signed',
      'transaction.broadcast',
      'transaction.confirmed',
    ]);
    const verified = await verifyAudit(store, org);
    expect(verified).toMatchObject({ ok: true });
    expect(verified.ok && verified.checkpointsVerified).toBeGreaterThan(0);
    // Notifications waiting in the outbox for the webhook worker.
    const outbox = await store.outbox.due(Date.now(), 100);
    expect(outbox.map((o) => o.event).sort()).toEqual(['intent.signed', 'transaction.broadcast']);
  });

  it('four intents approved at once, built by two coordinators on one database, never spend the same coin; the node mines all four', async () => {
    const fresh = await backend.fresh();
    const org = makeOrg();
    const node = regtest();
    const { c, start } = await setUp(fresh.store, org);
    const other = await makeCoordinator(fresh.peer(1), org, {
      rpc: node.rpc,
      startHeight: (await node.rpc.getBlockCount()) + 1,
    });
    cleanups.push(() => other.pipeline.stop());
    // Equal coins: without reservations, largest-first selection would pick the same one for each.
    await fund(node, org, [30_000_000n, 30_000_000n, 30_000_000n, 30_000_000n]);
    // Both trackers catch up before the race, so the race is about the reservations.
    await Promise.all([c.pipeline.runOnce(), other.pipeline.runOnce()]);
    const ids: Digest[] = [];
    for (let i = 0; i < 4; i++) ids.push(await approvedIntent(fresh.store, org, 20_000_000n));
    await Promise.all(ids.map((id, i) => (i % 2 === 0 ? c : other).pipeline.onApproved(id)));
    const recs = await Promise.all(ids.map((id) => fresh.store.intents.get(id)));
    expect(recs.map((r) => r?.status)).toEqual(['signing', 'signing', 'signing', 'signing']);
    const inputs = recs.map((r) => inputsOf(r?.psbt ?? null, org));
    expect(inputs.map((i) => i.length)).toEqual([1, 1, 1, 1]);
    expect(new Set(inputs.flat()).size).toBe(4);
    // One change index per build, whichever coordinator built it.
    expect(await fresh.store.kv.get('chain:change:btc-main')).toBe('4');

    const signers = start({});
    const txids = await waitFor('all broadcast', async () => {
      const now = await Promise.all(ids.map((id) => fresh.store.intents.get(id)));
      return now.every((r) => r?.status === 'broadcast') ? now.map((r) => r?.txid as string) : undefined;
    });
    await signers.stop();
    expect((await node.rpc.getRawMempool()).sort()).toEqual([...txids].sort());
    await node.mine(1);
    await c.pipeline.runOnce();
    for (const id of ids) expect(await fresh.store.intents.get(id)).toMatchObject({ status: 'confirmed' });
    // Confirmed spends hold no reservation any more.
    expect(await fresh.store.chain.reservations()).toEqual(new Map());
  });

  it('refuses INSUFFICIENT_FUNDS when the wallet cannot pay, audited and notified; nothing is queued', async () => {
    const { store } = await backend.fresh();
    const org = makeOrg();
    const node = regtest();
    const { c } = await setUp(store, org);
    await fund(node, org, [1_000_000n]);
    const id = await approvedIntent(store, org, 5_000_000n);
    await c.pipeline.onApproved(id);
    expect(await store.intents.get(id)).toMatchObject({
      status: 'refused',
      statusCode: 'INSUFFICIENT_FUNDS',
    });
    expect(await store.jobs.of(id)).toEqual([]);
    expect((await auditEvents(store)).map((e) => e.event)).toEqual(['intent.refused']);
    const outbox = await store.outbox.due(Date.now(), 100);
    expect(outbox.map((o) => [o.event, JSON.parse(o.payload).data.code])).toEqual([
      ['intent.refused', 'INSUFFICIENT_FUNDS'],
    ]);
  });
});
