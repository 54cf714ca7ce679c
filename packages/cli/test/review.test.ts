import {
  evaluate,
  historyWarnings,
  intentDigest,
  intentWallet,
  type LedgerEntry,
  ledgerViewOf,
  type SignedIntent,
} from '@custos/core';
import { makeWorld, type World } from '@custos/test-support/world';
import { describe, expect, it } from 'vitest';
import type { IntentView } from '../src/client.js';
import { reviewIntent } from '../src/review.js';

/**
 * The approver's review (review.ts) shows what the policy in core decides,
 * with core's own functions and sentences, over what this client trusts: it
 * adds what a reviewer sees (the decoded transaction, the address book
 * label), never a rule of its own (issue 11).
 */
function viewOf(intent: SignedIntent): IntentView {
  return {
    id: intentDigest(intent.intent),
    status: 'pending',
    statusCode: null,
    statusMessage: null,
    intent,
    approvals: [],
    psbt: null,
    safeTx: null,
    txid: null,
    confirmations: null,
    signers: [],
    decision: null,
  };
}

function ledgerOf(history: readonly SignedIntent[]): LedgerEntry[] {
  return history.map(({ intent: i }) => ({
    intent: intentDigest(i),
    wallet: i.wallet,
    asset: i.asset,
    amount: i.amount,
    to: i.to,
    requester: i.requester,
    at: i.createdAt,
  }));
}

function review(world: World, intent: SignedIntent, history: readonly SignedIntent[] = []) {
  return reviewIntent({
    state: world.org.state,
    pinnedGenesis: world.org.orgId,
    view: viewOf(intent),
    history: history.map(viewOf),
    now: world.clock.now,
  });
}

const HISTORY_CODES = new Set(['FIRST_PAYMENT', 'LARGE_AMOUNT']);

describe("the approver's review", () => {
  it('gives FIRST_PAYMENT and LARGE_AMOUNT exactly as the policy does over the same history', () => {
    const world = makeWorld();
    const history = [1, 2, 3, 4, 5].map((n) => world.intent(BigInt(n) * 10_000n));
    world.clock.now += 60_000;
    const codes: string[][] = [];
    for (const [amount, earlier] of [
      [20_000n, []],
      [20_000n, history],
      [5_000_000n, history],
    ] as const) {
      const intent = world.intent(amount);
      const id = intentDigest(intent.intent);
      const shown = review(world, intent, earlier).warnings.filter((w) => HISTORY_CODES.has(w.code));
      codes.push(shown.map((w) => w.code));
      expect(shown).toEqual(historyWarnings(ledgerViewOf(ledgerOf(earlier)), intent.intent, id));
      const decided = evaluate({
        state: world.org.state,
        intent,
        approvals: [],
        ledger: ledgerOf(earlier),
        now: world.clock.now,
      });
      expect(decided.kind).not.toBe('deny');
      if (decided.kind !== 'deny') {
        expect(shown).toEqual(decided.warnings.filter((w) => HISTORY_CODES.has(w.code)));
      }
    }
    expect(codes).toEqual([['FIRST_PAYMENT'], [], ['LARGE_AMOUNT']]);
  });

  it('refuses an intent for a wallet the policy does not know, with the policy sentence', () => {
    const world = makeWorld();
    const intent = world.intent(20_000n, { wallet: 'no-such-wallet' });
    const refused = intentWallet(world.org.state, intent.intent, world.clock.now);
    expect(refused.ok).toBe(false);
    if (!refused.ok) {
      expect(review(world, intent).problems).toContainEqual({ code: refused.code, message: refused.message });
    }
  });
});
