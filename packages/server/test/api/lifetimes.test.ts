/**
 * Issue 8, item 3, through the HTTP API on SQLite and PostgreSQL: the policy
 * bounds how long an intent and an approval may live (24 h unless governance
 * sets otherwise). An intent valid for ten years, or an approval valid for
 * ten years, is refused LIFETIME_TOO_LONG at the coordinator: nothing is
 * stored, the refusal is audited. (Each signer refuses the same on its own:
 * packages/signer/test/pending-authority.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { useBackends } from '../db/backends.js';
import { HOUR, outcome, useHarness } from './support/harness.js';

const YEAR = 365 * 24 * HOUR;
const { backends } = useBackends();
const harness = useHarness();

describe.each(backends)('lifetimes on $name', (backend) => {
  it('an intent valid for ten years is refused LIFETIME_TOO_LONG, not stored, audited', async () => {
    const h = await harness(backend);
    const res = await h
      .as(h.org.requester)
      .post('/v1/intents', h.intent({ expiresAt: h.clock.now + 10 * YEAR }));
    expect(outcome(res)).toEqual({ status: 422, code: 'LIFETIME_TOO_LONG' });
    expect((res.body as { error: { message: string } }).error.message).toMatch(/at most 1 d/);
    expect((await h.store.intents.list()).intents).toEqual([]);
    const refused = await h.events('intent.refused');
    expect(refused).toHaveLength(1);
    expect(refused[0]?.actor).toBe(`member:${h.org.requester.id}/${h.org.requester.device.id}`);
  });

  it('an intent created long ago is refused, one within the bound is accepted', async () => {
    const h = await harness(backend);
    const old = await h
      .as(h.org.requester)
      .post('/v1/intents', h.intent({ createdAt: h.clock.now - 2 * YEAR, expiresAt: h.clock.now + HOUR }));
    expect(outcome(old)).toEqual({ status: 422, code: 'LIFETIME_TOO_LONG' });
    const fine = await h
      .as(h.org.requester)
      .post('/v1/intents', h.intent({ expiresAt: h.clock.now + 23 * HOUR }));
    expect(fine.status).toBe(201);
  });

  it('an approval valid for ten years is refused LIFETIME_TOO_LONG and not stored', async () => {
    const h = await harness(backend);
    const created = await h.as(h.org.requester).post('/v1/intents', h.intent());
    expect(created.status).toBe(201);
    const id = (created.body as { id: string }).id as Parameters<typeof h.approval>[0];
    const approver = h.org.approvers[0]!;
    const res = await h
      .as(approver)
      .post(`/v1/intents/${id}/approvals`, h.approval(id, approver, { expiresAt: h.clock.now + 10 * YEAR }));
    expect(outcome(res)).toEqual({ status: 422, code: 'LIFETIME_TOO_LONG' });
    expect(await h.store.approvals.of(id)).toEqual([]);
    const refused = await h.events('approval.refused');
    expect(refused).toEqual([expect.objectContaining({ subject: id })]);
  });
});
