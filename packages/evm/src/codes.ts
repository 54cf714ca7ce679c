/**
 * The refusal codes of the EVM checks.
 *
 * Three already live in core's list (THREATS 28-29 and the chain check); the
 * others are EVM-only and are waiting to be added there. Until they are,
 * an {@link EvmRefusal} may carry one of them, and {@link EvmResult} is
 * core's `Result` widened by exactly these strings. Once core lists them,
 * `EvmErrorCode` collapses to `ErrorCode` and nothing here changes.
 */
import type { Accepted, ErrorCode, ErrorDetails } from '@custos/core';

/** DELEGATECALL, a call to the Safe itself, any call other than the plain transfer, gas refunds (THREATS 28). */
export const OPERATION_FORBIDDEN = 'OPERATION_FORBIDDEN' satisfies ErrorCode;
/** The plain transfer, but of another token, to another recipient or for another amount (THREATS 29). */
export const CALLDATA_MISMATCH = 'CALLDATA_MISMATCH' satisfies ErrorCode;
/** A SafeTx whose EIP-712 domain names another chain than the intent's. */
export const WRONG_CHAIN = 'WRONG_CHAIN' satisfies ErrorCode;

/** A second, different SafeTx for a Safe nonce the signer already signed (the signer's ledger decides). */
export const SAFE_NONCE_REUSED = 'SAFE_NONCE_REUSED';
/** The Safe on chain (singleton, its code, owners, threshold, modules, guard, fallback handler) is not the governed one. */
export const SAFE_STATE_MISMATCH = 'SAFE_STATE_MISMATCH';
/** A mixed-case 0x address whose EIP-55 checksum is wrong: a typo or a tampered copy, never normalized silently. */
export const ADDRESS_CHECKSUM_INVALID = 'ADDRESS_CHECKSUM_INVALID';

/** The EVM codes core does not list yet; the core owner appends them to ERROR_CODES. */
export const EVM_CODES_FOR_CORE = [SAFE_NONCE_REUSED, SAFE_STATE_MISMATCH, ADDRESS_CHECKSUM_INVALID] as const;

export type EvmOnlyCode = (typeof EVM_CODES_FOR_CORE)[number];
export type EvmErrorCode = ErrorCode | EvmOnlyCode;

/** Core's Refusal with the EVM-only codes allowed. */
export interface EvmRefusal {
  readonly ok: false;
  readonly code: EvmErrorCode;
  readonly message: string;
  readonly details?: ErrorDetails;
}

export type EvmResult<T> = Accepted<T> | EvmRefusal;

export function refuseEvm(code: EvmErrorCode, message: string, details?: ErrorDetails): EvmRefusal {
  return details === undefined ? { ok: false, code, message } : { ok: false, code, message, details };
}
