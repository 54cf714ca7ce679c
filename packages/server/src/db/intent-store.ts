/**
 * The coordinator's records of withdrawal requests: the intents (`intents`,
 * with their status, the PSBT built for them and their txid) and the
 * approvals on them (`approvals`).
 *
 * Invariants its transactions keep:
 * - one intent per digest, ever (THREATS 14): the primary key, so of two
 *   coordinators storing one intent, the loser gets DUPLICATE_INTENT, never
 *   a second row;
 * - one approval per (intent, approver, device): the primary key; the same
 *   signed approval again is a no-op, a different one is CONFLICT;
 * - a status moves by compare-and-set on the statuses it may come from, so
 *   of coordinators moving one intent, one moves it and the others learn so;
 * - an intent, approval or status change that carries an audit event commits
 *   with its audit entry in one transaction (AuditStore.appendIn): an entry
 *   in the log means the row moved, and a row never moves unrecorded. The
 *   rule for appending stays in audit-store.ts; only the transaction that
 *   spans both kinds is here, because the row is what it records.
 *
 * Signed objects are stored as their canonical JSON text (RFC 8785), the
 * bytes their signatures cover, and decoded again by the strict schema when
 * read (rows.ts `stored`).
 */
import {
  type Address,
  type Amount,
  approvalDigest,
  CustosError,
  canonicalize,
  type Digest,
  type ErrorCode,
  intentDigest,
  isErrorCode,
  type LedgerEntry,
  MAX_BATCH_OUTPUTS,
  type Millis,
  type Payout,
  payout,
  type SignedApproval,
  type SignedIntent,
  schema,
  signedApproval,
  signedIntent,
} from '@custos/core';
import type { Kysely, Selectable } from 'kysely';
import type { AuditEvent, AuditStore } from './audit-store.js';
import type { CoordinatorDb } from './connect.js';
import { classifyDbError } from './errors.js';
import { clamp, int, MAX_PAGE, runOp, stored } from './rows.js';
import type { IntentStatus, IntentsTable, Tables } from './schema.js';

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

export class IntentStore {
  readonly #db: Kysely<Tables>;
  readonly #now: () => Millis;
  readonly #audit: AuditStore;

  constructor(database: CoordinatorDb, audit: AuditStore, now: () => Millis = Date.now) {
    this.#db = database.db;
    this.#audit = audit;
    this.#now = now;
  }

  async insert(signed: SignedIntent, receivedBody?: string, audit?: AuditEvent): Promise<IntentRecord> {
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
    return this.#audit.recording('intents.insert', audit, () =>
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
        if (audit !== undefined) await this.#audit.appendIn(trx, audit);
        return intentRecord(row);
      }),
    );
  }

  /** The intent with this digest, or null. */
  async get(id: string): Promise<IntentRecord | null> {
    return runOp('intents.get', async () => {
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
  async list(q: IntentQuery = {}): Promise<IntentPage> {
    const limit = clamp(q.limit, 50, MAX_PAGE);
    const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
    if (after !== undefined && q.order !== undefined && after.order !== q.order) {
      throw new CustosError('INVALID_VALUE', 'the cursor was made for the other order');
    }
    const order = after?.order ?? q.order ?? 'desc';
    return runOp('intents.list', async () => {
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
    return runOp('intents.signedSince', async () => {
      const rows = await this.#db
        .selectFrom('intents')
        .select([...LEDGER_COLUMNS, 'updated_at'])
        .where('status', 'in', [...statuses])
        .where('updated_at', '>', since)
        .execute();
      return rows.map((r) => ledgerEntry(r, Number(r.updated_at)));
    });
  }

  /**
   * Moves an intent from one of the `from` statuses to `to` (compare-and-set),
   * setting the code, txid and PSBT given. Returns false, changing nothing, when
   * its status is not one of `from` (another coordinator moved it first).
   * Throws NOT_FOUND if there is no such intent.
   */
  async updateStatus(id: string, change: IntentStatusChange): Promise<boolean> {
    const from: readonly IntentStatus[] = typeof change.from === 'string' ? [change.from] : change.from;
    if (from.length === 0)
      throw new CustosError('INVALID_VALUE', 'updateStatus needs at least one from status');
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
    return this.#audit.recording('intents.updateStatus', audit, () =>
      audit === undefined
        ? update(this.#db)
        : this.#db.transaction().execute(async (trx) => {
            if (!(await update(trx))) return false;
            await this.#audit.appendIn(trx, audit);
            return true;
          }),
    );
  }

  /** The ledger columns of the intents `ids` that exist, as ledger entries dated `at` (no body decoded). */
  async ledgerEntriesOf(ids: readonly string[], at: (id: string) => Millis): Promise<LedgerEntry[]> {
    if (ids.length === 0) return [];
    return runOp('intents.ledgerEntriesOf', async () => {
      const rows = await this.#db
        .selectFrom('intents')
        .select(LEDGER_COLUMNS)
        .where('id', 'in', [...ids])
        .execute();
      return rows.map((r) => ledgerEntry(r, at(r.id)));
    });
  }

  async #requireIntent(db: Kysely<Tables>, id: string): Promise<void> {
    const found = await db.selectFrom('intents').select('id').where('id', '=', id).executeTakeFirst();
    if (found === undefined) throw new CustosError('NOT_FOUND', 'no such intent', { intent: id });
  }
}

export class ApprovalStore {
  readonly #db: Kysely<Tables>;
  readonly #now: () => Millis;
  readonly #audit: AuditStore;

  constructor(database: CoordinatorDb, audit: AuditStore, now: () => Millis = Date.now) {
    this.#db = database.db;
    this.#audit = audit;
    this.#now = now;
  }

  /**
   * Stores an approval. Idempotent: the exact same signed approval again
   * returns false. Throws CONFLICT if this approver's device already sent a
   * different one for this intent, NOT_FOUND if the intent is unknown.
   */
  async insert(signed: SignedApproval, audit?: AuditEvent): Promise<boolean> {
    const a = signed.approval;
    const body = canonicalize(signed);
    const digest = approvalDigest(a);
    return this.#audit.recording('approvals.insert', audit, () =>
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
            if (audit !== undefined) await this.#audit.appendIn(trx, audit);
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
  async of(intent: string): Promise<readonly ApprovalRecord[]> {
    return runOp('approvals.of', async () => {
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

/** The columns a ledger entry is read from (no body or PSBT). */
const LEDGER_COLUMNS = ['id', 'wallet', 'asset', 'amount', 'destination', 'outputs', 'requester'] as const;

/** An intent's ledger columns as a ledger entry dated `at`. */
function ledgerEntry(
  r: Pick<Selectable<IntentsTable>, (typeof LEDGER_COLUMNS)[number]>,
  at: Millis,
): LedgerEntry {
  return {
    intent: r.id as Digest,
    wallet: r.wallet,
    asset: r.asset,
    amount: r.amount as Amount,
    to: r.destination as Address,
    ...outputsColumn(r.outputs),
    requester: r.requester,
    at,
  };
}

/** A batch's outputs column as a ledger entry's `outputs` (issue 13), schema-checked; none for one output. */
function outputsColumn(text: string | null): { outputs?: Payout[] } {
  if (text === null) return {};
  return { outputs: schema.array(payout, { min: 2, max: MAX_BATCH_OUTPUTS }).parse(JSON.parse(text)) };
}
