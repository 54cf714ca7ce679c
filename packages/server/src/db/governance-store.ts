/**
 * The coordinator's governance records: the organization's hash-linked
 * governance log (`governance`) and the proposals members sign towards its
 * next entry (`governance_proposals`).
 *
 * Invariants its transactions keep:
 * - an entry is appended only at head + 1 and only if its prev is the head's
 *   digest, the head read and the insert in one transaction; one entry per
 *   seq (the primary key), so of coordinators racing to append, exactly one
 *   wins and the others get CONFLICT, or false when they carried the same
 *   entry;
 * - a proposal's signatures are merged under a row lock (FOR UPDATE on
 *   PostgreSQL, IMMEDIATE on SQLite), one signature per (member, device),
 *   and only while it is open; its status moves by compare-and-set.
 *
 * Nothing here verifies a signature: the coordinator's governance view and
 * every signer do that on what they read (governance-view.ts).
 */
import {
  CustosError,
  canonicalize,
  type Digest,
  type GovernanceEntry,
  type GovernanceHead,
  type GovernanceSignature,
  governanceDigest,
  governanceEntry,
  governanceSignature,
  type Millis,
  type SignedGovernanceEntry,
  schema,
  signedGovernanceEntry,
} from '@custos/core';
import type { Kysely, Selectable } from 'kysely';
import type { CoordinatorDb } from './connect.js';
import { classifyDbError } from './errors.js';
import { clamp, int, MAX_PAGE, runOp, stored } from './rows.js';
import type { GovernanceProposalsTable, ProposalStatus, Tables } from './schema.js';

/** Most governance entries one range call returns (the job protocol's limit). */
export const MAX_GOVERNANCE_PAGE = 1000;

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

export class GovernanceStore {
  readonly #db: Kysely<Tables>;
  readonly #now: () => Millis;

  constructor(database: CoordinatorDb, now: () => Millis = Date.now) {
    this.#db = database.db;
    this.#now = now;
  }

  /**
   * Appends a verified governance entry at head + 1 (seq 0 for the genesis),
   * atomically. Returns false when this exact entry is already stored at its
   * seq. Throws CONFLICT when the seq is taken by a different entry (of
   * coordinators racing to append, exactly one wins), when it is not head + 1,
   * or when its prev is not the head's digest.
   */
  async append(signed: SignedGovernanceEntry): Promise<boolean> {
    const entry = signed.entry;
    const digest = governanceDigest(entry);
    const body = canonicalize(signed);
    return runOp('governance.append', async () => {
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
  async head(): Promise<GovernanceHead | null> {
    return runOp('governance.head', async () => {
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
  async range(
    after: number,
    upto: number,
    limit = MAX_GOVERNANCE_PAGE,
  ): Promise<readonly GovernanceRecord[]> {
    if (!Number.isSafeInteger(after) || !Number.isSafeInteger(upto) || after < -1) {
      throw new CustosError('INVALID_VALUE', 'governanceRange takes integer bounds, after >= -1');
    }
    const max = clamp(limit, MAX_GOVERNANCE_PAGE, MAX_GOVERNANCE_PAGE);
    return runOp('governance.range', async () => {
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
}

export class ProposalStore {
  readonly #db: Kysely<Tables>;
  readonly #pg: boolean;
  readonly #now: () => Millis;

  constructor(database: CoordinatorDb, now: () => Millis = Date.now) {
    this.#db = database.db;
    this.#pg = database.dialect === 'postgres';
    this.#now = now;
  }

  /**
   * Stores a proposal (status 'open') for `entry` with the signatures given so
   * far. Its id is the entry digest. Returns false if it already exists.
   */
  async create(entry: GovernanceEntry, signatures: readonly GovernanceSignature[] = []): Promise<boolean> {
    const id = governanceDigest(entry);
    const now = this.#now();
    return runOp('proposals.create', async () => {
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
  async get(id: string): Promise<ProposalRecord | null> {
    return runOp('proposals.get', async () => {
      const row = await this.#db
        .selectFrom('governance_proposals')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirst();
      return row === undefined ? null : proposalRecord(row);
    });
  }

  /** Proposals by seq, then age; only those with `status` when given. */
  async list(q: { status?: ProposalStatus; limit?: number } = {}): Promise<readonly ProposalRecord[]> {
    const limit = clamp(q.limit, MAX_PAGE, MAX_PAGE);
    return runOp('proposals.list', async () => {
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
  async addSignatures(id: string, signatures: readonly GovernanceSignature[]): Promise<ProposalRecord> {
    return runOp('proposals.addSignatures', () =>
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
  async setStatus(id: string, from: ProposalStatus, to: ProposalStatus): Promise<boolean> {
    return runOp('proposals.setStatus', async () => {
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
  async delete(id: string): Promise<boolean> {
    return runOp('proposals.delete', async () => {
      const res = await this.#db.deleteFrom('governance_proposals').where('id', '=', id).executeTakeFirst();
      return res.numDeletedRows > 0n;
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
