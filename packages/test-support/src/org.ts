/**
 * A small, complete organization for tests: admins, a requester, approvers
 * and a watcher, each with a real Ed25519 device key; one policy (one allow
 * rule for address-book destinations needing 2 approvers, a rolling limit, a
 * fee cap, look-alike denial); one bitcoin:regtest wallet, one address-book
 * entry and one signer record. Governance, policy and the packages above core
 * build their tests on it.
 *
 * Keys are derived from `seed` and the member id, so a failing property test
 * replays with the same keys. They are real keys and real signatures: nothing
 * here is mocked.
 */
import {
  type Address,
  type AddressEntry,
  type Amount,
  buildEntry,
  buildGenesis,
  createGenesisState,
  type Digest,
  type EntrySigner,
  ed25519PublicKey,
  type GenesisBody,
  type GovernanceEntry,
  type GovernanceEntryOf,
  type GovernanceState,
  governanceDigest,
  type Hex,
  type LaterKind,
  type Member,
  type Millis,
  type Policy,
  type Result,
  type SignedGovernanceEntry,
  type SignerRecord,
  signGovernanceEntry,
  type BitcoinWallet as Wallet,
} from '@custos/core';
import { sha256 } from '@noble/hashes/sha2.js';

export const SECOND = 1000;
export const HOUR = 3_600_000;
export const DAY = 86_400_000;
/** The fixture's default "now": when the verifier first saw the genesis. */
export const T0: Millis = 1_700_000_000_000;

/** One device of a member: everything needed to sign with it. */
export interface DeviceKey {
  readonly id: string;
  readonly secretKey: Uint8Array;
  readonly publicKey: Hex;
  /** The device as an {@link EntrySigner} for governance entries. */
  readonly signer: EntrySigner;
}

/** A member of the fixture organization with its devices (the first is `device`). */
export interface Person {
  readonly id: string;
  readonly roles: readonly string[];
  readonly device: DeviceKey;
  readonly devices: readonly DeviceKey[];
  /** The member record as it appears in the genesis. */
  readonly member: Member;
}

export interface OrgOptions {
  /** Number of admins, `admin-1`..`admin-N` (default 3). */
  readonly admins?: number;
  /** Admin quorum (default 2). */
  readonly quorum?: number;
  /** Devices per admin (default 1); devices are `<member>-d1`, `<member>-d2`... */
  readonly adminDevices?: number;
  /** Number of approvers, `approver-1`..`approver-N` (default 3). */
  readonly approvers?: number;
  /** Loosening delay (default one day). */
  readonly delayMs?: number;
  /** When the verifier first saw the genesis (default {@link T0}). */
  readonly seenAt?: Millis;
  /** Organization name; a different name gives a different org id (default "Acme Custody"). */
  readonly name?: string;
  /** Varies every key; two orgs with different seeds share no key (default "custos-test"). */
  readonly seed?: string;
  /** Replaces the placeholder wallet (e.g. with a real descriptor). */
  readonly wallet?: Wallet;
  /** Replaces the default policy. */
  readonly policy?: Policy;
}

/** The fixture organization. `state` is the verified genesis state. */
export interface Org {
  readonly genesis: SignedGovernanceEntry;
  /** The org id, to pin. */
  readonly orgId: Digest;
  readonly state: GovernanceState;
  readonly seenAt: Millis;
  readonly quorum: number;
  readonly delayMs: number;
  readonly admins: readonly Person[];
  readonly requester: Person;
  readonly approvers: readonly Person[];
  readonly watcher: Person;
  readonly members: readonly Person[];
  readonly wallet: Wallet;
  readonly address: AddressEntry;
  readonly policy: Policy;
  readonly signer: { readonly record: SignerRecord; readonly secretKey: Uint8Array };
  readonly body: GenesisBody;
}

/** A valid bech32 P2WPKH regtest address (program = first 20 bytes of sha256("custos test cold storage")). */
export const COLD_STORAGE = 'bcrt1qmrst4npf9485jefh7rs4gs780w7hutgefcjk4r' as Address;
/** Another valid regtest address (program from sha256("custos test exchange deposit")), not in the book. */
export const EXCHANGE_DEPOSIT = 'bcrt1q30dsrea4p8utn0jjhq3mwrgxf0av7atmx2a7jh' as Address;

export const WALLET_ID = 'btc-main';
export const ASSET = 'BTC';

/** A deterministic Ed25519 secret key: sha256 of the seed and a label. */
export function secretKeyFor(seed: string, label: string): Uint8Array {
  return sha256(new TextEncoder().encode(`${seed}/${label}`));
}

/** A device with a key derived from `seed`. */
export function makeDevice(seed: string, member: string, id: string): DeviceKey {
  const secretKey = secretKeyFor(seed, `${member}/${id}`);
  return { id, secretKey, publicKey: ed25519PublicKey(secretKey), signer: { member, device: id, secretKey } };
}

/** A person with `deviceCount` Ed25519 devices named `<id>-d1`, `<id>-d2`... */
export function makePerson(seed: string, id: string, roles: readonly string[], deviceCount = 1): Person {
  const devices = Array.from({ length: deviceCount }, (_, i) => makeDevice(seed, id, `${id}-d${i + 1}`));
  const member: Member = {
    id,
    name: `Test ${id}`,
    roles: [...roles],
    devices: devices.map((d) => ({ id: d.id, kind: 'ed25519' as const, publicKey: d.publicKey })),
  };
  return { id, roles, device: devices[0] as DeviceKey, devices, member };
}

/** The default policy: docs/architecture.md "Policy" with one of each part. */
export function defaultPolicy(walletId = WALLET_ID): Policy {
  return {
    v: 1,
    rules: [
      {
        id: 'allow-address-book',
        match: {
          destination: { kind: 'address-book' },
          wallets: [walletId],
          assets: [ASSET],
          requesterRoles: ['requester'],
        },
        action: 'allow',
        approvals: [{ m: 2, role: 'approver' }],
      },
    ],
    limits: [
      {
        id: 'btc-daily',
        scope: 'wallet-asset',
        wallet: walletId,
        asset: ASSET,
        windowMs: DAY,
        max: '100000000' as Amount,
      },
    ],
    feeCaps: [{ wallet: walletId, asset: ASSET, maxFee: '100000' as Amount, maxFeeRate: '100' as Amount }],
    lookalike: { prefix: 4, suffix: 4, action: 'deny' },
  };
}

/**
 * `p` with one more rule after its own: customers' addresses (in no book,
 * destination 'any') under two approvals, as the exchange's desk pays them
 * when a person approves.
 */
export function withCustomers(p: Policy): Policy {
  return {
    ...p,
    rules: [
      ...p.rules,
      {
        id: 'customers',
        match: { destination: { kind: 'any' } },
        action: 'allow',
        approvals: [{ m: 2, role: 'approver' }],
      },
    ],
  };
}

/** Builds, signs (with the first `quorum` admins) and verifies the fixture's genesis. */
export function createOrg(opts: OrgOptions = {}): Org {
  const seed = opts.seed ?? 'custos-test';
  const quorum = opts.quorum ?? 2;
  const delayMs = opts.delayMs ?? DAY;
  const seenAt = opts.seenAt ?? T0;
  const admins = Array.from({ length: opts.admins ?? 3 }, (_, i) =>
    makePerson(seed, `admin-${i + 1}`, ['admin'], opts.adminDevices ?? 1),
  );
  const requester = makePerson(seed, 'requester-1', ['requester']);
  const approvers = Array.from({ length: opts.approvers ?? 3 }, (_, i) =>
    makePerson(seed, `approver-${i + 1}`, ['approver']),
  );
  const watcher = makePerson(seed, 'watcher-1', ['watcher']);
  const members = [...admins, requester, ...approvers, watcher];

  const wallet: Wallet = opts.wallet ?? {
    id: WALLET_ID,
    label: 'Main BTC (regtest)',
    chain: 'bitcoin:regtest',
    assets: [ASSET],
    kind: 'bitcoin-wsh-sortedmulti',
    descriptor: 'wsh(sortedmulti(2,...))',
  };
  const address: AddressEntry = {
    id: 'cold-storage',
    chain: 'bitcoin:regtest',
    address: COLD_STORAGE,
    label: 'Cold storage',
    tags: ['treasury'],
  };
  const signerKey = secretKeyFor(seed, 'signer-1');
  const signerRecord: SignerRecord = {
    id: 'signer-1',
    publicKey: ed25519PublicKey(signerKey),
    label: 'Signer 1',
  };
  const policy = opts.policy ?? defaultPolicy(wallet.id);

  const body: GenesisBody = {
    name: opts.name ?? 'Acme Custody',
    quorum,
    delayMs,
    members: members.map((p) => p.member),
    policy,
    addresses: [address],
    wallets: [wallet],
    signers: [signerRecord],
  };
  const entry = buildGenesis(body, seenAt - HOUR);
  const genesis = signGovernanceEntry(
    entry,
    admins.slice(0, quorum).map((a) => a.device.signer),
  );
  const orgId = governanceDigest(entry);
  const state = unwrap(createGenesisState(genesis, seenAt, orgId));
  return {
    genesis,
    orgId,
    state,
    seenAt,
    quorum,
    delayMs,
    admins,
    requester,
    approvers,
    watcher,
    members,
    wallet,
    address,
    policy,
    signer: { record: signerRecord, secretKey: signerKey },
    body,
  };
}

/** Signs `entry` with the first device of each person (or with explicit devices). */
export function signBy(entry: GovernanceEntry, by: readonly (Person | DeviceKey)[]): SignedGovernanceEntry {
  return signGovernanceEntry(
    entry,
    by.map((p) => ('signer' in p ? p.signer : p.device.signer)),
  );
}

/** Builds the next entry after `state` and signs it. `proposedAt` defaults to `T0`. */
export function propose<K extends LaterKind>(
  state: GovernanceState,
  kind: K,
  body: GovernanceEntryOf<K>['body'],
  by: readonly (Person | DeviceKey)[],
  proposedAt: Millis = T0,
): SignedGovernanceEntry {
  return signBy(buildEntry(state, kind, body, proposedAt), by);
}

/** The value of an accepted result; throws with the refusal otherwise (test set-up only). */
export function unwrap<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`refused: ${result.code}: ${result.message}`);
  return result.value;
}
