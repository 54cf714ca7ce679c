/**
 * "Jobs were queued for this signer", across coordinator processes on one
 * database, so a signer's waiting long poll is answered the moment its job is
 * queued, whichever coordinator queued it (pipeline/feed.ts).
 *
 * PostgreSQL: NOTIFY on the `custos_jobs` channel after the jobs are
 * committed, and LISTEN on a connection of its own in every coordinator. A
 * notice is only a hint to look: the job rows decide what is handed out, and
 * a notice lost (the connection broke) costs at most the feed's fallback poll
 * of the table. SQLite has no such channel: several processes on one file see
 * each other's jobs by that poll, which is short there (the query is local).
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { CoordinatorDb } from './connect.js';

const CHANNEL = 'custos_jobs';

export class JobNotices {
  readonly #database: CoordinatorDb;
  /** A coordinator's own notices come back to it: they are told apart by this tag. */
  readonly #self = randomBytes(8).toString('hex');

  constructor(database: CoordinatorDb) {
    this.#database = database;
  }

  /** How often a waiting poll should look at the job table itself: the fallback for lost notices. */
  get pollMs(): number {
    return this.#database.listen === undefined ? 50 : 250;
  }

  /** Tells the other coordinators that jobs for `signer` were committed. Best effort, never throws. */
  async publish(signer: string): Promise<void> {
    if (this.#database.listen === undefined) return;
    try {
      await sql`select pg_notify(${CHANNEL}, ${`${this.#self}:${signer}`})`.execute(this.#database.db);
    } catch {
      // A lost notice costs one fallback poll.
    }
  }

  /** Calls `onQueued(signer)` for jobs other coordinators queued. Returns the way to stop. */
  subscribe(onQueued: (signer: string) => void): () => void {
    const listen = this.#database.listen;
    if (listen === undefined) return () => undefined;
    return listen(CHANNEL, (payload) => {
      const at = payload.indexOf(':');
      if (at < 0 || payload.slice(0, at) === this.#self) return;
      onQueued(payload.slice(at + 1));
    });
  }
}
