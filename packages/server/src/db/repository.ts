/**
 * The coordinator's storage (docs/architecture.md "Storage", "The withdrawal
 * flow"): one store per kind of record, over Kysely on SQLite or PostgreSQL.
 *
 * | store              | records                                  | file                 |
 * | ------------------ | ---------------------------------------- | -------------------- |
 * | `intents`          | intents, their status, PSBT and txid     | intent-store.ts      |
 * | `approvals`        | approvals on intents                     | intent-store.ts      |
 * | `transactions`     | what was broadcast for an intent         | transaction-store.ts |
 * | `jobs`             | signer jobs and their results (receipts) | job-store.ts         |
 * | `audit`            | the audit log and signers' checkpoints   | audit-store.ts       |
 * | `governance`       | governance entries                       | governance-store.ts  |
 * | `proposals`        | governance proposals and signatures      | governance-store.ts  |
 * | `outbox`           | webhook notifications                    | outbox-store.ts      |
 * | `nonces`           | RFC 9421 request nonces                  | nonce-store.ts       |
 * | `kv`               | small named state                        | kv-store.ts          |
 * | `chain`            | coin reservations, UTXO tracker rows     | chain-store.ts       |
 * | `evm`              | EVM Safe proposals and their nonces      | evm-store.ts         |
 * | `bumps`            | fee bumps and their replacements         | bump-store.ts        |
 * | `notices`          | jobs queued, told across coordinators    | notices.ts           |
 * | `metrics`          | what GET /metrics reads                  | metrics-store.ts     |
 *
 * The coordinator is trusted for availability only, so nothing here decides
 * whether a transfer may happen: signers re-verify every signed object they
 * receive. What the stores must get right is that several coordinators
 * sharing one PostgreSQL database (docs/architecture.md "Scale") never
 * disagree about what was stored, so each operation that must be atomic
 * rests on the database itself (keys, compare-and-set, row locks), not on
 * process memory; each store's doc comment says which invariants its
 * transactions keep. One transaction spans two kinds of record: an intent,
 * approval or status change and the audit entry that records it commit
 * together (intent-store.ts, through AuditStore.appendIn); and a fee bump
 * moves the intent's transaction with the bump (bump-store.ts).
 *
 * Every failure is a CustosError: NOT_FOUND, CONFLICT, DUPLICATE_INTENT,
 * NOT_AUTHORIZED and INVALID_VALUE as documented per method, UNAVAILABLE when
 * the database cannot be reached (retry), INTERNAL otherwise; never a driver
 * error with SQL in its message (errors.ts, rows.ts).
 */
import type { Millis } from '@custos/core';
import { sql } from 'kysely';
import { AuditStore } from './audit-store.js';
import { BumpStore } from './bump-store.js';
import { ChainStore } from './chain-store.js';
import type { CoordinatorDb } from './connect.js';
import { EvmStore } from './evm-store.js';
import { GovernanceStore, ProposalStore } from './governance-store.js';
import { ApprovalStore, IntentStore } from './intent-store.js';
import { JobStore } from './job-store.js';
import { KvStore } from './kv-store.js';
import { MetricsStore } from './metrics-store.js';
import { NonceStore } from './nonce-store.js';
import { JobNotices } from './notices.js';
import { OutboxStore } from './outbox-store.js';
import { runOp } from './rows.js';
import { TransactionStore } from './transaction-store.js';

export {
  AUDIT_LOCK_KEY,
  type AuditEvent,
  type AuditRecord,
  AuditStore,
  MAX_AUDIT_PAGE,
} from './audit-store.js';
export {
  type GovernanceRecord,
  GovernanceStore,
  MAX_GOVERNANCE_PAGE,
  type ProposalRecord,
  ProposalStore,
} from './governance-store.js';
export {
  type ApprovalRecord,
  ApprovalStore,
  type IntentPage,
  type IntentQuery,
  type IntentRecord,
  type IntentStatusChange,
  IntentStore,
} from './intent-store.js';
export { type JobRecord, JobStore } from './job-store.js';
export { KvStore } from './kv-store.js';
export { NonceStore } from './nonce-store.js';
export { type OutboxRecord, OutboxStore } from './outbox-store.js';
export { MAX_PAGE } from './rows.js';
export type { IntentStatus, JobStatus, ProposalStatus } from './schema.js';
export { INTENT_STATUSES, JOB_STATUSES, PROPOSAL_STATUSES } from './schema.js';
export { type TransactionRecord, TransactionStore } from './transaction-store.js';

export interface StoreOptions {
  /** The clock for times the store records (received, updated, delivered). Default Date.now. */
  readonly now?: () => Millis;
  /** A delivered job not completed within this long is handed out again (default 60 s). */
  readonly redeliverAfterMs?: number;
  /** nonces.use deletes expired nonces at most this often (default 60 s). */
  readonly nonceSweepEveryMs?: number;
}

/**
 * The coordinator's storage: each store over one CoordinatorDb. Any number
 * of instances (in any number of processes) may share one PostgreSQL
 * database.
 *
 * @example
 * const store = new Store(await openDatabase({ sqlitePath: 'custos.db' }));
 * await store.intents.insert(signed);
 */
export class Store {
  readonly intents: IntentStore;
  readonly approvals: ApprovalStore;
  readonly transactions: TransactionStore;
  readonly jobs: JobStore;
  readonly audit: AuditStore;
  readonly governance: GovernanceStore;
  readonly proposals: ProposalStore;
  readonly outbox: OutboxStore;
  readonly nonces: NonceStore;
  readonly kv: KvStore;
  readonly chain: ChainStore;
  readonly evm: EvmStore;
  readonly bumps: BumpStore;
  readonly notices: JobNotices;
  readonly metrics: MetricsStore;
  readonly #database: CoordinatorDb;

  constructor(database: CoordinatorDb, opts: StoreOptions = {}) {
    const now = opts.now ?? Date.now;
    this.#database = database;
    // One AuditStore: the intent and approval stores append through it, and its feed's readers
    // are woken by every append this process commits.
    this.audit = new AuditStore(database, now);
    this.intents = new IntentStore(database, this.audit, now);
    this.approvals = new ApprovalStore(database, this.audit, now);
    this.transactions = new TransactionStore(database, now);
    this.jobs = new JobStore(database, this.audit, now, opts.redeliverAfterMs);
    this.governance = new GovernanceStore(database, now);
    this.proposals = new ProposalStore(database, now);
    this.outbox = new OutboxStore(database, now);
    this.nonces = new NonceStore(database, opts.nonceSweepEveryMs);
    this.kv = new KvStore(database, now);
    this.chain = new ChainStore(database, opts.now);
    this.evm = new EvmStore(database, opts.now);
    this.bumps = new BumpStore(database, opts.now);
    this.notices = new JobNotices(database);
    this.metrics = new MetricsStore(database);
  }

  /** Throws UNAVAILABLE unless the database answers (for health checks). */
  async ping(): Promise<void> {
    await runOp('ping', () => sql`select 1`.execute(this.#database.db));
  }
}
