/**
 * The job loop: pull, decide, hand back, forever, with bounded backoff when
 * the coordinator is away. Results are durable before they are sent, so a
 * result lost in transit is simply produced again (from the ledger) when the
 * coordinator hands the job back.
 */
import type { SignerResult } from '@custos/core';
import type { Signer } from './signer.js';
import type { JobSource, WatcherFreezeFeed } from './source.js';

export interface DaemonEvents {
  onResult?(result: SignerResult): void;
  onCheckpoint?(outcome: { seq: number; ok: boolean; code?: string }): void;
  onError?(err: unknown): void;
  /** A freeze pulled from a watcher was applied (or refused: `code`). */
  onWatcherFreeze?(outcome: { seq: number; outcome: string; code?: string }): void;
}

export interface DaemonOptions extends DaemonEvents {
  readonly signer: Signer;
  readonly source: JobSource;
  readonly signal: AbortSignal;
  /** Long-poll wait per request (default 10 s). */
  readonly waitMs?: number;
  /** Longest pause between failed attempts (default 5 s). */
  readonly maxBackoffMs?: number;
  /** The watchers' freezes (issue 12), pulled after every poll and applied before any job is decided. */
  readonly freezes?: WatcherFreezeFeed;
}

export async function runDaemon(opts: DaemonOptions): Promise<void> {
  let backoff = 100;
  const maxBackoff = opts.maxBackoffMs ?? 5000;
  while (!opts.signal.aborted) {
    let jobs: unknown[];
    let checkpoint: unknown;
    try {
      ({ jobs, checkpoint } = await opts.source.nextJobs(opts.waitMs ?? 10_000, opts.signal));
      backoff = 100;
    } catch (err) {
      if (opts.signal.aborted) break;
      opts.onError?.(err);
      await sleep(backoff, opts.signal);
      backoff = Math.min(maxBackoff, backoff * 2);
      continue;
    }
    const freezes = opts.freezes === undefined ? [] : await pullFreezes(opts, opts.freezes);
    if (checkpoint !== null && checkpoint !== undefined) await countersign(opts, checkpoint);
    for (const raw of jobs) {
      if (opts.signal.aborted) return;
      const result = await opts.signer.handle(raw, opts.source, freezes);
      opts.onResult?.(result);
      for (let attempt = 0; attempt < 5 && !opts.signal.aborted; attempt++) {
        try {
          await opts.source.submit(result);
          break;
        } catch (err) {
          opts.onError?.(err);
          await sleep(Math.min(maxBackoff, 100 * 2 ** attempt), opts.signal);
        }
      }
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

async function countersign(opts: DaemonOptions, request: unknown): Promise<void> {
  const signed = opts.signer.countersign(request);
  const seq =
    typeof request === 'object' && request !== null ? Number((request as { seq?: unknown }).seq) : -1;
  if (!signed.ok) {
    opts.onCheckpoint?.({ seq, ok: false, code: signed.code });
    return;
  }
  try {
    await opts.source.submitCheckpoint(signed.checkpoint);
    opts.onCheckpoint?.({ seq, ok: true });
  } catch (err) {
    opts.onError?.(err);
  }
}

/**
 * Applies every freeze the watchers serve that fits this signer's head (the rest are stale or known) and
 * returns them all, for each job to apply again once governance is at the job's head.
 */
async function pullFreezes(opts: DaemonOptions, feed: WatcherFreezeFeed): Promise<unknown[]> {
  const entries = await feed.pull((_url, err) => opts.onError?.(err));
  for (const raw of entries) {
    const r = opts.signer.applyWatcherFreeze(raw);
    if (r.outcome === 'applied' || r.outcome === 'refused') {
      const seq = Number((raw as { entry?: { seq?: unknown } } | null)?.entry?.seq ?? -1);
      opts.onWatcherFreeze?.(
        r.outcome === 'refused' ? { seq, outcome: r.outcome, code: r.code } : { seq, outcome: r.outcome },
      );
    }
  }
  return entries;
}
