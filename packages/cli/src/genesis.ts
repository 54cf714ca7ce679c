/**
 * Building a genesis from what people bring to the founding meeting: the
 * admins' and members' public device keys (`custos keys show --json`), the
 * signers' keystore public halves (`custos signer init` prints them), extra
 * wallet keys such as an offline backup, a policy and an address book.
 *
 * Pure: files are read by the command; this module only shapes and checks.
 * The result goes through core buildGenesis, which applies the strict
 * schemas; governance itself then refuses a genesis whose keys collide or
 * whose policy names unknown members or wallets.
 */
import {
  type BitcoinNetworkName,
  chainOfNetwork,
  type DescriptorKey,
  formatDescriptor,
  walletFromKeys,
} from '@custos/bitcoin';
import {
  type AddressEntry,
  type Amount,
  addressEntry,
  CustosError,
  type GenesisBody,
  type Member,
  member as memberSchema,
  type Policy,
  policy as policySchema,
  type SignerRecord,
  signerRecord,
  type Wallet,
} from '@custos/core';
import { keystorePublic } from '@custos/signer/keystore';

/** A person as given in --admins / --members files: flexible input, strict output. */
export interface PersonInput {
  readonly id: string;
  readonly name?: string;
  readonly roles?: readonly string[];
  /** One device: `keys show --json` gives { id, device, kind, publicKey }. */
  readonly device?: string;
  readonly publicKey?: string;
  /** Or several. */
  readonly devices?: readonly { id: string; kind?: string; publicKey: string }[];
}

function asArray(value: unknown, what: string): unknown[] {
  if (Array.isArray(value)) return value;
  if (value !== null && typeof value === 'object') return [value];
  throw new CustosError('WRONG_TYPE', `${what}: expected a JSON object or a list of them`);
}

function field(o: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

/** Reads people from parsed JSON, adding `extraRole` (e.g. admin) to each. */
export function peopleFrom(value: unknown, what: string, extraRole?: string): Member[] {
  return asArray(value, what).map((raw, i) => {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw new CustosError('WRONG_TYPE', `${what}[${i}]: expected an object`);
    }
    const o = raw as Record<string, unknown>;
    const id = field(o, 'id');
    const devicesRaw = field(o, 'devices');
    const devices: unknown[] =
      devicesRaw !== undefined
        ? asArray(devicesRaw, `${what}[${i}].devices`).map((d) =>
            d !== null && typeof d === 'object' ? { kind: 'ed25519', ...(d as object) } : d,
          )
        : [{ id: field(o, 'device'), kind: 'ed25519', publicKey: field(o, 'publicKey') }];
    const rolesRaw = field(o, 'roles');
    const roles = Array.isArray(rolesRaw) ? rolesRaw : [];
    const allRoles = extraRole !== undefined && !roles.includes(extraRole) ? [...roles, extraRole] : roles;
    return memberSchema.parse(
      { id, name: field(o, 'name') ?? id, roles: allRoles, devices },
      `${what}[${i}]`,
    );
  });
}

/** Merges people listed twice (an admin who also approves): roles and devices united. */
export function mergeMembers(lists: readonly Member[][]): Member[] {
  const byId = new Map<string, Member>();
  for (const list of lists) {
    for (const m of list) {
      const prev = byId.get(m.id);
      if (prev === undefined) {
        byId.set(m.id, m);
        continue;
      }
      const roles = [...new Set([...prev.roles, ...m.roles])];
      const devices = [...prev.devices];
      for (const d of m.devices) if (!devices.some((x) => x.id === d.id)) devices.push(d);
      byId.set(m.id, { ...prev, roles, devices });
    }
  }
  return [...byId.values()];
}

/** A signer keystore's public half (`custos signer init` output): its record and its wallet key. */
export function signerFrom(
  value: unknown,
  what: string,
): { record: SignerRecord; key: DescriptorKey; network: string } {
  const pub = keystorePublic.parse(value, what);
  return {
    record: signerRecord.parse({ id: pub.id, publicKey: pub.identityKey, label: pub.id }),
    key: { fingerprint: pub.fingerprint, path: pub.path.replaceAll("'", 'h'), xpub: pub.xpub },
    network: pub.network,
  };
}

/** `[fingerprint/path]xpub` as Bitcoin Core prints key origins. */
export function descriptorKeyFrom(text: string): DescriptorKey {
  const m = /^\[([0-9a-fA-F]{8})((?:\/[0-9]+['hH]?)*)\]([1-9A-HJ-NP-Za-km-z]{100,120})(?:\/0\/\*)?$/.exec(
    text.trim(),
  );
  if (m === null)
    throw new CustosError('INVALID_VALUE', `not a key with its origin, [fingerprint/path]xpub: ${text}`);
  return { fingerprint: m[1]!.toLowerCase(), path: m[2]!.slice(1).replace(/['H]/g, 'h'), xpub: m[3]! };
}

export function walletOf(opts: {
  id: string;
  label: string;
  network: BitcoinNetworkName;
  threshold: number;
  keys: readonly DescriptorKey[];
}): Wallet {
  const descriptor = walletFromKeys(opts.threshold, opts.keys, opts.network);
  return {
    id: opts.id,
    label: opts.label,
    chain: chainOfNetwork(opts.network),
    assets: ['BTC'],
    kind: 'bitcoin-wsh-sortedmulti',
    descriptor: formatDescriptor(descriptor, 0),
  };
}

/**
 * The default policy: address-book destinations only, `approvals` approvers
 * (never the requester), a daily limit per wallet, fee caps (signers refuse
 * a transaction without one), and look-alike destinations refused.
 */
export function defaultPolicy(wallets: readonly string[], approvals: number): Policy {
  return policySchema.parse({
    v: 1,
    rules: [
      {
        id: 'address-book',
        match: { destination: { kind: 'address-book' }, requesterRoles: ['requester'] },
        action: 'allow',
        approvals: [{ m: Math.max(1, approvals), role: 'approver' }],
      },
    ],
    limits: wallets.map((w) => ({
      id: `${w}-daily`,
      scope: 'wallet-asset',
      wallet: w,
      asset: 'BTC',
      windowMs: 86_400_000,
      max: '1000000000' as Amount,
    })),
    feeCaps: wallets.map((w) => ({ wallet: w, asset: 'BTC', maxFee: '200000', maxFeeRate: '200' })),
    lookalike: { prefix: 8, suffix: 6, action: 'deny' },
  });
}

export function addressesFrom(value: unknown): AddressEntry[] {
  return asArray(value, 'addresses').map((a, i) => addressEntry.parse(a, `addresses[${i}]`));
}

export function genesisBody(opts: {
  name: string;
  quorum: number;
  delayMs: number;
  members: Member[];
  policy: Policy;
  addresses: AddressEntry[];
  wallets: Wallet[];
  signers: SignerRecord[];
}): GenesisBody {
  const admins = opts.members.filter((m) => m.roles.includes('admin')).length;
  if (admins < opts.quorum) {
    throw new CustosError(
      'INVALID_VALUE',
      `the quorum is ${opts.quorum} but only ${admins} admin(s) are listed`,
    );
  }
  return { ...opts, policy: policySchema.parse(opts.policy) };
}
