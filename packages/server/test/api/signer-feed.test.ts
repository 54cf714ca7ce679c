/**
 * The routes the HTTP edge hands to the signing pipeline (signer feed,
 * results, checkpoints, wallets, readiness), on SQLite and PostgreSQL: only
 * signer keys reach the signer routes, a signer speaks for itself only, the
 * long-poll ends when the coordinator shuts down, and what the pipeline
 * returns is what the caller gets. What the real pipeline does with results
 * and checkpoints is covered by its own tests; an InertPipeline records them.
 */
import type { SignedIntent } from '@custos/core';
import { describe, expect, it } from 'vitest';
import { useBackends } from '../db/backends.js';
import { makeCheckpoint, makeIntent, makeJob, makeResult } from '../db/fixtures.js';
import { send, unsigned } from './support/client.js';
import { outcome, useHarness } from './support/harness.js';

const { backends } = useBackends();
const harness = useHarness();

describe.each(backends)('signer routes on $name', (backend) => {
  it('serves a signer its feed from the pipeline; the wait is bounded', async () => {
    const h = await harness(backend);
    const res = await h.signer().get('/v1/signer/jobs?wait=0');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ jobs: [], checkpoint: null });
    expect(h.pipeline.feeds).toEqual([{ signer: 'signer-1', waitMs: 0 }]);
    expect(outcome(await h.signer().get('/v1/signer/jobs?wait=30001'))).toEqual({
      status: 400,
      code: 'INVALID_VALUE',
    });
  });

  it('ends a long-poll at once when the coordinator shuts down, with a normal answer', async () => {
    const h = await harness(backend);
    const url = await h.coordinator.app.listen({ host: '127.0.0.1', port: 0 });
    const started = Date.now();
    const polling = h.signer().on({ baseUrl: url }).get('/v1/signer/jobs?wait=30000');
    while (h.pipeline.feeds.length === 0) await new Promise((r) => setTimeout(r, 10));
    await h.coordinator.close();
    const res = await polling;
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ jobs: [], checkpoint: null });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('passes a signer result to the pipeline (204); a member key cannot post one', async () => {
    const h = await harness(backend);
    const result = makeResult(makeJob(makeIntent(1) as SignedIntent, 'job-1'));
    const res = await h.signer().post('/v1/signer/results', result);
    expect(res.status).toBe(204);
    expect(h.pipeline.results).toEqual([{ signer: 'signer-1', result }]);
    const byMember = await h.as(h.org.admins[0] ?? h.org.requester).post('/v1/signer/results', result);
    expect(outcome(byMember)).toEqual({ status: 403, code: 'NOT_AUTHORIZED' });
    expect(h.pipeline.results).toHaveLength(1);
  });

  it("passes a signer's own checkpoint to the pipeline; one in another signer's name is NOT_AUTHORIZED", async () => {
    const h = await harness(backend);
    const head = await h.store.audit.head();
    const checkpoint = makeCheckpoint(head?.seq ?? 0, head?.hash ?? h.org.orgId);
    expect((await h.signer().post('/v1/audit/checkpoints', checkpoint)).status).toBe(204);
    expect(h.pipeline.checkpoints).toEqual([{ signer: 'signer-1', checkpoint }]);
    const other = { ...checkpoint, checkpoint: { ...checkpoint.checkpoint, signer: 'signer-2' } };
    expect(outcome(await h.signer().post('/v1/audit/checkpoints', other))).toEqual({
      status: 403,
      code: 'NOT_AUTHORIZED',
    });
    expect(h.pipeline.checkpoints).toHaveLength(1);
    expect(await h.events('request.refused')).toHaveLength(1);
  });

  it('lists the wallets of governance with what the chain tracker knows of them', async () => {
    const h = await harness(backend);
    const before = await h.as(h.org.requester).get('/v1/wallets');
    expect(before.body).toEqual({
      wallets: [{ ...h.org.wallet, balance: null, utxos: null, receiveAddress: null }],
    });
    h.pipeline.walletSummaries = [
      {
        id: h.org.wallet.id,
        chain: h.org.wallet.chain,
        balance: '150000',
        utxos: 2,
        receiveAddress: 'bcrt1qexample',
      },
    ];
    const after = await h.signer().get('/v1/wallets');
    expect(after.body).toEqual({
      wallets: [{ ...h.org.wallet, balance: '150000', utxos: 2, receiveAddress: 'bcrt1qexample' }],
    });
  });

  it('is ready when the database answers, governance verifies and the chain node answers', async () => {
    const h = await harness(backend);
    expect((await send(h.target, unsigned('GET', '/v1/ready'))).body).toEqual({
      status: 'ready',
      governanceSeq: 0,
      chain: { ok: true, height: 101 },
    });
    h.pipeline.chain = { ok: false, height: null, message: 'connection refused' };
    expect(outcome(await send(h.target, unsigned('GET', '/v1/ready')))).toEqual({
      status: 503,
      code: 'UNAVAILABLE',
    });
  });
});
