/**
 * What the command prints, and how it fails.
 *
 * Exit codes are part of the interface scripts rely on: 0 done, 1 refused or
 * failed, 2 the command line itself was wrong. A refusal prints the stable
 * code (docs/architecture.md "Interfaces": clients switch on codes, never on messages) and a sentence a
 * person understands, then the detail the other side gave:
 *
 *   custos: DESTINATION_NOT_ALLOWED: the destination is not in the address book
 *     policy 0: bcrt1q... on bitcoin:regtest is not an address-book destination that rule small allows
 *
 * Nothing secret goes through here: errors never carry passwords or keys
 * (core's CustosError promises the same for its messages).
 */
import { CustosError, type ErrorCode, isErrorCode } from '@custos/core';

/** A mistake on the command line: exit code 2 with the command's usage. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const EXIT_OK = 0;
export const EXIT_REFUSED = 1;
export const EXIT_USAGE = 2;

/** One plain sentence per code, for people; the code itself is for scripts. */
const SENTENCES: Partial<Record<ErrorCode, string>> = {
  INVALID_JSON: 'the data is not valid JSON',
  TOO_LARGE: 'the data is too large',
  UNKNOWN_FIELD: 'the data has a field that is not allowed',
  MISSING_FIELD: 'the data is missing a required field',
  WRONG_TYPE: 'a field has the wrong type',
  INVALID_VALUE: 'a value is not acceptable',
  NON_CANONICAL_AMOUNT:
    'an amount must be a whole number of base units (satoshi), with no sign or leading zero',
  SIGNATURE_REQUIRED: 'the request was not signed by a device key',
  BAD_SIGNATURE: 'the request signature was refused (check this machine clock and the device key)',
  REPLAYED_REQUEST: 'this exact signed request was already used once',
  DEVICE_REVOKED: 'this device key was revoked by governance',
  UNKNOWN_DEVICE: 'this device is not registered for the member',
  NOT_A_MEMBER: 'this member is not part of the organization',
  NOT_AUTHORIZED: 'this member may not do that',
  BAD_PASSWORD: 'the password is wrong or the key file was altered',
  INTENT_SIGNATURE_INVALID:
    "the requester's signature does not match the intent: it was altered after signing",
  APPROVAL_SIGNATURE_INVALID: 'an approval signature does not verify',
  QUORUM_NOT_MET: 'not enough valid approvals yet',
  INTENT_IMMUTABLE: 'an intent cannot be changed; make a new one',
  GOVERNANCE_SIGNATURE_INVALID: 'a governance entry carries a signature that does not verify',
  GOVERNANCE_EQUIVOCATION: 'the coordinator served two different governance entries for one sequence number',
  GOVERNANCE_CHAIN_BROKEN: 'the governance chain does not link up to the pinned genesis',
  GOVERNANCE_INVALID: 'the governance change does not fit the current state',
  SELF_APPROVAL: 'the requester cannot approve its own intent',
  DUPLICATE_APPROVER: 'this member already decided on this intent',
  INTENT_REJECTED: 'an approver rejected the intent',
  DUPLICATE_INTENT: 'this intent was already submitted',
  EXPIRED: 'it has expired',
  NOT_YET_VALID: 'it is dated in the future (check the clocks)',
  WRONG_ORG: 'it belongs to another organization than the pinned genesis',
  WRONG_CHAIN: 'it names another chain than the wallet',
  POLICY_DENIED: 'the policy does not allow this transfer',
  UNKNOWN_WALLET: 'there is no such wallet',
  DESTINATION_NOT_ALLOWED: 'the destination is not in the address book',
  DESTINATION_NOT_ACTIVE:
    'the destination was added to the address book but its waiting period has not passed',
  LIMIT_EXCEEDED: 'this would exceed a rolling limit of the policy',
  LOOKALIKE_ADDRESS: 'the destination looks like a known address but is not it (address poisoning)',
  FROZEN: 'the organization is frozen: nothing is signed until a quorum unfreezes it',
  UNKNOWN_ASSET: 'the wallet does not hold this asset',
  UNBOUNDED_AUTOMATION:
    'a rule that needs no approval must have a per-transaction maximum and a rolling limit for each wallet and asset it covers',
  DESTINATION_NOT_WALLET:
    "the destination is not the named wallet's own address (an internal transfer must pay the wallet it names)",
  UNEXPECTED_OUTPUT: 'the transaction does not pay exactly the destination and amount of the intent',
  FEE_TOO_HIGH: 'the transaction fee is above the policy cap',
  FOREIGN_INPUT: 'the transaction spends coins that are not the wallet',
  INPUT_AMOUNT_UNPROVEN: 'the transaction does not prove the amounts it spends',
  SIGHASH_NOT_ALL: 'the transaction asks for a signature that does not cover all of it',
  UNSUPPORTED_TRANSACTION: 'the transaction is of a kind this client cannot check',
  NO_APPROVED_INTENT: 'there is no approved intent behind this transaction',
  INSUFFICIENT_FUNDS: 'the wallet does not hold enough to pay this',
  AUDIT_CHAIN_BROKEN: 'the audit log was altered',
  CHECKPOINT_INVALID: 'an audit checkpoint is not validly signed by a signer',
  NOT_FOUND: 'not found',
  CONFLICT: 'it conflicts with the current state',
  RATE_LIMITED: 'too many requests; wait and try again',
  UNAVAILABLE: 'the service cannot be reached or is not ready',
  INTERNAL: 'an internal error happened',
};

/** The sentence for a code. */
export function explain(code: ErrorCode): string {
  return SENTENCES[code] ?? code.toLowerCase().replaceAll('_', ' ');
}

/** The two lines printed for a refusal: `custos: CODE: sentence` and the detail, when it adds something. */
export function formatRefusal(code: ErrorCode, message: string): string {
  const sentence = explain(code);
  const detail = message.trim();
  const lines = [`custos: ${code}: ${sentence}`];
  if (detail !== '' && detail !== sentence) lines.push(`  ${detail}`);
  return `${lines.join('\n')}\n`;
}

/** A failure as `--json` prints it: `{"error": {"code", "message", "detail"}}`; USAGE for a command-line mistake. */
export interface FailureJson {
  readonly error: {
    readonly code: ErrorCode | 'USAGE';
    readonly message: string;
    readonly detail: string | null;
  };
}

/**
 * Maps anything thrown to the text, the JSON form (`--json`) and the exit
 * code. Unknown errors print no stack (it may hold data).
 */
export function describeFailure(err: unknown): { text: string; json: FailureJson; exit: number } {
  if (err instanceof UsageError) {
    return {
      text: `custos: ${err.message}\n`,
      json: { error: { code: 'USAGE', message: err.message, detail: null } },
      exit: EXIT_USAGE,
    };
  }
  const code: ErrorCode = err instanceof CustosError ? err.code : 'INTERNAL';
  const message = (err instanceof Error ? err.message : String(err)).trim();
  // CUSTOS_DEBUG=1 shows where an unexpected error came from (developers; it may show data, never secrets by design).
  const stack =
    !(err instanceof CustosError) && process.env.CUSTOS_DEBUG === '1' && err instanceof Error && err.stack
      ? `${err.stack}\n`
      : '';
  const sentence = explain(code);
  return {
    text: formatRefusal(code, message) + stack,
    json: {
      error: { code, message: sentence, detail: message === '' || message === sentence ? null : message },
    },
    exit: EXIT_REFUSED,
  };
}

/** Where a command writes: stdout for results, stderr for prompts, progress and warnings. */
export interface Io {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

export const processIo: Io = {
  out: (text) => {
    process.stdout.write(text);
  },
  err: (text) => {
    process.stderr.write(text);
  },
};

/** Pretty JSON for `--json` (bigints as decimal strings). */
export function toJson(value: unknown): string {
  return `${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`;
}

/** Satoshi as BTC with eight decimals, e.g. 150000 -> "0.00150000 BTC". */
export function formatSats(amount: string | bigint, asset = 'BTC'): string {
  const sats = typeof amount === 'bigint' ? amount : BigInt(amount);
  if (asset !== 'BTC') return `${sats} ${asset}`;
  const negative = sats < 0n;
  const abs = negative ? -sats : sats;
  const whole = abs / 100_000_000n;
  const frac = (abs % 100_000_000n).toString().padStart(8, '0');
  return `${negative ? '-' : ''}${whole}.${frac} BTC (${sats} sat)`;
}

/** A short relative time, e.g. "12 s ago", "in 3 min". */
export function relativeTime(at: number, now: number): string {
  const d = Math.round((at - now) / 1000);
  const abs = Math.abs(d);
  const text =
    abs < 90 ? `${abs} s` : abs < 5400 ? `${Math.round(abs / 60)} min` : `${Math.round(abs / 3600)} h`;
  return d < 0 ? `${text} ago` : `in ${text}`;
}

/** Left-aligned columns for tables. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}

/** A CustosError from a code the other side sent, or UNAVAILABLE for one this client does not know. */
export function errorFromWire(status: number, code: unknown, message: unknown): CustosError {
  const text = typeof message === 'string' ? message.slice(0, 1000) : '';
  if (isErrorCode(code)) return new CustosError(code, text, { status });
  return new CustosError('UNAVAILABLE', `the coordinator answered HTTP ${status}${text ? `: ${text}` : ''}`, {
    status,
  });
}
