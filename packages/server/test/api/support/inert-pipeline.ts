/**
 * A small, real SigningPipeline for the HTTP edge's tests: it builds no
 * transaction and talks to no chain. It records each `onApproved` call (the
 * hand-over these tests check: exactly once per approved intent), serves
 * empty signer feeds, and records results and checkpoints it is handed.
 *
 * It is not a mock of the real pipeline: it implements the seam
 * (contracts.ts) with the least behaviour that lets the edge run, the way a
 * coordinator with no chain configured would. What happens after "approved"
 * (PSBT building, signer jobs, receipts, broadcast) is the real pipeline's,
 * and its own tests cover it.
 *
 * A gate can hold `onApproved` (and `wallets`) open, so tests can have
 * requests in flight at a chosen moment (graceful shutdown).
 */
import type { Digest, SignedCheckpoint, SignerResult } from '@custos/core';
import type { SignerFeed, SigningPipeline, WalletSummary } from '../../../src/contracts.js';

export class InertPipeline implements SigningPipeline {
  readonly approved: Digest[] = [];
  readonly results: { signer: string; result: SignerResult }[] = [];
  readonly checkpoints: { signer: string; checkpoint: SignedCheckpoint }[] = [];
  readonly feeds: { signer: string; waitMs: number }[] = [];
  started = false;
  stopped = false;
  chain: { ok: boolean; height: number | null; message?: string } = { ok: true, height: 101 };
  walletSummaries: WalletSummary[] = [];
  #gate: Promise<void> | null = null;
  #open: (() => void) | null = null;
  /** Calls of onApproved and wallets currently waiting at the gate. */
  waiting = 0;

  /** Holds onApproved and wallets until `release()`. */
  hold(): void {
    this.#gate = new Promise((resolve) => {
      this.#open = resolve;
    });
  }

  release(): void {
    this.#open?.();
    this.#gate = null;
    this.#open = null;
  }

  async onApproved(intentId: Digest): Promise<void> {
    await this.#pass();
    this.approved.push(intentId);
  }

  async jobsFor(signer: string, waitMs: number, signal: AbortSignal): Promise<SignerFeed> {
    this.feeds.push({ signer, waitMs });
    // Nothing is ever queued here: wait as a long-poll would, and end early when asked to.
    await new Promise<void>((resolve) => {
      if (signal.aborted) return resolve();
      const timer = setTimeout(resolve, waitMs);
      signal.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          resolve();
        },
        { once: true },
      );
    });
    return { jobs: [], checkpoint: null };
  }

  async acceptResult(signer: string, result: SignerResult): Promise<void> {
    this.results.push({ signer, result });
  }

  async acceptCheckpoint(signer: string, checkpoint: SignedCheckpoint): Promise<void> {
    this.checkpoints.push({ signer, checkpoint });
  }

  async wallets(): Promise<readonly WalletSummary[]> {
    await this.#pass();
    return this.walletSummaries;
  }

  async chainStatus(): Promise<{ ok: boolean; height: number | null; message?: string }> {
    return this.chain;
  }

  start(): void {
    this.started = true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
  }

  async #pass(): Promise<void> {
    const gate = this.#gate;
    if (gate === null) return;
    this.waiting++;
    try {
      await gate;
    } finally {
      this.waiting--;
    }
  }
}
