/**
 * The coordinator's audit records: the hash-chained audit log (`audit_log`)
 * and the signers' signed checkpoints of it (`audit_checkpoints`).
 *
 * Invariants its transactions keep:
 * - the chain never forks (THREATS 30): entries are appended one at a time
 *   across every process sharing the database. PostgreSQL takes a
 *   transaction advisory lock ({@link AUDIT_LOCK_KEY}), SQLite's
 *   transactions begin IMMEDIATE (connect.ts), so the head read and the
 *   insert after it are never interleaved;
 * - nothing is appended after an edited entry: the head is checked against
 *   the hash stored with it first (AUDIT_CHAIN_BROKEN);
 * - a record and the entry that records it commit together: the intent and
 *   approval stores append through {@link AuditStore.appendIn} inside their
 *   own transaction, so that one rule for appending lives here;
 * - one checkpoint per (signer, seq), by the primary key.
 *
 * Readers of the feed (GET /v1/audit?wait=) wait on {@link AuditStore.appended};
 * every append this process commits wakes them.
 *
 * On SQLite, entries {@link AuditStore.append}ed within one turn of the event
 * loop are appended in one transaction, in the order given (group-commit.ts).
 */
import {
  type AuditEntry,
  appendAudit,
  auditEntryDigest,
  CustosError,
  canonicalize,
  type Digest,
  type Millis,
  type SignedCheckpoint,
  signedCheckpoint,
} from '@custos/core';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { CoordinatorDb } from './connect.js';
import { GroupCommit } from './group-commit.js';
import { clamp, int, runOp, stored } from './rows.js';
import type { Tables } from './schema.js';

/** Most audit entries one range call returns. */
export const MAX_AUDIT_PAGE = 10_000;

/**
 * Key of the PostgreSQL transaction advisory lock that serializes audit
 * appends (an arbitrary constant, "custos" in ASCII; one per database).
 */
export const AUDIT_LOCK_KEY = 0x637573746f73;

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

export class AuditStore {
  readonly #db: Kysely<Tables>;
  readonly #pg: boolean;
  readonly #now: () => Millis;
  readonly #readers = new Set<() => void>();
  readonly #group: GroupCommit<AuditEvent, AuditRecord>;

  constructor(database: CoordinatorDb, now: () => Millis = Date.now) {
    this.#db = database.db;
    this.#pg = database.dialect === 'postgres';
    this.#now = now;
    this.#group = new GroupCommit(
      (events) =>
        this.recording('audit.append', events[0], () =>
          this.#db.transaction().execute(async (trx) => {
            const out: AuditRecord[] = [];
            for (const e of events) out.push(await this.appendIn(trx, e));
            return out;
          }),
        ),
      (e) => this.#appendAlone(e),
    );
  }

  /**
   * Appends an audit entry after the current head, computing seq, prev and its
   * hash with core's appendAudit, one append at a time across every process
   * sharing the database. Throws AUDIT_CHAIN_BROKEN, appending nothing, when
   * the last stored entry no longer matches the hash stored with it (the log
   * was edited: appending would commit to the edit); a CustosError from
   * appendAudit when a field does not fit the audit entry schema.
   */
  async append(e: AuditEvent): Promise<AuditRecord> {
    return this.#pg ? this.#appendAlone(e) : this.#group.add(e);
  }

  #appendAlone(e: AuditEvent): Promise<AuditRecord> {
    return this.recording('audit.append', e, () =>
      this.#db.transaction().execute((trx) => this.appendIn(trx, e)),
    );
  }

  /**
   * Appends an audit entry inside the caller's transaction, so a row and the
   * entry that records it commit together or not at all. The caller runs
   * that transaction through {@link recording}.
   */
  async appendIn(trx: Transaction<Tables>, e: AuditEvent): Promise<AuditRecord> {
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

  /**
   * Runs store operation `name`, a transaction that appends `audit` through
   * appendIn when given (any store's), and once it has committed with an
   * entry wakes the feed's waiting readers.
   */
  async recording<T>(name: string, audit: AuditEvent | undefined, fn: () => Promise<T>): Promise<T> {
    const out = await runOp(name, fn);
    if (audit !== undefined) {
      const waiting = [...this.#readers];
      this.#readers.clear();
      for (const wake of waiting) wake();
    }
    return out;
  }

  /**
   * Waits until this process commits an audit entry, `ms` pass, or `signal`
   * aborts (GET /v1/audit?wait=: entries other coordinators append are seen
   * by the caller's next read, at most `ms` later).
   */
  appended(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.#readers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      if (signal?.aborted) return done();
      signal?.addEventListener('abort', done, { once: true });
      this.#readers.add(done);
    });
  }

  /** The last audit entry's seq and hash, or null for an empty log. */
  async head(): Promise<{ seq: number; hash: Digest } | null> {
    return runOp('audit.head', async () => {
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
  async range(fromSeq: number, limit: number): Promise<readonly AuditEntry[]> {
    if (!Number.isSafeInteger(fromSeq) || fromSeq < 0) {
      throw new CustosError('INVALID_VALUE', 'auditRange starts at a seq >= 0');
    }
    const max = clamp(limit, MAX_AUDIT_PAGE, MAX_AUDIT_PAGE);
    return runOp('audit.range', async () => {
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
   * The audit entries after `afterSeq` whose event is one of `events`, in
   * order, at most `limit`: how a coordinator follows what every coordinator
   * on the database did (the log is appended one entry at a time, in commit
   * order, so nothing before the last seq read can still appear).
   */
  async eventsSince(
    afterSeq: number,
    events: readonly string[],
    limit = MAX_AUDIT_PAGE,
  ): Promise<readonly { seq: number; at: Millis; event: string; subject: string }[]> {
    if (events.length === 0) return [];
    return runOp('audit.eventsSince', async () => {
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

  /**
   * Stores a signer's checkpoint. Returns false if this exact checkpoint is
   * stored already. Throws CONFLICT if the signer has a different one at this seq.
   */
  async insertCheckpoint(sc: SignedCheckpoint): Promise<boolean> {
    const c = sc.checkpoint;
    const body = canonicalize(sc);
    return runOp('audit.insertCheckpoint', async () => {
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
    return runOp('audit.checkpoints', async () => {
      let query = this.#db.selectFrom('audit_checkpoints').select('body');
      if (q.signer !== undefined) query = query.where('signer', '=', q.signer);
      const rows = await query.orderBy('seq').orderBy('signer').execute();
      return rows.map((r) => stored(signedCheckpoint, r.body, 'checkpoint'));
    });
  }
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
