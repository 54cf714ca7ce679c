/**
 * The signer's decision on one EVM Safe job (issue 9, THREATS 28-29): a pure
 * function returning a Result, like {@link decideJob} for Bitcoin, whose
 * first checks it shares. The shell (signer.ts) reads the Safe's state from
 * this signer's own node before the decision (the only I/O), loads the rest
 * from its store inside one exclusive transaction, and persists what this
 * returns (the ledger row and the Safe nonce it used) before the signature
 * leaves the process.
 *
 * The coordinator's `safeTx` is a proposal, never an instruction. The signer
 * builds the one SafeTx the intent allows (`buildTransferSafeTx`: a native
 * transfer to the recipient or `transfer(recipient, amount)` on the
 * registered token; CALL; no gas refund) and signs the EIP-712 hash it
 * computed itself, so what it signs is what it checked (Bybit 2025: the
 * owners signed a hash their screens did not describe).
 *
 * Checks, in order; the first failing one decides:
 *  1. this signer's own freeze, then the organization's        FROZEN
 *  2. the intent can be digested                               INTENT_SIGNATURE_INVALID
 *  3. the wallet is a governed Safe, the asset registered      UNKNOWN_WALLET, WRONG_CHAIN, UNKNOWN_ASSET
 *  4. one intent, one SafeTx (THREATS 14): an intent signed before gets its
 *     stored answer for the same SafeTx, DUPLICATE_INTENT for any other
 *  5. the policy, exactly as for Bitcoin (signatures, approvals, rolling
 *     limits per asset from this signer's ledger, look-alikes)
 *  6. this signer's EVM key is an owner of the Safe            UNAVAILABLE, NOT_AUTHORIZED
 *  7. state attestation from this signer's own node: the
 *     singleton, its code hash, owners, threshold, modules,
 *     guard and fallback handler are the governed ones         SAFE_STATE_MISMATCH (the shell freezes)
 *     (no node configured for the chain, or no answer)         UNAVAILABLE
 *  8. the proposal is exactly the plain transfer               WRONG_CHAIN, UNKNOWN_WALLET,
 *                                                              OPERATION_FORBIDDEN, CALLDATA_MISMATCH
 *  9. the nonce: never a second SafeTx for a nonce this signer
 *     signed, nor one the Safe already used on chain           SAFE_NONCE_REUSED
 *     and exactly the next one: its own ledger's next,
 *     or the on-chain nonce if that is higher                  CALLDATA_MISMATCH
 * 10. sign the hash computed in step 8 (secp256k1, RFC 6979, low s)
 */
import {
  type Asset,
  accept,
  type Digest,
  type EvmSafeWallet,
  type GovernanceState,
  isSafeWallet,
  type JobSafeTx,
  type LedgerView,
  type Millis,
  type Result,
  refuse,
  type SignerJob,
  type SignerResult,
} from '@custos/core';
import {
  type Address,
  checkSafeState,
  checkSafeTxIsPlainTransfer,
  type EvmAsset,
  type EvmResult,
  type ObservedSafeState,
  type SafeTx,
  signSafeTxHash,
  ZERO_ADDRESS,
} from '@custos/evm';
import { checkPolicy, checkStanding } from './decision.js';

/** 0x-prefixed hex, as @custos/evm (viem) spells bytes. */
type Hex = `0x${string}`;

/**
 * What this signer's own node said about the Safe, read by the shell just
 * before the decision: the state, no node configured for the chain, a read
 * that failed, or attestation switched off (benchmarks only; never from a
 * configuration file).
 */
export type Attestation =
  | { readonly kind: 'read'; readonly state: ObservedSafeState }
  | { readonly kind: 'unconfigured'; readonly chain: string }
  | { readonly kind: 'failed'; readonly message: string }
  | { readonly kind: 'off' };

/** What this signer signed before at the proposal's nonce of this Safe, from its own ledger. */
export interface SignedNonce {
  readonly intent: string;
  readonly safeTxHash: string;
}

export interface EvmDecisionInput {
  readonly job: SignerJob;
  readonly digest: Digest | null;
  readonly state: GovernanceState;
  readonly now: Millis;
  readonly chains: readonly string[];
  /** This signer's id (its configuration's, not the job's claim). */
  readonly signerId: string;
  /** This signer's Safe owner key; null when its keystore has none. */
  readonly evmSecret: Uint8Array | null;
  /** The address of {@link evmSecret}. */
  readonly evmAddress: Address | null;
  readonly freeze: { readonly reason: string } | null;
  /** What this signer signed for this intent before, if anything (the receipt's txid is the safeTxHash). */
  readonly prior: { readonly txid: string; readonly result: SignerResult } | null;
  readonly ledger: LedgerView;
  /** The next nonce by this signer's own ledger for the intent's Safe: the highest it signed plus one, or 0. */
  readonly nextNonce: bigint;
  /** What this signer signed at the proposal's nonce of that Safe, if anything. */
  readonly signedAtNonce: SignedNonce | null;
  readonly attestation: Attestation;
}

export type EvmDecision =
  | {
      readonly kind: 'signed';
      /** The safeTxHash, 64 lower-case hex digits without 0x (the receipt's txid). */
      readonly safeTxHash: string;
      /** r || s || v, 0x and lower-case hex. */
      readonly safeSignature: string;
      readonly chain: string;
      readonly safe: Address;
      readonly nonce: bigint;
    }
  | { readonly kind: 'repeat'; readonly result: SignerResult };

/** Codes an EVM refusal raises a critical alert for: each is someone trying to make the Safe do something else. */
export const EVM_CRITICAL_CODES = [
  'WRONG_CHAIN',
  'UNKNOWN_WALLET',
  'OPERATION_FORBIDDEN',
  'CALLDATA_MISMATCH',
  'SAFE_NONCE_REUSED',
  'SAFE_STATE_MISMATCH',
] as const;

/** Decides one EVM job. Pure: the same input gives the same Result; never throws for a refusal. */
export function decideEvmJob(input: EvmDecisionInput): Result<EvmDecision> {
  const standing = checkStanding(input);
  if (!standing.ok) return standing;
  const digest = standing.value;
  const { job, state } = input;
  const intent = job.intent.intent;
  const proposed = job.safeTx;
  if (proposed === undefined) return refuse('UNSUPPORTED_TRANSACTION', 'the job carries no safeTx');

  const target = safeAndAsset(state, intent.wallet, intent.asset);
  if (!target.ok) return target;
  const { wallet, asset } = target.value;
  const chainId = Number(wallet.chain.slice('eip155:'.length));
  const proposal = proposalOf(proposed);

  // THREATS 14: one intent, one SafeTx, ever; the same SafeTx again gets the same signature.
  if (input.prior !== null) {
    const again = plainTransfer(proposal, wallet, asset, chainId, intent.to, intent.amount);
    if (!again.ok) return again;
    if (bare(again.value.safeTxHash) === input.prior.txid) {
      return accept({ kind: 'repeat', result: input.prior.result });
    }
    return refuse('DUPLICATE_INTENT', `intent ${digest} was already signed for SafeTx ${input.prior.txid}`);
  }

  const allowed = checkPolicy(input);
  if (!allowed.ok) return allowed;

  if (input.evmSecret === null || input.evmAddress === null) {
    return refuse('UNAVAILABLE', 'this signer’s keystore holds no EVM key (made before EVM support)');
  }
  const seat = wallet.owners.find((o) => o.signer === input.signerId);
  if (seat === undefined || seat.address !== input.evmAddress) {
    return refuse(
      'NOT_AUTHORIZED',
      `this signer's EVM key ${input.evmAddress} is not an owner of Safe ${wallet.address} in governance`,
    );
  }

  const onChainNonce = attest(input.attestation, wallet);
  if (!onChainNonce.ok) return onChainNonce;

  const checked = plainTransfer(proposal, wallet, asset, chainId, intent.to, intent.amount);
  if (!checked.ok) return checked;
  const { tx, safeTxHash } = checked.value;

  const nonce = tx.nonce;
  if (input.signedAtNonce !== null) {
    return refuse(
      'SAFE_NONCE_REUSED',
      `this signer already signed SafeTx ${input.signedAtNonce.safeTxHash} at nonce ${nonce} of Safe ${wallet.address}`,
    );
  }
  const onChain = onChainNonce.value;
  if (onChain !== null && nonce < onChain) {
    return refuse(
      'SAFE_NONCE_REUSED',
      `nonce ${nonce} of Safe ${wallet.address} is already used on chain (the Safe is at ${onChain})`,
    );
  }
  const expected = onChain !== null && onChain > input.nextNonce ? onChain : input.nextNonce;
  if (nonce !== expected) {
    return refuse(
      'CALLDATA_MISMATCH',
      `the SafeTx has nonce ${nonce}; the next nonce of Safe ${wallet.address} for this signer is ${expected}`,
    );
  }

  // The hash this signer computed from the SafeTx it built, never one it was handed.
  const safeSignature = signSafeTxHash(safeTxHash, input.evmSecret);
  return accept({
    kind: 'signed',
    safeTxHash: bare(safeTxHash),
    safeSignature: safeSignature.toLowerCase(),
    chain: wallet.chain,
    safe: wallet.address as Address,
    nonce,
  });
}

/** The governed Safe of an intent and the registry entry of its asset on that Safe's chain. */
export function safeAndAsset(
  state: GovernanceState,
  walletId: string,
  assetId: string,
): Result<{ wallet: EvmSafeWallet; asset: EvmAsset }> {
  const wallet = state.wallets.get(walletId);
  if (wallet === undefined) return refuse('UNKNOWN_WALLET', `wallet ${walletId} is not in governance`);
  if (!isSafeWallet(wallet))
    return refuse('WRONG_CHAIN', `wallet ${walletId} is not a Safe: no SafeTx for it`);
  const registered: Asset | undefined = state.assets.get(assetId)?.value;
  if (registered === undefined || registered.chain !== wallet.chain || !wallet.assets.includes(assetId)) {
    return refuse(
      'UNKNOWN_ASSET',
      `asset ${assetId} is not registered for Safe ${wallet.id} on ${wallet.chain}`,
    );
  }
  const asset: EvmAsset =
    registered.kind === 'erc20'
      ? { kind: 'erc20', contract: registered.contract as Address }
      : { kind: 'native' };
  return accept({ wallet, asset });
}

/**
 * Step 7: the Safe on chain is the governed one (state attestation). The
 * on-chain nonce comes back for step 9; null only when attestation is off.
 */
function attest(attestation: Attestation, wallet: EvmSafeWallet): Result<bigint | null> {
  switch (attestation.kind) {
    case 'off':
      return accept(null);
    case 'unconfigured':
      return refuse(
        'UNAVAILABLE',
        `no trusted EVM node is configured for ${attestation.chain}: this signer signs for a Safe only after reading its state itself`,
      );
    case 'failed':
      return refuse(
        'UNAVAILABLE',
        `could not read Safe ${wallet.address} from this signer's node: ${attestation.message}`,
      );
    case 'read': {
      const checked = checkSafeState(attestation.state, {
        singleton: wallet.singleton as Address,
        singletonCodeHash: wallet.singletonCodeHash as Hex,
        owners: wallet.owners.map((o) => o.address as Address),
        threshold: BigInt(wallet.threshold),
        modules: (wallet.modules ?? []) as Address[],
        guard: (wallet.guard ?? ZERO_ADDRESS) as Address,
        fallbackHandler: wallet.fallbackHandler as Address,
      });
      if (!checked.ok) return fromEvm(checked, `Safe ${wallet.address}: `);
      return accept(checked.value.nonce);
    }
  }
}

interface Proposal {
  readonly chainId: bigint;
  readonly safe: Address;
  readonly tx: SafeTx;
}

function proposalOf(p: JobSafeTx): Proposal {
  return {
    chainId: BigInt(p.chainId),
    safe: p.safe as Address,
    tx: {
      to: p.to as Address,
      value: BigInt(p.value),
      data: p.data as Hex,
      operation: p.operation,
      safeTxGas: BigInt(p.safeTxGas),
      baseGas: BigInt(p.baseGas),
      gasPrice: BigInt(p.gasPrice),
      gasToken: p.gasToken as Address,
      refundReceiver: p.refundReceiver as Address,
      nonce: BigInt(p.nonce),
    },
  };
}

/**
 * Step 8: the proposal must be exactly the transfer the intent names, at the
 * proposal's own nonce (the nonce is judged in step 9, with its own codes).
 */
function plainTransfer(
  proposal: Proposal,
  wallet: EvmSafeWallet,
  asset: EvmAsset,
  chainId: number,
  to: string,
  amount: string,
): Result<{ tx: SafeTx; safeTxHash: Hex }> {
  // A chain id beyond 2^53 cannot be the governed one (evmChain bounds it): -1 stands for it.
  const proposedChain = proposal.chainId <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(proposal.chainId) : -1;
  const checked = checkSafeTxIsPlainTransfer(
    { chainId: proposedChain, safe: proposal.safe, tx: proposal.tx },
    {
      chainId,
      safe: wallet.address as Address,
      asset,
      to: to as Address,
      amount: BigInt(amount),
      nonce: proposal.tx.nonce,
    },
  );
  if (!checked.ok) return fromEvm(checked, '');
  return accept(checked.value);
}

/** @custos/evm's refusal as core's (every code it returns is in core's list now). */
function fromEvm<T>(r: Extract<EvmResult<T>, { ok: false }>, prefix: string): Result<never> {
  return refuse(r.code as Parameters<typeof refuse>[0], `${prefix}${r.message}`, r.details);
}

function bare(hash: Hex): string {
  return hash.slice(2).toLowerCase();
}
