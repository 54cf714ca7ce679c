/**
 * The coordinator's tables as Kysely sees them (docs/architecture.md "Storage").
 *
 * One schema serves SQLite and PostgreSQL. Two differences leak through and
 * are handled here and in the repository, never by callers:
 * - PostgreSQL returns BIGINT as a string (it may exceed 2^53), SQLite as a
 *   number. Times (ms) and sequence numbers are BIGINT, so their read type is
 *   `number | string | bigint`; the repository turns them into safe integers.
 * - Amounts can exceed 2^53 (wei), so they are TEXT, the canonical decimal
 *   string of the signed object, never a number.
 *
 * Every signed object is stored as its canonical JSON (RFC 8785) text, the
 * bytes its signature covers; the other columns are copies for indexing and
 * filtering. The coordinator is trusted for availability only (THREATS 7, 9):
 * a signer re-verifies everything it receives, so these columns are never a
 * source of authority.
 */
import type { ColumnType } from 'kysely';

/** A BIGINT read back as string (PostgreSQL) or number (SQLite), written as a number. */
export type Int8 = ColumnType<number | string | bigint, number, number>;
export type NullableInt8 = ColumnType<number | string | bigint | null, number | null, number | null>;
/** A generated, ever-increasing key (PostgreSQL identity, SQLite AUTOINCREMENT): never written. */
export type Serial = ColumnType<number | string | bigint, never, never>;
/** A 32-bit INTEGER with a default: the same type on both dialects. */
export type Int4Default = ColumnType<number, number | undefined, number>;

export const INTENT_STATUSES = [
  'pending',
  'approved',
  'signing',
  'signed',
  'broadcast',
  'confirmed',
  'refused',
  'rejected',
  'expired',
] as const;
export type IntentStatus = (typeof INTENT_STATUSES)[number];

export const PROPOSAL_STATUSES = ['open', 'applied', 'superseded'] as const;
export type ProposalStatus = (typeof PROPOSAL_STATUSES)[number];

export const JOB_STATUSES = ['queued', 'delivered', 'done'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export interface IntentsTable {
  /**
   * Order of arrival, for cursor pagination. It is the primary key because
   * SQLite only generates values for an INTEGER PRIMARY KEY; `id` is UNIQUE,
   * which refuses a second insert exactly as a primary key would.
   */
  received_seq: Serial;
  /** The intent digest. */
  id: string;
  org: string;
  wallet: string;
  chain: string;
  asset: string;
  amount: string;
  destination: string;
  requester: string;
  device: string;
  created_at: Int8;
  expires_at: Int8;
  /** Canonical JSON of the SignedIntent as received. */
  body: string;
  status: IntentStatus;
  status_code: string | null;
  /** The sentence that goes with status_code (migration 0002). */
  status_message: string | null;
  txid: string | null;
  psbt: string | null;
  /** A batch intent's outputs, canonical JSON; null for one output (migration 0007). */
  outputs: string | null;
  received_at: Int8;
  updated_at: Int8;
}

export interface ApprovalsTable {
  intent: string;
  approver: string;
  device: string;
  decision: 'approve' | 'reject';
  /** The approval digest (what the device signed). */
  digest: string;
  at: Int8;
  expires_at: Int8;
  /** Canonical JSON of the SignedApproval. */
  body: string;
  received_at: Int8;
}

export interface GovernanceTable {
  seq: ColumnType<number | string | bigint, number, never>;
  digest: string;
  kind: string;
  /** Canonical JSON of the SignedGovernanceEntry. */
  body: string;
  received_at: Int8;
}

export interface GovernanceProposalsTable {
  /** The digest of the proposed entry. */
  id: string;
  seq: Int8;
  kind: string;
  /** Canonical JSON of the GovernanceEntry. */
  entry: string;
  /** Canonical JSON array of GovernanceSignature. */
  signatures: string;
  status: ProposalStatus;
  created_at: Int8;
  updated_at: Int8;
}

export interface SignerJobsTable {
  id: string;
  intent: string;
  signer: string;
  /** Canonical JSON of the SignerJob. */
  body: string;
  status: JobStatus;
  created_at: Int8;
  delivered_at: NullableInt8;
  /** How many times the job was handed out (more than one: a signer did not answer in time). */
  deliveries: Int4Default;
  /** Canonical JSON of the SignerResult. */
  result: string | null;
  outcome: 'signed' | 'refused' | null;
  code: string | null;
  completed_at: NullableInt8;
}

export interface TransactionsTable {
  intent: string;
  txid: string;
  raw_hex: string;
  broadcast_at: Int8;
  confirmations: Int4Default;
  block_height: number | null;
  block_hash: string | null;
  updated_at: Int8;
}

export interface AuditLogTable {
  seq: ColumnType<number | string | bigint, number, never>;
  prev: string;
  at: Int8;
  actor: string;
  event: string;
  subject: string;
  digest: string;
  /** auditEntryDigest of this entry: what the next entry's prev and checkpoints commit to. */
  hash: string;
}

export interface AuditCheckpointsTable {
  signer: string;
  seq: ColumnType<number | string | bigint, number, never>;
  head: string;
  /** Canonical JSON of the SignedCheckpoint. */
  body: string;
  received_at: Int8;
}

export interface OutboxTable {
  id: Serial;
  event: string;
  /** JSON text, sent as is. */
  payload: string;
  target: string;
  attempts: Int4Default;
  next_attempt_at: Int8;
  delivered_at: NullableInt8;
  last_error: string | null;
  created_at: Int8;
}

export interface RequestNoncesTable {
  key_id: string;
  nonce: string;
  expires_at: Int8;
}

export interface KvTable {
  key: string;
  value: string;
  updated_at: Int8;
}

/** A coin promised to an intent being signed (migration 0003): one row per outpoint. */
export interface CoinReservationsTable {
  /** `txid:vout` */
  outpoint: string;
  intent: string;
  reserved_at: Int8;
}

/** The chain tracker's tip (migration 0004): one row, id 1. */
export interface ChainTipTable {
  id: number;
  height: NullableInt8;
  hash: string | null;
  max_undo: number;
  updated_at: Int8;
}

/** A coin the chain tracker follows (migration 0004); its funding transaction is in chain_txs. */
export interface ChainCoinsTable {
  outpoint: string;
  txid: string;
  vout: Int8;
  /** Satoshi, decimal text. */
  value: string;
  /** Hex. */
  script: string;
  wallet: string;
  branch: number;
  idx: Int8;
  height: Int8;
  /** 0 or 1. */
  coinbase: number;
  /** 0 or 1. */
  pending: number;
}

export interface ChainTxsTable {
  txid: string;
  /** Hex of the transaction as found in its block. */
  raw: string;
}

/** One block of the tracker's undo data: JSON `{ block, txs }` (UtxoTracker.undoJson). */
export interface ChainUndoTable {
  height: Int8;
  body: string;
}

export interface Tables {
  intents: IntentsTable;
  approvals: ApprovalsTable;
  governance: GovernanceTable;
  governance_proposals: GovernanceProposalsTable;
  signer_jobs: SignerJobsTable;
  transactions: TransactionsTable;
  audit_log: AuditLogTable;
  audit_checkpoints: AuditCheckpointsTable;
  outbox: OutboxTable;
  request_nonces: RequestNoncesTable;
  kv: KvTable;
  coin_reservations: CoinReservationsTable;
  chain_tip: ChainTipTable;
  chain_coins: ChainCoinsTable;
  chain_txs: ChainTxsTable;
  chain_undo: ChainUndoTable;
}
