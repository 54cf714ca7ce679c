/**
 * Small pieces the signing pipeline's modules share: a logger shape that
 * pino satisfies (the pipeline never needs more), a keyed lock so one
 * process never builds or broadcasts one intent twice at once, an abortable
 * sleep, and helpers that keep errors safe to log.
 *
 * The locks are per process on purpose: correctness across coordinators
 * rests on the database (compare-and-set of intent status, UTXO
 * reservations, change counters), and these only avoid wasted work.
 */
import { CustosError, type ErrorCode } from '@custos/core';

/** What the pipeline logs through; a pino logger fits. Fields never hold secrets. */
export interface Logger {
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

export const silentLogger: Logger = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** Runs functions one at a time per key; different keys run concurrently. */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#tails.get(key) ?? Promise.resolve();
    const run = before.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return run;
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. Never rejects. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** The stable code of an error: a CustosError's own, INTERNAL for anything else. */
export function codeOf(err: unknown): ErrorCode {
  return err instanceof CustosError ? err.code : 'INTERNAL';
}

/** Log fields for an error: code and message only (CustosError messages carry nothing secret). */
export function errorFields(err: unknown): Record<string, unknown> {
  if (err instanceof CustosError) return { code: err.code, error: err.message };
  return { code: 'INTERNAL', error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) };
}

/** Whether an error means "try again later" rather than a decision. */
export function isTransient(err: unknown): boolean {
  return !(err instanceof CustosError) || err.code === 'UNAVAILABLE' || err.code === 'CONFLICT';
}
