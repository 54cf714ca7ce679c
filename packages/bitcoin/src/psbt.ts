/**
 * PSBT bytes (BIP 174, version 0): a strict reader, and the transaction size
 * estimate fees are computed on.
 *
 * The reader is the one door through which a PSBT from outside enters this
 * package. It takes version 0 only (the form Bitcoin Core and hardware
 * wallets exchange; BIP 370 version 2 is refused), reads the key-value maps
 * with @scure/btc-signer's raw coder without its higher-level normalization,
 * and then re-encodes them: a PSBT whose bytes are not exactly the canonical
 * encoding of what was read (unsorted keys, an extra empty map, a field
 * written twice in different ways) is refused. Two parsers can then never
 * disagree about what the same bytes say, and what a signer checked is byte
 * for byte what it signs. Every failure is a refusal, never an exception.
 */
import { accept, type Result, refuse } from '@custos/core';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { base64 } from '@scure/base';
import { RawPSBTV0, RawPSBTV2 } from '@scure/btc-signer/psbt.js';
import { RawOldTx, RawOutput, RawTx } from '@scure/btc-signer/script.js';
import { compactSizeLength, equalBytes } from './network.js';

/** 21 million BTC in satoshi: no amount or sum of amounts may exceed it (Bitcoin Core's MAX_MONEY). */
export const MAX_MONEY = 2_100_000_000_000_000n;

export interface TxInput {
  /** Previous transaction id, in the usual (big-endian, display) byte order. */
  readonly txid: Uint8Array;
  readonly index: number;
  readonly finalScriptSig: Uint8Array;
  readonly sequence: number;
}

export interface TxOutput {
  readonly amount: bigint;
  readonly script: Uint8Array;
}

export interface UnsignedTx {
  readonly version: number;
  readonly inputs: readonly TxInput[];
  readonly outputs: readonly TxOutput[];
  readonly lockTime: number;
}

export interface Bip32Origin {
  readonly fingerprint: number;
  readonly path: readonly number[];
}

/** The input fields Custos reads. Any other field is present under its scure name (or `unknown`). */
export interface PsbtInputMap {
  readonly nonWitnessUtxo?: UnsignedTx;
  readonly witnessUtxo?: TxOutput;
  readonly partialSig?: readonly (readonly [Uint8Array, Uint8Array])[];
  readonly sighashType?: number;
  readonly witnessScript?: Uint8Array;
  readonly bip32Derivation?: readonly (readonly [Uint8Array, Bip32Origin])[];
  readonly [field: string]: unknown;
}

export interface PsbtOutputMap {
  readonly witnessScript?: Uint8Array;
  readonly bip32Derivation?: readonly (readonly [Uint8Array, Bip32Origin])[];
  readonly [field: string]: unknown;
}

export interface RawPsbt {
  readonly global: {
    readonly unsignedTx: UnsignedTx;
    readonly version?: number;
    readonly [field: string]: unknown;
  };
  readonly inputs: readonly PsbtInputMap[];
  readonly outputs: readonly PsbtOutputMap[];
}

/**
 * Reads a version 0 PSBT strictly. Malformed or non-canonical bytes are
 * INVALID_VALUE / NON_CANONICAL_ENCODING; a PSBT of another version is
 * UNSUPPORTED_TRANSACTION. Fields are not judged here (see analyzePsbt).
 */
export function parsePsbt(bytes: Uint8Array): Result<RawPsbt> {
  return readPsbt(bytes, true);
}

/**
 * parsePsbt, with `validateKeys` false leaving the public keys of BIP 32
 * derivations and partial signatures unchecked as curve points (their
 * lengths and prefixes are still checked). Only for a caller that accepts
 * nothing but keys equal to ones it derived itself (analyzePsbt), and that
 * reads again with parsePsbt for the exact refusal when it refuses.
 */
export function readPsbt(bytes: Uint8Array, validateKeys: boolean): Result<RawPsbt> {
  if (!(bytes instanceof Uint8Array)) return refuse('INVALID_VALUE', 'a PSBT is a byte array');
  if (bytes.length > 4_000_000) return refuse('TOO_LARGE', 'PSBT is larger than 4 MB');
  if (bytes.length < 5 || bytes[0] !== 0x70 || bytes[1] !== 0x73 || bytes[2] !== 0x62 || bytes[3] !== 0x74) {
    return refuse('INVALID_VALUE', 'not a PSBT: it does not start with the magic bytes "psbt" 0xff');
  }
  const fast = readCanonicalPsbt(bytes, validateKeys);
  if (fast !== undefined) return accept(fast);
  let decoded: RawPsbt;
  try {
    decoded = RawPSBTV0.decode(bytes) as unknown as RawPsbt;
  } catch (err) {
    // A BIP 370 PSBT fails the version 0 framing; say so rather than "malformed".
    if (declaresVersion2(bytes)) {
      return refuse('UNSUPPORTED_TRANSACTION', 'only version 0 PSBTs are supported');
    }
    return refuse('INVALID_VALUE', `malformed PSBT: ${messageOf(err)}`);
  }
  const version = decoded.global.version;
  if (version !== undefined && version !== 0) {
    return refuse(
      'UNSUPPORTED_TRANSACTION',
      `only version 0 PSBTs are supported, this is version ${version}`,
    );
  }
  const tx = decoded.global.unsignedTx;
  if (decoded.inputs.length !== tx.inputs.length || decoded.outputs.length !== tx.outputs.length) {
    return refuse('INVALID_VALUE', 'PSBT maps do not match the inputs and outputs of its transaction');
  }
  let again: Uint8Array;
  try {
    again = encodePsbt(decoded);
  } catch (err) {
    return refuse('INVALID_VALUE', `malformed PSBT: ${messageOf(err)}`);
  }
  if (!equalBytes(again, bytes)) {
    return refuse(
      'NON_CANONICAL_ENCODING',
      'PSBT is not in canonical encoding (BIP 174 key order, one form per field)',
    );
  }
  return accept(decoded);
}

// ---------------------------------------------------------------- the fast path

/*
 * The PSBTs Custos exchanges carry a handful of fields. For those, the reader
 * below decodes each record once and checks canonical form record by record
 * (keys strictly in BIP 174 order, minimal sizes, every value the encoding of
 * what it decodes to) instead of decoding with @scure/btc-signer, encoding
 * again and comparing: scure checks every public key as a curve point twice
 * on decode and twice on encode (a square root each), which was most of a
 * signer's time. Here each key is checked once per process (a bounded set of
 * keys already found valid). Anything else (other fields, other versions,
 * anything out of order or malformed) is left to the scure path above, so
 * every refusal is still scure's; what the fast path accepts, the scure path
 * accepts with the same result (psbt-fast.test.ts, property over mutations).
 */

const GLOBAL_FAST: Readonly<Record<number, string>> = { 0: 'unsignedTx', 251: 'version' };
const INPUT_FAST: Readonly<Record<number, string>> = {
  0: 'nonWitnessUtxo',
  1: 'witnessUtxo',
  2: 'partialSig',
  3: 'sighashType',
  5: 'witnessScript',
  6: 'bip32Derivation',
};
const OUTPUT_FAST: Readonly<Record<number, string>> = { 1: 'witnessScript', 2: 'bip32Derivation' };
const KEYED: ReadonlySet<string> = new Set(['partialSig', 'bip32Derivation']);

/** Public keys (hex) already found to be valid compressed secp256k1 points. */
const VALID_KEYS = new Set<string>();
const MAX_VALID_KEYS = 16_384;

/** A compressed secp256k1 public key that is a point of the curve; checked once per process per key. */
export function isValidPublicKey(pub: Uint8Array): boolean {
  if (pub.length !== 33 || (pub[0] !== 0x02 && pub[0] !== 0x03)) return false;
  const hex = Buffer.from(pub.buffer, pub.byteOffset, pub.byteLength).toString('hex');
  if (VALID_KEYS.has(hex)) return true;
  try {
    secp256k1.Point.fromBytes(pub);
  } catch {
    return false;
  }
  if (VALID_KEYS.size >= MAX_VALID_KEYS) VALID_KEYS.clear();
  VALID_KEYS.add(hex);
  return true;
}

interface Cursor {
  pos: number;
}

/** A minimal compact size, or -1 (not minimal, truncated, or beyond 2^32). */
function compact(bytes: Uint8Array, c: Cursor): number {
  const first = bytes[c.pos];
  if (first === undefined) return -1;
  if (first < 0xfd) {
    c.pos += 1;
    return first;
  }
  const len = first === 0xfd ? 2 : first === 0xfe ? 4 : 8;
  if (len === 8 || c.pos + 1 + len > bytes.length) return -1;
  let n = 0;
  for (let i = 0; i < len; i++) n += (bytes[c.pos + 1 + i] as number) * 2 ** (8 * i);
  c.pos += 1 + len;
  if ((len === 2 && n < 0xfd) || (len === 4 && n <= 0xffff)) return -1;
  return n;
}

interface RawRecord {
  readonly type: number;
  readonly keydata: Uint8Array;
  readonly value: Uint8Array;
}

/** One map's records, in order, or undefined when anything is unusual. */
function readMap(bytes: Uint8Array, c: Cursor): RawRecord[] | undefined {
  const records: RawRecord[] = [];
  for (;;) {
    const keyLen = compact(bytes, c);
    if (keyLen < 0) return undefined;
    if (keyLen === 0) return records;
    if (c.pos + keyLen > bytes.length) return undefined;
    const type = bytes[c.pos] as number;
    if (type >= 0xfd) return undefined;
    const keydata = bytes.subarray(c.pos + 1, c.pos + keyLen);
    c.pos += keyLen;
    const valLen = compact(bytes, c);
    if (valLen < 0 || c.pos + valLen > bytes.length) return undefined;
    const value = bytes.subarray(c.pos, c.pos + valLen);
    c.pos += valLen;
    const prev = records[records.length - 1];
    // BIP 174 order as scure encodes it: by type, then by key data; no key twice.
    if (
      prev !== undefined &&
      (type < prev.type || (type === prev.type && compareBytes(keydata, prev.keydata) <= 0))
    )
      return undefined;
    records.push({ type, keydata, value });
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const len = Math.min(a.length, b.length);
  for (let i = 0; i < len; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return a.length - b.length;
}

function u32le(v: Uint8Array): number | undefined {
  if (v.length !== 4) return undefined;
  return (
    ((v[0] as number) | ((v[1] as number) << 8) | ((v[2] as number) << 16) | ((v[3] as number) << 24)) >>> 0
  );
}

/** Decodes `value` with `coder` and checks it is the canonical encoding of what it decodes to. */
function exact<T>(
  coder: { decode(b: Uint8Array): T; encode(v: T): Uint8Array },
  value: Uint8Array,
): T | undefined {
  try {
    const decoded = coder.decode(value);
    return equalBytes(coder.encode(decoded), value) ? decoded : undefined;
  } catch {
    return undefined;
  }
}

function copy(b: Uint8Array): Uint8Array {
  return Uint8Array.from(b);
}

/** The fields of one map, or undefined when a record is not one the fast path knows. */
function fieldsOf(
  records: readonly RawRecord[],
  names: Readonly<Record<number, string>>,
  validateKeys: boolean,
): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  for (const r of records) {
    const name = names[r.type];
    if (name === undefined) return undefined;
    if (KEYED.has(name)) {
      const pub = r.keydata;
      if (pub.length !== 33 || (pub[0] !== 0x02 && pub[0] !== 0x03)) return undefined;
      if (validateKeys && !isValidPublicKey(pub)) return undefined;
      let value: unknown;
      if (name === 'bip32Derivation') {
        const v = r.value;
        if (v.length < 4 || v.length % 4 !== 0) return undefined;
        const path: number[] = [];
        for (let i = 4; i < v.length; i += 4) path.push(u32le(v.subarray(i, i + 4)) as number);
        value = {
          fingerprint:
            (((v[0] as number) << 24) |
              ((v[1] as number) << 16) |
              ((v[2] as number) << 8) |
              (v[3] as number)) >>>
            0,
          path,
        };
      } else {
        value = copy(r.value);
      }
      const rows = (out[name] as unknown[] | undefined) ?? [];
      rows.push([copy(pub), value]);
      out[name] = rows;
      continue;
    }
    if (r.keydata.length !== 0) return undefined;
    let value: unknown;
    switch (name) {
      case 'unsignedTx':
        value = exact(RawOldTx as never, r.value);
        break;
      case 'nonWitnessUtxo':
        value = exact(RawTx as never, r.value);
        break;
      case 'witnessUtxo':
        value = exact(RawOutput as never, r.value);
        break;
      case 'version':
      case 'sighashType':
        value = u32le(r.value);
        break;
      default:
        value = copy(r.value);
    }
    if (value === undefined) return undefined;
    out[name] = value;
  }
  return out;
}

/** The fast reader: a RawPsbt, or undefined to leave the bytes to the scure path. */
export function readCanonicalPsbt(bytes: Uint8Array, validateKeys: boolean): RawPsbt | undefined {
  if (bytes[4] !== 0xff) return undefined;
  const c: Cursor = { pos: 5 };
  const globalRecords = readMap(bytes, c);
  if (globalRecords === undefined) return undefined;
  const global = fieldsOf(globalRecords, GLOBAL_FAST, validateKeys);
  if (global === undefined || global.unsignedTx === undefined) return undefined;
  if (global.version !== undefined && global.version !== 0) return undefined;
  const tx = global.unsignedTx as UnsignedTx;
  if (tx.inputs.length === 0 || tx.outputs.length === 0) return undefined;
  const inputs: PsbtInputMap[] = [];
  for (let i = 0; i < tx.inputs.length; i++) {
    const records = readMap(bytes, c);
    const map = records === undefined ? undefined : fieldsOf(records, INPUT_FAST, validateKeys);
    if (map === undefined) return undefined;
    inputs.push(map);
  }
  const outputs: PsbtOutputMap[] = [];
  for (let j = 0; j < tx.outputs.length; j++) {
    const records = readMap(bytes, c);
    const map = records === undefined ? undefined : fieldsOf(records, OUTPUT_FAST, validateKeys);
    if (map === undefined) return undefined;
    outputs.push(map);
  }
  if (c.pos !== bytes.length) return undefined;
  return { global: global as RawPsbt['global'], inputs, outputs };
}

function pushCompact(out: number[], n: number): void {
  if (n < 0xfd) out.push(n);
  else if (n <= 0xffff) out.push(0xfd, n & 0xff, n >>> 8);
  else out.push(0xfe, n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
}

function pushBytes(out: number[], b: Uint8Array): void {
  for (let i = 0; i < b.length; i++) out.push(b[i] as number);
}

function pushRecord(out: number[], type: number, keydata: Uint8Array, value: Uint8Array): void {
  pushCompact(out, 1 + keydata.length);
  out.push(type);
  pushBytes(out, keydata);
  pushCompact(out, value.length);
  pushBytes(out, value);
}

function u32leBytes(n: number): Uint8Array {
  return Uint8Array.of(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
}

function writeMap(
  out: number[],
  map: { readonly [field: string]: unknown },
  names: Readonly<Record<number, string>>,
): boolean {
  for (const [type, name] of Object.entries(names).sort((a, b) => Number(a[0]) - Number(b[0]))) {
    const v = map[name];
    if (v === undefined) continue;
    const t = Number(type);
    if (KEYED.has(name)) {
      const rows = (v as [Uint8Array, unknown][]).map(([pub, value]): [Uint8Array, Uint8Array] => {
        if (name === 'partialSig') return [pub, value as Uint8Array];
        const der = value as Bip32Origin;
        const b = new Uint8Array(4 + 4 * der.path.length);
        b[0] = der.fingerprint >>> 24;
        b[1] = (der.fingerprint >>> 16) & 0xff;
        b[2] = (der.fingerprint >>> 8) & 0xff;
        b[3] = der.fingerprint & 0xff;
        for (const [k, step] of der.path.entries()) b.set(u32leBytes(step), 4 + 4 * k);
        return [pub, b];
      });
      rows.sort((a, b) => compareBytes(a[0], b[0]));
      for (let k = 0; k < rows.length; k++) {
        const [pub, value] = rows[k] as [Uint8Array, Uint8Array];
        const prev = rows[k - 1];
        if (pub.length !== 33 || (prev !== undefined && compareBytes(pub, prev[0]) === 0)) return false;
        pushRecord(out, t, pub, value);
      }
      continue;
    }
    let value: Uint8Array;
    switch (name) {
      case 'unsignedTx':
        value = RawOldTx.encode(v as never);
        break;
      case 'nonWitnessUtxo':
        value = RawTx.encode(v as never);
        break;
      case 'witnessUtxo':
        value = RawOutput.encode(v as never);
        break;
      case 'version':
      case 'sighashType':
        value = u32leBytes(v as number);
        break;
      default:
        value = v as Uint8Array;
    }
    pushRecord(out, t, new Uint8Array(0), value);
  }
  const known = new Set(Object.values(names));
  for (const [k, v] of Object.entries(map)) if (v !== undefined && !known.has(k)) return false;
  out.push(0);
  return true;
}

/**
 * Encodes a PSBT whose public keys are already known valid (read by this
 * package and proven against the wallet), without checking them again as
 * points: the same bytes as encodePsbt for the fields Custos exchanges,
 * encodePsbt itself for anything else.
 */
export function encodeKnownPsbt(psbt: RawPsbt): Uint8Array {
  const out: number[] = [0x70, 0x73, 0x62, 0x74, 0xff];
  let ok = writeMap(out, psbt.global, GLOBAL_FAST);
  for (const map of psbt.inputs) ok &&= writeMap(out, map, INPUT_FAST);
  for (const map of psbt.outputs) ok &&= writeMap(out, map, OUTPUT_FAST);
  return ok && psbt.inputs.length > 0 && psbt.outputs.length > 0 ? Uint8Array.from(out) : encodePsbt(psbt);
}

export function encodePsbt(psbt: RawPsbt): Uint8Array {
  return RawPSBTV0.encode(psbt as unknown as Parameters<typeof RawPSBTV0.encode>[0]);
}

/** A PSBT as the base64 text Bitcoin Core's RPC and most wallets exchange. */
export function psbtToBase64(psbt: Uint8Array): string {
  return base64.encode(psbt);
}

export function psbtFromBase64(text: string): Result<Uint8Array> {
  try {
    const bytes = base64.decode(text);
    if (base64.encode(bytes) !== text) {
      return refuse('NON_CANONICAL_ENCODING', 'PSBT base64 is not canonical');
    }
    return accept(bytes);
  } catch {
    return refuse('INVALID_VALUE', 'PSBT is not valid base64');
  }
}

/** Parses a full previous transaction (with or without witnesses); undefined when malformed. */
export function parseRawTx(bytes: Uint8Array): UnsignedTx | undefined {
  try {
    return RawTx.decode(bytes) as unknown as UnsignedTx;
  } catch {
    return undefined;
  }
}

/** The txid of a transaction: double SHA-256 of its serialization without witnesses, displayed reversed. */
export function txidOf(tx: UnsignedTx): string {
  const legacy = RawOldTx.encode({
    version: tx.version,
    inputs: tx.inputs.map((i) => ({ ...i })),
    outputs: tx.outputs.map((o) => ({ ...o })),
    lockTime: tx.lockTime,
  });
  return Buffer.from(sha256(sha256(legacy)).reverse()).toString('hex');
}

/**
 * The virtual size (BIP 141) the transaction will have once every input is
 * finalized, each spending an m-of-n P2WSH multisig with compressed keys.
 * Each signature is counted at its largest standard size, 72 bytes with the
 * sighash byte (DER with a 33-byte r and a low-S s, BIP 62/146), so the real
 * size is never larger and the fee rate never lower than planned.
 */
export function estimateVsize(
  inputs: number,
  m: number,
  n: number,
  outputScripts: readonly Uint8Array[],
): number {
  const witnessScriptLength = 3 + 34 * n;
  const perInputWitness =
    compactSizeLength(m + 2) + // stack items: dummy, m signatures, witness script
    1 + // the empty dummy element CHECKMULTISIG pops (BIP 147 NULLDUMMY)
    m * (1 + 72) +
    compactSizeLength(witnessScriptLength) +
    witnessScriptLength;
  let base =
    4 + compactSizeLength(inputs) + inputs * (32 + 4 + 1 + 4) + compactSizeLength(outputScripts.length) + 4;
  for (const s of outputScripts) base += 8 + compactSizeLength(s.length) + s.length;
  const witness = 2 + inputs * perInputWitness; // marker and flag, then one stack per input
  return Math.ceil((base * 4 + witness) / 4);
}

function declaresVersion2(bytes: Uint8Array): boolean {
  try {
    RawPSBTV2.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

function messageOf(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
