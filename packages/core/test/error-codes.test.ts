import { describe, expect, it } from 'vitest';
import { DECODING_ERROR_CODES, ERROR_CODES } from '../src/index.js';

/**
 * The error codes are part of the public interface: clients, the HTTP API,
 * the CLI and docs/threats.md switch on them. This is the list as shipped, in
 * order. A code is never renamed, removed or moved; a new one is added at the
 * end of its group in src/errors.ts and at the same place here.
 */
const DECODING = [
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
  'UNSUPPORTED_MEDIA_TYPE',
  'ADDRESS_CHECKSUM_INVALID',
];

const PINNED = [
  '...decoding',
  // Identity and sessions (THREATS 1-5)
  'SIGNATURE_REQUIRED',
  'BAD_SIGNATURE',
  'REPLAYED_REQUEST',
  'DEVICE_REVOKED',
  'UNKNOWN_DEVICE',
  'NOT_A_MEMBER',
  'NOT_AUTHORIZED',
  'BAD_PASSWORD',
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
  'GOVERNANCE_HEAD_MISMATCH',
  // Approvals (11-16)
  'SELF_APPROVAL',
  'DUPLICATE_APPROVER',
  'INTENT_REJECTED',
  'DUPLICATE_INTENT',
  'EXPIRED',
  'NOT_YET_VALID',
  'WRONG_ORG',
  'WRONG_CHAIN',
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
  'WALLET_ALIAS',
  'WALLET_NOT_ACTIVE',
  'UNBOUNDED_AUTOMATION',
  'DESTINATION_NOT_WALLET',
  // The transaction itself (23-29)
  'UNEXPECTED_OUTPUT',
  'FEE_TOO_HIGH',
  'FOREIGN_INPUT',
  'INPUT_AMOUNT_UNPROVEN',
  'SIGHASH_NOT_ALL',
  'UNSUPPORTED_TRANSACTION',
  'NO_APPROVED_INTENT',
  'OPERATION_FORBIDDEN',
  'CALLDATA_MISMATCH',
  'CHAIN_REJECTED',
  'INSUFFICIENT_FUNDS',
  'CHANGE_BEYOND_GAP',
  'SAFE_NONCE_REUSED',
  'SAFE_STATE_MISMATCH',
  'NOT_A_REPLACEMENT',
  // Audit and operations (30-32)
  'AUDIT_CHAIN_BROKEN',
  'CHECKPOINT_INVALID',
  'NOT_FOUND',
  'CONFLICT',
  'RATE_LIMITED',
  'UNAVAILABLE',
  'INTERNAL',
];

describe('error codes', () => {
  it('are exactly the pinned list, in order: never renamed, removed or reordered', () => {
    const expected = PINNED.flatMap((c) => (c === '...decoding' ? DECODING : [c]));
    expect([...DECODING_ERROR_CODES]).toEqual(DECODING);
    expect([...ERROR_CODES]).toEqual(expected);
  });

  it('are unique and SCREAMING_SNAKE_CASE', () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    for (const code of ERROR_CODES) expect(code).toMatch(/^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/);
  });
});
