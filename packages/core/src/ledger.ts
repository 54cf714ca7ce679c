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
import {
  type Intent,
  intentOutputs,
  type LedgerEntry,
  type Payout,
  type Policy,
  type RollingLimit,
} from './objects.js';
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

/** A rolling limit that binds the intent, the sum of its window, and what the intent adds to it. */
export interface LimitQuery {
  readonly limit: RollingLimit;
  readonly max: bigint;
  readonly query: LedgerSum;
  /** The intent's amount under this query: its total, or for a destination limit what it pays that destination. */
  readonly amount: bigint;
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
  const total = BigInt(intent.amount);
  // A batch (issue 13): a destination limit is asked once per destination, with what the batch pays it.
  const perDestination = destinationTotals(intentOutputs(intent));
  for (const p of policies) {
    for (const limit of p.limits) {
      if (limit.asset !== intent.asset) continue;
      if (limit.wallet !== undefined && limit.wallet !== intent.wallet) continue;
      const base = { asset: limit.asset, since: now - limit.windowMs, exclude: digest };
      const wallet = limit.wallet === undefined ? {} : { wallet: limit.wallet };
      const max = BigInt(limit.max);
      switch (limit.scope) {
        case 'wallet-asset':
          out.push({ limit, max, query: { ...base, wallet: intent.wallet }, amount: total });
          break;
        case 'destination':
          for (const [to, amount] of perDestination) {
            out.push({ limit, max, query: { ...base, ...wallet, to }, amount });
          }
          break;
        case 'requester':
          out.push({ limit, max, query: { ...base, ...wallet, requester: intent.requester }, amount: total });
          break;
      }
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

/** What a list of payments pays each destination, in first-seen order. */
export function destinationTotals(outputs: readonly Payout[]): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const o of outputs) out.set(o.to, (out.get(o.to) ?? 0n) + BigInt(o.amount));
  return out;
}

/** Whether an entry is one `q` selects (for a batch entry and a destination, whether any output pays it). */
export function ledgerSelects(q: LedgerSum, e: LedgerEntry): boolean {
  return ledgerAmountFor(q, e) !== null;
}

/**
 * What entry `e` counts toward the sum `q`: its total, or under a
 * destination what it paid that destination (a batch's outputs to it);
 * null when `q` does not select it.
 */
export function ledgerAmountFor(q: LedgerSum, e: LedgerEntry): bigint | null {
  if (
    e.intent === q.exclude ||
    e.at <= q.since ||
    e.asset !== q.asset ||
    (q.wallet !== undefined && e.wallet !== q.wallet) ||
    (q.requester !== undefined && e.requester !== q.requester)
  ) {
    return null;
  }
  if (q.to === undefined) return BigInt(e.amount);
  return destinationTotals(intentOutputs(e)).get(q.to) ?? null;
}

/** The ledger view of an array of entries, by scanning it: the in-memory reference. */
export function ledgerViewOf(entries: readonly LedgerEntry[]): LedgerView {
  return {
    sum(q) {
      let used = 0n;
      for (const e of entries) used += ledgerAmountFor(q, e) ?? 0n;
      return used;
    },
    paid(to, exclude) {
      return entries.some((e) => e.intent !== exclude && intentOutputs(e).some((o) => o.to === to));
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
  readonly #lists = new Map<string, KeyList>();
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
    for (const to of destinationTotals(intentOutputs(e)).keys()) {
      const payers = this.#paid.get(to) ?? new Set<Digest>();
      this.#paid.set(to, payers);
      payers.add(e.intent);
    }
    for (const [k, amount] of ledgerContributions(e)) {
      const list = this.#lists.get(k) ?? { entries: [], amounts: [], cum: [] };
      this.#lists.set(k, list);
      const last = list.entries[list.entries.length - 1];
      if (last === undefined || entryOrder(last, e) < 0) {
        list.entries.push(e);
        list.amounts.push(amount);
        list.cum.push((list.cum[list.cum.length - 1] ?? 0n) + amount);
      } else {
        list.entries.push(e);
        list.amounts.push(amount);
        sortList(list);
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
    this.#unpay(e);
    for (const k of ledgerContributions(e).keys()) {
      const list = this.#lists.get(k);
      if (list === undefined) continue;
      filterList(list, (x) => x.intent !== intent);
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
      this.#unpay(e);
      dropped++;
    }
    if (dropped === 0) return 0;
    for (const [k, list] of this.#lists) {
      filterList(list, (x) => x.at > before);
      if (list.entries.length === 0) this.#lists.delete(k);
      else rebuildTotals(list);
    }
    return dropped;
  }

  #unpay(e: LedgerEntry): void {
    for (const to of destinationTotals(intentOutputs(e)).keys()) {
      const payers = this.#paid.get(to);
      payers?.delete(e.intent);
      if (payers?.size === 0) this.#paid.delete(to);
    }
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
    const own = ex === undefined || ex.at <= q.since ? undefined : ledgerContributions(ex).get(k);
    if (own !== undefined) used -= own;
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

/** A key's entries in (at, intent) order, what each counts under the key, and the running totals. */
interface KeyList {
  entries: LedgerEntry[];
  amounts: bigint[];
  cum: bigint[];
}

function sortList(list: KeyList): void {
  const order = list.entries.map((_e, i) => i).sort((a, b) => entryOrder(list.entries[a]!, list.entries[b]!));
  list.entries = order.map((i) => list.entries[i]!);
  list.amounts = order.map((i) => list.amounts[i]!);
}

function filterList(list: KeyList, keep: (e: LedgerEntry) => boolean): void {
  const entries: LedgerEntry[] = [];
  const amounts: bigint[] = [];
  list.entries.forEach((e, i) => {
    if (!keep(e)) return;
    entries.push(e);
    amounts.push(list.amounts[i]!);
  });
  list.entries = entries;
  list.amounts = amounts;
}

function rebuildTotals(list: KeyList): void {
  let total = 0n;
  list.cum = list.amounts.map((a) => {
    total += a;
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

/**
 * What an entry adds under each index key: its total under the wallet and
 * requester keys, and under each destination key what it paid that
 * destination (one output, or a batch's outputs to it, issue 13). A
 * single-output entry adds its amount under the five keys of
 * {@link ledgerKeysOf}.
 */
export function ledgerContributions(e: LedgerEntry): Map<string, bigint> {
  const total = BigInt(e.amount);
  const out = new Map<string, bigint>([
    [JSON.stringify(['w', e.asset, e.wallet]), total],
    [JSON.stringify(['r', e.asset, e.requester]), total],
    [JSON.stringify(['rw', e.asset, e.wallet, e.requester]), total],
  ]);
  for (const [to, amount] of destinationTotals(intentOutputs(e))) {
    out.set(JSON.stringify(['d', e.asset, to]), amount);
    out.set(JSON.stringify(['dw', e.asset, e.wallet, to]), amount);
  }
  return out;
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
