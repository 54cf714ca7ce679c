/**
 * docs/architecture.md "The withdrawal flow" (every step, refusals included, is an audit entry)
 * through the HTTP API on SQLite and PostgreSQL: a request signed by a real
 * device and refused while its body or query is decoded (duplicate keys,
 * non-NFC text, trailing data, unknown fields...) or by the rules is answered
 * with its code, stores nothing, and leaves one `request.refused` entry with
 * the device as actor, `<code> <method> <path>` as subject and the sha256 of
 * the body as digest (never the body). Unsigned garbage stays bounded by the
 * refusal budget, so nobody without a key can grow the log at will.
 */
import { createHash } from 'node:crypto';
import type { Digest } from '@custos/core';
import { describe, expect, it } from 'vitest';
import { useBackends } from '../db/backends.js';
import { send, unsigned } from './support/client.js';
import { type Harness, HOUR, outcome, useHarness } from './support/harness.js';

const { backends } = useBackends();
const harness = useHarness();

function sha256(body: string | Buffer): string {
  return createHash('sha256').update(body).digest('hex');
}

function keyOf(h: Harness, who = h.org.requester): string {
  return `member:${who.id}/${who.device.id}`;
}

async function expectNothingStored(h: Harness): Promise<void> {
  expect((await h.store.intents.list()).intents).toEqual([]);
  expect(await h.store.proposals.list()).toEqual([]);
  expect((await h.store.governance.head())?.seq).toBe(0);
  expect(h.pipeline.approved).toEqual([]);
  expect(await h.events('intent.created')).toEqual([]);
}

describe.each(backends)('refusals of authenticated requests on $name', (backend) => {
  it('THREATS 31: decoding refusals of a signed body: each code answered, nothing stored, each audited with its code and the body digest', async () => {
    const h = await harness(backend);
    const signed = h.intent();
    const valid = JSON.stringify(signed);
    const cases: { name: string; url: string; body: string; status: number; code: string }[] = [
      {
        name: 'duplicate keys',
        url: '/v1/intents',
        body: `{"signature":"00",${valid.slice(1)}`,
        status: 400,
        code: 'DUPLICATE_KEY',
      },
      {
        name: 'non-NFC text',
        url: '/v1/intents',
        body: JSON.stringify({ ...signed, intent: { ...signed.intent, memo: 'Cafe\u0301 secret memo' } }),
        status: 400,
        code: 'NON_NFC_STRING',
      },
      { name: 'trailing data', url: '/v1/intents', body: `${valid} {}`, status: 400, code: 'TRAILING_DATA' },
      {
        name: 'an unknown field',
        url: '/v1/intents',
        body: JSON.stringify({ ...signed, admin: true }),
        status: 400,
        code: 'UNKNOWN_FIELD',
      },
      {
        name: 'a wrong type in an approval',
        url: `/v1/intents/${'a'.repeat(64)}/approvals`,
        body: '[]',
        status: 400,
        code: 'WRONG_TYPE',
      },
      {
        name: 'an unknown field in a proposal',
        url: '/v1/governance/proposals',
        body: '{"entry":{},"signatures":[],"extra":1}',
        status: 400,
        code: 'UNKNOWN_FIELD',
      },
    ];
    const who = h.as(h.org.requester);
    for (const x of cases) {
      const res = await who.send('POST', x.url, { body: x.body });
      expect({ name: x.name, ...outcome(res) }).toEqual({ name: x.name, status: x.status, code: x.code });
    }
    await expectNothingStored(h);
    const refused = await h.events('request.refused');
    expect(refused.map((e) => ({ actor: e.actor, subject: e.subject, digest: e.digest }))).toEqual(
      cases.map((x) => ({ actor: keyOf(h), subject: `${x.code} POST ${x.url}`, digest: sha256(x.body) })),
    );
    // The body itself is never in the log.
    expect(JSON.stringify(await h.audit())).not.toContain('secret memo');
  });

  it('a bad query parameter from a signed request is refused and audited with its code', async () => {
    const h = await harness(backend);
    const res = await h.as(h.org.requester).get('/v1/intents?limit=0');
    expect(outcome(res)).toEqual({ status: 400, code: 'INVALID_VALUE' });
    const refused = await h.events('request.refused');
    expect(refused).toEqual([
      expect.objectContaining({
        actor: keyOf(h),
        subject: 'INVALID_VALUE GET /v1/intents',
        digest: sha256(''),
      }),
    ]);
  });

  it('rule refusals (WRONG_CHAIN, EXPIRED, SELF_APPROVAL, a forged governance entry) are audited with their codes; nothing is stored', async () => {
    const h = await harness(backend);
    const requester = h.as(h.org.requester);
    expect(outcome(await requester.post('/v1/intents', h.intent({ chain: 'bitcoin:mainnet' })))).toEqual({
      status: 422,
      code: 'WRONG_CHAIN',
    });
    expect(
      outcome(
        await requester.post(
          '/v1/intents',
          h.intent({ createdAt: h.clock.now - 2 * HOUR, expiresAt: h.clock.now - HOUR }),
        ),
      ),
    ).toEqual({ status: 422, code: 'EXPIRED' });
    await expectNothingStored(h);

    // A stored intent; its requester approving it is refused.
    const signed = h.intent();
    const created = await requester.post('/v1/intents', signed);
    expect(created.status).toBe(201);
    const id = (created.body as { id: Digest }).id;
    const self = await requester.post(`/v1/intents/${id}/approvals`, h.approval(id, h.org.requester));
    expect(outcome(self)).toEqual({ status: 403, code: 'SELF_APPROVAL' });
    expect(await h.store.approvals.of(id)).toEqual([]);

    // A governance entry signed by the requester's key, claimed as an admin's signature.
    const admin = h.org.admins[0]!;
    const entry = await h.entry('freeze', { reason: 'drill' }, [h.org.requester]);
    const forged = {
      ...entry,
      signatures: [{ ...entry.signatures[0]!, member: admin.id, device: admin.device.id }],
    };
    const res = await h.as(admin).post('/v1/governance/proposals', forged);
    expect(outcome(res)).toEqual({ status: 403, code: 'GOVERNANCE_SIGNATURE_INVALID' });
    expect((await h.store.governance.head())?.seq).toBe(0);

    const refused = await h.events('request.refused');
    expect(refused.map((e) => [e.actor, e.subject])).toEqual([
      [keyOf(h), 'WRONG_CHAIN POST /v1/intents'],
      [keyOf(h), 'EXPIRED POST /v1/intents'],
      [keyOf(h), `SELF_APPROVAL POST /v1/intents/${id}/approvals`],
      [keyOf(h, admin), 'GOVERNANCE_SIGNATURE_INVALID POST /v1/governance/proposals'],
    ]);
    // The refusals of well-formed content keep their own entries too.
    expect(await h.events('intent.refused')).toHaveLength(2);
    expect(await h.events('approval.refused')).toHaveLength(1);
    expect(await h.events('governance.refused')).toHaveLength(1);
  });

  it('a key past its rate limit is refused RATE_LIMITED and audited within the refusal budget, then summarized', async () => {
    const h = await harness(backend, {
      limits: {
        memberRate: { perSecond: 1, burst: 2 },
        refusals: { perKey: 2, total: 100, windowMs: 60_000 },
      },
    });
    const requester = h.as(h.org.requester);
    for (let i = 0; i < 2; i++) expect((await requester.get('/v1/intents')).status).toBe(200);
    for (let i = 0; i < 5; i++) {
      expect(outcome(await requester.get('/v1/intents'))).toEqual({ status: 429, code: 'RATE_LIMITED' });
    }
    await h.coordinator.close();
    const refused = await h.events('request.refused');
    expect(refused.filter((e) => e.actor === keyOf(h)).map((e) => e.subject)).toEqual([
      'RATE_LIMITED GET /v1/intents',
      'RATE_LIMITED GET /v1/intents',
    ]);
    expect(refused.filter((e) => e.subject === 'suppressed 3 refusals')).toHaveLength(1);
  });

  it('an authentication refusal is audited once, not twice', async () => {
    const h = await harness(backend);
    const signer = h.signer();
    const res = await signer.post('/v1/intents', h.intent());
    expect(outcome(res)).toEqual({ status: 403, code: 'NOT_AUTHORIZED' });
    const refused = await h.events('request.refused');
    expect(refused.map((e) => e.subject)).toEqual(['NOT_AUTHORIZED POST /v1/intents']);
  });

  it('THREATS 31: unsigned garbage cannot flood the log: refusals beyond the budget are one summary', async () => {
    const h = await harness(backend, { limits: { refusals: { perKey: 3, total: 10, windowMs: 60_000 } } });
    for (let i = 0; i < 40; i++) {
      const res = await send(h.target, unsigned('POST', '/v1/intents', { body: `{"junk":${i}` }));
      expect(outcome(res)).toEqual({ status: 401, code: 'SIGNATURE_REQUIRED' });
    }
    await h.coordinator.close();
    const refused = await h.events('request.refused');
    expect(refused.filter((e) => e.actor === 'anonymous')).toHaveLength(3);
    expect(refused.filter((e) => e.subject === 'suppressed 37 refusals')).toHaveLength(1);
    await expectNothingStored(h);
  });
});
