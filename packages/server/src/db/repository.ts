/**
 * The coordinator's storage operations (docs/architecture.md "Storage", "The withdrawal
 * flow"), one typed method each, over Kysely on SQLite or PostgreSQL.
 *
 * The coordinator is trusted for availability only, so nothing here decides
 * whether a transfer may happen: signers re-verify every signed object they
 * receive. What this layer must get right is that several coordinators
 * sharing one PostgreSQL database (docs/architecture.md "Scale") never disagree about
 * what was stored, so each operation that must be atomic rests on the
 * database itself, not on process memory:
 * - one intent per digest, one approval per (intent, approver, device), one
 *   governance entry per seq, one checkpoint per (signer, seq): primary and
 *   unique keys, so the loser of a race gets a stable code, never a second row;
 * - governance is appended only at head + 1, read and written in one
 *   transaction; a racing insert at the same seq fails on the key (CONFLICT);
 * - audit entries are appended one at a time: PostgreSQL takes a transaction
 *   advisory lock, SQLite's transactions begin IMMEDIATE (see connect.ts), so
 *   the head read and the insert after it are never interleaved and the chain
 *   never forks (THREATS 30);
 * - signer jobs are claimed with one UPDATE ... RETURNING over rows picked
 *   FOR UPDATE SKIP LOCKED (PostgreSQL), so concurrent claimers split the work
 *   and each job is handed out once; a job delivered but not answered within
 *   `redeliverAfterMs` is handed out again (a signer that crashed gets it back;
 *   the signer's own ledger makes a second delivery harmless, THREATS 32);
 * - a request nonce is used by an insert that either creates the row or finds
 *   it (THREATS 3): of concurrent uses, exactly one gets true.
 *
 * Signed objects are stored as their canonical JSON text (RFC 8785), the bytes
 * their signatures cover, and decoded again by the strict schema when read.
 * Every failure is a CustosError: NOT_FOUND, CONFLICT, DUPLICATE_INTENT,
 * NOT_AUTHORIZED and INVALID_VALUE as documented per method, UNAVAILABLE when
 * the database cannot be reached (retry), INTERNAL otherwise; never a driver
 * error with SQL in its message (errors.ts).
 */
import {
  type Address,
  type Amount,
  type AuditEntry,
  appendAudit,
  approvalDigest,
  auditEntryDigest,
  CustosError,
  canonicalize,
  type Digest,
  decode,
  type ErrorCode,
  type GovernanceEntry,
  type GovernanceHead,
  type GovernanceSignature,
  governanceDigest,
  governanceEntry,
  governanceSignature,
  intentDigest,
  isErrorCode,
  type LedgerEntry,
  MAX_BATCH_OUTPUTS,
  type Millis,
  type Payout,
  payout,
  type Schema,
  type SignedApproval,
  type SignedCheckpoint,
  type SignedGovernanceEntry,
  type SignedIntent,
  type SignerJob,
  type SignerResult,
  schema,
  signedApproval,
  signedCheckpoint,
  signedGovernanceEntry,
  signedIntent,
  signerJob,
  signerResult,
} from '@custos/core';
import { type Kysely, type Selectable, sql, type Transaction } from 'kysely';
import { BumpStore } from './bump-store.js';
import { ChainStore } from './chain-store.js';
import type { CoordinatorDb } from './connect.js';
import { classifyDbError, dbError } from './errors.js';
import { EvmStore } from './evm-store.js';
import { MetricsStore } from './metrics-store.js';
import { JobNotices } from './notices.js';
import type {
  GovernanceProposalsTable,
  IntentStatus,
  IntentsTable,
  JobStatus,
  OutboxTable,
  ProposalStatus,
  SignerJobsTable,
  Tables,
  TransactionsTable,
} from './schema.js';

export type { IntentStatus, JobStatus, ProposalStatus } from './schema.js';
export { INTENT_STATUSES, JOB_STATUSES, PROPOSAL_STATUSES } from './schema.js';

/** Most intents one listIntents page returns. */
export const MAX_PAGE = 200;
/** Most audit entries one auditRange call returns. */
export const MAX_AUDIT_PAGE = 10_000;
/** Most governance entries one governanceRange call returns (the job protocol's limit). */
export const MAX_GOVERNANCE_PAGE = 1000;

/**
 * Key of the PostgreSQL transaction advisory lock that serializes audit
 * appends (an arbitrary constant, "custos" in ASCII; one per database).
 */
export const AUDIT_LOCK_KEY = 0x637573746f73;

/** Stored objects are our own writes: allow more than the 1 MiB request limit (a genesis, a big PSBT). */
const STORED_LIMITS = { maxBytes: 64 << 20 };

export interface StoreOptions {
  /** The clock for times the store records (received, updated, delivered). Default Date.now. */
  readonly now?: () => Millis;
  /** A delivered job not completed within this long is handed out again (default 60 s). */
  readonly redeliverAfterMs?: number;
  /** useNonce deletes expired nonces at most this often (default 60 s). */
  readonly nonceSweepEveryMs?: number;
}

export interface IntentRecord {
  readonly id: Digest;
  /** Order of arrival; what cursors encode. */
  readonly receivedSeq: number;
  readonly signed: SignedIntent;
  /** The canonical JSON text of `signed`, as received. */
  readonly body: string;
  readonly status: IntentStatus;
  /** Why it was refused, rejected or expired. */
  readonly statusCode: ErrorCode | null;
  /** The sentence that goes with statusCode. */
  readonly statusMessage: string | null;
  readonly txid: string | null;
  /** The unsigned PSBT built for it (standard base64). */
  readonly psbt: string | null;
  readonly receivedAt: Millis;
  readonly updatedAt: Millis;
}

export interface IntentQuery {
  readonly status?: IntentStatus;
  readonly requester?: string;
  readonly wallet?: string;
  /** Page size, 1..200 (default 50; larger values are cut to 200). */
  readonly limit?: number;
  /** From a previous page's `next`. */
  readonly cursor?: string;
  /** Newest first (default) or oldest first. A cursor keeps the order it was made with. */
  readonly order?: 'desc' | 'asc';
}

export interface IntentPage {
  readonly intents: readonly IntentRecord[];
  /** The cursor of the next page, null when this is the last. */
  readonly next: string | null;
}

export interface IntentStatusChange {
  /** The status the intent must have now (compare-and-set). */
  readonly from: IntentStatus | readonly IntentStatus[];
  readonly to: IntentStatus;
  /** Left unchanged when undefined. */
  readonly code?: ErrorCode | null;
  /** The sentence that goes with the code. Left unchanged when undefined. */
  readonly message?: string | null;
  readonly txid?: string | null;
  readonly psbt?: string | null;
  /**
   * The audit entry of the change, appended in the same transaction: the
   * status and its record commit together or not at all (one transaction
   * per step), and an entry in the log means the row has moved (the preview
   * ledger follows the log on this, packages/server/src/preview-ledger.ts).
   */
  readonly audit?: AuditEvent;
}

export interface ApprovalRecord {
  readonly intent: Digest;
  readonly approver: string;
  readonly device: string;
  readonly decision: 'approve' | 'reject';
  /** The approval digest (what the device signed). */
  readonly digest: Digest;
  readonly signed: SignedApproval;
  readonly body: string;
  readonly receivedAt: Millis;
}

export interface GovernanceRecord {
  readonly seq: number;
  readonly digest: Digest;
  readonly kind: string;
  readonly signed: SignedGovernanceEntry;
  readonly body: string;
  readonly receivedAt: Millis;
}

export interface ProposalRecord {
  /** The digest of the proposed entry. */
  readonly id: Digest;
  readonly seq: number;
  readonly kind: string;
  readonly entry: GovernanceEntry;
  readonly signatures: readonly GovernanceSignature[];
  readonly status: ProposalStatus;
  readonly createdAt: Millis;
  readonly updatedAt: Millis;
}

export interface JobRecord {
  readonly id: string;
  readonly intent: Digest;
  readonly signer: string;
  readonly job: SignerJob;
  readonly body: string;
  readonly status: JobStatus;
  readonly createdAt: Millis;
  readonly deliveredAt: Millis | null;
  /** Times handed out; more than one means a signer did not answer in time. */
  readonly deliveries: number;
  readonly result: SignerResult | null;
  readonly completedAt: Millis | null;
}

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

export interface AuditEvent {
  readonly at: Millis;
  readonly actor: string;
  readonly event: string;
  readonly subject: string;
  readonly digest: Digest;
}

export interface AuditRecord {
  readonly entry: AuditEntry;
  /** auditEntryDigest(entry): what the next entry's prev and a checkpoint's head commit to. */
  readonly hash: Digest;
}

export interface OutboxRecord {
  readonly id: number;
  readonly event: string;
  /** JSON text, to send as is. */
  readonly payload: string;
  readonly target: string;
  readonly attempts: number;
  readonly nextAttemptAt: Millis;
  readonly deliveredAt: Millis | null;
  readonly lastError: string | null;
  readonly createdAt: Millis;
}

/**
 * The coordinator's storage. One instance per CoordinatorDb; any number of
 * instances (in any number of processes) may share one PostgreSQL database.
 *
 * @example
 * const store = new Store(await openDatabase({ sqlitePath: 'custos.db' }));
 * await store.insertIntent(signed);
 */
export class Store {
  readonly #db: Kysely<Tables>;
  readonly #pg: boolean;
  readonly #now: () => Millis;
  readonly #redeliverAfterMs: number;
  readonly #sweepEveryMs: number;
  #lastSweep = Number.NEGATIVE_INFINITY;
  /** The chain watcher's rows (coin reservations): db/chain-store.ts. */
  readonly chain: ChainStore;
  /** EVM Safe proposals and their nonces: db/evm-store.ts. */
  readonly evm: EvmStore;
  /** Fee bumps and their replacements (issue 13): db/bump-store.ts. */
  readonly bumps: BumpStore;
  /** Jobs queued, told across coordinators: db/notices.ts. */
  readonly notices: JobNotices;
  /** What GET /metrics reads at each scrape, over bounded sets: db/metrics-store.ts. */
  readonly metrics: MetricsStore;

  constructor(database: CoordinatorDb, opts: StoreOptions = {}) {
    this.chain = new ChainStore(database, opts.now);
    this.evm = new EvmStore(database, opts.now);
    this.bumps = new BumpStore(database, opts.now);
    this.notices = new JobNotices(database);
    this.metrics = new MetricsStore(database);
    this.#db = database.db;
    this.#pg = database.dialect === 'postgres';
    this.#now = opts.now ?? Date.now;
    this.#redeliverAfterMs = opts.redeliverAfterMs ?? 60_000;
    this.#sweepEveryMs = opts.nonceSweepEveryMs ?? 60_000;
  }

  /** Throws UNAVAILABLE unless the database answers (for health checks). */
  async ping(): Promise<void> {
    await this.#op('ping', () => sql`select 1`.execute(this.#db));
  }

  // ---------------------------------------------------------------- intents

  /**
   * Stores a new intent with status 'pending'. `receivedBody`, when given, is
   * the canonical text as received; it must be exactly canonicalize(signed).
   * Throws DUPLICATE_INTENT if an intent with this digest was ever stored
   * (THREATS 14), INVALID_VALUE if `receivedBody` is not the canonical text.
   */
  async insertIntent(signed: SignedIntent, receivedBody?: string, audit?: AuditEvent): Promise<IntentRecord> {
    const body = canonicalize(signed);
    if (receivedBody !== undefined && receivedBody !== body) {
      throw new CustosError(
        'INVALID_VALUE',
        'the intent body is not the canonical text of the signed intent',
      );
    }
    const i = signed.intent;
    const id = intentDigest(i);
    const now = this.#now();
    return this.#op('insertIntent', () =>
      this.#db.transaction().execute(async (trx) => {
        let row: Selectable<IntentsTable>;
        try {
          row = await trx
            .insertInto('intents')
            .values({
              id,
              org: i.org,
              wallet: i.wallet,
              chain: i.chain,
              asset: i.asset,
              amount: i.amount,
              destination: i.to,
              outputs: i.outputs === undefined ? null : canonicalize(i.outputs),
              requester: i.requester,
              device: i.device,
              created_at: i.createdAt,
              expires_at: i.expiresAt,
              body,
              status: 'pending',
              status_code: null,
              status_message: null,
              txid: null,
              psbt: null,
              received_at: now,
              updated_at: now,
            })
            .returningAll()
            .executeTakeFirstOrThrow();
        } catch (err) {
          if (classifyDbError(err) === 'unique') {
            throw new CustosError('DUPLICATE_INTENT', 'this intent was already submitted', { intent: id });
          }
          throw err;
        }
        if (audit !== undefined) await this.#appendAuditIn(trx, audit);
        return intentRecord(row);
      }),
    );
  }

  /** The intent with this digest, or null. */
  async getIntent(id: string): Promise<IntentRecord | null> {
    return this.#op('getIntent', async () => {
      const row = await this.#db.selectFrom('intents').selectAll().where('id', '=', id).executeTakeFirst();
      return row === undefined ? null : intentRecord(row);
    });
  }

  /**
   * A page of intents, filtered, newest first unless `order` is 'asc'.
   * Pagination is by arrival order, so pages are stable while new intents
   * arrive: a new intent never shifts or repeats an entry of a later page.
   * Following new arrivals oldest first ('asc') is best effort on PostgreSQL:
   * sequence numbers are taken at insert and become visible at commit, so an
   * insert that commits late can land behind a cursor already handed out.
   * Throws INVALID_VALUE for a malformed cursor or one made with the other order.
   */
  async listIntents(q: IntentQuery = {}): Promise<IntentPage> {
    const limit = clamp(q.limit, 50, MAX_PAGE);
    const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
    if (after !== undefined && q.order !== undefined && after.order !== q.order) {
      throw new CustosError('INVALID_VALUE', 'the cursor was made for the other order');
    }
    const order = after?.order ?? q.order ?? 'desc';
    return this.#op('listIntents', async () => {
      let query = this.#db.selectFrom('intents').selectAll();
      if (q.status !== undefined) query = query.where('status', '=', q.status);
      if (q.requester !== undefined) query = query.where('requester', '=', q.requester);
      if (q.wallet !== undefined) query = query.where('wallet', '=', q.wallet);
      if (after !== undefined) query = query.where('received_seq', order === 'desc' ? '<' : '>', after.seq);
      const rows = await query
        .orderBy('received_seq', order)
        .limit(limit + 1)
        .execute();
      const page = rows.slice(0, limit).map(intentRecord);
      const last = page[page.length - 1];
      const next = rows.length > limit && last !== undefined ? encodeCursor(order, last.receivedSeq) : null;
      return { intents: page, next };
    });
  }

  /**
   * What was signed since `since` (exclusive), as ledger entries: the intents
   * in one of `statuses` last updated after it, read from their columns only
   * (no body or PSBT is decoded), through the (status, updated_at) index.
   */
  async signedSince(statuses: readonly IntentStatus[], since: Millis): Promise<LedgerEntry[]> {
    if (statuses.length === 0) return [];
    return this.#op('signedSince', async () => {
      const rows = await this.#db
        .selectFrom('intents')
        .select(['id', 'wallet', 'asset', 'amount', 'destination', 'outputs', 'requester', 'updated_at'])
        .where('status', 'in', [...statuses])
        .where('updated_at', '>', since)
        .execute();
      return rows.map((r) => ({
        intent: r.id as Digest,
        wallet: r.wallet,
        asset: r.asset,
        amount: r.amount as Amount,
        to: r.destination as Address,
        ...outputsColumn(r.outputs),
        requester: r.requester,
        at: Number(r.updated_at),
      }));
    });
  }

  /**
   * Moves an intent from one of the `from` statuses to `to` (compare-and-set),
   * setting the code, txid and PSBT given. Returns false, changing nothing, when
   * its status is not one of `from` (another coordinator moved it first).
   * Throws NOT_FOUND if there is no such intent.
   */
  async updateIntentStatus(id: string, change: IntentStatusChange): Promise<boolean> {
    const from: readonly IntentStatus[] = typeof change.from === 'string' ? [change.from] : change.from;
    if (from.length === 0)
      throw new CustosError('INVALID_VALUE', 'updateIntentStatus needs at least one from status');
    const update = async (db: Kysely<Tables>): Promise<boolean> => {
      const res = await db
        .updateTable('intents')
        .set({
          status: change.to,
          updated_at: this.#now(),
          ...(change.code !== undefined ? { status_code: change.code } : {}),
          ...(change.message !== undefined ? { status_message: change.message?.slice(0, 1000) ?? null } : {}),
          ...(change.txid !== undefined ? { txid: change.txid } : {}),
          ...(change.psbt !== undefined ? { psbt: change.psbt } : {}),
        })
        .where('id', '=', id)
        .where('status', 'in', from)
        .executeTakeFirst();
      if (res.numUpdatedRows > 0n) return true;
      await this.#requireIntent(db, id);
      return false;
    };
    const audit = change.audit;
    return this.#op('updateIntentStatus', () =>
      audit === undefined
        ? update(this.#db)
        : this.#db.transaction().execute(async (trx) => {
            if (!(await update(trx))) return false;
            await this.#appendAuditIn(trx, audit);
            return true;
          }),
    );
  }

  /**
   * The audit entries after `afterSeq` whose event is one of `events`, in
   * order, at most `limit`: how a coordinator follows what every coordinator
   * on the database did (the log is appended one entry at a time, in commit
   * order, so nothing before the last seq read can still appear).
   */
  async auditEventsSince(
    afterSeq: number,
    events: readonly string[],
    limit = MAX_AUDIT_PAGE,
  ): Promise<readonly { seq: number; at: Millis; event: string; subject: string }[]> {
    if (events.length === 0) return [];
    return this.#op('auditEventsSince', async () => {
      const rows = await this.#db
        .selectFrom('audit_log')
        .select(['seq', 'at', 'event', 'subject'])
        .where('seq', '>', afterSeq)
        .where('event', 'in', [...events])
        .orderBy('seq')
        .limit(clamp(limit, MAX_AUDIT_PAGE, MAX_AUDIT_PAGE))
        .execute();
      return rows.map((r) => ({
        seq: int(r.seq),
        at: Number(r.at) as Millis,
        event: r.event,
        subject: r.subject,
      }));
    });
  }

  /** The ledger columns of the intents `ids` that exist, as ledger entries dated `at` (no body decoded). */
  async ledgerEntriesOf(ids: readonly string[], at: (id: string) => Millis): Promise<LedgerEntry[]> {
    if (ids.length === 0) return [];
    return this.#op('ledgerEntriesOf', async () => {
      const rows = await this.#db
        .selectFrom('intents')
        .select(['id', 'wallet', 'asset', 'amount', 'destination', 'outputs', 'requester'])
        .where('id', 'in', [...ids])
        .execute();
      return rows.map((r) => ({
        intent: r.id as Digest,
        wallet: r.wallet,
        asset: r.asset,
        amount: r.amount as Amount,
        to: r.destination as Address,
        ...outputsColumn(r.outputs),
        requester: r.requester,
        at: at(r.id),
      }));
    });
  }

  async #requireIntent(db: Kysely<Tables>, id: string): Promise<void> {
    const found = await db.selectFrom('intents').select('id').where('id', '=', id).executeTakeFirst();
    if (found === undefined) throw new CustosError('NOT_FOUND', 'no such intent', { intent: id });
  }

  // ---------------------------------------------------------------- approvals

  /**
   * Stores an approval. Idempotent: the exact same signed approval again
   * returns false. Throws CONFLICT if this approver's device already sent a
   * different one for this intent, NOT_FOUND if the intent is unknown.
   */
  async insertApproval(signed: SignedApproval, audit?: AuditEvent): Promise<boolean> {
    const a = signed.approval;
    const body = canonicalize(signed);
    const digest = approvalDigest(a);
    return this.#op('insertApproval', () =>
      this.#db.transaction().execute(async (trx) => {
        try {
          const res = await trx
            .insertInto('approvals')
            .values({
              intent: a.intent,
              approver: a.approver,
              device: a.device,
              decision: a.decision,
              digest,
              at: a.at,
              expires_at: a.expiresAt,
              body,
              received_at: this.#now(),
            })
            .onConflict((oc) => oc.columns(['intent', 'approver', 'device']).doNothing())
            .executeTakeFirst();
          if ((res.numInsertedOrUpdatedRows ?? 0n) > 0n) {
            if (audit !== undefined) await this.#appendAuditIn(trx, audit);
            return true;
          }
        } catch (err) {
          if (classifyDbError(err) === 'foreign-key') {
            throw new CustosError('NOT_FOUND', 'no such intent', { intent: a.intent });
          }
          throw err;
        }
        const existing = await trx
          .selectFrom('approvals')
          .select('body')
          .where('intent', '=', a.intent)
          .where('approver', '=', a.approver)
          .where('device', '=', a.device)
          .executeTakeFirst();
        if (existing?.body === body) return false;
        throw new CustosError('CONFLICT', 'this device already sent a different approval for this intent', {
          intent: a.intent,
          approver: a.approver,
          device: a.device,
        });
      }),
    );
  }

  /** Every approval of an intent, in the order received. */
  async approvalsFor(intent: string): Promise<readonly ApprovalRecord[]> {
    return this.#op('approvalsFor', async () => {
      const rows = await this.#db
        .selectFrom('approvals')
        .selectAll()
        .where('intent', '=', intent)
        .orderBy('received_at')
        .orderBy('approver')
        .orderBy('device')
        .execute();
      return rows.map((r) => ({
        intent: r.intent as Digest,
        approver: r.approver,
        device: r.device,
        decision: r.decision,
        digest: r.digest as Digest,
        signed: stored(signedApproval, r.body, 'approval'),
        body: r.body,
        receivedAt: int(r.received_at),
      }));
    });
  }

  // ---------------------------------------------------------------- governance

  /**
   * Appends a verified governance entry at head + 1 (seq 0 for the genesis),
   * atomically. Returns false when this exact entry is already stored at its
   * seq. Throws CONFLICT when the seq is taken by a different entry (of
   * coordinators racing to append, exactly one wins), when it is not head + 1,
   * or when its prev is not the head's digest.
   */
  async appendGovernance(signed: SignedGovernanceEntry): Promise<boolean> {
    const entry = signed.entry;
    const digest = governanceDigest(entry);
    const body = canonicalize(signed);
    return this.#op('appendGovernance', async () => {
      try {
        return await this.#db.transaction().execute(async (trx) => {
          const head = await trx
            .selectFrom('governance')
            .select(['seq', 'digest'])
            .orderBy('seq', 'desc')
            .limit(1)
            .executeTakeFirst();
          // Seqs have no gaps, so one at or below the head is stored: the same entry or another.
          if (head !== undefined && entry.seq <= int(head.seq)) {
            const taken = await trx
              .selectFrom('governance')
              .select('digest')
              .where('seq', '=', entry.seq)
              .executeTakeFirst();
            return sameGovernance(taken?.digest, digest, entry.seq);
          }
          const expected = head === undefined ? 0 : int(head.seq) + 1;
          if (entry.seq !== expected) {
            throw new CustosError('CONFLICT', `governance entry ${entry.seq} does not follow the head`, {
              seq: entry.seq,
              expected,
            });
          }
          if (head !== undefined && entry.prev !== head.digest) {
            throw new CustosError('CONFLICT', `governance entry ${entry.seq} does not link to the head`, {
              seq: entry.seq,
            });
          }
          await trx
            .insertInto('governance')
            .values({ seq: entry.seq, digest, kind: entry.kind, body, received_at: this.#now() })
            .execute();
          return true;
        });
      } catch (err) {
        if (classifyDbError(err) !== 'unique') throw err;
        // Lost a race for this seq: the winner's entry is committed now.
        const winner = await this.#db
          .selectFrom('governance')
          .select('digest')
          .where('seq', '=', entry.seq)
          .executeTakeFirst();
        return sameGovernance(winner?.digest, digest, entry.seq);
      }
    });
  }

  /** The last governance entry's seq and digest, or null before the genesis. */
  async governanceHead(): Promise<GovernanceHead | null> {
    return this.#op('governanceHead', async () => {
      const row = await this.#db
        .selectFrom('governance')
        .select(['seq', 'digest'])
        .orderBy('seq', 'desc')
        .limit(1)
        .executeTakeFirst();
      return row === undefined ? null : { seq: int(row.seq), digest: row.digest as Digest };
    });
  }

  /** Entries with after < seq <= upto, in order (after = -1 starts at the genesis), at most `limit` (<= 1000). */
  async governanceRange(
    after: number,
    upto: number,
    limit = MAX_GOVERNANCE_PAGE,
  ): Promise<readonly GovernanceRecord[]> {
    if (!Number.isSafeInteger(after) || !Number.isSafeInteger(upto) || after < -1) {
      throw new CustosError('INVALID_VALUE', 'governanceRange takes integer bounds, after >= -1');
    }
    const max = clamp(limit, MAX_GOVERNANCE_PAGE, MAX_GOVERNANCE_PAGE);
    return this.#op('governanceRange', async () => {
      const rows = await this.#db
        .selectFrom('governance')
        .selectAll()
        .where('seq', '>', after)
        .where('seq', '<=', upto)
        .orderBy('seq')
        .limit(max)
        .execute();
      return rows.map((r) => ({
        seq: int(r.seq),
        digest: r.digest as Digest,
        kind: r.kind,
        signed: stored(signedGovernanceEntry, r.body, 'governance entry'),
        body: r.body,
        receivedAt: int(r.received_at),
      }));
    });
  }

  // ---------------------------------------------------------------- governance proposals

  /**
   * Stores a proposal (status 'open') for `entry` with the signatures given so
   * far. Its id is the entry digest. Returns false if it already exists.
   */
  async createProposal(
    entry: GovernanceEntry,
    signatures: readonly GovernanceSignature[] = [],
  ): Promise<boolean> {
    const id = governanceDigest(entry);
    const now = this.#now();
    return this.#op('createProposal', async () => {
      const res = await this.#db
        .insertInto('governance_proposals')
        .values({
          id,
          seq: entry.seq,
          kind: entry.kind,
          entry: canonicalize(entry),
          signatures: canonicalize(dedupeSignatures([], signatures)),
          status: 'open',
          created_at: now,
          updated_at: now,
        })
        .onConflict((oc) => oc.column('id').doNothing())
        .executeTakeFirst();
      return (res.numInsertedOrUpdatedRows ?? 0n) > 0n;
    });
  }

  /** The proposal, or null. */
  async getProposal(id: string): Promise<ProposalRecord | null> {
    return this.#op('getProposal', async () => {
      const row = await this.#db
        .selectFrom('governance_proposals')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirst();
      return row === undefined ? null : proposalRecord(row);
    });
  }

  /** Proposals by seq, then age; only those with `status` when given. */
  async listProposals(
    q: { status?: ProposalStatus; limit?: number } = {},
  ): Promise<readonly ProposalRecord[]> {
    const limit = clamp(q.limit, MAX_PAGE, MAX_PAGE);
    return this.#op('listProposals', async () => {
      let query = this.#db.selectFrom('governance_proposals').selectAll();
      if (q.status !== undefined) query = query.where('status', '=', q.status);
      const rows = await query.orderBy('seq').orderBy('created_at').orderBy('id').limit(limit).execute();
      return rows.map(proposalRecord);
    });
  }

  /**
   * Adds signatures to an open proposal; a (member, device) that already
   * signed keeps its first signature. Returns the updated proposal. Throws
   * NOT_FOUND if there is no such proposal, CONFLICT if it is no longer open.
   */
  async addProposalSignatures(
    id: string,
    signatures: readonly GovernanceSignature[],
  ): Promise<ProposalRecord> {
    return this.#op('addProposalSignatures', () =>
      this.#db.transaction().execute(async (trx) => {
        let query = trx.selectFrom('governance_proposals').selectAll().where('id', '=', id);
        if (this.#pg) query = query.forUpdate();
        const row = await query.executeTakeFirst();
        if (row === undefined) throw new CustosError('NOT_FOUND', 'no such proposal', { proposal: id });
        if (row.status !== 'open') {
          throw new CustosError('CONFLICT', `the proposal is ${row.status}, not open`, { proposal: id });
        }
        const current = stored(schema.array(governanceSignature, { max: 100 }), row.signatures, 'proposal');
        const merged = dedupeSignatures(current, signatures);
        if (merged.length > 100)
          throw new CustosError('INVALID_VALUE', 'a proposal holds at most 100 signatures');
        const updated = await trx
          .updateTable('governance_proposals')
          .set({ signatures: canonicalize(merged), updated_at: this.#now() })
          .where('id', '=', id)
          .returningAll()
          .executeTakeFirstOrThrow();
        return proposalRecord(updated);
      }),
    );
  }

  /** Compare-and-set of a proposal's status. Returns false if it was not `from`. Throws NOT_FOUND. */
  async setProposalStatus(id: string, from: ProposalStatus, to: ProposalStatus): Promise<boolean> {
    return this.#op('setProposalStatus', async () => {
      const res = await this.#db
        .updateTable('governance_proposals')
        .set({ status: to, updated_at: this.#now() })
        .where('id', '=', id)
        .where('status', '=', from)
        .executeTakeFirst();
      if (res.numUpdatedRows > 0n) return true;
      const found = await this.#db
        .selectFrom('governance_proposals')
        .select('id')
        .where('id', '=', id)
        .executeTakeFirst();
      if (found === undefined) throw new CustosError('NOT_FOUND', 'no such proposal', { proposal: id });
      return false;
    });
  }

  /** Deletes a proposal. Returns false if there was none. */
  async deleteProposal(id: string): Promise<boolean> {
    return this.#op('deleteProposal', async () => {
      const res = await this.#db.deleteFrom('governance_proposals').where('id', '=', id).executeTakeFirst();
      return res.numDeletedRows > 0n;
    });
  }

  // ---------------------------------------------------------------- signer jobs

  /**
   * Queues signer jobs, all or none. A job whose id is already stored with the
   * same body is skipped (idempotent). Returns how many were new. Throws
   * CONFLICT if an id is stored with a different body, NOT_FOUND if a job's
   * intent is unknown.
   */
  async enqueueJobs(jobs: readonly SignerJob[]): Promise<number> {
    const now = this.#now();
    const rows = jobs.map((job) => ({
      job,
      body: canonicalize(job),
      intent: intentDigest(job.intent.intent),
    }));
    return this.#op('enqueueJobs', async () => {
      try {
        return await this.#db.transaction().execute(async (trx) => {
          let added = 0;
          for (const { job, body, intent } of rows) {
            const res = await trx
              .insertInto('signer_jobs')
              .values({
                id: job.id,
                intent,
                signer: job.signer,
                body,
                status: 'queued',
                created_at: now,
                delivered_at: null,
                result: null,
                outcome: null,
                code: null,
                completed_at: null,
              })
              .onConflict((oc) => oc.column('id').doNothing())
              .executeTakeFirst();
            if ((res.numInsertedOrUpdatedRows ?? 0n) > 0n) {
              added++;
              continue;
            }
            const existing = await trx
              .selectFrom('signer_jobs')
              .select('body')
              .where('id', '=', job.id)
              .executeTakeFirst();
            if (existing?.body !== body) {
              throw new CustosError('CONFLICT', 'a different job with this id is already queued', {
                job: job.id,
              });
            }
          }
          return added;
        });
      } catch (err) {
        if (classifyDbError(err) === 'foreign-key') {
          throw new CustosError('NOT_FOUND', 'a job names an unknown intent');
        }
        throw err;
      }
    });
  }

  /**
   * Hands out up to `max` jobs for `signer`: queued ones, and delivered ones
   * not completed within `redeliverAfterMs` (the signer may have crashed).
   * Marks them delivered in the same statement, so concurrent claimers never
   * get the same job (until it goes stale). Oldest first.
   */
  async claimJobs(signer: string, max: number): Promise<readonly JobRecord[]> {
    const n = clamp(max, 1, 1000);
    const now = this.#now();
    const staleBefore = now - this.#redeliverAfterMs;
    return this.#op('claimJobs', async () => {
      let pick = this.#db
        .selectFrom('signer_jobs')
        .select('id')
        .where('signer', '=', signer)
        .where((eb) =>
          eb.or([
            eb('status', '=', 'queued'),
            eb.and([eb('status', '=', 'delivered'), eb('delivered_at', '<=', staleBefore)]),
          ]),
        )
        .orderBy('created_at')
        .orderBy('id')
        .limit(n);
      if (this.#pg) pick = pick.forUpdate().skipLocked();
      const rows = await this.#db
        .updateTable('signer_jobs')
        .set((eb) => ({ status: 'delivered', delivered_at: now, deliveries: eb('deliveries', '+', 1) }))
        .where('id', 'in', pick)
        .returningAll()
        .execute();
      return rows
        .map(jobRecord)
        .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    });
  }

  /**
   * Records a signer's result for a job and marks it done. Returns false when
   * this exact result is already recorded (a signer retrying). Throws
   * NOT_FOUND for an unknown job, NOT_AUTHORIZED when the receipt's signer is
   * not the job's, CONFLICT when a different result is already recorded,
   * INVALID_VALUE when the receipt names another job.
   */
  async completeJob(id: string, result: SignerResult): Promise<boolean> {
    const r = result.receipt;
    if (r.job !== id) throw new CustosError('INVALID_VALUE', 'the receipt is for another job', { job: id });
    const body = canonicalize(result);
    return this.#op('completeJob', async () => {
      const res = await this.#db
        .updateTable('signer_jobs')
        .set({ status: 'done', result: body, outcome: r.outcome, code: r.code, completed_at: this.#now() })
        .where('id', '=', id)
        .where('signer', '=', r.signer)
        .where('status', '!=', 'done')
        .executeTakeFirst();
      if (res.numUpdatedRows > 0n) return true;
      const row = await this.#db
        .selectFrom('signer_jobs')
        .select(['signer', 'result'])
        .where('id', '=', id)
        .executeTakeFirst();
      if (row === undefined) throw new CustosError('NOT_FOUND', 'no such job', { job: id });
      if (row.signer !== r.signer) {
        throw new CustosError('NOT_AUTHORIZED', 'the job belongs to another signer', { job: id });
      }
      if (row.result === body) return false;
      throw new CustosError('CONFLICT', 'a different result is already recorded for this job', { job: id });
    });
  }

  /** The job, or null. */
  async getJob(id: string): Promise<JobRecord | null> {
    return this.#op('getJob', async () => {
      const row = await this.#db
        .selectFrom('signer_jobs')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirst();
      return row === undefined ? null : jobRecord(row);
    });
  }

  /** Every job of an intent, oldest first. */
  async jobsFor(intent: string): Promise<readonly JobRecord[]> {
    return this.#op('jobsFor', async () => {
      const rows = await this.#db
        .selectFrom('signer_jobs')
        .selectAll()
        .where('intent', '=', intent)
        .orderBy('created_at')
        .orderBy('id')
        .execute();
      return rows.map(jobRecord);
    });
  }

  // ---------------------------------------------------------------- transactions

  /**
   * Records the broadcast transaction of an intent. Returns false if this txid
   * is already recorded for it. Throws CONFLICT if another txid is (one intent,
   * one transaction), NOT_FOUND if the intent is unknown.
   */
  async recordTransaction(t: {
    intent: string;
    txid: string;
    rawHex: string;
    broadcastAt: Millis;
  }): Promise<boolean> {
    return this.#op('recordTransaction', async () => {
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
  async updateTransaction(
    intent: string,
    u: { confirmations: number; blockHeight: number | null; blockHash: string | null },
  ): Promise<void> {
    await this.#op('updateTransaction', async () => {
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
  async getTransaction(intent: string): Promise<TransactionRecord | null> {
    return this.#op('getTransaction', async () => {
      const row = await this.#db
        .selectFrom('transactions')
        .selectAll()
        .where('intent', '=', intent)
        .executeTakeFirst();
      return row === undefined ? null : transactionRecord(row);
    });
  }

  /** Transactions with fewer than `confirmations` confirmations, oldest broadcast first. */
  async transactionsBelow(confirmations: number, limit = MAX_PAGE): Promise<readonly TransactionRecord[]> {
    const max = clamp(limit, MAX_PAGE, MAX_PAGE);
    return this.#op('transactionsBelow', async () => {
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

  // ---------------------------------------------------------------- audit

  /**
   * Appends an audit entry after the current head, computing seq, prev and its
   * hash with core's appendAudit, one append at a time across every process
   * sharing the database. Throws AUDIT_CHAIN_BROKEN, appending nothing, when
   * the last stored entry no longer matches the hash stored with it (the log
   * was edited: appending would commit to the edit); a CustosError from
   * appendAudit when a field does not fit the audit entry schema.
   */
  async appendAuditEvent(e: AuditEvent): Promise<AuditRecord> {
    return this.#op('appendAuditEvent', () =>
      this.#db.transaction().execute((trx) => this.#appendAuditIn(trx, e)),
    );
  }

  /**
   * Appends an audit entry inside the caller's transaction, so a row and the
   * entry that records it commit together or not at all.
   */
  async #appendAuditIn(trx: Transaction<Tables>, e: AuditEvent): Promise<AuditRecord> {
    if (this.#pg) await sql`select pg_advisory_xact_lock(${sql.lit(AUDIT_LOCK_KEY)})`.execute(trx);
    const last = await trx
      .selectFrom('audit_log')
      .selectAll()
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    const prev = last === undefined ? null : auditEntryOf(last);
    if (last !== undefined && prev !== null && auditEntryDigest(prev) !== last.hash) {
      throw new CustosError(
        'AUDIT_CHAIN_BROKEN',
        `audit entry ${prev.seq} does not match its stored hash: the log was edited`,
        { seq: prev.seq },
      );
    }
    const entry = appendAudit(prev, e);
    const hash = auditEntryDigest(entry);
    await trx
      .insertInto('audit_log')
      .values({
        seq: entry.seq,
        prev: entry.prev,
        at: entry.at,
        actor: entry.actor,
        event: entry.event,
        subject: entry.subject,
        digest: entry.digest,
        hash,
      })
      .execute();
    return { entry, hash };
  }

  /** The last audit entry's seq and hash, or null for an empty log. */
  async auditHead(): Promise<{ seq: number; hash: Digest } | null> {
    return this.#op('auditHead', async () => {
      const row = await this.#db
        .selectFrom('audit_log')
        .select(['seq', 'hash'])
        .orderBy('seq', 'desc')
        .limit(1)
        .executeTakeFirst();
      return row === undefined ? null : { seq: int(row.seq), hash: row.hash as Digest };
    });
  }

  /** Up to `limit` (<= 10,000) audit entries from `fromSeq` on, in order: pages for streaming verification. */
  async auditRange(fromSeq: number, limit: number): Promise<readonly AuditEntry[]> {
    if (!Number.isSafeInteger(fromSeq) || fromSeq < 0) {
      throw new CustosError('INVALID_VALUE', 'auditRange starts at a seq >= 0');
    }
    const max = clamp(limit, MAX_AUDIT_PAGE, MAX_AUDIT_PAGE);
    return this.#op('auditRange', async () => {
      const rows = await this.#db
        .selectFrom('audit_log')
        .selectAll()
        .where('seq', '>=', fromSeq)
        .orderBy('seq')
        .limit(max)
        .execute();
      return rows.map(auditEntryOf);
    });
  }

  /**
   * Stores a signer's checkpoint. Returns false if this exact checkpoint is
   * stored already. Throws CONFLICT if the signer has a different one at this seq.
   */
  async insertCheckpoint(sc: SignedCheckpoint): Promise<boolean> {
    const c = sc.checkpoint;
    const body = canonicalize(sc);
    return this.#op('insertCheckpoint', async () => {
      const res = await this.#db
        .insertInto('audit_checkpoints')
        .values({ signer: c.signer, seq: c.seq, head: c.head, body, received_at: this.#now() })
        .onConflict((oc) => oc.columns(['signer', 'seq']).doNothing())
        .executeTakeFirst();
      if ((res.numInsertedOrUpdatedRows ?? 0n) > 0n) return true;
      const existing = await this.#db
        .selectFrom('audit_checkpoints')
        .select('body')
        .where('signer', '=', c.signer)
        .where('seq', '=', c.seq)
        .executeTakeFirst();
      if (existing?.body === body) return false;
      throw new CustosError('CONFLICT', 'this signer already checkpointed this seq differently', {
        signer: c.signer,
        seq: c.seq,
      });
    });
  }

  /** Stored checkpoints by seq (then signer); only one signer's when given. */
  async checkpoints(q: { signer?: string } = {}): Promise<readonly SignedCheckpoint[]> {
    return this.#op('checkpoints', async () => {
      let query = this.#db.selectFrom('audit_checkpoints').select('body');
      if (q.signer !== undefined) query = query.where('signer', '=', q.signer);
      const rows = await query.orderBy('seq').orderBy('signer').execute();
      return rows.map((r) => stored(signedCheckpoint, r.body, 'checkpoint'));
    });
  }

  // ---------------------------------------------------------------- outbox

  /** Queues a notification (a webhook call): `payload` is stored as canonical JSON. Returns its id. */
  async enqueueOutbox(o: { event: string; payload: unknown; target: string; at?: Millis }): Promise<number> {
    const payload = canonicalize(o.payload);
    const now = o.at ?? this.#now();
    return this.#op('enqueueOutbox', async () => {
      const row = await this.#db
        .insertInto('outbox')
        .values({
          event: o.event,
          payload,
          target: o.target,
          attempts: 0,
          next_attempt_at: now,
          delivered_at: null,
          last_error: null,
          created_at: now,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      return int(row.id);
    });
  }

  /**
   * Up to `max` undelivered notifications due at `now`, oldest due first.
   * Each is leased for `leaseMs` (its next attempt moved to now + leaseMs in
   * the same statement), so coordinators polling together do not send the
   * same notification at once; if the sender dies, it is due again after the
   * lease. Delivery is at least once: receivers deduplicate by id. The
   * records returned carry the lease's end as `nextAttemptAt`.
   */
  async dueOutbox(now: Millis, max: number, leaseMs = 60_000): Promise<readonly OutboxRecord[]> {
    const n = clamp(max, 1, 1000);
    return this.#op('dueOutbox', async () => {
      let pick = this.#db
        .selectFrom('outbox')
        .select('id')
        .where('delivered_at', 'is', null)
        .where('next_attempt_at', '<=', now)
        .orderBy('next_attempt_at')
        .orderBy('id')
        .limit(n);
      if (this.#pg) pick = pick.forUpdate().skipLocked();
      const rows = await this.#db
        .updateTable('outbox')
        .set({ next_attempt_at: now + leaseMs })
        .where('id', 'in', pick)
        .returningAll()
        .execute();
      return rows.map(outboxRecord).sort((a, b) => a.createdAt - b.createdAt || a.id - b.id);
    });
  }

  /** Marks a notification delivered. Throws NOT_FOUND. */
  async markOutboxDelivered(id: number, at: Millis): Promise<void> {
    await this.#op('markOutboxDelivered', async () => {
      const res = await this.#db
        .updateTable('outbox')
        .set((eb) => ({ delivered_at: at, attempts: eb('attempts', '+', 1), last_error: null }))
        .where('id', '=', id)
        .executeTakeFirst();
      if (res.numUpdatedRows === 0n) throw new CustosError('NOT_FOUND', 'no such notification', { id });
    });
  }

  /** Records a failed attempt and when to try again. `error` is cut to 1000 characters. Throws NOT_FOUND. */
  async markOutboxFailed(
    id: number,
    f: { attempts: number; nextAttemptAt: Millis; error: string },
  ): Promise<void> {
    await this.#op('markOutboxFailed', async () => {
      const res = await this.#db
        .updateTable('outbox')
        .set({ attempts: f.attempts, next_attempt_at: f.nextAttemptAt, last_error: f.error.slice(0, 1000) })
        .where('id', '=', id)
        .where('delivered_at', 'is', null)
        .executeTakeFirst();
      if (res.numUpdatedRows === 0n) {
        throw new CustosError('NOT_FOUND', 'no such undelivered notification', { id });
      }
    });
  }

  /** The notification, or null. */
  async getOutbox(id: number): Promise<OutboxRecord | null> {
    return this.#op('getOutbox', async () => {
      const row = await this.#db.selectFrom('outbox').selectAll().where('id', '=', id).executeTakeFirst();
      return row === undefined ? null : outboxRecord(row);
    });
  }

  // ---------------------------------------------------------------- request nonces

  /**
   * Uses an RFC 9421 request nonce of a key (THREATS 3): true the first time,
   * false if it was used and has not expired. Of concurrent uses of one nonce
   * exactly one gets true. An expired entry counts as unused (the request's
   * own timestamp window refuses a replay that old). Expired entries are
   * deleted at most every `nonceSweepEveryMs`.
   */
  async useNonce(keyId: string, nonce: string, expiresAt: Millis, now: Millis): Promise<boolean> {
    if (keyId.length > 256 || nonce.length > 256 || nonce.length === 0) {
      throw new CustosError('INVALID_VALUE', 'a nonce and a key id hold 1 to 256 characters');
    }
    return this.#op('useNonce', async () => {
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
        await this.sweepNonces(now).catch(() => undefined);
      }
      return fresh;
    });
  }

  /** Deletes nonces expired at `now`; returns how many. */
  async sweepNonces(now: Millis): Promise<number> {
    return this.#op('sweepNonces', async () => {
      const res = await this.#db
        .deleteFrom('request_nonces')
        .where('expires_at', '<=', now)
        .executeTakeFirst();
      return Number(res.numDeletedRows);
    });
  }

  // ---------------------------------------------------------------- kv

  /** A small piece of state (the chain tracker's, for one), or null. */
  async getKv(key: string): Promise<string | null> {
    return this.#op('getKv', async () => {
      const row = await this.#db.selectFrom('kv').select('value').where('key', '=', key).executeTakeFirst();
      return row?.value ?? null;
    });
  }

  async setKv(key: string, value: string): Promise<void> {
    const now = this.#now();
    await this.#op('setKv', () =>
      this.#db
        .insertInto('kv')
        .values({ key, value, updated_at: now })
        .onConflict((oc) => oc.column('key').doUpdateSet({ value, updated_at: now }))
        .execute(),
    );
  }

  // ---------------------------------------------------------------- internals

  async #op<T>(name: string, fn: () => Promise<T>): Promise<T> {
    let out: T;
    try {
      out = await fn();
    } catch (err) {
      throw dbError(err, name);
    }
    // After the commit: the audit feed's waiting readers look again (a wake for an operation
    // that appended nothing costs one read).
    if (AUDITING_OPS.has(name)) this.#wakeAuditReaders();
    return out;
  }

  readonly #auditReaders = new Set<() => void>();

  #wakeAuditReaders(): void {
    const waiting = [...this.#auditReaders];
    this.#auditReaders.clear();
    for (const wake of waiting) wake();
  }

  /**
   * Waits until this process commits an audit entry, `ms` pass, or `signal`
   * aborts (GET /v1/audit?wait=: entries other coordinators append are seen
   * by the caller's next read, at most `ms` later).
   */
  auditAppended(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.#auditReaders.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      if (signal?.aborted) return done();
      signal?.addEventListener('abort', done, { once: true });
      this.#auditReaders.add(done);
    });
  }

  // ---------------------------------------------------------------- added for the signing pipeline

  /**
   * Compare-and-set of a kv value: writes `value` only if the key holds
   * `expected` now (null: only if the key is absent). Returns whether it wrote.
   * Of coordinators racing on one key, exactly one wins each round (the
   * pipeline's UTXO reservations and change-index counters rest on this).
   */
  async compareAndSetKv(key: string, expected: string | null, value: string): Promise<boolean> {
    const now = this.#now();
    return this.#op('compareAndSetKv', async () => {
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

  /**
   * Withdraws the unanswered jobs of an intent (it was refused, or enough
   * signers already signed): they become 'done' with no result and `code`
   * (null when nothing went wrong), so they are never handed out again.
   * Returns how many. A signer's late result for such a job gets CONFLICT
   * from completeJob.
   */
  async cancelJobs(intent: string, code: ErrorCode | null): Promise<number> {
    const now = this.#now();
    return this.#op('cancelJobs', async () => {
      const res = await this.#db
        .updateTable('signer_jobs')
        .set({ status: 'done', code, completed_at: now })
        .where('intent', '=', intent)
        .where('status', '!=', 'done')
        .executeTakeFirst();
      return Number(res.numUpdatedRows);
    });
  }
}

function sameGovernance(stored: string | undefined, digest: Digest, seq: number): boolean {
  if (stored === digest) return false;
  throw new CustosError('CONFLICT', `governance seq ${seq} already holds a different entry`, { seq });
}

function dedupeSignatures(
  current: readonly GovernanceSignature[],
  more: readonly GovernanceSignature[],
): GovernanceSignature[] {
  const out = [...current];
  const seen = new Set(current.map((s) => `${s.member}\u0000${s.device}`));
  for (const s of more) {
    const key = `${s.member}\u0000${s.device}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(s);
  }
  return out;
}

/** A page size: an integer in 1..max, `fallback` when absent or not a number. */
function clamp(value: number | undefined, fallback: number, max: number): number {
  const v = value === undefined || !Number.isFinite(value) ? fallback : Math.floor(value);
  return Math.min(max, Math.max(1, v));
}

// ---------------------------------------------------------------- rows to records

/** A BIGINT from either driver as a safe integer. */
function int(v: number | string | bigint): number {
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isSafeInteger(n)) throw new CustosError('INTERNAL', 'a stored integer is out of range');
  return n;
}

function intOrNull(v: number | string | bigint | null): number | null {
  return v === null ? null : int(v);
}

/** Decodes a stored object with its strict schema; a row that does not decode is corrupt. */
/** Store operations that may append an audit entry in their transaction. */
const AUDITING_OPS: ReadonlySet<string> = new Set([
  'insertIntent',
  'updateIntentStatus',
  'insertApproval',
  'appendAuditEvent',
]);

/** Decoded stored objects per schema, by their exact text (see {@link stored}). */
const decodedCache = new WeakMap<object, Map<string, unknown>>();
/** Texts remembered per schema: the objects a few thousand withdrawals in flight read again and again. */
const DECODED_CACHE_SIZE = 4096;

/**
 * A stored object decoded strictly, as it was when written. The same text
 * is read many times while its withdrawal moves (an intent's body about 15
 * times, its approvals about 7), so decoded objects are remembered by their
 * exact text, per schema, least recently used first out: the same text
 * always decodes to the same object, and a row altered in the database is a
 * different text, decoded (and refused) afresh. Decoded objects are
 * read-only by type; nothing mutates them.
 */
function stored<T>(s: Schema<T>, text: string, what: string): T {
  let memo = decodedCache.get(s);
  if (memo === undefined) {
    memo = new Map();
    decodedCache.set(s, memo);
  }
  const hit = memo.get(text);
  if (hit !== undefined) {
    memo.delete(text);
    memo.set(text, hit);
    return hit as T;
  }
  try {
    const value = decode(s, text, STORED_LIMITS);
    memo.set(text, value);
    if (memo.size > DECODED_CACHE_SIZE) memo.delete(memo.keys().next().value as string);
    return value;
  } catch (err) {
    throw new CustosError(
      'INTERNAL',
      `a stored ${what} does not decode: the database was altered`,
      {},
      { cause: err },
    );
  }
}

function intentRecord(r: Selectable<IntentsTable>): IntentRecord {
  return {
    id: r.id as Digest,
    receivedSeq: int(r.received_seq),
    signed: stored(signedIntent, r.body, 'intent'),
    body: r.body,
    status: r.status,
    statusCode: isErrorCode(r.status_code) ? r.status_code : null,
    statusMessage: r.status_message ?? null,
    txid: r.txid,
    psbt: r.psbt,
    receivedAt: int(r.received_at),
    updatedAt: int(r.updated_at),
  };
}

function proposalRecord(r: Selectable<GovernanceProposalsTable>): ProposalRecord {
  return {
    id: r.id as Digest,
    seq: int(r.seq),
    kind: r.kind,
    entry: stored(governanceEntry, r.entry, 'proposal'),
    signatures: stored(schema.array(governanceSignature, { max: 100 }), r.signatures, 'proposal'),
    status: r.status,
    createdAt: int(r.created_at),
    updatedAt: int(r.updated_at),
  };
}

function jobRecord(r: Selectable<SignerJobsTable>): JobRecord {
  return {
    id: r.id,
    intent: r.intent as Digest,
    signer: r.signer,
    job: stored(signerJob, r.body, 'signer job'),
    body: r.body,
    status: r.status,
    createdAt: int(r.created_at),
    deliveredAt: intOrNull(r.delivered_at),
    deliveries: r.deliveries,
    result: r.result === null ? null : stored(signerResult, r.result, 'signer result'),
    completedAt: intOrNull(r.completed_at),
  };
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

function outboxRecord(r: Selectable<OutboxTable>): OutboxRecord {
  return {
    id: int(r.id),
    event: r.event,
    payload: r.payload,
    target: r.target,
    attempts: r.attempts,
    nextAttemptAt: int(r.next_attempt_at),
    deliveredAt: intOrNull(r.delivered_at),
    lastError: r.last_error,
    createdAt: int(r.created_at),
  };
}

function auditEntryOf(r: {
  seq: number | string | bigint;
  prev: string;
  at: number | string | bigint;
  actor: string;
  event: string;
  subject: string;
  digest: string;
}): AuditEntry {
  return {
    seq: int(r.seq),
    prev: r.prev as Digest,
    at: int(r.at),
    actor: r.actor,
    event: r.event,
    subject: r.subject,
    digest: r.digest as Digest,
  };
}

// ---------------------------------------------------------------- cursors

/** An opaque cursor: base64url of "<order>:<received_seq>". */
function encodeCursor(order: 'asc' | 'desc', seq: number): string {
  return Buffer.from(`${order}:${seq}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): { order: 'asc' | 'desc'; seq: number } {
  const bad = (): CustosError => new CustosError('INVALID_VALUE', 'malformed cursor');
  if (cursor.length === 0 || cursor.length > 64 || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw bad();
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const m = /^(asc|desc):(0|[1-9][0-9]{0,15})$/.exec(text);
  if (m === null) throw bad();
  const order = m[1] === 'asc' ? 'asc' : 'desc';
  const seq = Number(m[2]);
  if (!Number.isSafeInteger(seq) || encodeCursor(order, seq) !== cursor) throw bad();
  return { order, seq };
}

/** A batch's outputs column as a ledger entry's `outputs` (issue 13), schema-checked; none for one output. */
function outputsColumn(text: string | null): { outputs?: Payout[] } {
  if (text === null) return {};
  return { outputs: schema.array(payout, { min: 2, max: MAX_BATCH_OUTPUTS }).parse(JSON.parse(text)) };
}
