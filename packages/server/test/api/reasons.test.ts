/**
 * Why an intent ended where it did is part of its view: `statusCode` and
 * `statusMessage` (the coordinator's sentence), in the intent's own view and
 * in the list, and the list carries the same `confirmations` and `signers`
 * as the intent's view, so the two never disagree. On SQLite and PostgreSQL.
 */
import type { Digest } from '@custos/core';
import { describe, expect, it } from 'vitest';
import { useBackends } from '../db/backends.js';
import { type Harness, HOUR, useHarness } from './support/harness.js';

const { backends } = useBackends();
const harness = useHarness();

interface View {
  id: string;
  status: string;
  statusCode: string | null;
  statusMessage: string | null;
  confirmations: number | null;
  signers: unknown[];
}

async function views(h: Harness, id: Digest): Promise<{ one: View; listed: View }> {
  const viewer = h.org.approvers[0]!;
  const one = (await h.as(viewer).get(`/v1/intents/${id}`)).body as View;
  const list = (await h.as(viewer).get('/v1/intents')).body as { intents: View[] };
  const listed = list.intents.find((v) => v.id === id)!;
  return { one, listed };
}

describe.each(backends)('refusal reasons on $name', (backend) => {
  it('a rejected intent keeps the code and the sentence, in its view and in the list, which agree', async () => {
    const h = await harness(backend);
    const a1 = h.org.approvers[0]!;
    const created = await h.as(h.org.requester).post('/v1/intents', h.intent());
    const id = (created.body as { id: Digest }).id;
    const pending = await views(h, id);
    expect(pending.one).toMatchObject({ status: 'pending', statusCode: null, statusMessage: null });
    expect(pending.listed).toMatchObject({ statusMessage: null, confirmations: null, signers: [] });

    const rejected = await h
      .as(a1)
      .post(`/v1/intents/${id}/approvals`, h.approval(id, a1, { decision: 'reject' }));
    expect(rejected.status).toBe(200);
    const { one, listed } = await views(h, id);
    expect(one).toMatchObject({
      status: 'rejected',
      statusCode: 'INTENT_REJECTED',
      statusMessage: `rejected by ${a1.id}`,
    });
    for (const key of ['status', 'statusCode', 'statusMessage', 'confirmations', 'signers'] as const) {
      expect(listed[key], key).toEqual(one[key]);
    }
  });

  it('an intent that expired while pending says so in words', async () => {
    const h = await harness(backend);
    const a1 = h.org.approvers[0]!;
    const created = await h.as(h.org.requester).post('/v1/intents', h.intent());
    const id = (created.body as { id: Digest }).id;
    h.clock.now += 2 * HOUR;
    const late = await h.as(a1).post(`/v1/intents/${id}/approvals`, h.approval(id, a1));
    expect((late.body as { error: { code: string } }).error.code).toBe('EXPIRED');
    const { one, listed } = await views(h, id);
    expect(one).toMatchObject({
      status: 'expired',
      statusCode: 'EXPIRED',
      statusMessage: 'the intent expired before it was approved',
    });
    expect(listed.statusMessage).toBe(one.statusMessage);
  });
});
