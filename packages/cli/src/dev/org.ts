/**
 * The demo organization of `custos dev`: two admins (quorum 2), a requester,
 * three approvers, a watcher; a 2-of-3 wallet over two running signers and an
 * offline backup key; an address book of two regtest addresses; and a
 * policy with tiers and rolling limits:
 *
 *   up to 0.01 BTC to the address book     1 approver
 *   above 0.01 BTC to the address book     2 approvers, then a 2-minute cancel window
 *   anything else                          refused (default deny)
 *   limits: 10 BTC a day per wallet, 2 BTC an hour per destination, 5 BTC a day per requester
 *   fee cap: 0.001 BTC and 100 sat/vB;     look-alike destinations refused
 *
 * And the exchange shape (issue 13): a hot wallet (btc-hot: signer-1,
 * signer-2, and signer-cold's key as its offline third) paid out by the
 * service requester exchange-backend (a sealed key file) under an automated
 * rule, and a cold wallet (btc-cold: signer-1 online, signer-cold offline,
 * the backup key) signed through job files:
 *
 *   payouts  btc-hot, any destination, up to 0.01 BTC, role service   no approval
 *            bounded: 0.05 BTC an hour from btc-hot (the demo backend meets it)
 *   refill   btc-cold → btc-hot (internal transfer), role requester     2 approvers
 *   sweep    btc-hot → btc-cold (internal transfer), service or person  1 approver
 *
 * Development only: the keys are real, but their passwords sit in the state
 * folder beside them.
 */
import { type DescriptorKey, scriptToAddress } from '@custos/bitcoin';
import {
  type Address,
  type AddressEntry,
  type Amount,
  type Asset,
  type EvmSafeWallet,
  type GenesisBody,
  type Member,
  member as memberSchema,
  type Policy,
  type SignerRecord,
  sha256,
  toChecksumAddress,
  utf8,
} from '@custos/core';
import { walletOf } from '../genesis.js';

export const DEV_WALLET = 'btc-main';
export const DEV_HOT = 'btc-hot';
export const DEV_COLD = 'btc-cold';
export const DEV_SERVICE = 'exchange-backend';
export const DEV_SERVICE_DEVICE = 'backend-1';
export const DEV_OFFLINE_SIGNER = 'signer-cold';
/** The automated tier's per-payout maximum and the hot wallet's hourly limit (issue 13). */
export const PAYOUT_MAX = 1_000_000n;
export const HOT_HOURLY = 5_000_000n;
export const SMALL_MAX = 1_000_000n;
export const CANCEL_WINDOW_MS = 120_000;

export const DEV_MEMBERS: readonly { id: string; name: string; roles: readonly string[] }[] = [
  { id: 'admin-1', name: 'Ada (admin)', roles: ['admin'] },
  { id: 'admin-2', name: 'Bao (admin)', roles: ['admin'] },
  { id: 'requester-1', name: 'Rosa (treasury, requester)', roles: ['requester'] },
  { id: 'approver-1', name: 'Amir (approver)', roles: ['approver'] },
  { id: 'approver-2', name: 'Beatriz (approver)', roles: ['approver'] },
  { id: 'approver-3', name: 'Chen (approver)', roles: ['approver'] },
  { id: 'watcher-1', name: 'Wanda (watcher)', roles: ['watcher'] },
];

/** A regtest P2WPKH address whose key nobody holds: a demo destination. */
export function demoAddress(label: string): Address {
  const program = sha256(utf8(`custos dev ${label}`)).slice(0, 20);
  const address = scriptToAddress(new Uint8Array([0x00, 0x14, ...program]), 'regtest');
  if (address === undefined) throw new Error('BUG: a P2WPKH script has no regtest address');
  return address as Address;
}

/** An EVM address whose key nobody holds: a demo destination (EIP-55). */
export function demoEvmAddress(label: string): Address {
  return toChecksumAddress(`0x${toHexString(sha256(utf8(`custos dev evm ${label}`)).slice(0, 20))}`);
}

function toHexString(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** What governance says of the demo Safe and its chain (issue 9). */
export interface DevSafe {
  readonly chainId: number;
  readonly address: string;
  readonly singleton: string;
  readonly singletonCodeHash: string;
  readonly fallbackHandler: string;
  readonly token: string;
  /** Owner addresses of signer-1, signer-2 and the backup key, in that order. */
  readonly owners: readonly { signer: string; address: string }[];
}

export const DEV_SAFE_ID = 'eth-safe';
/** Up to 1 ETH or 10,000 USDT from the Safe to the address book: 1 approver. */
export const SAFE_SMALL_ETH = 10n ** 18n;
export const SAFE_SMALL_USDT = 10_000n * 10n ** 6n;

export function devEvmAssets(safe: DevSafe): Asset[] {
  const chain = `eip155:${safe.chainId}`;
  return [
    { id: 'eth', chain, kind: 'native', symbol: 'ETH', decimals: 18 },
    {
      id: 'usdt',
      chain,
      kind: 'erc20',
      contract: toChecksumAddress(safe.token) as Extract<Asset, { kind: 'erc20' }>['contract'],
      symbol: 'USDT',
      decimals: 6,
    },
  ];
}

export function devSafeWallet(safe: DevSafe): EvmSafeWallet {
  const addr = (a: string) => toChecksumAddress(a) as EvmSafeWallet['address'];
  return {
    id: DEV_SAFE_ID,
    label: 'Treasury Safe (local EVM demo)',
    chain: `eip155:${safe.chainId}`,
    assets: ['eth', 'usdt'],
    kind: 'evm-safe',
    address: addr(safe.address),
    singleton: addr(safe.singleton),
    singletonCodeHash: safe.singletonCodeHash.toLowerCase(),
    owners: safe.owners.map((o) => ({ signer: o.signer, address: addr(o.address) })),
    threshold: 2,
    fallbackHandler: addr(safe.fallbackHandler),
  };
}

export function devEvmAddressBook(chainId: number): AddressEntry[] {
  return [
    {
      id: 'eth-payee',
      chain: `eip155:${chainId}`,
      address: demoEvmAddress('payee'),
      label: 'Supplier payouts (EVM demo)',
      tags: ['supplier'],
    },
  ];
}

export function devAddressBook(): AddressEntry[] {
  return [
    {
      id: 'cold-storage',
      chain: 'bitcoin:regtest',
      address: demoAddress('cold storage'),
      label: 'Cold storage (demo)',
      tags: ['treasury'],
    },
    {
      id: 'exchange-deposit',
      chain: 'bitcoin:regtest',
      address: demoAddress('exchange deposit'),
      label: 'Exchange deposit (demo)',
      tags: ['exchange'],
    },
  ];
}

/** The exchange desk's rules (issue 13): automated payouts, refill and sweep by wallet. */
function exchangeRules(): Policy['rules'] {
  return [
    {
      id: 'payouts',
      match: {
        destination: { kind: 'any' },
        wallets: [DEV_HOT],
        assets: ['BTC'],
        maxAmount: PAYOUT_MAX.toString() as Amount,
        requesterRoles: ['service'],
      },
      action: 'allow',
      approvals: [],
    },
    {
      id: 'refill',
      match: {
        destination: { kind: 'wallets', wallets: [DEV_HOT] },
        wallets: [DEV_COLD],
        assets: ['BTC'],
        requesterRoles: ['requester'],
      },
      action: 'allow',
      approvals: [{ m: 2, role: 'approver' }],
    },
    {
      id: 'sweep',
      match: {
        destination: { kind: 'wallets', wallets: [DEV_COLD] },
        wallets: [DEV_HOT],
        assets: ['BTC'],
        requesterRoles: ['service', 'requester'],
      },
      action: 'allow',
      approvals: [{ m: 1, role: 'approver' }],
    },
  ];
}

export function devPolicy(evm = false, exchange = false): Policy {
  const book = {
    destination: { kind: 'address-book' as const },
    wallets: [DEV_WALLET],
    assets: ['BTC'],
    requesterRoles: ['requester'],
  };
  return {
    v: 1,
    rules: [
      ...(exchange ? exchangeRules() : []),
      {
        id: 'small',
        match: { ...book, maxAmount: SMALL_MAX.toString() as Amount },
        action: 'allow',
        approvals: [{ m: 1, role: 'approver' }],
      },
      {
        id: 'large',
        match: { ...book, minAmount: (SMALL_MAX + 1n).toString() as Amount },
        action: 'allow',
        approvals: [{ m: 2, role: 'approver' }],
        cancelWindowMs: CANCEL_WINDOW_MS,
      },
      ...(evm
        ? [
            {
              id: 'safe-eth',
              match: {
                destination: { kind: 'address-book' as const },
                wallets: [DEV_SAFE_ID],
                assets: ['eth'],
                requesterRoles: ['requester'],
                maxAmount: SAFE_SMALL_ETH.toString() as Amount,
              },
              action: 'allow' as const,
              approvals: [{ m: 1, role: 'approver' }],
            },
            {
              id: 'safe-usdt',
              match: {
                destination: { kind: 'address-book' as const },
                wallets: [DEV_SAFE_ID],
                assets: ['usdt'],
                requesterRoles: ['requester'],
                maxAmount: SAFE_SMALL_USDT.toString() as Amount,
              },
              action: 'allow' as const,
              approvals: [{ m: 1, role: 'approver' }],
            },
          ]
        : []),
    ],
    limits: [
      ...(evm
        ? [
            {
              id: 'safe-eth-daily',
              scope: 'wallet-asset' as const,
              wallet: DEV_SAFE_ID,
              asset: 'eth',
              windowMs: 86_400_000,
              max: (10n * 10n ** 18n).toString() as Amount,
            },
            {
              id: 'safe-usdt-daily',
              scope: 'wallet-asset' as const,
              wallet: DEV_SAFE_ID,
              asset: 'usdt',
              windowMs: 86_400_000,
              max: (100_000n * 10n ** 6n).toString() as Amount,
            },
          ]
        : []),
      ...(exchange
        ? [
            {
              id: 'hot-hourly',
              scope: 'wallet-asset' as const,
              wallet: DEV_HOT,
              asset: 'BTC',
              windowMs: 3_600_000,
              max: HOT_HOURLY.toString() as Amount,
            },
            {
              id: 'cold-daily',
              scope: 'wallet-asset' as const,
              wallet: DEV_COLD,
              asset: 'BTC',
              windowMs: 86_400_000,
              max: '1000000000' as Amount,
            },
          ]
        : []),
      {
        id: 'wallet-daily',
        scope: 'wallet-asset',
        wallet: DEV_WALLET,
        asset: 'BTC',
        windowMs: 86_400_000,
        max: '1000000000' as Amount,
      },
      {
        id: 'destination-hourly',
        scope: 'destination',
        asset: 'BTC',
        windowMs: 3_600_000,
        max: '200000000' as Amount,
      },
      {
        id: 'requester-daily',
        scope: 'requester',
        asset: 'BTC',
        windowMs: 86_400_000,
        max: '500000000' as Amount,
      },
    ],
    feeCaps: [DEV_WALLET, ...(exchange ? [DEV_HOT, DEV_COLD] : [])].map((wallet) => ({
      wallet,
      asset: 'BTC',
      maxFee: '100000' as Amount,
      maxFeeRate: '100' as Amount,
    })),
    lookalike: { prefix: 10, suffix: 6, action: 'deny' },
  };
}

export function devGenesisBody(opts: {
  members: readonly { id: string; device: string; publicKey: string }[];
  signers: readonly { record: SignerRecord; key: DescriptorKey }[];
  backup: DescriptorKey;
  /** The demo Safe, when the EVM chain runs (issue 9). */
  safe?: DevSafe;
  /** Signers that own the Safe but hold no key of the Bitcoin wallet (the backup's record). */
  safeOnlySigners?: readonly SignerRecord[];
  /**
   * The exchange shape (issue 13): the service requester's device, and the
   * offline signer of the cold wallet (its record and descriptor key).
   */
  exchange?: {
    readonly service: { readonly publicKey: string };
    readonly offline: { readonly record: SignerRecord; readonly key: DescriptorKey };
  };
}): GenesisBody {
  const safe = opts.safe;
  const members: Member[] = DEV_MEMBERS.map((m) => {
    const key = opts.members.find((k) => k.id === m.id);
    if (key === undefined) throw new Error(`BUG: no device key for ${m.id}`);
    return memberSchema.parse({
      id: m.id,
      name: m.name,
      roles: [...m.roles],
      devices: [{ id: key.device, kind: 'ed25519', publicKey: key.publicKey }],
    });
  });
  const wallet = walletOf({
    id: DEV_WALLET,
    label: 'Main BTC (regtest demo)',
    network: 'regtest',
    threshold: 2,
    keys: [...opts.signers.map((s) => s.key), opts.backup],
  });
  // Each wallet its own key set (a wallet over the same keys and threshold is an alias, WALLET_ALIAS):
  // hot = the two online signers and the offline one; cold = signer-1 online, the offline signer, the backup.
  const ex = opts.exchange;
  const exchangeWallets =
    ex === undefined
      ? []
      : [
          walletOf({
            id: DEV_HOT,
            label: 'Hot BTC (customer payouts)',
            network: 'regtest',
            threshold: 2,
            keys: [...opts.signers.map((s) => s.key), ex.offline.key],
          }),
          walletOf({
            id: DEV_COLD,
            label: 'Cold BTC (signed offline)',
            network: 'regtest',
            threshold: 2,
            keys: [opts.signers[0]!.key, ex.offline.key, opts.backup],
          }),
        ];
  if (ex !== undefined) {
    members.push(
      memberSchema.parse({
        id: DEV_SERVICE,
        name: 'Exchange backend (service)',
        roles: ['requester', 'service'],
        devices: [{ id: DEV_SERVICE_DEVICE, kind: 'ed25519', publicKey: ex.service.publicKey }],
      }),
    );
  }
  return {
    name: 'Custos Dev Demo (development only)',
    quorum: 2,
    // Short, so the demo can show a loosening change taking effect: 10 minutes.
    delayMs: 600_000,
    members,
    policy: devPolicy(safe !== undefined, ex !== undefined),
    addresses: [...devAddressBook(), ...(safe === undefined ? [] : devEvmAddressBook(safe.chainId))],
    wallets: [wallet, ...exchangeWallets, ...(safe === undefined ? [] : [devSafeWallet(safe)])],
    signers: [
      ...opts.signers.map((s) => s.record),
      ...(ex === undefined ? [] : [ex.offline.record]),
      ...(opts.safeOnlySigners ?? []),
    ],
    ...(safe === undefined ? {} : { assets: devEvmAssets(safe) }),
  };
}
