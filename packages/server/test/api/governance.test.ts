/**
 * Governance through the HTTP API on SQLite and PostgreSQL: proposals and
 * co-signatures verified against the current state, applied at the quorum;
 * the coordinator's view following the head (also when another coordinator
 * appends); delays on loosening changes (THREATS 18, 19); look-alike
 * addresses flagged and refused (THREATS 21); the genesis route of an empty
 * coordinator; and a stored chain that does not verify being refused.
 */
import { canonicalize, type GovernanceEntry, governanceDigest, type Policy } from '@custos/core';
import { COLD_STORAGE, defaultPolicy, EXCHANGE_DEPOSIT, type Person, signBy } from '@custos/test-support/org';
import { describe, expect, it } from 'vitest';
import { createCoordinator } from '../../src/app.js';
import { useBackends } from '../db/backends.js';
import { Client, send, unsigned } from './support/client.js';
import { DAY, type Harness, outcome, RecordingNotifier, TEST_LIMITS, useHarness } from './support/harness.js';
import { InertPipeline } from './support/inert-pipeline.js';

const { backends } = useBackends();
const harness = useHarness();

/** Same first four and last four characters as the cold-storage address. */
const LOOKALIKE = 'bcrt1qzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzjk4r';

function admins(h: Harness): [Person, Person, Person] {
  const [a, b, c] = h.org.admins;
  if (a === undefined || b === undefined || c === undefined) throw new Error('the fixture has three admins');
  return [a, b, c];
}

describe.each(backends)('governance on $name', (backend) => {
  it('a proposal with one admin signature stays open; a second admin co-signs; it applies and the head moves', async () => {
    const h = await harness(backend);
    const [first, second] = admins(h);
    const signed = await h.entry(
      'address.add',
      { id: 'exchange', chain: 'bitcoin:regtest', address: EXCHANGE_DEPOSIT, label: 'Exchange deposit' },
      [first],
    );
    const id = governanceDigest(signed.entry);
    const proposed = await h.as(first).post('/v1/governance/proposals', signed);
    expect(proposed.status).toBe(201);
    expect(proposed.body).toEqual({ status: 'open', id, seq: 1, have: 1, need: 2, warnings: [] });
    expect(await h.events('governance.proposed')).toEqual([
      expect.objectContaining({ subject: '1', digest: id }),
    ]);
    // Out of band (issue 10): every admin's webhook hears of the proposal, the change in full and when it would bind.
    const delay = h.org.state.delayMs[0]!.value;
    expect(h.notifier.of('governance.proposed')).toEqual([
      {
        id,
        seq: 1,
        kind: 'address.add',
        by: `member:${first.id}/${first.device.id}`,
        effect: 'widens',
        how: expect.any(String),
        delayMs: delay,
        bindsAt: h.clock.now + delay,
        body: signed.entry.body,
        warnings: [],
        signatures: { have: 1, need: 2 },
      },
    ]);

    const list = await h.as(second).get('/v1/governance/proposals?status=open');
    expect((list.body as { proposals: { id: string; signatures: unknown[] }[] }).proposals).toEqual([
      expect.objectContaining({ id, status: 'open', signatures: signed.signatures }),
    ]);
    expect((await h.as(second).get('/v1/governance/head')).body).toEqual({ seq: 0, digest: h.org.orgId });

    const cosign = signBy(signed.entry, [second]).signatures;
    const applied = await h
      .as(second)
      .post(`/v1/governance/proposals/${id}/signatures`, { signatures: cosign });
    expect(applied.status).toBe(200);
    expect(applied.body).toEqual({ status: 'applied', id, seq: 1, warnings: [] });
    expect(await h.events('governance.applied')).toEqual([
      expect.objectContaining({ subject: '0', digest: h.org.orgId }),
      expect.objectContaining({ subject: '1', digest: id, actor: `member:${second.id}/${second.device.id}` }),
    ]);
    expect(h.notifier.of('governance.applied')).toEqual([
      expect.objectContaining({
        id,
        seq: 1,
        kind: 'address.add',
        effect: 'widens',
        bindsAt: h.clock.now + delay,
      }),
    ]);

    const head = await h.as(first).get('/v1/governance/head');
    expect(head.body).toEqual({ seq: 1, digest: id });
    const state = await h.as(h.org.watcher).get('/v1/governance/state');
    expect(state.body).toMatchObject({ org: h.org.orgId, seq: 1, head: id, quorum: 2, frozen: null });
    const addresses = (state.body as { addresses: { entry: { id: string }; activeFrom: number }[] })
      .addresses;
    expect(addresses.map((a) => a.entry.id).sort()).toEqual(['cold-storage', 'exchange']);
    const entries = await h.signer().get('/v1/governance/entries?after=-1');
    const stored = (entries.body as { entries: GovernanceEntry[] }).entries;
    expect(stored).toHaveLength(2);
    expect(stored[1]).toEqual({ entry: signed.entry, signatures: [...signed.signatures, ...cosign] });
    const proposals = await h.as(first).get('/v1/governance/proposals');
    expect((proposals.body as { proposals: { status: string }[] }).proposals.map((p) => p.status)).toEqual([
      'applied',
    ]);
  });

  it('a signature by someone who is not an admin is GOVERNANCE_SIGNATURE_INVALID; nothing is stored', async () => {
    const h = await harness(backend);
    const [first] = admins(h);
    const approver = h.org.approvers[0] as Person;
    const signed = await h.entry('quorum.set', { quorum: 1, delayMs: 0 }, [first, approver]);
    const res = await h.as(first).post('/v1/governance/proposals', signed);
    expect(outcome(res)).toEqual({ status: 403, code: 'GOVERNANCE_SIGNATURE_INVALID' });
    expect(await h.store.proposals.list()).toEqual([]);
    expect((await h.store.governance.head())?.seq).toBe(0);
    expect(await h.events('governance.refused')).toHaveLength(1);

    // A bad co-signature of an open proposal is refused too, and the proposal keeps its signatures.
    const open = await h.entry('quorum.set', { quorum: 3, delayMs: DAY }, [first]);
    const id = governanceDigest(open.entry);
    expect((await h.as(first).post('/v1/governance/proposals', open)).status).toBe(201);
    const bad = signBy(open.entry, [approver]).signatures;
    const res2 = await h.as(first).post(`/v1/governance/proposals/${id}/signatures`, { signatures: bad });
    expect(outcome(res2)).toEqual({ status: 403, code: 'GOVERNANCE_SIGNATURE_INVALID' });
    expect((await h.store.proposals.get(id))?.signatures).toEqual(open.signatures);
  });

  it('governance is proposed by admins only (a freeze also by a watcher): others are NOT_AUTHORIZED', async () => {
    const h = await harness(backend);
    const [first] = admins(h);
    const signed = await h.entry('quorum.set', { quorum: 3, delayMs: DAY }, [first]);
    const res = await h.as(h.org.requester).post('/v1/governance/proposals', signed);
    expect(outcome(res)).toEqual({ status: 403, code: 'NOT_AUTHORIZED' });
    expect(await h.store.proposals.list()).toEqual([]);
    const byWatcher = await h.as(h.org.watcher).post('/v1/governance/proposals', signed);
    expect(outcome(byWatcher)).toEqual({ status: 403, code: 'NOT_AUTHORIZED' });
  });

  it('an entry that does not follow the head is GOVERNANCE_CHAIN_BROKEN; a rival at the same seq is superseded', async () => {
    const h = await harness(backend);
    const [first, second] = admins(h);
    const a = await h.entry('quorum.set', { quorum: 3, delayMs: DAY }, [first]);
    const b = await h.entry('freeze', { reason: 'rival at seq 1' }, [first, second]);
    expect((await h.as(first).post('/v1/governance/proposals', a)).body).toMatchObject({ status: 'open' });
    expect((await h.as(first).post('/v1/governance/proposals', b)).body).toMatchObject({
      status: 'applied',
      seq: 1,
    });
    expect((await h.store.proposals.get(governanceDigest(a.entry)))?.status).toBe('superseded');
    const cosign = signBy(a.entry, [second]).signatures;
    const late = await h.as(second).post(`/v1/governance/proposals/${governanceDigest(a.entry)}/signatures`, {
      signatures: cosign,
    });
    expect(outcome(late)).toEqual({ status: 409, code: 'GOVERNANCE_CHAIN_BROKEN' });
    expect((await h.store.governance.head())?.seq).toBe(1);
  });

  it('THREATS 18: an address added with a full quorum is DESTINATION_NOT_ACTIVE until its delay has passed', async () => {
    const h = await harness(backend);
    await h.govern('address.add', {
      id: 'exchange',
      chain: 'bitcoin:regtest',
      address: EXCHANGE_DEPOSIT,
      label: 'Exchange deposit',
    });
    const book = await h.as(h.org.requester).get('/v1/address-book');
    expect((book.body as { entries: { entry: { id: string }; active: boolean }[] }).entries).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ entry: expect.objectContaining({ id: 'exchange' }), active: false }),
      ]),
    );
    const now = await h.as(h.org.requester).post('/v1/intents', h.intent({ to: EXCHANGE_DEPOSIT }));
    expect(outcome(now)).toEqual({ status: 422, code: 'DESTINATION_NOT_ACTIVE' });
    expect((await h.store.intents.list()).intents).toEqual([]);
    expect(await h.events('intent.refused')).toHaveLength(1);

    h.clock.now += DAY - 1000;
    const almost = await h.as(h.org.requester).post('/v1/intents', h.intent({ to: EXCHANGE_DEPOSIT }));
    expect(outcome(almost)).toEqual({ status: 422, code: 'DESTINATION_NOT_ACTIVE' });
    h.clock.now += 1000;
    const later = await h.as(h.org.requester).post('/v1/intents', h.intent({ to: EXCHANGE_DEPOSIT }));
    expect(later.status).toBe(201);
  });

  it('THREATS 19: a loosened policy (one approver instead of two) binds only after the delay; the old one applies until then', async () => {
    const h = await harness(backend);
    const loose: Policy = defaultPolicy(h.org.wallet.id);
    const rule = loose.rules[0];
    if (rule === undefined) throw new Error('fixture');
    const looser: Policy = { ...loose, rules: [{ ...rule, approvals: [{ m: 1, role: 'approver' }] }] };
    await h.govern('policy.set', { policy: looser });
    const a1 = h.org.approvers[0] as Person;

    const early = await h.as(h.org.requester).post('/v1/intents', h.intent());
    const earlyId = (early.body as { id: string }).id;
    expect(
      (early.body as { decision: { warnings: { code: string }[] } }).decision.warnings.map((w) => w.code),
    ).toContain('POLICY_CHANGE_PENDING');
    const one = await h.as(a1).post(`/v1/intents/${earlyId}/approvals`, h.approval(earlyId as never, a1));
    expect(one.body).toMatchObject({
      status: 'pending',
      decision: { kind: 'pending', missing: [{ need: 2, have: 1 }] },
    });
    expect(h.pipeline.approved).toEqual([]);

    h.clock.now += DAY;
    const later = await h.as(h.org.requester).post('/v1/intents', h.intent());
    const laterId = (later.body as { id: string }).id;
    const enough = await h.as(a1).post(`/v1/intents/${laterId}/approvals`, h.approval(laterId as never, a1));
    expect(enough.body).toMatchObject({ status: 'approved' });
    expect(h.pipeline.approved).toEqual([laterId]);
  });

  it('THREATS 21: a look-alike address proposal carries a warning; an intent to a look-alike is LOOKALIKE_ADDRESS', async () => {
    const h = await harness(backend);
    const [first] = admins(h);
    const signed = await h.entry(
      'address.add',
      {
        id: 'poisoned',
        chain: 'bitcoin:regtest',
        address: LOOKALIKE as never,
        label: 'Looks like cold storage',
      },
      [first],
    );
    const res = await h.as(first).post('/v1/governance/proposals', signed);
    expect(res.status).toBe(201);
    const warnings = (res.body as { warnings: { code: string; message: string }[] }).warnings;
    expect(warnings).toEqual([expect.objectContaining({ code: 'LOOKALIKE_ADDRESS' })]);
    expect(warnings[0]?.message).toContain('Cold storage (cold-storage)');
    const listed = await h.as(first).get('/v1/governance/proposals');
    expect((listed.body as { proposals: { warnings: unknown[] }[] }).proposals[0]?.warnings).toEqual(
      warnings,
    );

    const intent = await h.as(h.org.requester).post('/v1/intents', h.intent({ to: LOOKALIKE as never }));
    expect(outcome(intent)).toEqual({ status: 422, code: 'LOOKALIKE_ADDRESS' });
    expect((await h.store.intents.list()).intents).toEqual([]);
    expect(await h.events('intent.refused')).toHaveLength(1);
    // The genuine address is not a look-alike of itself.
    expect((await h.as(h.org.requester).post('/v1/intents', h.intent({ to: COLD_STORAGE }))).status).toBe(
      201,
    );
  });

  it('follows the head when another coordinator on the same database applies an entry', async () => {
    const h = await harness(backend);
    const other = await h.peer();
    expect((await h.as(h.org.watcher).get('/v1/governance/head')).body).toMatchObject({ seq: 0 });
    const [first, second] = admins(h);
    const signed = await h.entry('freeze', { reason: 'applied elsewhere' }, [first]);
    const res = await h.as(first).on({ app: other.app }).post('/v1/governance/proposals', signed);
    expect(res.body).toMatchObject({ status: 'applied', seq: 1 });
    const state = await h.as(second).get('/v1/governance/state');
    expect(state.body).toMatchObject({ seq: 1, frozen: { seq: 1, reason: 'applied elsewhere' } });
  });

  it('a governance row written behind its back (not signed by admins) makes the coordinator refuse to serve', async () => {
    const h = await harness(backend);
    const approver = h.org.approvers[0] as Person;
    // An attacker with database access lowers the quorum, "signed" by an approver (THREATS 9).
    const forged = await h.entry('quorum.set', { quorum: 1, delayMs: 0 }, [approver]);
    await h.fresh.db.db
      .insertInto('governance')
      .values({
        seq: 1,
        digest: governanceDigest(forged.entry),
        kind: forged.entry.kind,
        body: canonicalize(forged),
        received_at: h.clock.now,
      })
      .execute();
    const res = await h.as(h.org.requester).post('/v1/intents', h.intent());
    expect(outcome(res)).toEqual({ status: 503, code: 'UNAVAILABLE' });
    expect((res.body as { error: { message: string } }).error.message).toContain(
      'GOVERNANCE_SIGNATURE_INVALID',
    );
    expect((await h.store.intents.list()).intents).toEqual([]);
    expect((await send(h.target, unsigned('GET', '/v1/health'))).status).toBe(200);
    expect(outcome(await send(h.target, unsigned('GET', '/v1/ready')))).toEqual({
      status: 503,
      code: 'UNAVAILABLE',
    });
  });

  it('an empty coordinator takes its genesis over HTTP once, from an admin the genesis lists', async () => {
    const h = await harness(backend);
    const fresh = await backend.fresh({ now: () => h.clock.now });
    const pipeline = new InertPipeline();
    const c = await createCoordinator({
      store: fresh.store,
      pipeline,
      notifier: new RecordingNotifier(),
      clock: () => h.clock.now,
      limits: TEST_LIMITS,
    });
    try {
      const target = { app: c.app };
      expect(outcome(await send(target, unsigned('GET', '/v1/ready')))).toEqual({
        status: 503,
        code: 'UNAVAILABLE',
      });
      const [admin] = admins(h);
      const approver = h.org.approvers[0] as Person;
      const asApprover = h.as(approver).on(target);
      expect(outcome(await asApprover.post('/v1/governance/genesis', h.org.genesis))).toEqual({
        status: 403,
        code: 'NOT_AUTHORIZED',
      });
      expect(await fresh.store.governance.head()).toBeNull();
      const stored = await h.as(admin).on(target).post('/v1/governance/genesis', h.org.genesis);
      expect(stored.status).toBe(201);
      expect(stored.body).toEqual({ status: 'applied', seq: 0, org: h.org.orgId });
      expect((await fresh.store.governance.head())?.digest).toBe(h.org.orgId);
      const again = await h.as(admin).on(target).post('/v1/governance/genesis', h.org.genesis);
      expect(outcome(again)).toEqual({ status: 409, code: 'CONFLICT' });
      expect((await send(target, unsigned('GET', '/v1/ready'))).body).toEqual({
        status: 'ready',
        governanceSeq: 0,
        chain: { ok: true, height: 101 },
      });
      // Once an organization is stored the route is closed to everyone, signed or not.
      const anonymous = new Client(
        target,
        { keyId: 'member:x/y', secretKey: new Uint8Array(32) },
        () => h.clock.now,
      );
      expect(outcome(await anonymous.post('/v1/governance/genesis', h.org.genesis))).toEqual({
        status: 409,
        code: 'CONFLICT',
      });
    } finally {
      await c.close();
    }
  });
});
