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

/**
 * A ledger kept in memory and indexed, for a verifier that follows what is
 * signed as it happens (the coordinator's preview, packages/server/src/preview-ledger.ts):
 * each sum is two binary searches over running totals kept per key (the keys
 * {@link ledgerSums} can ask for: by wallet; by destination or requester,
 * alone or within a wallet), FIRST_PAYMENT a map lookup, LARGE_AMOUNT the
 * tail of the wallet's list. So a decision costs the same with a day of
 * signing behind it as with none; {@link ledgerViewOf} is the reference it is
 * tested against (packages/core/test/ledger-index.test.ts).
 *
 * Entries arrive mostly in time order (appended at the end); one out of
 * order, or a removal, rebuilds the totals of the keys it touches.
 */
export class LedgerIndex implements LedgerView {
  readonly #entries = new Map<Digest, LedgerEntry>();
  /** Per key: entries in (at, intent) order and the running totals after each. */
  readonly #lists = new Map<string, { entries: LedgerEntry[]; cum: bigint[] }>();
  readonly #paid = new Map<string, Set<Digest>>();

  constructor(entries: Iterable<LedgerEntry> = []) {
    for (const e of entries) this.add(e);
  }

  get size(): number {
    return this.#entries.size;
  }

  has(intent: Digest): boolean {
    return this.#entries.has(intent);
  }

  /** Adds an entry; an entry for an intent already held is left as it is (returns false). */
  add(e: LedgerEntry): boolean {
    if (this.#entries.has(e.intent)) return false;
    this.#entries.set(e.intent, e);
    const payers = this.#paid.get(e.to) ?? new Set<Digest>();
    this.#paid.set(e.to, payers);
    payers.add(e.intent);
    for (const k of ledgerKeysOf(e)) {
      const list = this.#lists.get(k) ?? { entries: [], cum: [] };
      this.#lists.set(k, list);
      const last = list.entries[list.entries.length - 1];
      if (last === undefined || entryOrder(last, e) < 0) {
        list.entries.push(e);
        list.cum.push((list.cum[list.cum.length - 1] ?? 0n) + BigInt(e.amount));
      } else {
        list.entries.push(e);
        list.entries.sort(entryOrder);
        rebuildTotals(list);
      }
    }
    return true;
  }

  /** Removes the entry of `intent`, if held. */
  remove(intent: Digest): boolean {
    const e = this.#entries.get(intent);
    if (e === undefined) return false;
    this.#entries.delete(intent);
    const payers = this.#paid.get(e.to);
    payers?.delete(intent);
    if (payers?.size === 0) this.#paid.delete(e.to);
    for (const k of ledgerKeysOf(e)) {
      const list = this.#lists.get(k);
      if (list === undefined) continue;
      list.entries = list.entries.filter((x) => x.intent !== intent);
      if (list.entries.length === 0) this.#lists.delete(k);
      else rebuildTotals(list);
    }
    return true;
  }

  /** Drops every entry dated at or before `before` (no sum after it needs them). */
  prune(before: Millis): number {
    let dropped = 0;
    for (const e of this.#entries.values()) {
      if (e.at > before) continue;
      this.#entries.delete(e.intent);
      const payers = this.#paid.get(e.to);
      payers?.delete(e.intent);
      if (payers?.size === 0) this.#paid.delete(e.to);
      dropped++;
    }
    if (dropped === 0) return 0;
    for (const [k, list] of this.#lists) {
      list.entries = list.entries.filter((x) => x.at > before);
      if (list.entries.length === 0) this.#lists.delete(k);
      else rebuildTotals(list);
    }
    return dropped;
  }

  sum(q: LedgerSum): bigint {
    const k = ledgerKeyOf(q);
    if (k === undefined) return ledgerViewOf([...this.#entries.values()]).sum(q);
    const list = this.#lists.get(k);
    if (list === undefined) return 0n;
    const n = list.entries.length;
    // The first entry dated after `since`: every entry from it on is in the window.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (list.entries[mid]!.at > q.since) hi = mid;
      else lo = mid + 1;
    }
    let used = (list.cum[n - 1] ?? 0n) - (lo === 0 ? 0n : list.cum[lo - 1]!);
    const ex = this.#entries.get(q.exclude);
    if (ex !== undefined && ex.at > q.since && ledgerKeysOf(ex).includes(k)) used -= BigInt(ex.amount);
    return used;
  }

  paid(to: string, exclude: Digest): boolean {
    const payers = this.#paid.get(to);
    if (payers === undefined) return false;
    return payers.size > 1 || !payers.has(exclude);
  }

  recent(wallet: string, asset: string, count: number, exclude: Digest): readonly bigint[] {
    const list = this.#lists.get(JSON.stringify(['w', asset, wallet]));
    if (list === undefined) return [];
    const out: bigint[] = [];
    for (let i = list.entries.length - 1; i >= 0 && out.length < count; i--) {
      const e = list.entries[i]!;
      if (e.intent !== exclude) out.push(BigInt(e.amount));
    }
    return out;
  }
}

/** (at, intent) ascending: the order recent() reads backwards. */
function entryOrder(a: LedgerEntry, b: LedgerEntry): number {
  return a.at - b.at || (a.intent < b.intent ? -1 : a.intent > b.intent ? 1 : 0);
}

function rebuildTotals(list: { entries: LedgerEntry[]; cum: bigint[] }): void {
  let total = 0n;
  list.cum = list.entries.map((e) => {
    total += BigInt(e.amount);
    return total;
  });
}

/**
 * The index keys of an entry: one for each way {@link ledgerSums} can select
 * it, as JSON arrays so no address or id can collide with another.
 */
export function ledgerKeysOf(e: { asset: string; wallet: string; to: string; requester: string }): string[] {
  return [
    JSON.stringify(['w', e.asset, e.wallet]),
    JSON.stringify(['d', e.asset, e.to]),
    JSON.stringify(['dw', e.asset, e.wallet, e.to]),
    JSON.stringify(['r', e.asset, e.requester]),
    JSON.stringify(['rw', e.asset, e.wallet, e.requester]),
  ];
}

/** The key that answers a sum, or undefined for a shape ledgerSums never asks (answered by a scan). */
export function ledgerKeyOf(q: LedgerSum): string | undefined {
  const { asset, wallet, to, requester } = q;
  if (to !== undefined && requester !== undefined) return undefined;
  if (to !== undefined)
    return JSON.stringify(wallet === undefined ? ['d', asset, to] : ['dw', asset, wallet, to]);
  if (requester !== undefined)
    return JSON.stringify(wallet === undefined ? ['r', asset, requester] : ['rw', asset, wallet, requester]);
  if (wallet !== undefined) return JSON.stringify(['w', asset, wallet]);
  return undefined;
}
