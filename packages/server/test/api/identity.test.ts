/**
 * Identity and sessions (THREATS 1-5), through the real HTTP interface on
 * SQLite and PostgreSQL: no bearer token, cookie or replayed request creates
 * or approves anything, and neither does a revoked device or a removed
 * member. Each attack test checks the code, that nothing was stored, and the
 * audit entry (`request.refused`). Also the per-key rate limit and the bound
 * on how many refusals a flood can audit.
 */
import { describe, expect, it } from 'vitest';
import { useBackends } from '../db/backends.js';
import { Client, send, unsigned } from './support/client.js';
import { type Harness, MINUTE, outcome, useHarness } from './support/harness.js';

const { backends } = useBackends();
const harness = useHarness();

async function nothingStored(h: Harness): Promise<void> {
  expect((await h.store.intents.list()).intents).toEqual([]);
  expect(h.pipeline.approved).toEqual([]);
}

describe.each(backends)('identity and sessions on $name', (backend) => {
  it('THREATS 1: an intent with no signature headers is refused SIGNATURE_REQUIRED, stores nothing, is audited', async () => {
    const h = await harness(backend);
    const res = await send(h.target, unsigned('POST', '/v1/intents', { body: h.intent() }));
    expect(outcome(res)).toEqual({ status: 401, code: 'SIGNATURE_REQUIRED' });
    await nothingStored(h);
    const refused = await h.events('request.refused');
    expect(refused).toHaveLength(1);
    expect(refused[0]?.actor).toBe('anonymous');
    expect(refused[0]?.subject).toBe('SIGNATURE_REQUIRED POST /v1/intents');
  });

  it("THREATS 1: a requester's stolen bearer token or session cookie alone is refused the same way", async () => {
    const h = await harness(backend);
    for (const headers of [
      { authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.stolen.token' },
      { cookie: 'session=stolen-session-of-requester-1' },
    ]) {
      const res = await send(h.target, unsigned('POST', '/v1/intents', { body: h.intent(), headers }));
      expect(outcome(res)).toEqual({ status: 401, code: 'SIGNATURE_REQUIRED' });
    }
    await nothingStored(h);
    expect(await h.events('request.refused')).toHaveLength(2);
  });

  it("THREATS 1: an intent sent with another member's key is NOT_AUTHORIZED; a forged signature is BAD_SIGNATURE", async () => {
    const h = await harness(backend);
    const approver = h.org.approvers[0];
    if (approver === undefined) throw new Error('fixture');
    // A valid signature, but by an approver's device: not the requester's.
    const other = await h.as(approver).post('/v1/intents', h.intent());
    expect(outcome(other)).toEqual({ status: 403, code: 'NOT_AUTHORIZED' });
    // Claims the requester's key id, signed with the approver's key.
    const forged = new Client(
      h.target,
      {
        keyId: `member:${h.org.requester.id}/${h.org.requester.device.id}`,
        secretKey: approver.device.secretKey,
      },
      () => h.clock.now,
    );
    const res = await forged.post('/v1/intents', h.intent());
    expect(outcome(res)).toEqual({ status: 401, code: 'BAD_SIGNATURE' });
    await nothingStored(h);
    const refused = await h.events('request.refused');
    expect(refused.map((e) => e.subject)).toEqual([
      'NOT_AUTHORIZED POST /v1/intents',
      'BAD_SIGNATURE POST /v1/intents',
    ]);
    expect(refused[1]?.actor).toBe(`member:${h.org.requester.id}/${h.org.requester.device.id}`);
  });

  it('THREATS 1: a body changed after signing is BAD_SIGNATURE (content-digest covers it)', async () => {
    const h = await harness(backend);
    const prepared = h.as(h.org.requester).prepare('POST', '/v1/intents', { body: h.intent() });
    const res = await send(h.target, { ...prepared, payload: Buffer.from(JSON.stringify(h.intent())) });
    expect(outcome(res)).toEqual({ status: 401, code: 'BAD_SIGNATURE' });
    await nothingStored(h);
  });

  it("THREATS 2: an approval with an approver's stolen cookie only is refused; nothing counted", async () => {
    const h = await harness(backend);
    const created = await h.as(h.org.requester).post('/v1/intents', h.intent());
    expect(created.status).toBe(201);
    const id = (created.body as { id: string }).id;
    const approver = h.org.approvers[0];
    if (approver === undefined) throw new Error('fixture');
    const res = await send(
      h.target,
      unsigned('POST', `/v1/intents/${id}/approvals`, {
        body: h.approval(id as never, approver),
        headers: { cookie: 'session=stolen-from-approver-1' },
      }),
    );
    expect(outcome(res)).toEqual({ status: 401, code: 'SIGNATURE_REQUIRED' });
    expect(await h.store.approvals.of(id)).toEqual([]);
    expect((await h.store.intents.get(id))?.status).toBe('pending');
    expect(await h.events('request.refused')).toHaveLength(1);
  });

  it('THREATS 3: a replayed signed request is REPLAYED_REQUEST; the intent is stored once', async () => {
    const h = await harness(backend);
    const captured = h.as(h.org.requester).prepare('POST', '/v1/intents', { body: h.intent() });
    expect((await send(h.target, captured)).status).toBe(201);
    const replay = await send(h.target, captured);
    expect(outcome(replay)).toEqual({ status: 401, code: 'REPLAYED_REQUEST' });
    expect((await h.store.intents.list()).intents).toHaveLength(1);
    const refused = await h.events('request.refused');
    expect(refused.map((e) => e.subject)).toEqual(['REPLAYED_REQUEST POST /v1/intents']);
  });

  it('THREATS 3: a replay to another coordinator on the same database is refused too', async () => {
    const h = await harness(backend);
    const other = await h.peer();
    const captured = h.as(h.org.requester).prepare('POST', '/v1/intents', { body: h.intent() });
    expect((await send(h.target, captured)).status).toBe(201);
    const replay = await send({ app: other.app }, captured);
    expect(outcome(replay)).toEqual({ status: 401, code: 'REPLAYED_REQUEST' });
  });

  it('THREATS 3: a request created 10 minutes ago (or ahead) is BAD_SIGNATURE, whatever its nonce', async () => {
    const h = await harness(backend);
    const old = Math.floor((h.clock.now - 10 * MINUTE) / 1000);
    const res = await h.as(h.org.requester).post('/v1/intents', h.intent(), { created: old });
    expect(outcome(res)).toEqual({ status: 401, code: 'BAD_SIGNATURE' });
    expect((res.body as { error: { message: string } }).error.message).toMatch(/clock/);
    const ahead = Math.floor((h.clock.now + 10 * MINUTE) / 1000);
    expect(outcome(await h.as(h.org.requester).post('/v1/intents', h.intent(), { created: ahead }))).toEqual({
      status: 401,
      code: 'BAD_SIGNATURE',
    });
    await nothingStored(h);
    expect(await h.events('request.refused')).toHaveLength(2);
  });

  it('THREATS 4: a device revoked by governance is refused DEVICE_REVOKED; nothing stored', async () => {
    const h = await harness(backend);
    const requester = h.org.requester;
    await h.govern('device.revoke', { member: requester.id, device: requester.device.id });
    const res = await h.as(requester).post('/v1/intents', h.intent());
    expect(outcome(res)).toEqual({ status: 403, code: 'DEVICE_REVOKED' });
    await nothingStored(h);
    const refused = await h.events('request.refused');
    expect(refused.map((e) => e.subject)).toEqual(['DEVICE_REVOKED POST /v1/intents']);
  });

  it('THREATS 4: a revoked device with a bad signature learns nothing: BAD_SIGNATURE', async () => {
    const h = await harness(backend);
    const requester = h.org.requester;
    await h.govern('device.revoke', { member: requester.id, device: requester.device.id });
    const approver = h.org.approvers[0];
    if (approver === undefined) throw new Error('fixture');
    const forged = new Client(
      h.target,
      { keyId: `member:${requester.id}/${requester.device.id}`, secretKey: approver.device.secretKey },
      () => h.clock.now,
    );
    expect(outcome(await forged.post('/v1/intents', h.intent()))).toEqual({
      status: 401,
      code: 'BAD_SIGNATURE',
    });
  });

  it('THREATS 5: the key of a member who was removed is refused NOT_A_MEMBER; nothing stored', async () => {
    const h = await harness(backend);
    const approver = h.org.approvers[0];
    if (approver === undefined) throw new Error('fixture');
    const created = await h.as(h.org.requester).post('/v1/intents', h.intent());
    const id = (created.body as { id: string }).id;
    await h.govern('member.remove', { member: approver.id });
    const res = await h.as(approver).post(`/v1/intents/${id}/approvals`, h.approval(id as never, approver));
    expect(outcome(res)).toEqual({ status: 403, code: 'NOT_A_MEMBER' });
    expect(await h.store.approvals.of(id)).toEqual([]);
    const refused = await h.events('request.refused');
    expect(refused.map((e) => e.subject)).toEqual([`NOT_A_MEMBER POST /v1/intents/${id}/approvals`]);
    expect(refused[0]?.actor).toBe(`member:${approver.id}/${approver.device.id}`);
  });

  it('a key id of an unknown device, an unknown signer or another form is refused', async () => {
    const h = await harness(backend);
    const key = h.org.requester.device.secretKey;
    const cases: [string, number, string][] = [
      [`member:${h.org.requester.id}/no-such-device`, 403, 'UNKNOWN_DEVICE'],
      ['signer:no-such-signer', 403, 'NOT_AUTHORIZED'],
      ['user:requester-1', 401, 'BAD_SIGNATURE'],
    ];
    for (const [keyId, status, code] of cases) {
      const res = await new Client(h.target, { keyId, secretKey: key }, () => h.clock.now).get('/v1/intents');
      expect(outcome(res)).toEqual({ status, code });
    }
  });

  it('the query is signed as received: a signed GET with another query is BAD_SIGNATURE', async () => {
    const h = await harness(backend);
    const prepared = h.as(h.org.requester).prepare('GET', '/v1/intents?status=pending');
    expect((await send(h.target, prepared)).status).toBe(200);
    const moved = h.as(h.org.requester).prepare('GET', '/v1/intents?status=pending');
    const res = await send(h.target, { ...moved, url: '/v1/intents?status=approved' });
    expect(outcome(res)).toEqual({ status: 401, code: 'BAD_SIGNATURE' });
  });

  it('a signer key cannot submit intents, and a member key cannot pull signer jobs (NOT_AUTHORIZED)', async () => {
    const h = await harness(backend);
    expect(outcome(await h.signer().post('/v1/intents', h.intent()))).toEqual({
      status: 403,
      code: 'NOT_AUTHORIZED',
    });
    expect(outcome(await h.as(h.org.requester).get('/v1/signer/jobs?wait=0'))).toEqual({
      status: 403,
      code: 'NOT_AUTHORIZED',
    });
    await nothingStored(h);
  });

  it('limits each key: past its burst a key gets 429 RATE_LIMITED, others are not affected, and it refills', async () => {
    const h = await harness(backend, { limits: { memberRate: { perSecond: 1, burst: 3 } } });
    const requester = h.as(h.org.requester);
    for (let i = 0; i < 3; i++) expect((await requester.get('/v1/intents')).status).toBe(200);
    const limited = await requester.get('/v1/intents');
    expect(outcome(limited)).toEqual({ status: 429, code: 'RATE_LIMITED' });
    expect(limited.headers['retry-after']).toBe('1');
    const approver = h.org.approvers[0];
    if (approver === undefined) throw new Error('fixture');
    expect((await h.as(approver).get('/v1/intents')).status).toBe(200);
    h.clock.now += 1000;
    expect((await requester.get('/v1/intents')).status).toBe(200);
  });

  it("a member holding the watcher role reads at a signer's rate: its reads grow with the withdrawals it matches (issue 12)", async () => {
    const h = await harness(backend, {
      limits: { memberRate: { perSecond: 1, burst: 2 }, signerRate: { perSecond: 1, burst: 5 } },
    });
    const watcher = h.as(h.org.watcher);
    for (let i = 0; i < 5; i++) expect((await watcher.get('/v1/audit?from=0')).status).toBe(200);
    expect(outcome(await watcher.get('/v1/audit?from=0'))).toEqual({ status: 429, code: 'RATE_LIMITED' });
    const requester = h.as(h.org.requester);
    for (let i = 0; i < 2; i++) expect((await requester.get('/v1/intents')).status).toBe(200);
    expect(outcome(await requester.get('/v1/intents'))).toEqual({ status: 429, code: 'RATE_LIMITED' });
  });

  it('a member holding a role with its own rate (CUSTOS_ROLE_RATES: a payout service in a bank run) gets that rate; other members keep theirs', async () => {
    const h = await harness(backend, {
      limits: {
        memberRate: { perSecond: 1, burst: 2 },
        roleRates: { requester: { perSecond: 1, burst: 6 }, nobody: { perSecond: 1, burst: 50 } },
      },
    });
    const requester = h.as(h.org.requester);
    for (let i = 0; i < 6; i++) expect((await requester.get('/v1/intents')).status, `request ${i}`).toBe(200);
    expect(outcome(await requester.get('/v1/intents'))).toEqual({ status: 429, code: 'RATE_LIMITED' });
    const approver = h.org.approvers[0];
    if (approver === undefined) throw new Error('fixture');
    for (let i = 0; i < 2; i++) expect((await h.as(approver).get('/v1/intents')).status).toBe(200);
    expect(outcome(await h.as(approver).get('/v1/intents'))).toEqual({ status: 429, code: 'RATE_LIMITED' });
  });

  it('a flood of unsigned requests audits at most the budget per key, plus one summary entry', async () => {
    const h = await harness(backend, { limits: { refusals: { perKey: 5, total: 50, windowMs: 60_000 } } });
    const results = await Promise.all(
      Array.from({ length: 60 }, () => send(h.target, unsigned('POST', '/v1/intents', { body: h.intent() }))),
    );
    for (const r of results) expect(outcome(r)).toEqual({ status: 401, code: 'SIGNATURE_REQUIRED' });
    expect(await h.events('request.refused')).toHaveLength(5);
    // The next window: the summary of the first is written, then this window's entry.
    h.clock.now += 60_000;
    await send(h.target, unsigned('POST', '/v1/intents', { body: h.intent() }));
    await h.coordinator.close();
    const refused = await h.events('request.refused');
    expect(refused).toHaveLength(7);
    expect(refused.map((e) => e.subject)).toContain('suppressed 55 refusals');
  });
});
