/**
 * The signer's decision on one job (issue 11: a pure function returning a
 * Result). The shell (signer.ts) loads what it needs from the signer's own
 * store inside one exclusive transaction, calls {@link decideJob}, and
 * persists what it returns (the ledger row and the decision) before the
 * signature leaves the process. Nothing here writes, reads a clock or throws
 * for a refusal: every refusal is a Result with a stable code.
 *
 * Checks, in order; the first failing one decides:
 *  1. this signer's own freeze, then the organization's        FROZEN
 *  2. the intent can be digested                               INTENT_SIGNATURE_INVALID
 *  3. the wallet is not an alias of an earlier wallet           WALLET_ALIAS (issue 8, item 2)
 *  4. one intent, one transaction (THREATS 14): an intent signed before gets
 *     its stored answer for the same transaction (after the PSBT checks of
 *     step 6), DUPLICATE_INTENT for any other
 *  5. the policy (core's evaluate with this signer's clock and ledger view):
 *     governance, intent and approval signatures, devices, roles, lifetimes,
 *     look-alikes, rules, rolling limits, approvals, cancel window
 *  6. the PSBT against the intent (verifyPsbt): inputs the wallet's with
 *     proven amounts, outputs exactly the destination plus the wallet's own
 *     change within the gap limit, fee under the caps, SIGHASH_ALL
 *  7. signing the very bytes verified                          FOREIGN_INPUT if nothing is this key's
 *
 * A job carrying a fee bump (issue 13) is decided by decideBump
 * (bump-decision.ts) after step 3: it replaces what this signer signed.
 */
import {
  changeIndexLimit,
  networkOfChain,
  parseDescriptor,
  psbtFromBase64,
  psbtToBase64,
  refuseWalletAlias,
  type SignerKey,
  signPsbt,
  type VerifiedPsbt,
  verifyPsbt,
  type WalletDescriptor,
  walletReceiveAddress,
} from '@custos/bitcoin/sign';
import {
  accept,
  type Digest,
  evaluate,
  feeCapsFor,
  type GovernanceState,
  type Intent,
  isBitcoinWallet,
  type LedgerView,
  type Millis,
  type Policy,
  policiesInForce,
  type Result,
  refuse,
  requireAllow,
  type SignerJob,
  type SignerResult,
  type Wallet,
} from '@custos/core';
import { type BumpDecision, decideBump, type SignedReplacement } from './bump-decision.js';

/** What a decision needs, loaded by the shell from the signer's own store and configuration. */
export interface DecisionInput {
  readonly job: SignerJob;
  /** The intent's digest; null when it cannot be computed. */
  readonly digest: Digest | null;
  /** This signer's verified governance state. */
  readonly state: GovernanceState;
  /** This signer's clock. */
  readonly now: Millis;
  /** Chains this signer serves. */
  readonly chains: readonly string[];
  readonly key: SignerKey;
  /** This signer's own freeze (equivocation evidence), if any. */
  readonly freeze: { readonly reason: string } | null;
  /** What this signer signed for this intent before, if anything. */
  readonly prior: { readonly txid: string; readonly result: SignerResult } | null;
  /** This signer's ledger, as the questions the policy asks (rolling limits, history). */
  readonly ledger: LedgerView;
  /** The highest change index this signer signed change to in the intent's wallet; -1 for none. */
  readonly highestChange: number;
  /** Replacements this signer signed for this intent (fee bumps, issue 13), oldest first. */
  readonly replacements?: readonly SignedReplacement[];
}

export type Decision =
  /** Sign: the PSBT with this signer's signatures, for the shell to record and return. */
  | {
      readonly kind: 'signed';
      readonly txid: string;
      readonly psbt: string;
      readonly changeIndex: number | null;
    }
  /** The same transaction for an intent already signed: the stored answer again. */
  | { readonly kind: 'repeat'; readonly result: SignerResult }
  /** A fee bump's replacement (bump-decision.ts), recorded beside the original, not as a second entry. */
  | Extract<BumpDecision, { kind: 'replacement' }>;

/** Decides one job. Pure: the same input gives the same Result; never throws for a refusal. */
export function decideJob(input: DecisionInput): Result<Decision> {
  const { job, digest, state, now } = input;
  const standing = checkStanding(input);
  if (!standing.ok) return standing;
  const intent = job.intent.intent;
  const alias = checkAlias(state, intent);
  if (!alias.ok) return alias;
  // Issue 13: a fee bump replaces what this signer signed for the intent; it is not a second one.
  if (job.bump !== undefined) return decideBump(input);

  // THREATS 14: one intent, one transaction, ever. The same transaction again gets the same answer.
  if (input.prior !== null) {
    const verified = checkPsbt(input, intent, policiesInForce(state, now));
    if (!verified.ok) return verified;
    if (verified.value.txid === input.prior.txid)
      return accept({ kind: 'repeat', result: input.prior.result });
    return refuse(
      'DUPLICATE_INTENT',
      `intent ${digest} was already signed for transaction ${input.prior.txid}`,
    );
  }

  const policies = policiesInForce(state, now);
  const allowed = checkPolicy(input);
  if (!allowed.ok) return allowed;

  const verified = checkPsbt(input, intent, policies);
  if (!verified.ok) return verified;
  const { wallet, bytes } = verified.value;
  // Sign exactly the bytes that were verified, nothing re-read from the job.
  const signed = signPsbt(bytes, input.key, wallet);
  if (!signed.ok) return signed;
  if (signed.value.signed === 0) return refuse('FOREIGN_INPUT', 'this signer holds no key for these inputs');
  return accept({
    kind: 'signed',
    txid: verified.value.txid,
    psbt: psbtToBase64(signed.value.psbt),
    changeIndex: verified.value.change?.index ?? null,
  });
}

/** What every decision checks first, whatever the chain. */
export interface Standing {
  readonly digest: Digest | null;
  readonly freeze: { readonly reason: string } | null;
  readonly state: GovernanceState;
}

/**
 * Steps 1-2, shared by the Bitcoin and the EVM decision: this signer's own
 * freeze (equivocation, a Safe found changed on chain), then the
 * organization's; an intent that cannot be digested cannot have been signed.
 */
export function checkStanding(input: Standing): Result<Digest> {
  if (input.freeze !== null) return refuse('FROZEN', `this signer is frozen: ${input.freeze.reason}`);
  if (input.state.frozen !== null)
    return refuse('FROZEN', `the organization is frozen: ${input.state.frozen.reason}`);
  if (input.digest === null) return refuse('INTENT_SIGNATURE_INVALID', 'the intent cannot be digested');
  return accept(input.digest);
}

/**
 * Step 5, shared by the Bitcoin and the EVM decision: core's policy with this
 * signer's clock, governance and ledger (the rolling limits are sums over its
 * own ledger, per asset id, whatever chain the asset is on). An internal
 * transfer's destination wallet is proven here with this signer's own
 * derivation from the governed descriptor (DESTINATION_NOT_WALLET), whatever
 * the coordinator checked; the PSBT check then pays exactly that `to`.
 */
export function checkPolicy(
  input: Pick<DecisionInput, 'job' | 'state' | 'now' | 'chains' | 'ledger'>,
): Result<unknown> {
  return requireAllow(
    evaluate({
      state: input.state,
      intent: input.job.intent,
      approvals: input.job.approvals,
      ledger: input.ledger,
      now: input.now,
      chains: input.chains,
      receiveAddress: walletReceiveAddress,
    }),
  );
}

/**
 * Issue 8, item 2: a wallet whose scripts can equal an earlier wallet's
 * (the same keys and threshold in another descriptor text) would spend
 * that wallet's coins under its own limits. Checked from this signer's own
 * verified governance, whatever the coordinator checked.
 */
function checkAlias(state: GovernanceState, intent: Intent): Result<void> {
  const wallet = state.wallets.get(intent.wallet);
  // The policy refuses UNKNOWN_WALLET; only Bitcoin wallets have scripts to alias.
  if (wallet === undefined || !isBitcoinWallet(wallet)) return accept(undefined);
  const earlier: Wallet[] = [];
  for (const w of state.wallets.values()) {
    if (w.id === wallet.id) break;
    earlier.push(w);
  }
  const alias = refuseWalletAlias(wallet, earlier.filter(isBitcoinWallet));
  if (alias.ok) return accept(undefined);
  if (alias.code === 'WALLET_ALIAS') return refuse('WALLET_ALIAS', alias.message);
  // No identity, so no way to tell it from the others: never signed for.
  return refuse('GOVERNANCE_INVALID', `wallet ${wallet.id} cannot be told apart: ${alias.message}`);
}

function walletDescriptor(state: GovernanceState, intent: Intent): Result<WalletDescriptor> {
  const wallet = state.wallets.get(intent.wallet);
  if (wallet === undefined) return refuse('UNKNOWN_WALLET', `wallet ${intent.wallet} is not in governance`);
  const network = networkOfChain(wallet.chain);
  if (network === undefined || !isBitcoinWallet(wallet))
    return refuse('WRONG_CHAIN', `wallet chain ${wallet.chain} is not a Bitcoin chain`);
  // parseDescriptor returns the same parsed wallet for the same text, with its derived addresses cached.
  const parsed = parseDescriptor(wallet.descriptor, network);
  if (!parsed.ok) return refuse('GOVERNANCE_INVALID', `wallet descriptor does not parse: ${parsed.message}`);
  return parsed;
}

function checkPsbt(
  input: DecisionInput,
  intent: Intent,
  policies: readonly Policy[],
): Result<VerifiedPsbt & { readonly bytes: Uint8Array; readonly wallet: WalletDescriptor }> {
  const wallet = walletDescriptor(input.state, intent);
  if (!wallet.ok) return wallet;
  const caps = feeCapsFor(policies, intent);
  if (caps === null) return refuse('FEE_TOO_HIGH', `no fee cap is set for ${intent.wallet}/${intent.asset}`);
  if (input.job.psbt === undefined) return refuse('UNSUPPORTED_TRANSACTION', 'the job carries no PSBT');
  const psbt = psbtFromBase64(input.job.psbt);
  if (!psbt.ok) return refuse(psbt.code, `the PSBT does not decode: ${psbt.message}`);
  // Issue 8, item 4: change no further than the gap limit past the change this signer knows used
  // (its own ledger; verifyPsbt adds the change-branch inputs it proves).
  const verified = verifyPsbt(psbt.value, intent, wallet.value, caps, changeIndexLimit(input.highestChange));
  if (!verified.ok) return verified;
  return accept({ ...verified.value, bytes: psbt.value, wallet: wallet.value });
}
