/**
 * Approvals through the HTTP API on SQLite and PostgreSQL (THREATS 11-13,
 * 15): who counts, once; what is refused and audited; and the hand-over to
 * the signing pipeline, exactly once per approved intent, also when the
 * approvals arrive at the same moment at two coordinators sharing one
 * database.
 *
 * The signing path after "approved" is the pipeline's and is covered by its
 * own tests; here an InertPipeline records the hand-over.
 */
import {
  type Approval,
  approvalDigest,
  type Base64url,
  createSoftwarePasskeyAssertion,
  type Digest,
  fromHex,
  generateSoftwarePasskey,
  type Hex,
  toBase64url,
  toHex,
} from '@custos/core';
import { defaultPolicy, makeDevice, type Person } from '@custos/test-support/org';
import { describe, expect, it } from 'vitest';
import { useBackends } from '../db/backends.js';
import { type Harness, HOUR, MINUTE, outcome, useHarness } from './support/harness.js';

const { backends } = useBackends();
const harness = useHarness();

function people(h: Harness): { a1: Person; a2: Person; a3: Person } {
  const [a1, a2, a3] = h.org.approvers;
  if (a1 === undefined || a2 === undefined || a3 === undefined)
    throw new Error('the fixture has three approvers');
  return { a1, a2, a3 };
}

async function pendingIntent(h: Harness): Promise<Digest> {
  const res = await h.as(h.org.requester).post('/v1/intents', h.intent());
  expect(res.status).toBe(201);
  return (res.body as { id: Digest }).id;
}

describe.each(backends)('approvals on $name', (backend) => {
  it('happy path: first approval leaves it pending, the second approves it and hands it to the pipeline once', async () => {
    const h = await harness(backend);
    const { a1, a2 } = people(h);
    const id = await pendingIntent(h);
    const first = await h.as(a1).post(`/v1/intents/${id}/approvals`, h.approval(id, a1));
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({
      status: 'pending',
      decision: { kind: 'pending', missing: [{ need: 2, have: 1 }] },
    });
    expect(h.pipeline.approved).toEqual([]);
    const second = await h.as(a2).post(`/v1/intents/${id}/approvals`, h.approval(id, a2));
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({
      status: 'approved',
      decision: { kind: 'allow', approvers: [a1.id, a2.id] },
    });
    expect((second.body as { approvals: unknown[] }).approvals).toHaveLength(2);
    expect(h.pipeline.approved).toEqual([id]);
    expect((await h.events('approval.added')).map((e) => e.actor)).toEqual([
      `member:${a1.id}/${a1.device.id}`,
      `member:${a2.id}/${a2.device.id}`,
    ]);
    expect(await h.events('intent.approved')).toEqual([expect.objectContaining({ subject: id })]);
    // The same approval again (a client retrying) is answered, not stored twice.
    const retry = await h
      .as(a1)
      .post(`/v1/intents/${id}/approvals`, h.approval(id, a1, { at: h.clock.now - 500 }));
    expect(retry.status).toBe(200);
    expect(await h.store.approvals.of(id)).toHaveLength(2);
    // A third approver after the fact changes nothing.
    const { a3 } = people(h);
    const late = await h.as(a3).post(`/v1/intents/${id}/approvals`, h.approval(id, a3));
    expect(outcome(late)).toEqual({ status: 409, code: 'CONFLICT' });
    expect(h.pipeline.approved).toEqual([id]);
  });

  it('approvals arriving at once at two coordinators on one database approve once and hand over once', async () => {
    const h = await harness(backend);
    const { a1, a2, a3 } = people(h);
    const other = await h.peer();
    const ids = await Promise.all(Array.from({ length: 4 }, () => pendingIntent(h)));
    const answers = await Promise.all(
      ids.flatMap((id, n) =>
        [a1, a2, a3].map((p, k) =>
          h
            .as(p)
            .on((n + k) % 2 === 0 ? h.target : { app: other.app })
            .post(`/v1/intents/${id}/approvals`, h.approval(id, p)),
        ),
      ),
    );
    // Every approval is either counted (200) or arrives after the intent was approved (409).
    for (const a of answers) expect([200, 409]).toContain(a.status);
    for (const id of ids) expect((await h.store.intents.get(id))?.status).toBe('approved');
    expect([...h.pipeline.approved].sort()).toEqual([...ids].sort());
    expect(await h.events('intent.approved')).toHaveLength(ids.length);
  });

  it('THREATS 11: the requester approving its own intent is refused SELF_APPROVAL and not counted', async () => {
    const h = await harness(backend);
    const id = await pendingIntent(h);
    const own = h.approval(id, h.org.requester);
    const res = await h.as(h.org.requester).post(`/v1/intents/${id}/approvals`, own);
    expect(outcome(res)).toEqual({ status: 403, code: 'SELF_APPROVAL' });
    expect(await h.store.approvals.of(id)).toEqual([]);
    expect((await h.store.intents.get(id))?.status).toBe('pending');
    const refused = await h.events('approval.refused');
    expect(refused).toEqual([
      expect.objectContaining({
        subject: id,
        actor: `member:${h.org.requester.id}/${h.org.requester.device.id}`,
      }),
    ]);
  });

  it('issue 8, item 1: a device added by governance approves nothing before the delay (DEVICE_NOT_ACTIVE)', async () => {
    const h = await harness(backend);
    const { a1 } = people(h);
    const device2 = makeDevice('second-device', a1.id, `${a1.id}-d2`);
    await h.govern('device.add', {
      member: a1.id,
      device: { id: device2.id, kind: 'ed25519', publicKey: device2.publicKey },
    });
    const id = await pendingIntent(h);
    const res = await h
      .as(a1, device2)
      .post(`/v1/intents/${id}/approvals`, h.approval(id, a1, { key: device2 }));
    expect(outcome(res)).toEqual({ status: 403, code: 'DEVICE_NOT_ACTIVE' });
    expect(await h.store.approvals.of(id)).toEqual([]);
    expect((await h.store.intents.get(id))?.status).toBe('pending');
    const refused = await h.events('request.refused');
    expect(refused).toContainEqual(expect.objectContaining({ actor: `member:${a1.id}/${device2.id}` }));
    // After the delay the same device approves (a new intent: the first one has expired meanwhile).
    h.clock.now += h.org.delayMs;
    const id2 = await pendingIntent(h);
    const later = await h
      .as(a1, device2)
      .post(`/v1/intents/${id2}/approvals`, h.approval(id2, a1, { key: device2 }));
    expect(later.status).toBe(200);
    expect(await h.store.approvals.of(id2)).toHaveLength(1);
  });

  it('THREATS 12: one approver with two devices approving twice counts once', async () => {
    const h = await harness(backend);
    const { a1, a2 } = people(h);
    const device2 = makeDevice('second-device', a1.id, `${a1.id}-d2`);
    await h.govern('device.add', {
      member: a1.id,
      device: { id: device2.id, kind: 'ed25519', publicKey: device2.publicKey },
    });
    // A device added by governance counts only once the delay has passed (issue 8, item 1).
    h.clock.now += h.org.delayMs;
    const id = await pendingIntent(h);
    expect((await h.as(a1).post(`/v1/intents/${id}/approvals`, h.approval(id, a1))).status).toBe(200);
    const twice = await h
      .as(a1, device2)
      .post(`/v1/intents/${id}/approvals`, h.approval(id, a1, { key: device2 }));
    expect(twice.status).toBe(200);
    expect(twice.body).toMatchObject({
      status: 'pending',
      decision: { kind: 'pending', missing: [{ need: 2, have: 1 }] },
    });
    const checks = (twice.body as { decision: { approvalChecks: { code?: string }[] } }).decision
      .approvalChecks;
    expect(checks.map((c) => c.code)).toContain('DUPLICATE_APPROVER');
    expect(h.pipeline.approved).toEqual([]);
    // A second person completes the quorum.
    const done = await h.as(a2).post(`/v1/intents/${id}/approvals`, h.approval(id, a2));
    expect(done.body).toMatchObject({ status: 'approved' });
    expect(h.pipeline.approved).toEqual([id]);
  });

  it("a passkey's approval, carrying its own WebAuthn assertion, is sent with another device of the approver", async () => {
    const h = await harness(backend);
    const { a1, a2 } = people(h);
    const passkey = generateSoftwarePasskey();
    const origin = 'https://custos.example';
    await h.govern('device.add', {
      member: a1.id,
      device: {
        id: `${a1.id}-passkey`,
        kind: 'webauthn',
        credentialId: toBase64url(new Uint8Array(16).fill(9)) as Base64url,
        publicKey: toHex(passkey.publicKey) as Hex,
        rpId: 'custos.example',
        origin,
      },
    });
    h.clock.now += h.org.delayMs;
    const id = await pendingIntent(h);
    const approval: Approval = {
      v: 1,
      intent: id,
      approver: a1.id,
      device: `${a1.id}-passkey`,
      decision: 'approve',
      at: h.clock.now - 500,
      expiresAt: h.clock.now + HOUR,
    };
    const assertion = createSoftwarePasskeyAssertion({
      secretKey: passkey.secretKey,
      rpId: 'custos.example',
      origin,
      challenge: fromHex(approvalDigest(approval)),
      counter: 1,
    });
    const signed = {
      approval,
      signature: {
        kind: 'webauthn' as const,
        authenticatorData: toBase64url(assertion.authenticatorData),
        clientDataJSON: toBase64url(assertion.clientDataJSON),
        signature: toBase64url(assertion.signature),
      },
    };
    // Not from another member's device...
    expect(outcome(await h.as(a2).post(`/v1/intents/${id}/approvals`, signed))).toEqual({
      status: 403,
      code: 'NOT_AUTHORIZED',
    });
    // ...but from the approver's own Ed25519 device it counts.
    const res = await h.as(a1).post(`/v1/intents/${id}/approvals`, signed);
    expect(res.body).toMatchObject({ status: 'pending', decision: { missing: [{ need: 2, have: 1 }] } });
    expect(await h.store.approvals.of(id)).toHaveLength(1);
  });

  it('THREATS 13: an approval of intent A posted to intent B is APPROVAL_SIGNATURE_INVALID; nothing stored', async () => {
    const h = await harness(backend);
    const { a1 } = people(h);
    const a = await pendingIntent(h);
    const b = await pendingIntent(h);
    const ofA = h.approval(a, a1);
    const res = await h.as(a1).post(`/v1/intents/${b}/approvals`, ofA);
    expect(outcome(res)).toEqual({ status: 403, code: 'APPROVAL_SIGNATURE_INVALID' });
    expect(await h.store.approvals.of(b)).toEqual([]);
    expect(await h.store.approvals.of(a)).toEqual([]);
    expect(await h.events('approval.refused')).toEqual([expect.objectContaining({ subject: b })]);
  });

  it('an approval whose signature does not verify is APPROVAL_SIGNATURE_INVALID', async () => {
    const h = await harness(backend);
    const { a1 } = people(h);
    const id = await pendingIntent(h);
    const signed = h.approval(id, a1);
    const forged = {
      ...signed,
      approval: { ...signed.approval, expiresAt: signed.approval.expiresAt + HOUR },
    };
    expect(outcome(await h.as(a1).post(`/v1/intents/${id}/approvals`, forged))).toEqual({
      status: 403,
      code: 'APPROVAL_SIGNATURE_INVALID',
    });
    expect(await h.store.approvals.of(id)).toEqual([]);
  });

  it('THREATS 15: an expired approval is refused EXPIRED and not stored', async () => {
    const h = await harness(backend);
    const { a1 } = people(h);
    const id = await pendingIntent(h);
    const stale = h.approval(id, a1, { at: h.clock.now - 2 * HOUR, expiresAt: h.clock.now - HOUR });
    expect(outcome(await h.as(a1).post(`/v1/intents/${id}/approvals`, stale))).toEqual({
      status: 422,
      code: 'EXPIRED',
    });
    expect(await h.store.approvals.of(id)).toEqual([]);
    expect(await h.events('approval.refused')).toHaveLength(1);
  });

  it('THREATS 15: an approval of an expired intent is EXPIRED, and the intent becomes expired', async () => {
    const h = await harness(backend);
    const { a1 } = people(h);
    const id = await pendingIntent(h);
    h.clock.now += HOUR + 1;
    const res = await h.as(a1).post(`/v1/intents/${id}/approvals`, h.approval(id, a1));
    expect(outcome(res)).toEqual({ status: 422, code: 'EXPIRED' });
    expect(await h.store.intents.get(id)).toMatchObject({ status: 'expired', statusCode: 'EXPIRED' });
    expect(await h.events('intent.expired')).toHaveLength(1);
    expect(h.notifier.of('intent.refused')).toEqual([expect.objectContaining({ id, code: 'EXPIRED' })]);
  });

  it('the sweep expires pending intents nobody touches', async () => {
    const h = await harness(backend);
    const id = await pendingIntent(h);
    expect(await h.coordinator.sweep()).toEqual({ approved: 0, rejected: 0, expired: 0 });
    h.clock.now += HOUR + 1;
    expect(await h.coordinator.sweep()).toEqual({ approved: 0, rejected: 0, expired: 1 });
    expect((await h.store.intents.get(id))?.status).toBe('expired');
  });

  it('with a cancel window, the quorum waits it out; the sweep then approves and hands over once', async () => {
    const base = defaultPolicy();
    const rule = base.rules[0];
    if (rule === undefined) throw new Error('fixture');
    const h = await harness(backend, {
      org: { policy: { ...base, rules: [{ ...rule, cancelWindowMs: 10 * MINUTE }] } },
    });
    const { a1, a2 } = people(h);
    const id = await pendingIntent(h);
    await h.as(a1).post(`/v1/intents/${id}/approvals`, h.approval(id, a1));
    const both = await h.as(a2).post(`/v1/intents/${id}/approvals`, h.approval(id, a2));
    expect(both.body).toMatchObject({ status: 'pending', decision: { kind: 'pending', missing: [] } });
    const endsAt = (both.body as { decision: { cancelWindowEndsAt: number } }).decision.cancelWindowEndsAt;
    expect(endsAt).toBeGreaterThan(h.clock.now);
    expect(await h.coordinator.sweep()).toEqual({ approved: 0, rejected: 0, expired: 0 });
    h.clock.now = endsAt;
    const [first, second] = await Promise.all([h.coordinator.sweep(), (await h.peer()).sweep()]);
    expect(first.approved + second.approved).toBe(1);
    expect((await h.store.intents.get(id))?.status).toBe('approved');
    expect(h.pipeline.approved).toEqual([id]);
  });

  it('a counted reject rejects the intent; later approvals are refused INTENT_REJECTED', async () => {
    const h = await harness(backend);
    const { a1, a2 } = people(h);
    const id = await pendingIntent(h);
    const res = await h
      .as(a1)
      .post(`/v1/intents/${id}/approvals`, h.approval(id, a1, { decision: 'reject' }));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'rejected', statusCode: 'INTENT_REJECTED', decision: null });
    expect(await h.events('intent.rejected')).toHaveLength(1);
    expect(h.notifier.of('intent.refused')).toEqual([
      expect.objectContaining({ id, code: 'INTENT_REJECTED' }),
    ]);
    const after = await h.as(a2).post(`/v1/intents/${id}/approvals`, h.approval(id, a2));
    expect(outcome(after)).toEqual({ status: 422, code: 'INTENT_REJECTED' });
    expect(h.pipeline.approved).toEqual([]);
  });

  it('an approval by a member outside every approval group is refused NOT_AUTHORIZED and not stored', async () => {
    const h = await harness(backend);
    const id = await pendingIntent(h);
    const res = await h.as(h.org.watcher).post(`/v1/intents/${id}/approvals`, h.approval(id, h.org.watcher));
    expect(outcome(res)).toEqual({ status: 403, code: 'NOT_AUTHORIZED' });
    expect(await h.store.approvals.of(id)).toEqual([]);
  });

  it("an approval sent with another member's request key is refused NOT_AUTHORIZED", async () => {
    const h = await harness(backend);
    const { a1, a2 } = people(h);
    const id = await pendingIntent(h);
    const res = await h.as(a2).post(`/v1/intents/${id}/approvals`, h.approval(id, a1));
    expect(outcome(res)).toEqual({ status: 403, code: 'NOT_AUTHORIZED' });
    expect(await h.store.approvals.of(id)).toEqual([]);
    expect(await h.events('request.refused')).toHaveLength(1);
  });

  it('an approval of an unknown intent is 404 NOT_FOUND', async () => {
    const h = await harness(backend);
    const { a1 } = people(h);
    const id = '1'.repeat(64) as Digest;
    expect(outcome(await h.as(a1).post(`/v1/intents/${id}/approvals`, h.approval(id, a1)))).toEqual({
      status: 404,
      code: 'NOT_FOUND',
    });
  });
});
