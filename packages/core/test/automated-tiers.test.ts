/**
 * Automated tiers (issue 13): a rule that allows with no approval at all, as
 * an exchange's customer payouts need, and only when the policy bounds it: a
 * per-transaction maximum and a rolling limit for every wallet and asset it
 * covers, else the policy does not decode (UNBOUNDED_AUTOMATION). The policy
 * engine then treats it like any rule: the verifier's own ledger stops it at
 * its limits, destinations "any" still meet the look-alike check, and with
 * nobody to read a warning a look-alike is refused even where the policy
 * only warns.
 */
import {
  ASSET,
  createOrg,
  DAY,
  defaultPolicy,
  type Person,
  propose,
  T0,
  WALLET_ID,
} from '@custos/test-support/org';
import { describe, expect, it } from 'vitest';
import { decode } from '../src/decode.js';
import { CustosError } from '../src/errors.js';
import { applyGovernance } from '../src/governance.js';
import {
  automationProblem,
  genesisBody,
  governanceEntry,
  intentDigest,
  isAutomatedRule,
  type LedgerEntry,
  type Policy,
  type PolicyRule,
} from '../src/objects.js';
import { evaluate, type PolicyDecision, requireAllow } from '../src/policy.js';
import type { GovernanceState } from '../src/state.js';
import type { Address, Amount } from '../src/types.js';
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
  POISON,
  person,
  STRANGER,
  SUPPLIER,
  signIntent,
} from './support/policy-fixture.js';

const backend = person('backend'); // the exchange's backend: a service requester
const alice = person('alice');
const bob = person('bob');

/** A customer's address: nobody at the exchange knows it, it is in no book. */
const CUSTOMER = STRANGER;
/** Customers' addresses, all different (the engine compares text only). */
const customer = (k: number) => `bc1qcustomer${k}`.padEnd(42, '0') as Address;

/** Up to 0.001 BTC per payout, from the hot wallet, to anyone, with no approval. */
const payouts = (extra: Partial<PolicyRule['match']> = {}): PolicyRule => ({
  id: 'payouts',
  match: {
    destination: { kind: 'any' },
    wallets: ['hot'],
    assets: ['BTC'],
    maxAmount: '100000' as Amount,
    requesterRoles: ['service'],
    ...extra,
  },
  action: 'allow',
  approvals: [],
});

const HOT_DAILY = {
  id: 'hot-daily',
  scope: 'wallet-asset' as const,
  wallet: 'hot',
  asset: 'BTC',
  windowMs: 24 * HOUR,
  max: '250000' as Amount,
};
const PER_CUSTOMER = {
  id: 'per-customer',
  scope: 'destination' as const,
  asset: 'BTC',
  windowMs: 24 * HOUR,
  max: '150000' as Amount,
};

function exchangeState(p: Policy): GovernanceState {
  return buildState({
    members: [
      { person: backend, roles: ['requester', 'service'] },
      { person: alice, roles: ['approver'] },
      { person: bob, roles: ['approver'] },
    ],
    policies: [p],
    addresses: [entry('exchange', EXCHANGE), entry('supplier', SUPPLIER)],
  });
}

/** `o` without `key` (the strict schemas refuse a field set to undefined). */
function without<T extends object>(o: T, key: keyof T): T {
  const copy = { ...o };
  delete copy[key];
  return copy;
}

/** The automated rule with one field of its match left out. */
const payoutsWithout = (key: keyof PolicyRule['match']): PolicyRule => ({
  ...payouts(),
  match: without(payouts().match, key),
});

function refusalOf(f: () => unknown): { code: string; message: string } | undefined {
  try {
    f();
    return undefined;
  } catch (err) {
    if (err instanceof CustosError) return { code: err.code, message: err.message };
    throw err;
  }
}

/** Evaluates the backend's payouts one after another, a minute apart; allowed ones go to the ledger. */
function payOut(
  s: GovernanceState,
  specs: readonly { amount: string; to?: Address }[],
): { results: string[]; ledger: LedgerEntry[] } {
  const ledger: LedgerEntry[] = [];
  const results = specs.map((spec, k) => {
    const now = NOW + k * MINUTE;
    const i = makeIntent(backend, {
      amount: spec.amount as Amount,
      to: spec.to ?? CUSTOMER,
      createdAt: now - MINUTE,
      expiresAt: now + HOUR,
    });
    const d = evaluate({ state: s, intent: signIntent(backend, i), approvals: [], ledger, now });
    if (d.kind === 'allow') ledger.push(ledgerOf(i, now));
    return d.kind === 'deny' ? d.code : d.kind;
  });
  return { results, ledger };
}

function decideOne(s: GovernanceState, to: Address, amount = '50000'): PolicyDecision {
  const i = makeIntent(backend, { to, amount: amount as Amount });
  return evaluate({ state: s, intent: signIntent(backend, i), approvals: [], ledger: [], now: NOW });
}

describe('a zero-approval rule decodes only when it is bounded (UNBOUNDED_AUTOMATION)', () => {
  it('accepts a rule with approvals [] , a per-transaction maximum and a wallet-asset limit for its wallet and asset', () => {
    const p = makePolicy([payouts()], { limits: [HOT_DAILY, PER_CUSTOMER] });
    expect(isAutomatedRule(p.rules[0] as PolicyRule)).toBe(true);
    // A limit naming no wallet binds every wallet, each on its own: it covers a rule over any wallet.
    const anyWallet = makePolicy([payoutsWithout('wallets')], { limits: [without(HOT_DAILY, 'wallet')] });
    expect(anyWallet.rules[0]?.approvals).toEqual([]);
  });

  it('still refuses an allow rule that leaves approvals out: "no approval" is always written down', () => {
    const rule = without(payouts(), 'approvals');
    expect(refusalOf(() => makePolicy([rule], { limits: [HOT_DAILY] }))).toMatchObject({
      code: 'INVALID_VALUE',
      message: expect.stringContaining('approvals: []'),
    });
  });

  const unbounded: [string, PolicyRule, Policy['limits']][] = [
    ['no per-transaction maximum', payoutsWithout('maxAmount'), [HOT_DAILY]],
    [
      'no assets named and no wallet-asset limit that can apply',
      payoutsWithout('assets'),
      [{ ...HOT_DAILY, wallet: 'cold' }],
    ],
    ['no rolling limit at all', payouts(), []],
    ['only a per-destination limit (a thief pays many destinations)', payouts(), [PER_CUSTOMER]],
    [
      'only a per-requester limit',
      payouts(),
      [{ ...PER_CUSTOMER, id: 'per-backend', scope: 'requester' as const }],
    ],
    ['a limit for another asset', payouts(), [{ ...HOT_DAILY, asset: 'LBTC' }]],
    ['a limit for another wallet', payouts(), [{ ...HOT_DAILY, wallet: 'cold' }]],
    ['one of two wallets without a limit', payouts({ wallets: ['hot', 'cold'] }), [HOT_DAILY]],
    ['any wallet, but a limit naming one wallet', payoutsWithout('wallets'), [HOT_DAILY]],
  ];
  it.each(unbounded)('refuses a zero-approval rule with %s', (_why, rule, limits) => {
    const r = refusalOf(() => makePolicy([rule], { limits }));
    expect(r?.code).toBe('UNBOUNDED_AUTOMATION');
    expect(r?.message).toContain('rule payouts allows with no approval');
  });

  it('does not decode in a governance entry or a genesis either: the coordinator and every signer refuse it', () => {
    const unbounded = {
      v: 1,
      rules: [payouts()],
      limits: [],
      feeCaps: [],
      lookalike: { prefix: 8, suffix: 4, action: 'deny' },
    };
    const entry = {
      v: 1,
      org: 'a'.repeat(64),
      seq: 1,
      prev: 'b'.repeat(64),
      kind: 'policy.set',
      body: { policy: unbounded },
      proposedAt: NOW,
    };
    expect(refusalOf(() => decode(governanceEntry, JSON.stringify(entry)))?.code).toBe(
      'UNBOUNDED_AUTOMATION',
    );
    const genesis = {
      name: 'Exchange',
      quorum: 1,
      delayMs: 0,
      members: [{ id: 'admin-1', name: 'Admin', roles: ['admin'], devices: [] }],
      policy: unbounded,
      addresses: [],
      wallets: [],
      signers: [],
    };
    expect(refusalOf(() => genesisBody.parse(genesis))?.code).toBe('UNBOUNDED_AUTOMATION');
  });

  it('is a property of the policy alone (automationProblem), so a genesis, a policy.set and every signer refuse it alike', () => {
    expect(automationProblem({ rules: [payouts()], limits: [] })?.code).toBe('UNBOUNDED_AUTOMATION');
    expect(automationProblem({ rules: [payouts()], limits: [HOT_DAILY] })).toBeUndefined();
    // Rules with approvals, and deny rules, need no limit.
    expect(automationProblem({ rules: [bookRule('book', 1)], limits: [] })).toBeUndefined();
  });
});

describe('evaluate with an automated tier', () => {
  const policy = makePolicy(
    [
      payouts(),
      // Larger payouts go to people, as before.
      {
        id: 'large',
        match: { destination: { kind: 'any' } },
        action: 'allow',
        approvals: [{ m: 2, role: 'approver' }],
      },
    ],
    { limits: [HOT_DAILY, PER_CUSTOMER], lookalike: { prefix: 8, suffix: 4, action: 'warn' } },
  );
  const s = exchangeState(policy);

  it("allows a customer's payout with no approval, to an address in no book", () => {
    const d = decideOne(s, CUSTOMER);
    expect(d).toMatchObject({ kind: 'allow', rules: ['payouts'], approvers: [] });
    expect(requireAllow(d).ok).toBe(true);
  });

  it('sends a payout above the per-transaction maximum to the next rule, which needs approvers', () => {
    const d = decideOne(s, CUSTOMER, '100001');
    expect(d.kind).toBe('pending');
    expect(d.kind === 'pending' && d.missing[0]?.rule).toBe('large');
  });

  it('THREATS 20: stops the payouts at the wallet limit from the verifier own ledger (LIMIT_EXCEEDED)', () => {
    const { results, ledger } = payOut(
      s,
      Array.from({ length: 6 }, (_, k) => ({ amount: '60000', to: customer(k) })),
    );
    // 4 x 60,000 = 240,000 <= 250,000; the fifth would be 300,000.
    expect(results).toEqual(['allow', 'allow', 'allow', 'allow', 'LIMIT_EXCEEDED', 'LIMIT_EXCEEDED']);
    expect(ledger.reduce((sum, e) => sum + BigInt(e.amount), 0n)).toBeLessThanOrEqual(250_000n);
  });

  it('stops one customer at the per-destination limit while others are still paid', () => {
    const other = SUPPLIER;
    const { results } = payOut(s, [
      { amount: '100000' },
      { amount: '60000' }, // the same customer: 160,000 > 150,000
      { amount: '60000', to: other },
    ]);
    expect(results).toEqual(['allow', 'LIMIT_EXCEEDED', 'allow']);
  });

  it('refuses a look-alike of an address-book entry though the policy only warns: no approver would see it', () => {
    const d = decideOne(s, POISON);
    expect(d).toMatchObject({ kind: 'deny', code: 'LOOKALIKE_ADDRESS' });
    expect(d.kind === 'deny' && d.message).toContain('automated');
    // The same look-alike through a rule with approvers is a warning the approvers see.
    const withPeople = decideOne(s, POISON, '120000');
    expect(withPeople.kind).toBe('pending');
    expect(withPeople.kind === 'pending' && withPeople.warnings.map((w) => w.code)).toContain(
      'LOOKALIKE_ADDRESS',
    );
  });

  it('refuses a look-alike with LOOKALIKE_ADDRESS when the policy says deny, as for every rule', () => {
    const strict = exchangeState(
      makePolicy([payouts()], { limits: [HOT_DAILY], lookalike: { prefix: 8, suffix: 4, action: 'deny' } }),
    );
    expect(decideOne(strict, POISON)).toMatchObject({ kind: 'deny', code: 'LOOKALIKE_ADDRESS' });
  });

  it('applies only to the requester roles it names: a person with the requester role alone gets the approval rule', () => {
    const rita = person('rita');
    const st = buildState({
      members: [
        { person: backend, roles: ['requester', 'service'] },
        { person: rita, roles: ['requester'] },
        { person: alice, roles: ['approver'] },
        { person: bob, roles: ['approver'] },
      ],
      policies: [policy],
    });
    const i = makeIntent(rita, { to: CUSTOMER, amount: '50000' as Amount });
    const d = evaluate({ state: st, intent: signIntent(rita, i), approvals: [], ledger: [], now: NOW });
    expect(d.kind === 'pending' && d.missing[0]?.rule).toBe('large');
  });

  it('counts no approval and lets nobody veto: an approval posted anyway is NOT_AUTHORIZED and changes nothing', () => {
    const i = makeIntent(backend, { to: CUSTOMER, amount: '50000' as Amount });
    const signed = signIntent(backend, i);
    const reject = approve(alice, intentDigest(i), { decision: 'reject' });
    const d = evaluate({ state: s, intent: signed, approvals: [reject], ledger: [], now: NOW });
    expect(d).toMatchObject({ kind: 'allow', approvers: [] });
    expect(d.approvalChecks).toEqual([
      { index: 0, approver: 'alice', counted: false, code: 'NOT_AUTHORIZED' },
    ]);
  });
});

describe('a zero-approval rule naming no assets pays any asset of its wallets: governance checks each (UNBOUNDED_AUTOMATION)', () => {
  const anyAsset = (wallets?: string[]): PolicyRule => {
    const m = without(payouts().match, 'assets');
    return { ...payouts(), match: wallets === undefined ? without(m, 'wallets') : { ...m, wallets } };
  };
  const limit = (asset: string, wallet?: string) => ({
    id: `${wallet ?? 'any'}-${asset}`,
    scope: 'wallet-asset' as const,
    asset,
    windowMs: DAY,
    max: '1000000' as Amount,
    ...(wallet === undefined ? {} : { wallet }),
  });
  const withPolicy = (rules: PolicyRule[], limits: ReturnType<typeof limit>[]): Policy => ({
    ...defaultPolicy(WALLET_ID),
    rules,
    limits,
  });

  it('at the genesis: every asset of the wallets it names needs a limit', () => {
    expect(() =>
      createOrg({ policy: withPolicy([anyAsset([WALLET_ID])], [limit(ASSET, WALLET_ID)]) }),
    ).not.toThrow();
    expect(() =>
      createOrg({ policy: withPolicy([anyAsset([WALLET_ID])], [limit('ETH', WALLET_ID)]) }),
    ).toThrow(
      /UNBOUNDED_AUTOMATION: genesis: rule payouts allows with no approval and pays any asset of wallet btc-main/,
    );
  });

  it('at policy.set: refused with its code, the state unchanged', () => {
    const org = createOrg();
    const [a1, a2] = org.admins as [Person, Person];
    const bad = propose(org.state, 'policy.set', { policy: withPolicy([anyAsset()], [limit('ETH')]) }, [
      a1,
      a2,
    ]);
    expect(applyGovernance(org.state, bad, T0 + HOUR)).toMatchObject({
      ok: false,
      code: 'UNBOUNDED_AUTOMATION',
    });
    const good = propose(org.state, 'policy.set', { policy: withPolicy([anyAsset()], [limit(ASSET)]) }, [
      a1,
      a2,
    ]);
    expect(applyGovernance(org.state, good, T0 + HOUR).ok).toBe(true);
  });

  it('at wallet.add: a rule over every wallet and asset needs a limit for each asset the new wallet holds', () => {
    const org = createOrg({ policy: withPolicy([anyAsset()], [limit(ASSET)]) });
    const [a1, a2] = org.admins as [Person, Person];
    const second = (assets: string[]) => ({
      ...org.wallet,
      id: 'btc-second',
      assets,
      descriptor: 'wsh(sortedmulti(2,other...))',
    });
    const uncovered = propose(org.state, 'wallet.add', second([ASSET, 'LBTC']), [a1, a2]);
    expect(applyGovernance(org.state, uncovered, T0 + HOUR)).toMatchObject({
      ok: false,
      code: 'UNBOUNDED_AUTOMATION',
      message: expect.stringContaining('LBTC'),
    });
    const covered = propose(org.state, 'wallet.add', second([ASSET]), [a1, a2]);
    expect(applyGovernance(org.state, covered, T0 + HOUR).ok).toBe(true);
  });
});
