/**
 * The chain node is trusted for availability only (docs/architecture.md "Trust model"):
 * when it goes away, work waits; it is never refused for it. The node is cut
 * off by a TCP relay in front of it (connections refused, open ones cut),
 * then reached again on the same port.
 * - During onApproved: the intent stays `approved`, nothing is built, audited
 *   or queued, /v1/ready's chainStatus says the node is down; once the node
 *   is back the loop builds it, the signers sign, it is broadcast and confirmed.
 * - During the broadcast: the intent stays `signed` with its signatures, and
 *   the loop sends it once the node is back.
 */
import { describe, expect, it } from 'vitest';
import { useBackends } from '../db/backends.js';
import {
  approvedIntent,
  auditEvents,
  fund,
  makeCoordinator,
  makeOrg,
  nodeLink,
  rpcVia,
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

describe.each(backends)('the chain node going away, on $name', (backend) => {
  it('node down during onApproved: the intent stays approved; once the node is back it is built, signed, broadcast and confirmed', async () => {
    const { store } = await backend.fresh();
    const org = makeOrg();
    const node = regtest();
    const link = await nodeLink(node);
    cleanups.push(() => link.close());
    await seedGovernance(store, org);
    const c = await makeCoordinator(store, org, {
      rpc: rpcVia(link, node),
      startHeight: (await node.rpc.getBlockCount()) + 1,
    });
    cleanups.push(() => c.pipeline.stop());
    await fund(node, org, [30_000_000n]);
    await c.pipeline.runOnce();
    expect(await c.pipeline.chainStatus()).toMatchObject({ ok: true });

    await link.down();
    const id = await approvedIntent(store, org, 10_000_000n);
    await c.pipeline.onApproved(id);
    expect(await store.intents.get(id)).toMatchObject({ status: 'approved', statusCode: null, psbt: null });
    expect(await store.jobs.of(id)).toEqual([]);
    expect(await auditEvents(store)).toEqual([]);
    const status = await c.pipeline.chainStatus();
    expect(status).toMatchObject({ ok: false, height: null });
    expect(status.message).toMatch(/unreachable/);
    expect(status.message).not.toContain(node.rpcPassword);
    // The loop keeps trying while the node is away, and keeps the intent approved.
    await c.pipeline.runOnce();
    expect((await store.intents.get(id))?.status).toBe('approved');

    await link.up();
    const tmp = tempDir();
    cleanups.push(() => tmp.remove());
    const signers = startSigners(tmp.dir, org, c.pipeline, store);
    cleanups.push(() => signers.stop());
    c.pipeline.start();
    await waitFor('broadcast', async () =>
      (await store.intents.get(id))?.status === 'broadcast' ? true : undefined,
    );
    await node.mine(1);
    await waitFor('confirmed', async () =>
      (await store.intents.get(id))?.status === 'confirmed' ? true : undefined,
    );
    // Stopping waits for the pass in progress (its audit entry follows the status change).
    await signers.stop();
    await c.pipeline.stop();
    expect((await auditEvents(store)).filter((e) => e.subject === id).map((e) => e.event)).toEqual([
      'transaction.built',
      'signing.queued',
      'signing.signed',
      'signing.signed',
      'intent.signed',
      'transaction.broadcast',
      'transaction.confirmed',
    ]);
    expect((await verifyAudit(store, org)).ok).toBe(true);
  });

  it('node down when the signatures arrive: the intent stays signed, and is broadcast once the node is back', async () => {
    const { store } = await backend.fresh();
    const org = makeOrg();
    const node = regtest();
    const link = await nodeLink(node);
    cleanups.push(() => link.close());
    await seedGovernance(store, org);
    const c = await makeCoordinator(store, org, {
      rpc: rpcVia(link, node),
      startHeight: (await node.rpc.getBlockCount()) + 1,
    });
    cleanups.push(() => c.pipeline.stop());
    await fund(node, org, [30_000_000n]);
    const id = await approvedIntent(store, org, 10_000_000n);
    await c.pipeline.onApproved(id);
    expect((await store.intents.get(id))?.status).toBe('signing');

    await link.down();
    const tmp = tempDir();
    cleanups.push(() => tmp.remove());
    const signers = startSigners(tmp.dir, org, c.pipeline, store);
    cleanups.push(() => signers.stop());
    await waitFor('signed', async () =>
      (await store.intents.get(id))?.status === 'signed' ? true : undefined,
    );
    await waitFor('both results', async () =>
      (await store.jobs.of(id)).every((j) => j.status === 'done') ? true : undefined,
    );
    await signers.stop();
    expect(await store.transactions.get(id)).toBeNull();
    expect(await node.rpc.getRawMempool()).toEqual([]);
    // The node being away is the coordinator's to retry: both results were accepted without an error.
    expect(signers.runs.flatMap((r) => r.errors)).toEqual([]);

    await link.up();
    await c.pipeline.runOnce();
    const rec = await store.intents.get(id);
    expect(rec?.status).toBe('broadcast');
    expect(await node.rpc.getRawMempool()).toEqual([rec?.txid]);
    await node.mine(1);
    await c.pipeline.runOnce();
    expect((await store.intents.get(id))?.status).toBe('confirmed');
  });
});
