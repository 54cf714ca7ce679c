/**
 * What every store of the coordinator (db/*-store.ts) does the same way:
 * run an operation so a driver error leaves as a CustosError naming the
 * operation, never with SQL in its message (errors.ts); read BIGINT columns
 * as safe integers; cut page sizes to their bounds; and decode a stored
 * signed object with its strict schema, refusing a row that was altered.
 */
import { CustosError, decode, type Schema } from '@custos/core';
import { dbError } from './errors.js';

/** Most rows one page of intents or proposals returns. */
export const MAX_PAGE = 200;

/** Stored objects are our own writes: allow more than the 1 MiB request limit (a genesis, a big PSBT). */
const STORED_LIMITS = { maxBytes: 64 << 20 };

/**
 * Runs one store operation: a CustosError passes through as thrown (the
 * codes each method documents), any other failure becomes UNAVAILABLE,
 * CONFLICT or INTERNAL by dbError, with `name` as its `op`.
 */
export async function runOp<T>(name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw dbError(err, name);
  }
}

/** A page size: an integer in 1..max, `fallback` when absent or not a number. */
export function clamp(value: number | undefined, fallback: number, max: number): number {
  const v = value === undefined || !Number.isFinite(value) ? fallback : Math.floor(value);
  return Math.min(max, Math.max(1, v));
}

/** A BIGINT from either driver as a safe integer. */
export function int(v: number | string | bigint): number {
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isSafeInteger(n)) throw new CustosError('INTERNAL', 'a stored integer is out of range');
  return n;
}

export function intOrNull(v: number | string | bigint | null): number | null {
  return v === null ? null : int(v);
}

/** Decoded stored objects per schema, by their exact text (see {@link stored}). */
const decodedCache = new WeakMap<object, Map<string, unknown>>();
/** Texts remembered per schema: the objects a few thousand withdrawals in flight read again and again. */
const DECODED_CACHE_SIZE = 4096;

/**
 * A stored object decoded strictly, as it was when written. The same text
 * is read many times while its withdrawal moves (an intent's body about 15
 * times, its approvals about 7), so decoded objects are remembered by their
 * exact text, per schema, least recently used first out: the same text
 * always decodes to the same object, and a row altered in the database is a
 * different text, decoded (and refused) afresh. Decoded objects are
 * read-only by type; nothing mutates them.
 */
export function stored<T>(s: Schema<T>, text: string, what: string): T {
  let memo = decodedCache.get(s);
  if (memo === undefined) {
    memo = new Map();
    decodedCache.set(s, memo);
  }
  const hit = memo.get(text);
  if (hit !== undefined) {
    memo.delete(text);
    memo.set(text, hit);
    return hit as T;
  }
  try {
    const value = decode(s, text, STORED_LIMITS);
    memo.set(text, value);
    if (memo.size > DECODED_CACHE_SIZE) memo.delete(memo.keys().next().value as string);
    return value;
  } catch (err) {
    throw new CustosError(
      'INTERNAL',
      `a stored ${what} does not decode: the database was altered`,
      {},
      { cause: err },
    );
  }
}
