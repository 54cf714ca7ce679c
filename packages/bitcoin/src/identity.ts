/**
 * Wallet identity: whether two wallet descriptors can produce the same
 * scripts (issue 8, item 2: wallet aliases).
 *
 * A wallet is its key set and threshold, not its descriptor text. Two texts
 * over the same keys (the xpubs reordered, `multi` for `sortedmulti`, another
 * key origin, an xpub re-serialized with other depth or parent metadata, an
 * xpub published as its own child, `X/1/*` beside `X/<0;1>/*`) describe
 * the same coins. Were both wallets in governance, an intent for the second
 * would spend the first wallet's coins under the second wallet's limits.
 *
 * Identity is established per derivation branch: the outer script type, the
 * threshold, and the SET of keys at the level just above the wildcard, each
 * key as its compressed public key and chain code after deriving the xpub
 * down the fixed (unhardened) part of the path. Two branches produce the
 * same script at some index exactly when these agree (BIP 32 child
 * derivation is a function of public key, chain code and index only):
 * - key order does not count, and `multi` counts as `sortedmulti`, because a
 *   `multi` whose keys happen to be sorted at an index is `sortedmulti`
 *   there;
 * - key origins and the xpub's own metadata (depth, parent fingerprint,
 *   child number, version) do not count: they change no script;
 * - branches are compared across each other: one wallet's change branch
 *   may be another's only branch.
 *
 * Branches of a descriptor: the alternatives of a BIP 389 multipath step
 * (`<0;1>`); without one, the single path, and for a path ending in `/0/*`
 * also its `/1/*` sibling, since a Custos wallet written `X/0/*` keeps its
 * change on `X/1/*` (descriptor.ts).
 *
 * The grammar accepted here is deliberately wider than parseDescriptor's
 * (wsh, sh(wsh) and sh over multi or sortedmulti; any key origin or none;
 * any unhardened fixed steps; one multipath step per key; any extended
 * public key version), so that every descriptor a wallet can be made of
 * has an identity, whatever form the parser accepts now or later.
 * Non-ranged, hardened-after-xpub and private keys have no identity
 * (INVALID_VALUE): no Custos wallet can be made of them.
 */
import { accept, type Result, refuse, toHex } from '@custos/core';
import { sha256 } from '@noble/hashes/sha2.js';
import { createBase58check } from '@scure/base';
import { HDKey } from '@scure/bip32';
import { checkDescriptorChecksum, HARDENED } from './descriptor.js';
import { networkOfChain } from './network.js';

/** The outer script: P2WSH, P2SH-wrapped P2WSH, or bare P2SH, each over a multisig. */
export type OuterScript = 'wsh' | 'sh-wsh' | 'sh';

export interface BranchIdentity {
  readonly script: OuterScript;
  /** The threshold. */
  readonly m: number;
  /** Each key just above the wildcard, as hex of its compressed public key then its chain code, sorted. */
  readonly keys: readonly string[];
  /** script, threshold and keys in one string: equal ids, equal scripts at every index. */
  readonly id: string;
}

export interface WalletIdentity {
  readonly branches: readonly BranchIdentity[];
}

/** A wallet as governance holds it (core's Wallet has these fields). */
export interface WalletText {
  readonly id: string;
  readonly chain: string;
  readonly descriptor: string;
}

/** BIP 383 allows 20 keys in a multi. */
const MAX_MULTI_KEYS = 20;
const MAX_TEXT = 4096;

const base58check = createBase58check(sha256);

/**
 * The identity of a descriptor's scripts (see the module header). Refuses
 * (INVALID_VALUE) a text that is not a ranged multisig over extended public
 * keys, or whose checksum, when present, does not match.
 */
export function walletIdentity(descriptor: string): Result<WalletIdentity> {
  if (typeof descriptor !== 'string' || descriptor.length > MAX_TEXT) {
    return refuse('INVALID_VALUE', `a descriptor is a string of at most ${MAX_TEXT} characters`);
  }
  const hit = IDENTITIES.get(descriptor);
  if (hit !== undefined) return accept(hit);
  const r = parseIdentity(descriptor);
  if (r.ok) {
    if (IDENTITIES.size >= MAX_CACHED) IDENTITIES.clear();
    IDENTITIES.set(descriptor, r.value);
  }
  return r;
}

/** Identities by descriptor text (a bounded cache, never a source of truth): deriving costs point work. */
const IDENTITIES = new Map<string, WalletIdentity>();
const MAX_CACHED = 1024;

/** Whether some branch of `a` produces the same scripts as some branch of `b`. */
export function identitiesOverlap(a: WalletIdentity, b: WalletIdentity): boolean {
  const ids = new Set(a.branches.map((x) => x.id));
  return b.branches.some((x) => ids.has(x.id));
}

/**
 * The first wallet of `existing` (other than `wallet` itself, by id) on the
 * same Bitcoin chain whose scripts can equal `wallet`'s, or null when there
 * is none. A wallet whose own descriptor has no identity is refused
 * (INVALID_VALUE): nobody can tell it apart from the others. An existing
 * wallet with no identity is passed over: no signer signs for a wallet whose
 * descriptor does not parse. Wallets of chains that are not Bitcoin are not
 * compared.
 */
export function findWalletAlias(
  wallet: WalletText,
  existing: Iterable<WalletText>,
): Result<WalletText | null> {
  if (networkOfChain(wallet.chain) === undefined) return accept(null);
  const own = walletIdentity(wallet.descriptor);
  if (!own.ok) return refuse(own.code, `wallet ${wallet.id}: ${own.message}`);
  for (const other of existing) {
    if (other.id === wallet.id || other.chain !== wallet.chain) continue;
    const theirs = walletIdentity(other.descriptor);
    if (!theirs.ok) continue;
    if (identitiesOverlap(own.value, theirs.value)) return accept(other);
  }
  return accept(null);
}

/**
 * findWalletAlias as a refusal: WALLET_ALIAS naming the earlier wallet when
 * `wallet` aliases one of `existing`, the identity's refusal when it has
 * none, else accepted.
 */
export function refuseWalletAlias(wallet: WalletText, existing: Iterable<WalletText>): Result<void> {
  const found = findWalletAlias(wallet, existing);
  if (!found.ok) return found;
  if (found.value === null) return accept(undefined);
  return refuse(
    'WALLET_ALIAS',
    `wallet ${wallet.id} has the same keys and threshold as wallet ${found.value.id}: ` +
      'its scripts are that wallet’s scripts, so its coins would be spent under another policy',
    { wallet: wallet.id, aliasOf: found.value.id },
  );
}

// ---------------------------------------------------------------- parsing

const KEY_RE =
  /^(?:\[[^\]]*\])?([1-9A-HJ-NP-Za-km-z]{100,120})((?:\/(?:[0-9]{1,10}|<[0-9]{1,10}(?:;[0-9]{1,10})+>))*)\/\*$/;

/** Outer script forms, the nested one before the bare sh(...) that would also match it. */
const OUTER: readonly (readonly [RegExp, OuterScript])[] = [
  [/^wsh\((.*)\)$/, 'wsh'],
  [/^sh\(wsh\((.*)\)\)$/, 'sh-wsh'],
  [/^sh\((.*)\)$/, 'sh'],
];

interface ParsedKeyExpr {
  readonly node: HDKey;
  /** Fixed steps, with at most one multipath step (an array of alternatives). */
  readonly steps: readonly (number | readonly number[])[];
}

function parseIdentity(text: string): Result<WalletIdentity> {
  const body = checkDescriptorChecksum(text);
  if (!body.ok) return body;
  const outer = OUTER.map(([re, kind]) => [re.exec(body.value), kind] as const).find(([m]) => m !== null);
  if (outer === undefined) {
    return refuse(
      'INVALID_VALUE',
      'only wsh(...), sh(wsh(...)) and sh(...) multisig descriptors have an identity',
    );
  }
  const script = outer[1];
  const inner = outer[0]![1]!;
  const multi = /^(?:sorted)?multi\((0|[1-9][0-9]{0,2}),(.*)\)$/.exec(inner);
  if (multi === null) return refuse('INVALID_VALUE', 'the script is not multi(...) or sortedmulti(...)');
  const threshold = Number(multi[1]);
  const parts = multi[2]!.split(',');
  if (parts.length > MAX_MULTI_KEYS) {
    return refuse('INVALID_VALUE', `a multisig has at most ${MAX_MULTI_KEYS} keys`);
  }
  if (threshold < 1 || threshold > parts.length) {
    return refuse('INVALID_VALUE', `threshold ${threshold} is not between 1 and ${parts.length}`);
  }
  const keys: ParsedKeyExpr[] = [];
  let width = 1;
  for (const [i, part] of parts.entries()) {
    const k = parseKeyExpr(part, i);
    if (!k.ok) return k;
    for (const step of k.value.steps) {
      if (typeof step === 'number') continue;
      if (width !== 1 && width !== step.length) {
        return refuse('INVALID_VALUE', 'multipath steps of different lengths (BIP 389)');
      }
      width = step.length;
    }
    keys.push(k.value);
  }

  const paths: number[][][] = [];
  for (let b = 0; b < width; b++) {
    paths.push(keys.map((k) => k.steps.map((s) => (typeof s === 'number' ? s : s[b]!))));
  }
  // A single path ending in /0/* is a Custos wallet's receive branch: its change is on /1/*.
  const single = paths[0]!;
  if (width === 1 && single.every((p) => p.length > 0 && p[p.length - 1] === 0)) {
    paths.push(single.map((p) => [...p.slice(0, -1), 1]));
  }

  const branches: BranchIdentity[] = [];
  const seen = new Set<string>();
  for (const branch of paths) {
    let ids: string[];
    try {
      ids = branch.map((path, i) => nodeId(derivePath(keys[i]!.node, path))).sort();
    } catch {
      // An invalid child (probability below 2^-127 per step, BIP 32): no script exists there.
      return refuse('INVALID_VALUE', 'a key cannot be derived along its path');
    }
    const id = `${script}|${threshold}|${ids.join(',')}`;
    if (seen.has(id)) continue;
    seen.add(id);
    branches.push(Object.freeze({ script, m: threshold, keys: Object.freeze(ids), id }));
  }
  return accept(Object.freeze({ branches: Object.freeze(branches) }));
}

function parseKeyExpr(part: string, position: number): Result<ParsedKeyExpr> {
  const where = `key ${position + 1}`;
  const k = KEY_RE.exec(part);
  if (k === null) {
    return refuse(
      'INVALID_VALUE',
      `${where}: expected [origin]xpub/<unhardened steps>/* (a ranged extended public key)`,
    );
  }
  let raw: Uint8Array;
  try {
    raw = base58check.decode(k[1]!);
  } catch {
    return refuse('INVALID_VALUE', `${where}: not a Base58Check extended key`);
  }
  if (raw.length !== 78) return refuse('INVALID_VALUE', `${where}: an extended key is 78 bytes`);
  const keyByte = raw[45]!;
  if (keyByte === 0)
    return refuse('INVALID_VALUE', `${where}: a private key has no place in a wallet descriptor`);
  if (keyByte !== 2 && keyByte !== 3) return refuse('INVALID_VALUE', `${where}: not a compressed public key`);
  let node: HDKey;
  try {
    // Depth, parent fingerprint, child number and version are metadata: they change no script.
    node = new HDKey({ chainCode: raw.slice(13, 45), publicKey: raw.slice(45, 78) });
  } catch {
    return refuse('INVALID_VALUE', `${where}: not a valid public key`);
  }
  const steps: (number | number[])[] = [];
  let multipath = false;
  for (const text of k[2]!.split('/').slice(1)) {
    if (text.startsWith('<')) {
      if (multipath) return refuse('INVALID_VALUE', `${where}: more than one multipath step (BIP 389)`);
      multipath = true;
      const alternatives = text.slice(1, -1).split(';').map(Number);
      if (alternatives.some((n) => n >= HARDENED)) {
        return refuse('INVALID_VALUE', `${where}: a step must be below 2^31 (unhardened)`);
      }
      steps.push(alternatives);
    } else {
      const n = Number(text);
      if (n >= HARDENED) return refuse('INVALID_VALUE', `${where}: a step must be below 2^31 (unhardened)`);
      steps.push(n);
    }
  }
  return accept({ node, steps });
}

/** Derived nodes by parent id and path (a bounded cache). */
const DERIVED = new Map<string, HDKey>();
const MAX_DERIVED = 16_384;

function derivePath(node: HDKey, path: readonly number[]): HDKey {
  if (path.length === 0) return node;
  const key = `${nodeId(node)}/${path.join('/')}`;
  const hit = DERIVED.get(key);
  if (hit !== undefined) return hit;
  let out = node;
  for (const step of path) out = out.deriveChild(step);
  if (DERIVED.size >= MAX_DERIVED) DERIVED.clear();
  DERIVED.set(key, out);
  return out;
}

function nodeId(node: HDKey): string {
  return `${toHex(node.publicKey!)}${toHex(node.chainCode!)}`;
}
