/**
 * Verify-against-intent: the last check a signer makes before it signs a
 * Bitcoin transaction (docs/architecture.md flow step 4; THREATS 23-26).
 *
 * The intent says one thing: pay `amount` to `to` on `chain`. The PSBT must
 * do exactly that and nothing else: every input the wallet's and its amount
 * proven (analyze.ts), exactly one output paying the destination exactly the
 * amount, at most one more output and only if it is proven to be the
 * wallet's own change, and a fee under the caps. A PSBT that pays the right
 * destination and also something else, or the right total split over
 * several outputs, is refused: a signer signs the intent, not a superset.
 *
 * Change must also stay where a wallet restored from its descriptor finds
 * it (issue 8, item 4): such a wallet scans the change branch until it sees
 * CHANGE_GAP_LIMIT unused addresses in a row, so change at `/1/100000` is
 * coins nobody will ever see again. The caller says how far change may go
 * from its own record (CHANGE_BEYOND_GAP past it).
 *
 * A batch intent (issue 13) names a list of outputs instead: the PSBT must
 * pay exactly that list, compared as a multiset of (script, amount) because
 * BIP 69 sorts outputs, plus at most the wallet's change. An output dropped,
 * added, or paying another script or amount is UNEXPECTED_OUTPUT; the fee
 * caps apply to the batch's one fee.
 *
 * The function is pure: the caller passes the intent fields, the wallet
 * parsed from governance, the fee caps from policy and its change bound.
 */
import { accept, CustosError, type FeeCaps, type Result, refuse } from '@custos/core';
import { analyzePsbt } from './analyze.js';
import type { WalletDescriptor } from './descriptor.js';
import { addressToScript, equalBytes, networkOfChain } from './network.js';
import { MAX_MONEY, parsePsbt } from './psbt.js';

/**
 * BIP 44's gap limit: a wallet restored from its descriptor stops scanning a
 * branch after this many unused addresses in a row. Change is never placed
 * further than this past the highest change index known used.
 */
export const CHANGE_GAP_LIMIT = 20;

/** The highest change index allowed when `highestUsed` is the highest known used (-1 for none). */
export function changeIndexLimit(highestUsed: number): number {
  return highestUsed + CHANGE_GAP_LIMIT;
}

/** Fee caps from the policies in force (core's feeCapsFor); the fee rate is in sat/vB, on the estimated finalized size. */
export type { FeeCaps };

export interface IntentTransfer {
  /** e.g. bitcoin:regtest */
  readonly chain: string;
  readonly to: string;
  /** Satoshi as a canonical decimal string. */
  readonly amount: string;
  /** A batch's outputs (issue 13): `to` is then the first's and `amount` their sum, as in the intent. */
  readonly outputs?: readonly { readonly to: string; readonly amount: string }[];
}

export interface VerifiedPsbt {
  readonly txid: string;
  readonly fee: bigint;
  readonly vsize: number;
  readonly feeRate: bigint;
  readonly inputs: readonly {
    readonly txid: string;
    readonly vout: number;
    readonly value: bigint;
    readonly branch: 0 | 1;
    readonly index: number;
  }[];
  /** The intent's destination; for a batch its first output. */
  readonly destination: { readonly address: string; readonly amount: bigint };
  /** Every payment verified, in the intent's order (one for a single-output intent). */
  readonly outputs: readonly { readonly address: string; readonly amount: bigint }[];
  readonly change: { readonly index: number; readonly value: bigint } | null;
}

/**
 * Accepts the PSBT only if it is exactly the transfer the intent names, from
 * this wallet, within the fee caps, its change (if any) at an index no
 * higher than `maxChangeIndex` (the caller's own bound: its highest change
 * index known used plus CHANGE_GAP_LIMIT, see changeIndexLimit) or than
 * CHANGE_GAP_LIMIT past a change-branch input proven here: such an input
 * shows that index used. Never throws on bad bytes; throws only for caps
 * that are not non-negative bigints or a bound that is not an integer from
 * -1 up (a caller's mistake).
 */
export function verifyPsbt(
  psbt: Uint8Array,
  intent: IntentTransfer,
  wallet: WalletDescriptor,
  caps: FeeCaps,
  maxChangeIndex: number,
): Result<VerifiedPsbt> {
  if (
    typeof caps.maxFee !== 'bigint' ||
    typeof caps.maxFeeRate !== 'bigint' ||
    caps.maxFee < 0n ||
    caps.maxFeeRate < 0n
  ) {
    throw new CustosError('INVALID_VALUE', 'fee caps must be non-negative bigints');
  }
  if (!Number.isSafeInteger(maxChangeIndex) || maxChangeIndex < -1) {
    throw new CustosError('INVALID_VALUE', 'the change bound must be an integer from -1 up');
  }
  // THREATS 16: a testnet intent never signs a mainnet wallet's coins, nor the reverse.
  const network = networkOfChain(intent.chain);
  if (network === undefined) return refuse('WRONG_CHAIN', `${intent.chain} is not a Bitcoin chain`);
  if (network !== wallet.network) {
    return refuse('WRONG_CHAIN', `the intent is for ${intent.chain} but the wallet is on ${wallet.network}`);
  }
  if (!/^[1-9][0-9]{0,15}$/.test(intent.amount) || BigInt(intent.amount) > MAX_MONEY) {
    return refuse('INVALID_VALUE', 'intent amount is not a satoshi amount between 1 and 21 million BTC');
  }
  const amount = BigInt(intent.amount);
  const toScript = addressToScript(intent.to, network);
  if (toScript === undefined) {
    return refuse('UNEXPECTED_OUTPUT', `intent destination is not a standard address on ${network}`);
  }
  if (intent.outputs !== undefined)
    return verifyBatch(psbt, intent, intent.outputs, wallet, caps, maxChangeIndex);

  const analyzed = analyzePsbt(psbt, wallet);
  if (!analyzed.ok) return analyzed;
  const a = analyzed.value;

  // THREATS 23, 24: the destination exactly once, with exactly the amount; nothing else but our change.
  let destination: { address: string; amount: bigint } | undefined;
  let change: { index: number; value: bigint } | null = null;
  for (const [j, out] of a.outputs.entries()) {
    if (out.changeIndex !== undefined) {
      if (change !== null) return refuse('UNEXPECTED_OUTPUT', `output ${j} is a second change output`);
      change = { index: out.changeIndex, value: out.amount };
      continue;
    }
    if (!equalBytes(out.script, toScript)) {
      return refuse(
        'UNEXPECTED_OUTPUT',
        `output ${j} pays ${out.address ?? 'a non-standard script'}, not the intent's destination`,
      );
    }
    if (destination !== undefined) {
      return refuse('UNEXPECTED_OUTPUT', `output ${j} pays the destination a second time`);
    }
    if (out.amount !== amount) {
      return refuse(
        'UNEXPECTED_OUTPUT',
        `output ${j} pays ${out.amount} sat where the intent says ${amount} sat`,
      );
    }
    destination = { address: intent.to, amount };
  }
  if (destination === undefined) return refuse('UNEXPECTED_OUTPUT', 'no output pays the intent destination');
  return checkChangeAndFee(a, destination, [destination], change, caps, maxChangeIndex);
}

type Analyzed = Extract<ReturnType<typeof analyzePsbt>, { ok: true }>['value'];

/**
 * A batch (issue 13): the non-change outputs are exactly `outputs` as a
 * multiset of (script, amount). Each expected payment is consumed once, so
 * a duplicated, dropped, added or altered output leaves either an output
 * with no payment to match or a payment with no output.
 */
function verifyBatch(
  psbt: Uint8Array,
  intent: IntentTransfer,
  outputs: readonly { readonly to: string; readonly amount: string }[],
  wallet: WalletDescriptor,
  caps: FeeCaps,
  maxChangeIndex: number,
): Result<VerifiedPsbt> {
  const network = wallet.network;
  const expected = new Map<string, number[]>();
  let total = 0n;
  for (const [n, o] of outputs.entries()) {
    if (!/^[1-9][0-9]{0,15}$/.test(o.amount) || BigInt(o.amount) > MAX_MONEY) {
      return refuse(
        'INVALID_VALUE',
        `outputs[${n}] amount is not a satoshi amount between 1 and 21 million BTC`,
      );
    }
    const script = addressToScript(o.to, network);
    if (script === undefined) {
      return refuse('UNEXPECTED_OUTPUT', `outputs[${n}] destination is not a standard address on ${network}`);
    }
    total += BigInt(o.amount);
    const key = `${hex(script)}:${o.amount}`;
    const list = expected.get(key) ?? [];
    list.push(n);
    expected.set(key, list);
  }
  if (total !== BigInt(intent.amount) || outputs[0]?.to !== intent.to) {
    return refuse('UNEXPECTED_OUTPUT', 'the intent amount and destination do not match its outputs');
  }

  const analyzed = analyzePsbt(psbt, wallet);
  if (!analyzed.ok) return analyzed;
  const a = analyzed.value;

  let change: { index: number; value: bigint } | null = null;
  for (const [j, out] of a.outputs.entries()) {
    if (out.changeIndex !== undefined) {
      if (change !== null) return refuse('UNEXPECTED_OUTPUT', `output ${j} is a second change output`);
      change = { index: out.changeIndex, value: out.amount };
      continue;
    }
    const list = expected.get(`${hex(out.script)}:${out.amount}`);
    if (list === undefined || list.length === 0) {
      return refuse(
        'UNEXPECTED_OUTPUT',
        `output ${j} pays ${out.amount} sat to ${out.address ?? 'a non-standard script'}, which no remaining output of the batch names`,
      );
    }
    list.shift();
  }
  const missing: number[] = [];
  for (const list of expected.values()) missing.push(...list);
  if (missing.length > 0) {
    missing.sort((x, y) => x - y);
    const n = missing[0]!;
    return refuse(
      'UNEXPECTED_OUTPUT',
      `no output pays outputs[${n}] (${outputs[n]!.amount} sat to ${outputs[n]!.to})` +
        (missing.length > 1 ? ` nor ${missing.length - 1} more of the batch` : ''),
    );
  }
  const paid = outputs.map((o) => ({ address: o.to, amount: BigInt(o.amount) }));
  return checkChangeAndFee(a, paid[0]!, paid, change, caps, maxChangeIndex);
}

function hex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

/** The checks after the outputs: change within the gap limit, fee and fee rate under the caps. */
function checkChangeAndFee(
  a: Analyzed,
  destination: { address: string; amount: bigint },
  outputs: readonly { address: string; amount: bigint }[],
  change: { index: number; value: bigint } | null,
  caps: FeeCaps,
  maxChangeIndex: number,
): Result<VerifiedPsbt> {
  // Issue 8, item 4: change where a restored wallet would never look is lost coins.
  if (change !== null) {
    const spentChange = a.inputs.filter((i) => i.branch === 1).map((i) => i.index);
    const limit = Math.max(maxChangeIndex, changeIndexLimit(Math.max(-1, ...spentChange)));
    if (change.index > limit) {
      return refuse(
        'CHANGE_BEYOND_GAP',
        `change goes to index ${change.index} of the change branch, past ${limit}: ` +
          `more than ${CHANGE_GAP_LIMIT} unused addresses beyond the last one used, ` +
          'where a wallet restored from the descriptor would never find it',
        { changeIndex: change.index, maxChangeIndex: limit },
      );
    }
  }

  // THREATS 25.
  if (a.fee > caps.maxFee) {
    return refuse('FEE_TOO_HIGH', `fee ${a.fee} sat exceeds the cap of ${caps.maxFee} sat`, {
      fee: a.fee.toString(),
      maxFee: caps.maxFee.toString(),
    });
  }
  if (a.feeRate > caps.maxFeeRate) {
    return refuse(
      'FEE_TOO_HIGH',
      `fee rate ${a.feeRate} sat/vB exceeds the cap of ${caps.maxFeeRate} sat/vB`,
      {
        feeRate: a.feeRate.toString(),
        maxFeeRate: caps.maxFeeRate.toString(),
      },
    );
  }

  return accept({
    txid: a.txid,
    fee: a.fee,
    vsize: a.vsize,
    feeRate: a.feeRate,
    inputs: a.inputs.map((i) => ({
      txid: i.txid,
      vout: i.vout,
      value: i.value,
      branch: i.branch,
      index: i.index,
    })),
    destination,
    outputs,
    change,
  });
}

/**
 * The change-branch index an output of a PSBT names in its BIP 32
 * derivations, or null when no output names one. It proves nothing by
 * itself: only for PSBTs whose change was already verified (a signer's own
 * ledger of what it signed).
 */
export function claimedChangeIndex(psbt: Uint8Array): number | null {
  const parsed = parsePsbt(psbt);
  if (!parsed.ok) return null;
  let found: number | null = null;
  for (const out of parsed.value.outputs) {
    for (const [, origin] of out.bip32Derivation ?? []) {
      const path = origin.path;
      if (path.length >= 2 && path[path.length - 2] === 1) {
        found = Math.max(found ?? -1, path[path.length - 1]!);
      }
    }
  }
  return found;
}

export interface PsbtSummary {
  readonly txid: string;
  readonly version: number;
  readonly lockTime: number;
  /** Signatures each input needs. */
  readonly requiredSignatures: number;
  readonly inputs: readonly {
    readonly txid: string;
    readonly vout: number;
    readonly value: bigint;
    readonly address: string;
    readonly branch: 0 | 1;
    readonly index: number;
    readonly signatures: number;
  }[];
  readonly outputs: readonly {
    /** null for a script without a standard address. */
    readonly address: string | null;
    /** The output script, hex. */
    readonly script: string;
    readonly amount: bigint;
    readonly isChange: boolean;
    readonly changeIndex: number | null;
  }[];
  readonly fee: bigint;
  readonly vsize: number;
  readonly feeRate: bigint;
}

/**
 * What an approver's client shows: inputs and outputs as proven against the
 * wallet (analyze.ts), each output with its address and whether it is the
 * wallet's change, and the fee. It makes no judgement against an intent.
 */
export function decodePsbt(psbt: Uint8Array, wallet: WalletDescriptor): Result<PsbtSummary> {
  const analyzed = analyzePsbt(psbt, wallet);
  if (!analyzed.ok) return analyzed;
  const a = analyzed.value;
  return accept({
    txid: a.txid,
    version: a.version,
    lockTime: a.lockTime,
    requiredSignatures: wallet.m,
    inputs: a.inputs.map((i) => ({
      txid: i.txid,
      vout: i.vout,
      value: i.value,
      address: i.address,
      branch: i.branch,
      index: i.index,
      signatures: i.signatures,
    })),
    outputs: a.outputs.map((o) => ({
      address: o.address ?? null,
      script: Buffer.from(o.script).toString('hex'),
      amount: o.amount,
      isChange: o.changeIndex !== undefined,
      changeIndex: o.changeIndex ?? null,
    })),
    fee: a.fee,
    vsize: a.vsize,
    feeRate: a.feeRate,
  });
}
