/**
 * Fee bumping (issue 13, BIP 125 replace-by-fee): building a replacement of a
 * signed, unmined withdrawal, and the signer's check that a transaction is a
 * replacement and not a second payment.
 *
 * A replacement pays the same payees the same amounts in the same order and
 * takes the higher fee from the wallet's own change. What makes it safe to
 * sign while the original may still confirm is that the two conflict: it
 * spends at least one input of every transaction signed for the intent, so
 * the chain can confirm at most one of them. A transaction that spends none
 * of an earlier one's inputs could confirm beside it and pay the payees
 * twice; one that pays a payee differently is another withdrawal. Both are
 * NOT_A_REPLACEMENT. Each replacement must also be one a node relays in place
 * of what it replaces (Bitcoin Core's rules, BIP 125 rules 3, 4 and 6): a
 * higher fee rate than each, and an absolute fee above each by at least its
 * own size at the incremental relay fee.
 *
 * Both functions are pure. The fee caps are not checked here: the signer
 * verifies the replacement against the intent (verifyPsbt) as it verified the
 * original, caps included.
 */
import { accept, CustosError, type Result, refuse } from '@custos/core';
import { analyzePsbt, type PsbtAnalysis } from './analyze.js';
import type { WalletDescriptor } from './descriptor.js';
import { dustThreshold, equalBytes } from './network.js';
import { encodeKnownPsbt, type PsbtInputMap, type PsbtOutputMap, type UnsignedTx } from './psbt.js';

/** Bitcoin Core's default incremental relay fee (-incrementalrelayfee), sat/vB: what a replacement pays for its own relay. */
export const INCREMENTAL_RELAY_FEE = 1n;

export interface VerifiedReplacement {
  readonly txid: string;
  readonly fee: bigint;
  readonly feeRate: bigint;
  /** The change the replacement keeps, or null when the bump took all of it. */
  readonly change: { readonly index: number; readonly value: bigint } | null;
}

/**
 * Whether `replacement` replaces the transactions signed for an intent,
 * `signed[0]` being the original and the rest earlier replacements: it
 * spends an input of each (pairwise conflicting: at most one confirms), its
 * payee outputs are the original's exactly (script, amount, order), its only
 * other output is the original's change output at the same index with no
 * more value, and its fee beats each one's as a node requires.
 */
export function verifyReplacement(
  replacement: PsbtAnalysis,
  signed: readonly PsbtAnalysis[],
): Result<VerifiedReplacement> {
  const original = signed[0];
  if (original === undefined)
    throw new CustosError('INVALID_VALUE', 'a replacement replaces at least one transaction');
  for (const s of signed) {
    if (s.txid === replacement.txid) {
      return refuse('NOT_A_REPLACEMENT', `transaction ${s.txid} was already signed for this intent`);
    }
  }
  // Conflict: every transaction signed for the intent shares an input with the replacement.
  const spends = new Set(replacement.inputs.map((i) => `${i.txid}:${i.vout}`));
  for (const s of signed) {
    if (!s.inputs.some((i) => spends.has(`${i.txid}:${i.vout}`))) {
      return refuse(
        'NOT_A_REPLACEMENT',
        `the replacement spends none of the inputs of ${s.txid}: both could confirm, paying twice`,
      );
    }
  }
  const payees = (a: PsbtAnalysis) => a.outputs.filter((o) => o.changeIndex === undefined);
  const before = payees(original);
  const after = payees(replacement);
  if (before.length !== after.length) {
    return refuse(
      'NOT_A_REPLACEMENT',
      `the replacement has ${after.length} payee outputs, the original ${before.length}`,
    );
  }
  for (const [j, o] of after.entries()) {
    const was = before[j]!;
    if (!equalBytes(o.script, was.script) || o.amount !== was.amount) {
      return refuse(
        'NOT_A_REPLACEMENT',
        `payee output ${j} pays ${o.amount} sat to ${o.address ?? 'a non-standard script'}, the original ${was.amount} sat to ${was.address ?? 'a non-standard script'}`,
      );
    }
  }
  const changeOf = (a: PsbtAnalysis) => {
    const c = a.outputs.filter((o) => o.changeIndex !== undefined);
    return c.length === 1 ? { index: c[0]!.changeIndex as number, value: c[0]!.amount } : c.length;
  };
  const oldChange = changeOf(original);
  const newChange = changeOf(replacement);
  if (typeof newChange === 'number' && newChange > 1) {
    return refuse('NOT_A_REPLACEMENT', 'the replacement has more than one change output');
  }
  if (typeof newChange !== 'number') {
    if (typeof oldChange === 'number') {
      return refuse('NOT_A_REPLACEMENT', 'the replacement pays change where the original paid none');
    }
    if (newChange.index !== oldChange.index || newChange.value > oldChange.value) {
      return refuse(
        'NOT_A_REPLACEMENT',
        `the replacement's change (${newChange.value} sat at index ${newChange.index}) is not the original's (${oldChange.value} sat at index ${oldChange.index}) or less`,
      );
    }
  }
  // BIP 125 rules 3, 4 and 6, as Bitcoin Core applies them to each transaction replaced.
  for (const s of signed) {
    if (replacement.fee * BigInt(s.vsize) <= s.fee * BigInt(replacement.vsize)) {
      return refuse(
        'NOT_A_REPLACEMENT',
        `the replacement's fee rate (${replacement.fee} sat for ${replacement.vsize} vB) is not above ${s.txid}'s (${s.fee} sat for ${s.vsize} vB)`,
      );
    }
    if (replacement.fee < s.fee + INCREMENTAL_RELAY_FEE * BigInt(replacement.vsize)) {
      return refuse(
        'NOT_A_REPLACEMENT',
        `the replacement's fee ${replacement.fee} sat does not exceed ${s.txid}'s ${s.fee} sat by its own relay cost (${INCREMENTAL_RELAY_FEE * BigInt(replacement.vsize)} sat)`,
      );
    }
  }
  return accept({
    txid: replacement.txid,
    fee: replacement.fee,
    feeRate: replacement.feeRate,
    change: typeof newChange === 'number' ? null : newChange,
  });
}

export interface BuiltReplacement {
  readonly psbt: Uint8Array;
  readonly txid: string;
  readonly fee: bigint;
  readonly vsize: number;
  readonly feeRate: bigint;
  readonly change: { readonly index: number; readonly value: bigint } | null;
}

/**
 * The replacement of `original` (an unsigned or signed PSBT of `wallet`) at
 * `feeRate` sat/vB: the same inputs (so it conflicts with the original on
 * every one, and no other coin is touched), the same outputs in the same
 * order, the change lowered by the extra fee, or dropped when what is left
 * is dust (then the whole change goes to the fee). Signatures are not
 * carried over. INSUFFICIENT_FUNDS when the original has no change to take
 * the fee from (adding an input is not done); NOT_A_REPLACEMENT when the
 * fee rate does not beat the original's as a node requires.
 */
export function buildReplacement(
  original: Uint8Array,
  wallet: WalletDescriptor,
  feeRate: bigint,
): Result<BuiltReplacement> {
  if (typeof feeRate !== 'bigint' || feeRate < 1n || feeRate > 100_000n) {
    return refuse('INVALID_VALUE', 'fee rate must be between 1 and 100000 sat/vB');
  }
  const analyzed = analyzePsbt(original, wallet);
  if (!analyzed.ok) return analyzed;
  const a = analyzed.value;
  const changeAt = a.outputs.findIndex((o) => o.changeIndex !== undefined);
  if (changeAt < 0) {
    return refuse('INSUFFICIENT_FUNDS', 'the original pays no change to take a higher fee from');
  }
  const change = a.outputs[changeAt]!;
  const fee = feeRate * BigInt(a.vsize);
  const needed = a.fee + INCREMENTAL_RELAY_FEE * BigInt(a.vsize);
  if (fee <= a.fee || fee < needed || feeRate <= a.feeRate) {
    return refuse(
      'NOT_A_REPLACEMENT',
      `${feeRate} sat/vB does not replace the original's ${a.feeRate} sat/vB: a replacement pays at least ${needed} sat`,
    );
  }
  const left = change.amount - (fee - a.fee);
  const keep = left >= dustThreshold(change.script);
  if (left < 0n) {
    return refuse(
      'INSUFFICIENT_FUNDS',
      `the change of ${change.amount} sat cannot pay ${fee - a.fee} sat more fee`,
    );
  }
  const tx = a.raw.global.unsignedTx;
  const unsignedTx: UnsignedTx = {
    version: tx.version,
    inputs: tx.inputs,
    outputs: tx.outputs.flatMap((o, j) =>
      j !== changeAt ? [o] : keep ? [{ amount: left, script: o.script }] : [],
    ),
    lockTime: tx.lockTime,
  };
  // What a signer proves ownership and amounts from; partial signatures and anything else are dropped.
  const inputs: PsbtInputMap[] = a.raw.inputs.map((m) => ({
    ...(m.nonWitnessUtxo === undefined ? {} : { nonWitnessUtxo: m.nonWitnessUtxo }),
    ...(m.witnessUtxo === undefined ? {} : { witnessUtxo: m.witnessUtxo }),
    ...(m.witnessScript === undefined ? {} : { witnessScript: m.witnessScript }),
    ...(m.bip32Derivation === undefined ? {} : { bip32Derivation: m.bip32Derivation }),
  }));
  const outputs: PsbtOutputMap[] = a.raw.outputs
    .filter((_, j) => j !== changeAt || keep)
    .map((m) => ({
      ...(m.witnessScript === undefined ? {} : { witnessScript: m.witnessScript }),
      ...(m.bip32Derivation === undefined ? {} : { bip32Derivation: m.bip32Derivation }),
    }));
  const psbt = encodeKnownPsbt({ global: { unsignedTx }, inputs, outputs });
  const self = analyzePsbt(psbt, wallet);
  if (!self.ok)
    throw new CustosError('INTERNAL', `built replacement fails its own analysis: ${self.message}`);
  const checked = verifyReplacement(self.value, [a]);
  if (!checked.ok) return checked;
  return accept({
    psbt,
    txid: self.value.txid,
    fee: self.value.fee,
    vsize: self.value.vsize,
    feeRate: self.value.feeRate,
    change: checked.value.change,
  });
}
