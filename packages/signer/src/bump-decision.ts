/**
 * The signer's decision on a fee bump job (issue 13, BIP 125): a job that
 * carries a signed `bump` and a replacement PSBT for an intent. Pure, like
 * decideJob (decision.ts), which hands a job with a bump here after this
 * signer's freeze, the organization's and the wallet alias are checked.
 *
 * A bump is not a new withdrawal: the intent's policy (rules, approvals,
 * limits) was judged when this signer signed the original, and the amount
 * counted in its ledger then. So the policy is not evaluated again (the
 * intent and its approvals may have expired since), and the replacement is
 * recorded beside the original, not as a second ledger entry: the amount
 * counts once. What makes that safe is that the replacement can only ever
 * confirm instead of what this signer signed, never beside it.
 *
 * Checks, in order; the first failing one decides:
 *  1. this signer signed the intent (its own ledger)             NOT_A_REPLACEMENT
 *  2. the bump: the intent's digest, signed by its requester on an active
 *     device, requester role, lifetime, clock (core checkBump)
 *  3. the PSBT decodes and is the wallet's (analyzePsbt); the same replacement
 *     again gets its stored answer
 *  4. it replaces every transaction this signer signed for the intent: an
 *     input of each, payee outputs identical, change only lower, fee above
 *     each as a node requires (verifyReplacement)               NOT_A_REPLACEMENT
 *  5. no more fee than the bump asks                             FEE_TOO_HIGH
 *  6. the intent against the PSBT as for the original (verifyPsbt): outputs,
 *     change within the gap limit, fee under the caps in force  FEE_TOO_HIGH, ...
 *  7. signing the very bytes verified
 */
import {
  analyzePsbt,
  changeIndexLimit,
  dustThreshold,
  networkOfChain,
  type PsbtAnalysis,
  parseDescriptor,
  psbtFromBase64,
  psbtToBase64,
  signPsbt,
  verifyPsbt,
  verifyReplacement,
} from '@custos/bitcoin/sign';
import {
  accept,
  checkBump,
  type Digest,
  feeCapsFor,
  isBitcoinWallet,
  policiesInForce,
  type Result,
  refuse,
  type SignerResult,
} from '@custos/core';
import type { DecisionInput } from './decision.js';

/** What this signer signed before as a replacement for the intent of a job. */
export interface SignedReplacement {
  readonly txid: string;
  readonly result: SignerResult;
}

export type BumpDecision =
  /** Sign the replacement; the shell records it beside the original's ledger row. */
  | {
      readonly kind: 'replacement';
      readonly txid: string;
      readonly psbt: string;
      readonly bump: Digest;
      /** The original transaction's txid (the ledger row's). */
      readonly replaces: string;
    }
  /** The same replacement again: the stored answer. */
  | { readonly kind: 'repeat'; readonly result: SignerResult };

export function decideBump(input: DecisionInput): Result<BumpDecision> {
  const { job, state, now } = input;
  const intent = job.intent.intent;
  const signed = job.bump;
  if (signed === undefined) throw new Error('decideBump: the job carries no bump');
  // 1. Only what this signer signed can it replace; the original is its own ledger's, never the job's.
  const prior = input.prior;
  if (prior === null || prior.result.psbt === undefined) {
    return refuse(
      'NOT_A_REPLACEMENT',
      `this signer never signed intent ${input.digest}: there is nothing of its own to replace`,
    );
  }
  // 2.
  const bump = checkBump(state, signed, intent, now);
  if (!bump.ok) return bump;

  // 3.
  const wallet = state.wallets.get(intent.wallet);
  const network = wallet === undefined ? undefined : networkOfChain(wallet.chain);
  if (wallet === undefined || network === undefined || !isBitcoinWallet(wallet)) {
    return refuse('UNKNOWN_WALLET', `wallet ${intent.wallet} is not a Bitcoin wallet in governance`);
  }
  const descriptor = parseDescriptor(wallet.descriptor, network);
  if (!descriptor.ok)
    return refuse('GOVERNANCE_INVALID', `wallet descriptor does not parse: ${descriptor.message}`);
  if (job.psbt === undefined) return refuse('UNSUPPORTED_TRANSACTION', 'the job carries no PSBT');
  const bytes = psbtFromBase64(job.psbt);
  if (!bytes.ok) return refuse(bytes.code, `the PSBT does not decode: ${bytes.message}`);
  const replacement = analyzePsbt(bytes.value, descriptor.value);
  if (!replacement.ok) return replacement;
  const again = (input.replacements ?? []).find((r) => r.txid === replacement.value.txid);
  if (again !== undefined) return accept({ kind: 'repeat', result: again.result });

  // 4. Every transaction this signer signed for the intent, the original first.
  const earlier: PsbtAnalysis[] = [];
  for (const r of [{ txid: prior.txid, result: prior.result }, ...(input.replacements ?? [])]) {
    const own = r.result.psbt === undefined ? null : psbtFromBase64(r.result.psbt);
    const analyzed = own?.ok === true ? analyzePsbt(own.value, descriptor.value) : null;
    if (analyzed === null || !analyzed.ok) {
      return refuse('INTERNAL', `the transaction ${r.txid} this signer signed does not analyze again`);
    }
    earlier.push(analyzed.value);
  }
  const replaces = verifyReplacement(replacement.value, earlier);
  if (!replaces.ok) return replaces;

  // 5. The requester asked for a fee rate; a coordinator may not spend more of the change than that
  // (the original's size at that rate, plus, when the change is dropped, what was left as dust).
  const original = earlier[0]!;
  const originalChange = original.outputs.find((o) => o.changeIndex !== undefined);
  const dust =
    replaces.value.change === null && originalChange !== undefined
      ? dustThreshold(originalChange.script)
      : 0n;
  const asked = BigInt(signed.bump.feeRate) * BigInt(original.vsize) + dust;
  if (replacement.value.fee > asked) {
    return refuse(
      'FEE_TOO_HIGH',
      `the replacement pays ${replacement.value.fee} sat, more than the ${signed.bump.feeRate} sat/vB the bump asks (${asked} sat)`,
    );
  }

  // 6. The intent against the replacement, as for any transaction: the caps in force now.
  const caps = feeCapsFor(policiesInForce(state, now), intent);
  if (caps === null) return refuse('FEE_TOO_HIGH', `no fee cap is set for ${intent.wallet}/${intent.asset}`);
  const verified = verifyPsbt(
    bytes.value,
    intent,
    descriptor.value,
    caps,
    changeIndexLimit(input.highestChange),
  );
  if (!verified.ok) return verified;

  // 7.
  const done = signPsbt(bytes.value, input.key, descriptor.value);
  if (!done.ok) return done;
  if (done.value.signed === 0) return refuse('FOREIGN_INPUT', 'this signer holds no key for these inputs');
  return accept({
    kind: 'replacement',
    txid: verified.value.txid,
    psbt: psbtToBase64(done.value.psbt),
    bump: bump.value,
    replaces: prior.txid,
  });
}
