/**
 * The governance state: who is a member with which roles and devices, which
 * policy is in force, which addresses, wallets and signers exist, and whether
 * the organization is frozen. It is produced only by applying verified
 * governance entries (governance.ts) and is immutable.
 *
 * Time-dependent parts carry `activeFrom`, counted on the verifier's own
 * clock from when *it* first saw the entry (never from `proposedAt`), so a
 * loosening change waits out the delay on every signer independently.
 *
 * Pending settings bind at once when they tighten and only after their delay
 * when they loosen. That is done without judging whether a change loosens:
 * - a policy change: until it is active, an intent must satisfy the policy in
 *   force *and* every pending one (tighter takes effect at once, looser waits);
 * - quorum and delay: the effective value is the largest of the one in force
 *   and every pending one.
 */
import type { AddressEntry, Asset, Device, Policy, SignerRecord, Wallet } from './objects.js';
import type { Digest, Millis } from './types.js';

export interface Timed<T> {
  readonly value: T;
  readonly activeFrom: Millis;
}

export interface DeviceState {
  readonly device: Device;
  readonly revoked: boolean;
  /** When the device starts to count: adding a device is a loosening change (governance-effects.ts). */
  readonly activeFrom: Millis;
}

export interface MemberState {
  readonly id: string;
  readonly name: string;
  /** role name → when the role starts to count (granting a role is a loosening change). */
  readonly roles: ReadonlyMap<string, Millis>;
  /**
   * role name → until when a dropped role still binds where it restricted:
   * policy rules are matched both with and without it until then, so
   * dropping a role that a stricter rule keyed on cannot loosen at once.
   */
  readonly endedRoles: ReadonlyMap<string, Millis>;
  readonly devices: ReadonlyMap<string, DeviceState>;
}

/** An address-book entry removed less than a delay ago (see {@link GovernanceState.retiredAddresses}). */
export interface RetiredAddress {
  readonly value: AddressEntry;
  /** When the removal has waited out its delay and the entry stops binding entirely. */
  readonly until: Millis;
}

export interface FreezeState {
  readonly seq: number;
  readonly by: string;
  readonly reason: string;
}

export interface GovernanceState {
  /** The genesis digest: the organization's id. */
  readonly org: Digest;
  readonly name: string;
  /** Sequence number and digest of the last applied entry. */
  readonly seq: number;
  readonly head: Digest;
  readonly members: ReadonlyMap<string, MemberState>;
  /** Admin quorum settings, oldest first; see {@link effectiveQuorum}. */
  readonly quorum: readonly Timed<number>[];
  /** Loosening delay settings, oldest first; see {@link effectiveDelay}. */
  readonly delayMs: readonly Timed<number>[];
  /** Policies, oldest first; see {@link policiesInForce}. */
  readonly policies: readonly Timed<Policy>[];
  /** Address-book entries by id, each active from its own time. */
  readonly addresses: ReadonlyMap<string, Timed<AddressEntry>>;
  /**
   * Address-book entries removed less than a delay ago. They are no longer
   * destinations (a removal tightens at once), but look-alike checks and the
   * rules of the view before the removal still see them: removing the entry a
   * poisoned address imitates, or one a stricter rule names, must not loosen
   * before the delay.
   */
  readonly retiredAddresses: readonly RetiredAddress[];
  readonly wallets: ReadonlyMap<string, Wallet>;
  /** wallet id → when it starts to count (wallet.add is a loosening change). */
  readonly walletsActiveFrom: ReadonlyMap<string, Millis>;
  readonly signers: ReadonlyMap<string, SignerRecord>;
  /** signer id → when it starts to count (signer.add is a loosening change). */
  readonly signersActiveFrom: ReadonlyMap<string, Millis>;
  /**
   * The asset registry (issue 9) by asset id, each entry active from its own
   * time: asset.add widens (a new thing a Safe may send), asset.remove binds
   * at once.
   */
  readonly assets: ReadonlyMap<string, Timed<Asset>>;
  /**
   * Assets removed from the registry, by id. An id keeps its meaning for good
   * (chain, kind, contract, decimals): ledgers and rolling limits sum amounts
   * by asset id, so an id re-added as another token (or with other decimals)
   * would count the old amounts in the new token's units.
   */
  readonly retiredAssets: ReadonlyMap<string, Asset>;
  readonly frozen: FreezeState | null;
}

/** Index of the last setting active at `now` (the first one is always active). */
function lastActiveIndex<T>(settings: readonly Timed<T>[], now: Millis): number {
  let idx = 0;
  for (let i = 0; i < settings.length; i++) {
    if ((settings[i] as Timed<T>).activeFrom <= now) idx = i;
  }
  return idx;
}

/** Settings that bind at `now`: the one in force and every later, still pending one. */
export function settingsInForce<T>(settings: readonly Timed<T>[], now: Millis): T[] {
  return settings.slice(lastActiveIndex(settings, now)).map((s) => s.value);
}

/** Every policy an intent must satisfy at `now` (usually one; more while a change is pending). */
export function policiesInForce(state: GovernanceState, now: Millis): Policy[] {
  return settingsInForce(state.policies, now);
}

/** The admin quorum at `now`: the largest of the one in force and any pending one. */
export function effectiveQuorum(state: GovernanceState, now: Millis): number {
  return Math.max(...settingsInForce(state.quorum, now));
}

/** The loosening delay at `now`: the largest of the one in force and any pending one. */
export function effectiveDelay(state: GovernanceState, now: Millis): number {
  return Math.max(...settingsInForce(state.delayMs, now));
}

/** Drops settings that can never bind again (older than the last active one). */
export function pruneSettings<T>(settings: readonly Timed<T>[], now: Millis): Timed<T>[] {
  return settings.slice(lastActiveIndex(settings, now));
}

/** Whether `member` holds `role` at `now` (the grant's delay has passed). */
export function hasRole(state: GovernanceState, member: string, role: string, now: Millis): boolean {
  const from = state.members.get(member)?.roles.get(role);
  return from !== undefined && from <= now;
}

/** Roles `member` holds at `now`. */
export function activeRoles(state: GovernanceState, member: string, now: Millis): string[] {
  const m = state.members.get(member);
  if (m === undefined) return [];
  return [...m.roles].filter(([, from]) => from <= now).map(([r]) => r);
}

/**
 * The roles of `member` in the two views that bind at `now` while changes
 * wait out their delay: `before` holds the active roles and those dropped
 * less than a delay ago; `after` holds the active roles and those granted but
 * still pending. Policy rules are matched in both views and both must allow,
 * so a grant and a drop can each only tighten before the delay.
 */
export function roleViews(
  state: GovernanceState,
  member: string,
  now: Millis,
): { before: Set<string>; after: Set<string> } {
  const before = new Set<string>();
  const after = new Set<string>();
  const m = state.members.get(member);
  if (m === undefined) return { before, after };
  for (const [r, from] of m.roles) {
    after.add(r);
    if (from <= now) before.add(r);
  }
  for (const [r, until] of m.endedRoles) if (until > now) before.add(r);
  return { before, after };
}

/** Whether wallet `id` exists and has waited out its delay at `now`. */
export function walletActive(state: GovernanceState, id: string, now: Millis): boolean {
  const from = state.walletsActiveFrom.get(id);
  return state.wallets.has(id) && (from === undefined || from <= now);
}

/** Whether signer `id` exists and has waited out its delay at `now`. */
export function signerActive(state: GovernanceState, id: string, now: Millis): boolean {
  const from = state.signersActiveFrom.get(id);
  return state.signers.has(id) && (from === undefined || from <= now);
}

export type AssetStatus =
  | { readonly status: 'active'; readonly asset: Asset }
  | { readonly status: 'pending'; readonly asset: Asset; readonly activeFrom: Millis }
  | { readonly status: 'unknown' };

/** Looks an asset id up in the registry: active at `now`, still waiting out its delay, or not there. */
export function assetStatus(state: GovernanceState, id: string, now: Millis): AssetStatus {
  const found = state.assets.get(id);
  if (found === undefined) return { status: 'unknown' };
  if (found.activeFrom <= now) return { status: 'active', asset: found.value };
  return { status: 'pending', asset: found.value, activeFrom: found.activeFrom };
}

export type AddressStatus =
  | { readonly status: 'active'; readonly entry: AddressEntry }
  | { readonly status: 'pending'; readonly entry: AddressEntry; readonly activeFrom: Millis }
  | { readonly status: 'unknown' };

/** Looks a destination up in the address book for one chain. */
export function addressStatus(
  state: GovernanceState,
  chain: string,
  address: string,
  now: Millis,
): AddressStatus {
  let pending: AddressStatus | undefined;
  for (const { value, activeFrom } of state.addresses.values()) {
    if (value.chain !== chain || value.address !== address) continue;
    if (activeFrom <= now) return { status: 'active', entry: value };
    if (pending === undefined || (pending.status === 'pending' && activeFrom < pending.activeFrom)) {
      pending = { status: 'pending', entry: value, activeFrom };
    }
  }
  return pending ?? { status: 'unknown' };
}

export type DeviceLookupCode = 'NOT_A_MEMBER' | 'UNKNOWN_DEVICE' | 'DEVICE_REVOKED' | 'DEVICE_NOT_ACTIVE';

export type DeviceLookup =
  | { readonly ok: true; readonly member: MemberState; readonly device: Device }
  | { readonly ok: false; readonly code: DeviceLookupCode; readonly activeFrom?: Millis };

/**
 * Finds a device of a current member that may sign at `now`: not revoked, and
 * past the delay of the entry that added it (DEVICE_NOT_ACTIVE before).
 */
export function lookupDevice(
  state: GovernanceState,
  memberId: string,
  deviceId: string,
  now: Millis,
): DeviceLookup {
  const member = state.members.get(memberId);
  if (member === undefined) return { ok: false, code: 'NOT_A_MEMBER' };
  const d = member.devices.get(deviceId);
  if (d === undefined) return { ok: false, code: 'UNKNOWN_DEVICE' };
  if (d.revoked) return { ok: false, code: 'DEVICE_REVOKED' };
  if (d.activeFrom > now) return { ok: false, code: 'DEVICE_NOT_ACTIVE', activeFrom: d.activeFrom };
  return { ok: true, member, device: d.device };
}

/** A sentence for a failed {@link lookupDevice}. */
export function deviceLookupMessage(
  lookup: Extract<DeviceLookup, { ok: false }>,
  member: string,
  device: string,
): string {
  switch (lookup.code) {
    case 'NOT_A_MEMBER':
      return `${member} is not a member`;
    case 'UNKNOWN_DEVICE':
      return `${member} has no device ${device}`;
    case 'DEVICE_REVOKED':
      return `device ${device} of ${member} is revoked`;
    case 'DEVICE_NOT_ACTIVE':
      return `device ${device} of ${member} is waiting out the governance delay until ${new Date(lookup.activeFrom ?? 0).toISOString()}`;
  }
}

/** A readable summary of a verified governance state, as GET /v1/governance/state and the CLI show it. */
export interface GovernanceSummary {
  readonly org: Digest;
  readonly name: string;
  readonly seq: number;
  readonly head: Digest;
  readonly frozen: FreezeState | null;
  readonly quorum: number;
  readonly delayMs: number;
  readonly members: readonly {
    readonly id: string;
    readonly name: string;
    readonly roles: readonly { readonly role: string; readonly activeFrom: Millis }[];
    readonly devices: readonly {
      readonly id: string;
      readonly kind: string;
      readonly revoked: boolean;
      readonly activeFrom: Millis;
    }[];
  }[];
  readonly policies: readonly { readonly policy: Policy; readonly activeFrom: Millis }[];
  readonly addresses: readonly { readonly entry: AddressEntry; readonly activeFrom: Millis }[];
  readonly wallets: readonly Wallet[];
  readonly signers: readonly SignerRecord[];
  /** The asset registry, each entry with the time it counts from. */
  readonly assets: readonly { readonly asset: Asset; readonly activeFrom: Millis }[];
  /** Wallets, signers and assets still waiting out the delay of the entry that added them, with the time they count from. */
  readonly pending: readonly {
    readonly kind: 'wallet' | 'signer' | 'asset';
    readonly id: string;
    readonly activeFrom: Millis;
  }[];
}

/** A readable summary of a verified state at `now` (GET /v1/governance/state). */
export function governanceSummary(state: GovernanceState, now: Millis): GovernanceSummary {
  return {
    org: state.org,
    name: state.name,
    seq: state.seq,
    head: state.head,
    frozen: state.frozen,
    quorum: effectiveQuorum(state, now),
    delayMs: effectiveDelay(state, now),
    members: [...state.members.values()].map((m) => ({
      id: m.id,
      name: m.name,
      roles: [...m.roles].map(([role, activeFrom]) => ({ role, activeFrom })),
      devices: [...m.devices.values()].map((d) => ({
        id: d.device.id,
        kind: d.device.kind,
        revoked: d.revoked,
        activeFrom: d.activeFrom,
      })),
    })),
    policies: state.policies.map((p) => ({ policy: p.value, activeFrom: p.activeFrom })),
    addresses: [...state.addresses.values()].map((a) => ({ entry: a.value, activeFrom: a.activeFrom })),
    wallets: [...state.wallets.values()],
    signers: [...state.signers.values()],
    assets: [...state.assets.values()].map((a) => ({ asset: a.value, activeFrom: a.activeFrom })),
    pending: [
      ...[...state.walletsActiveFrom]
        .filter(([, from]) => from > now)
        .map(([id, activeFrom]) => ({ kind: 'wallet' as const, id, activeFrom })),
      ...[...state.signersActiveFrom]
        .filter(([, from]) => from > now)
        .map(([id, activeFrom]) => ({ kind: 'signer' as const, id, activeFrom })),
      ...[...state.assets]
        .filter(([, a]) => a.activeFrom > now)
        .map(([id, a]) => ({ kind: 'asset' as const, id, activeFrom: a.activeFrom })),
    ],
  };
}
