/**
 * The coordinator's record of what it broadcast (`transactions`): one row
 * per intent with the raw transaction and what the chain says of it.
 *
 * Invariants: one transaction per intent (the primary key is the intent;
 * recording another txid is CONFLICT, the same one again a no-op), and only
 * for an intent that exists (the foreign key). A fee bump points the row at
 * its replacement in the bump's own transaction (bump-store.ts).
 */
import { CustosError, type Digest, type Millis } from '@custos/core';
import type { Kysely, Selectable } from 'kysely';
import type { CoordinatorDb } from './connect.js';
import { classifyDbError } from './errors.js';
import { clamp, int, MAX_PAGE, runOp } from './rows.js';
import type { Tables, TransactionsTable } from './schema.js';

export interface TransactionRecord {
  readonly intent: Digest;
  readonly txid: string;
  readonly rawHex: string;
  readonly broadcastAt: Millis;
  readonly confirmations: number;
  readonly blockHeight: number | null;
  readonly blockHash: string | null;
  readonly updatedAt: Millis;
}

export class TransactionStore {
  readonly #db: Kysely<Tables>;
  readonly #now: () => Millis;

  constructor(database: CoordinatorDb, now: () => Millis = Date.now) {
    this.#db = database.db;
    this.#now = now;
  }

  /**
   * Records the broadcast transaction of an intent. Returns false if this txid
   * is already recorded for it. Throws CONFLICT if another txid is (one intent,
   * one transaction), NOT_FOUND if the intent is unknown.
   */
  async record(t: { intent: string; txid: string; rawHex: string; broadcastAt: Millis }): Promise<boolean> {
    return runOp('transactions.record', async () => {
      try {
        const res = await this.#db
          .insertInto('transactions')
          .values({
            intent: t.intent,
            txid: t.txid,
            raw_hex: t.rawHex,
            broadcast_at: t.broadcastAt,
            confirmations: 0,
            block_height: null,
            block_hash: null,
            updated_at: this.#now(),
          })
          .onConflict((oc) => oc.column('intent').doNothing())
          .executeTakeFirst();
        if ((res.numInsertedOrUpdatedRows ?? 0n) > 0n) return true;
      } catch (err) {
        if (classifyDbError(err) === 'foreign-key') {
          throw new CustosError('NOT_FOUND', 'no such intent', { intent: t.intent });
        }
        throw err;
      }
      const existing = await this.#db
        .selectFrom('transactions')
        .select('txid')
        .where('intent', '=', t.intent)
        .executeTakeFirst();
      if (existing?.txid === t.txid) return false;
      throw new CustosError('CONFLICT', 'another transaction is recorded for this intent', {
        intent: t.intent,
      });
    });
  }

  /** Updates what the chain says about an intent's transaction. Throws NOT_FOUND. */
  async update(
    intent: string,
    u: { confirmations: number; blockHeight: number | null; blockHash: string | null },
  ): Promise<void> {
    await runOp('transactions.update', async () => {
      const res = await this.#db
        .updateTable('transactions')
        .set({
          confirmations: u.confirmations,
          block_height: u.blockHeight,
          block_hash: u.blockHash,
          updated_at: this.#now(),
        })
        .where('intent', '=', intent)
        .executeTakeFirst();
      if (res.numUpdatedRows === 0n)
        throw new CustosError('NOT_FOUND', 'no transaction for this intent', { intent });
    });
  }

  /** The transaction of an intent, or null. */
  async get(intent: string): Promise<TransactionRecord | null> {
    return runOp('transactions.get', async () => {
      const row = await this.#db
        .selectFrom('transactions')
        .selectAll()
        .where('intent', '=', intent)
        .executeTakeFirst();
      return row === undefined ? null : transactionRecord(row);
    });
  }

  /** Transactions with fewer than `confirmations` confirmations, oldest broadcast first. */
  async below(confirmations: number, limit = MAX_PAGE): Promise<readonly TransactionRecord[]> {
    const max = clamp(limit, MAX_PAGE, MAX_PAGE);
    return runOp('transactions.below', async () => {
      const rows = await this.#db
        .selectFrom('transactions')
        .selectAll()
        .where('confirmations', '<', confirmations)
        .orderBy('broadcast_at')
        .orderBy('intent')
        .limit(max)
        .execute();
      return rows.map(transactionRecord);
    });
  }
}

function transactionRecord(r: Selectable<TransactionsTable>): TransactionRecord {
  return {
    intent: r.intent as Digest,
    txid: r.txid,
    rawHex: r.raw_hex,
    broadcastAt: int(r.broadcast_at),
    confirmations: r.confirmations,
    blockHeight: r.block_height,
    blockHash: r.block_hash,
    updatedAt: int(r.updated_at),
  };
}
