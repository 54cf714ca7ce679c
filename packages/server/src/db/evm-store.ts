/**
 * The coordinator's rows for EVM Safe intents (issue 9, pipeline/evm.ts):
 * one row per intent with the SafeTx proposal the coordinator built, its
 * EIP-712 hash, the Safe nonce it holds, and what became of its execution.
 *
 * Why the nonce lives here and not in memory: a Safe executes its
 * transactions strictly in nonce order, so the nonce of a new proposal is
 * the on-chain nonce plus the proposals still on their way, and several
 * coordinators on one database must agree on it. The unique index over
 * (chain, safe, live_nonce) makes a second live proposal for one nonce
 * impossible: of two coordinators allocating at once, one insert wins and
 * the other takes the next free nonce. A proposal whose intent was refused
 * or expired gives its nonce back (live_nonce NULL), so the nonce is not
 * skipped: a Safe cannot execute past a gap.
 */
import { CustosError, type Millis } from '@custos/core';
import type { ColumnType, Kysely } from 'kysely';
import type { CoordinatorDb } from './connect.js';
import { dbError } from './errors.js';
import { runOp } from './rows.js';
import type { Int8, NullableInt8, Tables } from './schema.js';

export interface EvmSafeTxsTable {
  intent: string;
  chain: string;
  safe: string;
  nonce: Int8;
  live_nonce: NullableInt8;
  /** The proposal as the signer job carries it (core jobs.ts JobSafeTx), JSON. */
  safe_tx: string;
  /** 0x and 64 lower-case hex digits. */
  safe_tx_hash: string;
  exec_hash: string | null;
  executed_at: NullableInt8;
  block_number: NullableInt8;
  block_hash: string | null;
  confirmations: ColumnType<number, number | undefined, number>;
  created_at: Int8;
}

type EvmTables = Tables & { evm_safe_txs: EvmSafeTxsTable };

export interface SafeTxRecord {
  readonly intent: string;
  /** CAIP-2, eip155:<id>. */
  readonly chain: string;
  readonly safe: string;
  readonly nonce: bigint;
  /** Whether the row still holds its nonce (its intent is not refused or expired). */
  readonly live: boolean;
  /** JSON of the proposal (JobSafeTx). */
  readonly safeTx: string;
  readonly safeTxHash: string;
  /** The hash of the Ethereum transaction that executed it, once sent. */
  readonly execHash: string | null;
  readonly executedAt: Millis | null;
  readonly blockNumber: bigint | null;
  readonly blockHash: string | null;
  readonly confirmations: number;
  readonly createdAt: Millis;
}

/** Intent statuses after which a proposal will never be executed by Custos: its nonce goes back. */
const ENDED = ['refused', 'expired', 'rejected'] as const;

/** Allocation attempts before giving up (another coordinator kept winning the race). */
const ALLOCATE_ATTEMPTS = 8;

export class EvmStore {
  readonly #db: Kysely<EvmTables>;
  readonly #now: () => Millis;

  constructor(database: CoordinatorDb, now: () => Millis = Date.now) {
    this.#db = database.db as unknown as Kysely<EvmTables>;
    this.#now = now;
  }

  async get(intent: string): Promise<SafeTxRecord | null> {
    return runOp('evm.get', async () => {
      const row = await this.#db
        .selectFrom('evm_safe_txs')
        .selectAll()
        .where('intent', '=', intent)
        .executeTakeFirst();
      return row === undefined ? null : toRecord(row);
    });
  }

  async byHash(safeTxHash: string): Promise<SafeTxRecord | null> {
    return runOp('evm.byHash', async () => {
      const row = await this.#db
        .selectFrom('evm_safe_txs')
        .selectAll()
        .where('safe_tx_hash', '=', safeTxHash.toLowerCase())
        .executeTakeFirst();
      return row === undefined ? null : toRecord(row);
    });
  }

  /**
   * The intent's proposal, allocating the lowest free nonce at or above
   * `onChainNonce` when it has none yet. `build(nonce)` makes the proposal
   * (JSON and hash) for a nonce. Idempotent per intent: a second call (a
   * retry, another coordinator) returns the row stored first.
   */
  async allocate(a: {
    intent: string;
    chain: string;
    safe: string;
    onChainNonce: bigint;
    build: (nonce: bigint) => { safeTx: string; safeTxHash: string };
  }): Promise<SafeTxRecord> {
    for (let attempt = 0; attempt < ALLOCATE_ATTEMPTS; attempt++) {
      const existing = await this.get(a.intent);
      if (existing !== null) return existing;
      await this.releaseEnded();
      const live = await runOp('evm.live', () =>
        this.#db
          .selectFrom('evm_safe_txs')
          .select('live_nonce')
          .where('chain', '=', a.chain)
          .where('safe', '=', a.safe)
          .where('live_nonce', 'is not', null)
          .execute(),
      );
      const held = new Set(live.map((r) => BigInt(r.live_nonce as string | number | bigint)));
      let nonce = a.onChainNonce;
      while (held.has(nonce)) nonce++;
      if (nonce > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new CustosError('INVALID_VALUE', 'a Safe nonce beyond 2^53 - 1');
      }
      const built = a.build(nonce);
      try {
        await this.#db
          .insertInto('evm_safe_txs')
          .values({
            intent: a.intent,
            chain: a.chain,
            safe: a.safe,
            nonce: Number(nonce),
            live_nonce: Number(nonce),
            safe_tx: built.safeTx,
            safe_tx_hash: built.safeTxHash.toLowerCase(),
            exec_hash: null,
            executed_at: null,
            block_number: null,
            block_hash: null,
            confirmations: 0,
            created_at: this.#now(),
          })
          .execute();
      } catch (err) {
        const mapped = dbError(err, 'evm.allocate');
        if (mapped.code === 'UNAVAILABLE') throw mapped;
        // A unique key lost: this intent was allocated by another coordinator, or its nonce was.
      }
    }
    throw new CustosError('CONFLICT', 'no Safe nonce could be allocated; retry', { intent: a.intent });
  }

  /** Gives back the nonces of proposals whose intents ended without execution. */
  async releaseEnded(): Promise<void> {
    await runOp('evm.releaseEnded', () =>
      this.#db
        .updateTable('evm_safe_txs')
        .set({ live_nonce: null })
        .where('live_nonce', 'is not', null)
        .where('exec_hash', 'is', null)
        .where('intent', 'in', (eb) =>
          eb
            .selectFrom('intents')
            .select('id')
            .where('status', 'in', [...ENDED]),
        )
        .execute(),
    );
  }

  /** Records the Ethereum transaction that executed (or executes) the proposal. */
  async recordExecution(intent: string, execHash: string): Promise<void> {
    await runOp('evm.recordExecution', () =>
      this.#db
        .updateTable('evm_safe_txs')
        .set({ exec_hash: execHash.toLowerCase(), executed_at: this.#now() })
        .where('intent', '=', intent)
        .execute(),
    );
  }

  async updateConfirmations(
    intent: string,
    c: { blockNumber: bigint | null; blockHash: string | null; confirmations: number },
  ): Promise<void> {
    await runOp('evm.updateConfirmations', () =>
      this.#db
        .updateTable('evm_safe_txs')
        .set({
          block_number: c.blockNumber === null ? null : Number(c.blockNumber),
          block_hash: c.blockHash,
          confirmations: c.confirmations,
        })
        .where('intent', '=', intent)
        .execute(),
    );
  }

  /**
   * The row stops holding its nonce: its execution is confirmed (the Safe's
   * nonce is past it for good) or its intent ended. The loop stops looking at it.
   */
  async settle(intent: string): Promise<void> {
    await runOp('evm.settle', () =>
      this.#db.updateTable('evm_safe_txs').set({ live_nonce: null }).where('intent', '=', intent).execute(),
    );
  }

  /** Live proposals of every Safe, oldest nonce first (what the loop looks at). */
  async live(): Promise<SafeTxRecord[]> {
    return runOp('evm.liveAll', async () => {
      const rows = await this.#db
        .selectFrom('evm_safe_txs')
        .selectAll()
        .where('live_nonce', 'is not', null)
        .orderBy('chain')
        .orderBy('safe')
        .orderBy('nonce')
        .execute();
      return rows.map(toRecord);
    });
  }
}

/** An Int8 column as it comes back: a number on SQLite, a string on PostgreSQL. */
function big(v: string | number | bigint | null): bigint | null {
  return v === null ? null : BigInt(v);
}

function toRecord(r: {
  intent: string;
  chain: string;
  safe: string;
  nonce: string | number | bigint;
  live_nonce: string | number | bigint | null;
  safe_tx: string;
  safe_tx_hash: string;
  exec_hash: string | null;
  executed_at: string | number | bigint | null;
  block_number: string | number | bigint | null;
  block_hash: string | null;
  confirmations: number;
  created_at: string | number | bigint;
}): SafeTxRecord {
  return {
    intent: r.intent,
    chain: r.chain,
    safe: r.safe,
    nonce: BigInt(r.nonce),
    live: r.live_nonce !== null,
    safeTx: r.safe_tx,
    safeTxHash: r.safe_tx_hash,
    execHash: r.exec_hash,
    executedAt: r.executed_at === null ? null : (Number(r.executed_at) as Millis),
    blockNumber: big(r.block_number),
    blockHash: r.block_hash,
    confirmations: Number(r.confirmations),
    createdAt: Number(r.created_at) as Millis,
  };
}
