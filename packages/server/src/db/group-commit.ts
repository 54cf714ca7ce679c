/**
 * Group commit for SQLite writes that arrive one request at a time (request
 * nonces, audit appends). better-sqlite3 is synchronous, so each commit waits
 * for its fsync on the event loop. The items added within one turn of the
 * event loop are written by one `batch` call, in the order they were added,
 * which runs them in one transaction: one fsync makes them all durable. Each
 * caller is answered only once that transaction has committed. A batch that
 * fails committed nothing; its items are then written one by one (`one`), so
 * one bad item fails alone and the others are answered as if alone.
 */

/** Items written in one transaction at most. */
const MAX_BATCH = 256;

interface Pending<I, O> {
  readonly item: I;
  readonly resolve: (out: O) => void;
  readonly reject: (err: unknown) => void;
}

export class GroupCommit<I, O> {
  readonly #batch: (items: readonly I[]) => Promise<readonly O[]>;
  readonly #one: (item: I) => Promise<O>;
  #pending: Pending<I, O>[] = [];

  /**
   * `batch` writes every item in one transaction and returns their results in
   * order; `one` writes a single item in a transaction of its own.
   */
  constructor(batch: (items: readonly I[]) => Promise<readonly O[]>, one: (item: I) => Promise<O>) {
    this.#batch = batch;
    this.#one = one;
  }

  /** Writes `item` with the others added in this turn; resolves once it is committed. */
  add(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.#pending.push({ item, resolve, reject });
      if (this.#pending.length === 1) setImmediate(() => void this.#flush());
    });
  }

  async #flush(): Promise<void> {
    const batch = this.#pending.splice(0, MAX_BATCH);
    if (this.#pending.length > 0) setImmediate(() => void this.#flush());
    if (batch.length > 1) {
      try {
        const out = await this.#batch(batch.map((p) => p.item));
        for (const [i, p] of batch.entries()) p.resolve(out[i] as O);
        return;
      } catch {
        // Nothing of the batch was committed: each item again on its own.
      }
    }
    for (const p of batch) await this.#one(p.item).then(p.resolve, p.reject);
  }
}
