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
import { sha256 } from '@noble/hashes/sha2.js';
import { base64 } from '@scure/base';
import { RawPSBTV0, RawPSBTV2 } from '@scure/btc-signer/psbt.js';
import { RawOldTx, RawTx } from '@scure/btc-signer/script.js';
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
  if (!(bytes instanceof Uint8Array)) return refuse('INVALID_VALUE', 'a PSBT is a byte array');
  if (bytes.length > 4_000_000) return refuse('TOO_LARGE', 'PSBT is larger than 4 MB');
  if (bytes.length < 5 || bytes[0] !== 0x70 || bytes[1] !== 0x73 || bytes[2] !== 0x62 || bytes[3] !== 0x74) {
    return refuse('INVALID_VALUE', 'not a PSBT: it does not start with the magic bytes "psbt" 0xff');
  }
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
