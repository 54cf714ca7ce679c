/**
 * What a PSBT spends and pays, established from the PSBT bytes and the wallet
 * descriptor alone (docs/architecture.md flow step 4, "the transaction itself").
 *
 * Nothing a PSBT says about itself is taken on trust:
 * - An input is the wallet's only if its BIP 32 derivations name exactly this
 *   wallet's keys at one branch/index, the script derived there is the script
 *   of the output it spends, and its witnessScript is the derived one
 *   (THREATS 26: FOREIGN_INPUT).
 * - An input's amount is the one in the full previous transaction, whose txid
 *   must be the outpoint's (INPUT_AMOUNT_UNPROVEN). A segwit v0 signature
 *   commits to the amount, but a signer shown a lower amount would still sign
 *   a fee it never saw (the 2020 segwit fee attack); a witnessUtxo is accepted
 *   only as a copy of that output.
 * - Every input must be signed SIGHASH_ALL: NONE or SINGLE leave outputs
 *   open to change after signing, ANYONECANPAY leaves inputs open
 *   (SIGHASH_NOT_ALL).
 * - An output is change only if its derivations prove it is this wallet's
 *   branch 1 (change) script; a claim of ownership that does not check out
 *   is UNEXPECTED_OUTPUT (THREATS 23).
 * - Fields that could alter what is signed or carry instructions past a
 *   signer (proprietary, unknown, redeem scripts, finalized scripts,
 *   preimages, Taproot and MuSig2 data, global xpubs) are refused outright
 *   rather than ignored: UNSUPPORTED_TRANSACTION.
 */
import { accept, type Result, refuse, sha256, toHex } from '@custos/core';
import {
  type DerivedAddress,
  deriveAddress,
  HARDENED,
  type WalletDescriptor,
  walletKeyOrigins,
} from './descriptor.js';
import { equalBytes, scriptToAddress } from './network.js';
import {
  type Bip32Origin,
  estimateVsize,
  MAX_MONEY,
  type PsbtInputMap,
  parsePsbt,
  type RawPsbt,
  readPsbt,
  txidOf,
} from './psbt.js';

export const SIGHASH_ALL = 0x01;

const GLOBAL_FIELDS: ReadonlySet<string> = new Set(['unsignedTx', 'version']);
const INPUT_FIELDS: ReadonlySet<string> = new Set([
  'nonWitnessUtxo',
  'witnessUtxo',
  'partialSig',
  'sighashType',
  'witnessScript',
  'bip32Derivation',
]);
const OUTPUT_FIELDS: ReadonlySet<string> = new Set(['witnessScript', 'bip32Derivation']);

export interface AnalyzedInput {
  readonly txid: string;
  readonly vout: number;
  /** Proven by the full previous transaction. */
  readonly value: bigint;
  readonly branch: 0 | 1;
  readonly index: number;
  readonly address: string;
  readonly sequence: number;
  /** Partial signatures present, each SIGHASH_ALL by a key of this input. */
  readonly signatures: number;
  readonly derived: DerivedAddress;
}

export interface AnalyzedOutput {
  readonly script: Uint8Array;
  readonly amount: bigint;
  /** undefined for a script without a standard address. */
  readonly address: string | undefined;
  /** The change index when the output is proven to be this wallet's change (branch 1). */
  readonly changeIndex: number | undefined;
}

export interface PsbtAnalysis {
  /** The unsigned txid: segwit signatures do not change it. */
  readonly txid: string;
  readonly version: number;
  readonly lockTime: number;
  readonly inputs: readonly AnalyzedInput[];
  readonly outputs: readonly AnalyzedOutput[];
  readonly fee: bigint;
  /** Estimated virtual size once finalized (see estimateVsize). */
  readonly vsize: number;
  /** fee / vsize in sat/vB, rounded up. */
  readonly feeRate: bigint;
  readonly raw: RawPsbt;
}

/** Bound on remembered analyses (each holds its parsed PSBT); the oldest is forgotten first. */
const MAX_CACHED_ANALYSES = 128;
/** Bound on remembered wallets. */
const MAX_CACHED_WALLETS = 64;

/**
 * Analyses already made, by wallet and sha256 of the PSBT bytes. The same
 * bytes are analyzed several times on their way (a signer verifies the PSBT
 * against the intent, then signs it; the coordinator builds it, then reads it
 * back for each signer's result), and each analysis decodes the PSBT twice
 * (the canonical-encoding check) and derives every input's keys: secp256k1
 * point work that dominates a decision. Only accepted analyses are kept; a
 * hit returns the same (read-only) object, which callers only read.
 */
const ANALYSES = new Map<string, PsbtAnalysis>();

/**
 * One wallet object per distinct descriptor (m, network, each key's origin
 * and xpub): derived addresses are cached per wallet object (descriptor.ts),
 * and callers that parse the descriptor text again for each PSBT (the
 * coordinator) would otherwise derive every address again.
 */
const WALLETS = new Map<string, WalletDescriptor>();

function walletKey(w: WalletDescriptor): string {
  return `${w.network}|${w.m}|${w.keys.map((k) => `${k.fingerprint}/${k.path}/${k.xpub}`).join('|')}`;
}

function remember<V>(cache: Map<string, V>, key: string, value: V, max: number): void {
  cache.set(key, value);
  if (cache.size > max) cache.delete(cache.keys().next().value as string);
}

/**
 * Reads a PSBT and proves what it spends and pays against the wallet. Never
 * throws on bad bytes. Analyses of the same bytes for the same wallet are
 * remembered (a small bounded cache keyed by the bytes' sha256), so a PSBT
 * verified and then signed is proven once.
 */
export function analyzePsbt(bytes: Uint8Array, wallet: WalletDescriptor): Result<PsbtAnalysis> {
  if (!(bytes instanceof Uint8Array)) return analyzeOnce(bytes, wallet);
  const wkey = walletKey(wallet);
  let canonical = WALLETS.get(wkey);
  if (canonical === undefined) {
    canonical = wallet;
    remember(WALLETS, wkey, wallet, MAX_CACHED_WALLETS);
  }
  const key = `${toHex(sha256(bytes))}#${wkey}`;
  const hit = ANALYSES.get(key);
  if (hit !== undefined) {
    ANALYSES.delete(key);
    ANALYSES.set(key, hit);
    return accept(hit);
  }
  const r = analyzeOnce(bytes, canonical);
  if (r.ok) remember(ANALYSES, key, r.value, MAX_CACHED_ANALYSES);
  return r;
}

/**
 * Reads the PSBT without checking its public keys as curve points, since
 * every key an accepted analysis keeps is byte for byte one derived here from
 * the wallet (derivations, partial signature keys): a valid point by
 * construction. A refusal is made again from a full strict read, so its code
 * is the one parsePsbt gives (an invalid key is INVALID_VALUE, as before).
 */
function analyzeOnce(bytes: Uint8Array, wallet: WalletDescriptor): Result<PsbtAnalysis> {
  const quick = analyzeRaw(readPsbt(bytes, false), wallet);
  if (quick.ok || !(bytes instanceof Uint8Array)) return quick;
  return analyzeRaw(parsePsbt(bytes), wallet);
}

function analyzeRaw(parsed: Result<RawPsbt>, wallet: WalletDescriptor): Result<PsbtAnalysis> {
  if (!parsed.ok) return parsed;
  const raw = parsed.value;
  const tx = raw.global.unsignedTx;

  const extra = unexpectedField(raw.global, GLOBAL_FIELDS);
  if (extra !== undefined) {
    return refuse('UNSUPPORTED_TRANSACTION', `PSBT global field ${extra} is not accepted`);
  }
  if (tx.version !== 1 && tx.version !== 2) {
    return refuse('UNSUPPORTED_TRANSACTION', `transaction version ${tx.version} is not 1 or 2`);
  }
  if (tx.inputs.length === 0) return refuse('INVALID_VALUE', 'transaction has no inputs');
  if (tx.outputs.length === 0) return refuse('INVALID_VALUE', 'transaction has no outputs');

  const outpoints = new Set<string>();
  const inputs: AnalyzedInput[] = [];
  let totalIn = 0n;
  for (const [i, txIn] of tx.inputs.entries()) {
    const map = raw.inputs[i]!;
    const txid = hex(txIn.txid);
    const outpoint = `${txid}:${txIn.index}`;
    if (outpoints.has(outpoint)) {
      return refuse('INVALID_VALUE', `input ${i} spends ${outpoint} a second time`);
    }
    outpoints.add(outpoint);
    const r = analyzeInput(i, txid, txIn.index, txIn.sequence, map, wallet);
    if (!r.ok) return r;
    inputs.push(r.value);
    totalIn += r.value.value;
  }
  if (totalIn > MAX_MONEY) return refuse('INVALID_VALUE', 'inputs add up to more than 21 million BTC');

  const outputs: AnalyzedOutput[] = [];
  let totalOut = 0n;
  for (const [j, txOut] of tx.outputs.entries()) {
    const map = raw.outputs[j]!;
    const field = unexpectedField(map, OUTPUT_FIELDS);
    if (field !== undefined) {
      return refuse('UNSUPPORTED_TRANSACTION', `output ${j}: PSBT field ${field} is not accepted`);
    }
    if (txOut.amount > MAX_MONEY) return refuse('INVALID_VALUE', `output ${j} pays more than 21 million BTC`);
    totalOut += txOut.amount;
    let changeIndex: number | undefined;
    if (map.bip32Derivation !== undefined || map.witnessScript !== undefined) {
      const owned = matchDerivations(map.bip32Derivation, wallet);
      if (typeof owned === 'string') {
        return refuse('UNEXPECTED_OUTPUT', `output ${j} claims to be change but ${owned}`);
      }
      if (owned.branch !== 1) {
        return refuse('UNEXPECTED_OUTPUT', `output ${j} claims to be change but is on the receive branch`);
      }
      if (!equalBytes(owned.script, txOut.script)) {
        return refuse('UNEXPECTED_OUTPUT', `output ${j} claims to be change but pays another script`);
      }
      if (map.witnessScript !== undefined && !equalBytes(map.witnessScript, owned.witnessScript)) {
        return refuse('UNEXPECTED_OUTPUT', `output ${j}: witnessScript is not the wallet's`);
      }
      changeIndex = owned.index;
    }
    outputs.push({
      script: txOut.script,
      amount: txOut.amount,
      address: scriptToAddress(txOut.script, wallet.network),
      changeIndex,
    });
  }
  if (totalOut > MAX_MONEY) return refuse('INVALID_VALUE', 'outputs add up to more than 21 million BTC');
  const fee = totalIn - totalOut;
  if (fee < 0n) return refuse('INVALID_VALUE', 'outputs spend more than the inputs hold');

  const vsize = estimateVsize(
    inputs.length,
    wallet.m,
    wallet.keys.length,
    tx.outputs.map((o) => o.script),
  );
  const feeRate = (fee + BigInt(vsize) - 1n) / BigInt(vsize);
  return accept({
    txid: txidOf(tx),
    version: tx.version,
    lockTime: tx.lockTime,
    inputs,
    outputs,
    fee,
    vsize,
    feeRate,
    raw,
  });
}

function analyzeInput(
  i: number,
  txid: string,
  vout: number,
  sequence: number,
  map: PsbtInputMap,
  wallet: WalletDescriptor,
): Result<AnalyzedInput> {
  const field = unexpectedField(map, INPUT_FIELDS);
  if (field !== undefined) {
    return refuse('UNSUPPORTED_TRANSACTION', `input ${i}: PSBT field ${field} is not accepted`);
  }

  // THREATS 26: the input must be provably this wallet's, by derivation.
  const owned = matchDerivations(map.bip32Derivation, wallet);
  if (typeof owned === 'string') return refuse('FOREIGN_INPUT', `input ${i} is not this wallet's: ${owned}`);

  // The amount comes from the full previous transaction, and only if it is the one spent.
  const prevTx = map.nonWitnessUtxo;
  if (prevTx === undefined) {
    return refuse(
      'INPUT_AMOUNT_UNPROVEN',
      `input ${i} lacks the full previous transaction (non-witness UTXO)`,
    );
  }
  if (txidOf(prevTx) !== txid) {
    return refuse('INPUT_AMOUNT_UNPROVEN', `input ${i}: the previous transaction given is not ${txid}`);
  }
  const prevOut = prevTx.outputs[vout];
  if (prevOut === undefined) {
    return refuse('INPUT_AMOUNT_UNPROVEN', `input ${i}: the previous transaction has no output ${vout}`);
  }
  if (prevOut.amount > MAX_MONEY) {
    return refuse('INVALID_VALUE', `input ${i} spends more than 21 million BTC`);
  }
  if (!equalBytes(prevOut.script, owned.script)) {
    return refuse(
      'FOREIGN_INPUT',
      `input ${i} spends a script that is not the wallet's at ${owned.branch}/${owned.index}`,
    );
  }
  const w = map.witnessUtxo;
  if (w !== undefined && (w.amount !== prevOut.amount || !equalBytes(w.script, prevOut.script))) {
    return refuse('INPUT_AMOUNT_UNPROVEN', `input ${i}: witness UTXO contradicts the previous transaction`);
  }
  if (map.witnessScript === undefined || !equalBytes(map.witnessScript, owned.witnessScript)) {
    return refuse('FOREIGN_INPUT', `input ${i}: witnessScript is missing or not the wallet's`);
  }

  if (map.sighashType !== undefined && map.sighashType !== SIGHASH_ALL) {
    return refuse(
      'SIGHASH_NOT_ALL',
      `input ${i} asks for sighash type 0x${map.sighashType.toString(16)}, only ALL is signed`,
    );
  }
  const pubkeys = owned.derivations.map((d) => d.pubkey);
  for (const [pubkey, sig] of map.partialSig ?? []) {
    if (!pubkeys.some((p) => equalBytes(p, pubkey))) {
      return refuse('INVALID_VALUE', `input ${i} holds a signature by a key that is not in its script`);
    }
    if (sig.length < 9 || sig[sig.length - 1] !== SIGHASH_ALL) {
      return refuse('SIGHASH_NOT_ALL', `input ${i} holds a signature that is not SIGHASH_ALL`);
    }
  }
  return accept({
    txid,
    vout,
    value: prevOut.amount,
    branch: owned.branch,
    index: owned.index,
    address: owned.address,
    sequence,
    signatures: map.partialSig?.length ?? 0,
    derived: owned,
  });
}

/**
 * The wallet address the derivations describe, or why they do not describe one:
 * exactly one derivation per wallet key, each the key's origin followed by the
 * same branch (0 or 1) and unhardened index, each public key the derived one.
 */
export function matchDerivations(
  ders: readonly (readonly [Uint8Array, Bip32Origin])[] | undefined,
  wallet: WalletDescriptor,
): DerivedAddress | string {
  if (ders === undefined || ders.length === 0) return 'it carries no BIP 32 derivations';
  const origins = walletKeyOrigins(wallet);
  if (ders.length !== origins.length) {
    return `it names ${ders.length} keys where the wallet has ${origins.length}`;
  }
  let at: { branch: number; index: number } | undefined;
  for (const [, der] of ders) {
    for (const o of origins) {
      if (der.fingerprint !== o.fingerprint || der.path.length !== o.path.length + 2) continue;
      if (!o.path.every((step, k) => der.path[k] === step)) continue;
      at = { branch: der.path[o.path.length]!, index: der.path[o.path.length + 1]! };
      break;
    }
    if (at !== undefined) break;
  }
  if (at === undefined) return 'no derivation is under a key of this wallet';
  const { branch, index } = at;
  if (branch !== 0 && branch !== 1) return `branch ${branch} is neither receive (0) nor change (1)`;
  if (index >= HARDENED) return 'its address index is hardened';
  const derived = deriveAddress(wallet, branch, index);
  for (const expected of derived.derivations) {
    const found = ders.find(([pubkey]) => equalBytes(pubkey, expected.pubkey));
    if (found === undefined) return `the key derived at ${branch}/${index} is missing`;
    const [, der] = found;
    if (der.fingerprint !== expected.fingerprint || !sameNumbers(der.path, expected.path)) {
      return `a key's origin is not the wallet's at ${branch}/${index}`;
    }
  }
  return derived;
}

function unexpectedField(
  map: { readonly [field: string]: unknown },
  allowed: ReadonlySet<string>,
): string | undefined {
  for (const [k, v] of Object.entries(map)) {
    if (v === undefined) continue;
    if (!allowed.has(k)) return k;
  }
  return undefined;
}

function sameNumbers(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
