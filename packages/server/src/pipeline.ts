/**
 * The signing pipeline (contracts.ts SigningPipeline): everything after "the
 * policy allows" (docs/architecture.md flow steps 3-5): build the transaction, queue a
 * job per signer, feed the signers, take their results, combine, broadcast,
 * follow confirmations; and the audit checkpoints signers countersign.
 *
 * The coordinator is trusted for availability only, and this is where that
 * shows: nothing here can make a signer sign. What it must get right is that
 * work is neither lost nor done twice when processes die, nodes go away or
 * several coordinators share one database:
 * - every state change of an intent is a compare-and-set on its status, so
 *   one caller wins each step and only the winner audits and notifies;
 * - coins are reserved in the database as rows keyed by outpoint, change
 *   indices by compare-and-set (chain.ts), so two builds, in one process or
 *   two, never spend one coin;
 * - an outage leaves work where it is and the background loop takes it up
 *   again: approved intents are built again, jobs lost in a crash are queued
 *   again, a `signed` transaction is sent again, jobs a signer never answered
 *   are handed out again (store.jobs.claim, after the Store's
 *   `redeliverAfterMs`), confirmations are followed;
 * - within one process, one intent is built or advanced by one task at a
 *   time (a keyed lock), which only saves work: the database decides.
 *
 * The parts live under ./pipeline/: build.ts (step 3), feed.ts (the signer
 * feed and checkpoints), results.ts (step 4's results, step 5's broadcast),
 * confirm.ts (confirmations); chain.ts holds the wallets' coins.
 */
import { BitcoinRpc, type BitcoinRpcOptions } from '@custos/bitcoin';
import { CustosError, type Digest, type SignedCheckpoint, type SignerResult } from '@custos/core';
import { ChainWatcher } from './chain.js';
import type { CoordinatorParts, SignerFeed, SigningPipeline, WalletSummary } from './contracts.js';
import { buildIntent } from './pipeline/build.js';
import { advanceBump, requestBump } from './pipeline/bump.js';
import { Confirmations } from './pipeline/confirm.js';
import { type Context, type ResolvedOptions, refuseIntent } from './pipeline/context.js';
import { type EvmConfig, EvmSafes } from './pipeline/evm.js';
import { Feed } from './pipeline/feed.js';
import { Results } from './pipeline/results.js';
import { errorFields, KeyedLock, type Logger, silentLogger, sleep } from './pipeline/support.js';

export type { Logger } from './pipeline/support.js';

export interface PipelineOptions {
  /** The chain node: a client, or what to build one from. */
  readonly rpc: BitcoinRpc | BitcoinRpcOptions;
  /** sat/vB when the node has no estimate (estimatesmartfee 2); default 5. Capped by the policy's fee caps. */
  readonly feeRate?: bigint;
  /** Confirmations after which an intent is `confirmed`; default 1 on regtest, 6 elsewhere. */
  readonly confirmationsTarget?: number;
  /** Background loop period: chain sync, retries, rebroadcast, confirmations. Default 5 s. */
  readonly pollMs?: number;
  /** Period of the slower repairs (intents stuck in `signing`, stale reservations). Default 30 s. */
  readonly repairMs?: number;
  /** Addresses watched ahead of the highest used, per wallet and branch. Default 20. */
  readonly addressGap?: number;
  /** Where the wallet scan starts (the wallets' birth height). Default 0. */
  readonly startHeight?: number;
  /** Blocks applied per syncChain call. Default 500. */
  readonly maxBlocksPerSync?: number;
  /** A signer is asked for a checkpoint at most this often. Default 60 s. */
  readonly checkpointIntervalMs?: number;
  /** A broadcast transaction not mined after this long is sent again. Default 10 min. */
  readonly rebroadcastAfterMs?: number;
  /** Deliveries of a job a signer refuses with UNAVAILABLE before that refusal counts. Default 3. */
  readonly maxJobAttempts?: number;
  /** EVM chains for Safe wallets, by chain id: the coordinator's node and its executor key (pipeline/evm.ts). */
  readonly evm?: EvmConfig;
  readonly log?: Logger;
}

/** The pipeline, plus one pass of its background work on demand (for tools and tests). */
export interface Pipeline extends SigningPipeline {
  /** One pass of every background task (what the loop does each period), errors logged. */
  runOnce(): Promise<void>;
}

/** Intents taken per status and pass by the loop; more are taken by the next pass. */
const PAGE = 50;

export function createPipeline(parts: CoordinatorParts, opts: PipelineOptions): Pipeline {
  const log = opts.log ?? silentLogger;
  const rpc = opts.rpc instanceof BitcoinRpc ? opts.rpc : new BitcoinRpc(opts.rpc);
  const resolved: ResolvedOptions = {
    fallbackFeeRate: opts.feeRate ?? 5n,
    confirmationsTarget: opts.confirmationsTarget ?? null,
    pollMs: positive('pollMs', opts.pollMs ?? 5000),
    repairMs: positive('repairMs', opts.repairMs ?? 30_000),
    checkpointIntervalMs: nonNegative('checkpointIntervalMs', opts.checkpointIntervalMs ?? 60_000),
    rebroadcastAfterMs: positive('rebroadcastAfterMs', opts.rebroadcastAfterMs ?? 600_000),
    maxJobAttempts: positive('maxJobAttempts', opts.maxJobAttempts ?? 3),
  };
  if (typeof resolved.fallbackFeeRate !== 'bigint' || resolved.fallbackFeeRate < 1n) {
    throw new CustosError('INVALID_VALUE', 'feeRate must be at least 1 sat/vB');
  }
  if (resolved.confirmationsTarget !== null) positive('confirmationsTarget', resolved.confirmationsTarget);
  const chain = new ChainWatcher(parts.store, {
    rpc,
    addressGap: opts.addressGap ?? 20,
    startHeight: opts.startHeight ?? 0,
    maxBlocksPerSync: positive('maxBlocksPerSync', opts.maxBlocksPerSync ?? 500),
    log,
  });

  const evm = new EvmSafes(opts.evm ?? {});
  let feed: Feed | undefined;
  const ctx: Context = {
    ...parts,
    rpc,
    chain,
    evm,
    log,
    opts: resolved,
    wake: (signer) => feed?.queued(signer),
  };
  feed = new Feed(ctx);
  const lock = new KeyedLock();
  const results = new Results(ctx, lock);
  const confirmations = new Confirmations(ctx);

  const inflight = new Set<Promise<unknown>>();
  const track = <T>(p: Promise<T>): Promise<T> => {
    inflight.add(p);
    void p.then(
      () => inflight.delete(p),
      () => inflight.delete(p),
    );
    return p;
  };

  const build = (id: Digest): Promise<void> =>
    lock
      .run(id, () => buildIntent(ctx, id))
      .catch((err: unknown) => {
        log.warn({ ...errorFields(err), intent: id }, 'transaction not built yet; the loop retries');
      });

  const step = async (name: string, fn: () => Promise<unknown>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      log.warn({ ...errorFields(err), step: name }, 'background step failed; retried next pass');
    }
  };

  let lastRepair = Number.NEGATIVE_INFINITY;
  const runOnce = async (): Promise<void> => {
    await step('sync', async () => chain.sync(await parts.governance.current()));
    await step('approved', async () => {
      const page = await parts.store.intents.list({ status: 'approved', order: 'asc', limit: PAGE });
      for (const rec of page.intents) await build(rec.id);
    });
    await step('signed', async () => {
      const page = await parts.store.intents.list({ status: 'signed', order: 'asc', limit: PAGE });
      for (const rec of page.intents) await step('broadcast', () => results.advance(rec.id));
    });
    await step('bumps', async () => {
      for (const b of await parts.store.bumps.signing(PAGE)) {
        await step('bump', () => lock.run(b.id, () => advanceBump(ctx, b.id)));
      }
    });
    await step('confirmations', () => confirmations.pass());
    await step('evm', () => evm.pass(ctx));
    const now = performance.now();
    if (now - lastRepair >= resolved.repairMs) {
      lastRepair = now;
      await step('signing', () => repairSigning());
      await step('reservations', () => sweepReservations());
    }
  };

  /** Intents in `signing`: expire the stale, queue lost jobs, settle results a crash left unread. */
  const repairSigning = async (): Promise<void> => {
    const page = await parts.store.intents.list({ status: 'signing', order: 'asc', limit: PAGE * 4 });
    for (const rec of page.intents) {
      if (parts.clock() >= rec.signed.intent.expiresAt) {
        await step('expire', () =>
          refuseIntent(ctx, rec.id, 'signing', 'EXPIRED', 'the intent expired while signing', 'expired'),
        );
        continue;
      }
      await step('advance', () => results.advance(rec.id));
    }
  };

  /** Reservations of intents that will never spend them (refused, expired, gone) are freed. */
  const sweepReservations = async (): Promise<void> => {
    const stale = new Set<string>();
    for (const id of await chain.reservedIntents()) {
      const rec = await parts.store.intents.get(id);
      if (rec === null || !['approved', 'signing', 'signed', 'broadcast'].includes(rec.status)) stale.add(id);
    }
    if (stale.size > 0) await chain.release(stale);
  };

  let loop: Promise<void> | null = null;
  let stopper: AbortController | null = null;
  const run = async (signal: AbortSignal): Promise<void> => {
    // Bounded by stop(): each pass is bounded, and the sleep ends when stop() aborts it.
    while (!signal.aborted) {
      await runOnce();
      await sleep(resolved.pollMs, signal);
    }
  };

  return {
    onApproved: (intentId) => track(build(intentId)),
    jobsFor: (signer, waitMs, signal): Promise<SignerFeed> =>
      track((feed as Feed).jobsFor(signer, waitMs, signal)),
    acceptResult: (signer: string, result: SignerResult) => track(results.accept(signer, result)),
    acceptCheckpoint: (signer: string, sc: SignedCheckpoint) =>
      track((feed as Feed).acceptCheckpoint(signer, sc)),
    wallets: async (): Promise<readonly WalletSummary[]> => {
      const state = await parts.governance.current();
      return [...(await chain.summaries(state)), ...(await evm.summaries(state))];
    },
    chainStatus: async () => {
      try {
        return { ok: true, height: await rpc.getBlockCount() };
      } catch (err) {
        const message = err instanceof CustosError ? err.message : 'the chain node does not answer';
        return { ok: false, height: null, message };
      }
    },
    bump: (intent, signed, actor) => track(requestBump(ctx, intent, signed, actor)),
    runOnce: () => track(runOnce()),
    start(): void {
      if (loop !== null) return;
      (feed as Feed).open();
      stopper = new AbortController();
      loop = run(stopper.signal);
    },
    async stop(): Promise<void> {
      stopper?.abort();
      (feed as Feed).close();
      const running = loop;
      loop = null;
      stopper = null;
      if (running !== null) await running;
      // Bounded: each round waits for the work in flight at its start; new work is only what those started.
      for (let round = 0; round < 10 && inflight.size > 0; round++) {
        await Promise.allSettled([...inflight]);
      }
    },
  };
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new CustosError('INVALID_VALUE', `${name} must be a positive integer`);
  }
  return value;
}

function nonNegative(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new CustosError('INVALID_VALUE', `${name} must be a non-negative integer`);
  }
  return value;
}
