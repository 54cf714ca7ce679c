/**
 * How the approver console authenticates (issue 10; docs/api.md
 * "Authentication"): a change is an object its passkey signed, sent with
 * `Custos-Auth: signed-object` and no HTTP signature; reads are signed by a
 * short-lived Ed25519 session key that one passkey assertion certified, and
 * that key is refused for anything but a read. Every refusal is audited.
 */
import { randomBytes } from 'node:crypto';
import { scriptToAddress } from '@custos/bitcoin';
import {
  type Address,
  type Amount,
  type Approval,
  approvalDigest,
  type Base64url,
  buildEntry,
  createSoftwarePasskeyAssertion,
  type Digest,
  digestOf,
  fromHex,
  generateEd25519,
  generateSoftwarePasskey,
  governanceDigest,
  type Hex,
  toBase64url,
  toHex,
  utf8,
} from '@custos/core';
import { type Person, signBy } from '@custos/test-support/org';
import { describe, expect, it } from 'vitest';
import { SESSION_MAX_MS } from '../../src/session.js';
import { useBackends } from '../db/backends.js';
import { Client, send, unsigned } from './support/client.js';
import { type Harness, HOUR, MINUTE, outcome, useHarness } from './support/harness.js';

const { backends } = useBackends();
const harness = useHarness();
const RP = 'custos.example';
const ORIGIN = 'https://custos.example';

interface Passkey {
  readonly device: string;
  sign(digest: string): {
    kind: 'webauthn';
    authenticatorData: string;
    clientDataJSON: string;
    signature: string;
  };
}

/** Registers a software passkey for `p` through governance and waits out its delay. */
async function addPasskey(h: Harness, p: Person): Promise<Passkey> {
  const key = generateSoftwarePasskey();
  const device = `${p.id}-passkey`;
  await h.govern('device.add', {
    member: p.id,
    device: {
      id: device,
      kind: 'webauthn',
      credentialId: toBase64url(randomBytes(16)) as Base64url,
      publicKey: toHex(key.publicKey) as Hex,
      rpId: RP,
      origin: ORIGIN,
    },
  });
  h.clock.now += h.org.delayMs;
  let counter = 0;
  return {
    device,
    sign(digest) {
      counter += 1;
      const a = createSoftwarePasskeyAssertion({
        secretKey: key.secretKey,
        rpId: RP,
        origin: ORIGIN,
        challenge: fromHex(digest),
        counter,
      });
      return {
        kind: 'webauthn',
        authenticatorData: toBase64url(a.authenticatorData),
        clientDataJSON: toBase64url(a.clientDataJSON),
        signature: toBase64url(a.signature),
      };
    },
  };
}

function passkeyApproval(
  h: Harness,
  id: Digest,
  p: Person,
  pk: Passkey,
  decision: 'approve' | 'reject' = 'approve',
) {
  const approval: Approval = {
    v: 1,
    intent: id,
    approver: p.id,
    device: pk.device,
    decision,
    at: h.clock.now - 500,
    expiresAt: h.clock.now + HOUR,
  };
  return { approval, signature: pk.sign(approvalDigest(approval)) };
}

/** A session: an Ed25519 key certified by the passkey; a client signing as session:<member>/<device>. */
async function session(h: Harness, p: Person, pk: Passkey, o: { lifetime?: number; issuedAt?: number } = {}) {
  const key = generateEd25519();
  const issuedAt = o.issuedAt ?? h.clock.now;
  const body = {
    v: 1,
    org: (await h.state()).org,
    member: p.id,
    device: pk.device,
    key: key.publicKey,
    issuedAt,
    expiresAt: issuedAt + (o.lifetime ?? 5 * MINUTE),
  };
  const cert = { session: body, signature: pk.sign(digestOf('console-session', 1, body)) };
  const header = toBase64url(utf8(JSON.stringify(cert)));
  const client = new Client(
    h.target,
    { keyId: `session:${p.id}/${pk.device}`, secretKey: key.secretKey },
    () => h.clock.now,
  );
  return { client, headers: { 'custos-session': header } };
}

async function pendingIntent(h: Harness): Promise<Digest> {
  const res = await h.as(h.org.requester).post('/v1/intents', h.intent());
  expect(res.status).toBe(201);
  return (res.body as { id: Digest }).id;
}

const OBJECT = { 'custos-auth': 'signed-object' };

describe.each(backends)('the console authentication on $name', (backend) => {
  it('an approval signed by a passkey is accepted with no HTTP signature, as that device', async () => {
    const h = await harness(backend);
    const a1 = h.org.approvers[0]!;
    const pk = await addPasskey(h, a1);
    const id = await pendingIntent(h);
    const res = await send(
      h.target,
      unsigned('POST', `/v1/intents/${id}/approvals`, {
        body: passkeyApproval(h, id, a1, pk),
        headers: OBJECT,
      }),
    );
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'pending', decision: { missing: [{ need: 2, have: 1 }] } });
    expect(await h.store.approvals.of(id)).toHaveLength(1);
    expect(await h.events('approval.added')).toEqual([
      expect.objectContaining({ actor: `member:${a1.id}/${pk.device}`, subject: id }),
    ]);
  });

  it('a passkey-signed object whose assertion does not verify is BAD_SIGNATURE before anything is decided; audited', async () => {
    const h = await harness(backend);
    const [a1, a2] = h.org.approvers as [Person, Person];
    const pk1 = await addPasskey(h, a1);
    const id = await pendingIntent(h);
    const signed = passkeyApproval(h, id, a1, pk1);
    // The same approval with another member's assertion pasted in; then an approval claiming an Ed25519 device.
    const pk2 = await addPasskey(h, a2);
    const swapped = { ...signed, signature: pk2.sign(approvalDigest(signed.approval)) };
    const forged = await send(
      h.target,
      unsigned('POST', `/v1/intents/${id}/approvals`, { body: swapped, headers: OBJECT }),
    );
    expect(outcome(forged)).toEqual({ status: 401, code: 'BAD_SIGNATURE' });
    const ed = h.approval(id, a1);
    const notPasskey = await send(
      h.target,
      unsigned('POST', `/v1/intents/${id}/approvals`, { body: ed, headers: OBJECT }),
    );
    expect(outcome(notPasskey)).toEqual({ status: 401, code: 'BAD_SIGNATURE' });
    expect(await h.store.approvals.of(id)).toEqual([]);
    const refused = (await h.events('request.refused')).map((e) => `${e.actor} ${e.subject}`);
    expect(refused).toEqual([
      `member:${a1.id}/${pk1.device} BAD_SIGNATURE POST /v1/intents/${id}/approvals`,
      `member:${a1.id}/${a1.device.id} BAD_SIGNATURE POST /v1/intents/${id}/approvals`,
    ]);
    // The forged assertion is also a critical alert to the webhooks, out of band (issue 10): a console
    // or relay rewriting what a member signed. The Ed25519 claim is a malformed request, not that.
    expect(h.notifier.of('alert')).toEqual([
      expect.objectContaining({
        subject: `member:${a1.id}/${pk1.device}`,
        code: 'BAD_SIGNATURE',
        severity: 'critical',
      }),
    ]);
    // Without the header the route still wants an HTTP signature.
    const plain = await send(h.target, unsigned('POST', `/v1/intents/${id}/approvals`, { body: signed }));
    expect(outcome(plain)).toEqual({ status: 401, code: 'SIGNATURE_REQUIRED' });
  });

  it('a session key certified by the passkey reads, and is refused NOT_AUTHORIZED for a change; audited', async () => {
    const h = await harness(backend);
    const a1 = h.org.approvers[0]!;
    const pk = await addPasskey(h, a1);
    const id = await pendingIntent(h);
    const s = await session(h, a1, pk);
    const read = await s.client.get(`/v1/intents/${id}`, { headers: s.headers });
    expect(read.status).toBe(200);
    expect((await s.client.get('/v1/governance/entries', { headers: s.headers })).status).toBe(200);
    const write = await s.client.post(`/v1/intents/${id}/approvals`, passkeyApproval(h, id, a1, pk), {
      headers: s.headers,
    });
    expect(outcome(write)).toEqual({ status: 403, code: 'NOT_AUTHORIZED' });
    expect(await h.store.approvals.of(id)).toEqual([]);
    expect((await h.events('request.refused')).map((e) => `${e.actor} ${e.subject}`)).toEqual([
      `session:${a1.id}/${pk.device} NOT_AUTHORIZED POST /v1/intents/${id}/approvals`,
    ]);
  });

  it('a session certificate that expired, lasts too long, is missing or is for another device is refused', async () => {
    const h = await harness(backend);
    const [a1, a2] = h.org.approvers as [Person, Person];
    const pk = await addPasskey(h, a1);
    const pk2 = await addPasskey(h, a2);
    const id = await pendingIntent(h);
    const expired = await session(h, a1, pk, { issuedAt: h.clock.now - 6 * MINUTE });
    expect(outcome(await expired.client.get(`/v1/intents/${id}`, { headers: expired.headers }))).toEqual({
      status: 401,
      code: 'BAD_SIGNATURE',
    });
    const long = await session(h, a1, pk, { lifetime: SESSION_MAX_MS + 1 });
    expect(outcome(await long.client.get(`/v1/intents/${id}`, { headers: long.headers }))).toEqual({
      status: 401,
      code: 'BAD_SIGNATURE',
    });
    const ok = await session(h, a1, pk);
    expect(outcome(await ok.client.get(`/v1/intents/${id}`))).toEqual({
      status: 401,
      code: 'SIGNATURE_REQUIRED',
    });
    // a2's certificate presented for a1's key id.
    const other = await session(h, a2, pk2);
    expect(outcome(await ok.client.get(`/v1/intents/${id}`, { headers: other.headers }))).toEqual({
      status: 401,
      code: 'BAD_SIGNATURE',
    });
    // An Ed25519 device cannot certify a session.
    const ed = await session(h, a1, { device: a1.device.id, sign: pk.sign });
    expect(outcome(await ed.client.get(`/v1/intents/${id}`, { headers: ed.headers }))).toEqual({
      status: 401,
      code: 'BAD_SIGNATURE',
    });
    expect((await h.events('request.refused')).length).toBe(5);
  });

  it("THREATS 18: a hostile console has an admin's passkey propose an attacker's address: it waits for the quorum, every admin's webhook hears of it, and withdrawing to it is refused until the delay has passed", async () => {
    const h = await harness(backend);
    const [admin1, admin2] = h.org.admins as [Person, Person];
    const pk = await addPasskey(h, admin1);
    const attacker = scriptToAddress(
      new Uint8Array([0x00, 0x14, ...new Uint8Array(20).fill(0xa7)]),
      'regtest',
    )!;
    const entry = buildEntry(
      await h.state(),
      'address.add',
      { id: 'attacker', chain: 'bitcoin:regtest', address: attacker as Address, label: 'Cold storage 2' },
      h.clock.now,
    );
    const signed = {
      entry,
      signatures: [{ member: admin1.id, device: pk.device, signature: pk.sign(governanceDigest(entry)) }],
    };
    const proposed = await send(
      h.target,
      unsigned('POST', '/v1/governance/proposals', { body: signed, headers: OBJECT }),
    );
    expect(proposed.status).toBe(201);
    expect(proposed.body).toMatchObject({ status: 'open', have: 1, need: 2 });
    // Out of band: the admins' webhooks are told, with the change in full and the passkey that signed it.
    expect(h.notifier.of('governance.proposed')).toContainEqual(
      expect.objectContaining({
        kind: 'address.add',
        by: `member:${admin1.id}/${pk.device}`,
        body: entry.body,
      }),
    );
    expect(await h.events('governance.proposed')).toContainEqual(
      expect.objectContaining({ actor: `member:${admin1.id}/${pk.device}` }),
    );
    const toAttacker = () =>
      h
        .as(h.org.requester)
        .post('/v1/intents', h.intent({ to: attacker as Address, amount: '1000' as Amount }));
    expect(outcome(await toAttacker())).toEqual({ status: 422, code: 'DESTINATION_NOT_ALLOWED' });
    // Even once a second admin co-signs it, the address pays nothing before the delay.
    const id = (proposed.body as { id: string }).id;
    const cosign = signBy(entry, [admin2]).signatures;
    const applied = await h
      .as(admin2)
      .post(`/v1/governance/proposals/${id}/signatures`, { signatures: cosign });
    expect(applied.body).toMatchObject({ status: 'applied' });
    expect(outcome(await toAttacker())).toEqual({ status: 422, code: 'DESTINATION_NOT_ACTIVE' });
    expect((await h.events('intent.refused')).length).toBe(2);
    expect(h.pipeline.approved).toEqual([]);
  });

  it("an admin's passkey co-signs an open proposal by its id with no HTTP signature; an assertion over another digest is BAD_SIGNATURE, audited", async () => {
    const h = await harness(backend);
    const [admin1, admin2] = h.org.admins as [Person, Person];
    const pk1 = await addPasskey(h, admin1);
    const pk2 = await addPasskey(h, admin2);
    const entry = buildEntry(
      await h.state(),
      'address.add',
      {
        id: 'treasury',
        chain: 'bitcoin:regtest',
        address: scriptToAddress(
          new Uint8Array([0x00, 0x14, ...new Uint8Array(20).fill(0x5e)]),
          'regtest',
        )! as Address,
        label: 'Treasury',
      },
      h.clock.now,
    );
    const id = governanceDigest(entry);
    const proposed = await send(
      h.target,
      unsigned('POST', '/v1/governance/proposals', {
        body: { entry, signatures: [{ member: admin1.id, device: pk1.device, signature: pk1.sign(id) }] },
        headers: OBJECT,
      }),
    );
    expect(proposed.body).toMatchObject({ status: 'open', id, have: 1, need: 2 });
    const cosign = (digest: string) =>
      send(
        h.target,
        unsigned('POST', `/v1/governance/proposals/${id}/signatures`, {
          body: { signatures: [{ member: admin2.id, device: pk2.device, signature: pk2.sign(digest) }] },
          headers: OBJECT,
        }),
      );
    expect(outcome(await cosign('ab'.repeat(32)))).toEqual({ status: 401, code: 'BAD_SIGNATURE' });
    expect(await h.events('request.refused')).toContainEqual(
      expect.objectContaining({ actor: `member:${admin2.id}/${pk2.device}` }),
    );
    const applied = await cosign(id);
    expect(applied.status).toBe(200);
    expect(applied.body).toMatchObject({ status: 'applied', id });
    expect(await h.events('governance.applied')).toContainEqual(
      expect.objectContaining({ actor: `member:${admin2.id}/${pk2.device}`, digest: id }),
    );
  });
});
