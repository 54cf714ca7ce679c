/**
 * The request nonces of RFC 9421 signed requests (`request_nonces`,
 * THREATS 3).
 *
 * Invariant: a nonce is used by one insert that either creates the row or
 * finds it (an expired row is taken over in the same statement), so of
 * concurrent uses of one nonce, in any number of coordinators, exactly one
 * gets true.
 *
 * Group commit on SQLite: every signed request stores its nonce, and each
 * commit waits for an fsync on the event loop (better-sqlite3 is
 * synchronous; it was a third of the coordinator's busy time under load).
 * The uses that arrive within one turn of the event loop are inserted in one
 * transaction, so one fsync makes several durable; each caller's answer is
 * still given only after its row is committed, and within a batch the same
 * nonce twice is two inserts, the second finding the first. A batch that
 * fails is tried again use by use, so one failure fails alone. PostgreSQL's
 * commits do not block the loop (and it groups commits itself): one
 * statement per use there.
 */
import { CustosError, type Millis } from '@custos/core';
import type { Kysely } from 'kysely';
import type { CoordinatorDb } from './connect.js';
import { runOp } from './rows.js';
import type { Tables } from './schema.js';

/** Uses committed together at most (one SQLite transaction). */
const MAX_BATCH = 256;

interface PendingUse {
  readonly keyId: string;
  readonly nonce: string;
  readonly expiresAt: Millis;
  readonly now: Millis;
  readonly resolve: (fresh: boolean) => void;
  readonly reject: (err: unknown) => void;
}

export class NonceStore {
  readonly #db: Kysely<Tables>;
  readonly #grouped: boolean;
  readonly #sweepEveryMs: number;
  #lastSweep = Number.NEGATIVE_INFINITY;
  #pending: PendingUse[] = [];

  /** `sweepEveryMs`: `use` deletes expired nonces at most this often (default 60 s). */
  constructor(database: CoordinatorDb, sweepEveryMs = 60_000) {
    this.#db = database.db;
    this.#grouped = database.dialect === 'sqlite';
    this.#sweepEveryMs = sweepEveryMs;
  }

  /**
   * Uses an RFC 9421 request nonce of a key (THREATS 3): true the first time,
   * false if it was used and has not expired. Of concurrent uses of one nonce
   * exactly one gets true. An expired entry counts as unused (the request's
   * own timestamp window refuses a replay that old). Expired entries are
   * deleted at most every `nonceSweepEveryMs`.
   */
  async use(keyId: string, nonce: string, expiresAt: Millis, now: Millis): Promise<boolean> {
    if (keyId.length > 256 || nonce.length > 256 || nonce.length === 0) {
      throw new CustosError('INVALID_VALUE', 'a nonce and a key id hold 1 to 256 characters');
    }
    if (!this.#grouped) {
      const fresh = await runOp('nonces.use', () => insertNonce(this.#db, keyId, nonce, expiresAt, now));
      await this.#maybeSweep(now);
      return fresh;
    }
    return new Promise<boolean>((resolve, reject) => {
      this.#pending.push({ keyId, nonce, expiresAt, now, resolve, reject });
      if (this.#pending.length === 1) setImmediate(() => void this.#flush());
    });
  }

  /** Commits the uses waiting, up to MAX_BATCH in one transaction, and answers each caller. */
  async #flush(): Promise<void> {
    const batch = this.#pending.splice(0, MAX_BATCH);
    if (this.#pending.length > 0) setImmediate(() => void this.#flush());
    let fresh: boolean[];
    try {
      fresh = await runOp('nonces.use', () =>
        this.#db.transaction().execute(async (trx) => {
          const out: boolean[] = [];
          for (const u of batch) out.push(await insertNonce(trx, u.keyId, u.nonce, u.expiresAt, u.now));
          return out;
        }),
      );
    } catch (err) {
      if (batch.length === 1) {
        batch[0]?.reject(err);
        return;
      }
      // Nothing of the batch was committed: each use again on its own, so one failure fails alone.
      for (const u of batch) {
        await runOp('nonces.use', () => insertNonce(this.#db, u.keyId, u.nonce, u.expiresAt, u.now)).then(
          u.resolve,
          u.reject,
        );
      }
      return;
    }
    for (const [i, u] of batch.entries()) u.resolve(fresh[i] === true);
    await this.#maybeSweep(Math.max(...batch.map((u) => u.now)));
  }

  async #maybeSweep(now: Millis): Promise<void> {
    if (now - this.#lastSweep < this.#sweepEveryMs) return;
    this.#lastSweep = now;
    // Best effort: the nonce is already recorded, and the next sweep deletes what this one missed.
    await this.sweep(now).catch(() => undefined);
  }

  /** Deletes nonces expired at `now`; returns how many. */
  async sweep(now: Millis): Promise<number> {
    return runOp('nonces.sweep', async () => {
      const res = await this.#db
        .deleteFrom('request_nonces')
        .where('expires_at', '<=', now)
        .executeTakeFirst();
      return Number(res.numDeletedRows);
    });
  }
}

/** One use: creates the row, or takes over an expired one; true when this call did either. */
async function insertNonce(
  db: Kysely<Tables>,
  keyId: string,
  nonce: string,
  expiresAt: Millis,
  now: Millis,
): Promise<boolean> {
  const res = await db
    .insertInto('request_nonces')
    .values({ key_id: keyId, nonce, expires_at: expiresAt })
    .onConflict((oc) =>
      oc
        .columns(['key_id', 'nonce'])
        .doUpdateSet({ expires_at: expiresAt })
        .where('request_nonces.expires_at', '<=', now),
    )
    .executeTakeFirst();
  return (res.numInsertedOrUpdatedRows ?? 0n) > 0n;
}
