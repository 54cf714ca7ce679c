/**
 * The chain watcher's shared rows (chain.ts): coins promised to intents.
 *
 * A reservation is one row per outpoint (`coin_reservations`, primary key
 * the outpoint), so the database itself refuses a coin promised twice: of
 * two coordinators reserving one coin at once, one insert wins and the other
 * finds the row taken and selects again. Nothing here rewrites more than the
 * rows of one intent, so a build costs the same however many coins are held.
 */
import { CustosError, type Millis } from '@custos/core';
import type { Kysely } from 'kysely';
import type { CoordinatorDb } from './connect.js';
import { dbError } from './errors.js';
import type { Tables } from './schema.js';

/** Thrown inside a transaction to roll it back when a coin is taken. */
class Taken extends Error {}

export class ChainStore {
  readonly #db: Kysely<Tables>;
  readonly #now: () => Millis;

  constructor(database: CoordinatorDb, now: () => Millis = Date.now) {
    this.#db = database.db;
    this.#now = now;
  }

  /** Every reservation now: outpoint -> intent. As many rows as coins held by unfinished intents. */
  async reservations(): Promise<Map<string, string>> {
    return this.#op('reservations', async () => {
      const rows = await this.#db.selectFrom('coin_reservations').select(['outpoint', 'intent']).execute();
      return new Map(rows.map((r) => [r.outpoint, r.intent]));
    });
  }

  /**
   * Makes `outpoints` exactly the coins reserved for `intent`, all or none:
   * false (and nothing changed) when one of them is held by another intent.
   */
  async reserve(intent: string, outpoints: readonly string[]): Promise<boolean> {
    const now = this.#now();
    // Sorted: concurrent inserts take their row locks in one order, so they never deadlock.
    const wanted = [...new Set(outpoints)].sort();
    return this.#op('reserve', async () => {
      try {
        await this.#db.transaction().execute(async (trx) => {
          let drop = trx.deleteFrom('coin_reservations').where('intent', '=', intent);
          if (wanted.length > 0) drop = drop.where('outpoint', 'not in', wanted);
          await drop.execute();
          if (wanted.length === 0) return;
          await trx
            .insertInto('coin_reservations')
            .values(wanted.map((outpoint) => ({ outpoint, intent, reserved_at: now })))
            .onConflict((oc) => oc.column('outpoint').doNothing())
            .execute();
          const mine = await trx
            .selectFrom('coin_reservations')
            .select((eb) => eb.fn.countAll<number | string | bigint>().as('n'))
            .where('intent', '=', intent)
            .where('outpoint', 'in', wanted)
            .executeTakeFirstOrThrow();
          if (Number(mine.n) !== wanted.length) throw new Taken();
        });
        return true;
      } catch (err) {
        if (err instanceof Taken) return false;
        throw err;
      }
    });
  }

  /** Frees every coin of these intents. Returns how many. */
  async release(intents: ReadonlySet<string>): Promise<number> {
    if (intents.size === 0) return 0;
    return this.#op('release', async () => {
      const res = await this.#db
        .deleteFrom('coin_reservations')
        .where('intent', 'in', [...intents])
        .executeTakeFirst();
      return Number(res.numDeletedRows);
    });
  }

  /** The intents holding coins now. */
  async reservedIntents(): Promise<ReadonlySet<string>> {
    return this.#op('reservedIntents', async () => {
      const rows = await this.#db.selectFrom('coin_reservations').select('intent').distinct().execute();
      return new Set(rows.map((r) => r.intent));
    });
  }

  /** The outpoints reserved for one intent, in outpoint order. */
  async reservedFor(intent: string): Promise<readonly string[]> {
    return this.#op('reservedFor', async () => {
      const rows = await this.#db
        .selectFrom('coin_reservations')
        .select('outpoint')
        .where('intent', '=', intent)
        .orderBy('outpoint')
        .execute();
      return rows.map((r) => r.outpoint);
    });
  }

  async #op<T>(name: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof CustosError) throw err;
      throw dbError(err, name);
    }
  }
}
