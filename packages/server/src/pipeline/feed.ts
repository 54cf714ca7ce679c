/**
 * The signer feed (docs/api.md "Signer feed"): jobs by long poll, and the
 * audit checkpoints signers countersign (docs/architecture.md "Audit entry"; THREATS 30).
 *
 * Long poll: a poll claims jobs at once; with none, it waits until jobs are
 * queued for that signer, by this process (a wake-up) or by another
 * coordinator on the same database (a notice: PostgreSQL NOTIFY, db/notices.ts),
 * or until the next look at the job table (every 250 ms on PostgreSQL, the
 * fallback for a lost notice and for jobs gone stale for redelivery; every
 * 50 ms on SQLite, which has no notices), until `waitMs` has passed. Jobs whose intent is no longer `signing` are withdrawn instead of
 * handed out: a signer must not sign (and spend its rolling limits on) an
 * intent already refused or already signed by others.
 *
 * Checkpoints without ping-pong: a checkpoint is asked for when the audit
 * head has moved past the last one this signer signed, and at most once per
 * `checkpointIntervalMs` per signer. Storing a checkpoint writes no audit
 * entry (an entry would move the head and ask for the next checkpoint at
 * once). A checkpoint that does not match the log is refused with
 * CHECKPOINT_INVALID and audited as an `alert`, at most once per interval
 * per signer, so even a signer that always signs a wrong head adds one entry
 * per interval, not one per poll.
 */
import {
  auditEntryDigest,
  CustosError,
  checkpointDigest,
  type Digest,
  type SignedCheckpoint,
  type SignerJob,
  verifyCheckpointSignature,
} from '@custos/core';
import type { SignerFeed } from '../contracts.js';
import { ACTOR, auditEvent, type Context, notify } from './context.js';

/** The longest wait a poll may ask for (docs/api.md: wait <= 30000). */
export const MAX_WAIT_MS = 30_000;
/** Jobs handed out per poll at most. */
const MAX_JOBS_PER_POLL = 10;

const EMPTY: SignerFeed = { jobs: [], checkpoint: null };

export class Feed {
  readonly #ctx: Context;
  readonly #waiters = new Map<string, Set<() => void>>();
  /** When this process last asked each signer for a checkpoint. */
  readonly #asked = new Map<string, number>();
  /** The last checkpoint seq known signed by each signer, and when it was read from the store. */
  readonly #signed = new Map<string, { seq: number; readAt: number }>();
  /** When a bad checkpoint of each signer was last audited. */
  readonly #alerted = new Map<string, number>();
  #closed = false;
  /** Stops listening for other coordinators' notices. */
  #unsubscribe: (() => void) | null = null;

  constructor(ctx: Context) {
    this.#ctx = ctx;
  }

  /** Jobs for `signer` were committed by this process: wakes its polls here and tells the others. */
  queued(signer: string): void {
    this.wake(signer);
    void this.#ctx.store.notices.publish(signer);
  }

  /** Wakes the polls waiting for `signer`. */
  wake(signer: string): void {
    const waiting = this.#waiters.get(signer);
    if (waiting === undefined) return;
    this.#waiters.delete(signer);
    for (const w of waiting) w();
  }

  /** Serves polls again after close(). */
  open(): void {
    this.#closed = false;
    this.#unsubscribe ??= this.#ctx.store.notices.subscribe((signer) => this.wake(signer));
  }

  /** Ends every waiting poll, and answers new ones at once with nothing (the pipeline stops). */
  close(): void {
    this.#closed = true;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    for (const signer of [...this.#waiters.keys()]) this.wake(signer);
  }

  async jobsFor(signer: string, waitMs: number, signal: AbortSignal): Promise<SignerFeed> {
    const wait = Number.isFinite(waitMs) ? Math.min(MAX_WAIT_MS, Math.max(0, Math.floor(waitMs))) : 0;
    const deadline = performance.now() + wait;
    const pollMs = this.#ctx.store.notices.pollMs;
    // Bounded: the wait divided by the table poll, and some.
    const rounds = Math.ceil(MAX_WAIT_MS / pollMs) + 4;
    for (let round = 0; round < rounds; round++) {
      if (this.#closed || signal.aborted) {
        // Yield to the event loop: a caller polling again at once must not starve timers.
        await new Promise((resolve) => setImmediate(resolve));
        return EMPTY;
      }
      const jobs = await this.#claim(signer);
      const checkpoint = await this.#checkpointFor(signer);
      if (jobs.length > 0 || checkpoint !== null) return { jobs, checkpoint };
      const left = deadline - performance.now();
      if (left <= 0) break;
      await this.#wait(signer, Math.min(pollMs, left), signal);
    }
    return EMPTY;
  }

  async acceptCheckpoint(signer: string, sc: SignedCheckpoint): Promise<void> {
    const ctx = this.#ctx;
    const c = sc.checkpoint;
    const state = await ctx.governance.current();
    const key = state.signers.get(signer)?.publicKey;
    let problem: string | null = null;
    if (c.signer !== signer) problem = `the checkpoint names signer ${c.signer}`;
    else if (key === undefined) problem = `signer ${signer} is not in governance`;
    else if (!verifyCheckpointSignature(sc, key)) problem = 'the signature does not verify';
    else if (c.org !== state.org) problem = 'the checkpoint is for another organization';
    else {
      const [entry] = await ctx.store.audit.range(c.seq, 1);
      if (entry === undefined || entry.seq !== c.seq) problem = `there is no audit entry ${c.seq}`;
      else if (auditEntryDigest(entry) !== c.head) problem = `the head is not audit entry ${c.seq}`;
    }
    if (problem !== null) {
      await this.#refuse(signer, sc, problem);
      throw new CustosError('CHECKPOINT_INVALID', `checkpoint refused: ${problem}`, { signer, seq: c.seq });
    }
    try {
      await ctx.store.audit.insertCheckpoint(sc);
    } catch (err) {
      // The same (signer, seq) signed again with another time: the head was checked above, keep the first.
      if (!(err instanceof CustosError) || err.code !== 'CONFLICT') throw err;
    }
    const known = this.#signed.get(signer);
    if (known === undefined || c.seq > known.seq) {
      this.#signed.set(signer, { seq: c.seq, readAt: known?.readAt ?? performance.now() });
    }
  }

  // ------------------------------------------------------------------ internals

  async #claim(signer: string): Promise<SignerJob[]> {
    const ctx = this.#ctx;
    const claimed = await ctx.store.jobs.claim(signer, MAX_JOBS_PER_POLL);
    const live: SignerJob[] = [];
    const statusOf = new Map<string, string | null>();
    for (const job of claimed) {
      let status = statusOf.get(job.intent);
      if (status === undefined) {
        status = (await ctx.store.intents.get(job.intent))?.status ?? null;
        statusOf.set(job.intent, status);
      }
      if (job.job.bump !== undefined) {
        // A fee bump's job (issue 13) is live while the intent's transaction is broadcast, unmined.
        if (status === 'broadcast') live.push(job.job);
        else await ctx.store.jobs.withdraw(job.id);
        continue;
      }
      if (status === 'signing') {
        live.push(job.job);
        continue;
      }
      await ctx.store.jobs.cancel(job.intent, null);
    }
    return live;
  }

  async #checkpointFor(signer: string): Promise<SignerFeed['checkpoint']> {
    const ctx = this.#ctx;
    const now = performance.now();
    const asked = this.#asked.get(signer);
    if (asked !== undefined && now - asked < ctx.opts.checkpointIntervalMs) return null;
    const head = await ctx.store.audit.head();
    if (head === null) return null;
    const last = await this.#lastSigned(signer, now);
    if (last !== null && head.seq <= last) return null;
    this.#asked.set(signer, now);
    return { seq: head.seq, head: head.hash };
  }

  /** The last seq this signer checkpointed; read from the store at most once per interval. */
  async #lastSigned(signer: string, now: number): Promise<number | null> {
    const known = this.#signed.get(signer);
    if (known !== undefined && now - known.readAt < this.#ctx.opts.checkpointIntervalMs) return known.seq;
    const all = await this.#ctx.store.audit.checkpoints({ signer });
    const seq = all.reduce((max, sc) => Math.max(max, sc.checkpoint.seq), -1);
    const best = Math.max(seq, known?.seq ?? -1);
    this.#signed.set(signer, { seq: best, readAt: now });
    return best < 0 ? null : best;
  }

  async #refuse(signer: string, sc: SignedCheckpoint, problem: string): Promise<void> {
    const ctx = this.#ctx;
    ctx.log.warn({ signer, seq: sc.checkpoint.seq, code: 'CHECKPOINT_INVALID' }, problem);
    const now = performance.now();
    const last = this.#alerted.get(signer);
    if (last !== undefined && now - last < ctx.opts.checkpointIntervalMs) return;
    this.#alerted.set(signer, now);
    let digest: Digest;
    try {
      digest = checkpointDigest(sc.checkpoint);
    } catch {
      digest = sc.checkpoint.head;
    }
    await auditEvent(ctx, { actor: ACTOR, event: 'alert', subject: `signer:${signer}`, digest });
    await notify(ctx, 'alert', {
      subject: `signer:${signer}`,
      signer,
      code: 'CHECKPOINT_INVALID',
      severity: 'critical',
      message: `checkpoint ${sc.checkpoint.seq} refused: ${problem}`,
    });
  }

  /** Resolves after `ms`, on a wake-up for `signer`, or when `signal` aborts, whichever is first. */
  #wait(signer: string, ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      let waiting = this.#waiters.get(signer);
      if (waiting === undefined) {
        waiting = new Set();
        this.#waiters.set(signer, waiting);
      }
      const set = waiting;
      const timer = setTimeout(() => done(), ms);
      function done(): void {
        clearTimeout(timer);
        set.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      }
      set.add(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
