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
  /**
   * The watchers' freezes (issue 12): pulled after every job poll and applied before any job is decided,
   * and also every `freezePollMs` while the job poll waits, so an idle signer freezes within that interval
   * of the watcher signing rather than at the end of its long-poll (`waitMs`, 10 s by default).
   */
  readonly freezes?: WatcherFreezeFeed;
  /** How often the watchers are asked for freezes between job polls (default 250 ms). */
  readonly freezePollMs?: number;
}

export async function runDaemon(opts: DaemonOptions): Promise<void> {
  // The signer's state is changed by one of the two loops at a time: jobs (with their own freeze pull and
  // checkpoint) or a freeze pulled between polls.
  let turn: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(work: () => Promise<T>): Promise<T> => {
    const run = turn.then(work);
    turn = run.catch(() => undefined);
    return run;
  };
  const pull: FreezePull | undefined =
    opts.freezes === undefined ? undefined : { feed: opts.freezes, refused: new Set() };
  // Ends with the job loop, however that ends.
  const done = new AbortController();
  const between =
    pull === undefined
      ? Promise.resolve()
      : freezeLoop(opts, pull, exclusive, AbortSignal.any([opts.signal, done.signal]));
  try {
    await jobLoop(opts, pull, exclusive);
  } finally {
    done.abort();
    await between;
  }
}

/** The watchers' feed, and the entries it served that were already reported refused. */
interface FreezePull {
  readonly feed: WatcherFreezeFeed;
  readonly refused: Set<string>;
}

async function jobLoop(
  opts: DaemonOptions,
  pull: FreezePull | undefined,
  exclusive: (work: () => Promise<void>) => Promise<void>,
): Promise<void> {
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
    await exclusive(async () => {
      const freezes = pull === undefined ? [] : await pullFreezes(opts, pull);
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
    });
  }
}

/**
 * The watchers asked for freezes every `freezePollMs` between job polls; a round in which a watcher fails
 * waits twice as long as the last (up to `maxBackoffMs`), so a watcher that is down is not reported four
 * times a second.
 */
async function freezeLoop(
  opts: DaemonOptions,
  pull: FreezePull,
  exclusive: (work: () => Promise<void>) => Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  const every = opts.freezePollMs ?? 250;
  const maxBackoff = Math.max(every, opts.maxBackoffMs ?? 5000);
  let wait = every;
  while (!signal.aborted) {
    await sleep(wait, signal);
    if (signal.aborted) return;
    let failed = false;
    try {
      await exclusive(async () => {
        await pullFreezes(opts, pull, () => {
          failed = true;
        });
      });
    } catch (err) {
      failed = true;
      opts.onError?.(err);
    }
    wait = failed ? Math.min(maxBackoff, wait * 2) : every;
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
async function pullFreezes(
  opts: DaemonOptions,
  pull: FreezePull,
  onFailure?: () => void,
): Promise<unknown[]> {
  const entries = await pull.feed.pull((_url, err) => {
    onFailure?.();
    opts.onError?.(err);
  });
  for (const raw of entries) {
    const r = opts.signer.applyWatcherFreeze(raw);
    if (r.outcome === 'refused' && !firstRefusal(pull.refused, raw)) continue;
    if (r.outcome === 'applied' || r.outcome === 'refused') {
      const seq = Number((raw as { entry?: { seq?: unknown } } | null)?.entry?.seq ?? -1);
      opts.onWatcherFreeze?.(
        r.outcome === 'refused' ? { seq, outcome: r.outcome, code: r.code } : { seq, outcome: r.outcome },
      );
    }
  }
  return entries;
}

/**
 * Whether a refused entry is reported for the first time: a watcher serves the same list on every pull,
 * four times a second, and one alert per entry is enough.
 */
function firstRefusal(refusedSeen: Set<string>, raw: unknown): boolean {
  let key: string;
  try {
    key = JSON.stringify(raw);
  } catch {
    return true;
  }
  if (refusedSeen.has(key)) return false;
  if (refusedSeen.size >= 256) refusedSeen.clear();
  refusedSeen.add(key);
  return true;
}
