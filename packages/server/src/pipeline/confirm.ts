/**
 * Flow step 5's tail: a broadcast transaction is followed until it has the
 * confirmations the operator asked for (1 on regtest, 6 elsewhere by
 * default), then the intent is `confirmed`, audited `transaction.confirmed`,
 * and its coins' reservations dropped (they are spent for good).
 *
 * Where a transaction was mined is read from the blocks themselves
 * (ChainWatcher.locate), and checked again on every pass: a block that left
 * the active chain (a reorg) sets the transaction back to 0 confirmations
 * and the search starts again below it. A transaction not mined after
 * `rebroadcastAfterMs` is sent again (a node may have dropped it from its
 * mempool); sending again is harmless, a node answers "already known".
 *
 * A bumped intent (issue 13) has several transactions that conflict: the
 * original and its replacements. All are looked for; the one mined becomes
 * the intent's transaction and the others are marked replaced (pipeline/bump.ts).
 */
import { CustosError } from '@custos/core';
import type { TransactionRecord } from '../db/repository.js';
import { settleBumps, transactionsOfBumps } from './bump.js';
import { auditRecord, type Context, txDigest } from './context.js';
import { errorFields } from './support.js';

export class Confirmations {
  readonly #ctx: Context;
  /** When each unmined transaction was last sent, by txid. */
  readonly #sent = new Map<string, number>();
  #target: number | null;

  constructor(ctx: Context) {
    this.#ctx = ctx;
    this.#target = ctx.opts.confirmationsTarget;
  }

  async target(): Promise<number> {
    if (this.#target === null) {
      this.#target = (await this.#ctx.chain.network()) === 'regtest' ? 1 : 6;
    }
    return this.#target;
  }

  /** One pass over the transactions below the target. */
  async pass(): Promise<void> {
    const ctx = this.#ctx;
    const target = await this.target();
    const txs = await ctx.store.transactions.below(target);
    // A transaction whose recorded block is no longer on the active chain goes back to the search.
    const open: TransactionRecord[] = [];
    const mined: TransactionRecord[] = [];
    for (const t of txs) {
      if (t.blockHeight === null || t.blockHash === null) {
        open.push(t);
        continue;
      }
      if ((await ctx.chain.blockHashAt(t.blockHeight)) === t.blockHash) {
        mined.push(t);
        continue;
      }
      ctx.log.warn({ intent: t.intent, txid: t.txid, height: t.blockHeight }, 'transaction reorganized out');
      await ctx.store.transactions.update(t.intent, { confirmations: 0, blockHeight: null, blockHash: null });
      await ctx.chain.rewindScan(t.blockHeight - 1);
      open.push({ ...t, confirmations: 0, blockHeight: null, blockHash: null });
    }
    // Issue 13: a bumped intent has more than one transaction; whichever is mined is followed.
    const alternatives = await transactionsOfBumps(ctx, open);
    const { height, found } = await ctx.chain.locate(
      new Set([...open.map((t) => t.txid), ...alternatives.keys()]),
    );
    for (const row of open) {
      const t = await settleBumps(ctx, row, alternatives, found);
      const at = found.get(t.txid);
      if (at === undefined) {
        await this.#rebroadcast(t);
        continue;
      }
      this.#sent.delete(t.txid);
      mined.push({ ...t, blockHeight: at.height, blockHash: at.hash, confirmations: -1 });
    }
    for (const t of mined) {
      const blockHeight = t.blockHeight as number;
      let confirmations = Math.max(0, height - blockHeight + 1);
      if (confirmations >= target) {
        const moved = await ctx.store.intents.updateStatus(t.intent, {
          from: 'broadcast',
          to: 'confirmed',
          audit: auditRecord(ctx, {
            event: 'transaction.confirmed',
            subject: t.intent,
            digest: txDigest(t.txid),
          }),
        });
        if (moved) {
          ctx.log.info({ intent: t.intent, txid: t.txid, confirmations }, 'transaction confirmed');
          await ctx.chain.release(new Set([t.intent]));
        } else if ((await ctx.store.intents.get(t.intent))?.status !== 'confirmed') {
          // Still `signed` (the broadcast step has not finished): keep the row below the target so
          // this pass sees it again once the intent is `broadcast`.
          confirmations = target - 1;
        }
      }
      if (confirmations !== t.confirmations) {
        await ctx.store.transactions.update(t.intent, { confirmations, blockHeight, blockHash: t.blockHash });
      }
    }
  }

  async #rebroadcast(t: TransactionRecord): Promise<void> {
    const ctx = this.#ctx;
    const now = ctx.clock();
    const last = this.#sent.get(t.txid) ?? t.broadcastAt;
    if (now - last < ctx.opts.rebroadcastAfterMs) return;
    this.#sent.set(t.txid, now);
    try {
      await ctx.rpc.sendRawTransaction(t.rawHex);
      ctx.log.info({ intent: t.intent, txid: t.txid }, 'unmined transaction sent again');
    } catch (err) {
      // Known already, or spent by a conflicting transaction: either way nothing to do here but tell.
      const level = err instanceof CustosError && err.code === 'UNAVAILABLE' ? 'info' : 'warn';
      ctx.log[level]({ ...errorFields(err), intent: t.intent, txid: t.txid }, 'sending again failed');
    }
  }
}
