/**
 * Driver errors, turned into stable CustosError codes.
 *
 * better-sqlite3 and pg fail in their own words (SQLITE_CONSTRAINT_UNIQUE,
 * SQLSTATE 23505, ECONNREFUSED, "Connection terminated unexpectedly"). Callers
 * of the storage layer switch on one vocabulary instead: a constraint the
 * operation expected becomes its own code (DUPLICATE_INTENT, CONFLICT,
 * NOT_FOUND) at the call site; a database that cannot be reached or is busy
 * becomes UNAVAILABLE (retry later); anything else is INTERNAL. The message
 * names the operation only: no SQL, no parameters, no connection string. The
 * driver error stays as `cause` for the operator's log.
 */
import { CustosError } from '@custos/core';

export type DbFailure =
  | 'unique'
  | 'foreign-key'
  | 'check'
  | 'not-null'
  | 'unavailable'
  | 'serialization'
  | 'other';

const NODE_NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

/** pg reports a lost or refused connection in words only. */
const PG_CONNECTION_MESSAGES =
  /Connection terminated|not queryable|timeout exceeded when trying to connect|Client was closed|Cannot use a pool after calling end|driver has already been destroyed|connection is not open/i;

function codeOf(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** What kind of failure a driver error is. */
export function classifyDbError(err: unknown): DbFailure {
  const code = codeOf(err);
  if (code !== undefined) {
    if (code.startsWith('SQLITE_')) return classifySqlite(code);
    if (NODE_NETWORK_CODES.has(code)) return 'unavailable';
    if (/^[0-9A-Z]{5}$/.test(code)) return classifySqlState(code);
  }
  if (err instanceof AggregateError && err.errors.some((e) => classifyDbError(e) === 'unavailable')) {
    return 'unavailable';
  }
  if (err instanceof Error && PG_CONNECTION_MESSAGES.test(err.message)) return 'unavailable';
  return 'other';
}

function classifySqlite(code: string): DbFailure {
  if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return 'unique';
  if (code === 'SQLITE_CONSTRAINT_FOREIGNKEY') return 'foreign-key';
  if (code === 'SQLITE_CONSTRAINT_CHECK') return 'check';
  if (code === 'SQLITE_CONSTRAINT_NOTNULL') return 'not-null';
  if (
    code.startsWith('SQLITE_BUSY') ||
    code.startsWith('SQLITE_LOCKED') ||
    code.startsWith('SQLITE_IOERR') ||
    code.startsWith('SQLITE_CANTOPEN') ||
    code === 'SQLITE_FULL' ||
    code.startsWith('SQLITE_READONLY')
  ) {
    return 'unavailable';
  }
  return 'other';
}

/** PostgreSQL SQLSTATE codes (Appendix A of the PostgreSQL manual). */
function classifySqlState(code: string): DbFailure {
  if (code === '23505') return 'unique';
  if (code === '23503') return 'foreign-key';
  if (code === '23514') return 'check';
  if (code === '23502') return 'not-null';
  if (code === '40001' || code === '40P01') return 'serialization';
  // 08: connection exception; 53: insufficient resources (too many connections);
  // 57P01-57P03: shutdown, crash, starting up; 57014: statement timeout;
  // 25006: read-only transaction (a replica after a failover); 55P03: lock
  // timeout.
  if (
    code.startsWith('08') ||
    code.startsWith('53') ||
    code === '57P01' ||
    code === '57P02' ||
    code === '57P03' ||
    code === '57014' ||
    code === '25006' ||
    code === '55P03'
  ) {
    return 'unavailable';
  }
  return 'other';
}

/**
 * The CustosError for a failed operation: a CustosError passes through
 * unchanged; an unreachable or busy database is UNAVAILABLE; a concurrent
 * update that lost is CONFLICT; anything else is INTERNAL.
 */
export function dbError(err: unknown, op: string): CustosError {
  if (err instanceof CustosError) return err;
  switch (classifyDbError(err)) {
    case 'unavailable':
      return new CustosError(
        'UNAVAILABLE',
        `the database is unavailable (${op}); retry later`,
        { op },
        { cause: err },
      );
    case 'serialization':
      return new CustosError('CONFLICT', `a concurrent update won (${op}); retry`, { op }, { cause: err });
    default: {
      const code = codeOf(err);
      const details = code === undefined ? { op } : { op, driverCode: code };
      return new CustosError('INTERNAL', `database error (${op})`, details, { cause: err });
    }
  }
}
