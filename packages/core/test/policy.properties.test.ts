/**
 * Properties of policy evaluation (fast-check), over real Ed25519 signatures:
 * (a) THREATS 20: no sequence of split intents, signed one after another with
 *     each allowed one appended to the ledger, ever puts more than a limit's
 *     max in any of its windows;
 * (b) adding a valid approval never turns an allow into a deny;
 * (c) THREATS 11: adding or removing the requester's own approval never
 *     changes the decision;
 * (d) the decision does not depend on the order of the approvals.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { intentDigest, type LedgerEntry, type SignedApproval } from '../src/objects.js';
import { evaluate, type PolicyDecision } from '../src/policy.js';
import type { Address, Amount, Millis } from '../src/types.js';
import {
  approve,
  bookRule,
  buildState,
  EXCHANGE,
  entry,
  HOUR,
  ledgerOf,
  MINUTE,
  makeIntent,
  makePolicy,
  NOW,
  type Person,
  person,
  SUPPLIER,
  signIntent,
} from './support/policy-fixture.js';

const rita = person('rita');
const ralph = person('ralph');
const alice = person('alice');
const bob = person('bob');
const carol = person('carol');
const dave = person('dave', 2);
const cfo = person('cfo');
const erin = person('erin');
const mallory = person('mallory');

const MEMBERS = [
  { person: rita, roles: ['requester'] },
  { person: ralph, roles: ['requester'] },
  { person: alice, roles: ['approver'] },
  { person: bob, roles: ['approver'] },
  { person: carol, roles: ['approver'] },
  { person: dave, roles: ['approver'] },
  { person: cfo, roles: ['cfo'] },
  { person: erin, roles: ['approver'], revoked: ['erin-1'] },
] as const;

const BOOK = [entry('exchange', EXCHANGE), entry('supplier', SUPPLIER)];

describe('THREATS 20: rolling limits hold over any sequence of split intents', () => {
  type Scope = 'wallet-asset' | 'destination' | 'requester';
  const step = fc.record({
    // Often the same moment (THREATS 20: requests arriving together), often close to a window's edge.
    gap: fc.oneof(
      fc.constant(0),
      fc.integer({ min: 1, max: 20 * MINUTE }),
      fc.integer({ min: 1, max: 2 * HOUR }),
      fc.constantFrom(HOUR - 1, HOUR, 3 * HOUR - 1, 3 * HOUR),
    ),
    /** Percent of the limit: a few fit in one window, some alone exceed it. */
    percent: fc.integer({ min: 1, max: 110 }),
    to: fc.constantFrom(EXCHANGE, SUPPLIER),
    wallet: fc.constantFrom('hot', 'cold'),
    requester: fc.constantFrom(rita, ralph),
  });

  function key(scope: Scope, e: LedgerEntry): string {
    if (scope === 'wallet-asset') return `${e.wallet}/${e.asset}`;
    if (scope === 'destination') return `${e.to}/${e.asset}`;
    return `${e.requester}/${e.asset}`;
  }

  /** The largest sum, over every window (T - windowMs, T] ending at an entry, of entries sharing a scope key. */
  function worstWindow(ledger: readonly LedgerEntry[], scope: Scope, windowMs: Millis): bigint {
    let worst = 0n;
    for (const end of ledger) {
      let sum = 0n;
      for (const e of ledger) {
        if (key(scope, e) === key(scope, end) && e.at > end.at - windowMs && e.at <= end.at)
          sum += BigInt(e.amount);
      }
      if (sum > worst) worst = sum;
    }
    return worst;
  }

  it('never lets a window sum exceed the limit, and refuses only with LIMIT_EXCEEDED', () => {
    let refused = 0;
    fc.assert(
      fc.property(
        fc.constantFrom<Scope>('wallet-asset', 'destination', 'requester'),
        fc.constantFrom(HOUR, 3 * HOUR),
        fc.bigInt({ min: 100n, max: 10n ** 20n }),
        fc.array(step, { minLength: 1, maxLength: 14 }),
        (scope, windowMs, max, steps) => {
          const state = buildState({
            members: MEMBERS,
            policies: [
              makePolicy([bookRule('book', 1)], {
                limits: [{ id: 'limit', scope, asset: 'BTC', windowMs, max: max.toString() as Amount }],
              }),
            ],
            addresses: BOOK,
          });
          const ledger: LedgerEntry[] = [];
          let now = NOW;
          for (const s of steps) {
            now += s.gap;
            const i = makeIntent(s.requester, {
              amount: ((max * BigInt(s.percent)) / 100n).toString() as Amount,
              to: s.to as Address,
              wallet: s.wallet,
              createdAt: now - MINUTE,
              expiresAt: now + HOUR,
            });
            const decision = evaluate({
              state,
              intent: signIntent(s.requester, i),
              approvals: [approve(alice, intentDigest(i), { at: now })],
              ledger,
              now,
            });
            if (decision.kind === 'allow') {
              ledger.push(ledgerOf(i, now));
            } else {
              expect(decision.kind === 'deny' ? decision.code : decision.kind).toBe('LIMIT_EXCEEDED');
              refused++;
            }
            expect(worstWindow(ledger, scope, windowMs)).toBeLessThanOrEqual(max);
          }
        },
      ),
      { numRuns: 60 },
    );
    // The property was exercised where it matters: some intents were refused.
    expect(refused).toBeGreaterThan(0);
  });
});

describe('approvals: monotone, blind to the requester, blind to order', () => {
  const state = buildState({
    members: MEMBERS,
    policies: [
      makePolicy([
        bookRule('r', 2, {
          approvals: [
            { m: 2, role: 'approver' },
            { m: 1, members: ['cfo', 'carol'] },
          ],
          cancelWindowMs: 30 * MINUTE,
        }),
      ]),
    ],
    addresses: BOOK,
  });
  const intent = makeIntent(rita, { createdAt: NOW - 3 * HOUR, expiresAt: NOW + 20 * HOUR });
  const signed = signIntent(rita, intent);
  const digest = intentDigest(intent);
  const ats = [NOW - 2 * HOUR, NOW - 40 * MINUTE, NOW - 10 * MINUTE, NOW + MINUTE];

  const approveFrom = (p: Person, device = 0) =>
    ats.map((at) => approve(p, digest, { at, expiresAt: NOW + 20 * HOUR, device }));
  /** Valid approve decisions of members: what (b) adds. */
  const validApprovals: SignedApproval[] = [
    ...approveFrom(alice),
    ...approveFrom(bob),
    ...approveFrom(carol),
    ...approveFrom(dave, 0),
    ...approveFrom(dave, 1),
    ...approveFrom(cfo),
  ];
  const otherIntent = intentDigest(makeIntent(rita));
  const forged = approve(bob, digest, { at: NOW - MINUTE });
  /** Everything else an attacker or a slow client might submit. */
  const noise: SignedApproval[] = [
    approve(carol, digest, { decision: 'reject', at: NOW - MINUTE }),
    approve(cfo, digest, { decision: 'reject', at: NOW - 20 * MINUTE }),
    approve(dave, digest, { decision: 'reject', at: NOW - 5 * MINUTE, device: 1 }),
    approve(alice, digest, { at: NOW - 2 * HOUR, expiresAt: NOW }),
    approve(bob, otherIntent),
    { ...forged, signature: approve(mallory, digest, { at: NOW - MINUTE }).signature },
    approve(erin, digest),
    approve(mallory, digest),
  ];
  const selfApprovals: SignedApproval[] = [
    approve(rita, digest, { at: NOW - HOUR, expiresAt: NOW + 20 * HOUR }),
    approve(rita, digest, { at: NOW - HOUR, expiresAt: NOW + 20 * HOUR, decision: 'reject' }),
  ];
  /** Mostly valid approvals, so that allow decisions are common. */
  const pool = [...validApprovals, ...validApprovals, ...noise];

  function decide(approvals: readonly SignedApproval[]): PolicyDecision {
    return evaluate({ state, intent: signed, approvals, ledger: [], now: NOW });
  }

  /** The decision without per-approval bookkeeping (indices move when approvals are added or reordered). */
  function core(d: PolicyDecision): unknown {
    const { approvalChecks: _checks, ...rest } = d;
    return rest;
  }

  function checksMultiset(d: PolicyDecision): string[] {
    return d.approvalChecks.map((c) => `${c.approver}/${c.counted}/${c.code ?? ''}`).sort();
  }

  it('(b) adding a valid approval never turns an allow into a deny (nor into a pending)', () => {
    let allowed = 0;
    fc.assert(
      fc.property(
        fc.subarray(pool, { maxLength: 9 }),
        fc.constantFrom(...validApprovals),
        fc.nat(),
        (approvals, extra, at) => {
          const before = decide(approvals);
          if (before.kind !== 'allow') return;
          allowed++;
          const more = [...approvals];
          more.splice(at % (more.length + 1), 0, extra);
          expect(decide(more).kind).toBe('allow');
        },
      ),
      { numRuns: 150 },
    );
    expect(allowed).toBeGreaterThan(10);
  });

  it("(c) adding or removing the requester's own approval never changes the decision", () => {
    const kinds = new Set<string>();
    fc.assert(
      fc.property(
        fc.subarray(pool, { maxLength: 9 }),
        fc.subarray(selfApprovals, { minLength: 1 }),
        fc.nat(),
        (approvals, own, at) => {
          const without = decide(approvals);
          kinds.add(without.kind);
          const withOwn = [...approvals];
          for (const a of own) withOwn.splice(at % (withOwn.length + 1), 0, a);
          const decision = decide(withOwn);
          expect(core(decision)).toEqual(core(without));
          expect(decision.approvalChecks.filter((c) => c.code === 'SELF_APPROVAL')).toHaveLength(own.length);
        },
      ),
      { numRuns: 100 },
    );
    expect([...kinds].sort()).toEqual(['allow', 'deny', 'pending']);
  });

  it('(d) the decision does not depend on the order of the approvals', () => {
    fc.assert(
      fc.property(
        fc
          .shuffledSubarray([...pool, ...selfApprovals], { maxLength: 9 })
          .chain((s) =>
            fc.tuple(fc.constant(s), fc.shuffledSubarray(s, { minLength: s.length, maxLength: s.length })),
          ),
        ([order1, order2]) => {
          const a = decide(order1);
          const b = decide(order2);
          expect(core(b)).toEqual(core(a));
          expect(checksMultiset(b)).toEqual(checksMultiset(a));
        },
      ),
      { numRuns: 100 },
    );
  });
});
