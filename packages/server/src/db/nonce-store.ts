/**
 * The request nonces of RFC 9421 signed requests (`request_nonces`,
 * THREATS 3).
 *
 * Invariant: a nonce is used by one insert that either creates the row or
 * finds it (an expired row is taken over in the same statement), so of
 * concurrent uses of one nonce, in any number of coordinators, exactly one
 * gets true.
 */
import { CustosError, type Millis } from '@custos/core';
import type { Kysely } from 'kysely';
import type { CoordinatorDb } from './connect.js';
import { runOp } from './rows.js';
import type { Tables } from './schema.js';

export class NonceStore {
  readonly #db: Kysely<Tables>;
  readonly #sweepEveryMs: number;
  #lastSweep = Number.NEGATIVE_INFINITY;

  /** `sweepEveryMs`: `use` deletes expired nonces at most this often (default 60 s). */
  constructor(database: CoordinatorDb, sweepEveryMs = 60_000) {
    this.#db = database.db;
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
    return runOp('nonces.use', async () => {
      const res = await this.#db
        .insertInto('request_nonces')
        .values({ key_id: keyId, nonce, expires_at: expiresAt })
        .onConflict((oc) =>
          oc
            .columns(['key_id', 'nonce'])
            .doUpdateSet({ expires_at: expiresAt })
            .where('request_nonces.expires_at', '<=', now),
        )
        .executeTakeFirst();
      const fresh = (res.numInsertedOrUpdatedRows ?? 0n) > 0n;
      if (now - this.#lastSweep >= this.#sweepEveryMs) {
        this.#lastSweep = now;
        // Best effort: the nonce is already recorded, and the next sweep deletes what this one missed.
        await this.sweep(now).catch(() => undefined);
      }
      return fresh;
    });
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
