/**
 * The request nonces of RFC 9421 signed requests (`request_nonces`,
 * THREATS 3).
 *
 * Invariant: a nonce is used by one insert that either creates the row or
 * finds it (an expired row is taken over in the same statement), so of
 * concurrent uses of one nonce, in any number of coordinators, exactly one
 * gets true.
 *
 * On SQLite every signed request's nonce would be a commit of its own, an
 * fsync on the event loop: the uses that arrive within one turn of the loop
 * are inserted in one transaction (group-commit.ts); within a batch the same
 * nonce twice is two inserts, the second finding the first. PostgreSQL's
 * commits do not block the loop (and it groups commits itself): one
 * statement per use there.
 */
import { CustosError, type Millis } from '@custos/core';
import type { Kysely } from 'kysely';
import type { CoordinatorDb } from './connect.js';
import { GroupCommit } from './group-commit.js';
import { runOp } from './rows.js';
import type { Tables } from './schema.js';

/** One use of a nonce, as insertNonce takes it. */
interface NonceUse {
  readonly keyId: string;
  readonly nonce: string;
  readonly expiresAt: Millis;
  readonly now: Millis;
}

export class NonceStore {
  readonly #db: Kysely<Tables>;
  /** SQLite only: uses committed together (null on PostgreSQL). */
  readonly #group: GroupCommit<NonceUse, boolean> | null;
  readonly #one: (u: NonceUse) => Promise<boolean>;
  readonly #sweepEveryMs: number;
  #lastSweep = Number.NEGATIVE_INFINITY;

  /** `sweepEveryMs`: `use` deletes expired nonces at most this often (default 60 s). */
  constructor(database: CoordinatorDb, sweepEveryMs = 60_000) {
    this.#db = database.db;
    const one = (u: NonceUse) => runOp('nonces.use', () => insertNonce(this.#db, u));
    this.#group =
      database.dialect === 'sqlite'
        ? new GroupCommit(
            (uses) =>
              runOp('nonces.use', () =>
                this.#db.transaction().execute(async (trx) => {
                  const out: boolean[] = [];
                  for (const u of uses) out.push(await insertNonce(trx, u));
                  return out;
                }),
              ),
            one,
          )
        : null;
    this.#one = one;
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
    const use = { keyId, nonce, expiresAt, now };
    const fresh = await (this.#group === null ? this.#one(use) : this.#group.add(use));
    await this.#maybeSweep(now);
    return fresh;
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
async function insertNonce(db: Kysely<Tables>, u: NonceUse): Promise<boolean> {
  const res = await db
    .insertInto('request_nonces')
    .values({ key_id: u.keyId, nonce: u.nonce, expires_at: u.expiresAt })
    .onConflict((oc) =>
      oc
        .columns(['key_id', 'nonce'])
        .doUpdateSet({ expires_at: u.expiresAt })
        .where('request_nonces.expires_at', '<=', u.now),
    )
    .executeTakeFirst();
  return (res.numInsertedOrUpdatedRows ?? 0n) > 0n;
}
