/**
 * Governance: applying quorum-signed entries to the state, and verifying the
 * chain of entries from the pinned genesis.
 *
 * Why it is built this way:
 * - The coordinator's database is trusted for availability only (docs/architecture.md
 *   "Trust model"). Anyone who can write a governance row can add an approver
 *   key or lower the quorum (THREATS 9), so every entry is checked against the
 *   state *before* it: each signature must be a current admin's (or, for a
 *   freeze, a watcher's) non-revoked device, and a signature that does not
 *   verify makes the whole entry invalid. A forged row next to genuine ones is
 *   an attack to report, not noise to skip.
 * - The trust anchor is the genesis digest, pinned out of band (docs/architecture.md
 *   "Trust model"); every later entry names it as `org` and links to the one
 *   before by `seq` and `prev`, so entries cannot be dropped, reordered,
 *   replayed or moved to another organization.
 * - Loosening changes wait out a delay counted from `seenAt`, the moment this
 *   verifier first saw the entry on its own clock, never from `proposedAt`
 *   (docs/architecture.md "Governance entry"; THREATS 18, 19). How pending settings bind
 *   is decided in state.ts; this module only stamps `activeFrom`.
 * - Freeze needs one admin or watcher, unfreeze the quorum (THREATS 22).
 * - Pure: state, entry and time in, a new state or a refusal out. The input
 *   state is never changed. Maps are copied only when an entry changes them,
 *   and a whole chain is folded into one private working copy, so verifying
 *   10,000 entries costs 10,000 digests and the signature checks, not 10,000
 *   state copies.
 */
import {
  type Accepted,
  accept,
  CustosError,
  type ErrorDetails,
  type Refusal,
  type Result,
  refusalFrom,
  refuse,
} from './errors.js';
import { signDigest, verifyDeviceSignature } from './keys.js';
import {
  type AddressEntry,
  type Asset,
  automationWalletProblem,
  type Device,
  type EvmSafeWallet,
  type GenesisBody,
  type GovernanceEntry,
  type GovernanceEntryOf,
  type GovernanceKind,
  type GovernanceSignature,
  governanceDigest,
  governanceEntry,
  type Member,
  type Policy,
  type SignedGovernanceEntry,
  type SignerRecord,
  signedGovernanceEntry,
  type Wallet,
} from './objects.js';
import { ZERO_DIGEST } from './primitives.js';
import {
  type DeviceState,
  deviceLookupMessage,
  effectiveDelay,
  effectiveQuorum,
  type GovernanceState,
  hasRole,
  lookupDevice,
  type MemberState,
  policiesInForce,
  pruneSettings,
  type RetiredAddress,
  type Timed,
} from './state.js';
import type { Digest, Millis } from './types.js';

/** The role whose holders sign governance entries (docs/architecture.md "Trust model": admin quorum). */
export const ADMIN_ROLE = 'admin';
/** The role whose holders may sign a freeze, and nothing else (docs/architecture.md "Governance entry"). */
export const WATCHER_ROLE = 'watcher';

/** A governance entry together with the time this verifier first saw it (its own clock, stored durably). */
export interface AppliedEntry {
  readonly signed: SignedGovernanceEntry;
  readonly seenAt: Millis;
}

/** Every kind but the genesis: the kinds that extend an existing chain. */
export type LaterKind = Exclude<GovernanceKind, 'genesis'>;

/** A device key that signs governance entries (the CLI, the dev deployment, tests). */
export interface EntrySigner {
  readonly member: string;
  readonly device: string;
  readonly secretKey: Uint8Array;
}

// ---------------------------------------------------------------- verification API

/**
 * Verifies a genesis entry and returns the first state. The organization's id
 * is the genesis digest; pass the pinned one to refuse any other (WRONG_ORG).
 *
 * The genesis must be signed by `body.quorum` distinct admins it lists itself.
 * Everything in it is active from `seenAt`: there is no earlier state to fall
 * back to, so nothing waits.
 *
 * @example
 * const state = createGenesisState(signed, Date.now(), pinnedGenesis);
 * if (!state.ok) alert(state.code);
 */
export function createGenesisState(
  signed: SignedGovernanceEntry,
  seenAt: Millis,
  pinnedGenesis?: Digest,
): Result<GovernanceState> {
  checkTime(seenAt);
  try {
    const parsed = signedGovernanceEntry.parse(signed);
    return genesisState(parsed, governanceDigest(parsed.entry), seenAt, pinnedGenesis);
  } catch (err) {
    return refusalFrom(err);
  }
}

/** Distinct signers an entry needs (1 for a freeze, else the admin quorum in force) and has. */
export interface QuorumCount {
  readonly needed: number;
  readonly got: number;
}

/** A refusal of a whole chain: `seq` is the position of the first entry that does not verify. */
export interface ChainRefusal extends Refusal {
  readonly seq: number;
}

/** A refusal to apply a governance entry; `quorum` is set when only signatures are missing. */
export interface GovernanceRefusal extends Refusal {
  readonly quorum?: QuorumCount;
}

/**
 * Applies one later entry to `state` and returns the new state; `state` itself
 * is not changed. `seenAt` is when this verifier first saw the entry; pass a
 * time no earlier than the one given for the entry before (a shell records
 * first-seen times as the larger of its clock and the last one it stored).
 *
 * Refusals: the decoding codes for a malformed entry; WRONG_ORG;
 * GOVERNANCE_CHAIN_BROKEN (wrong seq or prev, a second genesis);
 * GOVERNANCE_SIGNATURE_INVALID (a signature by anyone but a current admin, or
 * that does not verify); QUORUM_NOT_MET; GOVERNANCE_INVALID (the change does
 * not fit the state). A QUORUM_NOT_MET refusal of an entry whose every
 * signature is good carries `quorum`: how many distinct signers it needs and
 * has, so a coordinator collecting signatures can say how far along it is.
 */
export function applyGovernance(
  state: GovernanceState,
  signed: SignedGovernanceEntry,
  seenAt: Millis,
): Accepted<GovernanceState> | GovernanceRefusal {
  checkTime(seenAt);
  try {
    const parsed = signedGovernanceEntry.parse(signed);
    const work = new Working(state, false);
    const refusal: GovernanceRefusal | undefined = applyLater(
      work,
      parsed,
      governanceDigest(parsed.entry),
      seenAt,
    );
    return refusal ?? accept(work.state);
  } catch (err) {
    return refusalFrom(err);
  }
}

/**
 * Verifies a whole chain: `entries[0]` must be the genesis whose digest is
 * `pinnedGenesis`, each later entry must follow the one before and carry the
 * signatures the state before it requires. Returns the state after the last
 * entry, or the refusal of the first bad entry with its position as `seq`
 * (also in `details.seq`).
 *
 * A `seenAt` earlier than the entry before's is read as that earlier entry's
 * time: an entry can only be seen after the one it links to, so a clock that
 * stepped back must not make a change older than the chain says it is.
 *
 * The result equals folding {@link applyGovernance} over the entries, but the
 * state is built in one working copy instead of being copied per entry.
 */
export function verifyGovernanceChain(
  pinnedGenesis: Digest,
  entries: readonly AppliedEntry[],
): Accepted<GovernanceState> | ChainRefusal {
  const first = entries[0];
  if (first === undefined) {
    return {
      ...refuse('GOVERNANCE_CHAIN_BROKEN', 'the chain is empty: it must start with the genesis', { seq: 0 }),
      seq: 0,
    };
  }
  for (const e of entries) checkTime(e.seenAt);
  let genesis: Result<GovernanceState>;
  try {
    const parsed = signedGovernanceEntry.parse(first.signed);
    genesis = genesisState(parsed, governanceDigest(parsed.entry), first.seenAt, pinnedGenesis);
  } catch (err) {
    genesis = refusalFrom(err);
  }
  if (!genesis.ok) return atSeq(genesis, 0);
  // The genesis state's maps are fresh, so the working copy may own them.
  const work = new Working(genesis.value, true);
  let clock = first.seenAt;
  for (let i = 1; i < entries.length; i++) {
    const { signed, seenAt } = entries[i] as AppliedEntry;
    clock = Math.max(clock, seenAt);
    let refusal: Refusal | undefined;
    try {
      const parsed = signedGovernanceEntry.parse(signed);
      refusal = applyLater(work, parsed, governanceDigest(parsed.entry), clock);
    } catch (err) {
      refusal = refusalFrom(err);
    }
    if (refusal !== undefined) return atSeq(refusal, i);
  }
  return accept(work.state);
}

/**
 * THREATS 10: two different entries for one sequence number. `known` maps each
 * sequence number this verifier has seen to the digest it saw; returns
 * GOVERNANCE_EQUIVOCATION when `entry` has another digest for a known number,
 * null otherwise. On an equivocation the signer freezes and alerts.
 */
export function detectEquivocation(
  known: ReadonlyMap<number, Digest>,
  entry: GovernanceEntry,
): Refusal | null {
  const seen = known.get(entry.seq);
  if (seen === undefined) return null;
  let digest: Digest;
  try {
    digest = governanceDigest(entry);
  } catch (err) {
    return refusalFrom(err);
  }
  if (digest === seen) return null;
  return refuse('GOVERNANCE_EQUIVOCATION', `two different governance entries claim seq ${entry.seq}`, {
    seq: entry.seq,
    known: seen,
    received: digest,
  });
}

// ---------------------------------------------------------------- builders

/**
 * Builds an unsigned genesis entry. Throws CustosError if `body` does not fit
 * the schema (a caller's mistake). The organization's id will be
 * `governanceDigest(entry)`.
 */
export function buildGenesis(body: GenesisBody, proposedAt: Millis): GovernanceEntryOf<'genesis'> {
  return governanceEntry.parse({
    v: 1,
    org: ZERO_DIGEST,
    seq: 0,
    prev: ZERO_DIGEST,
    kind: 'genesis',
    body,
    proposedAt,
  }) as GovernanceEntryOf<'genesis'>;
}

/**
 * Builds the unsigned entry that follows `state`: its org, the next seq and
 * the current head as prev. Throws CustosError if `body` does not fit the
 * kind's schema.
 *
 * @example
 * const entry = buildEntry(state, 'freeze', { reason: 'lost laptop' }, now);
 * const signed = signGovernanceEntry(entry, [watcherKey]);
 */
export function buildEntry<K extends LaterKind>(
  state: GovernanceState,
  kind: K,
  body: GovernanceEntryOf<K>['body'],
  proposedAt: Millis,
): GovernanceEntryOf<K> {
  if ((kind as GovernanceKind) === 'genesis') {
    throw new CustosError('INVALID_VALUE', 'a genesis is built with buildGenesis');
  }
  return governanceEntry.parse({
    v: 1,
    org: state.org,
    seq: state.seq + 1,
    prev: state.head,
    kind,
    body,
    proposedAt,
  }) as GovernanceEntryOf<K>;
}

/** One Ed25519 signature over `governanceDigest(entry)`. */
export function signEntry(entry: GovernanceEntry, signer: EntrySigner): GovernanceSignature {
  return signatureFor(governanceDigest(entry), signer);
}

/** Signs `entry` with each of `signers` (in order) and wraps it for transport. */
export function signGovernanceEntry(
  entry: GovernanceEntry,
  signers: readonly EntrySigner[],
): SignedGovernanceEntry {
  const digest = governanceDigest(entry);
  return { entry, signatures: signers.map((s) => signatureFor(digest, s)) };
}

function signatureFor(digest: Digest, signer: EntrySigner): GovernanceSignature {
  return { member: signer.member, device: signer.device, signature: signDigest(signer.secretKey, digest) };
}

// ---------------------------------------------------------------- working copy

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * A state under construction. Its maps are shared with the state it started
 * from until the first write to each, which copies that one map; member
 * records are never changed in place but replaced. When it owns its maps from
 * the start (a chain folded from a fresh genesis) nothing is copied at all.
 */
class Working {
  readonly state: Mutable<GovernanceState>;
  private readonly owned: Set<'members' | 'addresses' | 'wallets' | 'signers'>;
  /** Device key fingerprint → "member/device", over every device in `members` (revoked ones too). */
  private keys: Map<string, string> | undefined;
  /** "chain address" → address-book id, over every entry in `addresses`. */
  private destinations: Map<string, string> | undefined;

  constructor(state: GovernanceState, ownsMaps: boolean) {
    this.state = ownsMaps ? (state as Mutable<GovernanceState>) : { ...state };
    this.owned = new Set(ownsMaps ? (['members', 'addresses', 'wallets', 'signers'] as const) : []);
  }

  members(): Map<string, MemberState> {
    if (!this.owned.has('members')) {
      this.state.members = new Map(this.state.members);
      this.owned.add('members');
    }
    return this.state.members as Map<string, MemberState>;
  }

  addresses(): Map<string, Timed<AddressEntry>> {
    if (!this.owned.has('addresses')) {
      this.state.addresses = new Map(this.state.addresses);
      this.owned.add('addresses');
    }
    return this.state.addresses as Map<string, Timed<AddressEntry>>;
  }

  wallets(): Map<string, Wallet> {
    if (!this.owned.has('wallets')) {
      this.state.wallets = new Map(this.state.wallets);
      this.state.walletsActiveFrom = new Map(this.state.walletsActiveFrom);
      this.owned.add('wallets');
    }
    return this.state.wallets as Map<string, Wallet>;
  }

  walletsActiveFrom(): Map<string, Millis> {
    this.wallets();
    return this.state.walletsActiveFrom as Map<string, Millis>;
  }

  signers(): Map<string, SignerRecord> {
    if (!this.owned.has('signers')) {
      this.state.signers = new Map(this.state.signers);
      this.state.signersActiveFrom = new Map(this.state.signersActiveFrom);
      this.owned.add('signers');
    }
    return this.state.signers as Map<string, SignerRecord>;
  }

  signersActiveFrom(): Map<string, Millis> {
    this.signers();
    return this.state.signersActiveFrom as Map<string, Millis>;
  }

  /** Who already holds a device with this key, if anyone. */
  keyHolder(fingerprint: string): string | undefined {
    if (this.keys === undefined) {
      this.keys = new Map();
      for (const m of this.state.members.values()) {
        for (const [deviceId, d] of m.devices) {
          for (const f of fingerprints(d.device)) this.keys.set(f, `${m.id}/${deviceId}`);
        }
      }
    }
    return this.keys.get(fingerprint);
  }

  addKeys(memberId: string, d: Device): void {
    if (this.keys === undefined) return; // built from the state when first needed
    for (const f of fingerprints(d)) this.keys.set(f, `${memberId}/${d.id}`);
  }

  dropKeys(m: MemberState): void {
    if (this.keys === undefined) return;
    for (const d of m.devices.values()) for (const f of fingerprints(d.device)) this.keys.delete(f);
  }

  /** The address-book id already holding this destination, if any. */
  destinationHolder(chain: string, address: string): string | undefined {
    if (this.destinations === undefined) {
      this.destinations = new Map();
      for (const [entryId, a] of this.state.addresses) {
        this.destinations.set(destinationKey(a.value.chain, a.value.address), entryId);
      }
    }
    return this.destinations.get(destinationKey(chain, address));
  }

  addDestination(a: AddressEntry): void {
    this.destinations?.set(destinationKey(a.chain, a.address), a.id);
  }

  dropDestination(a: AddressEntry): void {
    this.destinations?.delete(destinationKey(a.chain, a.address));
  }
}

/**
 * Strings that identify a device's key. Two members sharing one key would let
 * one person count as two admins or approvers (THREATS 12), so a key is
 * registered once in the whole organization. For a passkey both the credential
 * id and the public key are compared.
 */
function fingerprints(d: Device): string[] {
  return d.kind === 'ed25519'
    ? [`ed25519:${d.publicKey}`]
    : [`webauthn-credential:${d.credentialId}`, `webauthn-key:${d.publicKey}`];
}

function destinationKey(chain: string, address: string): string {
  return `${chain} ${address}`;
}

// ---------------------------------------------------------------- genesis

function genesisState(
  signed: SignedGovernanceEntry,
  digest: Digest,
  seenAt: Millis,
  pinned: Digest | undefined,
): Result<GovernanceState> {
  const { entry } = signed;
  // The pin is the trust anchor (docs/architecture.md "Trust model"): anything else is another organization.
  if (pinned !== undefined && digest !== pinned) {
    return refuse('WRONG_ORG', 'the genesis is not the pinned one', { expected: pinned, received: digest });
  }
  if (entry.kind !== 'genesis') {
    return refuse('GOVERNANCE_CHAIN_BROKEN', `the first entry must be a genesis, not ${entry.kind}`);
  }
  if (entry.seq !== 0 || entry.prev !== ZERO_DIGEST) {
    return refuse('GOVERNANCE_CHAIN_BROKEN', 'a genesis has seq 0 and the zero digest as prev');
  }
  if (entry.org !== ZERO_DIGEST) {
    return refuse(
      'GOVERNANCE_INVALID',
      'a genesis names the zero digest as org: its own digest is the org id',
    );
  }
  const body = entry.body;
  const problem = genesisProblem(body);
  if (problem !== undefined) return refuse('GOVERNANCE_INVALID', `genesis: ${problem}`);
  const unbounded = automationWalletProblem(body.policy, body.wallets);
  if (unbounded !== undefined) return refuse(unbounded.code, `genesis: ${unbounded.message}`);

  const members = new Map<string, MemberState>();
  for (const m of body.members) members.set(m.id, memberState(m, seenAt));
  const addresses = new Map<string, Timed<AddressEntry>>();
  for (const a of body.addresses) addresses.set(a.id, { value: a, activeFrom: seenAt });
  const state: GovernanceState = {
    org: digest,
    name: body.name,
    seq: 0,
    head: digest,
    members,
    quorum: [{ value: body.quorum, activeFrom: seenAt }],
    delayMs: [{ value: body.delayMs, activeFrom: seenAt }],
    policies: [{ value: body.policy, activeFrom: seenAt }],
    addresses,
    retiredAddresses: [],
    wallets: new Map(body.wallets.map((w) => [w.id, w])),
    walletsActiveFrom: new Map(body.wallets.map((w) => [w.id, seenAt])),
    signers: new Map(body.signers.map((s) => [s.id, s])),
    signersActiveFrom: new Map(body.signers.map((s) => [s.id, seenAt])),
    assets: new Map((body.assets ?? []).map((a) => [a.id, { value: a, activeFrom: seenAt }])),
    retiredAssets: new Map(),
    // The genesis cannot freeze: a frozen start could only be undone by its own quorum anyway.
    frozen: null,
  };
  // The genesis is signed by its own admins, a quorum of them (docs/architecture.md "Trust model").
  const signers = checkSignatures(state, entry, digest, signed.signatures, seenAt);
  return signers.ok ? accept(state) : signers;
}

/** Internal consistency of a genesis body; a message for the first problem, or undefined. */
function genesisProblem(body: GenesisBody): string | undefined {
  const memberIds = new Set<string>();
  const keys = new Map<string, string>();
  for (const m of body.members) {
    if (memberIds.has(m.id)) return `member ${m.id} is listed twice`;
    memberIds.add(m.id);
    const problem = newMemberProblem(m, (f) => keys.get(f));
    if (problem !== undefined) return problem;
    for (const d of m.devices) for (const f of fingerprints(d)) keys.set(f, `${m.id}/${d.id}`);
  }
  const admins = capableAdmins(body.members.map((m) => memberState(m, 0)));
  if (admins < body.quorum) {
    return `quorum ${body.quorum} needs at least ${body.quorum} admins with a device, there are ${admins}`;
  }
  const addressIds = new Set<string>();
  const destinations = new Map<string, string>();
  for (const a of body.addresses) {
    if (addressIds.has(a.id)) return `address-book entry ${a.id} is listed twice`;
    addressIds.add(a.id);
    const key = destinationKey(a.chain, a.address);
    const holder = destinations.get(key);
    if (holder !== undefined) return `address-book entries ${holder} and ${a.id} name the same destination`;
    destinations.set(key, a.id);
  }
  // Signers and assets first: a Safe wallet names both.
  const signers = new Map<string, SignerRecord>();
  for (const s of body.signers) {
    const problem = newSignerProblem(s, signers);
    if (problem !== undefined) return problem;
    signers.set(s.id, s);
  }
  const assets = new Map<string, Timed<Asset>>();
  for (const a of body.assets ?? []) {
    const problem = newAssetProblem(a, assets, new Map());
    if (problem !== undefined) return problem;
    assets.set(a.id, { value: a, activeFrom: 0 });
  }
  const wallets = new Map<string, Wallet>();
  for (const w of body.wallets) {
    const problem = newWalletProblem(w, wallets, signers, assets);
    if (problem !== undefined) return problem;
    wallets.set(w.id, w);
  }
  return policyProblem(body.policy, memberIds, wallets);
}

// ---------------------------------------------------------------- later entries

/**
 * Checks and applies one later entry to `work`. Returns a refusal, or
 * undefined once `work` holds the new state. On a refusal `work` is left
 * half-changed and must be dropped (the callers do).
 */
function applyLater(
  work: Working,
  signed: SignedGovernanceEntry,
  digest: Digest,
  seenAt: Millis,
): Refusal | undefined {
  const { entry } = signed;
  const before = work.state;
  if (entry.kind === 'genesis') {
    return refuse('GOVERNANCE_CHAIN_BROKEN', 'only the first entry of a chain may be a genesis', {
      receivedSeq: entry.seq,
    });
  }
  // THREATS 16 for governance: an entry of another organization never applies here.
  if (entry.org !== before.org) {
    return refuse('WRONG_ORG', 'the entry belongs to another organization', {
      expected: before.org,
      received: entry.org,
    });
  }
  // seq and prev link each entry to the one before: no gap, no reorder, no replay.
  if (entry.seq !== before.seq + 1) {
    return refuse('GOVERNANCE_CHAIN_BROKEN', `expected seq ${before.seq + 1}, got ${entry.seq}`, {
      expectedSeq: before.seq + 1,
      receivedSeq: entry.seq,
    });
  }
  if (entry.prev !== before.head) {
    return refuse('GOVERNANCE_CHAIN_BROKEN', `entry ${entry.seq} does not link to the current head`, {
      expected: before.head,
      received: entry.prev,
    });
  }
  const signers = checkSignatures(before, entry, digest, signed.signatures, seenAt);
  if (!signers.ok) return signers;

  const refusal = applyBody(work, entry, seenAt, signers.value);
  if (refusal !== undefined) return refusal;

  const s = work.state;
  s.seq = entry.seq;
  s.head = digest;
  // Settings older than the last active one can never bind again (state.ts).
  s.quorum = pruneSettings(s.quorum, seenAt);
  s.delayMs = pruneSettings(s.delayMs, seenAt);
  s.policies = pruneSettings(s.policies, seenAt);
  if (s.retiredAddresses.some((r) => r.until <= seenAt)) {
    s.retiredAddresses = s.retiredAddresses.filter((r) => r.until > seenAt);
  }
  return undefined;
}

/**
 * THREATS 9 and 12: every signature must be by a member holding `admin` at
 * `seenAt` in the state before the entry (for a freeze, `admin` or
 * `watcher`), with a device of that member that is not revoked, and must
 * verify over the entry digest. One bad signature refuses the entry. Each
 * member counts once however many of its devices sign. Returns the distinct
 * signing members in order.
 */
function checkSignatures(
  state: GovernanceState,
  entry: GovernanceEntry,
  digest: Digest,
  signatures: readonly GovernanceSignature[],
  seenAt: Millis,
): Result<string[]> {
  const freeze = entry.kind === 'freeze';
  const devices: Device[] = [];
  const pairs = new Set<string>();
  const members: string[] = [];
  const memberSet = new Set<string>();
  // Cheap checks first, so a flood of forged rows costs no curve arithmetic.
  for (const [index, s] of signatures.entries()) {
    const where = { index, member: s.member, device: s.device };
    const pair = `${s.member}/${s.device}`;
    if (pairs.has(pair)) {
      return refuse('GOVERNANCE_SIGNATURE_INVALID', `device ${pair} signs the entry twice`, where);
    }
    pairs.add(pair);
    // A device added by governance signs nothing until its delay has passed (GOVERNANCE_EFFECTS).
    const found = lookupDevice(state, s.member, s.device, seenAt);
    if (!found.ok) {
      return refuse(
        'GOVERNANCE_SIGNATURE_INVALID',
        `signature ${index}: ${deviceLookupMessage(found, s.member, s.device)}`,
        { ...where, reason: found.code },
      );
    }
    const allowed =
      hasRole(state, s.member, ADMIN_ROLE, seenAt) ||
      (freeze && hasRole(state, s.member, WATCHER_ROLE, seenAt));
    if (!allowed) {
      const roles = freeze ? 'an admin or a watcher' : 'an admin';
      return refuse(
        'GOVERNANCE_SIGNATURE_INVALID',
        `signature ${index}: member ${s.member} is not ${roles}`,
        {
          ...where,
          reason: 'NOT_AUTHORIZED',
        },
      );
    }
    devices.push(found.device);
    if (!memberSet.has(s.member)) {
      memberSet.add(s.member);
      members.push(s.member);
    }
  }
  // Governance signatures are checked again on every chain verification, so a
  // passkey's signature counter cannot be required to grow here; replay is
  // impossible anyway, as each signature covers one entry's digest.
  for (const [index, s] of signatures.entries()) {
    const verified = verifyDeviceSignature(devices[index] as Device, digest, s.signature);
    if (!verified.ok) {
      return refuse(
        'GOVERNANCE_SIGNATURE_INVALID',
        `signature ${index} by ${s.member}/${s.device} does not verify`,
        {
          index,
          member: s.member,
          device: s.device,
          reason: verified.message,
        },
      );
    }
  }
  // docs/architecture.md "Governance entry": a freeze needs one admin or the watcher; everything else the quorum.
  const needed = freeze ? 1 : effectiveQuorum(state, seenAt);
  if (members.length < needed) {
    const quorum: QuorumCount = { needed, got: members.length };
    const short: GovernanceRefusal = {
      ...refuse(
        'QUORUM_NOT_MET',
        `${entry.kind} needs ${needed} distinct ${freeze ? 'admins or watchers' : 'admins'}, got ${members.length}`,
        { needed, got: members.length },
      ),
      quorum,
    };
    return short;
  }
  return accept(members);
}

/** Applies an entry's body to `work`; the entry's signatures are already checked. */
function applyBody(
  work: Working,
  entry: Exclude<GovernanceEntry, { kind: 'genesis' }>,
  seenAt: Millis,
  signers: readonly string[],
): Refusal | undefined {
  const before = work.state as GovernanceState;
  // Loosening changes wait this long, counted from seenAt (THREATS 18, 19). Taken from the
  // state before the entry, so a quorum.set cannot shorten its own wait.
  const pendingFrom = seenAt + effectiveDelay(before, seenAt);
  switch (entry.kind) {
    case 'member.add': {
      const m = entry.body;
      if (before.members.has(m.id)) return invalid(`member ${m.id} already exists`);
      const problem = newMemberProblem(m, (f) => work.keyHolder(f));
      if (problem !== undefined) return invalid(problem);
      // Devices and roles wait out the delay: a named approval group or a
      // re-added id could otherwise count the new member's keys at once.
      work.members().set(m.id, memberState(m, pendingFrom));
      for (const d of m.devices) work.addKeys(m.id, d);
      return undefined;
    }
    case 'member.remove': {
      const m = before.members.get(entry.body.member);
      if (m === undefined) return invalid(`member ${entry.body.member} does not exist`);
      work.members().delete(m.id);
      work.dropKeys(m);
      return adminsProblem(work, seenAt, `removing ${m.id}`);
    }
    case 'device.add': {
      const { member: memberId, device: d } = entry.body;
      const m = before.members.get(memberId);
      if (m === undefined) return invalid(`member ${memberId} does not exist`);
      // A revoked device keeps its id, so an id is never reused for another key.
      if (m.devices.has(d.id)) return invalid(`member ${memberId} already has a device ${d.id}`);
      const holder = keyHolderOf(d, (f) => work.keyHolder(f));
      if (holder !== undefined)
        return invalid(`the key of device ${d.id} is already registered as ${holder}`);
      // Issue 8, item 1: a new device is a new way to authorize, so it waits out the delay.
      const devices = new Map(m.devices).set(d.id, { device: d, revoked: false, activeFrom: pendingFrom });
      work.members().set(memberId, { ...m, devices });
      work.addKeys(memberId, d);
      return undefined;
    }
    case 'device.revoke': {
      const { member: memberId, device: deviceId } = entry.body;
      const m = before.members.get(memberId);
      if (m === undefined) return invalid(`member ${memberId} does not exist`);
      const d = m.devices.get(deviceId);
      if (d === undefined) return invalid(`member ${memberId} has no device ${deviceId}`);
      if (d.revoked) return invalid(`device ${deviceId} of ${memberId} is already revoked`);
      // The record stays, revoked, so its signatures are refused as DEVICE_REVOKED (THREATS 4).
      const devices = new Map(m.devices).set(deviceId, { ...d, revoked: true });
      work.members().set(memberId, { ...m, devices });
      return adminsProblem(work, seenAt, `revoking ${memberId}/${deviceId}`);
    }
    case 'role.set': {
      const { member: memberId, roles } = entry.body;
      const m = before.members.get(memberId);
      if (m === undefined) return invalid(`member ${memberId} does not exist`);
      // Kept roles keep their time, new grants wait out the delay, dropped roles
      // stop granting at once but keep binding where they restricted until the
      // delay has passed (state.ts roleViews).
      const next = new Map<string, Millis>();
      for (const r of roles) next.set(r, m.roles.get(r) ?? pendingFrom);
      const ended = new Map<string, Millis>();
      for (const [r, until] of m.endedRoles) if (until > seenAt) ended.set(r, until);
      for (const r of m.roles.keys()) {
        if (!next.has(r)) ended.set(r, Math.max(ended.get(r) ?? 0, pendingFrom));
      }
      work.members().set(memberId, { ...m, roles: next, endedRoles: ended });
      return adminsProblem(work, seenAt, `changing the roles of ${memberId}`);
    }
    case 'policy.set': {
      const problem = policyProblem(entry.body.policy, new Set(before.members.keys()), before.wallets);
      if (problem !== undefined) return invalid(problem);
      const unbounded = automationWalletProblem(entry.body.policy, before.wallets.values());
      if (unbounded !== undefined) return refuse(unbounded.code, unbounded.message);
      // Until it is active the old and the new policy both bind (state.ts policiesInForce).
      work.state.policies = [...before.policies, { value: entry.body.policy, activeFrom: pendingFrom }];
      return undefined;
    }
    case 'address.add': {
      const a = entry.body;
      if (before.addresses.has(a.id)) return invalid(`address-book entry ${a.id} already exists`);
      const holder = work.destinationHolder(a.chain, a.address);
      if (holder !== undefined)
        return invalid(`${a.chain} ${a.address} is already address-book entry ${holder}`);
      // THREATS 18: even a full quorum's new destination waits out the delay.
      work.addresses().set(a.id, { value: a, activeFrom: pendingFrom });
      work.addDestination(a);
      return undefined;
    }
    case 'address.remove': {
      const a = before.addresses.get(entry.body.id);
      if (a === undefined) return invalid(`address-book entry ${entry.body.id} does not exist`);
      work.addresses().delete(entry.body.id);
      work.dropDestination(a.value);
      // No longer a destination at once; still seen by look-alike checks and
      // by the rules of the view before the removal until the delay passes.
      const retired: RetiredAddress = { value: a.value, until: pendingFrom };
      work.state.retiredAddresses = [...before.retiredAddresses, retired];
      return undefined;
    }
    case 'wallet.add': {
      const problem = newWalletProblem(entry.body, before.wallets, before.signers, before.assets);
      if (problem !== undefined) return invalid(problem);
      // An automated rule naming no assets pays any asset of a new wallet too (issue 13): each needs a limit.
      for (const p of policiesInForce(before, seenAt)) {
        const unbounded = automationWalletProblem(p, [entry.body]);
        if (unbounded !== undefined) return refuse(unbounded.code, unbounded.message);
      }
      // A new wallet is a new way to spend (issue 8, item 2): it waits out the delay.
      work.wallets().set(entry.body.id, entry.body);
      work.walletsActiveFrom().set(entry.body.id, pendingFrom);
      return undefined;
    }
    case 'asset.add': {
      const a = entry.body;
      const problem = newAssetProblem(a, before.assets, before.retiredAssets);
      if (problem !== undefined) return invalid(problem);
      // A new asset is a new thing a Safe may send (issue 9): it waits out the delay, as a wallet does.
      work.state.assets = new Map(before.assets).set(a.id, { value: a, activeFrom: pendingFrom });
      return undefined;
    }
    case 'asset.remove': {
      const a = before.assets.get(entry.body.id);
      if (a === undefined) return invalid(`asset ${entry.body.id} is not in the registry`);
      // Binds at once: a Safe sends the asset no more (UNKNOWN_ASSET). The id keeps its meaning.
      const assets = new Map(before.assets);
      assets.delete(a.value.id);
      work.state.assets = assets;
      work.state.retiredAssets = new Map(before.retiredAssets).set(a.value.id, a.value);
      return undefined;
    }
    case 'signer.add': {
      const problem = newSignerProblem(entry.body, before.signers);
      if (problem !== undefined) return invalid(problem);
      work.signers().set(entry.body.id, entry.body);
      work.signersActiveFrom().set(entry.body.id, pendingFrom);
      return undefined;
    }
    case 'signer.remove': {
      if (!before.signers.has(entry.body.id)) return invalid(`signer ${entry.body.id} does not exist`);
      work.signers().delete(entry.body.id);
      work.signersActiveFrom().delete(entry.body.id);
      return undefined;
    }
    case 'quorum.set': {
      // THREATS 19: the effective value is the largest in force or pending, so
      // raising binds at once and lowering waits (state.ts effectiveQuorum).
      work.state.quorum = [...before.quorum, { value: entry.body.quorum, activeFrom: pendingFrom }];
      work.state.delayMs = [...before.delayMs, { value: entry.body.delayMs, activeFrom: pendingFrom }];
      return adminsProblem(work, seenAt, `a quorum of ${entry.body.quorum}`);
    }
    case 'freeze': {
      // THREATS 22. A freeze is never refused for the state it meets: a second
      // one while frozen is accepted and the first one's record is kept.
      if (before.frozen === null) {
        work.state.frozen = { seq: entry.seq, by: signers[0] as string, reason: entry.body.reason };
      }
      return undefined;
    }
    case 'unfreeze': {
      // Accepted when the organization is not frozen too: signers that froze
      // themselves on proof of an equivocation clear their own freeze on a
      // quorum-signed unfreeze they verify (issue 8, item 6).
      work.state.frozen = null;
      return undefined;
    }
  }
}

function invalid(message: string, details?: ErrorDetails): Refusal {
  return refuse('GOVERNANCE_INVALID', message, details);
}

// ---------------------------------------------------------------- consistency checks

function memberState(m: Member, activeFrom: Millis): MemberState {
  const roles = new Map<string, Millis>();
  for (const r of m.roles) roles.set(r, activeFrom);
  const devices = new Map<string, DeviceState>();
  for (const d of m.devices) devices.set(d.id, { device: d, revoked: false, activeFrom });
  return { id: m.id, name: m.name, roles, endedRoles: new Map(), devices };
}

/** A new member's devices: ids unique within the member, keys unique in the organization. */
function newMemberProblem(
  m: Member,
  keyHolder: (fingerprint: string) => string | undefined,
): string | undefined {
  const ids = new Set<string>();
  const own = new Map<string, string>();
  for (const d of m.devices) {
    if (ids.has(d.id)) return `member ${m.id} lists device ${d.id} twice`;
    ids.add(d.id);
    const holder = keyHolderOf(d, (f) => own.get(f) ?? keyHolder(f));
    if (holder !== undefined) return `the key of device ${m.id}/${d.id} is already registered as ${holder}`;
    for (const f of fingerprints(d)) own.set(f, `${m.id}/${d.id}`);
  }
  return undefined;
}

function keyHolderOf(d: Device, keyHolder: (fingerprint: string) => string | undefined): string | undefined {
  for (const f of fingerprints(d)) {
    const holder = keyHolder(f);
    if (holder !== undefined) return holder;
  }
  return undefined;
}

/**
 * A new wallet against the wallets, signers and assets already governed
 * (pending ones count: a wallet added within their delay waits as long).
 */
function newWalletProblem(
  w: Wallet,
  wallets: ReadonlyMap<string, Wallet>,
  signers: ReadonlyMap<string, SignerRecord>,
  assets: ReadonlyMap<string, Timed<Asset>>,
): string | undefined {
  if (wallets.has(w.id)) return `wallet ${w.id} already exists`;
  if (w.kind === 'evm-safe') return safeWalletProblem(w, wallets, signers, assets);
  // Two wallet ids over one descriptor would let an intent for the one with the
  // looser policy spend the other's coins.
  for (const other of wallets.values()) {
    if (other.kind === w.kind && other.chain === w.chain && other.descriptor === w.descriptor) {
      return `wallet ${w.id} has the same descriptor as wallet ${other.id}`;
    }
  }
  return undefined;
}

/**
 * A Safe wallet (issue 9): one wallet id per Safe and chain (two ids over one
 * Safe would let an intent under the looser policy spend the other's funds,
 * as WALLET_ALIAS is for Bitcoin); every owner a governed signer whose
 * record names that very EVM address, so a signer signs for a Safe only with
 * the key governance tied to it; every asset registered on the Safe's chain.
 */
function safeWalletProblem(
  w: EvmSafeWallet,
  wallets: ReadonlyMap<string, Wallet>,
  signers: ReadonlyMap<string, SignerRecord>,
  assets: ReadonlyMap<string, Timed<Asset>>,
): string | undefined {
  for (const other of wallets.values()) {
    if (other.kind === 'evm-safe' && other.chain === w.chain && other.address === w.address) {
      return `wallet ${w.id} is the Safe ${w.address} on ${w.chain}, already wallet ${other.id}`;
    }
  }
  for (const owner of w.owners) {
    const s = signers.get(owner.signer);
    if (s === undefined) return `wallet ${w.id}: owner ${owner.signer} is not a governed signer`;
    if (s.evmAddress === undefined) {
      return `wallet ${w.id}: signer ${owner.signer} has no EVM address in governance`;
    }
    if (s.evmAddress !== owner.address) {
      return `wallet ${w.id}: owner ${owner.address} is not signer ${owner.signer}'s EVM address ${s.evmAddress}`;
    }
  }
  for (const id of w.assets) {
    const a = assets.get(id);
    if (a === undefined) return `wallet ${w.id}: asset ${id} is not in the asset registry`;
    if (a.value.chain !== w.chain) {
      return `wallet ${w.id}: asset ${id} is registered on ${a.value.chain}, not ${w.chain}`;
    }
  }
  return undefined;
}

function newSignerProblem(s: SignerRecord, signers: ReadonlyMap<string, SignerRecord>): string | undefined {
  if (signers.has(s.id)) return `signer ${s.id} already exists`;
  for (const other of signers.values()) {
    if (other.publicKey === s.publicKey) return `signer ${s.id} has the same key as signer ${other.id}`;
    // One EVM key is one owner: two signer ids over it would count one key twice toward a Safe's threshold.
    if (s.evmAddress !== undefined && other.evmAddress === s.evmAddress) {
      return `signer ${s.id} has the same EVM address as signer ${other.id}`;
    }
  }
  return undefined;
}

/**
 * A new registry entry: a new id (an id removed earlier comes back only with
 * the meaning it had, see GovernanceState.retiredAssets), and each token
 * once per chain: one native coin per chain, one asset per ERC-20 contract,
 * so a limit on one id cannot be dodged through another id for the same token.
 */
function newAssetProblem(
  a: Asset,
  assets: ReadonlyMap<string, Timed<Asset>>,
  retired: ReadonlyMap<string, Asset>,
): string | undefined {
  if (assets.has(a.id)) return `asset ${a.id} already exists`;
  const old = retired.get(a.id);
  if (old !== undefined && assetMeaning(old) !== assetMeaning(a)) {
    return `asset id ${a.id} was ${assetMeaning(old)}; an id keeps its meaning, as ledgers and limits sum amounts by asset id`;
  }
  for (const { value: other } of assets.values()) {
    if (other.chain !== a.chain || other.kind !== a.kind) continue;
    if (other.kind === 'native')
      return `asset ${a.id}: ${a.chain} already has its native coin as asset ${other.id}`;
    if (a.kind === 'erc20' && other.contract === a.contract) {
      return `asset ${a.id}: the token ${a.contract} on ${a.chain} is already asset ${other.id}`;
    }
  }
  return undefined;
}

/** What an asset id stands for, for good: everything but the symbol people see. */
function assetMeaning(a: Asset): string {
  const token = a.kind === 'erc20' ? ` ${a.contract}` : '';
  return `${a.kind}${token} on ${a.chain} with ${a.decimals} decimals`;
}

/**
 * A policy must be readable without guessing: rule and limit ids unique,
 * amount ranges not empty, and the members and wallets it names must exist
 * when it is set. (Members removed later just stop counting for the groups
 * that name them.)
 */
function policyProblem(
  p: Policy,
  members: ReadonlySet<string>,
  wallets: ReadonlyMap<string, Wallet>,
): string | undefined {
  const ruleIds = new Set<string>();
  for (const rule of p.rules) {
    if (ruleIds.has(rule.id)) return `policy: rule ${rule.id} is listed twice`;
    ruleIds.add(rule.id);
    const { match } = rule;
    for (const w of match.wallets ?? []) {
      if (!wallets.has(w)) return `policy: rule ${rule.id} names unknown wallet ${w}`;
    }
    if (match.minAmount !== undefined && match.maxAmount !== undefined) {
      if (BigInt(match.minAmount) > BigInt(match.maxAmount)) {
        return `policy: rule ${rule.id} has minAmount above maxAmount`;
      }
    }
    for (const group of rule.approvals ?? []) {
      for (const m of group.members ?? []) {
        if (!members.has(m)) return `policy: rule ${rule.id} names unknown member ${m}`;
      }
    }
  }
  const limitIds = new Set<string>();
  for (const limit of p.limits) {
    if (limitIds.has(limit.id)) return `policy: limit ${limit.id} is listed twice`;
    limitIds.add(limit.id);
    if (limit.wallet !== undefined && !wallets.has(limit.wallet)) {
      return `policy: limit ${limit.id} names unknown wallet ${limit.wallet}`;
    }
  }
  for (const cap of p.feeCaps) {
    if (cap.wallet !== undefined && !wallets.has(cap.wallet)) {
      return `policy: fee cap for ${cap.asset} names unknown wallet ${cap.wallet}`;
    }
  }
  return undefined;
}

/**
 * Admins who could sign: members holding `admin` (in force or pending) with at
 * least one device that is not revoked.
 */
function capableAdmins(members: Iterable<MemberState>): number {
  let n = 0;
  for (const m of members) {
    if (!m.roles.has(ADMIN_ROLE)) continue;
    for (const d of m.devices.values()) {
      if (!d.revoked) {
        n++;
        break;
      }
    }
  }
  return n;
}

/**
 * An organization whose quorum its admins cannot meet could never change
 * anything again, not even unfreeze. Compared with the effective quorum at
 * `seenAt`, the largest that can still bind.
 */
function adminsProblem(work: Working, seenAt: Millis, change: string): Refusal | undefined {
  const needed = effectiveQuorum(work.state, seenAt);
  const admins = capableAdmins(work.state.members.values());
  if (admins >= needed) return undefined;
  return invalid(`${change} leaves ${admins} admins with a device, fewer than the quorum of ${needed}`, {
    admins,
    quorum: needed,
  });
}

// ---------------------------------------------------------------- small helpers

/** Times are the caller's own clock; a non-integer is a programming mistake, not data. */
function checkTime(t: Millis): void {
  if (!Number.isSafeInteger(t) || t < 0) {
    throw new CustosError(
      'INVALID_VALUE',
      'seenAt must be milliseconds since the epoch (a non-negative integer)',
    );
  }
}

function atSeq(r: Refusal, seq: number): ChainRefusal {
  return { ...refuse(r.code, `entry ${seq}: ${r.message}`, { ...r.details, seq }), seq };
}
