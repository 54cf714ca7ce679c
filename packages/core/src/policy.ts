/**
 * Policy evaluation: the rule every signer runs, with its own clock and its
 * own ledger, before it signs (docs/architecture.md "Policy" and "The withdrawal flow",
 * step 4). The coordinator runs the same function as a preview; only the
 * signers' run protects anything.
 *
 * Why it is built this way:
 * - Pure. The caller passes its governance view, its clock (`now`) and its
 *   ledger of what it already signed; nothing here reads a clock or a store.
 *   Nothing the coordinator says is believed: the requester's signature and
 *   every approval's signature are checked here against the one intent digest
 *   (THREATS 6, 7, 13), so a rewritten amount or destination (the DMM case)
 *   or an approval row inserted into a database counts for nothing.
 * - Bad data gets a decision with a stable code, never an exception. Only a
 *   caller's bug (an object that was never decoded) may throw.
 * - Fail closed: default deny; every policy in force must allow (a pending
 *   policy change binds at once, so a loosening waits out its delay,
 *   THREATS 19); look-alikes are compared without case; a ledger entry dated
 *   after `now` (a clock stepped back) still counts against the limits.
 * - Cheap, because each signer runs it for every job and it is benchmarked
 *   against raw Ed25519 verification: the intent digest is computed once, each
 *   signature is verified at most once (approvals only when the intent got
 *   that far), the ledger is asked for one sum per rolling limit and a bounded
 *   history (ledger.ts), never read whole.
 *
 * Order of checks in {@link evaluate}; the first failing one decides, so a
 * given input always gets the same code:
 *  1. frozen                                    FROZEN (THREATS 22)
 *  2. organization, wallet, chain, asset        WRONG_ORG, UNKNOWN_WALLET, WALLET_NOT_ACTIVE, WRONG_CHAIN (16),
 *                                               UNKNOWN_ASSET (for a Safe: registered and active), and
 *                                               OPERATION_FORBIDDEN for a Safe paying itself (28)
 *  3. requester device and signature, role      NOT_A_MEMBER, UNKNOWN_DEVICE, DEVICE_REVOKED (4, 5),
 *                                               DEVICE_NOT_ACTIVE, INTENT_SIGNATURE_INVALID (6), NOT_AUTHORIZED
 * 3b. an internal transfer's destination wallet  DESTINATION_NOT_WALLET, UNKNOWN_WALLET, WALLET_NOT_ACTIVE,
 *     (issue 13), proven by derivation          WRONG_CHAIN, UNKNOWN_ASSET (internal-transfer.ts)
 *  4. intent lifetime                           LIFETIME_TOO_LONG, EXPIRED (15), NOT_YET_VALID
 *  5. look-alike destination                    LOOKALIKE_ADDRESS (21) or a warning
 *  6. rules of every policy in force, in the   DESTINATION_NOT_ACTIVE (18), DESTINATION_NOT_ALLOWED (17),
 *     views before and after pending changes    POLICY_DENIED; LOOKALIKE_ADDRESS when only automated
 *                                               rules (no approvals) matched and step 5 only warned
 *  7. rolling limits of every policy in force   LIMIT_EXCEEDED (20)
 *  8. approvals                                 INTENT_REJECTED; a short group gives 'pending' (11, 12, 13)
 *  9. cancel window                             'pending' until it has passed
 */
import { accept, type ErrorCode, type Refusal, type Result, refusalFrom, refuse } from './errors.js';
import { checkInternalDestination, type WalletAddressFn } from './internal-transfer.js';
import { verifyDeviceSignature } from './keys.js';
import { isLedgerView, LARGE_AMOUNT_HISTORY, type LedgerView, ledgerSums, ledgerViewOf } from './ledger.js';
import { lookalikeMessage, lookalikesInForce } from './lookalike.js';
import {
  type AddressEntry,
  type ApprovalGroup,
  approvalDigest,
  DEFAULT_LIFETIMES,
  DEFAULT_MAX_BATCH_OUTPUTS,
  type DestinationMatch,
  type Intent,
  intentDigest,
  intentOutputs,
  type LedgerEntry,
  type Policy,
  type PolicyRule,
  type RollingLimit,
  type SignedApproval,
  type SignedIntent,
  type Wallet,
} from './objects.js';
import {
  assetStatus,
  deviceLookupMessage,
  type GovernanceState,
  hasRole,
  lookupDevice,
  policiesInForce,
  roleViews,
  walletActive,
} from './state.js';
import type { Digest, Millis } from './types.js';

/** How far a signed time may lie ahead of the verifier's clock (intent createdAt, approval at). */
export const CLOCK_SKEW_MS = 5 * 60_000;

/** LARGE_AMOUNT warns when an amount exceeds this many times the median of the wallet's history. */
export const LARGE_AMOUNT_FACTOR = 10n;

/** LARGE_AMOUNT needs at least this many earlier transfers of the wallet and asset to judge by. */
export const LARGE_AMOUNT_MIN_HISTORY = 5;

/** The role a member must hold to ask for a transfer. */
export const REQUESTER_ROLE = 'requester';

export interface EvaluateInput {
  readonly state: GovernanceState;
  readonly intent: SignedIntent;
  readonly approvals: readonly SignedApproval[];
  /**
   * What this verifier already signed (rolling limits, warnings): the entries
   * themselves, or a view that answers the sums and history a decision asks
   * for (ledger.ts), as a signer's store does without loading its rows.
   */
  readonly ledger: readonly LedgerEntry[] | LedgerView;
  /** The verifier's own clock. */
  readonly now: Millis;
  /** Chains this verifier serves (signer configuration); WRONG_CHAIN if the intent's is not one of them. */
  readonly chains?: readonly string[];
  /** `${member}/${device}` → last WebAuthn signature counter seen for that passkey. */
  readonly passkeyCounters?: ReadonlyMap<string, number>;
  /**
   * Derives a Bitcoin wallet's receive address (`@custos/bitcoin/sign`'s
   * walletReceiveAddress), to prove an internal transfer's `toWallet` claim
   * (step 3b). Without it every Bitcoin internal transfer is refused
   * DESTINATION_NOT_WALLET: the claim is never believed unproven.
   */
  readonly receiveAddress?: WalletAddressFn;
}

/** An approval group of a matched rule that does not have enough approvers yet. */
export interface MissingApproval {
  /** Index of the policy in `policiesInForce(state, now)`. */
  readonly policy: number;
  readonly rule: string;
  /** Index of the group in the rule's `approvals`. */
  readonly group: number;
  readonly need: number;
  readonly have: number;
  readonly of: { members: string[] } | { role: string };
}

export interface Warning {
  readonly code: 'FIRST_PAYMENT' | 'LOOKALIKE_ADDRESS' | 'LARGE_AMOUNT' | 'POLICY_CHANGE_PENDING';
  readonly message: string;
}

/** What became of one submitted approval; `code` says why it did not count. */
export interface ApprovalCheck {
  /** Index in `EvaluateInput.approvals`. */
  readonly index: number;
  readonly approver: string;
  readonly counted: boolean;
  readonly code?: ErrorCode;
  /** The passkey's signature counter after this assertion (WebAuthn devices), for the caller to store. */
  readonly counter?: number;
}

export type PolicyDecision =
  | {
      readonly kind: 'allow';
      readonly intent: Digest;
      /** The matched rule of each policy in force, in policy order. */
      readonly rules: string[];
      /** Members whose approval counted, sorted. */
      readonly approvers: string[];
      readonly approvalChecks: ApprovalCheck[];
      readonly warnings: Warning[];
    }
  | {
      readonly kind: 'pending';
      readonly intent: Digest;
      /** Short groups; empty when only the cancel window is still open. */
      readonly missing: MissingApproval[];
      /** Set when every group is satisfied and the cancel window is still open. */
      readonly cancelWindowEndsAt?: Millis;
      readonly approvalChecks: ApprovalCheck[];
      readonly warnings: Warning[];
    }
  | {
      readonly kind: 'deny';
      /** Null only when the intent could not even be digested. */
      readonly intent: Digest | null;
      readonly code: ErrorCode;
      readonly message: string;
      /** Empty when the decision was reached before the approvals were looked at (step 8). */
      readonly approvalChecks: ApprovalCheck[];
    };

export type AllowDecision = Extract<PolicyDecision, { kind: 'allow' }>;
export type PendingDecision = Extract<PolicyDecision, { kind: 'pending' }>;
export type DenyDecision = Extract<PolicyDecision, { kind: 'deny' }>;

function deny(
  intent: Digest | null,
  code: ErrorCode,
  message: string,
  approvalChecks: ApprovalCheck[] = [],
): DenyDecision {
  return { kind: 'deny', intent, code, message, approvalChecks };
}

/**
 * Decides whether the verifier may sign for `input.intent` now. See the module
 * header for the order of checks. Never throws on bad data.
 *
 * @example
 * const decision = evaluate({ state, intent: signed, approvals, ledger, now: Date.now(), chains: ['bitcoin:mainnet'] });
 * const allowed = requireAllow(decision); // a signer signs only on allowed.ok
 */
export function evaluate(input: EvaluateInput): PolicyDecision {
  const { state, now, ledger } = input;
  const intent = input.intent.intent;

  let digest: Digest;
  try {
    digest = intentDigest(intent);
  } catch (err) {
    const r = refusalFrom(err);
    return deny(null, r.code, r.message);
  }

  // 1. A freeze stops everything, whoever asks (THREATS 22).
  if (state.frozen !== null) {
    return deny(digest, 'FROZEN', `the organization is frozen (governance entry ${state.frozen.seq})`);
  }

  // 2. The intent names this organization, a known wallet, that wallet's chain and asset (THREATS 16).
  if (intent.org !== state.org) {
    return deny(digest, 'WRONG_ORG', 'the intent is for another organization');
  }
  const wallet = intentWallet(state, intent, now, input.chains);
  if (!wallet.ok) return deny(digest, wallet.code, wallet.message);

  // 3. The requester signed exactly these bytes on an active device (THREATS 4-6) and may ask.
  const requester = lookupDevice(state, intent.requester, intent.device, now);
  if (!requester.ok) {
    return deny(digest, requester.code, deviceLookupMessage(requester, intent.requester, intent.device));
  }
  const intentSig = verifyDeviceSignature(
    requester.device,
    digest,
    input.intent.signature,
    counterOption(input.passkeyCounters, intent.requester, intent.device),
  );
  if (!intentSig.ok) {
    return deny(
      digest,
      'INTENT_SIGNATURE_INVALID',
      `the requester's signature does not verify: ${intentSig.message}`,
    );
  }
  if (!hasRole(state, intent.requester, REQUESTER_ROLE, now)) {
    return deny(digest, 'NOT_AUTHORIZED', `${intent.requester} does not hold the ${REQUESTER_ROLE} role`);
  }
  // 3b. An internal transfer (issue 13) names its destination wallet; the claim lets a
  // `wallets` rule match, so it is proven here, `to` derived from the governed wallet. After
  // the signature, so an intent rewritten on its way reads as the forgery it is (THREATS 6).
  if (intent.toWallet !== undefined) {
    const dest = checkInternalDestination(state, intent, now, input.receiveAddress);
    if (!dest.ok) return deny(digest, dest.code, dest.message);
  }

  const policies = policiesInForce(state, now);

  // 4. Lifetime, on the verifier's own clock (THREATS 15). The policy bounds
  // it (issue 8, item 3): with expiresAt - createdAt bounded, a createdAt
  // further back than the bound is already past expiresAt.
  const lifetimes = lifetimesOf(policies);
  if (intent.expiresAt - intent.createdAt > lifetimes.intentMs) {
    return deny(
      digest,
      'LIFETIME_TOO_LONG',
      `the intent is valid for ${formatDuration(intent.expiresAt - intent.createdAt)}, the policy allows at most ${formatDuration(lifetimes.intentMs)}`,
    );
  }
  if (now >= intent.expiresAt) return deny(digest, 'EXPIRED', 'the intent has expired');
  if (intent.createdAt > now + CLOCK_SKEW_MS) {
    return deny(digest, 'NOT_YET_VALID', 'the intent is dated in the future beyond the allowed clock skew');
  }

  // 4b. A batch (issue 13) is no larger than every policy in force allows.
  const outputs = intentOutputs(intent);
  if (intent.outputs !== undefined) {
    const most = maxBatchOutputsOf(policies);
    if (outputs.length > most) {
      return deny(
        digest,
        'POLICY_DENIED',
        `the batch has ${outputs.length} outputs, the policy allows at most ${most}`,
      );
    }
  }

  const warnings: Warning[] = [];

  // 5. Look-alikes of address-book entries, active or pending (THREATS 21, address poisoning),
  // for every destination of a batch: one poisoned output flags the whole intent.
  const lookalikeWarnings: string[] = [];
  for (const to of new Set(outputs.map((o) => o.to))) {
    const lookalikes = lookalikesInForce(state, intent.chain, to, policies, now);
    if (lookalikes.entries.length === 0) continue;
    const message = lookalikeMessage(to, lookalikes.entries);
    if (lookalikes.deny) return deny(digest, 'LOOKALIKE_ADDRESS', message);
    warnings.push({ code: 'LOOKALIKE_ADDRESS', message });
    lookalikeWarnings.push(message);
  }

  // 6. First matching rule of each policy in force; all must allow (THREATS 17-19).
  // While governance changes wait out their delay, the rules are matched in
  // two views, before the pending changes (retired address-book entries and
  // dropped roles still there, pending ones not yet) and after them (pending
  // ones there, retired and dropped ones gone); both must allow and every
  // matched rule's approvals are needed. So any change, whatever its kind,
  // can tighten at once and loosen only after the delay (issue 8, item 1).
  // A batch is matched output by output, each as a transfer of its own amount
  // to its own destination: every output must be allowed, and the approvals
  // of every rule any output matched are needed.
  const views = outputs.flatMap((o) =>
    ruleContexts(
      state,
      intent.outputs === undefined ? intent : { ...intent, to: o.to, amount: o.amount },
      now,
    ),
  );
  const matched: MatchedRule[] = [];
  for (const ctx of views) {
    for (let p = 0; p < policies.length; p++) {
      const outcome = matchPolicy(policies[p] as Policy, p, ctx);
      if (!outcome.ok) return deny(digest, outcome.code, outcome.message);
      if (!matched.some((m) => m.policy === p && m.rule === outcome.value)) {
        matched.push({ policy: p, rule: outcome.value });
      }
    }
  }
  // 6b. An automated tier (issue 13) has nobody to read a warning: when no
  // matched rule asks for an approval, a look-alike of an address-book entry
  // is refused whatever the policy's lookalike action (address poisoning: a
  // customer's "own" address copied from a poisoned history).
  if (lookalikeWarnings.length > 0 && matched.every((m) => (m.rule.approvals ?? []).length === 0)) {
    return deny(
      digest,
      'LOOKALIKE_ADDRESS',
      `${lookalikeWarnings[0]}; no approver would see the warning (automated rule)`,
    );
  }

  // 7. Rolling limits from this verifier's own ledger (THREATS 20): one sum per limit that binds the
  // intent, then the history warnings (an earlier payment to the destination, a bounded recent history).
  const view = isLedgerView(ledger) ? ledger : ledgerViewOf(ledger);
  for (const use of ledgerSums(policies, intent, digest, now)) {
    const used = view.sum(use.query);
    if (used + use.amount > use.max) {
      const to = use.query.to === undefined ? '' : ` to ${use.query.to}`;
      return deny(
        digest,
        'LIMIT_EXCEEDED',
        `limit ${use.limit.id} (${use.limit.scope}, ${use.limit.asset}): ${used} already signed in the window, ` +
          `${use.amount} more${to} would exceed ${use.limit.max}`,
      );
    }
  }
  warnings.push(...historyWarnings(view, intent, digest));
  if (policies.length > 1) {
    warnings.push({
      code: 'POLICY_CHANGE_PENDING',
      message: `${policies.length - 1} policy change(s) pending; the intent must satisfy every policy in force`,
    });
  }

  // 8-9. Approvals and the cancel window.
  return judgeApprovals(input, digest, matched, warnings);
}

// ---------------------------------------------------------------- step 3 helpers

/** The tightest lifetimes of the policies in force (each policy's, or DEFAULT_LIFETIMES). */
export function lifetimesOf(policies: readonly Policy[]): { intentMs: number; approvalMs: number } {
  let intentMs: number = DEFAULT_LIFETIMES.intentMs;
  let approvalMs: number = DEFAULT_LIFETIMES.approvalMs;
  let first = true;
  for (const p of policies) {
    const l = p.lifetimes ?? DEFAULT_LIFETIMES;
    intentMs = first ? l.intentMs : Math.min(intentMs, l.intentMs);
    approvalMs = first ? l.approvalMs : Math.min(approvalMs, l.approvalMs);
    first = false;
  }
  return { intentMs, approvalMs };
}

/**
 * The largest batch every policy in force allows: the smallest
 * `maxBatchOutputs`, DEFAULT_MAX_BATCH_OUTPUTS for a policy naming none
 * (issue 13). Raising it is a policy change, so it waits out the delay.
 */
export function maxBatchOutputsOf(policies: readonly Policy[]): number {
  let most = Number.POSITIVE_INFINITY;
  for (const p of policies) most = Math.min(most, p.maxBatchOutputs ?? DEFAULT_MAX_BATCH_OUTPUTS);
  return most === Number.POSITIVE_INFINITY ? DEFAULT_MAX_BATCH_OUTPUTS : most;
}

function formatDuration(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000} d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${ms} ms`;
}

function counterOption(
  counters: ReadonlyMap<string, number> | undefined,
  member: string,
  device: string,
): { previousCounter?: number } {
  const previous = counters?.get(`${member}/${device}`);
  return previous === undefined ? {} : { previousCounter: previous };
}

// ---------------------------------------------------------------- step 5: look-alikes

// ---------------------------------------------------------------- step 6: rules

interface DestinationEntries {
  /** Address-book entries for exactly this chain and address, active at `now`. */
  readonly active: readonly AddressEntry[];
  /** The same, still waiting out their delay (THREATS 18). */
  readonly pending: readonly AddressEntry[];
}

interface RuleContext {
  readonly intent: Intent;
  readonly amount: bigint;
  /** The requester's roles at `now`. */
  readonly roles: ReadonlySet<string>;
  readonly destination: DestinationEntries;
}

interface MatchedRule {
  readonly policy: number;
  readonly rule: PolicyRule;
}

/**
 * The contexts the rules are matched in at `now` (step 6): the view before
 * the pending governance changes and, when it differs for this intent, the
 * view after them. An address may be listed more than once, with other
 * labels or tags.
 */
function ruleContexts(state: GovernanceState, intent: Intent, now: Millis): RuleContext[] {
  const active: AddressEntry[] = [];
  const pending: AddressEntry[] = [];
  const retired: AddressEntry[] = [];
  for (const { value, activeFrom } of state.addresses.values()) {
    if (value.chain !== intent.chain || value.address !== intent.to) continue;
    (activeFrom <= now ? active : pending).push(value);
  }
  for (const r of state.retiredAddresses) {
    if (r.until > now && r.value.chain === intent.chain && r.value.address === intent.to)
      retired.push(r.value);
  }
  const roles = roleViews(state, intent.requester, now);
  const amount = BigInt(intent.amount);
  const before: RuleContext = {
    intent,
    amount,
    roles: roles.before,
    destination: { active: active.concat(retired), pending },
  };
  const same =
    pending.length === 0 &&
    retired.length === 0 &&
    roles.before.size === roles.after.size &&
    [...roles.before].every((r) => roles.after.has(r));
  if (same) return [before];
  const after: RuleContext = {
    intent,
    amount,
    roles: roles.after,
    destination: { active: active.concat(pending), pending: [] },
  };
  return [before, after];
}

/**
 * How a rule fits the intent:
 * - 'match': every condition holds;
 * - 'pending': all hold except that the destination's entry (or the entry
 *   with the named id or tag) is still pending;
 * - 'destination': all hold except the destination condition;
 * - 'other': wallet, asset, amount or requester role does not fit.
 */
type RuleFit = 'match' | 'pending' | 'destination' | 'other';

function fitRule(rule: PolicyRule, ctx: RuleContext): RuleFit {
  const m = rule.match;
  if (m.wallets !== undefined && !m.wallets.includes(ctx.intent.wallet)) return 'other';
  if (m.assets !== undefined && !m.assets.includes(ctx.intent.asset)) return 'other';
  // Both bounds inclusive, compared as integers (amounts exceed 2^53).
  if (m.minAmount !== undefined && ctx.amount < BigInt(m.minAmount)) return 'other';
  if (m.maxAmount !== undefined && ctx.amount > BigInt(m.maxAmount)) return 'other';
  if (m.requesterRoles !== undefined && !m.requesterRoles.some((r) => ctx.roles.has(r))) return 'other';
  return fitDestination(m.destination, ctx.destination, ctx.intent.toWallet);
}

function fitDestination(
  match: DestinationMatch,
  dest: DestinationEntries,
  toWallet: Intent['toWallet'],
): RuleFit {
  let wanted: (e: AddressEntry) => boolean;
  switch (match.kind) {
    case 'any':
      return 'match';
    case 'address-book':
      wanted = () => true;
      break;
    case 'entries':
      wanted = (e) => match.ids.includes(e.id);
      break;
    case 'tags':
      wanted = (e) => e.tags?.some((t) => match.tags.includes(t)) === true;
      break;
    case 'wallets':
      // The claim was proven in step 3b; an intent without one (any external address) never matches.
      return toWallet !== undefined && match.wallets.includes(toWallet.wallet) ? 'match' : 'destination';
  }
  if (dest.active.some(wanted)) return 'match';
  if (dest.pending.some(wanted)) return 'pending';
  return 'destination';
}

/**
 * First matching rule wins, default deny (docs/architecture.md "Policy"). When the
 * outcome is a deny (a deny rule matched, or nothing matched), the code says
 * what would change it, judged from the allow rules passed over before:
 * - DESTINATION_NOT_ACTIVE if one of them fails only because the destination's
 *   address-book entry is still pending: it would apply once the delay has
 *   passed (THREATS 18). A pending entry otherwise counts as not in the book,
 *   so a later rule (say, destination 'any' with more approvals) can still
 *   allow it, exactly as for an unknown address.
 * - DESTINATION_NOT_ALLOWED if one of them fails only on the destination
 *   (not in the book, or lacking the named entry or tag) (THREATS 17). A rule
 *   with destination 'any' never fails on the destination.
 * - POLICY_DENIED otherwise, naming the deny rule when one matched.
 */
function matchPolicy(policy: Policy, index: number, ctx: RuleContext): Result<PolicyRule> {
  let nearMiss: NearMiss | undefined;
  for (const rule of policy.rules) {
    const fit = fitRule(rule, ctx);
    if (fit === 'match') {
      if (rule.action === 'allow') return accept(rule);
      return (
        nearMissRefusal(nearMiss, ctx, index) ??
        refuse('POLICY_DENIED', `policy ${index}: rule ${rule.id} denies this transfer`)
      );
    }
    if (rule.action === 'allow') {
      const wallets = rule.match.destination.kind === 'wallets';
      if (fit === 'pending' && nearMiss?.fit !== 'pending') nearMiss = { fit, rule: rule.id, wallets };
      else if (fit === 'destination' && nearMiss === undefined) nearMiss = { fit, rule: rule.id, wallets };
    }
  }
  return (
    nearMissRefusal(nearMiss, ctx, index) ??
    refuse('POLICY_DENIED', `policy ${index}: no rule allows this transfer`)
  );
}

/** An allow rule passed over only for its destination; `wallets` when it allows by governed wallet. */
interface NearMiss {
  readonly fit: 'pending' | 'destination';
  readonly rule: string;
  readonly wallets: boolean;
}

function nearMissRefusal(
  nearMiss: NearMiss | undefined,
  ctx: RuleContext,
  index: number,
): Refusal | undefined {
  if (nearMiss === undefined) return undefined;
  const { chain, to } = ctx.intent;
  if (nearMiss.fit === 'pending') {
    return refuse(
      'DESTINATION_NOT_ACTIVE',
      `policy ${index}: rule ${nearMiss.rule} would apply once the address-book entry for ${to} is active`,
    );
  }
  if (nearMiss.wallets) {
    return refuse(
      'DESTINATION_NOT_ALLOWED',
      `policy ${index}: ${to} on ${chain} is not a wallet that rule ${nearMiss.rule} allows (an internal transfer names its wallet in toWallet)`,
    );
  }
  return refuse(
    'DESTINATION_NOT_ALLOWED',
    `policy ${index}: ${to} on ${chain} is not an address-book destination that rule ${nearMiss.rule} allows`,
  );
}

// ---------------------------------------------------------------- step 7: limits

/**
 * Whether a ledger entry falls in the limit's scope for this intent. Ledger
 * entries carry no chain: an identical address string with the same asset id
 * on two chains is summed together, which can only over-count (fail closed).
 */
function inScope(limit: RollingLimit, entry: LedgerEntry, intent: Intent): boolean {
  if (entry.asset !== limit.asset) return false;
  if (limit.wallet !== undefined && entry.wallet !== limit.wallet) return false;
  switch (limit.scope) {
    case 'wallet-asset':
      return entry.wallet === intent.wallet;
    case 'destination':
      return entry.to === intent.to;
    case 'requester':
      return entry.requester === intent.requester;
  }
}

/**
 * The window of a limit at `now` holds the entries dated after
 * `now - windowMs`. Entries dated after `now` count too: if the verifier's
 * clock stepped back, what it signed "in the future" was still signed
 * recently, and must not reopen the window.
 */
function windowStart(limit: RollingLimit, now: Millis): Millis {
  return now - limit.windowMs;
}

/**
 * The sum already signed, per this verifier's ledger, in `limit`'s window at
 * `now` and in its scope for `intent` (same wallet and asset, same
 * destination and asset, or same requester and asset; restricted to
 * `limit.wallet` when it names one). The intent's own ledger entry, if any,
 * is left out, so asking again for an intent already signed does not count it
 * twice. The intent is allowed by this limit when usage + amount <= max.
 *
 * @param digest the intent's digest, if the caller already has it
 */
export function rollingUsage(
  ledger: readonly LedgerEntry[],
  limit: RollingLimit,
  intent: Intent,
  now: Millis,
  digest: Digest = intentDigest(intent),
): bigint {
  const since = windowStart(limit, now);
  let used = 0n;
  for (const entry of ledger) {
    if (entry.intent !== digest && entry.at > since && inScope(limit, entry, intent))
      used += BigInt(entry.amount);
  }
  return used;
}

/** The lower median (index floor((n-1)/2) in sorted order), by quickselect: linear on average. */
/**
 * Step 2 of {@link evaluate}, also what an approver's review checks: the
 * wallet an intent names is in governance and active at `now` (issue 8,
 * item 2: a wallet added by governance spends nothing before its delay has
 * passed), on the intent's chain (and one of `chains`, the chains a verifier
 * serves, when given), and holds the intent's asset (THREATS 16).
 */
export function intentWallet(
  state: GovernanceState,
  intent: Pick<Intent, 'wallet' | 'chain' | 'asset'> & { readonly to?: string },
  now: Millis,
  chains?: readonly string[],
): Result<Wallet> {
  const wallet = state.wallets.get(intent.wallet);
  if (wallet === undefined) return refuse('UNKNOWN_WALLET', `no wallet ${intent.wallet}`);
  if (!walletActive(state, intent.wallet, now)) {
    const from = state.walletsActiveFrom.get(intent.wallet) ?? 0;
    return refuse(
      'WALLET_NOT_ACTIVE',
      `wallet ${intent.wallet} is waiting out the governance delay until ${new Date(from).toISOString()}`,
    );
  }
  if (intent.chain !== wallet.chain) {
    return refuse(
      'WRONG_CHAIN',
      `wallet ${wallet.id} is on ${wallet.chain}, the intent names ${intent.chain}`,
    );
  }
  if (chains !== undefined && !chains.includes(intent.chain)) {
    return refuse('WRONG_CHAIN', `this verifier does not serve ${intent.chain}`);
  }
  if (!wallet.assets.includes(intent.asset)) {
    return refuse('UNKNOWN_ASSET', `wallet ${wallet.id} does not hold ${intent.asset}`);
  }
  // A Safe sends only registered assets, active at `now` (issue 9): the registry says which
  // contract an asset id is, and asset.add waits out the delay, asset.remove binds at once.
  if (wallet.kind === 'evm-safe') {
    // THREATS 28: a transaction to the Safe itself is how owners, threshold, modules, guard and
    // singleton change (WazirX 2024); no intent may name it, whatever it carries.
    if (intent.to === wallet.address) {
      return refuse(
        'OPERATION_FORBIDDEN',
        `the intent pays the Safe ${wallet.address} itself: a call to the Safe`,
      );
    }
    const registered = assetStatus(state, intent.asset, now);
    if (registered.status === 'unknown') {
      return refuse('UNKNOWN_ASSET', `asset ${intent.asset} is not in the asset registry`);
    }
    if (registered.asset.chain !== wallet.chain) {
      return refuse(
        'UNKNOWN_ASSET',
        `asset ${intent.asset} is registered on ${registered.asset.chain}, not ${wallet.chain}`,
      );
    }
    if (registered.status === 'pending') {
      return refuse(
        'UNKNOWN_ASSET',
        `asset ${intent.asset} is waiting out the governance delay until ${new Date(registered.activeFrom).toISOString()}`,
      );
    }
  }
  return accept(wallet);
}

/**
 * The warnings a transfer's history gives (step 7 of {@link evaluate}, and
 * an approver's review over the history it trusts): FIRST_PAYMENT when
 * nothing earlier paid the destination, LARGE_AMOUNT when the amount is over
 * LARGE_AMOUNT_FACTOR times the median of the wallet's recent transfers of
 * the asset (with at least LARGE_AMOUNT_MIN_HISTORY of them). `digest` is the
 * intent's own, left out of the history.
 */
export function historyWarnings(
  view: LedgerView,
  intent: Pick<Intent, 'wallet' | 'asset' | 'amount' | 'to' | 'outputs'>,
  digest: Digest,
): Warning[] {
  const warnings: Warning[] = [];
  for (const to of new Set(intentOutputs(intent).map((o) => o.to))) {
    if (!view.paid(to, digest)) {
      warnings.push({ code: 'FIRST_PAYMENT', message: `no earlier payment to ${to}` });
    }
  }
  const history = view.recent(intent.wallet, intent.asset, LARGE_AMOUNT_HISTORY, digest);
  if (history.length >= LARGE_AMOUNT_MIN_HISTORY) {
    const median = lowerMedian(history);
    if (BigInt(intent.amount) > median * LARGE_AMOUNT_FACTOR) {
      warnings.push({
        code: 'LARGE_AMOUNT',
        message: `${intent.amount} is more than ${LARGE_AMOUNT_FACTOR} times the median ${median} of wallet ${intent.wallet}`,
      });
    }
  }
  return warnings;
}

function lowerMedian(values: readonly bigint[]): bigint {
  const a = values.slice();
  const k = (a.length - 1) >> 1;
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1] as bigint;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while ((a[i] as bigint) < pivot) i++;
      while ((a[j] as bigint) > pivot) j--;
      if (i <= j) {
        const t = a[i] as bigint;
        a[i] = a[j] as bigint;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else break;
  }
  return a[k] as bigint;
}

// ---------------------------------------------------------------- step 8: approvals

interface Vote {
  readonly approver: string;
  readonly decision: 'approve' | 'reject';
  readonly at: Millis;
  readonly counter?: number;
}

function checkOne(
  state: GovernanceState,
  intent: Intent,
  digest: Digest,
  signed: SignedApproval,
  now: Millis,
  counters: ReadonlyMap<string, number> | undefined,
): Result<Vote> {
  const a = signed.approval;
  // THREATS 13: an approval signs one intent digest; replayed onto another it is worthless.
  if (a.intent !== digest) return refuse('APPROVAL_SIGNATURE_INVALID', 'the approval is for another intent');
  const found = lookupDevice(state, a.approver, a.device, now);
  if (!found.ok) return refuse(found.code, deviceLookupMessage(found, a.approver, a.device));
  let approvalId: Digest;
  try {
    approvalId = approvalDigest(a);
  } catch (err) {
    return refusalFrom(err);
  }
  // Signature before content checks, so a forged approval is reported as forged (THREATS 7).
  const verified = verifyDeviceSignature(
    found.device,
    approvalId,
    signed.signature,
    counterOption(counters, a.approver, a.device),
  );
  if (!verified.ok) {
    return refuse(
      'APPROVAL_SIGNATURE_INVALID',
      `the approval's signature does not verify: ${verified.message}`,
    );
  }
  // Issue 8, item 3: an approval is a decision of the moment, bounded like the intent it approves.
  const maxMs = lifetimesOf(policiesInForce(state, now)).approvalMs;
  if (a.expiresAt - a.at > maxMs) {
    return refuse(
      'LIFETIME_TOO_LONG',
      `the approval is valid for ${formatDuration(a.expiresAt - a.at)}, the policy allows at most ${formatDuration(maxMs)}`,
    );
  }
  if (now >= a.expiresAt) return refuse('EXPIRED', 'the approval has expired');
  if (a.at > now + CLOCK_SKEW_MS) {
    return refuse('NOT_YET_VALID', 'the approval is dated in the future beyond the allowed clock skew');
  }
  // THREATS 11: the requester never counts toward its own intent, approving or rejecting.
  if (a.approver === intent.requester) {
    return refuse('SELF_APPROVAL', 'the requester cannot approve or reject its own intent');
  }
  const vote: Vote = { approver: a.approver, decision: a.decision, at: a.at };
  return accept(verified.value.counter === undefined ? vote : { ...vote, counter: verified.value.counter });
}

/**
 * Checks one approval of `intent` (whose digest is `intentDigest`) at `now`:
 * it signs this intent digest (else APPROVAL_SIGNATURE_INVALID, THREATS 13),
 * comes from an active device of a current member (NOT_A_MEMBER,
 * UNKNOWN_DEVICE, DEVICE_REVOKED, THREATS 4-5), its signature verifies
 * (APPROVAL_SIGNATURE_INVALID), it has not expired (EXPIRED, THREATS 15) and
 * is not dated beyond the clock skew (NOT_YET_VALID), and its approver is not
 * the requester (SELF_APPROVAL, THREATS 11). Whether the approver belongs to
 * a group of the matched rule, and duplicates, are judged by {@link evaluate}.
 * For the coordinator to refuse a single approval with its code.
 */
export function checkApproval(
  state: GovernanceState,
  intent: Intent,
  intentDigest: Digest,
  approval: SignedApproval,
  now: Millis,
): Result<{ approver: string; decision: 'approve' | 'reject' }> {
  const r = checkOne(state, intent, intentDigest, approval, now, undefined);
  return r.ok ? accept({ approver: r.value.approver, decision: r.value.decision }) : r;
}

/**
 * Whether `member` may count toward `group` at `now`. The requester never
 * does: its approvals are already refused as SELF_APPROVAL, and this keeps
 * the counting from depending on that (THREATS 11).
 */
function eligible(
  state: GovernanceState,
  group: ApprovalGroup,
  member: string,
  requester: string,
  now: Millis,
) {
  if (member === requester) return false;
  if (group.members !== undefined) return group.members.includes(member);
  return group.role !== undefined && hasRole(state, member, group.role, now);
}

interface Chosen {
  readonly index: number;
  readonly vote: Vote;
}

/**
 * Which of a member's valid approvals stands for the member (THREATS 12: one
 * person counts once, however many devices): a reject over an approve, then
 * the earliest `at`, then the lowest index. The choice depends only on the
 * set of approvals, not their order, so neither does the decision.
 */
function better(candidate: Chosen, current: Chosen): boolean {
  if (candidate.vote.decision !== current.vote.decision) return candidate.vote.decision === 'reject';
  if (candidate.vote.at !== current.vote.at) return candidate.vote.at < current.vote.at;
  return candidate.index < current.index;
}

/**
 * Steps 8 and 9. Each approval is checked once; the ones that fail are
 * reported in `approvalChecks` and otherwise ignored (they do not turn the
 * decision into a deny). Then, per group of each matched rule: m of the named
 * members, or m of the members holding the role at `now`; the requester never
 * counts. A member counts at most once per group but may count in several
 * groups of a rule: groups are independent conditions, like separate quorums;
 * a policy that wants distinct people names disjoint members or roles.
 * A valid reject by any member who could count toward a group vetoes the
 * intent (INTENT_REJECTED).
 *
 * Cancel window: a group is satisfied at the `at` of its m-th earliest
 * counted approval, and a rule at the latest of its groups' times, but never
 * before the intent's createdAt (an approval cannot usefully predate what it
 * approves, so backdated approvals cannot skip the window). The transfer is
 * allowed once `now` >= that time + cancelWindowMs. Taking the m earliest
 * means an additional approval can only bring that time earlier, never turn
 * an allow into a pending.
 */
function judgeApprovals(
  input: EvaluateInput,
  digest: Digest,
  matched: readonly MatchedRule[],
  warnings: Warning[],
): PolicyDecision {
  const { state, now, approvals } = input;
  const intent = input.intent.intent;
  const checks: ApprovalCheck[] = new Array(approvals.length);
  const byMember = new Map<string, Chosen>();

  for (let i = 0; i < approvals.length; i++) {
    const signed = approvals[i] as SignedApproval;
    const r = checkOne(state, intent, digest, signed, now, input.passkeyCounters);
    if (!r.ok) {
      checks[i] = { index: i, approver: signed.approval.approver, counted: false, code: r.code };
      continue;
    }
    const candidate: Chosen = { index: i, vote: r.value };
    const current = byMember.get(r.value.approver);
    if (current === undefined) {
      byMember.set(r.value.approver, candidate);
    } else if (better(candidate, current)) {
      checks[current.index] = duplicateCheck(current);
      byMember.set(r.value.approver, candidate);
    } else {
      checks[i] = duplicateCheck(candidate);
    }
  }

  const groups: { policy: number; rule: PolicyRule; index: number; group: ApprovalGroup }[] = [];
  for (const m of matched) {
    (m.rule.approvals ?? []).forEach((group, index) => {
      groups.push({ policy: m.policy, rule: m.rule, index, group });
    });
  }

  const rejecters: string[] = [];
  const approvers: string[] = [];
  for (const chosen of byMember.values()) {
    const { approver, decision } = chosen.vote;
    const counts = groups.some((g) => eligible(state, g.group, approver, intent.requester, now));
    checks[chosen.index] = withCounter(
      counts
        ? { index: chosen.index, approver, counted: true }
        : { index: chosen.index, approver, counted: false, code: 'NOT_AUTHORIZED' },
      chosen.vote,
    );
    if (!counts) continue;
    if (decision === 'reject') rejecters.push(approver);
    else approvers.push(approver);
  }
  // Arrays made with new Array(n) are holey; every slot is filled above, this keeps the type honest.
  const approvalChecks = Array.from(checks);

  if (rejecters.length > 0) {
    rejecters.sort();
    return deny(digest, 'INTENT_REJECTED', `rejected by ${rejecters.join(', ')}`, approvalChecks);
  }
  approvers.sort();

  const missing: MissingApproval[] = [];
  /** Per matched policy: when its rule's groups were all satisfied. */
  const quorumAt = new Map<number, Millis>();
  for (const g of groups) {
    const ats: Millis[] = [];
    for (const approver of approvers) {
      if (eligible(state, g.group, approver, intent.requester, now)) {
        ats.push((byMember.get(approver) as Chosen).vote.at);
      }
    }
    if (ats.length < g.group.m) {
      missing.push({
        policy: g.policy,
        rule: g.rule.id,
        group: g.index,
        need: g.group.m,
        have: ats.length,
        of: g.group.members !== undefined ? { members: [...g.group.members] } : { role: g.group.role ?? '' },
      });
      continue;
    }
    ats.sort((x, y) => x - y);
    const at = ats[g.group.m - 1] as Millis;
    quorumAt.set(g.policy, Math.max(quorumAt.get(g.policy) ?? intent.createdAt, at));
  }
  if (missing.length > 0) return { kind: 'pending', intent: digest, missing, approvalChecks, warnings };

  let windowEndsAt: Millis | undefined;
  for (const m of matched) {
    if (m.rule.cancelWindowMs === undefined) continue;
    const endsAt = (quorumAt.get(m.policy) ?? intent.createdAt) + m.rule.cancelWindowMs;
    if (windowEndsAt === undefined || endsAt > windowEndsAt) windowEndsAt = endsAt;
  }
  if (windowEndsAt !== undefined && now < windowEndsAt) {
    return {
      kind: 'pending',
      intent: digest,
      missing,
      cancelWindowEndsAt: windowEndsAt,
      approvalChecks,
      warnings,
    };
  }
  return {
    kind: 'allow',
    intent: digest,
    rules: matched.map((m) => m.rule.id),
    approvers,
    approvalChecks,
    warnings,
  };
}

function duplicateCheck(c: Chosen): ApprovalCheck {
  return withCounter(
    { index: c.index, approver: c.vote.approver, counted: false, code: 'DUPLICATE_APPROVER' },
    c.vote,
  );
}

function withCounter(check: ApprovalCheck, vote: Vote): ApprovalCheck {
  return vote.counter === undefined ? check : { ...check, counter: vote.counter };
}

// ---------------------------------------------------------------- for signers

/**
 * What a signer needs: an allow, or a refusal with a stable code. A deny keeps
 * its code; a pending decision becomes QUORUM_NOT_MET (THREATS 7, 11), with a
 * message saying which groups are short, or that the approvals are complete
 * but the cancel window is still open.
 */
export function requireAllow(decision: PolicyDecision): Result<AllowDecision> {
  switch (decision.kind) {
    case 'allow':
      return accept(decision);
    case 'deny':
      return refuse(decision.code, decision.message);
    case 'pending': {
      const first = decision.missing[0];
      if (first === undefined) {
        const endsAt = decision.cancelWindowEndsAt ?? 0;
        return refuse(
          'QUORUM_NOT_MET',
          `approved, but the cancel window is open until ${new Date(endsAt).toISOString()}`,
          { cancelWindowEndsAt: endsAt },
        );
      }
      const groups = decision.missing
        .map((m) => {
          const of = 'role' in m.of ? `role ${m.of.role}` : `members ${m.of.members.join(', ')}`;
          return `rule ${m.rule} needs ${m.need} of ${of}, has ${m.have}`;
        })
        .join('; ');
      return refuse('QUORUM_NOT_MET', `not enough approvals: ${groups}`, {
        policy: first.policy,
        rule: first.rule,
        group: first.group,
        need: first.need,
        have: first.have,
      });
    }
  }
}
