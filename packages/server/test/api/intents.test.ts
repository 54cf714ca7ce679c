/**
 * Intents through the HTTP API on SQLite and PostgreSQL: the policy preview
 * refuses early with the signers' codes and stores nothing (THREATS 14-17),
 * an intent cannot be edited (THREATS 8), and a created intent is stored,
 * audited and announced. Approvals are in approvals.test.ts.
 *
 * The signing path after "approved" is the pipeline's and is covered by its
 * own tests; here an InertPipeline records the hand-over.
 */
import { type Digest, ZERO_DIGEST } from '@custos/core';
import { EXCHANGE_DEPOSIT } from '@custos/test-support/org';
import { describe, expect, it } from 'vitest';
import { useBackends } from '../db/backends.js';
import { send, unsigned } from './support/client.js';
import { type Harness, HOUR, outcome, useHarness } from './support/harness.js';

const { backends } = useBackends();
const harness = useHarness();

async function create(h: Harness, overrides: Parameters<Harness['intent']>[0] = {}) {
  return h.as(h.org.requester).post('/v1/intents', h.intent(overrides));
}

/** The refusal of an intent: code, nothing stored, nothing handed over, one intent.refused entry. */
async function expectRefused(
  h: Harness,
  res: Awaited<ReturnType<typeof create>>,
  status: number,
  code: string,
) {
  expect(outcome(res)).toEqual({ status, code });
  expect((await h.store.intents.list()).intents).toEqual([]);
  expect(h.pipeline.approved).toEqual([]);
  const refused = await h.events('intent.refused');
  expect(refused).toHaveLength(1);
  expect(refused[0]?.actor).toBe(`member:${h.org.requester.id}/${h.org.requester.device.id}`);
  expect(await h.events('intent.created')).toEqual([]);
  // And out of band: the webhooks hear of it, with the code and the key that posted it.
  expect(h.notifier.of('intent.refused')).toEqual([
    expect.objectContaining({ id: refused[0]?.subject, code, by: refused[0]?.actor }),
  ]);
}

describe.each(backends)('intents on $name', (backend) => {
  it('stores a signed intent as pending, audits it and tells the approvers what is missing', async () => {
    const h = await harness(backend);
    const signed = h.intent();
    const res = await h.as(h.org.requester).post('/v1/intents', signed);
    expect(res.status).toBe(201);
    const body = res.body as { id: Digest; status: string; decision: { kind: string; missing: unknown[] } };
    expect(body.status).toBe('pending');
    expect(body.decision.kind).toBe('pending');
    expect(body.decision.missing).toEqual([
      { policy: 0, rule: 'allow-address-book', group: 0, need: 2, have: 0, of: { role: 'approver' } },
    ]);
    const stored = await h.store.intents.get(body.id);
    expect(stored?.signed).toEqual(signed);
    const created = await h.events('intent.created');
    expect(created).toHaveLength(1);
    expect(created[0]).toMatchObject({ subject: body.id, digest: body.id });
    expect(h.notifier.of('intent.created')).toEqual([
      expect.objectContaining({ id: body.id, amount: '10000', to: signed.intent.to }),
    ]);
    expect(h.notifier.of('approval.needed')).toHaveLength(1);

    const view = await h.as(h.org.approvers[0] ?? h.org.requester).get(`/v1/intents/${body.id}`);
    expect(view.status).toBe(200);
    expect(view.body).toMatchObject({
      id: body.id,
      status: 'pending',
      statusCode: null,
      intent: signed,
      approvals: [],
      decision: { kind: 'pending' },
      psbt: null,
      txid: null,
      confirmations: null,
      signers: [],
    });
  });

  it('THREATS 8: PUT, PATCH and DELETE of a pending intent are 405 INTENT_IMMUTABLE; the intent is unchanged; audited', async () => {
    const h = await harness(backend);
    const signed = h.intent();
    const id = ((await h.as(h.org.requester).post('/v1/intents', signed)).body as { id: string }).id;
    const before = await h.store.intents.get(id);
    const edited = { ...signed, intent: { ...signed.intent, amount: '99999999', to: EXCHANGE_DEPOSIT } };
    const requester = h.as(h.org.requester);
    expect(outcome(await requester.send('PUT', `/v1/intents/${id}`, { body: edited }))).toEqual({
      status: 405,
      code: 'INTENT_IMMUTABLE',
    });
    expect(
      outcome(await requester.send('PATCH', `/v1/intents/${id}`, { body: { amount: '99999999' } })),
    ).toEqual({
      status: 405,
      code: 'INTENT_IMMUTABLE',
    });
    expect(outcome(await requester.send('DELETE', `/v1/intents/${id}`))).toEqual({
      status: 405,
      code: 'INTENT_IMMUTABLE',
    });
    expect(await h.store.intents.get(id)).toEqual(before);
    expect((await h.store.intents.list()).intents).toHaveLength(1);
    const refused = await h.events('request.refused');
    expect(refused.map((e) => e.subject)).toEqual([
      `INTENT_IMMUTABLE PUT /v1/intents/${id}`,
      `INTENT_IMMUTABLE PATCH /v1/intents/${id}`,
      `INTENT_IMMUTABLE DELETE /v1/intents/${id}`,
    ]);
    // Without a signature the edit is refused before it is even considered.
    const anonymous = await send(h.target, unsigned('PUT', `/v1/intents/${id}`, { body: edited }));
    expect(outcome(anonymous)).toEqual({ status: 401, code: 'SIGNATURE_REQUIRED' });
  });

  it('THREATS 14: an intent submitted again is DUPLICATE_INTENT, also once it moved on', async () => {
    const h = await harness(backend);
    const signed = h.intent();
    const first = await h.as(h.org.requester).post('/v1/intents', signed);
    expect(first.status).toBe(201);
    const again = await h.as(h.org.requester).post('/v1/intents', signed);
    expect(outcome(again)).toEqual({ status: 409, code: 'DUPLICATE_INTENT' });
    const id = (first.body as { id: string }).id;
    await h.store.intents.updateStatus(id, { from: 'pending', to: 'broadcast', txid: 'ab'.repeat(32) });
    const later = await h.as(h.org.requester).post('/v1/intents', signed);
    expect(outcome(later)).toEqual({ status: 409, code: 'DUPLICATE_INTENT' });
    expect((await h.store.intents.list()).intents).toHaveLength(1);
    expect(await h.events('intent.refused')).toHaveLength(2);
  });

  it('THREATS 15: an intent past its expiry is refused EXPIRED and nothing is stored', async () => {
    const h = await harness(backend);
    const res = await create(h, { createdAt: h.clock.now - 2 * HOUR, expiresAt: h.clock.now - HOUR });
    await expectRefused(h, res, 422, 'EXPIRED');
  });

  it('THREATS 16: an intent for another organization is WRONG_ORG', async () => {
    const h = await harness(backend);
    await expectRefused(h, await create(h, { org: ZERO_DIGEST }), 422, 'WRONG_ORG');
  });

  it('THREATS 16: an intent naming mainnet for a regtest wallet is WRONG_CHAIN', async () => {
    const h = await harness(backend);
    await expectRefused(h, await create(h, { chain: 'bitcoin:mainnet' }), 422, 'WRONG_CHAIN');
  });

  it('THREATS 17: a destination that is not in the address book is DESTINATION_NOT_ALLOWED', async () => {
    const h = await harness(backend);
    await expectRefused(h, await create(h, { to: EXCHANGE_DEPOSIT }), 422, 'DESTINATION_NOT_ALLOWED');
  });

  it('an intent whose signature does not match its body is INTENT_SIGNATURE_INVALID', async () => {
    const h = await harness(backend);
    const signed = h.intent();
    const rewritten = { ...signed, intent: { ...signed.intent, amount: '20000' } };
    const res = await h.as(h.org.requester).post('/v1/intents', rewritten);
    await expectRefused(h, res, 403, 'INTENT_SIGNATURE_INVALID');
  });

  it('an amount over the rolling limit is refused LIMIT_EXCEEDED by the preview', async () => {
    const h = await harness(backend);
    await expectRefused(h, await create(h, { amount: '100000001' as never }), 422, 'LIMIT_EXCEEDED');
  });

  it('the preview counts what this coordinator saw signed in the window (rolling limits)', async () => {
    const h = await harness(backend);
    const first = await create(h, { amount: '60000000' as never });
    const id = (first.body as { id: string }).id;
    // Signed as the pipeline signs: the status and its `intent.signed` entry in one transaction.
    const entry = (event: string) => ({
      at: h.clock.now,
      actor: 'coordinator',
      event,
      subject: id,
      digest: id as never,
    });
    await h.store.intents.updateStatus(id, { from: 'pending', to: 'signed', audit: entry('intent.signed') });
    const second = await create(h, { amount: '50000000' as never });
    expect(outcome(second)).toEqual({ status: 422, code: 'LIMIT_EXCEEDED' });
    // A day later the first has left the window.
    h.clock.now += 86_400_000 + 1;
    expect((await create(h, { amount: '50000000' as never })).status).toBe(201);
  });

  it('a signed intent whose transaction is then refused leaves the preview (intent.refused in the log)', async () => {
    const h = await harness(backend);
    const first = await create(h, { amount: '60000000' as never });
    const id = (first.body as { id: string }).id;
    const entry = (event: string) => ({
      at: h.clock.now,
      actor: 'coordinator',
      event,
      subject: id,
      digest: id as never,
    });
    await h.store.intents.updateStatus(id, { from: 'pending', to: 'signed', audit: entry('intent.signed') });
    expect(outcome(await create(h, { amount: '50000000' as never }))).toEqual({
      status: 422,
      code: 'LIMIT_EXCEEDED',
    });
    await h.store.intents.updateStatus(id, {
      from: 'signed',
      to: 'refused',
      code: 'CHAIN_REJECTED',
      audit: entry('intent.refused'),
    });
    expect((await create(h, { amount: '50000000' as never })).status).toBe(201);
  });

  it('a frozen organization refuses new intents FROZEN', async () => {
    const h = await harness(backend);
    const freeze = await h.entry('freeze', { reason: 'lost laptop' }, [h.org.watcher]);
    const res = await h.as(h.org.watcher).post('/v1/governance/proposals', freeze);
    expect(res.body).toMatchObject({ status: 'applied', seq: 1 });
    await expectRefused(h, await create(h), 422, 'FROZEN');
    expect(h.notifier.of('frozen')).toHaveLength(1);
    expect(await h.events('frozen')).toHaveLength(1);
  });

  it('lists intents newest first with a cursor and filters, and refuses malformed queries', async () => {
    const h = await harness(backend);
    const ids: string[] = [];
    for (let n = 0; n < 5; n++) ids.push(((await create(h)).body as { id: string }).id);
    const reader = h.as(h.org.watcher);
    const first = await reader.get('/v1/intents?limit=2');
    const page1 = first.body as { intents: { id: string }[]; next: string };
    expect(page1.intents.map((i) => i.id)).toEqual([ids[4], ids[3]]);
    const second = await reader.get(`/v1/intents?limit=2&cursor=${page1.next}`);
    expect((second.body as { intents: { id: string }[] }).intents.map((i) => i.id)).toEqual([ids[2], ids[1]]);
    const pending = await reader.get(`/v1/intents?status=pending&requester=${h.org.requester.id}`);
    expect((pending.body as { intents: unknown[] }).intents).toHaveLength(5);
    expect((await reader.get('/v1/intents?status=approved')).body).toEqual({ intents: [], next: null });
    for (const q of [
      'status=nonsense',
      'limit=0',
      'limit=1e3',
      'cursor=%24%24',
      'colour=red',
      'limit=1&limit=2',
    ]) {
      expect(outcome(await reader.get(`/v1/intents?${q}`))).toEqual({ status: 400, code: 'INVALID_VALUE' });
    }
  });

  it('an unknown intent is 404 NOT_FOUND', async () => {
    const h = await harness(backend);
    expect(outcome(await h.as(h.org.watcher).get(`/v1/intents/${'0'.repeat(64)}`))).toEqual({
      status: 404,
      code: 'NOT_FOUND',
    });
  });
});
