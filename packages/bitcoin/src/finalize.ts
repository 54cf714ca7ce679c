/**
 * Combining and finalizing from analyses (BIP 174 Combiner, Input Finalizer
 * and Transaction Extractor), for a coordinator that already read every
 * signed PSBT strictly with analyzePsbt.
 *
 * combinePsbts and finalizePsbt (sign.ts) take bytes, so each parses them
 * again (decode, re-encode, compare) and hands them to @scure/btc-signer,
 * which decodes them once more and validates every public key of every BIP 32
 * derivation by point decompression on each decode. Here the one strict
 * parse of each PSBT is the analysis the caller already holds, and nothing is
 * decoded again. What is still checked, every time:
 * - every part is an accepted analysis of one and the same unsigned
 *   transaction (same txid) for this wallet: the analysis proved each input
 *   the wallet's, its amount by the full previous transaction, its
 *   witnessScript the derived one, and each partial signature's key one of
 *   the input's keys and its sighash byte ALL;
 * - every partial signature of every part verifies (ECDSA over the BIP 143
 *   digest of its input, DER, low-S, SIGHASH_ALL), the digest computed once
 *   per input, so a bad signature is named here and not by the network;
 * - each input gets m valid signatures by distinct keys, in the order of the
 *   keys in its witness script, as OP_CHECKMULTISIG requires.
 */
import { accept, type Result, refuse } from '@custos/core';
import { sha256 } from '@noble/hashes/sha2.js';
import { RawOutput, RawTx } from '@scure/btc-signer/script.js';
import { type PsbtAnalysis, SIGHASH_ALL } from './analyze.js';
import type { WalletDescriptor } from './descriptor.js';
import { compactSizeLength } from './network.js';
import { verifyInputSignature } from './sign.js';

export interface FinalTransaction {
  /** The network transaction, with witnesses. */
  readonly tx: Uint8Array;
  readonly txid: string;
  readonly hex: string;
}

/**
 * Merges the partial signatures of analyzed PSBTs of one transaction, checks
 * every one, and extracts the finalized transaction. `parts` must be
 * analyzePsbt results for `wallet`.
 */
export function finalizeAnalyzed(
  parts: readonly PsbtAnalysis[],
  wallet: WalletDescriptor,
): Result<FinalTransaction> {
  const first = parts[0];
  if (first === undefined) return refuse('INVALID_VALUE', 'nothing to combine');
  if (parts.some((p) => p.txid !== first.txid)) {
    return refuse('INVALID_VALUE', 'PSBTs of different transactions cannot be combined');
  }
  const unsigned = first.raw.global.unsignedTx;
  const le32 = (n: number): Uint8Array => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n >>> 0, true);
    return b;
  };
  const le64 = (n: bigint): Uint8Array => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, n, true);
    return b;
  };
  const outpoint = (i: { readonly txid: Uint8Array; readonly index: number }): Uint8Array =>
    concat([Uint8Array.from(i.txid).reverse(), le32(i.index)]);
  // BIP 143: the parts every input's digest shares, computed once.
  const hashPrevouts = sha256d(concat(unsigned.inputs.map(outpoint)));
  const hashSequence = sha256d(concat(unsigned.inputs.map((i) => le32(i.sequence))));
  const hashOutputs = sha256d(
    concat(unsigned.outputs.map((o) => RawOutput.encode({ amount: o.amount, script: o.script }))),
  );
  const witnesses: Uint8Array[][] = [];
  for (const [i, txIn] of unsigned.inputs.entries()) {
    const analyzed = first.inputs[i];
    if (analyzed === undefined) return refuse('INVALID_VALUE', `input ${i} was not analyzed`);
    const script = analyzed.derived.witnessScript;
    // sha256 of the BIP 143 preimage: its sha256 is the digest signed.
    const half = sha256(
      concat([
        le32(unsigned.version),
        hashPrevouts,
        hashSequence,
        outpoint(txIn),
        compactSize(script.length),
        script,
        le64(analyzed.value),
        le32(txIn.sequence),
        hashOutputs,
        le32(unsigned.lockTime),
        le32(SIGHASH_ALL),
      ]),
    );
    const valid = new Map<string, Uint8Array>();
    for (const part of parts) {
      for (const [pubkey, sig] of part.raw.inputs[i]?.partialSig ?? []) {
        if (sig.length < 9 || sig[sig.length - 1] !== SIGHASH_ALL) {
          return refuse('SIGHASH_NOT_ALL', `input ${i} holds a signature that is not SIGHASH_ALL`);
        }
        if (!verifyInputSignature(half, pubkey, sig.subarray(0, -1)))
          return refuse('BAD_SIGNATURE', `input ${i} holds an invalid signature`);
        const key = hex(pubkey);
        if (!valid.has(key)) valid.set(key, sig);
      }
    }
    const keys = multisigKeys(script);
    if (keys === undefined) {
      return refuse('UNSUPPORTED_TRANSACTION', `input ${i} is not a P2WSH multisig input`);
    }
    const sigs = keys.flatMap((k) => valid.get(hex(k)) ?? []).slice(0, wallet.m);
    if (sigs.length < wallet.m) {
      return refuse(
        'INVALID_VALUE',
        `input ${i} holds ${sigs.length} valid signatures of the ${wallet.m} it needs`,
      );
    }
    // OP_CHECKMULTISIG pops one extra element (BIP 147: it must be empty).
    witnesses.push([new Uint8Array(0), ...sigs, script]);
  }
  let tx: Uint8Array;
  try {
    tx = RawTx.encode({
      version: unsigned.version,
      segwitFlag: true,
      inputs: unsigned.inputs.map((i) => ({
        txid: i.txid,
        index: i.index,
        finalScriptSig: new Uint8Array(0),
        sequence: i.sequence,
      })),
      outputs: unsigned.outputs.map((o) => ({ amount: o.amount, script: o.script })),
      witnesses,
      lockTime: unsigned.lockTime,
    });
  } catch (err) {
    return refuse('INVALID_VALUE', `the transaction cannot be extracted: ${String(err).slice(0, 200)}`);
  }
  return accept({ tx, txid: first.txid, hex: hex(tx) });
}

/** The public keys of an m-of-n OP_CHECKMULTISIG script of compressed keys, in script order. */
function multisigKeys(script: Uint8Array): Uint8Array[] | undefined {
  const n = script.length >= 3 ? script[script.length - 2]! - 0x50 : -1;
  if (n < 1 || n > 16 || script[script.length - 1] !== 0xae || script.length !== 3 + 34 * n) {
    return undefined;
  }
  const keys: Uint8Array[] = [];
  for (let k = 0; k < n; k++) {
    const at = 1 + 34 * k;
    if (script[at] !== 33) return undefined;
    keys.push(script.subarray(at + 1, at + 34));
  }
  return keys;
}

function compactSize(n: number): Uint8Array {
  const b = new Uint8Array(compactSizeLength(n));
  if (b.length === 1) b[0] = n;
  else if (b.length === 3) {
    b[0] = 0xfd;
    new DataView(b.buffer).setUint16(1, n, true);
  } else {
    b[0] = 0xfe;
    new DataView(b.buffer).setUint32(1, n, true);
  }
  return b;
}

function sha256d(bytes: Uint8Array): Uint8Array {
  return sha256(sha256(bytes));
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
