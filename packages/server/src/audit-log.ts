/**
 * The coordinator's audit log (docs/architecture.md "Audit entry"; THREATS 30): every
 * state change and every refusal becomes an entry in the hash chain the store
 * keeps (store.audit.append computes seq, prev and hash, one append at a
 * time across every coordinator sharing the database).
 *
 * Refused requests are the one kind of entry an outsider can cause at will:
 * anyone can send a thousand unsigned requests a second. Auditing each would
 * let a flood grow the log, and the database, without bound. So refusals go
 * through a RefusalAuditor: at most `perKey` entries per key id (or per
 * 'anonymous') and `total` entries overall in each window; the rest are
 * counted, and one summary entry per window records how many were left out
 * (subject `suppressed <n> refusals`, digest over the window and the count).
 * Nothing is lost silently: the summary is in the chain too.
 */
import { type Digest, digestOf, type Millis } from '@custos/core';
import type { Logger } from 'pino';
import type { AuditLog } from './contracts.js';
import type { AuditEvent, Store } from './db/repository.js';

/** Longest actor and subject the audit entry schema takes. */
const MAX_FIELD = 128;

/** Keeps audit fields within the entry schema: printable ASCII, at most 128 characters. */
export function auditText(s: string, fallback = '-'): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?').slice(0, MAX_FIELD);
  return clean.length > 0 ? clean : fallback;
}

/** The AuditLog over the store's hash-chained table. */
export class StoreAuditLog implements AuditLog {
  readonly #store: Store;
  readonly #clock: () => Millis;

  constructor(store: Store, clock: () => Millis) {
    this.#store = store;
    this.#clock = clock;
  }

  async append(e: {
    actor: string;
    event: string;
    subject: string;
    digest: Digest;
    at?: Millis;
  }): Promise<void> {
    await this.#store.audit.append(this.event(e));
  }

  /**
   * The stored form of an event, for the Store operations that write a row
   * and its audit entry in one transaction (intents.insert, approvals.insert).
   */
  event(e: { actor: string; event: string; subject: string; digest: Digest; at?: Millis }): AuditEvent {
    return {
      at: e.at ?? this.#clock(),
      actor: auditText(e.actor, 'anonymous'),
      event: e.event,
      subject: auditText(e.subject, ''),
      digest: e.digest,
    };
  }
}

export interface RefusalLimits {
  /** Entries per key id (or 'anonymous') per window. */
  readonly perKey: number;
  /** Entries per window over all keys. */
  readonly total: number;
  readonly windowMs: number;
}

export const DEFAULT_REFUSAL_LIMITS: RefusalLimits = { perKey: 10, total: 200, windowMs: 60_000 };

export interface Refusal {
  /** The key id the request claimed, or 'anonymous'. */
  readonly actor: string;
  readonly subject: string;
  /** sha256 of the refused body. */
  readonly digest: Digest;
}

/**
 * Audits `request.refused` entries with a bounded rate (see the module header).
 * Writes never fail the refusal they record: a failed write is logged.
 */
export class RefusalAuditor {
  readonly #audit: AuditLog;
  readonly #clock: () => Millis;
  readonly #limits: RefusalLimits;
  readonly #logger: Logger | undefined;
  #window = Number.NEGATIVE_INFINITY;
  #perKey = new Map<string, number>();
  #written = 0;
  #suppressed = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #pending = new Set<Promise<void>>();

  constructor(audit: AuditLog, clock: () => Millis, limits: RefusalLimits, logger?: Logger) {
    this.#audit = audit;
    this.#clock = clock;
    this.#limits = limits;
    this.#logger = logger;
  }

  /**
   * Records one refusal: an entry if the budget allows, else a count for the
   * window's summary. Whether an entry was written: what the refusal may set
   * off beyond it (an alert) is bounded by the same budget.
   */
  async refused(r: Refusal): Promise<boolean> {
    const now = this.#clock();
    const window = Math.floor(now / this.#limits.windowMs) * this.#limits.windowMs;
    if (window !== this.#window) {
      this.#rollover();
      this.#window = window;
    }
    const used = this.#perKey.get(r.actor) ?? 0;
    if (used >= this.#limits.perKey || this.#written >= this.#limits.total) {
      this.#suppressed++;
      this.#armTimer();
      return false;
    }
    // The map is bounded by `total`: a key only enters it when an entry is written.
    this.#perKey.set(r.actor, used + 1);
    this.#written++;
    await this.#track(
      this.#audit.append({
        actor: r.actor,
        event: 'request.refused',
        subject: r.subject,
        digest: r.digest,
        at: now,
      }),
    );
    return true;
  }

  /** Writes the summary of the current window, if anything was suppressed, and waits for pending writes. */
  async flush(): Promise<void> {
    this.#rollover();
    this.#window = Number.NEGATIVE_INFINITY;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await Promise.all([...this.#pending]);
  }

  /** Ends the current window: its summary entry if something was suppressed, then fresh counters. */
  #rollover(): void {
    if (this.#suppressed > 0) {
      const from = this.#window;
      const to = from + this.#limits.windowMs;
      const suppressed = this.#suppressed;
      void this.#track(
        this.#audit.append({
          actor: 'coordinator',
          event: 'request.refused',
          subject: `suppressed ${suppressed} refusals`,
          digest: digestOf('refusal-summary', 1, { from, to, suppressed }),
          at: Math.max(from, Math.min(this.#clock(), to)),
        }),
      );
    }
    this.#suppressed = 0;
    this.#written = 0;
    this.#perKey = new Map();
  }

  /** When a flood stops, its summary still gets written at the end of the window (real time). */
  #armTimer(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#suppressed > 0) {
        this.#rollover();
        this.#window = Number.NEGATIVE_INFINITY;
      }
    }, this.#limits.windowMs);
    this.#timer.unref();
  }

  #track(p: Promise<void>): Promise<void> {
    const tracked = p.catch((err: unknown) => {
      this.#logger?.error({ err }, 'could not audit a refused request');
    });
    this.#pending.add(tracked);
    void tracked.finally(() => this.#pending.delete(tracked));
    return tracked;
  }
}
