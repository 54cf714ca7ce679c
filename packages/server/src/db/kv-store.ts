/**
 * Small named pieces of state (`kv`): a key, a text value, when it was
 * written.
 *
 * Invariant: compareAndSet writes only over the value the caller read (or
 * only where the key is absent), in one statement, so of coordinators racing
 * on one key exactly one wins each round.
 */
import type { Millis } from '@custos/core';
import type { Kysely } from 'kysely';
import type { CoordinatorDb } from './connect.js';
import { runOp } from './rows.js';
import type { Tables } from './schema.js';

export class KvStore {
  readonly #db: Kysely<Tables>;
  readonly #now: () => Millis;

  constructor(database: CoordinatorDb, now: () => Millis = Date.now) {
    this.#db = database.db;
    this.#now = now;
  }

  /** A small piece of state (the chain tracker's, for one), or null. */
  async get(key: string): Promise<string | null> {
    return runOp('kv.get', async () => {
      const row = await this.#db.selectFrom('kv').select('value').where('key', '=', key).executeTakeFirst();
      return row?.value ?? null;
    });
  }

  async set(key: string, value: string): Promise<void> {
    const now = this.#now();
    await runOp('kv.set', () =>
      this.#db
        .insertInto('kv')
        .values({ key, value, updated_at: now })
        .onConflict((oc) => oc.column('key').doUpdateSet({ value, updated_at: now }))
        .execute(),
    );
  }

  /**
   * Compare-and-set of a kv value: writes `value` only if the key holds
   * `expected` now (null: only if the key is absent). Returns whether it wrote.
   * Of coordinators racing on one key, exactly one wins each round (the
   * pipeline's UTXO reservations and change-index counters rest on this).
   */
  async compareAndSet(key: string, expected: string | null, value: string): Promise<boolean> {
    const now = this.#now();
    return runOp('kv.compareAndSet', async () => {
      if (expected === null) {
        const res = await this.#db
          .insertInto('kv')
          .values({ key, value, updated_at: now })
          .onConflict((oc) => oc.column('key').doNothing())
          .executeTakeFirst();
        return (res.numInsertedOrUpdatedRows ?? 0n) > 0n;
      }
      const res = await this.#db
        .updateTable('kv')
        .set({ value, updated_at: now })
        .where('key', '=', key)
        .where('value', '=', expected)
        .executeTakeFirst();
      return res.numUpdatedRows > 0n;
    });
  }
}
