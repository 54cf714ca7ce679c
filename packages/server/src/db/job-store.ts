/**
 * The coordinator's signer jobs (`signer_jobs`): what each signer is asked
 * to sign, and the signed result (with its receipt) it sends back.
 *
 * Invariants its transactions keep:
 * - a job is queued once: its id is the primary key, the same body again is
 *   a no-op and a different body under one id is CONFLICT; a batch is queued
 *   all or none;
 * - a job is handed out once: claims are one UPDATE ... RETURNING over rows
 *   picked FOR UPDATE SKIP LOCKED (PostgreSQL; SQLite's writers are one at a
 *   time), so concurrent claimers split the work. A job delivered but not
 *   answered within `redeliverAfterMs` is handed out again (a signer that
 *   crashed gets it back; the signer's own ledger makes a second delivery
 *   harmless, THREATS 32);
 * - a job is answered once: the result is recorded only by the job's own
 *   signer and only while the job is not done; the same result again is a
 *   no-op, a different one CONFLICT; a withdrawn job takes no result;
 * - a job and its `signing.queued` entry, a result and the entry that
 *   records it (`signing.signed` or `signing.refused`), commit together, so
 *   no reader sees a queued or answered job before its entry: in the log a
 *   job's queueing comes before its answer, and the intent's `intent.signed`
 *   after the signatures it was combined from.
 */
import {
  CustosError,
  canonicalize,
  type Digest,
  type ErrorCode,
  intentDigest,
  type Millis,
  type SignerJob,
  type SignerResult,
  signerJob,
  signerResult,
} from '@custos/core';
import type { Kysely, Selectable } from 'kysely';
import type { AuditEvent, AuditStore } from './audit-store.js';
import type { CoordinatorDb } from './connect.js';
import { classifyDbError } from './errors.js';
import { clamp, int, intOrNull, runOp, stored } from './rows.js';
import type { JobStatus, SignerJobsTable, Tables } from './schema.js';

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

export class JobStore {
  readonly #db: Kysely<Tables>;
  readonly #pg: boolean;
  readonly #now: () => Millis;
  readonly #redeliverAfterMs: number;
  readonly #audit: AuditStore;

  /** `redeliverAfterMs`: a delivered job not completed within this long is handed out again (default 60 s). */
  constructor(
    database: CoordinatorDb,
    audit: AuditStore,
    now: () => Millis = Date.now,
    redeliverAfterMs = 60_000,
  ) {
    this.#db = database.db;
    this.#audit = audit;
    this.#pg = database.dialect === 'postgres';
    this.#now = now;
    this.#redeliverAfterMs = redeliverAfterMs;
  }

  /**
   * Queues signer jobs, all or none. A job whose id is already stored with the
   * same body is skipped (idempotent). Returns how many were new. Throws
   * CONFLICT if an id is stored with a different body, NOT_FOUND if a job's
   * intent is unknown. `audit` (`signing.queued`), when given, is appended in
   * the same transaction when a job was new: a signer that claims a job at
   * once still finds its entry before its own.
   */
  async enqueue(jobs: readonly SignerJob[], audit?: AuditEvent): Promise<number> {
    const now = this.#now();
    const rows = jobs.map((job) => ({
      job,
      body: canonicalize(job),
      intent: intentDigest(job.intent.intent),
    }));
    return this.#audit.recording('jobs.enqueue', audit, async () => {
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
          if (added > 0 && audit !== undefined) await this.#audit.appendIn(trx, audit);
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
  async claim(signer: string, max: number): Promise<readonly JobRecord[]> {
    const n = clamp(max, 1, 1000);
    const now = this.#now();
    const staleBefore = now - this.#redeliverAfterMs;
    return runOp('jobs.claim', async () => {
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
   * INVALID_VALUE when the receipt names another job. `audit`, when given,
   * is appended in the same transaction, and only when the result is new.
   */
  async complete(id: string, result: SignerResult, audit?: AuditEvent): Promise<boolean> {
    const r = result.receipt;
    if (r.job !== id) throw new CustosError('INVALID_VALUE', 'the receipt is for another job', { job: id });
    const body = canonicalize(result);
    return this.#audit.recording('jobs.complete', audit, () =>
      this.#db.transaction().execute(async (trx) => {
        const res = await trx
          .updateTable('signer_jobs')
          .set({ status: 'done', result: body, outcome: r.outcome, code: r.code, completed_at: this.#now() })
          .where('id', '=', id)
          .where('signer', '=', r.signer)
          .where('status', '!=', 'done')
          .executeTakeFirst();
        if (res.numUpdatedRows > 0n) {
          if (audit !== undefined) await this.#audit.appendIn(trx, audit);
          return true;
        }
        const row = await trx
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
      }),
    );
  }

  /** The job, or null. */
  async get(id: string): Promise<JobRecord | null> {
    return runOp('jobs.get', async () => {
      const row = await this.#db
        .selectFrom('signer_jobs')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirst();
      return row === undefined ? null : jobRecord(row);
    });
  }

  /** Every job of an intent, oldest first. */
  async of(intent: string): Promise<readonly JobRecord[]> {
    return runOp('jobs.of', async () => {
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

  /**
   * Withdraws one unanswered job (a bump's job whose intent is no longer
   * broadcast): done with no result, never handed out again; nothing when it
   * is done already.
   */
  async withdraw(id: string): Promise<void> {
    await runOp('jobs.withdraw', () =>
      this.#db
        .updateTable('signer_jobs')
        .set({ status: 'done', completed_at: this.#now() })
        .where('id', '=', id)
        .where('status', '!=', 'done')
        .execute(),
    );
  }

  /**
   * Withdraws the unanswered jobs of an intent (it was refused, or enough
   * signers already signed): they become 'done' with no result and `code`
   * (null when nothing went wrong), so they are never handed out again.
   * Returns how many. A signer's late result for such a job gets CONFLICT
   * from complete.
   */
  async cancel(intent: string, code: ErrorCode | null): Promise<number> {
    const now = this.#now();
    return runOp('jobs.cancel', async () => {
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
