/**
 * What `GET /metrics` reads from the shared database at each scrape
 * (metrics.ts), over bounded sets only: intents in the open statuses (the
 * `intents_status_seq` index), unanswered signer jobs (the
 * `signer_jobs_signer_status` index), and the chain tracker's one tip row.
 * Nothing here grows with the confirmed history.
 */
import type { Millis } from '@custos/core';
import { type Kysely, sql } from 'kysely';
import type { CoordinatorDb } from './connect.js';
import { dbError } from './errors.js';
import type { IntentStatus, Tables } from './schema.js';

export interface MetricsSnapshot {
  /** Intents per status, for the statuses asked. */
  readonly intents: Readonly<Partial<Record<IntentStatus, number>>>;
  /** Per signer with unanswered jobs: how many, and the oldest one's creation time. */
  readonly jobs: readonly { readonly signer: string; readonly open: number; readonly oldest: Millis }[];
  /** The chain tracker's last processed height; null before its first block. */
  readonly trackerHeight: number | null;
}

export class MetricsStore {
  readonly #db: Kysely<Tables>;

  constructor(database: CoordinatorDb) {
    this.#db = database.db;
  }

  async snapshot(statuses: readonly IntentStatus[]): Promise<MetricsSnapshot> {
    try {
      const intents: Partial<Record<IntentStatus, number>> = {};
      for (const status of statuses) {
        const row = await this.#db
          .selectFrom('intents')
          .select(sql<string | number>`count(*)`.as('n'))
          .where('status', '=', status)
          .executeTakeFirst();
        intents[status] = Number(row?.n ?? 0);
      }
      const jobs = await this.#db
        .selectFrom('signer_jobs')
        .select([
          'signer',
          sql<string | number>`count(*)`.as('open'),
          sql<string | number>`min(created_at)`.as('oldest'),
        ])
        .where('status', 'in', ['queued', 'delivered'])
        .groupBy('signer')
        .orderBy('signer')
        .execute();
      const tip = await this.#db
        .selectFrom('chain_tip')
        .select('height')
        .where('id', '=', 1)
        .executeTakeFirst();
      return {
        intents,
        jobs: jobs.map((j) => ({
          signer: j.signer,
          open: Number(j.open),
          oldest: Number(j.oldest) as Millis,
        })),
        trackerHeight: tip?.height === undefined || tip.height === null ? null : Number(tip.height),
      };
    } catch (err) {
      throw dbError(err, 'metrics.snapshot');
    }
  }
}
