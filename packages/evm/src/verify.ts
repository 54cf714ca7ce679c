/**
 * Verify-against-intent for a Safe transaction (THREATS 28-29): the last
 * check a signer makes before it signs a safeTxHash.
 *
 * The intent names one transfer: asset, recipient, amount, on one chain,
 * from one Safe. The proposal must be exactly the SafeTx
 * {@link buildTransferSafeTx} makes for it. The refusals are ordered so
 * that the code says what the proposal tried, not merely that it differs:
 *
 * 1. WRONG_CHAIN: the domain names another chain (a signature there is a
 *    valid signature for a twin Safe at the same address).
 * 2. UNKNOWN_WALLET: the domain names another Safe.
 * 3. OPERATION_FORBIDDEN: DELEGATECALL (Bybit, Feb 2025: the Safe
 *    delegatecalled a trojan whose `transfer` wrote storage slot 0, the
 *    singleton); a call to the Safe itself (WazirX, Jul 2024: an upgrade;
 *    also addOwner, changeThreshold, enableModule, setGuard,
 *    setFallbackHandler); any gas refund (gasPrice, safeTxGas, baseGas,
 *    gasToken or refundReceiver set: Safe pays the refund to
 *    refundReceiver); calldata that is not the plain transfer (Radiant,
 *    Oct 2024: `transferOwnership` of the lending pools).
 * 4. CALLDATA_MISMATCH: the plain transfer, but another token, recipient,
 *    amount, value or nonce.
 *
 * Pure: everything comes in as arguments.
 */
import { accept } from '@custos/core';
import type { Address, Hex } from 'viem';
import { sameAddress, ZERO_ADDRESS } from './address.js';
import { CALLDATA_MISMATCH, type EvmResult, OPERATION_FORBIDDEN, refuseEvm, WRONG_CHAIN } from './codes.js';
import { decodeErc20Transfer } from './erc20.js';
import { buildTransferSafeTx, type EvmAsset, OPERATION_CALL, type SafeTx, safeTxHash } from './safe-tx.js';

/** What the approved intent and governance say. */
export interface ExpectedTransfer {
  readonly chainId: number;
  readonly safe: Address;
  readonly asset: EvmAsset;
  readonly to: Address;
  readonly amount: bigint;
  readonly nonce: bigint;
}

/** What is proposed for signing: the SafeTx and its EIP-712 domain. */
export interface SafeTxProposal {
  readonly chainId: number;
  readonly safe: Address;
  readonly tx: SafeTx;
}

/** An accepted proposal: the transaction and the hash to sign, computed here. */
export interface VerifiedSafeTx {
  readonly tx: SafeTx;
  readonly safeTxHash: Hex;
}

const SAFE_SELF_CALL_REASON =
  'a call to the Safe itself changes the Safe (owners, threshold, modules, guard, upgrade)';

function isEmpty(data: Hex): boolean {
  return data.length === 2;
}

/** Any field that makes the Safe pay a refund to someone (Safe.sol handlePayment). */
function refundField(tx: SafeTx): string | undefined {
  if (tx.gasPrice !== 0n) return 'gasPrice';
  if (tx.safeTxGas !== 0n) return 'safeTxGas';
  if (tx.baseGas !== 0n) return 'baseGas';
  if (!sameAddress(tx.gasToken, ZERO_ADDRESS)) return 'gasToken';
  if (!sameAddress(tx.refundReceiver, ZERO_ADDRESS)) return 'refundReceiver';
  return undefined;
}

/** Checks that `proposal` is exactly the plain transfer `expected` names; returns the hash to sign. */
export function checkSafeTxIsPlainTransfer(
  proposal: SafeTxProposal,
  expected: ExpectedTransfer,
): EvmResult<VerifiedSafeTx> {
  const { tx } = proposal;
  if (proposal.chainId !== expected.chainId) {
    return refuseEvm(WRONG_CHAIN, 'the SafeTx is for another chain', {
      expected: expected.chainId,
      proposed: proposal.chainId,
    });
  }
  if (!sameAddress(proposal.safe, expected.safe)) {
    return refuseEvm('UNKNOWN_WALLET', 'the SafeTx is for another Safe', { proposed: proposal.safe });
  }
  if (tx.operation !== OPERATION_CALL) {
    return refuseEvm(
      OPERATION_FORBIDDEN,
      'DELEGATECALL runs foreign code with the Safe’s storage and funds',
      {
        operation: tx.operation,
        to: tx.to,
      },
    );
  }
  if (sameAddress(tx.to, expected.safe)) {
    return refuseEvm(OPERATION_FORBIDDEN, SAFE_SELF_CALL_REASON, { selector: tx.data.slice(0, 10) });
  }
  const refund = refundField(tx);
  if (refund !== undefined) {
    return refuseEvm(OPERATION_FORBIDDEN, 'a gas refund pays the Safe’s funds to the refund receiver', {
      field: refund,
      refundReceiver: tx.refundReceiver,
    });
  }
  if (!isEmpty(tx.data) && !decodeErc20Transfer(tx.data).ok) {
    return refuseEvm(OPERATION_FORBIDDEN, 'the call is not a plain transfer', {
      selector: tx.data.slice(0, 10),
      to: tx.to,
    });
  }
  const want = buildTransferSafeTx(expected);
  const differs = differingField(tx, want);
  if (differs !== undefined) {
    return refuseEvm(CALLDATA_MISMATCH, 'the transfer is not the one the intent names', { field: differs });
  }
  return accept({ tx: want, safeTxHash: safeTxHash(expected.safe, expected.chainId, want) });
}

/** The first field in which a plain transfer differs from the expected one (operation and gas fields checked before). */
function differingField(tx: SafeTx, want: SafeTx): string | undefined {
  if (!sameAddress(tx.to, want.to)) return isEmpty(want.data) ? 'recipient' : 'token';
  if (tx.value !== want.value) return 'value';
  if (tx.data.toLowerCase() !== want.data.toLowerCase()) {
    const got = decodeErc20Transfer(tx.data);
    const wanted = decodeErc20Transfer(want.data);
    if (got.ok && wanted.ok) {
      return sameAddress(got.value.to, wanted.value.to) ? 'amount' : 'recipient';
    }
    return 'data';
  }
  if (tx.nonce !== want.nonce) return 'nonce';
  return undefined;
}
