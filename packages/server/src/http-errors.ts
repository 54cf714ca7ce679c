/**
 * Error codes to HTTP statuses, and the one error body every answer uses
 * (docs/api.md "Conventions"): `{"error":{"code","message"}}`.
 *
 * The table is a `Record<ErrorCode, number>`, so a code added to core without
 * a status here fails the type check instead of falling through to a 500.
 * Anything that is not a CustosError or one of fastify's own client errors is
 * a bug: it answers `500 INTERNAL` with a fixed message, and the details go to
 * the log only (the default error handler never leaks internals).
 */
import { CustosError, type ErrorCode, isErrorCode } from '@custos/core';

/** The HTTP status of each stable code, as docs/api.md lists them. */
export const STATUS_OF: Readonly<Record<ErrorCode, number>> = {
  // 400: decoding
  INVALID_JSON: 400,
  INVALID_UTF8: 400,
  TRAILING_DATA: 400,
  TOO_DEEP: 400,
  DUPLICATE_KEY: 400,
  UNKNOWN_FIELD: 400,
  MISSING_FIELD: 400,
  WRONG_TYPE: 400,
  INVALID_VALUE: 400,
  NON_CANONICAL_NUMBER: 400,
  NON_CANONICAL_AMOUNT: 400,
  NON_NFC_STRING: 400,
  LONE_SURROGATE: 400,
  NON_CANONICAL_ENCODING: 400,
  ADDRESS_CHECKSUM_INVALID: 400,
  TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  // 401: who is calling is not established
  SIGNATURE_REQUIRED: 401,
  BAD_SIGNATURE: 401,
  REPLAYED_REQUEST: 401,
  BAD_PASSWORD: 401,
  // 403: the caller is known and may not do this
  DEVICE_REVOKED: 403,
  UNKNOWN_DEVICE: 403,
  NOT_A_MEMBER: 403,
  NOT_AUTHORIZED: 403,
  DEVICE_NOT_ACTIVE: 403,
  INTENT_SIGNATURE_INVALID: 403,
  APPROVAL_SIGNATURE_INVALID: 403,
  GOVERNANCE_SIGNATURE_INVALID: 403,
  SELF_APPROVAL: 403,
  CHECKPOINT_INVALID: 403,
  // 404, 405, 409
  NOT_FOUND: 404,
  INTENT_IMMUTABLE: 405,
  CONFLICT: 409,
  DUPLICATE_INTENT: 409,
  GOVERNANCE_CHAIN_BROKEN: 409,
  GOVERNANCE_EQUIVOCATION: 409,
  GOVERNANCE_HEAD_MISMATCH: 409,
  // 422: well-formed and authenticated, but the rules say no
  QUORUM_NOT_MET: 422,
  GOVERNANCE_INVALID: 422,
  DUPLICATE_APPROVER: 422,
  INTENT_REJECTED: 422,
  EXPIRED: 422,
  NOT_YET_VALID: 422,
  WRONG_ORG: 422,
  WRONG_CHAIN: 422,
  POLICY_DENIED: 422,
  UNKNOWN_WALLET: 422,
  DESTINATION_NOT_ALLOWED: 422,
  DESTINATION_NOT_ACTIVE: 422,
  LIMIT_EXCEEDED: 422,
  LOOKALIKE_ADDRESS: 422,
  FROZEN: 422,
  UNKNOWN_ASSET: 422,
  UNEXPECTED_OUTPUT: 422,
  FEE_TOO_HIGH: 422,
  FOREIGN_INPUT: 422,
  INPUT_AMOUNT_UNPROVEN: 422,
  SIGHASH_NOT_ALL: 422,
  UNSUPPORTED_TRANSACTION: 422,
  NO_APPROVED_INTENT: 422,
  OPERATION_FORBIDDEN: 422,
  CALLDATA_MISMATCH: 422,
  CHAIN_REJECTED: 422,
  INSUFFICIENT_FUNDS: 422,
  LIFETIME_TOO_LONG: 422,
  WALLET_ALIAS: 422,
  WALLET_NOT_ACTIVE: 422,
  // A policy.set or genesis whose zero-approval rule has no per-transaction maximum or rolling limit.
  UNBOUNDED_AUTOMATION: 422,
  // An internal transfer whose destination is not the claimed wallet's derived address.
  DESTINATION_NOT_WALLET: 422,
  CHANGE_BEYOND_GAP: 422,
  SAFE_NONCE_REUSED: 422,
  SAFE_STATE_MISMATCH: 422,
  // A fee bump whose replacement does not conflict with the original or changes a payee output.
  NOT_A_REPLACEMENT: 422,
  // 429, 5xx
  RATE_LIMITED: 429,
  // The log no longer matches its own hashes: the coordinator refuses to append until an operator looks.
  AUDIT_CHAIN_BROKEN: 503,
  UNAVAILABLE: 503,
  INTERNAL: 500,
};

export function statusOf(code: ErrorCode): number {
  return STATUS_OF[code];
}

export interface ErrorBody {
  readonly error: { readonly code: ErrorCode; readonly message: string };
}

export function errorBody(code: ErrorCode, message: string): ErrorBody {
  return { error: { code, message } };
}

/** What to answer for a thrown error; `log` is set when the error is ours to look at (5xx). */
export interface HttpFailure {
  readonly status: number;
  readonly body: ErrorBody;
  readonly log: boolean;
}

const INTERNAL: HttpFailure = {
  status: 500,
  body: errorBody('INTERNAL', 'internal error'),
  log: true,
};

/**
 * fastify's own client errors (body parsing, limits) by their `code`. Others
 * with a 4xx status fall back to the status alone.
 */
const FASTIFY_CODES: Readonly<Record<string, { code: ErrorCode; message: string }>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { code: 'TOO_LARGE', message: 'the request body is over the limit' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    code: 'UNSUPPORTED_MEDIA_TYPE',
    message: 'request bodies are JSON: send content-type application/json',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    code: 'INVALID_VALUE',
    message: 'content-length does not match the body',
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: 'INVALID_JSON', message: 'the JSON body is empty' },
};

/** Maps anything thrown while handling a request to its answer. */
export function failureOf(err: unknown): HttpFailure {
  if (err instanceof CustosError) {
    const status = statusOf(err.code);
    if (status >= 500 && err.code !== 'UNAVAILABLE' && err.code !== 'AUDIT_CHAIN_BROKEN') return INTERNAL;
    return { status, body: errorBody(err.code, err.message), log: status >= 500 };
  }
  if (typeof err === 'object' && err !== null) {
    const e = err as { code?: unknown; statusCode?: unknown };
    const known = typeof e.code === 'string' ? FASTIFY_CODES[e.code] : undefined;
    if (known !== undefined) {
      return { status: statusOf(known.code), body: errorBody(known.code, known.message), log: false };
    }
    if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
      const code = codeForStatus(e.statusCode);
      return { status: statusOf(code), body: errorBody(code, 'the request is malformed'), log: false };
    }
  }
  return INTERNAL;
}

function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 404:
      return 'NOT_FOUND';
    case 413:
      return 'TOO_LARGE';
    case 415:
      return 'UNSUPPORTED_MEDIA_TYPE';
    case 429:
      return 'RATE_LIMITED';
    default:
      return 'INVALID_VALUE';
  }
}

/** A code read back from an answer (tests, clients); null when the body is not an error body. */
export function codeOfBody(body: unknown): ErrorCode | null {
  if (typeof body !== 'object' || body === null) return null;
  const error = (body as { error?: { code?: unknown } }).error;
  return isErrorCode(error?.code) ? error.code : null;
}
