/**
 * The signer feed on SQLite and PostgreSQL (docs/api.md "Signer feed"):
 * - audit checkpoints (docs/architecture.md "Audit entry", THREATS 30): a signer is
 *   asked to countersign the head, its checkpoint is verified and stored,
 *   and storing it writes no audit entry, so it does not ask for the next one
 *   (no ping-pong); a checkpoint that does not match the log, or is not the
 *   signer's, is refused CHECKPOINT_INVALID and audited as an alert, at most
 *   once per interval;
 * - the long poll: jobs queued by another coordinator on the same database
 *   are seen while waiting, a job of an intent no longer being signed is
 *   withdrawn instead of handed out, and an aborted poll ends at once.
 *
 * No chain node is needed here; the pipeline's node address is a closed port.
 */
import {
  auditEntryDigest,
  type Digest,
  intentDigest,
  type SignedCheckpoint,
  type SignerJob,
  signCheckpoint,
} from '@custos/core';
import { describe, expect, it } from 'vitest';
import type { Store } from '../../src/db/repository.js';
import { useBackends } from '../db/backends.js';
import { codeOf, PSBT } from '../db/fixtures.js';
import {
  auditEvents,
  makeCoordinator,
  makeOrg,
  type Org,
  seedGovernance,
  verifyAudit,
} from './support/harness.js';

const { backends } = useBackends();
const CLOSED = { url: 'http://127.0.0.1:9/' };
const never = new AbortController().signal;

function checkpointBy(
  org: Org,
  signer: string,
  c: { seq: number; head: Digest },
  key?: Uint8Array,
): SignedCheckpoint {
  return signCheckpoint(key ?? org.identities.get(signer)!, {
    v: 1,
    org: org.orgId,
    signer,
    seq: c.seq,
    head: c.head,
    at: Date.now(),
  });
}

async function logSomething(store: Store, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await store.audit.append({
      at: Date.now(),
      actor: 'test',
      event: 'intent.created',
      subject: `s${i}`,
      digest: i.toString(16).padStart(64, '0') as Digest,
    });
  }
}

describe.each(backends)('the signer feed on $name', (backend) => {
  it('asks a signer to countersign the audit head, stores its checkpoint without writing an audit entry, and does not ask again until the head moves', async () => {
    const { store } = await backend.fresh();
    const org = makeOrg();
    await seedGovernance(store, org);
    const c = await makeCoordinator(store, org, { rpc: CLOSED });
    await logSomething(store, 3);

    const feed = await c.pipeline.jobsFor('signer-1', 0, never);
    const head = await store.audit.head();
    expect(feed).toEqual({ jobs: [], checkpoint: { seq: 2, head: head?.hash } });
    const sc = checkpointBy(org, 'signer-1', feed.checkpoint!);
    await c.pipeline.acceptCheckpoint('signer-1', sc);
    expect(await store.audit.checkpoints({ signer: 'signer-1' })).toEqual([sc]);
    expect(await store.audit.head()).toEqual(head);
    // Accepted again (a retry) changes nothing.
    await c.pipeline.acceptCheckpoint('signer-1', sc);
    expect(await store.audit.checkpoints()).toEqual([sc]);

    // No ping-pong: the head did not move, so nothing is asked, even with no interval between asks.
    expect((await c.pipeline.jobsFor('signer-1', 0, never)).checkpoint).toBeNull();
    // Signer-2 has not signed anything yet: it is asked for the same head.
    expect((await c.pipeline.jobsFor('signer-2', 0, never)).checkpoint).toEqual({ seq: 2, head: head?.hash });
    await logSomething(store, 1);
    const next = await c.pipeline.jobsFor('signer-1', 0, never);
    expect(next.checkpoint?.seq).toBe(3);
    await c.pipeline.acceptCheckpoint('signer-1', checkpointBy(org, 'signer-1', next.checkpoint!));

    const verified = await verifyAudit(store, org);
    expect(verified).toMatchObject({ ok: true, entries: 4, checkpointsVerified: 2 });
    expect((await auditEvents(store)).some((e) => e.event === 'alert')).toBe(false);
  });

  it('refuses CHECKPOINT_INVALID a wrong head, a seq past the log, another key, another org or another signer; audits one alert per interval; stores nothing', async () => {
    const { store } = await backend.fresh();
    const org = makeOrg();
    await seedGovernance(store, org);
    const c = await makeCoordinator(store, org, { rpc: CLOSED, checkpointIntervalMs: 60_000 });
    await logSomething(store, 3);
    const asked = await c.pipeline.jobsFor('signer-1', 0, never);
    const good = asked.checkpoint!;
    const [entry1] = await store.audit.range(1, 1);
    const wrongHead = auditEntryDigest(entry1!);

    const bad: [string, SignedCheckpoint][] = [
      ['signer-1', checkpointBy(org, 'signer-1', { seq: good.seq, head: wrongHead })],
      ['signer-1', checkpointBy(org, 'signer-1', { seq: good.seq + 5, head: good.head })],
      ['signer-1', checkpointBy(org, 'signer-1', good, org.identities.get('signer-2'))],
      ['signer-2', checkpointBy(org, 'signer-1', good)],
      [
        'signer-1',
        signCheckpoint(org.identities.get('signer-1')!, {
          v: 1,
          org: wrongHead,
          signer: 'signer-1',
          seq: good.seq,
          head: good.head,
          at: Date.now(),
        }),
      ],
    ];
    for (const [sender, sc] of bad) {
      expect(await codeOf(c.pipeline.acceptCheckpoint(sender, sc))).toBe('CHECKPOINT_INVALID');
    }
    expect(await store.audit.checkpoints()).toEqual([]);
    // One alert per signer per interval, not one per bad checkpoint: a bad signer cannot flood the log.
    const alerts = (await auditEvents(store)).filter((e) => e.event === 'alert');
    expect(alerts).toEqual([
      { event: 'alert', subject: 'signer:signer-1', actor: 'coordinator' },
      { event: 'alert', subject: 'signer:signer-2', actor: 'coordinator' },
    ]);
    const outbox = await store.outbox.due(Date.now(), 100);
    expect(outbox.map((o) => [o.event, JSON.parse(o.payload).data.code])).toEqual([
      ['alert', 'CHECKPOINT_INVALID'],
      ['alert', 'CHECKPOINT_INVALID'],
    ]);
    // The alerts moved the head, but the signer is not asked again within the interval (no ping-pong).
    expect((await c.pipeline.jobsFor('signer-1', 0, never)).checkpoint).toBeNull();
    // Its right checkpoint of the head it was asked for is still accepted.
    await c.pipeline.acceptCheckpoint('signer-1', checkpointBy(org, 'signer-1', good));
    expect((await verifyAudit(store, org)).ok).toBe(true);
  });

  it('a waiting poll sees jobs queued by another coordinator, withdraws jobs of intents no longer being signed, and ends at once when aborted', async () => {
    const fresh = await backend.fresh();
    const org = makeOrg();
    await seedGovernance(fresh.store, org);
    const c = await makeCoordinator(fresh.store, org, { rpc: CLOSED, checkpointIntervalMs: 600_000 });
    const state = await c.governance.current();
    const jobOf = async (status: 'signing' | 'refused', n: number): Promise<SignerJob> => {
      org.world.clock.now = Date.now();
      const signed = org.world.intent(BigInt(100_000 + n));
      await fresh.store.intents.insert(signed);
      const id = intentDigest(signed.intent);
      await fresh.store.intents.updateStatus(id, { from: 'pending', to: status, psbt: PSBT });
      return {
        v: 1,
        id: `${id.slice(0, 16)}-signer-1-1`,
        signer: 'signer-1',
        intent: signed,
        approvals: [],
        governance: { seq: state.seq, digest: state.head },
        psbt: PSBT,
      };
    };
    const live = await jobOf('signing', 1);
    const dead = await jobOf('refused', 2);

    const started = performance.now();
    const polling = c.pipeline.jobsFor('signer-1', 10_000, never);
    await new Promise((r) => setTimeout(r, 100));
    // Queued through another Store (on PostgreSQL another connection pool): no wake-up in this process.
    await fresh.peer(1).jobs.enqueue([dead, live]);
    const feed = await polling;
    expect(performance.now() - started).toBeLessThan(2000);
    expect(feed.jobs).toEqual([live]);
    expect(await fresh.store.jobs.get(dead.id)).toMatchObject({ status: 'done', result: null });
    expect(await fresh.store.jobs.get(live.id)).toMatchObject({ status: 'delivered', deliveries: 1 });

    // Nothing left: the poll waits, and an abort ends it at once.
    const abort = new AbortController();
    const t0 = performance.now();
    const waiting = c.pipeline.jobsFor('signer-1', 10_000, abort.signal);
    setTimeout(() => abort.abort(), 100);
    expect(await waiting).toEqual({ jobs: [], checkpoint: null });
    expect(performance.now() - t0).toBeLessThan(1000);
    // And a poll with a short wait returns empty after about that wait.
    const t1 = performance.now();
    expect(await c.pipeline.jobsFor('signer-1', 300, never)).toEqual({ jobs: [], checkpoint: null });
    expect(performance.now() - t1).toBeGreaterThanOrEqual(290);
  });
});

describe('job notices across coordinators on postgres', () => {
  const postgres = backends.find((b) => b.name === 'postgres')!;

  it('a coordinator hears the jobs another one queued (NOTIFY/LISTEN), not its own, and stops hearing once unsubscribed', async () => {
    const fresh = await postgres.fresh();
    const [a, b] = fresh.peers as [Store, Store];
    expect(a.notices.pollMs).toBe(250);
    const heardByB: string[] = [];
    const heardByA: string[] = [];
    const stopB = b.notices.subscribe((signer) => heardByB.push(signer));
    const stopA = a.notices.subscribe((signer) => heardByA.push(signer));
    // LISTEN is set up on a connection of its own: publish until it is heard (bounded).
    for (let i = 0; i < 100 && heardByB.length === 0; i++) {
      await a.notices.publish('signer-1');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(heardByB[0]).toBe('signer-1');
    await new Promise((r) => setTimeout(r, 100));
    expect(heardByA).toEqual([]);
    stopB();
    const before = heardByB.length;
    await a.notices.publish('signer-2');
    await new Promise((r) => setTimeout(r, 200));
    expect(heardByB).toHaveLength(before);
    stopA();
  });
});
