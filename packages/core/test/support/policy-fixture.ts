/**
 * Governance states for the policy tests, built directly as plain objects so
 * the policy engine is tested on its own (no governance entries to sign and
 * apply). People hold real Ed25519 device keys; intents and approvals carry
 * real signatures. Policies, intents and address entries go through their
 * schemas, so a fixture that the decoders would refuse cannot creep in.
 */
import { digestOf } from '../../src/jcs.js';
import { type Ed25519KeyPair, generateEd25519, signDigest } from '../../src/keys.js';
import {
  type AddressEntry,
  type Approval,
  type Asset,
  addressEntry,
  approvalDigest,
  type Intent,
  intentDigest,
  intent as intentSchema,
  type LedgerEntry,
  type Policy,
  type PolicyRule,
  policy as policySchema,
  type RollingLimit,
  type SignedApproval,
  type SignedIntent,
  type Wallet,
} from '../../src/objects.js';
import type { DeviceState, FreezeState, GovernanceState, MemberState, Timed } from '../../src/state.js';
import type { Address, Amount, Digest, Millis } from '../../src/types.js';

/** The verifier's clock in most tests. */
export const NOW: Millis = 1_750_000_000_000;
export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

export const ORG = digestOf('test', 1, 'custos policy fixture org');
export const OTHER_ORG = digestOf('test', 1, 'another org');

export const MAINNET = 'bitcoin:mainnet';
export const TESTNET = 'bitcoin:testnet';

export const HOT: Wallet = {
  id: 'hot',
  label: 'Hot wallet',
  chain: MAINNET,
  assets: ['BTC'],
  kind: 'bitcoin-wsh-sortedmulti',
  descriptor: 'wsh(sortedmulti(2,[00000001/48h/0h/0h/2h]xpub1/0/*,[00000002/48h/0h/0h/2h]xpub2/0/*))',
};
export const COLD: Wallet = { ...HOT, id: 'cold', label: 'Cold wallet' };
export const TEST_WALLET: Wallet = { ...HOT, id: 'tst', label: 'Testnet wallet', chain: TESTNET };

/** A well-known mainnet address, its look-alike (same first 8, last 4 characters) and unrelated ones. */
export const EXCHANGE = 'bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh' as Address;
export const POISON = 'bc1qxy2kzzzzzzzzzzzzzzzzzzzzzzzzzzzzzx0wlh' as Address;
export const SUPPLIER = 'bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq' as Address;
export const STRANGER = 'bc1q9vza2e8x573nczrlzms0wvx3gsqjx7vavgkx0l' as Address;

/** A person with device keys; becomes a member through {@link memberState}. */
export interface Person {
  readonly id: string;
  readonly devices: readonly { readonly id: string; readonly keys: Ed25519KeyPair }[];
}

export function person(id: string, devices = 1): Person {
  return {
    id,
    devices: Array.from({ length: devices }, (_, i) => ({ id: `${id}-${i + 1}`, keys: generateEd25519() })),
  };
}

export interface MemberSpec {
  readonly person: Person;
  /** Role names (active since long ago) or role → activeFrom. */
  readonly roles: readonly string[] | Readonly<Record<string, Millis>>;
  /** Device ids that governance revoked. */
  readonly revoked?: readonly string[];
}

export function memberState(spec: MemberSpec): MemberState {
  const roles = new Map<string, Millis>(
    Array.isArray(spec.roles)
      ? (spec.roles as readonly string[]).map((r) => [r, 0])
      : Object.entries(spec.roles as Readonly<Record<string, Millis>>),
  );
  const devices = new Map<string, DeviceState>(
    spec.person.devices.map((d) => [
      d.id,
      {
        device: { id: d.id, kind: 'ed25519', publicKey: d.keys.publicKey },
        revoked: spec.revoked?.includes(d.id) ?? false,
        activeFrom: 0,
      },
    ]),
  );
  return { id: spec.person.id, name: spec.person.id, roles, endedRoles: new Map(), devices };
}

/** A policy, checked by its schema. */
export function makePolicy(
  rules: readonly PolicyRule[],
  opts: { limits?: readonly RollingLimit[]; lookalike?: Policy['lookalike'] } = {},
): Policy {
  return policySchema.parse({
    v: 1,
    rules,
    limits: opts.limits ?? [],
    feeCaps: [],
    lookalike: opts.lookalike ?? { prefix: 8, suffix: 4, action: 'deny' },
  });
}

/** Allow rule: address-book destinations, `m` of role `approver`. */
export function bookRule(id: string, m: number, extra: Partial<PolicyRule> = {}): PolicyRule {
  return {
    id,
    match: { destination: { kind: 'address-book' } },
    action: 'allow',
    approvals: [{ m, role: 'approver' }],
    ...extra,
  };
}

export function entry(id: string, address: Address, extra: Partial<AddressEntry> = {}): AddressEntry {
  return addressEntry.parse({ id, chain: MAINNET, address, label: `${id} label`, ...extra });
}

export interface StateSpec {
  readonly members: readonly MemberSpec[];
  readonly policies: readonly (Policy | Timed<Policy>)[];
  readonly addresses?: readonly (AddressEntry | Timed<AddressEntry>)[];
  readonly wallets?: readonly Wallet[];
  readonly assets?: readonly (Asset | Timed<Asset>)[];
  readonly frozen?: FreezeState | null;
}

function timed<T extends object>(x: T | Timed<T>): Timed<T> {
  return 'activeFrom' in x && 'value' in x ? (x as Timed<T>) : { value: x as T, activeFrom: 0 };
}

export function buildState(spec: StateSpec): GovernanceState {
  return {
    org: ORG,
    name: 'Fixture Org',
    seq: 1,
    head: digestOf('test', 1, 'head'),
    members: new Map(spec.members.map((m) => [m.person.id, memberState(m)])),
    quorum: [{ value: 2, activeFrom: 0 }],
    delayMs: [{ value: DAY, activeFrom: 0 }],
    policies: spec.policies.map(timed),
    addresses: new Map((spec.addresses ?? []).map((a) => timed(a)).map((a) => [a.value.id, a])),
    retiredAddresses: [],
    wallets: new Map((spec.wallets ?? [HOT, COLD, TEST_WALLET]).map((w) => [w.id, w])),
    walletsActiveFrom: new Map(),
    signers: new Map(),
    signersActiveFrom: new Map(),
    assets: new Map((spec.assets ?? []).map((a) => timed(a)).map((a) => [a.value.id, a])),
    retiredAssets: new Map(),
    frozen: spec.frozen ?? null,
  };
}

let nonceCounter = 0;

/** An intent from `requester`'s first device, checked by its schema. */
export function makeIntent(requester: Person, overrides: Partial<Intent> = {}): Intent {
  nonceCounter++;
  return intentSchema.parse({
    v: 1,
    org: ORG,
    wallet: 'hot',
    chain: MAINNET,
    asset: 'BTC',
    amount: '150000',
    to: EXCHANGE,
    requester: requester.id,
    device: requester.devices[0]?.id,
    nonce: nonceCounter.toString(16).padStart(32, '0'),
    createdAt: NOW - 10 * MINUTE,
    expiresAt: NOW + HOUR,
    ...overrides,
  });
}

function keysOf(p: Person, device: number): { id: string; keys: Ed25519KeyPair } {
  const d = p.devices[device];
  if (d === undefined) throw new Error(`${p.id} has no device #${device}`);
  return d;
}

/** Signs an intent on `signer`'s device (the requester's own by default). */
export function signIntent(signer: Person, i: Intent, device = 0): SignedIntent {
  return { intent: i, signature: signDigest(keysOf(signer, device).keys.secretKey, intentDigest(i)) };
}

export interface ApprovalOptions {
  readonly decision?: 'approve' | 'reject';
  readonly at?: Millis;
  readonly expiresAt?: Millis;
  readonly device?: number;
}

/** `approver` signs a decision on `digest` with one of its devices. */
export function approve(approver: Person, digest: Digest, opts: ApprovalOptions = {}): SignedApproval {
  const d = keysOf(approver, opts.device ?? 0);
  const at = opts.at ?? NOW - 5 * MINUTE;
  const a: Approval = {
    v: 1,
    intent: digest,
    approver: approver.id,
    device: d.id,
    decision: opts.decision ?? 'approve',
    at,
    expiresAt: opts.expiresAt ?? at + HOUR,
  };
  return { approval: a, signature: signDigest(d.keys.secretKey, approvalDigest(a)) };
}

/** A ledger entry as a signer records it after signing. */
export function ledgerEntry(fields: {
  amount: bigint | string;
  at: Millis;
  wallet?: string;
  asset?: string;
  to?: string;
  requester?: string;
  intent?: Digest;
}): LedgerEntry {
  return {
    intent: fields.intent ?? digestOf('test', 1, `ledger ${nonceCounter++}`),
    wallet: fields.wallet ?? 'hot',
    asset: fields.asset ?? 'BTC',
    amount: String(fields.amount) as Amount,
    to: (fields.to ?? SUPPLIER) as Address,
    requester: fields.requester ?? 'rita',
    at: fields.at,
  };
}

/** Ledger entry recording that `i` was signed at `at`. */
export function ledgerOf(i: Intent, at: Millis): LedgerEntry {
  return {
    intent: intentDigest(i),
    wallet: i.wallet,
    asset: i.asset,
    amount: i.amount,
    to: i.to,
    requester: i.requester,
    at,
  };
}
