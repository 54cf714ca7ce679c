/**
 * The chain watcher's rows (chain.ts): coins promised to intents, and the
 * UTXO tracker's state.
 *
 * A reservation is one row per outpoint (`coin_reservations`, primary key
 * the outpoint), so the database itself refuses a coin promised twice: of
 * two coordinators reserving one coin at once, one insert wins and the other
 * finds the row taken and selects again. Nothing here rewrites more than the
 * rows of one intent, so a build costs the same however many coins are held.
 *
 * The tracker's state (chain_tip, chain_coins, chain_txs, chain_undo) is
 * written by the block: the coins a block added or removed, its undo data,
 * the tip. Every coordinator follows the same chain, so the rows hold
 * whichever one saved last; a save applies its changes only over the tip it
 * last read or wrote (compare-and-set on the tip row, in one transaction),
 * leaves rows that are already at its tip or ahead of it alone, and writes
 * the whole state only when the rows are behind on another branch (or
 * absent). Loading reads them back into UtxoTracker.fromJSON, which proves
 * every stored coin against its funding transaction again.
 */
import type { ChainTip, TrackerJson } from '@custos/bitcoin';
import type { Millis } from '@custos/core';
import type { Kysely, Transaction } from 'kysely';
import type { CoordinatorDb } from './connect.js';
import { runOp } from './rows.js';
import type { Tables } from './schema.js';

/** Thrown inside a transaction to roll it back when a coin is taken. */
class Taken extends Error {}

/** Rows per insert statement. */
const CHUNK = 200;

type UtxoJson = TrackerJson['utxos'][number];

/** What changed in the tracker since the tip the rows were last known at. */
export interface TrackerChanges {
  /** Coins now tracked that were added or changed, each with its funding transaction (hex). */
  readonly upsert: readonly { readonly coin: UtxoJson; readonly pending: boolean; readonly raw: string }[];
  /** Outpoints no longer tracked. */
  readonly remove: readonly string[];
  /** Undo rows from this height up are replaced by `undo`; rows below `undoFrom` are dropped. */
  readonly rewriteFrom: number | null;
  readonly undo: readonly { readonly height: number; readonly body: string }[];
  readonly undoFrom: number;
}

export interface TrackerSave {
  /** The tip the rows held when this process last read or wrote them; undefined: not known. */
  readonly base: ChainTip | null | undefined;
  readonly tip: ChainTip | null;
  readonly maxUndo: number;
  readonly changes: TrackerChanges;
  /** The whole state, asked for only when the rows must be written whole. */
  readonly full: () => TrackerJson;
  /** Write the whole state whatever the rows hold (the tracker was rebuilt). */
  readonly whole: boolean;
}

/** What a save did: wrote its state, found the rows already at its tip, or found them ahead. */
export type TrackerSaved = 'written' | 'equal' | 'ahead';

const sameTip = (a: ChainTip | null, b: ChainTip | null): boolean =>
  a === null || b === null ? a === b : a.height === b.height && a.hash === b.hash;

export class ChainStore {
  readonly #db: Kysely<Tables>;
  readonly #pg: boolean;
  readonly #now: () => Millis;

  constructor(database: CoordinatorDb, now: () => Millis = Date.now) {
    this.#db = database.db;
    this.#pg = database.dialect === 'postgres';
    this.#now = now;
  }

  /** Every reservation now: outpoint -> intent. As many rows as coins held by unfinished intents. */
  async reservations(): Promise<Map<string, string>> {
    return runOp('reservations', async () => {
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
    return runOp('reserve', async () => {
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
    return runOp('release', async () => {
      const res = await this.#db
        .deleteFrom('coin_reservations')
        .where('intent', 'in', [...intents])
        .executeTakeFirst();
      return Number(res.numDeletedRows);
    });
  }

  /** The intents holding coins now. */
  async reservedIntents(): Promise<ReadonlySet<string>> {
    return runOp('reservedIntents', async () => {
      const rows = await this.#db.selectFrom('coin_reservations').select('intent').distinct().execute();
      return new Set(rows.map((r) => r.intent));
    });
  }

  /** The outpoints reserved for one intent, in outpoint order. */
  async reservedFor(intent: string): Promise<readonly string[]> {
    return runOp('reservedFor', async () => {
      const rows = await this.#db
        .selectFrom('coin_reservations')
        .select('outpoint')
        .where('intent', '=', intent)
        .orderBy('outpoint')
        .execute();
      return rows.map((r) => r.outpoint);
    });
  }

  // ---------------------------------------------------------------- tracker

  /** The saved tracker state, or null when none was saved. */
  async loadTracker(): Promise<TrackerJson | null> {
    return runOp('loadTracker', async () => {
      const tipRow = await this.#db
        .selectFrom('chain_tip')
        .selectAll()
        .where('id', '=', 1)
        .executeTakeFirst();
      if (tipRow === undefined) return null;
      const [coins, txRows, undoRows] = await Promise.all([
        this.#db.selectFrom('chain_coins').selectAll().orderBy('outpoint').execute(),
        this.#db.selectFrom('chain_txs').selectAll().orderBy('txid').execute(),
        this.#db.selectFrom('chain_undo').selectAll().orderBy('height').execute(),
      ]);
      const txs = new Map(txRows.map((t) => [t.txid, t.raw]));
      const undo: TrackerJson['undo'][number][] = [];
      for (const row of undoRows) {
        const body = JSON.parse(row.body) as { block: TrackerJson['undo'][number]; txs: TrackerJson['txs'] };
        undo.push(body.block);
        for (const t of body.txs) if (!txs.has(t.txid)) txs.set(t.txid, t.raw);
      }
      const height = tipRow.height === null ? null : Number(tipRow.height);
      return {
        v: 1,
        tip: height === null || tipRow.hash === null ? null : { height, hash: tipRow.hash },
        maxUndo: tipRow.max_undo,
        utxos: coins.map((c) => ({
          txid: c.txid,
          vout: Number(c.vout),
          value: c.value,
          script: c.script,
          wallet: c.wallet,
          branch: c.branch,
          index: Number(c.idx),
          height: Number(c.height),
          coinbase: c.coinbase === 1,
        })),
        pending: coins.filter((c) => c.pending === 1).map((c) => c.outpoint),
        undo,
        txs: [...txs].map(([txid, raw]) => ({ txid, raw })),
      };
    });
  }

  /** Saves the tracker's changes (see the module header for when it writes what). */
  async saveTracker(save: TrackerSave): Promise<TrackerSaved> {
    const now = this.#now();
    return runOp('saveTracker', () =>
      this.#db.transaction().execute(async (trx) => {
        const created = await trx
          .insertInto('chain_tip')
          .values({ id: 1, height: null, hash: null, max_undo: save.maxUndo, updated_at: now })
          .onConflict((oc) => oc.column('id').doNothing())
          .executeTakeFirst();
        let read = trx.selectFrom('chain_tip').selectAll().where('id', '=', 1);
        if (this.#pg) read = read.forUpdate();
        const row = await read.executeTakeFirstOrThrow();
        const stored: ChainTip | null =
          row.height === null || row.hash === null ? null : { height: Number(row.height), hash: row.hash };
        const fresh = (created.numInsertedOrUpdatedRows ?? 0n) > 0n;
        let whole = fresh || save.whole;
        if (!whole) {
          if (save.base !== undefined && sameTip(stored, save.base)) {
            await this.#writeChanges(trx, save.changes);
          } else if (sameTip(stored, save.tip)) {
            return 'equal';
          } else if (stored !== null && stored.height > (save.tip?.height ?? -1)) {
            return 'ahead';
          } else {
            whole = true;
          }
        }
        if (whole) await this.#writeWhole(trx, save.full());
        await trx
          .updateTable('chain_tip')
          .set({
            height: save.tip?.height ?? null,
            hash: save.tip?.hash ?? null,
            max_undo: save.maxUndo,
            updated_at: now,
          })
          .where('id', '=', 1)
          .execute();
        return 'written';
      }),
    );
  }

  async #writeChanges(trx: Transaction<Tables>, c: TrackerChanges): Promise<void> {
    for (const part of chunks(c.remove)) {
      await trx.deleteFrom('chain_coins').where('outpoint', 'in', part).execute();
    }
    const removedTxids = [...new Set(c.remove.map((o) => o.slice(0, 64)))];
    for (const part of chunks(removedTxids)) {
      await trx
        .deleteFrom('chain_txs')
        .where('txid', 'in', part)
        .where(({ not, exists, selectFrom }) =>
          not(
            exists(
              selectFrom('chain_coins')
                .select('chain_coins.txid')
                .whereRef('chain_coins.txid', '=', 'chain_txs.txid'),
            ),
          ),
        )
        .execute();
    }
    await this.#insertCoins(trx, c.upsert);
    if (c.rewriteFrom !== null) {
      await trx.deleteFrom('chain_undo').where('height', '>=', c.rewriteFrom).execute();
    }
    await trx.deleteFrom('chain_undo').where('height', '<', c.undoFrom).execute();
    for (const part of chunks(c.undo)) {
      await trx
        .insertInto('chain_undo')
        .values(part.map((u) => ({ height: u.height, body: u.body })))
        .onConflict((oc) => oc.column('height').doUpdateSet((eb) => ({ body: eb.ref('excluded.body') })))
        .execute();
    }
  }

  async #writeWhole(trx: Transaction<Tables>, full: TrackerJson): Promise<void> {
    await trx.deleteFrom('chain_coins').execute();
    await trx.deleteFrom('chain_txs').execute();
    await trx.deleteFrom('chain_undo').execute();
    const raws = new Map(full.txs.map((t) => [t.txid, t.raw]));
    const pending = new Set(full.pending);
    await this.#insertCoins(
      trx,
      full.utxos.map((coin) => ({
        coin,
        pending: pending.has(`${coin.txid}:${coin.vout}`),
        raw: raws.get(coin.txid) ?? '',
      })),
    );
    for (const block of full.undo) {
      const txids = new Set(block.ops.flatMap((op) => ('remove' in op ? [op.remove.txid] : [])));
      const txs = [...txids].map((txid) => ({ txid, raw: raws.get(txid) ?? '' }));
      await trx
        .insertInto('chain_undo')
        .values({ height: block.height, body: JSON.stringify({ block, txs }) })
        .execute();
    }
  }

  async #insertCoins(trx: Transaction<Tables>, coins: TrackerChanges['upsert']): Promise<void> {
    for (const part of chunks(coins)) {
      await trx
        .insertInto('chain_coins')
        .values(
          part.map(({ coin, pending }) => ({
            outpoint: `${coin.txid}:${coin.vout}`,
            txid: coin.txid,
            vout: coin.vout,
            value: coin.value,
            script: coin.script,
            wallet: coin.wallet,
            branch: coin.branch,
            idx: coin.index,
            height: coin.height,
            coinbase: coin.coinbase ? 1 : 0,
            pending: pending ? 1 : 0,
          })),
        )
        .onConflict((oc) =>
          oc.column('outpoint').doUpdateSet((eb) => ({
            txid: eb.ref('excluded.txid'),
            vout: eb.ref('excluded.vout'),
            value: eb.ref('excluded.value'),
            script: eb.ref('excluded.script'),
            wallet: eb.ref('excluded.wallet'),
            branch: eb.ref('excluded.branch'),
            idx: eb.ref('excluded.idx'),
            height: eb.ref('excluded.height'),
            coinbase: eb.ref('excluded.coinbase'),
            pending: eb.ref('excluded.pending'),
          })),
        )
        .execute();
      const txs = new Map(part.map(({ coin, raw }) => [coin.txid, raw]));
      await trx
        .insertInto('chain_txs')
        .values([...txs].map(([txid, raw]) => ({ txid, raw })))
        .onConflict((oc) => oc.column('txid').doNothing())
        .execute();
    }
  }
}

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}
