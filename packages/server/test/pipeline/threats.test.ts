/**
 * Attacks on the path between the coordinator and its signers, at the
 * pipeline, with a real regtest node and real signers, on SQLite and
 * PostgreSQL:
 * - THREATS 6 (DMM Bitcoin, 2024): a relay rewrites the job's amount and
 *   destination between the feed and the signer. The signer refuses
 *   INTENT_SIGNATURE_INVALID; the coordinator records the refusal, refuses
 *   the intent, audits an `alert` and queues an `alert` webhook; nothing is
 *   broadcast.
 * - A result whose receipt is not signed by the signer's identity key (a
 *   forged "signed" or "refused") is refused BAD_SIGNATURE, audited as an
 *   alert, and changes nothing.
 * - A result delivered twice changes nothing the second time.
 */
import {
  type Digest,
  fromHex,
  intentDigest,
  type Receipt,
  receiptDigest,
  type SignerJob,
  signBytes,
} from '@custos/core';
import { secretKeyFor } from '@custos/test-support/org';
import { ATTACKER } from '@custos/test-support/psbt-fixtures';
import { describe, expect, it } from 'vitest';
import { useBackends } from '../db/backends.js';
import { codeOf } from '../db/fixtures.js';
import {
  approvedIntent,
  auditEvents,
  type Coordinator,
  fund,
  makeCoordinator,
  makeOrg,
  type Org,
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

async function signingIntent(
  store: Coordinator['store'],
  org: Org,
): Promise<{ c: Coordinator; id: Digest; dir: string }> {
  const node = regtest();
  await seedGovernance(store, org);
  const c = await makeCoordinator(store, org, {
    rpc: node.rpc,
    startHeight: (await node.rpc.getBlockCount()) + 1,
  });
  cleanups.push(() => c.pipeline.stop());
  await fund(node, org, [30_000_000n]);
  const id = await approvedIntent(store, org, 10_000_000n);
  await c.pipeline.onApproved(id);
  expect((await store.intents.get(id))?.status).toBe('signing');
  const tmp = tempDir();
  cleanups.push(() => tmp.remove());
  return { c, id, dir: tmp.dir };
}

describe.each(backends)('attacks on the signer path, on $name', (backend) => {
  it('THREATS 6 (DMM): a relay rewrites amount and destination -> INTENT_SIGNATURE_INVALID, intent refused, alert audited and sent, nothing broadcast', async () => {
    const { store } = await backend.fresh();
    const org = makeOrg();
    const node = regtest();
    const { c, id, dir } = await signingIntent(store, org);

    // What the attacker in the relay sends on: the same job, another amount and beneficiary.
    const rewrite = (job: SignerJob): unknown => ({
      ...job,
      intent: { ...job.intent, intent: { ...job.intent.intent, amount: '29000000', to: ATTACKER } },
    });
    const signers = startSigners(dir, org, c.pipeline, store, { relay: { 'signer-1': rewrite } });
    cleanups.push(() => signers.stop());
    const refused = await waitFor('refused', async () => {
      const rec = await store.intents.get(id);
      return rec?.status === 'refused' ? rec : undefined;
    });
    // Stopping the signers waits for the result being handled (its audit entries and notifications).
    await signers.stop();
    expect(refused.statusCode).toBe('INTENT_SIGNATURE_INVALID');
    expect(refused.txid).toBeNull();

    const [one] = signers.runs;
    const result = one?.results[0];
    expect(result?.receipt).toMatchObject({
      signer: 'signer-1',
      outcome: 'refused',
      code: 'INTENT_SIGNATURE_INVALID',
    });
    expect(result?.alert).toEqual({ severity: 'critical', code: 'INTENT_SIGNATURE_INVALID' });
    // The refusal is recorded on signer-1's job, under the intent the coordinator queued.
    const jobs = await store.jobs.of(id);
    const job1 = jobs.find((j) => j.signer === 'signer-1');
    expect(job1).toMatchObject({ status: 'done', result });

    const events = (await auditEvents(store)).filter((e) => e.subject === id);
    expect(events).toEqual(
      expect.arrayContaining([
        { event: 'signing.refused', subject: id, actor: 'signer:signer-1' },
        { event: 'alert', subject: id, actor: 'signer:signer-1' },
        { event: 'intent.refused', subject: id, actor: 'coordinator' },
      ]),
    );
    expect(events.some((e) => e.event === 'transaction.broadcast')).toBe(false);
    const alertEntry = (await store.audit.range(0, 1000)).find((e) => e.event === 'alert');
    expect(alertEntry?.digest).toBe(receiptDigest(result!.receipt));

    const outbox = await store.outbox.due(Date.now(), 100);
    const alert = outbox.find((o) => o.event === 'alert');
    expect(JSON.parse(alert?.payload ?? '{}')).toMatchObject({
      event: 'alert',
      data: { subject: id, signer: 'signer-1', code: 'INTENT_SIGNATURE_INVALID', severity: 'critical' },
    });
    expect(outbox.some((o) => o.event === 'intent.refused')).toBe(true);

    // Nothing reached the chain, and the coin is free again.
    expect(await node.rpc.getRawMempool()).toEqual([]);
    expect(await store.transactions.get(id)).toBeNull();
    expect(await store.chain.reservations()).toEqual(new Map());
    expect((await verifyAudit(store, org)).ok).toBe(true);
  });

  it('a result whose receipt is not signed by the signer identity key is refused BAD_SIGNATURE, audited as an alert, and changes nothing', async () => {
    const { store } = await backend.fresh();
    const org = makeOrg();
    const { c, id } = await signingIntent(store, org);
    const feed = await c.pipeline.jobsFor('signer-1', 0, new AbortController().signal);
    const job = feed.jobs[0];
    if (job === undefined) throw new Error('no job');

    const receipt: Receipt = {
      v: 1,
      signer: 'signer-1',
      job: job.id,
      intent: id,
      txid: null,
      outcome: 'refused',
      code: 'FROZEN',
      governanceSeq: 1,
      governanceHead: (await store.governance.range(0, 1))[0]!.digest,
      at: Date.now(),
    };
    const forgedKey = secretKeyFor('attacker', 'signer-1');
    const forged = { receipt, signature: signBytes(forgedKey, fromHex(receiptDigest(receipt))) };
    expect(await codeOf(c.pipeline.acceptResult('signer-1', forged))).toBe('BAD_SIGNATURE');
    // signer-2 sending a receipt that names signer-1, validly signed by signer-1's key, is refused too.
    const real = {
      receipt,
      signature: signBytes(org.identities.get('signer-1')!, fromHex(receiptDigest(receipt))),
    };
    expect(await codeOf(c.pipeline.acceptResult('signer-2', real))).toBe('BAD_SIGNATURE');

    expect(await store.intents.get(id)).toMatchObject({ status: 'signing', statusCode: null });
    expect((await store.jobs.get(job.id))?.status).toBe('delivered');
    expect((await store.jobs.get(job.id))?.result).toBeNull();
    const events = await auditEvents(store);
    expect(events.filter((e) => e.event === 'alert')).toEqual([
      { event: 'alert', subject: id, actor: 'coordinator' },
      { event: 'alert', subject: id, actor: 'coordinator' },
    ]);
    expect(events.some((e) => e.event.startsWith('signing.refused'))).toBe(false);

    // The genuine result of signer-1 for the same job is still accepted afterwards.
    expect(
      await codeOf(c.pipeline.acceptResult('signer-1', { ...real, receipt: { ...receipt, job: 'nope' } })),
    ).toBe('BAD_SIGNATURE');
    await c.pipeline.acceptResult('signer-1', real);
    expect(await store.intents.get(id)).toMatchObject({ status: 'refused', statusCode: 'FROZEN' });
  });

  it('issue 8 item 7: a receipt naming another governance head digest (a fork) is audited with that digest and raises a critical alert', async () => {
    const { store } = await backend.fresh();
    const org = makeOrg();
    const { c, id } = await signingIntent(store, org);
    const feed = await c.pipeline.jobsFor('signer-1', 0, new AbortController().signal);
    const job = feed.jobs[0];
    if (job === undefined) throw new Error('no job');
    const ours = (await store.governance.head())!;
    const fork = 'f0'.repeat(32) as Digest;
    const receipt: Receipt = {
      v: 1,
      signer: 'signer-1',
      job: job.id,
      intent: id,
      txid: null,
      outcome: 'refused',
      code: 'FROZEN',
      governanceSeq: ours.seq,
      governanceHead: fork,
      at: Date.now(),
    };
    const result = {
      receipt,
      signature: signBytes(org.identities.get('signer-1')!, fromHex(receiptDigest(receipt))),
    };
    await c.pipeline.acceptResult('signer-1', result);

    const entries = await store.audit.range(0, 10_000);
    const head = entries.filter((e) => e.event === 'signing.governance');
    expect(head).toEqual([
      expect.objectContaining({
        actor: 'signer:signer-1',
        subject: `${id} governance ${ours.seq}`,
        digest: fork,
      }),
    ]);
    expect(entries.filter((e) => e.event === 'alert')).toEqual([
      expect.objectContaining({ actor: 'coordinator', subject: id, digest: receiptDigest(receipt) }),
    ]);
    const outbox = await store.outbox.due(Date.now(), 100);
    const alert = outbox.find((o) => o.event === 'alert');
    expect(JSON.parse(alert?.payload ?? '{}')).toMatchObject({
      data: { subject: id, signer: 'signer-1', code: 'GOVERNANCE_HEAD_MISMATCH', severity: 'critical' },
    });
    expect(JSON.parse(alert?.payload ?? '{}').data.message).toContain(ours.digest);
    expect((await verifyAudit(store, org)).ok).toBe(true);
  });

  it('the same result delivered twice changes nothing the second time', async () => {
    const { store } = await backend.fresh();
    const org = makeOrg();
    const node = regtest();
    const { c, id, dir } = await signingIntent(store, org);
    const signers = startSigners(dir, org, c.pipeline, store);
    cleanups.push(() => signers.stop());
    await waitFor('broadcast', async () =>
      (await store.intents.get(id))?.status === 'broadcast' ? true : undefined,
    );
    await signers.stop();
    // Each receipt names the coordinator's own head, seq and digest: no fork, no alert.
    const ours = (await store.governance.head())!;
    const heads = (await store.audit.range(0, 10_000)).filter((e) => e.event === 'signing.governance');
    expect(heads.length).toBeGreaterThanOrEqual(2);
    for (const e of heads) {
      expect(e).toMatchObject({ subject: `${id} governance ${ours.seq}`, digest: ours.digest });
    }
    expect((await auditEvents(store)).some((e) => e.event === 'alert')).toBe(false);
    const before = await store.audit.head();
    const outboxBefore = (await store.outbox.due(Date.now(), 100)).length;
    for (const run of signers.runs) {
      for (const result of run.results) await c.pipeline.acceptResult(run.id, result);
    }
    expect(await store.audit.head()).toEqual(before);
    expect((await store.outbox.due(Date.now() + 120_000, 100)).length).toBe(outboxBefore);
    expect(await store.intents.get(id)).toMatchObject({ status: 'broadcast' });
    expect((await node.rpc.getRawMempool()).length).toBe(1);
    expect(intentDigest((await store.intents.get(id))!.signed.intent)).toBe(id);
    await node.mine(1);
  });
});
