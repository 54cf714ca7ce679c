/**
 * One error type with a stable `code`.
 *
 * Codes are part of the public interface: clients, the HTTP layer and the CLI
 * switch on them, and docs/threats.md names many of them. A code is never renamed;
 * new ones are added at the end of their group (test/error-codes.test.ts pins
 * the list). Messages are for people and may change. Nothing secret ever goes
 * into a message or `details`.
 */

/** Decoding: bad bytes from outside (strict JSON, schemas, canonical forms). */
export const DECODING_ERROR_CODES = [
  'INVALID_JSON',
  'INVALID_UTF8',
  'TRAILING_DATA',
  'TOO_DEEP',
  'TOO_LARGE',
  'DUPLICATE_KEY',
  'UNKNOWN_FIELD',
  'MISSING_FIELD',
  'WRONG_TYPE',
  'INVALID_VALUE',
  'NON_CANONICAL_NUMBER',
  'NON_CANONICAL_AMOUNT',
  'NON_NFC_STRING',
  'LONE_SURROGATE',
  'NON_CANONICAL_ENCODING',
  /** A request body that is not JSON (the HTTP edge answers 415). */
  'UNSUPPORTED_MEDIA_TYPE',
  /**
   * A mixed-case 0x address whose EIP-55 checksum is wrong: a typo or a
   * doctored copy, never normalized silently (an all-lower-case one is
   * NON_CANONICAL_ENCODING: clients normalize it before signing).
   */
  'ADDRESS_CHECKSUM_INVALID',
] as const;

export const ERROR_CODES = [
  ...DECODING_ERROR_CODES,
  // Identity and sessions (THREATS 1-5)
  'SIGNATURE_REQUIRED',
  'BAD_SIGNATURE',
  'REPLAYED_REQUEST',
  'DEVICE_REVOKED',
  'UNKNOWN_DEVICE',
  'NOT_A_MEMBER',
  'NOT_AUTHORIZED',
  'BAD_PASSWORD',
  /** A device, member or signer added by governance that is still waiting out the delay. */
  'DEVICE_NOT_ACTIVE',
  // Request in transit and at rest (6-10)
  'INTENT_SIGNATURE_INVALID',
  'APPROVAL_SIGNATURE_INVALID',
  'QUORUM_NOT_MET',
  'INTENT_IMMUTABLE',
  'GOVERNANCE_SIGNATURE_INVALID',
  'GOVERNANCE_EQUIVOCATION',
  'GOVERNANCE_CHAIN_BROKEN',
  'GOVERNANCE_INVALID',
  /** The governance head a job names disagrees with the signer's verified chain (unsigned: no proof of a fork). */
  'GOVERNANCE_HEAD_MISMATCH',
  // Approvals (11-16)
  'SELF_APPROVAL',
  'DUPLICATE_APPROVER',
  'INTENT_REJECTED',
  'DUPLICATE_INTENT',
  'EXPIRED',
  'NOT_YET_VALID',
  'WRONG_ORG',
  /**
   * The intent's chain is not its wallet's or one the verifier serves; for a
   * Safe, a SafeTx whose EIP-712 domain names another chain id (THREATS 16).
   */
  'WRONG_CHAIN',
  /** An intent or approval whose lifetime exceeds the policy's bound, or whose createdAt is too far in the past. */
  'LIFETIME_TOO_LONG',
  // Policy and address book (17-22)
  'POLICY_DENIED',
  'UNKNOWN_WALLET',
  'DESTINATION_NOT_ALLOWED',
  'DESTINATION_NOT_ACTIVE',
  'LIMIT_EXCEEDED',
  'LOOKALIKE_ADDRESS',
  'FROZEN',
  'UNKNOWN_ASSET',
  /** A wallet whose scripts can equal an existing wallet's (same keys and threshold). */
  'WALLET_ALIAS',
  /** A wallet or signer added by governance that is still waiting out the delay. */
  'WALLET_NOT_ACTIVE',
  /**
   * A policy with a rule that allows with no approval (an automated tier,
   * issue 13) but is not bounded: it needs a per-transaction maximum and a
   * rolling limit per wallet and asset it covers. Refused wherever the
   * policy is decoded (genesis, policy.set, every signer).
   */
  'UNBOUNDED_AUTOMATION',
  /**
   * An internal transfer (issue 13) whose claimed destination wallet does not
   * prove out: `to` is not that wallet's address at the claimed index, the
   * index is past the bound, or the wallet pays itself. Refused by the
   * coordinator and by every signer, each deriving the address itself.
   */
  'DESTINATION_NOT_WALLET',
  // The transaction itself (23-29)
  'UNEXPECTED_OUTPUT',
  'FEE_TOO_HIGH',
  'FOREIGN_INPUT',
  'INPUT_AMOUNT_UNPROVEN',
  'SIGHASH_NOT_ALL',
  'UNSUPPORTED_TRANSACTION',
  'NO_APPROVED_INTENT',
  /**
   * A Safe transaction that is not a plain call: DELEGATECALL, a call to the
   * Safe itself (owners, threshold, modules, guard, fallback handler,
   * upgrade), or gas refunds (THREATS 28; Bybit 2025, WazirX 2024).
   */
  'OPERATION_FORBIDDEN',
  /** Calldata other than the plain transfer the intent names: token, recipient, amount (THREATS 29). */
  'CALLDATA_MISMATCH',
  'CHAIN_REJECTED',
  'INSUFFICIENT_FUNDS',
  /** Change to the wallet's own branch beyond the used change indexes plus the gap limit. */
  'CHANGE_BEYOND_GAP',
  /** A second, different Safe transaction for a Safe nonce this signer already signed (its ledger decides). */
  'SAFE_NONCE_REUSED',
  /**
   * The Safe on chain (singleton and its code hash, owners, threshold,
   * modules, guard, fallback handler, nonce) is not the one governance
   * describes, as read from the signer's own node: the signer refuses and freezes.
   */
  'SAFE_STATE_MISMATCH',
  /**
   * A fee bump (issue 13) whose replacement is not one: it spends none of the
   * inputs of a transaction signed for the intent (both could confirm), pays
   * a payee output differently, grows the change, does not raise the fee, or
   * names an intent this signer never signed or one already confirmed.
   */
  'NOT_A_REPLACEMENT',
  // Audit and operations (30-32)
  'AUDIT_CHAIN_BROKEN',
  'CHECKPOINT_INVALID',
  'NOT_FOUND',
  'CONFLICT',
  'RATE_LIMITED',
  'UNAVAILABLE',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

const CODE_SET: ReadonlySet<string> = new Set(ERROR_CODES);

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && CODE_SET.has(value);
}

export type ErrorDetails = Readonly<Record<string, string | number | boolean | null>>;

/**
 * Thrown for a caller's mistake or for bad bytes at a decoding boundary.
 * Verification of data returns a {@link Refusal} instead of throwing.
 */
export class CustosError extends Error {
  override readonly name = 'CustosError';
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.details = details;
  }

  toJSON(): { code: ErrorCode; message: string; details?: ErrorDetails } {
    return Object.keys(this.details).length > 0
      ? { code: this.code, message: this.message, details: this.details }
      : { code: this.code, message: this.message };
  }
}

/** A decision that something is not allowed, with the stable code that says why. */
export interface Refusal {
  readonly ok: false;
  readonly code: ErrorCode;
  readonly message: string;
  readonly details?: ErrorDetails;
}

export interface Accepted<T> {
  readonly ok: true;
  readonly value: T;
}

export type Result<T> = Accepted<T> | Refusal;

export function refuse(code: ErrorCode, message: string, details?: ErrorDetails): Refusal {
  return details === undefined ? { ok: false, code, message } : { ok: false, code, message, details };
}

export function accept<T>(value: T): Accepted<T> {
  return { ok: true, value };
}

/** Turns a thrown CustosError into a Refusal; anything else is rethrown (a bug, not bad data). */
export function refusalFrom(err: unknown): Refusal {
  if (err instanceof CustosError) {
    return refuse(err.code, err.message, err.details);
  }
  throw err;
}
