/**
 * Issue 9, governance: Safe wallets on eip155 chains, the asset registry and
 * EIP-55 addresses in signed objects. What the schemas accept and refuse,
 * what a genesis and later entries may hold (GOVERNANCE_INVALID otherwise),
 * and when a new asset binds (asset.add widens, asset.remove tightens).
 */
import {
  ASSET,
  createOrg,
  DAY,
  HOUR,
  makePerson,
  type Person,
  propose,
  T0,
  unwrap,
} from '@custos/test-support/org';
import { describe, expect, it } from 'vitest';
import { toChecksumAddress } from '../src/evm.js';
import { applyGovernance, buildGenesis, createGenesisState, signGovernanceEntry } from '../src/governance.js';
import { signDigest } from '../src/keys.js';
import {
  type AddressEntry,
  type Approval,
  type Asset,
  addressEntry,
  approvalDigest,
  asset as assetSchema,
  type EvmSafeWallet,
  type GenesisBody,
  genesisBody,
  governanceDigest,
  type Intent,
  intentDigest,
  intent as intentSchema,
  type Policy,
  type SignedApproval,
  type SignedIntent,
  type SignerRecord,
  signerRecord,
  wallet as walletSchema,
} from '../src/objects.js';
import { evaluate } from '../src/policy.js';
import { assetStatus, type GovernanceState, governanceSummary, walletActive } from '../src/state.js';
import type { Address, Amount, Millis } from '../src/types.js';

const CHAIN = 'eip155:31337';
const OTHER_CHAIN = 'eip155:1';
const addr = (hex2: string) => toChecksumAddress(`0x${hex2.repeat(20)}`);

const SAFE = addr('5a');
const SINGLETON = toChecksumAddress('0x41675c099f32341bf84bfc5382af534df5c7461a');
const FALLBACK = toChecksumAddress('0xfd0732dc9e303f09fcef3a7388ad10a83459ec99');
const CODE_HASH = `0x${'1b'.repeat(32)}`;
const OWNER = [addr('a1'), addr('a2'), addr('a3')] as const;
const USDT_CONTRACT = addr('7e');
/** vitalik.eth, as an address-book destination. */
const BOOK = toChecksumAddress('0xd8da6bf26964af9d7eed9e03e53415d37aa96045');
/** Address poisoning: the same first four and last four hex digits as BOOK, another address. */
const POISONED = toChecksumAddress(`0xd8da${'0'.repeat(32)}6045`);

const org = createOrg();
const [a1, a2] = org.admins as [Person, Person];
const DELAY = org.delayMs;

const signers: SignerRecord[] = [
  { ...org.signer.record, evmAddress: OWNER[0] },
  { id: 'signer-2', publicKey: makePerson('evm', 'signer-2', []).device.publicKey, evmAddress: OWNER[1] },
  { id: 'signer-3', publicKey: makePerson('evm', 'signer-3', []).device.publicKey, evmAddress: OWNER[2] },
];

const eth: Asset = { id: 'eth', chain: CHAIN, kind: 'native', symbol: 'ETH', decimals: 18 };
const usdt: Asset = {
  id: 'usdt',
  chain: CHAIN,
  kind: 'erc20',
  contract: USDT_CONTRACT,
  symbol: 'USDT',
  decimals: 6,
};

const safe: EvmSafeWallet = {
  id: 'eth-safe',
  label: 'Treasury Safe',
  chain: CHAIN,
  assets: ['eth', 'usdt'],
  kind: 'evm-safe',
  address: SAFE,
  singleton: SINGLETON,
  singletonCodeHash: CODE_HASH,
  owners: [
    { signer: 'signer-1', address: OWNER[0] },
    { signer: 'signer-2', address: OWNER[1] },
    { signer: 'signer-3', address: OWNER[2] },
  ],
  threshold: 2,
  fallbackHandler: FALLBACK,
};

const book: AddressEntry = { id: 'vitalik', chain: CHAIN, address: BOOK as Address, label: 'Vitalik' };

/** A policy for the Safe: address-book destinations with two approvers, a daily limit per asset. */
const evmPolicy: Policy = {
  ...org.policy,
  rules: [
    {
      id: 'book-2',
      match: { destination: { kind: 'address-book' }, requesterRoles: ['requester'] },
      action: 'allow',
      approvals: [{ m: 2, role: 'approver' }],
    },
  ],
  limits: [
    {
      id: 'usdt-daily',
      scope: 'wallet-asset',
      wallet: 'eth-safe',
      asset: 'usdt',
      windowMs: DAY,
      max: '10000000000' as Amount,
    },
  ],
  feeCaps: [],
};

function evmBody(over: Partial<GenesisBody> = {}): GenesisBody {
  return {
    ...org.body,
    policy: evmPolicy,
    addresses: [...org.body.addresses, book],
    signers,
    assets: [eth, usdt],
    wallets: [org.wallet, safe],
    ...over,
  };
}

function genesisOf(body: GenesisBody) {
  const entry = buildGenesis(body, T0 - HOUR);
  const signed = signGovernanceEntry(entry, [a1.device.signer, a2.device.signer]);
  return createGenesisState(signed, T0, governanceDigest(entry));
}

const evmState: GovernanceState = unwrap(genesisOf(evmBody()));

// ---------------------------------------------------------------- schemas

describe('schemas: Safe wallets, assets, signers and EIP-55 addresses', () => {
  const parseError = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      return err;
    }
    throw new Error('expected a refusal');
  };

  it('accepts a Safe wallet, an ERC-20 and a native asset, a signer with an EVM address', () => {
    expect(walletSchema.parse(safe)).toEqual(safe);
    expect(walletSchema.parse({ ...safe, modules: [addr('3c')], guard: addr('4d') })).toMatchObject({
      modules: [addr('3c')],
      guard: addr('4d'),
    });
    expect(assetSchema.parse(usdt)).toEqual(usdt);
    expect(assetSchema.parse(eth)).toEqual(eth);
    expect(
      assetSchema.parse({ id: 'btc', chain: 'bitcoin:regtest', kind: 'native', symbol: 'BTC', decimals: 8 }),
    ).toBeTruthy();
    expect(signerRecord.parse(signers[1])).toEqual(signers[1]);
  });

  it('still parses a Bitcoin wallet and a genesis body without the asset registry, as signed before it existed', () => {
    expect(walletSchema.parse(org.wallet)).toEqual(org.wallet);
    const old = genesisBody.parse(org.body);
    expect('assets' in old).toBe(false);
    expect(signerRecord.parse(org.signer.record)).toEqual(org.signer.record);
  });

  it.each([
    ['a threshold above the owners', { threshold: 4 }, 'INVALID_VALUE', 'threshold'],
    [
      'an owner listed twice',
      { owners: [safe.owners[0], { signer: 'signer-2', address: OWNER[0] }] },
      'INVALID_VALUE',
      'owners[1].address',
    ],
    [
      'the zero address as owner',
      { owners: [{ signer: 'signer-1', address: addr('00') }], threshold: 1 },
      'INVALID_VALUE',
      'owners[0].address',
    ],
    [
      'the Safe as its own owner',
      { owners: [{ signer: 'signer-1', address: SAFE }], threshold: 1 },
      'INVALID_VALUE',
      'owners[0].address',
    ],
    ['a zero singleton', { singleton: addr('00') }, 'INVALID_VALUE', 'singleton'],
    ['the Safe as its own fallback handler', { fallbackHandler: SAFE }, 'INVALID_VALUE', 'fallbackHandler'],
    ['an explicit zero guard (leave it out)', { guard: addr('00') }, 'INVALID_VALUE', 'guard'],
    ['an empty module list (leave it out)', { modules: [] }, 'INVALID_VALUE', 'modules'],
    ['the zero address as module', { modules: [addr('00')] }, 'INVALID_VALUE', 'modules[0]'],
    ['a lower-case Safe address', { address: SAFE.toLowerCase() }, 'NON_CANONICAL_ENCODING', 'address'],
    [
      'a bad checksum on the singleton',
      { singleton: SINGLETON.replace('c', 'C') },
      'ADDRESS_CHECKSUM_INVALID',
      'singleton',
    ],
    [
      'a code hash in upper case',
      { singletonCodeHash: CODE_HASH.toUpperCase().replace('0X', '0x') },
      'INVALID_VALUE',
      'singletonCodeHash',
    ],
    ['a code hash without 0x', { singletonCodeHash: '1b'.repeat(32) }, 'INVALID_VALUE', 'singletonCodeHash'],
    ['a Bitcoin chain', { chain: 'bitcoin:regtest' }, 'INVALID_VALUE', 'chain'],
    ['a chain id with a leading zero', { chain: 'eip155:01' }, 'INVALID_VALUE', 'chain'],
    ['a descriptor', { descriptor: 'wsh(x)' }, 'UNKNOWN_FIELD', 'descriptor'],
  ])('refuses a Safe wallet with %s', (_name, change, code, path) => {
    const err = parseError(() => walletSchema.parse({ ...safe, ...change }));
    expect(err).toMatchObject({ code, details: { path } });
  });

  it('refuses an ERC-20 on a Bitcoin chain, a lower-case contract, a symbol with look-alike letters, an unknown kind', () => {
    expect(parseError(() => assetSchema.parse({ ...usdt, chain: 'bitcoin:mainnet' }))).toMatchObject({
      code: 'INVALID_VALUE',
      details: { path: 'chain' },
    });
    expect(
      parseError(() => assetSchema.parse({ ...usdt, contract: USDT_CONTRACT.toLowerCase() })),
    ).toMatchObject({
      code: 'NON_CANONICAL_ENCODING',
      details: { path: 'contract' },
    });
    expect(parseError(() => assetSchema.parse({ ...usdt, symbol: 'USD₮' }))).toMatchObject({
      code: 'INVALID_VALUE',
    });
    expect(parseError(() => assetSchema.parse({ ...eth, chain: 'eip155:0' }))).toMatchObject({
      code: 'INVALID_VALUE',
      details: { path: 'chain' },
    });
    expect(parseError(() => assetSchema.parse({ ...eth, contract: USDT_CONTRACT }))).toMatchObject({
      code: 'UNKNOWN_FIELD',
    });
    expect(parseError(() => assetSchema.parse({ ...eth, kind: 'erc721' }))).toMatchObject({
      code: 'INVALID_VALUE',
    });
  });

  it('refuses an address-book entry on an eip155 chain unless its address is checksummed', () => {
    expect(addressEntry.parse(book)).toEqual(book);
    expect(parseError(() => addressEntry.parse({ ...book, address: BOOK.toLowerCase() }))).toMatchObject({
      code: 'NON_CANONICAL_ENCODING',
      details: { path: 'address' },
    });
    const badSum = BOOK.replace('dA', 'Da');
    expect(parseError(() => addressEntry.parse({ ...book, address: badSum }))).toMatchObject({
      code: 'ADDRESS_CHECKSUM_INVALID',
      details: { path: 'address' },
    });
    expect(parseError(() => addressEntry.parse({ ...book, chain: 'eip155:x1' }))).toMatchObject({
      code: 'INVALID_VALUE',
      details: { path: 'chain' },
    });
    // Other chains' addresses stay as the chain spells them.
    expect(addressEntry.parse({ ...book, chain: 'bitcoin:regtest', address: 'bcrt1qANY' })).toBeTruthy();
  });

  it("refuses an intent on an eip155 chain whose `to` is not checksummed, at the path 'to'", () => {
    const base = {
      v: 1,
      org: org.orgId,
      wallet: 'eth-safe',
      chain: CHAIN,
      asset: 'usdt',
      amount: '25000000',
      to: BOOK,
      requester: org.requester.id,
      device: org.requester.device.id,
      nonce: '0'.repeat(32),
      createdAt: T0,
      expiresAt: T0 + HOUR,
    };
    expect(intentSchema.parse(base).to).toBe(BOOK);
    expect(parseError(() => intentSchema.parse({ ...base, to: BOOK.toLowerCase() }))).toMatchObject({
      code: 'NON_CANONICAL_ENCODING',
      details: { path: 'to' },
    });
    expect(parseError(() => intentSchema.parse({ ...base, to: BOOK.replace('dA', 'Da') }))).toMatchObject({
      code: 'ADDRESS_CHECKSUM_INVALID',
      details: { path: 'to' },
    });
    expect(
      parseError(() => intentSchema.parse({ ...base, to: 'bcrt1qmrst4npf9485jefh7rs4gs780w7hutgefcjk4r' })),
    ).toMatchObject({ code: 'INVALID_VALUE', details: { path: 'to' } });
  });
});

// ---------------------------------------------------------------- genesis

describe('a genesis with Safe wallets and the asset registry', () => {
  it('verifies, with every asset and wallet active from the genesis', () => {
    expect(evmState.wallets.get('eth-safe')).toEqual(safe);
    expect(walletActive(evmState, 'eth-safe', T0)).toBe(true);
    expect(assetStatus(evmState, 'usdt', T0)).toEqual({ status: 'active', asset: usdt });
    expect(assetStatus(evmState, 'dai', T0)).toEqual({ status: 'unknown' });
    const summary = governanceSummary(evmState, T0);
    expect(summary.assets.map((a) => a.asset.id)).toEqual(['eth', 'usdt']);
    expect(summary.pending).toEqual([]);
  });

  it('keeps the digest of a genesis signed before the registry existed (no assets field)', () => {
    const state = unwrap(createGenesisState(org.genesis, T0, org.orgId));
    expect(state.assets.size).toBe(0);
    expect(governanceDigest(org.genesis.entry)).toBe(org.orgId);
  });

  const otherSafe: EvmSafeWallet = { ...safe, id: 'eth-safe-2', label: 'Second Safe' };
  it.each<[string, Partial<GenesisBody>, RegExp]>([
    [
      'an owner that is not a governed signer',
      {
        wallets: [
          { ...safe, owners: [...safe.owners.slice(0, 2), { signer: 'signer-9', address: OWNER[2] }] },
        ],
      },
      /owner signer-9 is not a governed signer/,
    ],
    [
      'an owner whose signer has no EVM address',
      { signers: [org.signer.record, ...signers.slice(1)] },
      /signer signer-1 has no EVM address/,
    ],
    [
      "an owner address that is not its signer's",
      {
        wallets: [
          {
            ...safe,
            owners: [
              { signer: 'signer-1', address: OWNER[1] },
              { signer: 'signer-2', address: OWNER[0] },
            ],
          },
        ],
      },
      /owner 0x[0-9a-fA-F]{40} is not signer signer-1's EVM address/,
    ],
    ['an asset not in the registry', { assets: [eth] }, /asset usdt is not in the asset registry/],
    [
      'an asset of another chain',
      { assets: [eth, { ...usdt, chain: OTHER_CHAIN }] },
      /asset usdt is registered on eip155:1, not eip155:31337/,
    ],
    ['two wallet ids over one Safe on one chain', { wallets: [safe, otherSafe] }, /already wallet eth-safe/],
    [
      'two native coins on one chain',
      { assets: [eth, usdt, { ...eth, id: 'eth2' }] },
      /eip155:31337 already has its native coin as asset eth/,
    ],
    [
      'one ERC-20 contract under two ids',
      { assets: [eth, usdt, { ...usdt, id: 'usdt2', symbol: 'USDT2' }] },
      /the token 0x[0-9a-fA-F]{40} on eip155:31337 is already asset usdt/,
    ],
    [
      'an asset id listed twice',
      { assets: [eth, usdt, { ...usdt, chain: OTHER_CHAIN }] },
      /asset usdt already exists/,
    ],
    [
      'two signers with one EVM address',
      {
        signers: [
          ...signers,
          { ...signers[2], id: 'signer-4', publicKey: org.admins[2]!.device.publicKey } as SignerRecord,
        ],
      },
      /signer signer-4 has the same EVM address as signer signer-3/,
    ],
  ])('refuses %s (GOVERNANCE_INVALID)', (_name, over, message) => {
    const r = genesisOf(evmBody(over));
    expect(r).toMatchObject({ ok: false, code: 'GOVERNANCE_INVALID' });
    expect(!r.ok && r.message).toMatch(message);
  });

  it('accepts the same Safe address on two chains (a deterministic deployment), each with its own assets', () => {
    const mainnetEth: Asset = { ...eth, id: 'eth-mainnet', chain: OTHER_CHAIN };
    const s = genesisOf(
      evmBody({
        assets: [eth, usdt, mainnetEth],
        wallets: [safe, { ...safe, id: 'eth-safe-mainnet', chain: OTHER_CHAIN, assets: ['eth-mainnet'] }],
      }),
    );
    expect(s.ok).toBe(true);
  });
});

// ---------------------------------------------------------------- later entries

describe('later entries: wallet.add of a Safe, asset.add, asset.remove', () => {
  const seenAt = T0 + HOUR;
  const during = seenAt + DELAY - 1;
  const after = seenAt + DELAY;
  const dai: Asset = {
    id: 'dai',
    chain: CHAIN,
    kind: 'erc20',
    contract: addr('da'),
    symbol: 'DAI',
    decimals: 18,
  };
  const apply = (state: GovernanceState, signed: ReturnType<typeof propose>, at: Millis) =>
    unwrap(applyGovernance(state, signed, at));

  it('wallet.add of a Safe is checked against the governed signers and assets, and waits out the delay', () => {
    const s0 = unwrap(genesisOf(evmBody({ wallets: [org.wallet], policy: { ...evmPolicy, limits: [] } })));
    const s = apply(s0, propose(s0, 'wallet.add', safe, [a1, a2]), seenAt);
    expect(walletActive(s, 'eth-safe', during)).toBe(false);
    expect(walletActive(s, 'eth-safe', after)).toBe(true);
    const again = propose(s, 'wallet.add', { ...safe, id: 'eth-safe-2' }, [a1, a2]);
    expect(applyGovernance(s, again, after)).toMatchObject({ ok: false, code: 'GOVERNANCE_INVALID' });
    const unknownAsset = propose(s0, 'wallet.add', { ...safe, assets: ['dai'] }, [a1, a2]);
    expect(applyGovernance(s0, unknownAsset, seenAt)).toMatchObject({
      ok: false,
      code: 'GOVERNANCE_INVALID',
    });
  });

  it('a Safe may name signers and assets that are still waiting out their own delay', () => {
    const s0 = unwrap(
      genesisOf(
        evmBody({
          wallets: [org.wallet],
          policy: { ...evmPolicy, limits: [] },
          assets: [eth],
          signers: signers.slice(0, 2),
        }),
      ),
    );
    const s1 = apply(s0, propose(s0, 'asset.add', usdt, [a1, a2]), seenAt);
    const s2 = apply(s1, propose(s1, 'signer.add', signers[2] as SignerRecord, [a1, a2]), seenAt);
    const s3 = apply(s2, propose(s2, 'wallet.add', safe, [a1, a2]), seenAt);
    expect(walletActive(s3, 'eth-safe', after)).toBe(true);
  });

  it('signer.add refuses a second signer with an EVM address already governed', () => {
    const dup = { id: 'signer-4', publicKey: org.admins[2]!.device.publicKey, evmAddress: OWNER[0] };
    expect(applyGovernance(evmState, propose(evmState, 'signer.add', dup, [a1, a2]), seenAt)).toMatchObject({
      ok: false,
      code: 'GOVERNANCE_INVALID',
      message: 'signer signer-4 has the same EVM address as signer signer-1',
    });
  });

  it('asset.add widens: the asset is pending until the delay has passed', () => {
    const s = apply(evmState, propose(evmState, 'asset.add', dai, [a1, a2]), seenAt);
    expect(assetStatus(s, 'dai', during)).toEqual({
      status: 'pending',
      asset: dai,
      activeFrom: seenAt + DELAY,
    });
    expect(assetStatus(s, 'dai', after)).toEqual({ status: 'active', asset: dai });
    expect(governanceSummary(s, during).pending).toEqual([
      { kind: 'asset', id: 'dai', activeFrom: seenAt + DELAY },
    ]);
  });

  it('asset.add refuses an id already there, a second native coin, a token already registered', () => {
    for (const body of [
      { ...dai, id: 'usdt' },
      { ...eth, id: 'ether' },
      { ...usdt, id: 'tether' },
    ]) {
      expect(applyGovernance(evmState, propose(evmState, 'asset.add', body, [a1, a2]), seenAt)).toMatchObject(
        {
          ok: false,
          code: 'GOVERNANCE_INVALID',
        },
      );
    }
  });

  it('asset.add needs the quorum', () => {
    expect(applyGovernance(evmState, propose(evmState, 'asset.add', dai, [a1]), seenAt)).toMatchObject({
      ok: false,
      code: 'QUORUM_NOT_MET',
    });
  });

  it('asset.remove binds at once; the id comes back only as the same token, after the delay again', () => {
    const s = apply(evmState, propose(evmState, 'asset.remove', { id: 'usdt' }, [a1, a2]), seenAt);
    expect(assetStatus(s, 'usdt', seenAt)).toEqual({ status: 'unknown' });
    expect(s.retiredAssets.get('usdt')).toEqual(usdt);
    const other = propose(s, 'asset.add', { ...usdt, decimals: 18 }, [a1, a2]);
    const refused = applyGovernance(s, other, seenAt + 1);
    expect(refused).toMatchObject({ ok: false, code: 'GOVERNANCE_INVALID' });
    expect(!refused.ok && refused.message).toMatch(/an id keeps its meaning/);
    const moved = propose(s, 'asset.add', { ...usdt, contract: addr('7f') }, [a1, a2]);
    expect(applyGovernance(s, moved, seenAt + 1)).toMatchObject({ ok: false, code: 'GOVERNANCE_INVALID' });
    const back = apply(s, propose(s, 'asset.add', { ...usdt, symbol: 'USDT0' }, [a1, a2]), seenAt + 1);
    expect(assetStatus(back, 'usdt', seenAt + 1 + DELAY - 1).status).toBe('pending');
    expect(assetStatus(back, 'usdt', seenAt + 1 + DELAY).status).toBe('active');
  });

  it('asset.remove of an unknown asset is refused', () => {
    expect(
      applyGovernance(evmState, propose(evmState, 'asset.remove', { id: 'dai' }, [a1, a2]), seenAt),
    ).toMatchObject({ ok: false, code: 'GOVERNANCE_INVALID', message: 'asset dai is not in the registry' });
  });
});

// ---------------------------------------------------------------- policy on EVM intents

describe('the policy evaluates an intent from a Safe as it does a Bitcoin one', () => {
  const approvers = org.approvers;
  let n = 0;

  function signedIntent(state: GovernanceState, fields: Partial<Intent> & { at: Millis }): SignedIntent {
    n++;
    const { at, ...rest } = fields;
    const i: Intent = intentSchema.parse({
      v: 1,
      org: state.org,
      wallet: 'eth-safe',
      chain: CHAIN,
      asset: 'usdt',
      amount: '25000000',
      to: BOOK,
      requester: org.requester.id,
      device: org.requester.device.id,
      nonce: n.toString(16).padStart(32, '0'),
      createdAt: at - 60_000,
      expiresAt: at + HOUR,
      ...rest,
    });
    return { intent: i, signature: signDigest(org.requester.device.secretKey, intentDigest(i)) };
  }

  function approvals(
    si: SignedIntent,
    at: Millis,
    by: readonly Person[] = approvers.slice(0, 2),
  ): SignedApproval[] {
    return by.map((p) => {
      const a: Approval = {
        v: 1,
        intent: intentDigest(si.intent),
        approver: p.id,
        device: p.device.id,
        decision: 'approve',
        at: at - 1000,
        expiresAt: at + HOUR,
      };
      return { approval: a, signature: signDigest(p.device.secretKey, approvalDigest(a)) };
    });
  }

  const decide = (state: GovernanceState, si: SignedIntent, at: Millis, ledger = [] as never[]) =>
    evaluate({ state, intent: si, approvals: approvals(si, at), ledger, now: at, chains: [CHAIN] });

  const at = T0 + HOUR;

  it('allows an ERC-20 transfer to an address-book entry with two approvals', () => {
    expect(decide(evmState, signedIntent(evmState, { at }), at).kind).toBe('allow');
  });

  it('sums a rolling limit in base units per wallet and asset (LIMIT_EXCEEDED), wei-sized amounts too', () => {
    const big = signedIntent(evmState, { at, amount: '10000000001' as Amount });
    expect(decide(evmState, big, at)).toMatchObject({ kind: 'deny', code: 'LIMIT_EXCEEDED' });
    const wei = signedIntent(evmState, { at, asset: 'eth', amount: '123456789012345678901234' as Amount });
    expect(decide(evmState, wei, at).kind).toBe('allow');
  });

  it('refuses an asset the Safe lists but the registry no longer has, at once (UNKNOWN_ASSET)', () => {
    const s = unwrap(
      applyGovernance(evmState, propose(evmState, 'asset.remove', { id: 'usdt' }, [a1, a2]), at),
    );
    expect(decide(s, signedIntent(s, { at }), at)).toMatchObject({ kind: 'deny', code: 'UNKNOWN_ASSET' });
  });

  it('asset.add widens: an asset removed and added back sends nothing before the delay, then is allowed', () => {
    const removed = unwrap(
      applyGovernance(evmState, propose(evmState, 'asset.remove', { id: 'usdt' }, [a1, a2]), at),
    );
    const back = unwrap(applyGovernance(removed, propose(removed, 'asset.add', usdt, [a1, a2]), at + 1));
    const during = at + 1 + DELAY - 1;
    const early = decide(back, signedIntent(back, { at: during }), during);
    expect(early).toMatchObject({ kind: 'deny', code: 'UNKNOWN_ASSET' });
    expect(early.kind === 'deny' && early.message).toMatch(/waiting out the governance delay/);
    const after = at + 1 + DELAY;
    expect(decide(back, signedIntent(back, { at: after }), after).kind).toBe('allow');
  });

  it('refuses a poisoned look-alike of an address-book entry (same first and last four hex digits)', () => {
    const d = decide(evmState, signedIntent(evmState, { at, to: POISONED as Address }), at);
    expect(d).toMatchObject({ kind: 'deny', code: 'LOOKALIKE_ADDRESS' });
    expect(d.kind === 'deny' && d.message).toContain(
      `looks like address-book entry Vitalik (vitalik) at ${BOOK}`,
    );
  });

  it('refuses an intent paying the Safe itself: a call to the Safe (OPERATION_FORBIDDEN, THREATS 28)', () => {
    const si = signedIntent(evmState, { at, asset: 'eth', to: SAFE as Address });
    expect(decide(evmState, si, at)).toMatchObject({ kind: 'deny', code: 'OPERATION_FORBIDDEN' });
  });

  it('refuses an intent naming another chain than the Safe (WRONG_CHAIN)', () => {
    const si = signedIntent(evmState, { at, chain: OTHER_CHAIN });
    expect(decide(evmState, si, at)).toMatchObject({ kind: 'deny', code: 'WRONG_CHAIN' });
  });

  it('keeps Bitcoin wallets as they were: their assets need no registry entry', () => {
    expect(evmState.wallets.get(org.wallet.id)?.assets).toEqual([ASSET]);
    expect(assetStatus(evmState, ASSET, at)).toEqual({ status: 'unknown' });
  });
});
