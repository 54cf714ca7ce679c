/**
 * Automated tiers through the HTTP API (issue 13), on SQLite and PostgreSQL:
 * an intent that matches a zero-approval rule is approved when it is posted
 * and handed to the signing pipeline with no approval POST; a policy whose
 * zero-approval rule is not bounded is refused UNBOUNDED_AUTOMATION and
 * nothing is stored; a zero-approval rule added by policy.set allows nothing
 * without approvers before the delay (THREATS 19), and the sweep moves an
 * intent on once it has passed.
 *
 * Signing is the pipeline's; here an InertPipeline records the hand-over.
 * The signers' own limits are tested through a real signer process
 * (packages/signer/test/automated-payouts.test.ts).
 */
import {
  type Address,
  type Amount,
  type Digest,
  type GovernanceEntry,
  type Policy,
  type PolicyRule,
  signGovernanceEntry,
} from '@custos/core';
import {
  COLD_STORAGE,
  defaultPolicy,
  EXCHANGE_DEPOSIT,
  type Person,
  WALLET_ID,
} from '@custos/test-support/org';
import { describe, expect, it } from 'vitest';
import { useBackends } from '../db/backends.js';
import { type Harness, MINUTE, outcome, useHarness } from './support/harness.js';

const { backends } = useBackends();
const harness = useHarness();

/** Customer payouts: up to 0.001 BTC each, to any address, with no approval. */
const PAYOUTS: PolicyRule = {
  id: 'payouts',
  match: {
    destination: { kind: 'any' },
    wallets: [WALLET_ID],
    assets: ['BTC'],
    maxAmount: '100000' as Amount,
    requesterRoles: ['requester'],
  },
  action: 'allow',
  approvals: [],
};

/** The fixture's policy (address book, two approvers, a 1 BTC daily limit) with the payouts tier first. */
function automated(): Policy {
  const base = defaultPolicy();
  return { ...base, rules: [PAYOUTS, ...base.rules] };
}

interface Created {
  readonly id: Digest;
  readonly status: string;
  readonly decision: { kind: string; rules?: string[]; approvers?: string[] };
}

/** A payout from the fixture's requester (the exchange backend here) to a customer's address. */
async function payout(h: Harness, amount: string, to: Address = EXCHANGE_DEPOSIT) {
  return h.as(h.org.requester).post('/v1/intents', h.intent({ amount: amount as Amount, to }));
}

describe.each(backends)('automated payouts through the HTTP API on $name', (backend) => {
  it('approves an intent matching a zero-approval rule when it is posted and hands it to the signing pipeline, with no approval POST', async () => {
    const h = await harness(backend, { org: { policy: automated() } });
    const res = await payout(h, '50000');
    expect(res.status).toBe(201);
    const body = res.body as Created;
    expect(body.status).toBe('approved');
    expect(body.decision).toMatchObject({ kind: 'allow', rules: ['payouts'], approvers: [] });
    expect(h.pipeline.approved).toEqual([body.id]);
    expect((await h.store.intents.get(body.id))?.status).toBe('approved');
    expect(await h.store.approvals.of(body.id)).toEqual([]);
    const events = (await h.audit()).filter((e) => e.subject === body.id).map((e) => e.event);
    expect(events).toEqual(['intent.created', 'intent.approved']);
    // Nobody is asked to approve it.
    expect(h.notifier.of('approval.needed')).toEqual([]);
  });

  it('leaves an intent above the per-transaction maximum to the approvers, as before', async () => {
    const h = await harness(backend, { org: { policy: automated() } });
    const res = await payout(h, '100001', COLD_STORAGE);
    expect(res.status).toBe(201);
    expect((res.body as Created).status).toBe('pending');
    expect(h.pipeline.approved).toEqual([]);
    expect(h.notifier.of('approval.needed')).toHaveLength(1);
  });

  it('refuses a policy.set whose zero-approval rule has no rolling limit: UNBOUNDED_AUTOMATION, nothing stored or applied, audited', async () => {
    const h = await harness(backend);
    const [first, second] = h.org.admins as [Person, Person];
    const state = await h.state();
    // An admin's client that does not check the policy: the entry is built and signed by hand.
    const unbounded: Policy = { ...automated(), limits: [] };
    const entry = {
      v: 1,
      org: state.org,
      seq: state.seq + 1,
      prev: state.head,
      kind: 'policy.set',
      body: { policy: unbounded },
      proposedAt: h.clock.now,
    } as GovernanceEntry;
    const signed = signGovernanceEntry(entry, [first.device.signer, second.device.signer]);
    const res = await h.as(first).post('/v1/governance/proposals', signed);
    expect(outcome(res)).toEqual({ status: 422, code: 'UNBOUNDED_AUTOMATION' });
    expect((res.body as { error: { message: string } }).error.message).toContain(
      'rule payouts allows with no approval',
    );
    expect(await h.store.proposals.list()).toEqual([]);
    expect((await h.store.governance.head())?.seq).toBe(0);
    const refused = await h.events('request.refused');
    expect(refused).toEqual([
      expect.objectContaining({
        actor: `member:${first.id}/${first.device.id}`,
        subject: 'UNBOUNDED_AUTOMATION POST /v1/governance/proposals',
      }),
    ]);
    // The policy in force is the old one: a customer's address is refused, the book waits for approvers.
    expect(outcome(await payout(h, '50000'))).toEqual({ status: 422, code: 'DESTINATION_NOT_ALLOWED' });
    expect(((await payout(h, '50000', COLD_STORAGE)).body as Created).status).toBe('pending');
  });

  it('refuses a policy.set whose zero-approval rule names no assets and leaves one of its wallet assets without a limit, when the quorum applies it', async () => {
    const h = await harness(backend);
    const { assets: _assets, ...match } = PAYOUTS.match;
    const rule: PolicyRule = { ...PAYOUTS, match };
    const base = defaultPolicy();
    // The wallet holds BTC; the only wallet-asset limit is for another asset.
    const policy: Policy = {
      ...base,
      rules: [rule, ...base.rules],
      limits: [{ ...(base.limits[0] as Policy['limits'][number]), id: 'eth-daily', asset: 'ETH' }],
    };
    const [first, second] = h.org.admins as [Person, Person];
    const signed = await h.entry('policy.set', { policy }, [first, second]);
    const res = await h.as(first).post('/v1/governance/proposals', signed);
    expect(outcome(res)).toEqual({ status: 422, code: 'UNBOUNDED_AUTOMATION' });
    expect((await h.store.governance.head())?.seq).toBe(0);
    expect(await h.events('governance.refused')).toHaveLength(1);
  });

  it('THREATS 19: a zero-approval rule added by policy.set allows nothing without approvers before the delay; the sweep approves once it has passed', async () => {
    const delayMs = 30 * MINUTE;
    const h = await harness(backend, { org: { delayMs } });
    await h.govern('policy.set', { policy: automated() });

    // Within the delay both policies bind: the old one refuses a customer's address and wants two
    // approvers for the address book.
    expect(outcome(await payout(h, '50000'))).toEqual({ status: 422, code: 'DESTINATION_NOT_ALLOWED' });
    const early = await payout(h, '50000', COLD_STORAGE);
    expect(early.status).toBe(201);
    const earlyId = (early.body as Created).id;
    expect(early.body).toMatchObject({ status: 'pending', decision: { kind: 'pending' } });
    h.clock.now += delayMs - 2 * MINUTE;
    expect(await h.coordinator.sweep()).toEqual({ approved: 0, rejected: 0, expired: 0 });
    expect(h.pipeline.approved).toEqual([]);

    // Once the delay has passed, a new payout goes through alone and the sweep moves the earlier one on.
    h.clock.now += 2 * MINUTE;
    const late = await payout(h, '50000');
    expect(late.body).toMatchObject({ status: 'approved', decision: { kind: 'allow', approvers: [] } });
    expect(await h.coordinator.sweep()).toEqual({ approved: 1, rejected: 0, expired: 0 });
    expect(h.pipeline.approved).toEqual([(late.body as Created).id, earlyId]);
  });
});
