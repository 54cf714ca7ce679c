/**
 * The coordinator's outgoing notifications (`outbox`): webhook calls,
 * queued as events happen and delivered by webhooks.ts.
 *
 * Invariants: a due notification is leased by one UPDATE over rows picked
 * FOR UPDATE SKIP LOCKED (PostgreSQL), so coordinators polling together do
 * not send one notification at once; a lease that runs out makes it due
 * again (delivery is at least once, receivers deduplicate by id); a
 * delivered notification is never failed again.
 */
import { CustosError, canonicalize, type Millis } from '@custos/core';
import type { Kysely, Selectable } from 'kysely';
import type { CoordinatorDb } from './connect.js';
import { clamp, int, intOrNull, runOp } from './rows.js';
import type { OutboxTable, Tables } from './schema.js';

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

export class OutboxStore {
  readonly #db: Kysely<Tables>;
  readonly #pg: boolean;
  readonly #now: () => Millis;

  constructor(database: CoordinatorDb, now: () => Millis = Date.now) {
    this.#db = database.db;
    this.#pg = database.dialect === 'postgres';
    this.#now = now;
  }

  /** Queues a notification (a webhook call): `payload` is stored as canonical JSON. Returns its id. */
  async enqueue(o: { event: string; payload: unknown; target: string; at?: Millis }): Promise<number> {
    const payload = canonicalize(o.payload);
    const now = o.at ?? this.#now();
    return runOp('outbox.enqueue', async () => {
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
  async due(now: Millis, max: number, leaseMs = 60_000): Promise<readonly OutboxRecord[]> {
    const n = clamp(max, 1, 1000);
    return runOp('outbox.due', async () => {
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
  async markDelivered(id: number, at: Millis): Promise<void> {
    await runOp('outbox.markDelivered', async () => {
      const res = await this.#db
        .updateTable('outbox')
        .set((eb) => ({ delivered_at: at, attempts: eb('attempts', '+', 1), last_error: null }))
        .where('id', '=', id)
        .executeTakeFirst();
      if (res.numUpdatedRows === 0n) throw new CustosError('NOT_FOUND', 'no such notification', { id });
    });
  }

  /** Records a failed attempt and when to try again. `error` is cut to 1000 characters. Throws NOT_FOUND. */
  async markFailed(id: number, f: { attempts: number; nextAttemptAt: Millis; error: string }): Promise<void> {
    await runOp('outbox.markFailed', async () => {
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
  async get(id: number): Promise<OutboxRecord | null> {
    return runOp('outbox.get', async () => {
      const row = await this.#db.selectFrom('outbox').selectAll().where('id', '=', id).executeTakeFirst();
      return row === undefined ? null : outboxRecord(row);
    });
  }
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
