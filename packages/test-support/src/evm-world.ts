/**
 * An EVM Safe world for tests (issue 9): the fixture organization with
 * governed Safes 1.4.1 deployed on a real local chain (Hardhat,
 * `startEvmChain`), whose owners are the given signers' EVM keys and a backup
 * key (2 of 3); the ETH and the 6-decimal token in the asset registry; one
 * address-book payee; intents and approvals signed by the members' devices;
 * jobs whose `safeTx` is whatever a test (or an attacker in the coordinator)
 * proposes. The signer's process tests and the coordinator's end-to-end test
 * share it.
 */
import { readFileSync } from 'node:fs';
import {
  type AddressEntry,
  type Amount,
  type Approval,
  type Asset,
  approvalDigest,
  buildGenesis,
  createGenesisState,
  type Digest,
  type EvmSafeWallet,
  type GenesisBody,
  type GovernanceState,
  governanceDigest,
  type Hex,
  type Intent,
  intentDigest,
  type JobSafeTx,
  type Policy,
  type SignedApproval,
  type SignedGovernanceEntry,
  type SignedIntent,
  type SignerJob,
  type SignerRecord,
  signDigest,
  signGovernanceEntry,
  toHex,
} from '@custos/core';
import { type Address, buildTransferSafeTx, type SafeTx } from '@custos/evm';
import { sha256 } from '@noble/hashes/sha2.js';
import { getAddress } from 'viem';
import type { DeploySafeOptions, EvmChain } from './evm-chain.js';
import { createOrg, DAY, HOUR, type Org, unwrap } from './org.js';

export const ETH = 10n ** 18n;

export interface EvmWorld {
  readonly org: Org;
  readonly chain: EvmChain;
  readonly chainName: string;
  readonly genesis: SignedGovernanceEntry;
  readonly orgId: Digest;
  readonly state: GovernanceState;
  /** Governed Safes by wallet id. */
  readonly safes: Readonly<Record<'eth-safe' | 'eth-safe-2', EvmSafeWallet>>;
  readonly payee: Address;
  intent(o: { wallet?: string; asset: 'eth' | 'usdt'; amount: bigint; to?: Address }): SignedIntent;
  approve(intent: SignedIntent): SignedApproval[];
  /** The SafeTx the intent allows at `nonce`, as the coordinator would propose it. */
  proposal(intent: SignedIntent, nonce: bigint): JobSafeTx;
  job(
    id: string,
    signer: string,
    intent: SignedIntent,
    approvals: readonly SignedApproval[],
    safeTx: JobSafeTx,
    head?: { seq: number; digest: Digest },
  ): SignerJob;
}

/** The EVM address in a keystore's public half (`custos signer init` prints the same). */
export function keystoreEvmAddress(path: string): Address {
  const file = JSON.parse(readFileSync(path, 'utf8')) as { public: { evmAddress?: string } };
  const a = file.public.evmAddress;
  if (a === undefined) throw new Error(`keystore ${path} has no EVM key`);
  return a as Address;
}

/** A JobSafeTx (decimal strings) from a SafeTx and its domain. */
export function toJobSafeTx(safe: Address, chainId: number, tx: SafeTx): JobSafeTx {
  return {
    safe: getAddress(safe) as JobSafeTx['safe'],
    chainId: String(chainId),
    to: getAddress(tx.to) as JobSafeTx['to'],
    value: tx.value.toString(),
    data: tx.data.toLowerCase(),
    operation: tx.operation,
    safeTxGas: tx.safeTxGas.toString(),
    baseGas: tx.baseGas.toString(),
    gasPrice: tx.gasPrice.toString(),
    gasToken: getAddress(tx.gasToken) as JobSafeTx['gasToken'],
    refundReceiver: getAddress(tx.refundReceiver) as JobSafeTx['refundReceiver'],
    nonce: tx.nonce.toString(),
  };
}

/** A SafeTx (bigints) from a job's proposal. */
export function fromJobSafeTx(p: JobSafeTx): SafeTx {
  return {
    to: p.to as Address,
    value: BigInt(p.value),
    data: p.data as `0x${string}`,
    operation: p.operation,
    safeTxGas: BigInt(p.safeTxGas),
    baseGas: BigInt(p.baseGas),
    gasPrice: BigInt(p.gasPrice),
    gasToken: p.gasToken as Address,
    refundReceiver: p.refundReceiver as Address,
    nonce: BigInt(p.nonce),
  };
}

let counter = 0;

/** What a test may change in its world; the defaults suit the signer's tests. */
export interface EvmWorldOptions {
  /** What each Safe is funded with (evm-chain's defaults otherwise). */
  readonly fund?: DeploySafeOptions;
  /** The rolling daily limits per Safe and asset, in base units; default 100 ETH and 10,000 USDT. */
  readonly daily?: { readonly eth: bigint; readonly usdt: bigint };
  /** The governance delay (default one day); the console's test adds passkeys and waits it out. */
  readonly delayMs?: number;
}

/**
 * Deploys two Safes owned by the signers' EVM keys and the backup key
 * (2 of 3) and writes the genesis that governs them.
 */
export async function makeEvmWorld(
  chain: EvmChain,
  signers: readonly { id: string; identityKey: string; evmAddress: Address }[],
  options: EvmWorldOptions = {},
): Promise<EvmWorld> {
  const daily = options.daily ?? { eth: 100n * ETH, usdt: 10_000_000_000n };
  const org = createOrg(options.delayMs === undefined ? {} : { delayMs: options.delayMs });
  const chainName = `eip155:${chain.chainId}`;
  const backup = chain.accounts[3]!.address;
  const payee = getAddress(chain.accounts[6]!.address);
  const ownerAddresses = [...signers.map((s) => s.evmAddress), backup];
  const deployed = await Promise.all([
    chain.deploySafe(ownerAddresses, 2, options.fund),
    chain.deploySafe(ownerAddresses, 2, options.fund),
  ]);
  const records: SignerRecord[] = [
    ...signers.map((s) => ({
      id: s.id,
      publicKey: s.identityKey as Hex,
      label: s.id,
      evmAddress: s.evmAddress as SignerRecord['evmAddress'] & string,
    })),
    {
      id: 'signer-backup',
      publicKey: org.signer.record.publicKey,
      label: 'Offline backup',
      evmAddress: getAddress(backup) as NonNullable<SignerRecord['evmAddress']>,
    },
  ];
  const owners = records.map((r) => ({ signer: r.id, address: r.evmAddress! }));
  const safeOf = (id: 'eth-safe' | 'eth-safe-2', address: Address): EvmSafeWallet => ({
    id,
    label: `Treasury ${id}`,
    chain: chainName,
    assets: ['eth', 'usdt'],
    kind: 'evm-safe',
    address: getAddress(address) as EvmSafeWallet['address'],
    singleton: getAddress(chain.safeContracts.singleton) as EvmSafeWallet['singleton'],
    singletonCodeHash: chain.safeContracts.singletonCodeHash.toLowerCase(),
    owners,
    threshold: 2,
    fallbackHandler: getAddress(chain.safeContracts.fallbackHandler) as EvmSafeWallet['fallbackHandler'],
  });
  const safes = {
    'eth-safe': safeOf('eth-safe', deployed[0].address),
    'eth-safe-2': safeOf('eth-safe-2', deployed[1].address),
  };
  const assets: Asset[] = [
    { id: 'eth', chain: chainName, kind: 'native', symbol: 'ETH', decimals: 18 },
    {
      id: 'usdt',
      chain: chainName,
      kind: 'erc20',
      contract: getAddress(chain.token) as Extract<Asset, { kind: 'erc20' }>['contract'],
      symbol: 'USDT',
      decimals: 6,
    },
  ];
  const book: AddressEntry = {
    id: 'payee',
    chain: chainName,
    address: payee as AddressEntry['address'],
    label: 'Payee',
  };
  const policy: Policy = {
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
        id: 'eth-daily',
        scope: 'wallet-asset',
        asset: 'eth',
        windowMs: DAY,
        max: daily.eth.toString() as Amount,
      },
      {
        id: 'usdt-daily',
        scope: 'wallet-asset',
        asset: 'usdt',
        windowMs: DAY,
        max: daily.usdt.toString() as Amount,
      },
    ],
    feeCaps: [],
  };
  const body: GenesisBody = {
    ...org.body,
    policy,
    addresses: [book],
    signers: records,
    assets,
    wallets: [safes['eth-safe'], safes['eth-safe-2']],
  };
  const entry = buildGenesis(body, Date.now() - HOUR);
  const genesis = signGovernanceEntry(
    entry,
    org.admins.slice(0, org.quorum).map((a) => a.device.signer),
  );
  const orgId = governanceDigest(entry);
  const state = unwrap(createGenesisState(genesis, Date.now(), orgId));

  const world: EvmWorld = {
    org,
    chain,
    chainName,
    genesis,
    orgId,
    state,
    safes,
    payee,
    intent(o) {
      const by = org.requester;
      const now = Date.now();
      const body: Intent = {
        v: 1,
        org: orgId,
        wallet: o.wallet ?? 'eth-safe',
        chain: chainName,
        asset: o.asset,
        amount: o.amount.toString() as Amount,
        to: (o.to ?? payee) as Intent['to'],
        requester: by.id,
        device: by.device.id,
        nonce: toHex(sha256(new TextEncoder().encode(`evm nonce ${counter++} ${now}`))).slice(0, 32) as Hex,
        createdAt: now - 1000,
        expiresAt: now + HOUR,
      };
      return { intent: body, signature: signDigest(by.device.secretKey, intentDigest(body)) };
    },
    approve(intent) {
      const digest = intentDigest(intent.intent);
      const now = Date.now();
      return org.approvers.slice(0, 2).map((p) => {
        const a: Approval = {
          v: 1,
          intent: digest,
          approver: p.id,
          device: p.device.id,
          decision: 'approve',
          at: now - 500,
          expiresAt: now + HOUR,
        };
        return { approval: a, signature: signDigest(p.device.secretKey, approvalDigest(a)) };
      });
    },
    proposal(intent, nonce) {
      const i = intent.intent;
      const safe = safes[i.wallet as 'eth-safe'];
      const asset = assets.find((a) => a.id === i.asset)!;
      const tx = buildTransferSafeTx({
        asset:
          asset.kind === 'erc20'
            ? { kind: 'erc20', contract: asset.contract as Address }
            : { kind: 'native' },
        to: i.to as Address,
        amount: BigInt(i.amount),
        nonce,
      });
      return toJobSafeTx(safe.address as Address, chain.chainId, tx);
    },
    job(id, signer, intent, approvals, safeTx, head = { seq: 0, digest: orgId }) {
      return { v: 1, id, signer, intent, approvals: [...approvals], governance: head, safeTx };
    },
  };
  return world;
}
