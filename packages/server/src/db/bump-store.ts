/**
 * The coordinator's rows for fee bumps (issue 13, pipeline/bump.ts): one row
 * per signed bump, with the replacement PSBT built for it, its txid and fee,
 * and what became of it:
 *
 *   signing -> broadcast -> mined      (the replacement confirmed)
 *                        -> replaced   (another transaction of the intent confirmed instead)
 *   signing -> refused                 (signers refused it, or the node did)
 *
 * Every move is a compare-and-set on the status, so of several coordinators
 * on one database one broadcasts and one audits. The intent's own row and
 * its `transactions` row belong to intent-store.ts and transaction-store.ts,
 * with one exception kept here: `markBroadcast` and `switchTransaction`
 * point them at whichever transaction of the intent is the one to follow
 * (the replacement once broadcast, or the original if it is mined instead)
 * in the same transaction as the bump's move, so nobody reads a broadcast
 * bump while the intent still names the transaction it replaced. A bump's
 * jobs are withdrawn through the job store (jobs.withdraw).
 */
import {
  CustosError,
  canonicalize,
  type Digest,
  decode,
  type Millis,
  type SignedBump,
  signedBump,
} from '@custos/core';
import type { InsertResult, Kysely, Selectable, Transaction } from 'kysely';
import type { CoordinatorDb } from './connect.js';
import { classifyDbError } from './errors.js';
import { runOp } from './rows.js';
import type { Int8, Tables } from './schema.js';

export const BUMP_STATUSES = ['signing', 'broadcast', 'mined', 'replaced', 'refused'] as const;
export type BumpStatus = (typeof BUMP_STATUSES)[number];

export interface BumpsTable {
  id: string;
  intent: string;
  body: string;
  fee_rate: string;
  psbt: string;
  txid: string;
  fee: string;
  status: string;
  code: string | null;
  message: string | null;
  raw_hex: string | null;
  replaced_txid: string | null;
  replaced_hex: string | null;
  created_at: Int8;
  updated_at: Int8;
}

type BumpTables = Tables & { bumps: BumpsTable };

export interface BumpRecord {
  /** The bump's digest. */
  readonly id: Digest;
  readonly intent: Digest;
  readonly signed: SignedBump;
  /** The unsigned replacement PSBT (standard base64) the signers are asked to sign. */
  readonly psbt: string;
  readonly txid: string;
  readonly fee: bigint;
  readonly feeRate: bigint;
  readonly status: BumpStatus;
  readonly code: string | null;
  readonly message: string | null;
  /** The final replacement, once broadcast. */
  readonly rawHex: string | null;
  /** The transaction it replaced when it was broadcast (the original or an earlier replacement). */
  readonly replacedTxid: string | null;
  readonly replacedHex: string | null;
  readonly createdAt: Millis;
  readonly updatedAt: Millis;
}

export class BumpStore {
  readonly #db: Kysely<BumpTables>;
  readonly #now: () => Millis;

  constructor(database: CoordinatorDb, now: () => Millis = Date.now) {
    this.#db = database.db as unknown as Kysely<BumpTables>;
    this.#now = now;
  }

  /**
   * Stores a new bump in `signing`; false when this bump is stored already (a
   * retry). Throws CONFLICT when another bump of the intent is in `signing`
   * (one at a time, kept by the index bumps_one_signing).
   */
  async insert(b: {
    id: Digest;
    intent: Digest;
    signed: SignedBump;
    psbt: string;
    txid: string;
    fee: bigint;
  }): Promise<boolean> {
    const now = this.#now();
    return runOp('bumps.insert', async () => {
      let res: InsertResult;
      try {
        res = await this.#db
          .insertInto('bumps')
          .values({
            id: b.id,
            intent: b.intent,
            body: canonicalize(b.signed),
            fee_rate: b.signed.bump.feeRate,
            psbt: b.psbt,
            txid: b.txid,
            fee: b.fee.toString(),
            status: 'signing',
            code: null,
            message: null,
            raw_hex: null,
            replaced_txid: null,
            replaced_hex: null,
            created_at: now,
            updated_at: now,
          })
          .onConflict((oc) => oc.column('id').doNothing())
          .executeTakeFirst();
      } catch (err) {
        // bumps_one_signing (migration 0009): another bump of this intent is being signed.
        if (classifyDbError(err) === 'unique') {
          throw new CustosError('CONFLICT', 'another bump of this intent is being signed; wait for it', {
            intent: b.intent,
          });
        }
        throw err;
      }
      return (res.numInsertedOrUpdatedRows ?? 0n) > 0n;
    });
  }

  async get(id: string): Promise<BumpRecord | null> {
    return runOp('bumps.get', async () => {
      const row = await this.#db.selectFrom('bumps').selectAll().where('id', '=', id).executeTakeFirst();
      return row === undefined ? null : toRecord(row);
    });
  }

  /** The bumps of an intent, oldest first. */
  async forIntent(intent: string): Promise<BumpRecord[]> {
    return runOp('bumps.forIntent', async () => {
      const rows = await this.#db
        .selectFrom('bumps')
        .selectAll()
        .where('intent', '=', intent)
        .orderBy('created_at')
        .orderBy('id')
        .execute();
      return rows.map(toRecord);
    });
  }

  /**
   * The bumps of these intents whose replacement went out (broadcast, or
   * settled as mined or replaced: a reorganization can still undo that while
   * the intent is below its confirmations), oldest first.
   */
  async broadcastFor(intents: readonly string[]): Promise<BumpRecord[]> {
    if (intents.length === 0) return [];
    return runOp('bumps.broadcastFor', async () => {
      const rows = await this.#db
        .selectFrom('bumps')
        .selectAll()
        .where('intent', 'in', [...intents])
        .where('status', 'in', ['broadcast', 'mined', 'replaced'])
        .orderBy('created_at')
        .execute();
      return rows.map(toRecord);
    });
  }

  /** Bumps still being signed (what the loop advances). */
  async signing(limit = 100): Promise<BumpRecord[]> {
    return runOp('bumps.signing', async () => {
      const rows = await this.#db
        .selectFrom('bumps')
        .selectAll()
        .where('status', '=', 'signing')
        .orderBy('created_at')
        .limit(limit)
        .execute();
      return rows.map(toRecord);
    });
  }

  /** Compare-and-set of a bump's status; true when this call moved it. */
  async move(
    id: string,
    from: BumpStatus | readonly BumpStatus[],
    to: BumpStatus,
    extra: { code?: string; message?: string } = {},
  ): Promise<boolean> {
    const froms = typeof from === 'string' ? [from] : [...from];
    return runOp('bumps.move', async () => {
      const res = await this.#db
        .updateTable('bumps')
        .set({
          status: to,
          updated_at: this.#now(),
          ...(extra.code === undefined ? {} : { code: extra.code }),
          ...(extra.message === undefined ? {} : { message: extra.message.slice(0, 1000) }),
        })
        .where('id', '=', id)
        .where('status', 'in', froms)
        .executeTakeFirst();
      return res.numUpdatedRows > 0n;
    });
  }

  /**
   * signing -> broadcast for a bump whose replacement the node took, and the
   * intent's transaction row and txid pointed at the replacement, in one
   * transaction: nobody reads a broadcast bump with the intent still on the
   * transaction it replaced. False when another caller moved it first.
   */
  async markBroadcast(
    id: string,
    t: {
      intent: string;
      txid: string;
      rawHex: string;
      replacedTxid: string;
      replacedHex: string;
      at: Millis;
    },
  ): Promise<boolean> {
    return runOp('bumps.markBroadcast', () =>
      this.#db.transaction().execute(async (trx) => {
        const moved = await trx
          .updateTable('bumps')
          .set({
            status: 'broadcast',
            raw_hex: t.rawHex,
            replaced_txid: t.replacedTxid,
            replaced_hex: t.replacedHex,
            updated_at: this.#now(),
          })
          .where('id', '=', id)
          .where('status', '=', 'signing')
          .executeTakeFirst();
        if (moved.numUpdatedRows === 0n) return false;
        await this.#switch(trx, t.intent, t);
        return true;
      }),
    );
  }

  /**
   * Points the intent's transaction row (and the intent's txid) at `txid`:
   * the transaction of the intent to follow from now on. Its confirmations
   * start again from what the chain says.
   */
  async switchTransaction(intent: string, t: { txid: string; rawHex: string; at: Millis }): Promise<void> {
    await runOp('bumps.switchTransaction', () =>
      this.#db.transaction().execute((trx) => this.#switch(trx, intent, t)),
    );
  }

  async #switch(
    trx: Transaction<BumpTables>,
    intent: string,
    t: { txid: string; rawHex: string; at: Millis },
  ): Promise<void> {
    const res = await trx
      .updateTable('transactions')
      .set({
        txid: t.txid,
        raw_hex: t.rawHex,
        broadcast_at: t.at,
        confirmations: 0,
        block_height: null,
        block_hash: null,
        updated_at: this.#now(),
      })
      .where('intent', '=', intent)
      .executeTakeFirst();
    if (res.numUpdatedRows === 0n) {
      throw new CustosError('NOT_FOUND', 'no transaction for this intent', { intent });
    }
    await trx
      .updateTable('intents')
      .set({ txid: t.txid, updated_at: this.#now() })
      .where('id', '=', intent)
      .execute();
  }
}

function toRecord(r: Selectable<BumpsTable>): BumpRecord {
  if (!(BUMP_STATUSES as readonly string[]).includes(r.status)) {
    throw new CustosError('INTERNAL', `a stored bump has an unknown status ${r.status.slice(0, 40)}`);
  }
  return {
    id: r.id as Digest,
    intent: r.intent as Digest,
    signed: decode(signedBump, r.body),
    psbt: r.psbt,
    txid: r.txid,
    fee: BigInt(r.fee),
    feeRate: BigInt(r.fee_rate),
    status: r.status as BumpStatus,
    code: r.code,
    message: r.message,
    rawHex: r.raw_hex,
    replacedTxid: r.replaced_txid,
    replacedHex: r.replaced_hex,
    createdAt: Number(r.created_at) as Millis,
    updatedAt: Number(r.updated_at) as Millis,
  };
}
