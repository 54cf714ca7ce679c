/**
 * The coordinator's preview ledger: what was signed within the longest
 * rolling-limit window, so the coordinator refuses early what the signers
 * would refuse (they decide from their own ledgers; this is a preview, never
 * the check).
 *
 * It follows the audit log rather than reading the window again for each
 * decision. Loaded once from the intents' columns (the window's signed
 * intents, through the (status, updated_at) index), it then reads only the
 * log entries appended since: `intent.signed` adds an intent (its status
 * change and the entry commit in one transaction, and the log is appended in
 * commit order, one entry at a time across every coordinator on the
 * database), `intent.refused` removes one (a signed intent whose
 * transaction failed to finalize or was rejected no longer counts). So each
 * decision costs what was signed since the last one, not what was signed
 * today: before, every intent POST and approval read and summed every row of
 * the window (a day of withdrawals was quadratic: the soak's coordinator CPU
 * per withdrawal grew by about 25 ms a minute at 4 clients).
 *
 * An intent signed before this coordinator started is dated by its last
 * update, one followed here by its audit time: within a few seconds of each
 * other, later rather than earlier, so a limit counts it at least as long.
 */
import { type Digest, LedgerIndex, type LedgerView, type Millis } from '@custos/core';
import type { IntentStatus, Store } from './db/repository.js';
import { SharedRead } from './shared-read.js';

/** The statuses of an intent whose transaction was signed. */
export const SIGNED_STATUSES: readonly IntentStatus[] = ['signed', 'broadcast', 'confirmed'];

/** The audit events that move an intent into or out of the ledger. */
const FOLLOWED = ['intent.signed', 'intent.refused'] as const;

/** Entries this far behind the window are dropped (once a minute at most). */
const PRUNE_EVERY_MS = 60_000;

export class PreviewLedger {
  readonly #store: Store;
  #index: LedgerIndex | null = null;
  /** The oldest time the index holds everything after. */
  #since = 0 as Millis;
  /** The last audit seq read. */
  #seq = -1;
  #lastPrune = 0;
  /** Concurrent decisions share reads, each reading after it arrived (shared-read.ts). */
  readonly #reads: SharedRead<Millis, void>;

  constructor(store: Store) {
    this.#store = store;
    this.#reads = new SharedRead(
      (since) => this.#read(since),
      (a, b) => Math.min(a, b) as Millis,
    );
  }

  /** The ledger of everything signed after `since`, up to date with the audit log as of this call. */
  async view(since: Millis): Promise<LedgerView> {
    await this.#reads.read(since);
    return this.#index!;
  }

  async #read(since: Millis): Promise<void> {
    if (this.#index === null || since < this.#since) {
      // First use, or a longer window than loaded (a policy change): load the window again.
      const head = await this.#store.audit.head();
      const rows = await this.#store.intents.signedSince(SIGNED_STATUSES, since);
      this.#index = new LedgerIndex(rows);
      this.#since = since;
      this.#seq = head?.seq ?? -1;
    }
    const index = this.#index;
    for (let page = 0; page < 1000; page++) {
      const events = await this.#store.audit.eventsSince(this.#seq, FOLLOWED);
      if (events.length === 0) break;
      const signedAt = new Map<string, Millis>();
      for (const e of events) {
        if (e.event === 'intent.signed') signedAt.set(e.subject, e.at);
        else {
          signedAt.delete(e.subject);
          index.remove(e.subject as Digest);
        }
      }
      const ids = [...signedAt.keys()].filter((id) => !index.has(id as Digest));
      for (const e of await this.#store.intents.ledgerEntriesOf(ids, (id) => signedAt.get(id)!)) index.add(e);
      this.#seq = events[events.length - 1]!.seq;
    }
    if (since - this.#lastPrune > PRUNE_EVERY_MS) {
      index.prune(since);
      this.#since = since;
      this.#lastPrune = since;
    }
  }
}
