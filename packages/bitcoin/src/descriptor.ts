/**
 * Descriptor wallets: `wsh(sortedmulti(m,[fp/path]xpub/0/*,...))#checksum`.
 *
 * A Custos Bitcoin wallet is an m-of-n P2WSH multisig over BIP 32 account
 * keys (BIP 381/382/383 for the script, BIP 67 ordering through sortedmulti,
 * BIP 48-style account paths). Receive addresses are branch 0 (`/0/*`), change
 * is the same keys on branch 1 (`/1/*`). A signer decides whether an input or
 * a change output belongs to the wallet by deriving the script itself from
 * this descriptor (THREATS 23, 26), so the parser is strict: this one form
 * only, key origins required, an origin that agrees with the key's depth and
 * child number, public keys only, the version bytes of the wallet's network,
 * no key twice, and the BIP 380 checksum verified whenever it is present.
 *
 * Hardened steps may be written `h`, `H` or `'` (BIP 380); the printed form
 * uses `h`, as Bitcoin Core has since version 26, because it needs no quoting
 * in a shell or in JSON.
 */
import { accept, CustosError, type Result, refuse } from '@custos/core';
import { sha256 } from '@noble/hashes/sha2.js';
import { createBase58check } from '@scure/base';
import { HDKey } from '@scure/bip32';
import { p2ms, p2wsh } from '@scure/btc-signer';
import { type BitcoinNetworkName, bitcoinNetwork, NETWORKS } from './network.js';

export interface DescriptorKey {
  /** Master key fingerprint, 8 lower-case hex digits (BIP 32). */
  readonly fingerprint: string;
  /** Path from the master key to this account key, e.g. `48h/1h/0h/2h`; empty for a master key. */
  readonly path: string;
  /** The account-level extended public key, in the wallet network's version (xpub or tpub). */
  readonly xpub: string;
}

export interface WalletDescriptor {
  readonly m: number;
  readonly keys: readonly DescriptorKey[];
  readonly network: BitcoinNetworkName;
}

export interface KeyDerivation {
  readonly pubkey: Uint8Array;
  /** Master fingerprint as the 32-bit big-endian number PSBTs carry. */
  readonly fingerprint: number;
  /** Full path from the master key: the account path, then branch and index. */
  readonly path: number[];
}

export interface DerivedAddress {
  readonly branch: 0 | 1;
  readonly index: number;
  readonly address: string;
  /** scriptPubKey: OP_0 <sha256(witnessScript)>. */
  readonly script: Uint8Array;
  /** OP_m <sorted pubkeys> OP_n OP_CHECKMULTISIG. */
  readonly witnessScript: Uint8Array;
  /** One per descriptor key, in descriptor order. */
  readonly derivations: readonly KeyDerivation[];
}

export const HARDENED = 0x80000000;
/** BIP 383 allows 20 keys in wsh(multi); Custos keeps to 15 so every wallet is also valid in P2SH form. */
export const MAX_KEYS = 15;

// ---------------------------------------------------------------- BIP 380 checksum

const INPUT_CHARSET =
  '0123456789()[],\'/*abcdefgh@:$%{}IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~ijklmnopqrstuvwxyzABCDEFGH`#"\\ ';
const CHECKSUM_CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const GENERATOR = [0xf5dee51989n, 0xa9fdca3312n, 0x1bab10e32dn, 0x3706b1677an, 0x644d626ffdn];

function polymod(symbols: readonly number[]): bigint {
  let chk = 1n;
  for (const value of symbols) {
    const top = chk >> 35n;
    chk = ((chk & 0x7ffffffffn) << 5n) ^ BigInt(value);
    for (let i = 0; i < 5; i++) {
      if ((top >> BigInt(i)) & 1n) chk ^= GENERATOR[i]!;
    }
  }
  return chk;
}

/** BIP 380 descsum_expand; undefined when a character is outside the descriptor character set. */
function expand(s: string): number[] | undefined {
  const symbols: number[] = [];
  const groups: number[] = [];
  for (const c of s) {
    const v = INPUT_CHARSET.indexOf(c);
    if (v < 0) return undefined;
    symbols.push(v & 31);
    groups.push(v >> 5);
    if (groups.length === 3) {
      symbols.push(groups[0]! * 9 + groups[1]! * 3 + groups[2]!);
      groups.length = 0;
    }
  }
  if (groups.length === 1) symbols.push(groups[0]!);
  else if (groups.length === 2) symbols.push(groups[0]! * 3 + groups[1]!);
  return symbols;
}

/**
 * The 8-character BIP 380 checksum of a descriptor without its `#` part.
 * @example descriptorChecksum('raw(deadbeef)') === '89f8spxm'
 */
export function descriptorChecksum(desc: string): string {
  const symbols = expand(desc);
  if (symbols === undefined) {
    throw new CustosError('INVALID_VALUE', 'descriptor holds a character outside the BIP 380 character set');
  }
  const checksum = polymod([...symbols, 0, 0, 0, 0, 0, 0, 0, 0]) ^ 1n;
  let out = '';
  for (let i = 0; i < 8; i++) out += CHECKSUM_CHARSET[Number((checksum >> BigInt(5 * (7 - i))) & 31n)];
  return out;
}

/**
 * Splits `desc#checksum` and verifies the checksum when there is one (BIP 380).
 * Returns the descriptor without its checksum.
 */
export function checkDescriptorChecksum(text: string): Result<string> {
  const hash = text.indexOf('#');
  const body = hash < 0 ? text : text.slice(0, hash);
  if (expand(body) === undefined) {
    return refuse('INVALID_VALUE', 'descriptor holds a character outside the BIP 380 character set');
  }
  if (hash < 0) return { ok: true, value: body };
  const sum = text.slice(hash + 1);
  if (!/^[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{8}$/.test(sum)) {
    return refuse('INVALID_VALUE', 'descriptor checksum must be 8 characters of the bech32 character set');
  }
  if (descriptorChecksum(body) !== sum) {
    return refuse(
      'INVALID_VALUE',
      'descriptor checksum does not match: the descriptor was altered or mistyped',
    );
  }
  return { ok: true, value: body };
}

// ---------------------------------------------------------------- paths and keys

/**
 * Parses `48h/1'/0H/2h` (no leading `m/`) into child numbers; undefined when
 * malformed. Indexes are decimal without leading zeros and below 2^31.
 */
export function parsePath(path: string): number[] | undefined {
  if (path === '') return [];
  const out: number[] = [];
  for (const step of path.split('/')) {
    const m = /^(0|[1-9][0-9]{0,9})([hH']?)$/.exec(step);
    if (m === null) return undefined;
    const n = Number(m[1]);
    if (n >= HARDENED) return undefined;
    out.push(m[2] === '' ? n : n + HARDENED);
  }
  return out;
}

/** Child numbers back to text, hardened steps marked `h`. */
export function formatPath(path: readonly number[]): string {
  return path.map((n) => (n >= HARDENED ? `${n - HARDENED}h` : `${n}`)).join('/');
}

const base58check = createBase58check(sha256);

interface ParsedKey {
  readonly key: DescriptorKey;
  readonly node: HDKey;
  readonly fingerprint: number;
  readonly path: readonly number[];
}

/**
 * Checks one key and returns it in canonical form (lower-case fingerprint,
 * `h` path) with its parsed node.
 */
function parseKey(key: DescriptorKey, network: BitcoinNetworkName, position: number): Result<ParsedKey> {
  const where = `key ${position + 1}`;
  if (typeof key.fingerprint !== 'string' || !/^[0-9a-fA-F]{8}$/.test(key.fingerprint)) {
    return refuse('INVALID_VALUE', `${where}: fingerprint must be 8 hex digits`);
  }
  const path = typeof key.path === 'string' ? parsePath(key.path) : undefined;
  if (path === undefined) return refuse('INVALID_VALUE', `${where}: malformed derivation path ${key.path}`);
  let raw: Uint8Array;
  try {
    raw = base58check.decode(key.xpub);
  } catch {
    return refuse('INVALID_VALUE', `${where}: not a Base58Check extended key`);
  }
  if (raw.length !== 78) return refuse('INVALID_VALUE', `${where}: an extended key is 78 bytes`);
  const version = ((raw[0]! << 24) | (raw[1]! << 16) | (raw[2]! << 8) | raw[3]!) >>> 0;
  const own = bitcoinNetwork(network).bip32;
  const other = network === 'mainnet' ? NETWORKS.testnet.bip32 : NETWORKS.mainnet.bip32;
  if (version === own.private || version === other.private) {
    return refuse('INVALID_VALUE', `${where}: a descriptor wallet holds public keys only, not a private key`);
  }
  if (version === other.public) {
    return refuse('WRONG_CHAIN', `${where}: extended key is for another network than ${network}`);
  }
  if (version !== own.public) return refuse('INVALID_VALUE', `${where}: unknown extended key version`);
  let node: HDKey;
  try {
    node = HDKey.fromExtendedKey(key.xpub, own);
  } catch {
    return refuse('INVALID_VALUE', `${where}: invalid extended public key`);
  }
  if (node.privateKey !== null || node.publicKey === null) {
    return refuse('INVALID_VALUE', `${where}: a descriptor wallet holds public keys only`);
  }
  const fingerprint = Number.parseInt(key.fingerprint, 16);
  // The key origin must describe this key: as deep as the key is, ending in its child number.
  if (node.depth !== path.length) {
    return refuse(
      'INVALID_VALUE',
      `${where}: origin path has ${path.length} steps but the key is at depth ${node.depth}`,
    );
  }
  if (path.length > 0 && path[path.length - 1] !== node.index) {
    return refuse('INVALID_VALUE', `${where}: origin path does not end in the key's child number`);
  }
  if (path.length === 0 && fingerprint !== node.fingerprint) {
    return refuse('INVALID_VALUE', `${where}: a master key's origin must be its own fingerprint`);
  }
  if (path.length === 1 && fingerprint !== node.parentFingerprint) {
    return refuse('INVALID_VALUE', `${where}: the key's parent is not the master key the origin names`);
  }
  return {
    ok: true,
    value: {
      key: Object.freeze({
        fingerprint: key.fingerprint.toLowerCase(),
        path: formatPath(path),
        xpub: key.xpub,
      }),
      node,
      fingerprint,
      path: Object.freeze([...path]),
    },
  };
}

function checkWallet(
  m: number,
  keys: readonly DescriptorKey[],
  network: BitcoinNetworkName,
): Result<WalletDescriptor> {
  if (!Number.isSafeInteger(m) || m < 1 || m > MAX_KEYS) {
    return refuse('INVALID_VALUE', `threshold must be between 1 and ${MAX_KEYS}`);
  }
  if (keys.length < m || keys.length > MAX_KEYS) {
    return refuse(
      'INVALID_VALUE',
      `a ${m}-of-n wallet needs between ${m} and ${MAX_KEYS} keys, got ${keys.length}`,
    );
  }
  const parsed: ParsedKey[] = [];
  const seen = new Set<string>();
  for (const [i, key] of keys.entries()) {
    const r = parseKey(key, network, i);
    if (!r.ok) return r;
    const id = Buffer.from(r.value.node.publicKey!).toString('hex');
    if (seen.has(id)) return refuse('INVALID_VALUE', `key ${i + 1}: the same key appears twice`);
    seen.add(id);
    parsed.push(r.value);
  }
  const wallet: WalletDescriptor = Object.freeze({
    m,
    keys: Object.freeze(parsed.map((p) => p.key)),
    network,
  });
  PARSED.set(wallet, { keys: parsed, branches: new Map(), addresses: new Map() });
  return { ok: true, value: wallet };
}

// ---------------------------------------------------------------- parse and format

const KEY_RE = /^\[([^\]/]*)((?:\/[^\]/]*)*)\]([1-9A-HJ-NP-Za-km-z]+)\/0\/\*$/;

/**
 * Parses `wsh(sortedmulti(m,[fp/path]xpub/0/*,...))` with an optional `#checksum`.
 * Anything else, including the change form `/1/*`, is refused.
 */
export function parseDescriptor(text: string, network: BitcoinNetworkName): Result<WalletDescriptor> {
  if (typeof text !== 'string' || text.length > 4096) {
    return refuse('INVALID_VALUE', 'a descriptor is a string of at most 4096 characters');
  }
  bitcoinNetwork(network);
  // The same text always parses to the same frozen wallet: callers that parse a governance
  // descriptor on every job or block share its parsed keys and derived addresses.
  const cacheKey = `${network}\n${text}`;
  const hit = PARSED_TEXT.get(cacheKey);
  if (hit !== undefined) return accept(hit);
  const parsed = parseDescriptorText(text, network);
  if (parsed.ok) {
    if (PARSED_TEXT.size >= MAX_PARSED_TEXTS) PARSED_TEXT.clear();
    PARSED_TEXT.set(cacheKey, parsed.value);
  }
  return parsed;
}

/** Wallets parsed from descriptor texts, by network and text (a cache: bounded, never a source of truth). */
const PARSED_TEXT = new Map<string, WalletDescriptor>();
const MAX_PARSED_TEXTS = 256;

function parseDescriptorText(text: string, network: BitcoinNetworkName): Result<WalletDescriptor> {
  const body = checkDescriptorChecksum(text);
  if (!body.ok) return body;
  const outer = /^wsh\(sortedmulti\((0|[1-9][0-9]*),(.*)\)\)$/.exec(body.value);
  if (outer === null) {
    return refuse(
      'INVALID_VALUE',
      'only wsh(sortedmulti(m,[fingerprint/path]xpub/0/*,...)) descriptors are supported',
    );
  }
  const m = Number(outer[1]);
  const keys: DescriptorKey[] = [];
  for (const [i, part] of outer[2]!.split(',').entries()) {
    const k = KEY_RE.exec(part);
    if (k === null) {
      return refuse('INVALID_VALUE', `key ${i + 1}: expected [fingerprint/path]xpub/0/*`);
    }
    keys.push({ fingerprint: k[1]!, path: k[2]!.slice(1), xpub: k[3]! });
  }
  return checkWallet(m, keys, network);
}

/** The canonical descriptor text of the receive (0) or change (1) branch, with its checksum. */
export function formatDescriptor(d: WalletDescriptor, branch: 0 | 1 = 0): string {
  if (branch !== 0 && branch !== 1) throw new CustosError('INVALID_VALUE', 'branch must be 0 or 1');
  const { keys } = parsedWallet(d);
  const parts = keys.map(
    ({ key }) => `[${key.fingerprint}${key.path === '' ? '' : `/${key.path}`}]${key.xpub}/${branch}/*`,
  );
  const body = `wsh(sortedmulti(${d.m},${parts.join(',')}))`;
  return `${body}#${descriptorChecksum(body)}`;
}

/**
 * A wallet from cosigners' account keys (for `custos init`). Paths may use any
 * hardened marker; they are stored canonically. Throws on invalid keys.
 */
export function walletFromKeys(
  m: number,
  keys: readonly DescriptorKey[],
  network: BitcoinNetworkName,
): WalletDescriptor {
  bitcoinNetwork(network);
  const r = checkWallet(m, keys, network);
  if (!r.ok) throw new CustosError(r.code, r.message);
  return r.value;
}

// ---------------------------------------------------------------- derivation

interface ParsedWallet {
  readonly keys: readonly ParsedKey[];
  readonly branches: Map<0 | 1, HDKey[]>;
  /** Derived addresses by `branch/index`: each costs a point multiplication per key, and verification repeats them. */
  readonly addresses: Map<string, DerivedAddress>;
}

/** Bound on cached addresses per wallet; past it the cache starts over (a cache, never a source of truth). */
const MAX_CACHED_ADDRESSES = 50_000;

/** Parsed keys and derived branch nodes, per wallet object: point multiplications are the cost here. */
const PARSED = new WeakMap<WalletDescriptor, ParsedWallet>();

function parsedWallet(d: WalletDescriptor): ParsedWallet {
  const cached = PARSED.get(d);
  if (cached !== undefined) return cached;
  const r = checkWallet(d.m, d.keys, d.network);
  if (!r.ok) throw new CustosError(r.code, `invalid wallet descriptor: ${r.message}`);
  const parsed = PARSED.get(r.value)!;
  PARSED.set(d, parsed);
  return parsed;
}

/** BIP 32 fingerprint and path of each key, parsed: what PSBT derivations are matched against. */
export function walletKeyOrigins(
  d: WalletDescriptor,
): readonly { fingerprint: number; path: readonly number[]; publicKey: Uint8Array; chainCode: Uint8Array }[] {
  return parsedWallet(d).keys.map((k) => ({
    fingerprint: k.fingerprint,
    path: k.path,
    publicKey: k.node.publicKey!,
    chainCode: k.node.chainCode!,
  }));
}

/**
 * The address at `branch/index` (BIP 32 unhardened derivation from each account
 * key, BIP 67 sorted keys, BIP 141 P2WSH). Throws on a branch other than 0 or 1
 * or an index outside 0..2^31-1.
 */
export function deriveAddress(d: WalletDescriptor, branch: 0 | 1, index: number): DerivedAddress {
  if (branch !== 0 && branch !== 1) {
    throw new CustosError('INVALID_VALUE', 'branch must be 0 (receive) or 1 (change)');
  }
  if (!Number.isSafeInteger(index) || index < 0 || index >= HARDENED) {
    throw new CustosError('INVALID_VALUE', 'address index must be an integer from 0 to 2^31-1');
  }
  const w = parsedWallet(d);
  const cacheKey = `${branch}/${index}`;
  const hit = w.addresses.get(cacheKey);
  if (hit !== undefined) return hit;
  let nodes = w.branches.get(branch);
  if (nodes === undefined) {
    nodes = w.keys.map((k) => k.node.deriveChild(branch));
    w.branches.set(branch, nodes);
  }
  const derivations: KeyDerivation[] = nodes.map((node, i) => {
    const k = w.keys[i]!;
    return Object.freeze({
      pubkey: node.deriveChild(index).publicKey!,
      fingerprint: k.fingerprint,
      path: [...k.path, branch, index],
    });
  });
  const sorted = derivations.map((x) => x.pubkey).sort(compareBytes);
  const payment = p2wsh(p2ms(d.m, sorted), bitcoinNetwork(d.network).address);
  const derived: DerivedAddress = Object.freeze({
    branch,
    index,
    address: payment.address,
    script: payment.script,
    witnessScript: payment.witnessScript,
    derivations: Object.freeze(derivations),
  });
  if (w.addresses.size >= MAX_CACHED_ADDRESSES) w.addresses.clear();
  w.addresses.set(cacheKey, derived);
  return derived;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}
