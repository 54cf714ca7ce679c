/**
 * Building the PSBT for an approved transfer (docs/architecture.md flow step 3): coin
 * selection, the payment, change back to the wallet, the fee.
 *
 * What is built is exactly what signers accept (analyze.ts), and the result
 * is checked against that before it is returned:
 * - every input carries the full previous transaction (BIP 174
 *   non-witness UTXO) as well as the witness UTXO, its witnessScript and a
 *   BIP 32 derivation for every key, so each signer can prove ownership and
 *   amount itself; no sighash type is written, which means SIGHASH_ALL;
 * - one output pays the destination (a batch, issue 13: one output per
 *   payment of the list, each to its script with its amount); change, if any, goes to the wallet's
 *   change branch at `changeIndex` with its witnessScript and derivations;
 * - transaction version 2, locktime 0, every sequence 0xfffffffd (BIP 125
 *   replaceable, no relative locktime), inputs and outputs in BIP 69 order.
 *
 * Coin selection is largest-first (ties by txid, then output index): the
 * same UTXO set always gives the same transaction, with as few inputs as
 * possible. The fee is the fee rate times the estimated size once finalized
 * (estimateVsize). Change below the dust threshold (330 sat for P2WSH) is
 * not created; it is left to the fee, so the fee then exceeds the target by
 * less than the cost of a change output plus the dust threshold.
 */
import { accept, CustosError, type Result, refuse } from '@custos/core';
import { hex } from '@scure/base';
import { analyzePsbt } from './analyze.js';
import { deriveAddress, HARDENED, type WalletDescriptor } from './descriptor.js';
import { addressToScript, dustThreshold, equalBytes } from './network.js';
import {
  encodeKnownPsbt,
  estimateVsize,
  MAX_MONEY,
  type PsbtInputMap,
  type PsbtOutputMap,
  parseRawTx,
  txidOf,
  type UnsignedTx,
} from './psbt.js';

const EMPTY = new Uint8Array(0);

export interface WalletUtxo {
  /** Big-endian (display) hex of the transaction holding the output. */
  readonly txid: string;
  readonly vout: number;
  readonly value: bigint;
  readonly branch: 0 | 1;
  readonly index: number;
  /** The full previous transaction, raw. */
  readonly prevTx: Uint8Array;
}

export interface BuildRequest {
  readonly wallet: WalletDescriptor;
  readonly utxos: readonly WalletUtxo[];
  readonly to: string;
  readonly amount: bigint;
  /**
   * A batch (issue 13): every payment, in the intent's order; `to` and
   * `amount` are then the first's destination and the sum, as in the intent.
   */
  readonly outputs?: readonly { readonly to: string; readonly amount: bigint }[];
  /** sat/vB */
  readonly feeRate: bigint;
  /** Index on the change branch (1) for the change output, if one is needed. */
  readonly changeIndex: number;
}

export interface BuiltPsbt {
  readonly psbt: Uint8Array;
  readonly txid: string;
  readonly fee: bigint;
  readonly vsize: number;
  /** The UTXOs spent, in transaction order. */
  readonly inputs: readonly WalletUtxo[];
  readonly change: { readonly index: number; readonly value: bigint } | null;
}

/** BIP 125 opt-in replace-by-fee; also disables BIP 68 relative locktime. */
export const SEQUENCE = 0xfffffffd;

export function buildPsbt(req: BuildRequest): Result<BuiltPsbt> {
  const { wallet, feeRate, changeIndex } = req;
  const payments: { script: Uint8Array; amount: bigint }[] = [];
  for (const p of req.outputs ?? [{ to: req.to, amount: req.amount }]) {
    const script = addressToScript(p.to, wallet.network);
    if (script === undefined) {
      return refuse('INVALID_VALUE', `destination ${p.to} is not a standard address on ${wallet.network}`);
    }
    if (typeof p.amount !== 'bigint' || p.amount <= 0n || p.amount > MAX_MONEY) {
      return refuse('INVALID_VALUE', 'amount must be between 1 sat and 21 million BTC');
    }
    if (p.amount < dustThreshold(script)) {
      return refuse('INVALID_VALUE', `amount is below the dust threshold of ${dustThreshold(script)} sat`);
    }
    payments.push({ script, amount: p.amount });
  }
  const amount = payments.reduce((sum, p) => sum + p.amount, 0n);
  if (amount > MAX_MONEY) return refuse('INVALID_VALUE', 'the batch pays more than 21 million BTC');
  if (req.outputs !== undefined && amount !== req.amount) {
    return refuse('INVALID_VALUE', 'amount must be the sum of the outputs');
  }
  const paymentScripts = payments.map((p) => p.script);
  if (typeof feeRate !== 'bigint' || feeRate < 1n || feeRate > 100_000n) {
    return refuse('INVALID_VALUE', 'fee rate must be between 1 and 100000 sat/vB');
  }
  if (!Number.isSafeInteger(changeIndex) || changeIndex < 0 || changeIndex >= HARDENED) {
    return refuse('INVALID_VALUE', 'change index must be an integer from 0 to 2^31-1');
  }

  const checked = checkUtxos(req.utxos, wallet);
  if (!checked.ok) return checked;
  const candidates = [...checked.value].sort((a, b) =>
    a.value === b.value ? compareOutpoints(a, b) : a.value > b.value ? -1 : 1,
  );

  const change = deriveAddress(wallet, 1, changeIndex);
  const changeDust = dustThreshold(change.script);
  const n = wallet.keys.length;
  const selected: WalletUtxo[] = [];
  let total = 0n;
  let plan: { fee: bigint; changeValue: bigint | null } | undefined;
  for (const utxo of candidates) {
    selected.push(utxo);
    total += utxo.value;
    const feeWithout = feeRate * BigInt(estimateVsize(selected.length, wallet.m, n, paymentScripts));
    if (total < amount + feeWithout) continue;
    const feeWith =
      feeRate * BigInt(estimateVsize(selected.length, wallet.m, n, [...paymentScripts, change.script]));
    const changeValue = total - amount - feeWith;
    plan =
      changeValue >= changeDust ? { fee: feeWith, changeValue } : { fee: total - amount, changeValue: null };
    break;
  }
  if (plan === undefined) {
    const available = candidates.reduce((s, u) => s + u.value, 0n);
    return refuse(
      'INSUFFICIENT_FUNDS',
      `the wallet holds ${available} sat, not enough for ${amount} sat plus the fee`,
      {
        available: available.toString(),
        amount: amount.toString(),
      },
    );
  }

  const inputs = [...selected].sort(compareOutpoints);
  const psbtInputs: PsbtInputMap[] = [];
  for (const u of inputs) {
    const derived = deriveAddress(wallet, u.branch, u.index);
    psbtInputs.push({
      // Parsed once per funding transaction (checkUtxos proved it): written back byte for byte.
      nonWitnessUtxo: (provenTx(u.prevTx) as { tx: UnsignedTx }).tx,
      witnessUtxo: { script: derived.script, amount: u.value },
      witnessScript: derived.witnessScript,
      bip32Derivation: derived.derivations.map((d) => [
        d.pubkey,
        { fingerprint: d.fingerprint, path: d.path },
      ]),
    });
  }
  const outputs: { script: Uint8Array; amount: bigint; change: boolean }[] = payments.map((p) => ({
    ...p,
    change: false,
  }));
  if (plan.changeValue !== null) {
    outputs.push({ script: change.script, amount: plan.changeValue, change: true });
  }
  // BIP 69: by amount, then by script bytes.
  outputs.sort((a, b) =>
    a.amount === b.amount ? compareBytes(a.script, b.script) : a.amount < b.amount ? -1 : 1,
  );
  const unsignedTx: UnsignedTx = {
    version: 2,
    inputs: inputs.map((u) => ({
      txid: hex.decode(u.txid),
      index: u.vout,
      finalScriptSig: EMPTY,
      sequence: SEQUENCE,
    })),
    outputs: outputs.map((o) => ({ amount: o.amount, script: o.script })),
    lockTime: 0,
  };
  // Written directly: every public key here was derived from the wallet's own xpubs, so it is
  // not checked again as a curve point (scure's Transaction checked each one, twice, on every
  // build: a tenth of the coordinator's time). The bytes are scure's (build-psbt.test.ts).
  const psbt = encodeKnownPsbt({
    global: { unsignedTx },
    inputs: psbtInputs,
    outputs: outputs.map(
      (o): PsbtOutputMap =>
        o.change
          ? {
              witnessScript: change.witnessScript,
              bip32Derivation: change.derivations.map((d) => [
                d.pubkey,
                { fingerprint: d.fingerprint, path: d.path },
              ]),
            }
          : {},
    ),
  });

  // What was built must pass the signers' own reading; anything else is a bug here.
  const self = analyzePsbt(psbt, wallet);
  if (!self.ok) throw new CustosError('INTERNAL', `built PSBT fails its own analysis: ${self.message}`);
  if (self.value.fee !== plan.fee) throw new CustosError('INTERNAL', 'built PSBT has an unexpected fee');
  return accept({
    psbt,
    txid: self.value.txid,
    fee: plan.fee,
    vsize: self.value.vsize,
    inputs,
    change: plan.changeValue === null ? null : { index: changeIndex, value: plan.changeValue },
  });
}

/**
 * Funding transactions already parsed and hashed, by the very byte array given
 * (a wallet hands the same object for a coin on every build): each is parsed
 * and hashed once, and every coin is still checked against the result.
 */
const PROVEN = new WeakMap<Uint8Array, { readonly txid: string; readonly tx: UnsignedTx } | null>();

function provenTx(bytes: Uint8Array): { readonly txid: string; readonly tx: UnsignedTx } | undefined {
  if (!(bytes instanceof Uint8Array)) return undefined;
  let proven = PROVEN.get(bytes);
  if (proven === undefined) {
    const tx = parseRawTx(bytes);
    proven = tx === undefined ? null : { txid: txidOf(tx), tx };
    PROVEN.set(bytes, proven);
  }
  return proven ?? undefined;
}

/** Each UTXO must be proven by its previous transaction and be the wallet's at its branch and index. */
function checkUtxos(utxos: readonly WalletUtxo[], wallet: WalletDescriptor): Result<readonly WalletUtxo[]> {
  const seen = new Set<string>();
  for (const [i, u] of utxos.entries()) {
    if (typeof u.txid !== 'string' || !/^[0-9a-f]{64}$/.test(u.txid)) {
      return refuse('INVALID_VALUE', `UTXO ${i}: txid must be 64 lower-case hex digits`);
    }
    if (!Number.isSafeInteger(u.vout) || u.vout < 0 || u.vout > 0xffffffff) {
      return refuse('INVALID_VALUE', `UTXO ${i}: vout must be a 32-bit unsigned integer`);
    }
    if (typeof u.value !== 'bigint' || u.value <= 0n || u.value > MAX_MONEY) {
      return refuse('INVALID_VALUE', `UTXO ${i}: value must be between 1 sat and 21 million BTC`);
    }
    if (
      (u.branch !== 0 && u.branch !== 1) ||
      !Number.isSafeInteger(u.index) ||
      u.index < 0 ||
      u.index >= HARDENED
    ) {
      return refuse('INVALID_VALUE', `UTXO ${i}: branch must be 0 or 1 and index from 0 to 2^31-1`);
    }
    const key = `${u.txid}:${u.vout}`;
    if (seen.has(key)) return refuse('INVALID_VALUE', `UTXO ${key} is listed twice`);
    seen.add(key);
    const prev = provenTx(u.prevTx);
    if (prev === undefined || prev.txid !== u.txid) {
      return refuse('INPUT_AMOUNT_UNPROVEN', `UTXO ${key}: the previous transaction given is not ${u.txid}`);
    }
    const out = prev.tx.outputs[u.vout];
    if (out === undefined || out.amount !== u.value) {
      return refuse(
        'INPUT_AMOUNT_UNPROVEN',
        `UTXO ${key}: the previous transaction does not hold that value there`,
      );
    }
    if (!equalBytes(out.script, deriveAddress(wallet, u.branch, u.index).script)) {
      return refuse('FOREIGN_INPUT', `UTXO ${key} is not the wallet's address ${u.branch}/${u.index}`);
    }
  }
  return accept(utxos);
}

/** BIP 69 input order: txid as displayed, ascending, then output index. */
function compareOutpoints(a: WalletUtxo, b: WalletUtxo): number {
  if (a.txid !== b.txid) return a.txid < b.txid ? -1 : 1;
  return a.vout - b.vout;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}
