/**
 * What a decision asks of the verifier's ledger (policy step 7 and the
 * history warnings), as questions with answers rather than rows: the sums
 * its rolling limits need, whether a destination was paid before, and a
 * bounded recent history of the wallet's amounts. A signer answers them with
 * indexed queries in its own SQLite (packages/signer/src/store.ts), so a
 * decision costs the same with ten thousand entries signed as with none; an
 * array of entries answers them too ({@link ledgerViewOf}, the in-memory
 * reference, which the store is tested against).
 *
 * Pure: nothing here reads a store; the caller passes the view.
 */
import type { Intent, LedgerEntry, Policy, RollingLimit } from './objects.js';
import type { Digest, Millis } from './types.js';

/** LARGE_AMOUNT judges by the median of at most this many most recent transfers of the wallet and asset. */
export const LARGE_AMOUNT_HISTORY = 100;

/**
 * One sum a decision needs: the amounts of the ledger entries of `asset`
 * dated after `since` (exclusive; entries dated after the verifier's `now`
 * count too), restricted to `wallet`, `to` and `requester` where given,
 * leaving out the entry of the intent being decided (`exclude`), so that
 * asking again for an intent already signed does not count it twice.
 */
export interface LedgerSum {
  readonly asset: string;
  readonly since: Millis;
  readonly exclude: Digest;
  readonly wallet?: string;
  readonly to?: string;
  readonly requester?: string;
}

/** The verifier's ledger as the questions a decision asks of it. Answers are exact (amounts as bigint). */
export interface LedgerView {
  /** The sum of the amounts the query selects. */
  sum(q: LedgerSum): bigint;
  /** Whether an entry other than `exclude` paid `to` (FIRST_PAYMENT). */
  paid(to: string, exclude: Digest): boolean;
  /**
   * The amounts of the `count` most recent entries (by `at`, then intent
   * digest, descending) of `wallet` and `asset`, other than `exclude` (LARGE_AMOUNT).
   */
  recent(wallet: string, asset: string, count: number, exclude: Digest): readonly bigint[];
}

/** A rolling limit that binds the intent, and the sum of its window. */
export interface LimitQuery {
  readonly limit: RollingLimit;
  readonly max: bigint;
  readonly query: LedgerSum;
}

/**
 * The sums a decision on `intent` (digest `digest`) at `now` needs under
 * `policies`: one per rolling limit that binds it (same asset, and same
 * wallet when the limit names one), in policy and limit order. The scope
 * picks the key: the wallet, the destination, or the requester; a limit
 * naming a wallet also restricts to it. Ledger entries carry no chain: the
 * same address string with the same asset id on two chains is summed
 * together, which can only over-count (fail closed).
 */
export function ledgerSums(
  policies: readonly Policy[],
  intent: Intent,
  digest: Digest,
  now: Millis,
): LimitQuery[] {
  const out: LimitQuery[] = [];
  for (const p of policies) {
    for (const limit of p.limits) {
      if (limit.asset !== intent.asset) continue;
      if (limit.wallet !== undefined && limit.wallet !== intent.wallet) continue;
      const base = { asset: limit.asset, since: now - limit.windowMs, exclude: digest };
      const wallet = limit.wallet === undefined ? {} : { wallet: limit.wallet };
      let query: LedgerSum;
      switch (limit.scope) {
        case 'wallet-asset':
          query = { ...base, wallet: intent.wallet };
          break;
        case 'destination':
          query = { ...base, ...wallet, to: intent.to };
          break;
        case 'requester':
          query = { ...base, ...wallet, requester: intent.requester };
          break;
      }
      out.push({ limit, max: BigInt(limit.max), query });
    }
  }
  return out;
}

/**
 * The earliest time a rolling limit of `policies` looks back to at `now`
 * (exclusive, as {@link LedgerSum.since}): a verifier that keeps or loads
 * only what was signed after it answers every sum a decision needs. Null when
 * no limit is set.
 */
export function ledgerHorizon(policies: readonly Policy[], now: Millis): Millis | null {
  let longest = 0;
  for (const p of policies) for (const l of p.limits) longest = Math.max(longest, l.windowMs);
  return longest === 0 ? null : now - longest;
}

/** Whether an entry is one `q` selects. */
export function ledgerSelects(q: LedgerSum, e: LedgerEntry): boolean {
  return (
    e.intent !== q.exclude &&
    e.at > q.since &&
    e.asset === q.asset &&
    (q.wallet === undefined || e.wallet === q.wallet) &&
    (q.to === undefined || e.to === q.to) &&
    (q.requester === undefined || e.requester === q.requester)
  );
}

/** The ledger view of an array of entries, by scanning it: the in-memory reference. */
export function ledgerViewOf(entries: readonly LedgerEntry[]): LedgerView {
  return {
    sum(q) {
      let used = 0n;
      for (const e of entries) if (ledgerSelects(q, e)) used += BigInt(e.amount);
      return used;
    },
    paid(to, exclude) {
      return entries.some((e) => e.to === to && e.intent !== exclude);
    },
    recent(wallet, asset, count, exclude) {
      return entries
        .filter((e) => e.wallet === wallet && e.asset === asset && e.intent !== exclude)
        .sort((a, b) => b.at - a.at || (a.intent < b.intent ? 1 : a.intent > b.intent ? -1 : 0))
        .slice(0, count)
        .map((e) => BigInt(e.amount));
    },
  };
}

/** Whether `ledger` is a view rather than an array of entries. */
export function isLedgerView(ledger: readonly LedgerEntry[] | LedgerView): ledger is LedgerView {
  return !Array.isArray(ledger);
}
