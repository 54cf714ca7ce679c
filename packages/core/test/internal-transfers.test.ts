/**
 * Internal transfers (issue 13): an intent may name a governed wallet as its
 * destination (`toWallet`), and a rule may allow by wallet
 * (`destination: {kind: 'wallets'}`). The claim is proven in policy step 3b
 * by deriving the wallet's address; here the derivation is a pure stand-in
 * (core cannot load @custos/bitcoin), the real one is exercised by the
 * coordinator and signer tests on regtest.
 */
import { describe, expect, it } from 'vitest';
import { accept, CustosError, refuse } from '../src/errors.js';
import { toChecksumAddress } from '../src/evm.js';
import { checkInternalDestination, type WalletAddressFn } from '../src/internal-transfer.js';
import {
  type EvmSafeWallet,
  type Intent,
  intent as intentSchema,
  MAX_INTERNAL_RECEIVE_INDEX,
  type PolicyRule,
  type Wallet,
} from '../src/objects.js';
import { evaluate, type PolicyDecision } from '../src/policy.js';
import type { GovernanceState } from '../src/state.js';
import type { Address, Amount } from '../src/types.js';
import {
  buildState,
  COLD,
  HOT,
  HOUR,
  makeIntent,
  makePolicy,
  NOW,
  person,
  STRANGER,
  signIntent,
  TEST_WALLET,
} from './support/policy-fixture.js';

const backend = person('backend');
const alice = person('alice');
const bob = person('bob');

/** A stand-in derivation: one distinct address per wallet and receive index. */
const derive: WalletAddressFn = (w: Wallet, index: number) =>
  index > 2 ** 31 - 1 ? refuse('INVALID_VALUE', 'index') : accept(`bc1q${w.id}r${index}`.padEnd(42, '0'));
const addressOf = (w: Wallet, index: number): Address => {
  const r = derive(w, index);
  if (!r.ok) throw new Error(r.message);
  return r.value as Address;
};

/** Refill (cold → hot) by wallet, two approvals; sweep (hot → cold) automated for the service. */
const refill: PolicyRule = {
  id: 'refill',
  match: { destination: { kind: 'wallets', wallets: ['hot'] }, wallets: ['cold'] },
  action: 'allow',
  approvals: [{ m: 2, role: 'approver' }],
};
const sweep: PolicyRule = {
  id: 'sweep',
  match: {
    destination: { kind: 'wallets', wallets: ['cold'] },
    wallets: ['hot'],
    assets: ['BTC'],
    maxAmount: '5000000' as Amount,
    requesterRoles: ['service'],
  },
  action: 'allow',
  approvals: [],
};
const policy = makePolicy([refill, sweep], {
  limits: [
    {
      id: 'hot-daily',
      scope: 'wallet-asset',
      wallet: 'hot',
      asset: 'BTC',
      windowMs: 24 * HOUR,
      max: '10000000' as Amount,
    },
  ],
});

function state(extra: Partial<GovernanceState> = {}): GovernanceState {
  return {
    ...buildState({
      members: [
        { person: backend, roles: ['requester', 'service'] },
        { person: alice, roles: ['requester', 'approver'] },
        { person: bob, roles: ['approver'] },
      ],
      policies: [policy],
    }),
    ...extra,
  };
}

function sweepIntent(overrides: Partial<Intent> = {}): Intent {
  return makeIntent(backend, {
    wallet: 'hot',
    amount: '100000' as Amount,
    to: addressOf(COLD, 3),
    toWallet: { wallet: 'cold', index: 3 },
    ...overrides,
  });
}

function decide(
  i: Intent,
  opts: { s?: GovernanceState; receiveAddress?: WalletAddressFn | null } = {},
): PolicyDecision {
  const receiveAddress = opts.receiveAddress === null ? undefined : (opts.receiveAddress ?? derive);
  return evaluate({
    state: opts.s ?? state(),
    intent: signIntent(backend, i),
    approvals: [],
    ledger: [],
    now: NOW,
    ...(receiveAddress === undefined ? {} : { receiveAddress }),
  });
}

function codeOf(d: PolicyDecision): string {
  return d.kind === 'deny' ? d.code : d.kind;
}

function schemaCode(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (err) {
    if (err instanceof CustosError) return err.code;
    throw err;
  }
}

describe('the internal transfer shape', () => {
  it('needs a receive index for a Bitcoin wallet, bounded; none for a Safe; never with a batch', () => {
    const good = sweepIntent();
    const { index: _, ...noIndex } = good.toWallet ?? { wallet: 'cold' };
    expect(schemaCode(() => intentSchema.parse({ ...good, toWallet: noIndex }))).toBe('INVALID_VALUE');
    expect(
      schemaCode(() =>
        intentSchema.parse({ ...good, toWallet: { wallet: 'cold', index: MAX_INTERNAL_RECEIVE_INDEX + 1 } }),
      ),
    ).toBe('INVALID_VALUE');
    expect(
      schemaCode(() =>
        intentSchema.parse({
          ...good,
          amount: '3000',
          outputs: [
            { to: good.to, amount: '1000' },
            { to: STRANGER, amount: '2000' },
          ],
        }),
      ),
    ).toBe('INVALID_VALUE');
    expect(
      schemaCode(() =>
        intentSchema.parse({
          ...good,
          chain: 'eip155:1',
          to: '0x000000000000000000000000000000000000dEaD',
          toWallet: { wallet: 'cold', index: 0 },
        }),
      ),
    ).toBe('INVALID_VALUE');
  });
});

describe('a wallets rule and the toWallet claim', () => {
  it('allows a sweep to the cold wallet proven by derivation, with no approval under the bounded rule', () => {
    const d = decide(sweepIntent());
    expect(d.kind).toBe('allow');
    if (d.kind === 'allow') expect(d.rules).toEqual(['sweep']);
  });

  it('asks for the refill rule approvals on a cold → hot transfer', () => {
    const i = makeIntent(alice, {
      wallet: 'cold',
      to: addressOf(HOT, 0),
      toWallet: { wallet: 'hot', index: 0 },
    });
    const d = evaluate({
      state: state(),
      intent: signIntent(alice, i),
      approvals: [],
      ledger: [],
      now: NOW,
      receiveAddress: derive,
    });
    expect(d.kind).toBe('pending');
    if (d.kind === 'pending') expect(d.missing.map((m) => m.rule)).toEqual(['refill']);
  });

  it("refuses DESTINATION_NOT_WALLET when to is an attacker's address, the claim signed and all", () => {
    const d = decide(sweepIntent({ to: STRANGER }));
    expect(codeOf(d)).toBe('DESTINATION_NOT_WALLET');
  });

  it('refuses the address of another receive index than the one claimed', () => {
    expect(codeOf(decide(sweepIntent({ to: addressOf(COLD, 4) })))).toBe('DESTINATION_NOT_WALLET');
  });

  it('refuses every Bitcoin internal transfer when the verifier passes no derivation (fail closed)', () => {
    expect(codeOf(decide(sweepIntent(), { receiveAddress: null }))).toBe('DESTINATION_NOT_WALLET');
  });

  it('refuses a wallet paying itself, a wallet of another chain, an unknown one, one not active yet', () => {
    expect(
      codeOf(decide(sweepIntent({ to: addressOf(HOT, 1), toWallet: { wallet: 'hot', index: 1 } }))),
    ).toBe('DESTINATION_NOT_WALLET');
    expect(
      codeOf(decide(sweepIntent({ to: addressOf(TEST_WALLET, 1), toWallet: { wallet: 'tst', index: 1 } }))),
    ).toBe('WRONG_CHAIN');
    expect(codeOf(decide(sweepIntent({ toWallet: { wallet: 'nowhere', index: 3 } })))).toBe('UNKNOWN_WALLET');
    const pendingCold = state({ walletsActiveFrom: new Map([['cold', NOW + HOUR]]) });
    expect(codeOf(decide(sweepIntent(), { s: pendingCold }))).toBe('WALLET_NOT_ACTIVE');
  });

  it('never matches an external address: not a stranger, not even the derived address without the claim', () => {
    const { toWallet: _, ...plain } = sweepIntent();
    expect(codeOf(decide(makeIntent(backend, { to: STRANGER, amount: '100000' as Amount })))).toBe(
      'DESTINATION_NOT_ALLOWED',
    );
    const unclaimed = decide(intentSchema.parse(plain));
    expect(codeOf(unclaimed)).toBe('DESTINATION_NOT_ALLOWED');
    expect(unclaimed.kind === 'deny' && unclaimed.message).toContain(
      'is not a wallet that rule sweep allows (an internal transfer names its wallet in toWallet)',
    );
  });

  it("bounds an automated sweep by its rule's per-transaction maximum", () => {
    const d = decide(sweepIntent({ amount: '5000000' as Amount }));
    expect(d.kind).toBe('allow');
    const big = decide(sweepIntent({ amount: '5000001' as Amount }));
    expect(codeOf(big)).toBe('POLICY_DENIED');
  });
});

describe('an internal transfer between Safes', () => {
  const addr = (hex2: string) => toChecksumAddress(`0x${hex2.repeat(20)}`) as EvmSafeWallet['address'];
  const safe = (id: string, hex2: string): EvmSafeWallet => ({
    id,
    label: id,
    chain: 'eip155:31337',
    assets: ['eth'],
    kind: 'evm-safe',
    address: addr(hex2),
    singleton: addr('41'),
    singletonCodeHash: `0x${'1b'.repeat(32)}`,
    owners: [{ signer: 'signer-1', address: addr('a1') }],
    threshold: 1,
    fallbackHandler: addr('fd'),
  });
  const hotSafe = safe('safe-hot', '5a');
  const coldSafe = safe('safe-cold', '5b');
  const s = buildState({ members: [], policies: [policy], wallets: [hotSafe, coldSafe] });
  const claim = (to: string) => ({
    wallet: 'safe-hot',
    chain: 'eip155:31337',
    asset: 'eth',
    to,
    toWallet: { wallet: 'safe-cold' },
  });

  it("proves the claim by the Safe's own governed address, with no derivation needed", () => {
    const r = checkInternalDestination(s, claim(coldSafe.address), NOW, undefined);
    expect(r.ok && r.value.id).toBe('safe-cold');
  });

  it('refuses any other address under the claim: DESTINATION_NOT_WALLET', () => {
    const r = checkInternalDestination(s, claim(addr('66')), NOW, derive);
    expect(r.ok ? 'ok' : r.code).toBe('DESTINATION_NOT_WALLET');
  });
});
