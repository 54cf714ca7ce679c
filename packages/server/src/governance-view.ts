/**
 * The coordinator's view of governance: the state after the last stored
 * entry, verified from the genesis with core's verifyGovernanceChain.
 *
 * The view is advisory. The coordinator uses it to authenticate requests, to
 * preview the policy and to tell approvers what is needed; every signer
 * verifies the same chain again with its own clock and decides alone
 * (docs/architecture.md "Trust model"). Two consequences:
 * - `seenAt` of an entry here is the time the store received it (the row's
 *   received_at). Delays (THREATS 18, 19) are counted from it, so the
 *   coordinator's preview says "not active yet" for as long as a signer
 *   would, give or take the clocks; a signer that saw an entry later waits
 *   longer, and refuses on its own.
 * - a stored chain that does not verify (rows written behind the
 *   coordinator's back, THREATS 9) is not repaired or skipped: the view
 *   refuses to serve (UNAVAILABLE, naming the entry), so nothing is previewed
 *   or authenticated against forged members and keys.
 *
 * Several coordinators can share one PostgreSQL database (docs/architecture.md "Scale"),
 * so any of them may append. The view asks the store for the head on each
 * call (one indexed read, shared by the calls that arrive while one is under
 * way: shared-read.ts), keeps the verified state of the head it last saw,
 * and when the head moves applies just the new entries with applyGovernance;
 * only a head that does not extend the cached one (a rewrite) costs a full
 * verification again.
 *
 * Bootstrap: `initOrganization` stores a verified genesis in an empty store
 * (`custos init`, `custos dev`, and `POST /v1/governance/genesis`). Anyone who
 * reaches an uninitialized coordinator could store a genesis of their own;
 * that is harmless because signers and clients pin the genesis digest out of
 * band and refuse any other organization (WRONG_ORG). Set `org` on the view to
 * make the coordinator refuse a wrong genesis too.
 */
import { findWalletAlias } from '@custos/bitcoin';
import {
  type AppliedEntry,
  applyGovernance,
  CustosError,
  createGenesisState,
  type Digest,
  type GovernanceHead,
  type GovernanceState,
  governanceDigest,
  isBitcoinWallet,
  type Millis,
  type SignedGovernanceEntry,
  verifyGovernanceChain,
} from '@custos/core';
import type { GovernanceView } from './contracts.js';
import { MAX_GOVERNANCE_PAGE, type Store } from './db/repository.js';
import { SharedRead } from './shared-read.js';

export interface GovernanceViewOptions {
  /** The pinned organization (genesis digest). When set, a stored genesis with another digest is refused. */
  readonly org?: Digest;
}

/** The GovernanceView over the store, cached by head digest (see the module header). */
export class StoreGovernanceView implements GovernanceView {
  readonly #store: Store;
  readonly #org: Digest | undefined;
  /** The verified state of the head last seen, with the seenAt clock reached. */
  #cache: { state: GovernanceState; clock: Millis } | null = null;
  #refreshing: Promise<GovernanceState> | null = null;

  /** Concurrent requests share head reads, each reading after it arrived (shared-read.ts). */
  readonly #heads: SharedRead<undefined, GovernanceHead | null>;

  constructor(store: Store, opts: GovernanceViewOptions = {}) {
    this.#store = store;
    this.#heads = new SharedRead(
      () => store.governance.head(),
      () => undefined,
    );
    this.#org = opts.org;
  }

  /**
   * The verified state at the stored head. Throws UNAVAILABLE when the
   * organization is not initialized or the stored chain does not verify.
   */
  async current(): Promise<GovernanceState> {
    const head = await this.#heads.read(undefined);
    if (head === null) {
      throw new CustosError(
        'UNAVAILABLE',
        'the organization is not initialized: no governance genesis is stored (custos init)',
      );
    }
    const cached = this.#cache;
    if (cached !== null && cached.state.seq === head.seq && cached.state.head === head.digest) {
      return cached.state;
    }
    // One refresh at a time; callers that arrive meanwhile wait for it and look again.
    while (this.#refreshing !== null) await this.#refreshing.catch(() => undefined);
    const again = this.#cache;
    if (again !== null && again.state.seq === head.seq && again.state.head === head.digest) {
      return again.state;
    }
    const refresh = this.#refresh(head);
    this.#refreshing = refresh;
    try {
      return await refresh;
    } finally {
      this.#refreshing = null;
    }
  }

  /** The stored head, or null before the genesis. */
  head(): Promise<GovernanceHead | null> {
    return this.#heads.read(undefined);
  }

  async #refresh(head: GovernanceHead): Promise<GovernanceState> {
    const cached = this.#cache;
    if (cached !== null && head.seq > cached.state.seq) {
      const extended = await this.#extend(cached, head);
      if (extended !== null) return extended;
    }
    return this.#verifyAll(head);
  }

  /** Applies the entries after the cached head; null when they do not extend it (then verify all). */
  async #extend(
    cached: { state: GovernanceState; clock: Millis },
    head: GovernanceHead,
  ): Promise<GovernanceState | null> {
    let { state, clock } = cached;
    while (state.seq < head.seq) {
      const page = await this.#store.governance.range(state.seq, head.seq, MAX_GOVERNANCE_PAGE);
      if (page.length === 0) return null;
      for (const rec of page) {
        clock = Math.max(clock, rec.receivedAt);
        const next = applyGovernance(state, rec.signed, clock);
        if (!next.ok) return null;
        state = next.value;
      }
    }
    if (state.head !== head.digest) return null;
    this.#cache = { state, clock };
    return state;
  }

  async #verifyAll(head: GovernanceHead): Promise<GovernanceState> {
    const entries: AppliedEntry[] = [];
    let after = -1;
    while (after < head.seq) {
      const page = await this.#store.governance.range(after, head.seq, MAX_GOVERNANCE_PAGE);
      if (page.length === 0) break;
      for (const rec of page) entries.push({ signed: rec.signed, seenAt: rec.receivedAt });
      after = page[page.length - 1]?.seq ?? head.seq;
    }
    const first = entries[0];
    const pinned = this.#org ?? (first === undefined ? undefined : governanceDigest(first.signed.entry));
    if (pinned === undefined) {
      throw new CustosError('UNAVAILABLE', 'the stored governance chain is empty');
    }
    const verified = verifyGovernanceChain(pinned, entries);
    if (!verified.ok) {
      this.#cache = null;
      throw new CustosError(
        'UNAVAILABLE',
        `the stored governance chain does not verify (${verified.code}: ${verified.message}); ` +
          'the coordinator serves nothing until an operator repairs its database',
        { reason: verified.code, seq: verified.seq },
      );
    }
    // If the head moved while we read (another coordinator appended), this is a newer verified
    // state than asked for; the next call catches up from it.
    const clock = entries.reduce((m, e) => Math.max(m, e.seenAt), 0);
    this.#cache = { state: verified.value, clock };
    return verified.value;
  }
}

/**
 * Stores a verified genesis in a store that has none (`custos init`,
 * `custos dev`). Returns the organization id and whether it was stored now
 * (false when this very genesis was already there). Throws the refusal's code
 * for a genesis that does not verify (WRONG_ORG when `org` is pinned and
 * differs), CONFLICT when the store already holds another organization.
 */
export async function initOrganization(
  store: Store,
  signed: SignedGovernanceEntry,
  opts: { now?: () => Millis; org?: Digest; actor?: string } = {},
): Promise<{ org: Digest; created: boolean }> {
  const now = (opts.now ?? Date.now)();
  const state = createGenesisState(signed, now, opts.org);
  if (!state.ok) throw new CustosError(state.code, `the genesis does not verify: ${state.message}`);
  const org = state.value.org;
  // Issue 8, item 2: no two genesis wallets over the same scripts (signers refuse the later one's jobs).
  const wallets = [...state.value.wallets.values()].filter(isBitcoinWallet);
  for (const [i, w] of wallets.entries()) {
    const alias = findWalletAlias(w, wallets.slice(0, i));
    if (alias.ok && alias.value !== null) {
      throw new CustosError(
        'WALLET_ALIAS',
        `genesis wallet ${w.id} has the same keys and threshold as wallet ${alias.value.id}`,
      );
    }
  }
  const head = await store.governance.head();
  if (head !== null) {
    const [first] = await store.governance.range(-1, 0, 1);
    if (first?.digest === org) return { org, created: false };
    throw new CustosError('CONFLICT', 'this coordinator already holds another organization');
  }
  const created = await store.governance.append(signed);
  if (created) {
    await store.audit.append({
      at: now,
      actor: opts.actor ?? 'init',
      event: 'governance.applied',
      subject: '0',
      digest: org,
    });
  }
  return { org, created };
}
