/**
 * Policy evaluation (docs/architecture.md "Policy", withdrawal flow step 4), one test or
 * more per docs/threats.md line it answers. Every signature is a real Ed25519
 * signature made by a device key of the fixture's people.
 */
import { describe, expect, it } from 'vitest';
import { signDigest } from '../src/keys.js';
import { findLookalikes } from '../src/lookalike.js';
import {
  type Intent,
  intentDigest,
  type Policy,
  type SignedApproval,
  type SignedIntent,
} from '../src/objects.js';
import {
  checkApproval,
  type EvaluateInput,
  evaluate,
  type PolicyDecision,
  requireAllow,
  rollingUsage,
} from '../src/policy.js';
import type { GovernanceState } from '../src/state.js';
import type { Address, Amount, Millis } from '../src/types.js';
import {
  approve,
  bookRule,
  buildState,
  COLD,
  DAY,
  EXCHANGE,
  entry,
  HOUR,
  ledgerEntry,
  ledgerOf,
  MAINNET,
  type MemberSpec,
  MINUTE,
  makeIntent,
  makePolicy,
  NOW,
  OTHER_ORG,
  POISON,
  person,
  STRANGER,
  type StateSpec,
  SUPPLIER,
  signIntent,
  TEST_WALLET,
  TESTNET,
} from './support/policy-fixture.js';

const rita = person('rita'); // requester
const alice = person('alice');
const bob = person('bob');
const carol = person('carol');
const dave = person('dave', 2); // approver with two devices
const erin = person('erin'); // approver whose device governance revoked
const cfo = person('cfo');
const mallory = person('mallory'); // never a member, or removed

const MEMBERS: readonly MemberSpec[] = [
  { person: rita, roles: ['requester'] },
  { person: alice, roles: ['approver'] },
  { person: bob, roles: ['approver'] },
  { person: carol, roles: ['approver'] },
  { person: dave, roles: ['approver'] },
  { person: erin, roles: ['approver'], revoked: ['erin-1'] },
  { person: cfo, roles: ['cfo'] },
];

const BOOK = [
  entry('exchange', EXCHANGE, { tags: ['exchange'] }),
  entry('supplier', SUPPLIER, { tags: ['supplier'] }),
];

function state(spec: Partial<StateSpec> = {}): GovernanceState {
  return buildState({
    members: MEMBERS,
    policies: [makePolicy([bookRule('book', 2)])],
    addresses: BOOK,
    ...spec,
  });
}

interface Run {
  readonly state?: GovernanceState;
  readonly intent?: Intent;
  readonly signed?: SignedIntent;
  readonly approvers?: readonly (typeof alice)[];
  readonly approvals?: readonly SignedApproval[];
  readonly ledger?: EvaluateInput['ledger'];
  readonly now?: Millis;
  readonly chains?: readonly string[];
}

/** Evaluates an intent (by default rita's 0.0015 BTC to the exchange) with approvals from `approvers`. */
function run(r: Run = {}): { decision: PolicyDecision; intent: Intent } {
  const i = r.signed?.intent ?? r.intent ?? makeIntent(rita);
  const approvals = r.approvals ?? (r.approvers ?? [alice, bob]).map((p) => approve(p, intentDigest(i)));
  const decision = evaluate({
    state: r.state ?? state(),
    intent: r.signed ?? signIntent(rita, i),
    approvals,
    ledger: r.ledger ?? [],
    now: r.now ?? NOW,
    ...(r.chains === undefined ? {} : { chains: r.chains }),
  });
  return { decision, intent: i };
}

function expectDeny(decision: PolicyDecision, code: string): void {
  expect(decision.kind === 'deny' ? decision.code : `${decision.kind} (not deny)`).toBe(code);
}

function checksOf(decision: PolicyDecision) {
  return decision.approvalChecks.map((c) => ({ approver: c.approver, counted: c.counted, code: c.code }));
}

describe('evaluate: the ordinary path', () => {
  it('allows a transfer to an address-book entry with the quorum of the matching rule', () => {
    const { decision, intent } = run();
    expect(decision).toMatchObject({ kind: 'allow', intent: intentDigest(intent), rules: ['book'] });
    if (decision.kind !== 'allow') return;
    expect(decision.approvers).toEqual(['alice', 'bob']);
    expect(checksOf(decision)).toEqual([
      { approver: 'alice', counted: true, code: undefined },
      { approver: 'bob', counted: true, code: undefined },
    ]);
    expect(requireAllow(decision)).toEqual({ ok: true, value: decision });
  });

  it('is pending with the short group named while approvals are missing', () => {
    const { decision } = run({ approvers: [alice] });
    expect(decision).toMatchObject({
      kind: 'pending',
      missing: [{ policy: 0, rule: 'book', group: 0, need: 2, have: 1, of: { role: 'approver' } }],
    });
    const required = requireAllow(decision);
    expect(required.ok ? 'ok' : required.code).toBe('QUORUM_NOT_MET');
    expect(required.ok ? '' : required.message).toContain('needs 2 of role approver, has 1');
  });

  it('counts approvals beyond the quorum and lists every counted approver', () => {
    const { decision } = run({ approvers: [carol, alice, bob] });
    expect(decision.kind === 'allow' ? decision.approvers : []).toEqual(['alice', 'bob', 'carol']);
  });
});

describe('THREATS 22: a freeze stops every signer', () => {
  it('denies with FROZEN even when everything else is in order', () => {
    const { decision, intent } = run({
      state: state({ frozen: { seq: 7, by: 'watcher', reason: 'drain alert' } }),
    });
    expectDeny(decision, 'FROZEN');
    expect(decision.intent).toBe(intentDigest(intent));
  });

  it('checks the freeze before anything else (an intent wrong in every other way is still FROZEN)', () => {
    const i = makeIntent(rita, { org: OTHER_ORG, wallet: 'nope', expiresAt: NOW - 1, createdAt: NOW - 2 });
    const { decision } = run({
      state: state({ frozen: { seq: 7, by: 'alice', reason: 'test' } }),
      signed: signIntent(mallory, i),
    });
    expectDeny(decision, 'FROZEN');
  });
});

describe('THREATS 16: another organization or another chain', () => {
  it('denies an intent for another organization with WRONG_ORG', () => {
    expectDeny(run({ intent: makeIntent(rita, { org: OTHER_ORG }) }).decision, 'WRONG_ORG');
  });

  it('denies a testnet intent for a mainnet wallet with WRONG_CHAIN', () => {
    expectDeny(run({ intent: makeIntent(rita, { chain: TESTNET }) }).decision, 'WRONG_CHAIN');
  });

  it('denies a mainnet intent for a testnet wallet with WRONG_CHAIN', () => {
    expectDeny(
      run({ intent: makeIntent(rita, { wallet: TEST_WALLET.id, chain: MAINNET }) }).decision,
      'WRONG_CHAIN',
    );
  });

  it('denies with WRONG_CHAIN on a signer that serves only testnet, though wallet and intent agree', () => {
    expectDeny(run({ chains: [TESTNET] }).decision, 'WRONG_CHAIN');
    expect(run({ chains: [TESTNET, MAINNET] }).decision.kind).toBe('allow');
  });

  it('denies an unknown wallet (UNKNOWN_WALLET) and an asset the wallet does not hold (UNKNOWN_ASSET)', () => {
    expectDeny(run({ intent: makeIntent(rita, { wallet: 'nope' }) }).decision, 'UNKNOWN_WALLET');
    expectDeny(run({ intent: makeIntent(rita, { asset: 'ETH' }) }).decision, 'UNKNOWN_ASSET');
  });
});

describe('THREATS 6 (DMM): the intent as signed, not as relayed', () => {
  it('denies with INTENT_SIGNATURE_INVALID when the amount is rewritten after signing', () => {
    const signed = signIntent(rita, makeIntent(rita));
    const rewritten = { ...signed, intent: { ...signed.intent, amount: '450290000000' as Amount } };
    // Approvals made over the rewritten intent's digest do not rescue it.
    const approvals = [alice, bob].map((p) => approve(p, intentDigest(rewritten.intent)));
    expectDeny(run({ signed: rewritten, approvals }).decision, 'INTENT_SIGNATURE_INVALID');
  });

  it('denies with INTENT_SIGNATURE_INVALID when the destination is rewritten after signing', () => {
    const signed = signIntent(rita, makeIntent(rita));
    const rewritten = { ...signed, intent: { ...signed.intent, to: SUPPLIER } };
    expectDeny(run({ signed: rewritten }).decision, 'INTENT_SIGNATURE_INVALID');
  });

  it("denies an intent signed by another member's key in the requester's name", () => {
    const i = makeIntent(rita);
    expectDeny(run({ signed: signIntent(alice, i) }).decision, 'INTENT_SIGNATURE_INVALID');
  });

  it('denies a signature whose bytes were flipped', () => {
    const signed = signIntent(rita, makeIntent(rita));
    if (signed.signature.kind !== 'ed25519') throw new Error('fixture signs with Ed25519');
    const sig = signed.signature.sig;
    const flipped = `${sig.slice(0, 10)}${sig[10] === '0' ? '1' : '0'}${sig.slice(11)}`;
    const tampered = { ...signed, signature: { kind: 'ed25519' as const, sig: flipped as typeof sig } };
    expectDeny(run({ signed: tampered }).decision, 'INTENT_SIGNATURE_INVALID');
  });

  it('denies with the decoding code and a null intent when the intent cannot even be digested', () => {
    const broken = { ...makeIntent(rita), createdAt: 1.5 } as Intent;
    const signature = signIntent(rita, makeIntent(rita)).signature;
    const { decision } = run({ signed: { intent: broken, signature }, approvals: [] });
    expectDeny(decision, 'NON_CANONICAL_NUMBER');
    expect(decision.intent).toBeNull();
  });
});

describe('THREATS 4-5: revoked devices and removed members', () => {
  it('denies a requester device revoked by governance with DEVICE_REVOKED', () => {
    const s = state({
      members: [{ person: rita, roles: ['requester'], revoked: ['rita-1'] }, ...MEMBERS.slice(1)],
    });
    expectDeny(run({ state: s }).decision, 'DEVICE_REVOKED');
  });

  it('denies a requester who was removed with NOT_A_MEMBER', () => {
    expectDeny(run({ state: state({ members: MEMBERS.slice(1) }) }).decision, 'NOT_A_MEMBER');
  });

  it('denies an intent naming a device the requester does not have with UNKNOWN_DEVICE', () => {
    const i = makeIntent(rita, { device: 'rita-9' });
    expectDeny(run({ signed: signIntent(rita, i) }).decision, 'UNKNOWN_DEVICE');
  });

  it('does not count an approval from a revoked device (DEVICE_REVOKED)', () => {
    const { decision } = run({ approvers: [alice, erin] });
    expect(decision.kind).toBe('pending');
    expect(checksOf(decision)).toContainEqual({ approver: 'erin', counted: false, code: 'DEVICE_REVOKED' });
  });

  it('does not count an approval from a removed member (NOT_A_MEMBER)', () => {
    const s = state({ members: MEMBERS.filter((m) => m.person !== bob) });
    const { decision } = run({ state: s, approvers: [alice, bob] });
    expect(decision.kind).toBe('pending');
    expect(checksOf(decision)).toContainEqual({ approver: 'bob', counted: false, code: 'NOT_A_MEMBER' });
    const outsider = run({ approvers: [alice, mallory] }).decision;
    expect(checksOf(outsider)).toContainEqual({ approver: 'mallory', counted: false, code: 'NOT_A_MEMBER' });
  });
});

describe('the requester must be allowed to ask', () => {
  it('denies a member without the requester role with NOT_AUTHORIZED', () => {
    const i = makeIntent(alice);
    expectDeny(run({ signed: signIntent(alice, i), approvers: [bob, carol] }).decision, 'NOT_AUTHORIZED');
  });

  it('denies while a granted requester role is still waiting out its delay', () => {
    const s = state({ members: [{ person: rita, roles: { requester: NOW + 1 } }, ...MEMBERS.slice(1)] });
    expectDeny(run({ state: s }).decision, 'NOT_AUTHORIZED');
    expect(run({ state: s, now: NOW + 1 }).decision.kind).toBe('allow');
  });
});

describe('THREATS 15: expiry, on the verifier own clock', () => {
  it('denies an intent at and after its expiresAt with EXPIRED', () => {
    const i = makeIntent(rita, { expiresAt: NOW + MINUTE });
    const digest = intentDigest(i);
    const approvals = [alice, bob].map((p) => approve(p, digest, { expiresAt: NOW + 20 * HOUR }));
    expect(run({ intent: i, approvals, now: NOW + MINUTE - 1 }).decision.kind).toBe('allow');
    expectDeny(run({ intent: i, approvals, now: NOW + MINUTE }).decision, 'EXPIRED');
    expectDeny(run({ intent: i, approvals, now: NOW + DAY }).decision, 'EXPIRED');
  });

  it('denies an intent dated beyond the clock skew with NOT_YET_VALID', () => {
    const late = makeIntent(rita, { createdAt: NOW + 5 * MINUTE + 1, expiresAt: NOW + HOUR });
    expectDeny(run({ intent: late }).decision, 'NOT_YET_VALID');
    const withinSkew = makeIntent(rita, { createdAt: NOW + 5 * MINUTE, expiresAt: NOW + HOUR });
    expect(run({ intent: withinSkew }).decision.kind).toBe('allow');
  });

  it('does not count an expired approval (EXPIRED) and the intent stays pending', () => {
    const i = makeIntent(rita);
    const digest = intentDigest(i);
    const approvals = [approve(alice, digest), approve(bob, digest, { at: NOW - HOUR, expiresAt: NOW })];
    const { decision } = run({ intent: i, approvals });
    expect(decision.kind).toBe('pending');
    expect(checksOf(decision)).toContainEqual({ approver: 'bob', counted: false, code: 'EXPIRED' });
    expect(run({ intent: i, approvals, now: NOW - 1 }).decision.kind).toBe('allow');
  });

  it('does not count an approval dated beyond the clock skew (NOT_YET_VALID)', () => {
    const i = makeIntent(rita);
    const approvals = [
      approve(alice, intentDigest(i)),
      approve(bob, intentDigest(i), { at: NOW + 6 * MINUTE }),
    ];
    const { decision } = run({ intent: i, approvals });
    expect(checksOf(decision)).toContainEqual({ approver: 'bob', counted: false, code: 'NOT_YET_VALID' });
  });
});

describe('THREATS 7 and 13: approvals are signatures over one intent digest', () => {
  it('THREATS 13: an approval of another intent replayed onto this one is APPROVAL_SIGNATURE_INVALID', () => {
    const earlier = makeIntent(rita, { amount: '1000' as Amount });
    const i = makeIntent(rita);
    const approvals = [approve(alice, intentDigest(i)), approve(bob, intentDigest(earlier))];
    const { decision } = run({ intent: i, approvals });
    expect(decision.kind).toBe('pending');
    expect(checksOf(decision)).toContainEqual({
      approver: 'bob',
      counted: false,
      code: 'APPROVAL_SIGNATURE_INVALID',
    });
    expect(requireAllow(decision)).toMatchObject({ ok: false, code: 'QUORUM_NOT_MET' });
  });

  it('THREATS 13: rewriting the intent field of a signed approval breaks its signature', () => {
    const earlier = makeIntent(rita, { amount: '1000' as Amount });
    const i = makeIntent(rita);
    const stolen = approve(bob, intentDigest(earlier));
    const replayed = { ...stolen, approval: { ...stolen.approval, intent: intentDigest(i) } };
    const { decision } = run({ intent: i, approvals: [approve(alice, intentDigest(i)), replayed] });
    expect(checksOf(decision)).toContainEqual({
      approver: 'bob',
      counted: false,
      code: 'APPROVAL_SIGNATURE_INVALID',
    });
  });

  it('THREATS 7: an approval row inserted in the database (signed by a key not the approver) does not count', () => {
    const i = makeIntent(rita);
    const forged = approve(mallory, intentDigest(i));
    const inBobsName = {
      approval: { ...forged.approval, approver: 'bob', device: 'bob-1' },
      signature: signDigest(mallory.devices[0]?.keys.secretKey as Uint8Array, intentDigest(i)),
    };
    const { decision } = run({ intent: i, approvals: [approve(alice, intentDigest(i)), inBobsName] });
    expect(decision.kind).toBe('pending');
    expect(checksOf(decision)).toContainEqual({
      approver: 'bob',
      counted: false,
      code: 'APPROVAL_SIGNATURE_INVALID',
    });
  });

  it('THREATS 7: a reject edited into an approve no longer verifies', () => {
    const i = makeIntent(rita);
    const rejected = approve(bob, intentDigest(i), { decision: 'reject' });
    const edited = { ...rejected, approval: { ...rejected.approval, decision: 'approve' as const } };
    const { decision } = run({ intent: i, approvals: [approve(alice, intentDigest(i)), edited] });
    expect(decision.kind).toBe('pending');
    expect(checksOf(decision)).toContainEqual({
      approver: 'bob',
      counted: false,
      code: 'APPROVAL_SIGNATURE_INVALID',
    });
  });
});

describe('THREATS 11: the requester approving its own intent', () => {
  it('is not counted (SELF_APPROVAL) and the signer refuses with QUORUM_NOT_MET', () => {
    const { decision } = run({ approvers: [alice, rita] });
    expect(decision.kind).toBe('pending');
    expect(checksOf(decision)).toContainEqual({ approver: 'rita', counted: false, code: 'SELF_APPROVAL' });
    expect(requireAllow(decision)).toMatchObject({ ok: false, code: 'QUORUM_NOT_MET' });
  });

  it('is not counted even when the requester also holds the approver role', () => {
    const s = state({ members: [{ person: rita, roles: ['requester', 'approver'] }, ...MEMBERS.slice(1)] });
    const { decision } = run({ state: s, approvers: [alice, rita] });
    expect(decision).toMatchObject({ kind: 'pending', missing: [{ need: 2, have: 1 }] });
  });

  it('is not counted when the requester is named in a members group', () => {
    const p = makePolicy([
      {
        id: 'named',
        match: { destination: { kind: 'any' } },
        action: 'allow',
        approvals: [{ m: 1, members: ['rita', 'cfo'] }],
      },
    ]);
    const { decision } = run({ state: state({ policies: [p] }), approvers: [rita] });
    expect(decision).toMatchObject({
      kind: 'pending',
      missing: [{ need: 1, have: 0, of: { members: ['rita', 'cfo'] } }],
    });
  });
});

describe('THREATS 12: one person, several devices', () => {
  it('counts a member once however many devices approve (DUPLICATE_APPROVER)', () => {
    const i = makeIntent(rita);
    const d = intentDigest(i);
    const approvals = [approve(dave, d, { device: 0 }), approve(dave, d, { device: 1 })];
    const { decision } = run({ intent: i, approvals });
    expect(decision).toMatchObject({ kind: 'pending', missing: [{ need: 2, have: 1 }] });
    expect(checksOf(decision)).toEqual([
      { approver: 'dave', counted: true, code: undefined },
      { approver: 'dave', counted: false, code: 'DUPLICATE_APPROVER' },
    ]);
  });

  it('counts the same approval submitted twice once', () => {
    const i = makeIntent(rita);
    const a = approve(alice, intentDigest(i));
    const { decision } = run({ intent: i, approvals: [a, a, a] });
    expect(decision).toMatchObject({ kind: 'pending', missing: [{ have: 1 }] });
    expect(decision.approvalChecks.filter((c) => c.code === 'DUPLICATE_APPROVER')).toHaveLength(2);
  });
});

describe('approval groups', () => {
  const twoGroups = makePolicy([
    {
      id: 'two-groups',
      match: { destination: { kind: 'address-book' } },
      action: 'allow',
      approvals: [
        { m: 2, role: 'approver' },
        { m: 1, role: 'cfo' },
      ],
    },
  ]);

  it('needs every group: m of a role and m of another role', () => {
    const s = state({ policies: [twoGroups] });
    expect(run({ state: s, approvers: [alice, bob] }).decision).toMatchObject({
      kind: 'pending',
      missing: [{ group: 1, need: 1, have: 0, of: { role: 'cfo' } }],
    });
    expect(run({ state: s, approvers: [alice, bob, cfo] }).decision.kind).toBe('allow');
  });

  it('counts only members who hold the role now (a role grant waiting out its delay does not count)', () => {
    const s = state({
      policies: [twoGroups],
      members: [...MEMBERS.filter((m) => m.person !== cfo), { person: cfo, roles: { cfo: NOW + HOUR } }],
    });
    const pending = run({ state: s, approvers: [alice, bob, cfo] }).decision;
    expect(pending).toMatchObject({ kind: 'pending', missing: [{ group: 1, have: 0 }] });
    expect(checksOf(pending)).toContainEqual({ approver: 'cfo', counted: false, code: 'NOT_AUTHORIZED' });
  });

  it('reports a valid approval from a member in no group as not counted (NOT_AUTHORIZED)', () => {
    const { decision } = run({ approvers: [alice, bob, cfo] });
    expect(decision.kind).toBe('allow');
    expect(checksOf(decision)).toContainEqual({ approver: 'cfo', counted: false, code: 'NOT_AUTHORIZED' });
  });

  it('lets one member count in several groups of a rule (groups are independent conditions)', () => {
    const s = state({
      policies: [twoGroups],
      members: [...MEMBERS.filter((m) => m.person !== cfo), { person: cfo, roles: ['cfo', 'approver'] }],
    });
    const { decision } = run({ state: s, approvers: [alice, cfo] });
    expect(decision).toMatchObject({ kind: 'allow', approvers: ['alice', 'cfo'] });
  });

  it('counts named members of a members group, and nobody else', () => {
    const p = makePolicy([
      {
        id: 'named',
        match: { destination: { kind: 'any' } },
        action: 'allow',
        approvals: [{ m: 2, members: ['alice', 'carol', 'cfo'] }],
      },
    ]);
    const s = state({ policies: [p] });
    expect(run({ state: s, approvers: [alice, bob] }).decision).toMatchObject({
      kind: 'pending',
      missing: [{ have: 1 }],
    });
    expect(run({ state: s, approvers: [alice, cfo] }).decision.kind).toBe('allow');
  });
});

describe('a reject vetoes', () => {
  it('denies with INTENT_REJECTED when a member who could count rejects, though the quorum is met', () => {
    const i = makeIntent(rita);
    const d = intentDigest(i);
    const approvals = [approve(alice, d), approve(bob, d), approve(carol, d, { decision: 'reject' })];
    const { decision } = run({ intent: i, approvals });
    expectDeny(decision, 'INTENT_REJECTED');
    expect(decision.kind === 'deny' ? decision.message : '').toContain('carol');
    expect(checksOf(decision)).toHaveLength(3);
  });

  it('does not let a member outside every group veto', () => {
    const i = makeIntent(rita);
    const d = intentDigest(i);
    const approvals = [approve(alice, d), approve(bob, d), approve(cfo, d, { decision: 'reject' })];
    const { decision } = run({ intent: i, approvals });
    expect(decision.kind).toBe('allow');
    expect(checksOf(decision)).toContainEqual({ approver: 'cfo', counted: false, code: 'NOT_AUTHORIZED' });
  });

  it('does not let a forged or expired reject veto', () => {
    const i = makeIntent(rita);
    const d = intentDigest(i);
    const expired = approve(carol, d, { decision: 'reject', at: NOW - HOUR, expiresAt: NOW - 1 });
    const real = approve(carol, d, { decision: 'reject' });
    const forged = { ...real, signature: approve(mallory, d, { decision: 'reject' }).signature };
    const { decision } = run({ intent: i, approvals: [approve(alice, d), approve(bob, d), expired, forged] });
    expect(decision.kind).toBe('allow');
  });

  it('takes the reject when one member both approves and rejects (from two devices)', () => {
    const i = makeIntent(rita);
    const d = intentDigest(i);
    const approvals = [
      approve(alice, d),
      approve(dave, d, { device: 0 }),
      approve(dave, d, { device: 1, decision: 'reject' }),
    ];
    expectDeny(run({ intent: i, approvals }).decision, 'INTENT_REJECTED');
  });
});

describe('THREATS 17: destinations outside the address book', () => {
  it('denies an unknown destination with DESTINATION_NOT_ALLOWED (no rule matches)', () => {
    expectDeny(run({ intent: makeIntent(rita, { to: STRANGER }) }).decision, 'DESTINATION_NOT_ALLOWED');
  });

  it('still says DESTINATION_NOT_ALLOWED when a catch-all deny rule follows the address-book rule', () => {
    const p = makePolicy([
      bookRule('book', 2),
      { id: 'catch-all', match: { destination: { kind: 'any' } }, action: 'deny' },
    ]);
    const { decision } = run({ state: state({ policies: [p] }), intent: makeIntent(rita, { to: STRANGER }) });
    expectDeny(decision, 'DESTINATION_NOT_ALLOWED');
  });

  it('allows an unknown destination only through a rule with destination any, with that rule s approvals', () => {
    const p = makePolicy([
      bookRule('book', 1),
      {
        id: 'anywhere',
        match: { destination: { kind: 'any' } },
        action: 'allow',
        approvals: [{ m: 3, role: 'approver' }],
      },
    ]);
    const s = state({ policies: [p] });
    const i = makeIntent(rita, { to: STRANGER });
    expect(run({ state: s, intent: i, approvers: [alice, bob] }).decision).toMatchObject({
      kind: 'pending',
      missing: [{ rule: 'anywhere', need: 3, have: 2 }],
    });
    expect(run({ state: s, intent: i, approvers: [alice, bob, carol] }).decision).toMatchObject({
      kind: 'allow',
      rules: ['anywhere'],
    });
  });

  it('denies with DESTINATION_NOT_ALLOWED an active entry lacking the tag the rule asks for', () => {
    const p = makePolicy([
      {
        id: 'suppliers',
        match: { destination: { kind: 'tags', tags: ['supplier'] } },
        action: 'allow',
        approvals: [{ m: 1, role: 'approver' }],
      },
    ]);
    const s = state({ policies: [p] });
    expectDeny(run({ state: s }).decision, 'DESTINATION_NOT_ALLOWED');
    expect(run({ state: s, intent: makeIntent(rita, { to: SUPPLIER }) }).decision.kind).toBe('allow');
  });

  it('matches entries by id', () => {
    const p = makePolicy([
      {
        id: 'only-exchange',
        match: { destination: { kind: 'entries', ids: ['exchange'] } },
        action: 'allow',
        approvals: [{ m: 1, role: 'approver' }],
      },
    ]);
    const s = state({ policies: [p] });
    expect(run({ state: s }).decision.kind).toBe('allow');
    expectDeny(
      run({ state: s, intent: makeIntent(rita, { to: SUPPLIER }) }).decision,
      'DESTINATION_NOT_ALLOWED',
    );
  });

  it('does not match an entry for the same address on another chain', () => {
    const s = state({ addresses: [entry('exchange-test', EXCHANGE, { chain: TESTNET })] });
    expectDeny(run({ state: s }).decision, 'DESTINATION_NOT_ALLOWED');
  });

  it('says POLICY_DENIED, not DESTINATION_NOT_ALLOWED, when no rule fits the wallet at all', () => {
    const p = makePolicy([
      bookRule('cold-only', 2, { match: { destination: { kind: 'address-book' }, wallets: ['cold'] } }),
    ]);
    expectDeny(
      run({ state: state({ policies: [p] }), intent: makeIntent(rita, { to: STRANGER }) }).decision,
      'POLICY_DENIED',
    );
  });
});

describe('THREATS 18: an address-book entry still waiting out its delay', () => {
  const activeFrom = NOW + 12 * HOUR;
  const pendingBook = [
    entry('exchange', EXCHANGE, { tags: ['exchange'] }),
    { value: entry('new', STRANGER, { tags: ['supplier'] }), activeFrom },
  ];

  it('denies with DESTINATION_NOT_ACTIVE at once, even with a full quorum, and allows once the delay has passed', () => {
    const s = state({ addresses: pendingBook });
    const i = makeIntent(rita, { to: STRANGER, expiresAt: NOW + 20 * HOUR });
    const approvers = [alice, bob, carol];
    expectDeny(run({ state: s, intent: i, approvers }).decision, 'DESTINATION_NOT_ACTIVE');
    expectDeny(
      run({ state: s, intent: i, approvers, now: activeFrom - 1 }).decision,
      'DESTINATION_NOT_ACTIVE',
    );
    const later = [alice, bob].map((p) => approve(p, intentDigest(i), { at: activeFrom }));
    expect(run({ state: s, intent: i, approvals: later, now: activeFrom }).decision.kind).toBe('allow');
  });

  it('says DESTINATION_NOT_ACTIVE for tag and entry-id rules too', () => {
    for (const destination of [
      { kind: 'tags' as const, tags: ['supplier'] },
      { kind: 'entries' as const, ids: ['new'] },
    ]) {
      const p = makePolicy([
        { id: 'r', match: { destination }, action: 'allow', approvals: [{ m: 1, role: 'approver' }] },
      ]);
      const s = state({ policies: [p], addresses: pendingBook });
      expectDeny(
        run({ state: s, intent: makeIntent(rita, { to: STRANGER }) }).decision,
        'DESTINATION_NOT_ACTIVE',
      );
    }
  });

  it('says DESTINATION_NOT_ACTIVE rather than naming a catch-all deny rule that follows', () => {
    const p = makePolicy([
      bookRule('book', 2),
      { id: 'catch-all', match: { destination: { kind: 'any' } }, action: 'deny' },
    ]);
    const s = state({ policies: [p], addresses: pendingBook });
    expectDeny(
      run({ state: s, intent: makeIntent(rita, { to: STRANGER }) }).decision,
      'DESTINATION_NOT_ACTIVE',
    );
  });

  it('treats a pending entry as not in the book: a later rule for any destination still applies, with its approvals', () => {
    const p = makePolicy([
      bookRule('book', 1),
      {
        id: 'anywhere',
        match: { destination: { kind: 'any' } },
        action: 'allow',
        approvals: [{ m: 3, role: 'approver' }],
      },
    ]);
    const s = state({ policies: [p], addresses: pendingBook });
    const { decision } = run({ state: s, intent: makeIntent(rita, { to: STRANGER }), approvers: [alice] });
    expect(decision).toMatchObject({ kind: 'pending', missing: [{ rule: 'anywhere', need: 3 }] });
  });

  it('says POLICY_DENIED when the entry is pending but no rule would match once it is active', () => {
    const p = makePolicy([
      bookRule('cold-only', 1, { match: { destination: { kind: 'address-book' }, wallets: ['cold'] } }),
    ]);
    const s = state({ policies: [p], addresses: pendingBook });
    expectDeny(run({ state: s, intent: makeIntent(rita, { to: STRANGER }) }).decision, 'POLICY_DENIED');
  });
});

describe('rules: first match wins, default deny', () => {
  it('denies with POLICY_DENIED naming the matching deny rule', () => {
    const p = makePolicy([
      {
        id: 'no-large',
        match: { destination: { kind: 'any' }, minAmount: '100000000' as Amount },
        action: 'deny',
      },
      bookRule('book', 1),
    ]);
    const s = state({ policies: [p] });
    const { decision } = run({ state: s, intent: makeIntent(rita, { amount: '100000000' as Amount }) });
    expectDeny(decision, 'POLICY_DENIED');
    expect(decision.kind === 'deny' ? decision.message : '').toContain('no-large');
    expect(run({ state: s, intent: makeIntent(rita, { amount: '99999999' as Amount }) }).decision.kind).toBe(
      'allow',
    );
  });

  it('compares amounts as integers beyond 2^53, both bounds inclusive', () => {
    const p = makePolicy([
      bookRule('band', 1, {
        match: {
          destination: { kind: 'address-book' },
          minAmount: '9007199254740993' as Amount,
          maxAmount: '9007199254740995' as Amount,
        },
      }),
    ]);
    const s = state({ policies: [p] });
    const at = (amount: string) =>
      run({ state: s, intent: makeIntent(rita, { amount: amount as Amount }) }).decision.kind;
    expect(at('9007199254740992')).toBe('deny');
    expect(at('9007199254740993')).toBe('allow');
    expect(at('9007199254740995')).toBe('allow');
    expect(at('9007199254740996')).toBe('deny');
  });

  it('picks the first matching rule: a small transfer needs 1 approval, a large one 2', () => {
    const p = makePolicy([
      bookRule('small', 1, {
        match: { destination: { kind: 'address-book' }, maxAmount: '1000000' as Amount },
      }),
      bookRule('large', 2),
    ]);
    const s = state({ policies: [p] });
    expect(run({ state: s, approvers: [alice] }).decision).toMatchObject({ kind: 'allow', rules: ['small'] });
    const big = makeIntent(rita, { amount: '1000001' as Amount });
    expect(run({ state: s, intent: big, approvers: [alice] }).decision).toMatchObject({
      kind: 'pending',
      missing: [{ rule: 'large' }],
    });
  });

  it('matches on wallets, assets and the requester roles held now', () => {
    const p = makePolicy([
      bookRule('treasury', 1, {
        match: {
          destination: { kind: 'address-book' },
          wallets: ['cold'],
          assets: ['BTC'],
          requesterRoles: ['treasurer'],
        },
      }),
    ]);
    const treasurer = state({
      policies: [p],
      members: [{ person: rita, roles: { requester: 0, treasurer: NOW + 1 } }, ...MEMBERS.slice(1)],
    });
    const cold = makeIntent(rita, { wallet: COLD.id });
    expectDeny(run({ state: treasurer, intent: cold }).decision, 'POLICY_DENIED');
    expect(run({ state: treasurer, intent: cold, now: NOW + 1 }).decision.kind).toBe('allow');
    expectDeny(run({ state: treasurer, now: NOW + 1 }).decision, 'POLICY_DENIED');
  });

  it('denies with POLICY_DENIED when the policy has no rules at all', () => {
    expectDeny(run({ state: state({ policies: [makePolicy([])] }) }).decision, 'POLICY_DENIED');
  });
});

describe('THREATS 19: a policy change waiting out its delay', () => {
  const strict = makePolicy([bookRule('strict', 2)], {
    limits: [{ id: 'daily', scope: 'wallet-asset', asset: 'BTC', windowMs: DAY, max: '1000000' as Amount }],
  });
  const loose = makePolicy([bookRule('loose', 1)], {
    limits: [{ id: 'daily', scope: 'wallet-asset', asset: 'BTC', windowMs: DAY, max: '100000000' as Amount }],
  });
  const activeFrom = NOW + DAY;

  it('keeps the old, stricter policy binding (fewer approvals do not pass) until the delay has passed', () => {
    const s = state({ policies: [strict, { value: loose, activeFrom }] });
    const { decision } = run({ state: s, approvers: [alice] });
    expect(decision).toMatchObject({
      kind: 'pending',
      missing: [{ policy: 0, rule: 'strict', need: 2, have: 1 }],
    });
    expect(decision.kind === 'pending' ? decision.warnings.map((w) => w.code) : []).toContain(
      'POLICY_CHANGE_PENDING',
    );

    const i = makeIntent(rita, { createdAt: activeFrom - MINUTE, expiresAt: activeFrom + HOUR });
    const after = run({
      state: s,
      intent: i,
      approvals: [approve(alice, intentDigest(i), { at: activeFrom })],
      now: activeFrom,
    });
    expect(after.decision).toMatchObject({ kind: 'allow', rules: ['loose'] });
  });

  it('keeps the old limit binding when the pending policy raises it', () => {
    const s = state({ policies: [strict, { value: loose, activeFrom }] });
    const { decision } = run({ state: s, intent: makeIntent(rita, { amount: '5000000' as Amount }) });
    expectDeny(decision, 'LIMIT_EXCEEDED');
  });

  it('lets a stricter pending policy bind at once', () => {
    const s = state({ policies: [loose, { value: strict, activeFrom }] });
    expect(run({ state: s, approvers: [alice] }).decision).toMatchObject({
      kind: 'pending',
      missing: [{ policy: 1, rule: 'strict' }],
    });
  });

  it('requires every policy in force to allow: a deny in either one denies', () => {
    const denyAll = makePolicy([{ id: 'stop', match: { destination: { kind: 'any' } }, action: 'deny' }]);
    expectDeny(
      run({ state: state({ policies: [strict, { value: denyAll, activeFrom }] }) }).decision,
      'POLICY_DENIED',
    );
  });
});

describe('THREATS 20: rolling limits from the signer own ledger', () => {
  const limitPolicy = (
    scope: 'wallet-asset' | 'destination' | 'requester',
    extra: { wallet?: string } = {},
  ): Policy =>
    makePolicy([bookRule('book', 1)], {
      limits: [
        { id: `${scope}-daily`, scope, asset: 'BTC', windowMs: DAY, max: '1000000' as Amount, ...extra },
      ],
    });

  /** Signs intents of `amount` one after another, each a minute apart, appending the allowed ones to the ledger. */
  function split(
    s: GovernanceState,
    intents: readonly { amount: string; to?: Address; wallet?: string; requester?: typeof rita }[],
  ) {
    const ledger: ReturnType<typeof ledgerOf>[] = [];
    const results: string[] = [];
    intents.forEach((spec, k) => {
      const now = NOW + k * MINUTE;
      const who = spec.requester ?? rita;
      const i = makeIntent(who, {
        amount: spec.amount as Amount,
        to: spec.to ?? EXCHANGE,
        wallet: spec.wallet ?? 'hot',
        createdAt: now - MINUTE,
        expiresAt: now + HOUR,
      });
      const decision = run({
        state: s,
        signed: signIntent(who, i),
        approvals: [approve(alice, intentDigest(i), { at: now })],
        ledger,
        now,
      }).decision;
      results.push(decision.kind === 'deny' ? decision.code : decision.kind);
      if (decision.kind === 'allow') ledger.push(ledgerOf(i, now));
    });
    return { results, ledger };
  }

  it('per wallet and asset: ten splits of 0.003 BTC under a 0.01 BTC daily limit stop at the fourth', () => {
    const { results } = split(
      state({ policies: [limitPolicy('wallet-asset')] }),
      Array(10).fill({ amount: '300000' }),
    );
    expect(results).toEqual(['allow', 'allow', 'allow', ...Array(7).fill('LIMIT_EXCEEDED')]);
  });

  it('per wallet and asset: another wallet has its own budget', () => {
    const s = state({ policies: [limitPolicy('wallet-asset')] });
    const { results } = split(s, [
      { amount: '1000000' },
      { amount: '1' },
      { amount: '1000000', wallet: 'cold' },
    ]);
    expect(results).toEqual(['allow', 'LIMIT_EXCEEDED', 'allow']);
  });

  it('per destination: splits to one address are summed whichever wallet pays', () => {
    const s = state({ policies: [limitPolicy('destination')] });
    const { results } = split(s, [
      { amount: '600000' },
      { amount: '600000', wallet: 'cold' },
      { amount: '600000', to: SUPPLIER },
    ]);
    expect(results).toEqual(['allow', 'LIMIT_EXCEEDED', 'allow']);
  });

  it('per requester: one requester cannot split across destinations, another still can ask', () => {
    const s = state({
      policies: [limitPolicy('requester')],
      members: [...MEMBERS, { person: mallory, roles: ['requester'] }],
    });
    const { results } = split(s, [
      { amount: '600000' },
      { amount: '600000', to: SUPPLIER },
      { amount: '600000', requester: mallory },
    ]);
    expect(results).toEqual(['allow', 'LIMIT_EXCEEDED', 'allow']);
  });

  it('a limit naming a wallet binds only that wallet', () => {
    const s = state({ policies: [limitPolicy('wallet-asset', { wallet: 'cold' })] });
    expect(split(s, [{ amount: '2000000' }, { amount: '2000000', wallet: 'cold' }]).results).toEqual([
      'allow',
      'LIMIT_EXCEEDED',
    ]);
  });

  it('counts only ledger entries in the window (now - windowMs, now], and entries dated after now', () => {
    const s = state({ policies: [limitPolicy('wallet-asset')] });
    const i = makeIntent(rita, { amount: '500000' as Amount });
    const edge = [ledgerEntry({ amount: 600000n, at: NOW - DAY })];
    expect(run({ state: s, intent: i, ledger: edge }).decision.kind).toBe('allow');
    const inside = [ledgerEntry({ amount: 600000n, at: NOW - DAY + 1 })];
    expectDeny(run({ state: s, intent: i, ledger: inside }).decision, 'LIMIT_EXCEEDED');
    // A clock stepped back must not reopen the window.
    const future = [ledgerEntry({ amount: 600000n, at: NOW + HOUR })];
    expectDeny(run({ state: s, intent: i, ledger: future }).decision, 'LIMIT_EXCEEDED');
  });

  it('denies a single intent above the limit with an empty ledger', () => {
    const s = state({ policies: [limitPolicy('wallet-asset')] });
    expectDeny(
      run({ state: s, intent: makeIntent(rita, { amount: '1000001' as Amount }) }).decision,
      'LIMIT_EXCEEDED',
    );
    expect(run({ state: s, intent: makeIntent(rita, { amount: '1000000' as Amount }) }).decision.kind).toBe(
      'allow',
    );
  });

  it('does not count the same intent twice when it is asked for again after signing', () => {
    const s = state({ policies: [limitPolicy('wallet-asset')] });
    const i = makeIntent(rita, { amount: '700000' as Amount });
    expect(run({ state: s, intent: i, ledger: [ledgerOf(i, NOW - MINUTE)] }).decision.kind).toBe('allow');
  });

  it('rollingUsage sums the scope in the window, other assets and scopes left out', () => {
    const i = makeIntent(rita);
    const ledger = [
      ledgerEntry({ amount: 1n, at: NOW - 10 }),
      ledgerEntry({ amount: 2n, at: NOW - 10, to: EXCHANGE }),
      ledgerEntry({ amount: 4n, at: NOW - 10, wallet: 'cold' }),
      ledgerEntry({ amount: 8n, at: NOW - 10, asset: 'LTC' }),
      ledgerEntry({ amount: 16n, at: NOW - 10, requester: 'mallory' }),
      ledgerEntry({ amount: 32n, at: NOW - 2 * DAY }),
      ledgerOf(i, NOW - 10),
    ];
    const limit = (scope: 'wallet-asset' | 'destination' | 'requester') => ({
      id: 'l',
      scope,
      asset: 'BTC',
      windowMs: DAY,
      max: '1' as Amount,
    });
    expect(rollingUsage(ledger, limit('wallet-asset'), i, NOW)).toBe(1n + 2n + 16n);
    expect(rollingUsage(ledger, limit('destination'), i, NOW)).toBe(2n);
    expect(rollingUsage(ledger, limit('requester'), i, NOW)).toBe(1n + 2n + 4n);
  });
});

describe('THREATS 21: look-alike destinations (address poisoning)', () => {
  const poisoned = [...BOOK, { value: entry('poison', POISON), activeFrom: NOW + DAY }];

  it('finds address-book entries sharing the first and last characters, pending ones included', () => {
    const s = state({ addresses: poisoned });
    const lookalike = { prefix: 8, suffix: 4, action: 'deny' as const };
    expect(findLookalikes(s, MAINNET, POISON, lookalike, NOW).map((e) => e.id)).toEqual(['exchange']);
    expect(findLookalikes(s, MAINNET, EXCHANGE, lookalike, NOW).map((e) => e.id)).toEqual(['poison']);
    expect(findLookalikes(s, MAINNET, SUPPLIER, lookalike, NOW)).toEqual([]);
    expect(findLookalikes(s, TESTNET, POISON, lookalike, NOW)).toEqual([]);
    // Case does not hide a look-alike from a person's eye, nor from this check.
    expect(findLookalikes(s, MAINNET, POISON.toUpperCase(), lookalike, NOW).map((e) => e.id)).toEqual([
      'exchange',
    ]);
    // A longer prefix than the two share tells them apart.
    expect(findLookalikes(s, MAINNET, POISON, { ...lookalike, prefix: 9 }, NOW)).toEqual([]);
  });

  it('denies paying an unknown look-alike of a known address with LOOKALIKE_ADDRESS when the policy says deny', () => {
    const p = makePolicy(
      [
        bookRule('book', 2),
        {
          id: 'any',
          match: { destination: { kind: 'any' } },
          action: 'allow',
          approvals: [{ m: 2, role: 'approver' }],
        },
      ],
      { lookalike: { prefix: 8, suffix: 4, action: 'deny' } },
    );
    const { decision } = run({ state: state({ policies: [p] }), intent: makeIntent(rita, { to: POISON }) });
    expectDeny(decision, 'LOOKALIKE_ADDRESS');
    expect(decision.kind === 'deny' ? decision.message : '').toContain('exchange');
  });

  it('denies paying the known address while a look-alike of it sits (even pending) in the address book', () => {
    expectDeny(run({ state: state({ addresses: poisoned }) }).decision, 'LOOKALIKE_ADDRESS');
  });

  it('warns and goes on when the policy says warn', () => {
    const p = makePolicy(
      [
        {
          id: 'any',
          match: { destination: { kind: 'any' } },
          action: 'allow',
          approvals: [{ m: 2, role: 'approver' }],
        },
      ],
      { lookalike: { prefix: 8, suffix: 4, action: 'warn' } },
    );
    const { decision } = run({ state: state({ policies: [p] }), intent: makeIntent(rita, { to: POISON }) });
    expect(decision.kind).toBe('allow');
    expect(decision.kind === 'allow' ? decision.warnings.map((w) => w.code) : []).toContain(
      'LOOKALIKE_ADDRESS',
    );
  });

  it('denies when any policy in force says deny, though the one in force only warns', () => {
    const warn = makePolicy([bookRule('book', 2)], { lookalike: { prefix: 8, suffix: 4, action: 'warn' } });
    const s = state({
      policies: [warn, { value: makePolicy([bookRule('book', 2)]), activeFrom: NOW + DAY }],
      addresses: poisoned,
    });
    expectDeny(run({ state: s }).decision, 'LOOKALIKE_ADDRESS');
  });
});

describe('cancel window', () => {
  const windowed = makePolicy([bookRule('slow', 2, { cancelWindowMs: HOUR })]);
  const s = state({ policies: [windowed] });

  it('is pending until the window after the quorum has passed, then allows', () => {
    const i = makeIntent(rita, { createdAt: NOW - 2 * HOUR, expiresAt: NOW + 20 * HOUR });
    const d = intentDigest(i);
    const approvals = [
      approve(alice, d, { at: NOW - 50 * MINUTE }),
      approve(bob, d, { at: NOW - 30 * MINUTE, expiresAt: NOW + 20 * HOUR }),
    ];
    const { decision } = run({ state: s, intent: i, approvals });
    expect(decision).toMatchObject({ kind: 'pending', missing: [], cancelWindowEndsAt: NOW + 30 * MINUTE });
    const required = requireAllow(decision);
    expect(required).toMatchObject({ ok: false, code: 'QUORUM_NOT_MET' });
    expect(required.ok ? '' : required.message).toContain('cancel window');

    const approvalsLong = [
      approve(alice, d, { at: NOW - 50 * MINUTE, expiresAt: NOW + 20 * HOUR }),
      approve(bob, d, { at: NOW - 30 * MINUTE, expiresAt: NOW + 20 * HOUR }),
    ];
    expect(
      run({ state: s, intent: i, approvals: approvalsLong, now: NOW + 30 * MINUTE - 1 }).decision.kind,
    ).toBe('pending');
    expect(run({ state: s, intent: i, approvals: approvalsLong, now: NOW + 30 * MINUTE }).decision.kind).toBe(
      'allow',
    );
  });

  it('counts from the m-th earliest approval, so a late extra approval does not push the window back', () => {
    const i = makeIntent(rita, { createdAt: NOW - 3 * HOUR, expiresAt: NOW + 20 * HOUR });
    const d = intentDigest(i);
    const approvals = [
      approve(alice, d, { at: NOW - 2 * HOUR, expiresAt: NOW + 20 * HOUR }),
      approve(bob, d, { at: NOW - 90 * MINUTE, expiresAt: NOW + 20 * HOUR }),
      approve(carol, d, { at: NOW - MINUTE }),
    ];
    expect(run({ state: s, intent: i, approvals }).decision.kind).toBe('allow');
  });

  it('never starts before the intent was created (backdated approvals cannot skip it)', () => {
    const i = makeIntent(rita, { createdAt: NOW - 10 * MINUTE });
    const d = intentDigest(i);
    const approvals = [alice, bob].map((p) => approve(p, d, { at: NOW - 20 * HOUR, expiresAt: NOW + HOUR }));
    expect(run({ state: s, intent: i, approvals }).decision).toMatchObject({
      kind: 'pending',
      cancelWindowEndsAt: NOW - 10 * MINUTE + HOUR,
    });
  });

  it('lets a reject inside the window veto', () => {
    const i = makeIntent(rita);
    const d = intentDigest(i);
    const approvals = [
      approve(alice, d),
      approve(bob, d),
      approve(carol, d, { decision: 'reject', at: NOW }),
    ];
    expectDeny(run({ state: s, intent: i, approvals }).decision, 'INTENT_REJECTED');
  });
});

describe('warnings', () => {
  const codes = (d: PolicyDecision) => (d.kind === 'deny' ? [] : d.warnings.map((w) => w.code));

  it('warns FIRST_PAYMENT when the ledger never paid this destination', () => {
    expect(codes(run().decision)).toEqual(['FIRST_PAYMENT']);
    expect(
      codes(run({ ledger: [ledgerEntry({ amount: 1n, at: NOW - 30 * DAY, to: EXCHANGE })] }).decision),
    ).toEqual([]);
  });

  it('warns LARGE_AMOUNT above ten times the median of at least five earlier transfers of the wallet', () => {
    const history = (n: number) =>
      Array.from({ length: n }, (_, k) =>
        ledgerEntry({ amount: 10000n + BigInt(k), at: NOW - DAY * (k + 2), to: EXCHANGE }),
      );
    const big = makeIntent(rita, { amount: '100030' as Amount });
    expect(codes(run({ intent: big, ledger: history(5) }).decision)).toEqual(['LARGE_AMOUNT']);
    expect(codes(run({ intent: big, ledger: history(4) }).decision)).toEqual([]);
    const justUnder = makeIntent(rita, { amount: '100020' as Amount });
    expect(codes(run({ intent: justUnder, ledger: history(5) }).decision)).toEqual([]);
  });
});

describe('checkApproval: one approval, for the coordinator', () => {
  const i = makeIntent(rita);
  const d = intentDigest(i);
  const s = state();

  it('accepts a valid approval with its approver and decision', () => {
    expect(checkApproval(s, i, d, approve(alice, d, { decision: 'reject' }), NOW)).toEqual({
      ok: true,
      value: { approver: 'alice', decision: 'reject' },
    });
  });

  it('refuses each bad approval with its code', () => {
    const code = (a: SignedApproval) => {
      const r = checkApproval(s, i, d, a, NOW);
      return r.ok ? 'ok' : r.code;
    };
    expect(code(approve(alice, intentDigest(makeIntent(rita))))).toBe('APPROVAL_SIGNATURE_INVALID');
    expect(code(approve(rita, d))).toBe('SELF_APPROVAL');
    expect(code(approve(mallory, d))).toBe('NOT_A_MEMBER');
    expect(code(approve(erin, d))).toBe('DEVICE_REVOKED');
    expect(code(approve(alice, d, { at: NOW - HOUR, expiresAt: NOW }))).toBe('EXPIRED');
    expect(code(approve(alice, d, { at: NOW + HOUR }))).toBe('NOT_YET_VALID');
    const a = approve(alice, d);
    expect(code({ ...a, approval: { ...a.approval, device: 'alice-2' } })).toBe('UNKNOWN_DEVICE');
    expect(code({ ...a, approval: { ...a.approval, at: a.approval.at + 1 } })).toBe(
      'APPROVAL_SIGNATURE_INVALID',
    );
  });
});

describe('requireAllow', () => {
  it('keeps the code of a deny', () => {
    const { decision } = run({ intent: makeIntent(rita, { org: OTHER_ORG }) });
    expect(requireAllow(decision)).toMatchObject({ ok: false, code: 'WRONG_ORG' });
  });
});

describe('the decision is reached before approvals are looked at when it can be', () => {
  it('reports no approval checks for a deny in steps 1-7', () => {
    const { decision } = run({ intent: makeIntent(rita, { to: STRANGER }), approvers: [alice, bob] });
    expect(decision).toMatchObject({ kind: 'deny', approvalChecks: [] });
  });
});
