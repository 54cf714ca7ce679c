/**
 * Issue 8, item 1: every governance change that adds authority waits out the
 * delay on the verifier's own clock; only tightening binds at once. The table
 * of record is GOVERNANCE_EFFECTS; this file checks it kind by kind, then as a
 * property over random sequences of entries: nothing widens the set of
 * allowed transfers (or of accepted governance signatures) before the delay.
 */

import {
  ASSET,
  COLD_STORAGE,
  createOrg,
  DAY,
  type DeviceKey,
  defaultPolicy,
  EXCHANGE_DEPOSIT,
  HOUR,
  makeDevice,
  makePerson,
  type Person,
  propose,
  T0,
  unwrap,
  WALLET_ID,
} from '@custos/test-support/org';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyGovernance, type LaterKind } from '../src/governance.js';
import { GOVERNANCE_EFFECTS } from '../src/governance-effects.js';
import { signDigest } from '../src/keys.js';
import {
  type AddressEntry,
  type Approval,
  approvalDigest,
  GOVERNANCE_KINDS,
  type Intent,
  intentDigest,
  intent as intentSchema,
  type Policy,
  type SignedApproval,
  type SignedGovernanceEntry,
  type SignedIntent,
  type Wallet,
} from '../src/objects.js';
import { evaluate, type PolicyDecision } from '../src/policy.js';
import { type GovernanceState, hasRole, lookupDevice, signerActive, walletActive } from '../src/state.js';
import type { Address, Millis } from '../src/types.js';

const SEED = 'custos-test';
/** Same first and last four characters as COLD_STORAGE (address poisoning); the core compares text only. */
const POISONED = 'bcrt1qmrstxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxjk4r' as Address;

/**
 * A policy with a deny rule keyed on a role, a stricter rule for one
 * address-book entry, and the usual address-book rule, so that dropping a
 * role or removing an entry could loosen if they bound at once.
 */
function basePolicy(): Policy {
  const p = defaultPolicy(WALLET_ID);
  return {
    ...p,
    rules: [
      {
        id: 'deny-probation',
        match: { destination: { kind: 'any' }, requesterRoles: ['probation'] },
        action: 'deny',
      },
      {
        id: 'cold-needs-3',
        match: { destination: { kind: 'entries', ids: ['cold-storage'] } },
        action: 'allow',
        approvals: [{ m: 3, role: 'approver' }],
      },
      {
        id: 'any-needs-3',
        match: { destination: { kind: 'any' }, requesterRoles: ['requester'] },
        action: 'allow',
        approvals: [{ m: 3, role: 'approver' }],
      },
    ],
    limits: [],
  };
}

const org = createOrg({ policy: basePolicy() });
const [a1, a2, a3] = org.admins as [Person, Person, Person];
const ADMINS = [a1, a2, a3];
const [ap1, ap2] = org.approvers as [Person, Person, Person];
const DELAY = org.delayMs;

/** A second requester on probation, added by governance and past its delay at TB. */
const probation = makePerson(SEED, 'requester-2', ['requester', 'probation']);
/** When the base state below is settled: every set-up change is active. */
const TB: Millis = T0 + 2 * DAY;
const base: GovernanceState = unwrap(
  applyGovernance(org.state, propose(org.state, 'member.add', probation.member, [a1, a2]), T0),
);

const newcomer = makePerson(SEED, 'newcomer-1', ['requester', 'approver', 'admin']);
const extra = (member: string, n: number): DeviceKey => makeDevice(SEED, member, `${member}-extra${n}`);

const secondWallet: Wallet = {
  id: 'btc-alias',
  label: 'Second wallet',
  chain: 'bitcoin:regtest',
  assets: [ASSET],
  kind: 'bitcoin-wsh-sortedmulti',
  descriptor: 'wsh(sortedmulti(2,other...))',
};
const exchange: AddressEntry = {
  id: 'exchange',
  chain: 'bitcoin:regtest',
  address: EXCHANGE_DEPOSIT,
  label: 'Exchange deposit',
  tags: ['exchange'],
};
const poisoned: AddressEntry = {
  id: 'poisoned',
  chain: 'bitcoin:regtest',
  address: POISONED,
  label: 'Looks like cold',
};

// ---------------------------------------------------------------- helpers

let nonce = 0;

interface Signer {
  readonly member: string;
  readonly device: DeviceKey;
}

function devicesOf(p: Person): Signer[] {
  return p.devices.map((d) => ({ member: p.id, device: d }));
}

function signedIntent(
  by: Signer,
  fields: { wallet?: string; to?: Address; amount?: string; at: Millis },
): SignedIntent {
  nonce++;
  const i: Intent = intentSchema.parse({
    v: 1,
    org: org.orgId,
    wallet: fields.wallet ?? WALLET_ID,
    chain: 'bitcoin:regtest',
    asset: ASSET,
    amount: fields.amount ?? '50000',
    to: fields.to ?? COLD_STORAGE,
    requester: by.member,
    device: by.device.id,
    nonce: nonce.toString(16).padStart(32, '0'),
    createdAt: fields.at - 60_000,
    expiresAt: fields.at + HOUR,
  });
  return { intent: i, signature: signDigest(by.device.secretKey, intentDigest(i)) };
}

function approvalsBy(signers: readonly Signer[], intent: Intent, at: Millis): SignedApproval[] {
  const digest = intentDigest(intent);
  return signers.map(({ member, device }) => {
    const a: Approval = {
      v: 1,
      intent: digest,
      approver: member,
      device: device.id,
      decision: 'approve',
      at: at - 1000,
      expiresAt: at + HOUR,
    };
    return { approval: a, signature: signDigest(device.secretKey, approvalDigest(a)) };
  });
}

function decide(
  state: GovernanceState,
  si: SignedIntent,
  approvals: readonly SignedApproval[],
  now: Millis,
): PolicyDecision {
  return evaluate({ state, intent: si, approvals, ledger: [], now });
}

function apply(state: GovernanceState, signed: SignedGovernanceEntry, seenAt: Millis): GovernanceState {
  return unwrap(applyGovernance(state, signed, seenAt));
}

const everyApprover = [...org.approvers.flatMap(devicesOf)];

// ---------------------------------------------------------------- the table

describe('GOVERNANCE_EFFECTS: the classification of every entry kind', () => {
  it('has one row for every kind but the genesis, and only those', () => {
    const later = GOVERNANCE_KINDS.filter((k) => k !== 'genesis').sort();
    expect(Object.keys(GOVERNANCE_EFFECTS).sort()).toEqual(later);
  });

  it('says which kinds widen, which tighten, and which do both', () => {
    const by = (e: string) =>
      Object.entries(GOVERNANCE_EFFECTS)
        .filter(([, row]) => row.effect === e)
        .map(([k]) => k)
        .sort();
    expect(by('widens')).toEqual([
      'address.add',
      'asset.add',
      'device.add',
      'member.add',
      'signer.add',
      'wallet.add',
    ]);
    expect(by('tightens')).toEqual([
      'asset.remove',
      'device.revoke',
      'freeze',
      'member.remove',
      'signer.remove',
    ]);
    expect(by('both')).toEqual(['address.remove', 'policy.set', 'quorum.set', 'role.set']);
    expect(by('restores')).toEqual(['unfreeze']);
    expect(GOVERNANCE_EFFECTS.freeze.signedBy).toBe('one admin or watcher');
  });
});

// ---------------------------------------------------------------- kind by kind

describe('widening kinds wait out the delay on the verifier clock', () => {
  const seenAt = TB;
  const during = seenAt + DELAY - 1;
  const after = seenAt + DELAY;

  it("device.add: a requester's new device signs no intent before the delay (DEVICE_NOT_ACTIVE)", () => {
    const d = extra(org.requester.id, 1);
    const s = apply(
      base,
      propose(
        base,
        'device.add',
        { member: org.requester.id, device: { id: d.id, kind: 'ed25519', publicKey: d.publicKey } },
        [a1, a2],
      ),
      seenAt,
    );
    const early = signedIntent({ member: org.requester.id, device: d }, { at: during });
    expect(decide(s, early, approvalsBy(everyApprover, early.intent, during), during)).toMatchObject({
      kind: 'deny',
      code: 'DEVICE_NOT_ACTIVE',
    });
    const late = signedIntent({ member: org.requester.id, device: d }, { at: after });
    expect(decide(s, late, approvalsBy(everyApprover, late.intent, after), after).kind).toBe('allow');
  });

  it("device.add: an approver's new device is not counted before the delay", () => {
    const d = extra(ap1.id, 1);
    const s = apply(
      base,
      propose(
        base,
        'device.add',
        { member: ap1.id, device: { id: d.id, kind: 'ed25519', publicKey: d.publicKey } },
        [a1, a2],
      ),
      seenAt,
    );
    // Three approvals needed: approver-1's new device, approver-2 and approver-3... but approver-1's old one is not used.
    const voters = [
      { member: ap1.id, device: d },
      ...devicesOf(ap2),
      ...devicesOf(org.approvers[2] as Person),
    ];
    const early = signedIntent(devicesOf(org.requester)[0] as Signer, { at: during });
    const e = decide(s, early, approvalsBy(voters, early.intent, during), during);
    expect(e.kind).toBe('pending');
    expect(e.kind === 'pending' && e.approvalChecks[0]).toMatchObject({
      counted: false,
      code: 'DEVICE_NOT_ACTIVE',
    });
    const late = signedIntent(devicesOf(org.requester)[0] as Signer, { at: after });
    expect(decide(s, late, approvalsBy(voters, late.intent, after), after).kind).toBe('allow');
  });

  it("device.add: an admin's new device signs no governance entry before the delay", () => {
    const d = extra(a1.id, 1);
    const s = apply(
      base,
      propose(
        base,
        'device.add',
        { member: a1.id, device: { id: d.id, kind: 'ed25519', publicKey: d.publicKey } },
        [a1, a2],
      ),
      seenAt,
    );
    const next = propose(s, 'freeze', { reason: 'test' }, [d]);
    expect(applyGovernance(s, next, during)).toMatchObject({
      ok: false,
      code: 'GOVERNANCE_SIGNATURE_INVALID',
    });
    expect(applyGovernance(s, next, after).ok).toBe(true);
  });

  it('member.add: a new member neither requests nor approves nor signs governance before the delay', () => {
    const s = apply(base, propose(base, 'member.add', newcomer.member, [a1, a2]), seenAt);
    expect(lookupDevice(s, newcomer.id, newcomer.device.id, during)).toMatchObject({
      ok: false,
      code: 'DEVICE_NOT_ACTIVE',
    });
    expect(hasRole(s, newcomer.id, 'approver', during)).toBe(false);
    const own = signedIntent(devicesOf(newcomer)[0] as Signer, { at: during });
    expect(decide(s, own, approvalsBy(everyApprover, own.intent, during), during)).toMatchObject({
      kind: 'deny',
      code: 'DEVICE_NOT_ACTIVE',
    });
    expect(applyGovernance(s, propose(s, 'freeze', { reason: 'x' }, [newcomer]), during)).toMatchObject({
      ok: false,
      code: 'GOVERNANCE_SIGNATURE_INVALID',
    });
    expect(lookupDevice(s, newcomer.id, newcomer.device.id, after).ok).toBe(true);
    expect(hasRole(s, newcomer.id, 'approver', after)).toBe(true);
  });

  it('wallet.add: the new wallet spends nothing before the delay (WALLET_NOT_ACTIVE)', () => {
    const s = apply(base, propose(base, 'wallet.add', secondWallet, [a1, a2]), seenAt);
    expect(walletActive(s, secondWallet.id, during)).toBe(false);
    const early = signedIntent(devicesOf(org.requester)[0] as Signer, {
      wallet: secondWallet.id,
      at: during,
    });
    expect(decide(s, early, approvalsBy(everyApprover, early.intent, during), during)).toMatchObject({
      kind: 'deny',
      code: 'WALLET_NOT_ACTIVE',
    });
    const late = signedIntent(devicesOf(org.requester)[0] as Signer, { wallet: secondWallet.id, at: after });
    expect(decide(s, late, approvalsBy(everyApprover, late.intent, after), after).kind).toBe('allow');
  });

  it('signer.add: the new signer is not active before the delay', () => {
    const s = apply(
      base,
      propose(base, 'signer.add', { id: 'signer-9', publicKey: extra('signer', 9).publicKey }, [a1, a2]),
      seenAt,
    );
    expect(signerActive(s, 'signer-9', during)).toBe(false);
    expect(signerActive(s, 'signer-9', after)).toBe(true);
    expect(signerActive(s, 'signer-1', during)).toBe(true);
  });

  it('address.add: the destination waits (DESTINATION_NOT_ACTIVE), its look-alike is flagged at once', () => {
    const s = apply(base, propose(base, 'address.add', exchange, [a1, a2]), seenAt);
    // any-needs-3 still allows the stranger with 3 approvals: the entry must not make it cheaper before the delay.
    const early = signedIntent(devicesOf(org.requester)[0] as Signer, { to: EXCHANGE_DEPOSIT, at: during });
    expect(decide(s, early, approvalsBy(everyApprover, early.intent, during), during).kind).toBe('allow');
    const two = approvalsBy([...devicesOf(ap1), ...devicesOf(ap2)], early.intent, during);
    expect(decide(s, early, two, during).kind).toBe('pending');
    const p = apply(base, propose(base, 'address.add', poisoned, [a1, a2]), seenAt);
    const toPoison = signedIntent(devicesOf(org.requester)[0] as Signer, { to: POISONED, at: during });
    expect(decide(p, toPoison, approvalsBy(everyApprover, toPoison.intent, during), during)).toMatchObject({
      kind: 'deny',
      code: 'LOOKALIKE_ADDRESS',
    });
  });

  it('quorum.set: a lower quorum waits, a higher one binds at once', () => {
    const lower = apply(base, propose(base, 'quorum.set', { quorum: 1, delayMs: DELAY }, [a1, a2]), seenAt);
    const oneAdmin = propose(lower, 'signer.remove', { id: 'signer-1' }, [a1]);
    expect(applyGovernance(lower, oneAdmin, during)).toMatchObject({ ok: false, code: 'QUORUM_NOT_MET' });
    expect(applyGovernance(lower, oneAdmin, after).ok).toBe(true);
    const higher = apply(base, propose(base, 'quorum.set', { quorum: 3, delayMs: DELAY }, [a1, a2]), seenAt);
    const two = propose(higher, 'signer.remove', { id: 'signer-1' }, [a1, a2]);
    expect(applyGovernance(higher, two, seenAt)).toMatchObject({ ok: false, code: 'QUORUM_NOT_MET' });
  });
});

describe('mixed kinds: what they remove binds at once, what they add waits', () => {
  const seenAt = TB;
  const during = seenAt + DELAY - 1;
  const after = seenAt + DELAY;

  it('role.set: dropping a role a deny rule keyed on keeps the deny until the delay', () => {
    const s = apply(
      base,
      propose(base, 'role.set', { member: probation.id, roles: ['requester'] }, [a1, a2]),
      seenAt,
    );
    const early = signedIntent(devicesOf(probation)[0] as Signer, { at: during });
    expect(decide(s, early, approvalsBy(everyApprover, early.intent, during), during)).toMatchObject({
      kind: 'deny',
      code: 'POLICY_DENIED',
    });
    const late = signedIntent(devicesOf(probation)[0] as Signer, { at: after });
    expect(decide(s, late, approvalsBy(everyApprover, late.intent, after), after).kind).toBe('allow');
  });

  it('role.set: dropping the requester role stops requests at once', () => {
    const s = apply(
      base,
      propose(base, 'role.set', { member: org.requester.id, roles: [] }, [a1, a2]),
      seenAt,
    );
    const i = signedIntent(devicesOf(org.requester)[0] as Signer, { at: seenAt });
    expect(decide(s, i, approvalsBy(everyApprover, i.intent, seenAt), seenAt)).toMatchObject({
      kind: 'deny',
      code: 'NOT_AUTHORIZED',
    });
  });

  it('address.remove: the destination is refused at once, its look-alike protection lasts the delay', () => {
    const s = apply(base, propose(base, 'address.remove', { id: 'cold-storage' }, [a1, a2]), seenAt);
    const toPoison = signedIntent(devicesOf(org.requester)[0] as Signer, { to: POISONED, at: during });
    expect(decide(s, toPoison, approvalsBy(everyApprover, toPoison.intent, during), during)).toMatchObject({
      kind: 'deny',
      code: 'LOOKALIKE_ADDRESS',
    });
    const later = signedIntent(devicesOf(org.requester)[0] as Signer, { to: POISONED, at: after });
    expect(decide(s, later, approvalsBy(everyApprover, later.intent, after), after).kind).toBe('allow');
  });

  it('policy.set: a looser policy binds only after the delay, a stricter one at once', () => {
    const loose: Policy = {
      ...basePolicy(),
      rules: [
        {
          id: 'any-1',
          match: { destination: { kind: 'any' } },
          action: 'allow',
          approvals: [{ m: 1, role: 'approver' }],
        },
      ],
    };
    const s = apply(base, propose(base, 'policy.set', { policy: loose }, [a1, a2]), seenAt);
    const early = signedIntent(devicesOf(org.requester)[0] as Signer, { at: during });
    expect(decide(s, early, approvalsBy(devicesOf(ap1), early.intent, during), during).kind).toBe('pending');
    const late = signedIntent(devicesOf(org.requester)[0] as Signer, { at: after });
    expect(decide(s, late, approvalsBy(devicesOf(ap1), late.intent, after), after).kind).toBe('allow');
    const strict: Policy = { ...basePolicy(), rules: [] };
    const t = apply(base, propose(base, 'policy.set', { policy: strict }, [a1, a2]), seenAt);
    const now = signedIntent(devicesOf(org.requester)[0] as Signer, { at: seenAt });
    expect(decide(t, now, approvalsBy(everyApprover, now.intent, seenAt), seenAt)).toMatchObject({
      kind: 'deny',
      code: 'POLICY_DENIED',
    });
  });

  it('policy.set: a zero-approval rule (issue 13) allows nothing without approvals before the delay, then pays out alone', () => {
    const payouts = (maxAmount: string): Policy => ({
      ...basePolicy(),
      rules: [
        {
          id: 'payouts',
          match: {
            destination: { kind: 'any' },
            wallets: [WALLET_ID],
            assets: [ASSET],
            maxAmount: maxAmount as Policy['limits'][number]['max'],
          },
          action: 'allow',
          approvals: [],
        },
        ...basePolicy().rules,
      ],
      limits: [
        {
          id: 'hot-daily',
          scope: 'wallet-asset',
          wallet: WALLET_ID,
          asset: ASSET,
          windowMs: DAY,
          max: '1000000' as Policy['limits'][number]['max'],
        },
      ],
    });
    const requester = devicesOf(org.requester)[0] as Signer;
    const s = apply(base, propose(base, 'policy.set', { policy: payouts('100000') }, [a1, a2]), seenAt);
    // Within the delay the old policy still binds: three approvers, as before the change.
    const early = signedIntent(requester, { to: EXCHANGE_DEPOSIT, at: during });
    expect(decide(s, early, [], during)).toMatchObject({ kind: 'pending' });
    expect(decide(s, early, approvalsBy(everyApprover, early.intent, during), during).kind).toBe('allow');
    const late = signedIntent(requester, { to: EXCHANGE_DEPOSIT, at: after });
    expect(decide(s, late, [], after)).toMatchObject({ kind: 'allow', rules: ['payouts'], approvers: [] });

    // Widening it (a higher per-transaction maximum) waits out the delay in its turn.
    const settled = after + 1;
    const wider = apply(
      s,
      propose(s, 'policy.set', { policy: payouts('500000') }, [a1, a2], settled),
      settled,
    );
    const big = signedIntent(requester, { to: EXCHANGE_DEPOSIT, amount: '400000', at: settled + DELAY - 1 });
    expect(decide(wider, big, [], settled + DELAY - 1)).toMatchObject({ kind: 'pending' });
    const bigLater = signedIntent(requester, { to: EXCHANGE_DEPOSIT, amount: '400000', at: settled + DELAY });
    expect(decide(wider, bigLater, [], settled + DELAY)).toMatchObject({ kind: 'allow', approvers: [] });
  });
});

describe('tightening kinds bind at once', () => {
  const seenAt = TB;
  const i = () => signedIntent(devicesOf(org.requester)[0] as Signer, { at: seenAt });

  it('device.revoke and member.remove', () => {
    const revoked = apply(
      base,
      propose(base, 'device.revoke', { member: org.requester.id, device: org.requester.device.id }, [a1, a2]),
      seenAt,
    );
    const a = i();
    expect(decide(revoked, a, approvalsBy(everyApprover, a.intent, seenAt), seenAt)).toMatchObject({
      code: 'DEVICE_REVOKED',
    });
    const removed = apply(
      base,
      propose(base, 'member.remove', { member: org.requester.id }, [a1, a2]),
      seenAt,
    );
    const b = i();
    expect(decide(removed, b, approvalsBy(everyApprover, b.intent, seenAt), seenAt)).toMatchObject({
      code: 'NOT_A_MEMBER',
    });
  });

  it('freeze (one watcher) binds at once; unfreeze (the quorum) restores at once', () => {
    const frozen = apply(base, propose(base, 'freeze', { reason: 'theft' }, [org.watcher]), seenAt);
    const a = i();
    expect(decide(frozen, a, approvalsBy(everyApprover, a.intent, seenAt), seenAt)).toMatchObject({
      code: 'FROZEN',
    });
    const thawed = apply(
      frozen,
      propose(frozen, 'unfreeze', { reason: 'false alarm' }, [a1, a2]),
      seenAt + 1,
    );
    const b = i();
    expect(decide(thawed, b, approvalsBy(everyApprover, b.intent, seenAt + 1), seenAt + 1).kind).toBe(
      'allow',
    );
  });

  it('signer.remove', () => {
    const s = apply(base, propose(base, 'signer.remove', { id: 'signer-1' }, [a1, a2]), seenAt);
    expect(signerActive(s, 'signer-1', seenAt)).toBe(false);
  });
});

// ---------------------------------------------------------------- property

/** Everyone who could sign anything, with every device they may ever have. */
const PEOPLE: Person[] = [...org.members, probation, newcomer];
const EXTRA_DEVICES: Signer[] = PEOPLE.map((p) => ({ member: p.id, device: extra(p.id, 1) }));
const ALL_SIGNERS: Signer[] = [...PEOPLE.flatMap(devicesOf), ...EXTRA_DEVICES];

const POLICIES: Policy[] = [
  basePolicy(),
  {
    ...basePolicy(),
    rules: [
      {
        id: 'any-1',
        match: { destination: { kind: 'any' } },
        action: 'allow',
        approvals: [{ m: 1, role: 'approver' }],
      },
    ],
  },
  { ...basePolicy(), rules: [] },
  {
    ...basePolicy(),
    rules: [
      {
        id: 'book-2',
        match: { destination: { kind: 'address-book' } },
        action: 'allow',
        approvals: [{ m: 2, role: 'approver' }],
      },
    ],
  },
  // An automated tier (issue 13): no approvals, bounded by a limit; adding it is a loosening like any other.
  {
    ...basePolicy(),
    rules: [
      {
        id: 'auto-any',
        match: {
          destination: { kind: 'any' },
          wallets: [WALLET_ID],
          assets: [ASSET],
          maxAmount: '50000000' as Policy['limits'][number]['max'],
        },
        action: 'allow',
        approvals: [],
      },
    ],
    limits: [
      {
        id: 'auto-daily',
        scope: 'wallet-asset',
        asset: ASSET,
        windowMs: DAY,
        max: '100000000' as Policy['limits'][number]['max'],
      },
    ],
    lookalike: { prefix: 4, suffix: 4, action: 'warn' },
  },
  {
    ...basePolicy(),
    rules: [
      {
        id: 'tag-1',
        match: { destination: { kind: 'tags', tags: ['exchange'] } },
        action: 'allow',
        approvals: [{ m: 1, members: [ap1.id, newcomer.id] }],
      },
    ],
    lookalike: { prefix: 4, suffix: 4, action: 'warn' },
  },
];

type EntryPlan = { kind: LaterKind; body: unknown; by: 'admins' | 'watcher' };

const rolesArb = fc.subarray(['requester', 'approver', 'admin', 'probation']);
const personArb = fc.constantFrom(...PEOPLE.filter((p) => p.id !== newcomer.id));

const entryArb: fc.Arbitrary<EntryPlan> = fc.oneof(
  fc.constant<EntryPlan>({ kind: 'member.add', body: newcomer.member, by: 'admins' }),
  personArb.map<EntryPlan>((p) => ({ kind: 'member.remove', body: { member: p.id }, by: 'admins' })),
  fc.constantFrom(...EXTRA_DEVICES).map<EntryPlan>((s) => ({
    kind: 'device.add',
    body: { member: s.member, device: { id: s.device.id, kind: 'ed25519', publicKey: s.device.publicKey } },
    by: 'admins',
  })),
  personArb.map<EntryPlan>((p) => ({
    kind: 'device.revoke',
    body: { member: p.id, device: p.device.id },
    by: 'admins',
  })),
  fc
    .tuple(fc.constantFrom(...PEOPLE), rolesArb)
    .map<EntryPlan>(([p, roles]) => ({ kind: 'role.set', body: { member: p.id, roles }, by: 'admins' })),
  fc
    .constantFrom(...POLICIES)
    .map<EntryPlan>((policy) => ({ kind: 'policy.set', body: { policy }, by: 'admins' })),
  fc.constantFrom(exchange, poisoned).map<EntryPlan>((a) => ({ kind: 'address.add', body: a, by: 'admins' })),
  fc
    .constantFrom('cold-storage', 'exchange')
    .map<EntryPlan>((id) => ({ kind: 'address.remove', body: { id }, by: 'admins' })),
  fc.constant<EntryPlan>({ kind: 'wallet.add', body: secondWallet, by: 'admins' }),
  // The registry binds Safe wallets only; a Bitcoin wallet's transfers must not change with it.
  fc.constant<EntryPlan>({
    kind: 'asset.add',
    body: { id: 'btc-registered', chain: 'bitcoin:regtest', kind: 'native', symbol: 'BTC', decimals: 8 },
    by: 'admins',
  }),
  fc.constant<EntryPlan>({ kind: 'asset.remove', body: { id: 'btc-registered' }, by: 'admins' }),
  fc.constant<EntryPlan>({
    kind: 'signer.add',
    body: { id: 'signer-9', publicKey: extra('signer', 9).publicKey },
    by: 'admins',
  }),
  fc
    .constantFrom('signer-1', 'signer-9')
    .map<EntryPlan>((id) => ({ kind: 'signer.remove', body: { id }, by: 'admins' })),
  fc
    .tuple(fc.integer({ min: 1, max: 3 }), fc.constantFrom(0, HOUR, DAY, 2 * DAY))
    .map<EntryPlan>(([quorum, delayMs]) => ({ kind: 'quorum.set', body: { quorum, delayMs }, by: 'admins' })),
  fc.constant<EntryPlan>({ kind: 'freeze', body: { reason: 'check' }, by: 'watcher' }),
  fc.constant<EntryPlan>({ kind: 'unfreeze', body: { reason: 'check' }, by: 'admins' }),
);

/** Applies what it can; an entry the state refuses (GOVERNANCE_INVALID...) is simply not part of the run. */
function applyPlan(state: GovernanceState, plan: EntryPlan, seenAt: Millis): GovernanceState {
  const signers = plan.by === 'watcher' ? [org.watcher] : ADMINS;
  const signed = propose(state, plan.kind, plan.body as never, signers);
  const r = applyGovernance(state, signed, seenAt);
  return r.ok ? r.value : state;
}

const probeArb = fc.record({
  requester: fc.constantFrom(...ALL_SIGNERS),
  wallet: fc.constantFrom(WALLET_ID, secondWallet.id),
  to: fc.constantFrom(COLD_STORAGE, EXCHANGE_DEPOSIT, POISONED),
  amount: fc.constantFrom('1000', '50000000', '200000000'),
  approvers: fc.subarray(ALL_SIGNERS, { minLength: 0 }),
});

describe('property: nothing that widens the set of allowed transfers applies before the delay', () => {
  it('an intent allowed after a run of changes seen within the delay was already allowed before them', () => {
    fc.assert(
      fc.property(
        fc.array(entryArb, { minLength: 1, maxLength: 3 }),
        fc.array(fc.integer({ min: 0, max: DELAY / 4 }), { minLength: 3, maxLength: 3 }),
        fc.integer({ min: 0, max: DELAY / 4 - 1 }),
        fc.array(probeArb, { minLength: 3, maxLength: 3 }),
        (plans, gaps, wait, probes) => {
          let state = base;
          let seen = TB;
          plans.forEach((plan, k) => {
            seen += gaps[k] ?? 0;
            state = applyPlan(state, plan, seen);
          });
          // Every change was seen at or after TB; check before the first one's delay ends.
          const now = seen + wait;
          expect(now).toBeLessThan(TB + DELAY);
          for (const probe of probes) {
            const si = signedIntent(probe.requester, {
              wallet: probe.wallet,
              to: probe.to,
              amount: probe.amount,
              at: now,
            });
            const approvals = approvalsBy(probe.approvers, si.intent, now);
            const after = decide(state, si, approvals, now);
            const before = decide(base, si, approvals, now);
            if (after.kind === 'allow') expect(before.kind).toBe('allow');
          }
        },
      ),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 80) },
    );
  });

  it('a governance entry accepted after a run of changes within the delay was accepted before them', () => {
    fc.assert(
      fc.property(
        fc.array(entryArb, { minLength: 1, maxLength: 3 }),
        fc.subarray(ALL_SIGNERS, { minLength: 1, maxLength: 4 }),
        (plans, signers) => {
          let state = base;
          plans.forEach((plan, k) => {
            state = applyPlan(state, plan, TB + k);
          });
          const now = TB + DELAY / 2;
          const sign = (s: GovernanceState) =>
            propose(
              s,
              'address.add',
              { ...exchange, id: 'probe' },
              signers.map((x) => x.device),
            );
          // The probe entry must follow each state's own head, so each state gets its own copy.
          const afterOk = applyGovernance(state, sign(state), now).ok;
          const beforeOk = applyGovernance(base, sign(base), now).ok;
          if (afterOk) expect(beforeOk).toBe(true);
        },
      ),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 60) },
    );
  });
});
