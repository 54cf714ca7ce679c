/**
 * The coordinator's engine for everything up to "approved" (docs/architecture.md "The
 * withdrawal flow", steps 1-3): intents, approvals, governance proposals.
 * The HTTP edge (app.ts) authenticates and decodes; this module decides,
 * stores, audits and notifies. After "approved" the SigningPipeline takes
 * over (contracts.ts).
 *
 * Why it is built this way:
 * - The coordinator is trusted for availability only. Its policy run is a
 *   preview with core's `evaluate`, the very function every signer runs
 *   again with its own clock and ledger; the preview exists to refuse early
 *   (nothing stored, THREATS 15-21) and to tell approvers what is missing.
 * - The preview's ledger (rolling limits) is what this coordinator saw
 *   signed: intents with status signed, broadcast or confirmed whose last
 *   change (`updatedAt`, at or after the signing) falls in the longest window
 *   of the policies in force, all of them, read from columns through an
 *   index so its cost is the window's and not the history's. It can only
 *   under-count what a signer counts, never invent a refusal a signer would
 *   not make (THREATS 20 is the signers' to enforce).
 * - State changes are compare-and-set in the database (store
 *   intents.updateStatus), so of any number of concurrent approvals, sweeps
 *   and coordinators, exactly one moves an intent from pending to approved,
 *   and only that one calls `pipeline.onApproved` (once per intent).
 * - Every state change and every refusal is an audit entry (docs/api.md
 *   "Audit"); authentication and authorization refusals go through the
 *   throttled RefusalAuditor, refusals of well-formed, authenticated content
 *   (intent.refused, approval.refused, governance.refused) are written as is:
 *   they cost the caller a signed request each, and the per-key rate limit
 *   bounds them.
 * - Nothing here trusts stored rows for a decision either: each decision
 *   re-verifies the stored signed objects against the verified governance
 *   state (evaluate checks every signature).
 */
import { findWalletAlias, walletReceiveAddress } from '@custos/bitcoin';
import {
  ADMIN_ROLE,
  type ApprovalCheck,
  applyGovernance,
  approvalDigest,
  CustosError,
  canonicalize,
  checkApproval,
  type Digest,
  type ErrorCode,
  effectiveDelay,
  evaluate,
  GOVERNANCE_EFFECTS,
  type GovernanceEntry,
  type GovernanceSignature,
  type GovernanceState,
  governanceDigest,
  hasRole,
  intentDigest,
  isAutomatedRule,
  isBitcoinWallet,
  type LedgerView,
  ledgerHorizon,
  ledgerViewOf,
  lookalikeMessage,
  lookalikesInForce,
  type Millis,
  type PolicyDecision,
  policiesInForce,
  type Receipt,
  type SignedApproval,
  type SignedGovernanceEntry,
  type SignedIntent,
  WATCHER_ROLE,
  type Warning,
} from '@custos/core';
import type { Logger } from 'pino';
import type { Authenticator, Principal } from './auth.js';
import type { AuditLog, NotificationEvent, Notifier, SigningPipeline } from './contracts.js';
import {
  type IntentRecord,
  type IntentStatus,
  type JobRecord,
  MAX_PAGE,
  type ProposalRecord,
  type ProposalStatus,
  type Store,
} from './db/repository.js';
import { type BumpView, bumpView } from './pipeline/bump.js';
import { PreviewLedger } from './preview-ledger.js';

/** Statuses whose intents a signer has signed (or will have, once they are on chain). */
/** The ledger when no rolling limit is set: nothing to sum. */
const NO_LEDGER: LedgerView = ledgerViewOf([]);
/** Pending intents one sweep looks at, at most. */
const SWEEP_MAX = 1000;

/** What the policy preview says, as the API shows it. */
export type DecisionView =
  | {
      readonly kind: 'allow';
      readonly rules: readonly string[];
      readonly approvers: readonly string[];
      readonly approvalChecks: readonly ApprovalCheck[];
      readonly warnings: readonly Warning[];
    }
  | {
      readonly kind: 'pending';
      readonly missing: unknown[];
      readonly cancelWindowEndsAt: Millis | null;
      readonly approvalChecks: readonly ApprovalCheck[];
      readonly warnings: readonly Warning[];
    }
  | { readonly kind: 'deny'; readonly code: ErrorCode; readonly message: string };

export function decisionView(d: PolicyDecision): DecisionView {
  switch (d.kind) {
    case 'allow':
      return {
        kind: 'allow',
        rules: d.rules,
        approvers: d.approvers,
        approvalChecks: d.approvalChecks,
        warnings: d.warnings,
      };
    case 'pending':
      return {
        kind: 'pending',
        missing: d.missing,
        cancelWindowEndsAt: d.cancelWindowEndsAt ?? null,
        approvalChecks: d.approvalChecks,
        warnings: d.warnings,
      };
    case 'deny':
      return { kind: 'deny', code: d.code, message: d.message };
  }
}

export interface SignerOutcome {
  readonly signer: string;
  readonly job: string;
  /** 'queued' or 'delivered' until the signer answers, then 'signed' or 'refused'. */
  readonly outcome: 'queued' | 'delivered' | 'signed' | 'refused';
  readonly code: ErrorCode | null;
  /** The signer's own sentence for its refusal. */
  readonly message: string | null;
  /** 'critical' when the signer raised an alert (it caught tampering). */
  readonly alert: 'warning' | 'critical' | null;
}

export interface IntentView {
  readonly id: Digest;
  readonly status: IntentStatus;
  readonly statusCode: ErrorCode | null;
  /** The sentence that goes with statusCode: the coordinator's own, or the signer's it refused for. */
  readonly statusMessage: string | null;
  readonly intent: SignedIntent;
  readonly approvals: readonly SignedApproval[];
  /** The policy preview now; null once the intent is past approval (signing, done, refused...). */
  readonly decision: DecisionView | null;
  readonly psbt: string | null;
  /** EVM Safe intents only, once built: the SafeTx proposal (as signer jobs carry it) and its execution. */
  readonly safeTx?: {
    readonly proposal: unknown;
    readonly safeTxHash: string;
    readonly executionTxHash: string | null;
  };
  readonly txid: string | null;
  readonly confirmations: number | null;
  readonly signers: readonly SignerOutcome[];
  /**
   * Fee bumps of a Bitcoin withdrawal (issue 13), oldest first, when there are any: each with its
   * replacement's txid, status (signing, broadcast, mined, replaced, refused) and signers' answers.
   * `txid` above is the intent's transaction to follow: the replacement once broadcast, whichever is mined.
   */
  readonly bumps?: readonly BumpView[];
  readonly receivedAt: Millis;
  readonly updatedAt: Millis;
}

/** An intent in a list: no approvals, decision or PSBT (fetch the intent for those). */
export interface IntentSummary {
  readonly id: Digest;
  readonly status: IntentStatus;
  readonly statusCode: ErrorCode | null;
  readonly statusMessage: string | null;
  readonly intent: SignedIntent;
  readonly txid: string | null;
  /** As in the intent's own view, so a list and the intent agree. */
  readonly confirmations: number | null;
  readonly signers: readonly SignerOutcome[];
  readonly receivedAt: Millis;
  readonly updatedAt: Millis;
}

export interface ProposalView {
  readonly id: Digest;
  readonly seq: number;
  readonly kind: string;
  readonly entry: GovernanceEntry;
  readonly signatures: readonly GovernanceSignature[];
  readonly status: ProposalStatus;
  readonly warnings: readonly Warning[];
  readonly createdAt: Millis;
  readonly updatedAt: Millis;
}

export type ProposalOutcome =
  | {
      readonly status: 'applied';
      readonly id: Digest;
      readonly seq: number;
      readonly warnings: readonly Warning[];
    }
  | {
      readonly status: 'open';
      readonly id: Digest;
      readonly seq: number;
      /** Distinct admins whose signatures verified, and how many the quorum needs. */
      readonly have: number;
      readonly need: number;
      readonly warnings: readonly Warning[];
    };

export interface SweepResult {
  readonly approved: number;
  readonly rejected: number;
  readonly expired: number;
}

export interface EngineOptions {
  readonly store: Store;
  readonly audit: AuditLog;
  readonly notifier: Notifier;
  readonly pipeline: SigningPipeline;
  readonly auth: Authenticator;
  readonly clock: () => Millis;
  readonly logger: Logger;
}

/** Where a request came from, for refusals audited with the request. */
export interface RequestInfo {
  readonly method: string;
  readonly path: string;
  readonly raw: Uint8Array;
}

export class Engine {
  readonly #store: Store;
  readonly #preview: PreviewLedger;
  readonly #audit: AuditLog;
  readonly #notifier: Notifier;
  readonly #pipeline: SigningPipeline;
  readonly #auth: Authenticator;
  readonly #clock: () => Millis;
  readonly #log: Logger;

  constructor(o: EngineOptions) {
    this.#store = o.store;
    this.#preview = new PreviewLedger(o.store);
    this.#audit = o.audit;
    this.#notifier = o.notifier;
    this.#pipeline = o.pipeline;
    this.#auth = o.auth;
    this.#clock = o.clock;
    this.#log = o.logger;
  }

  // ---------------------------------------------------------------- intents

  /**
   * POST /v1/intents. The request must come from the requester's device named
   * in the intent (else NOT_AUTHORIZED). A deny of the preview refuses the
   * intent with its code, storing nothing (audit `intent.refused`).
   */
  async createIntent(
    p: Principal,
    state: GovernanceState,
    signed: SignedIntent,
    req: RequestInfo,
  ): Promise<{ id: Digest; status: IntentStatus; decision: DecisionView }> {
    const i = signed.intent;
    if (p.kind !== 'member' || p.member !== i.requester || p.device !== i.device) {
      return this.#auth.refuseRequest(
        p.keyId,
        'NOT_AUTHORIZED',
        `an intent is submitted by its requester's device: sign the request as member:${i.requester}/${i.device}`,
        req,
      );
    }
    const id = intentDigest(i);
    const actor = p.keyId;
    if ((await this.#store.intents.get(id)) !== null) {
      return this.#refuseIntent(actor, id, 'DUPLICATE_INTENT', 'this intent was already submitted');
    }
    const now = this.#clock();
    const ledger = await this.#ledger(state, now);
    const decision = evaluate({
      state,
      intent: signed,
      approvals: [],
      ledger,
      now,
      receiveAddress: walletReceiveAddress,
    });
    if (decision.kind === 'deny') return this.#refuseIntent(actor, id, decision.code, decision.message);

    try {
      // The intent and its audit entry commit together: a stored intent always has its record.
      const created = this.#audit.event({ actor, event: 'intent.created', subject: id, digest: id, at: now });
      await this.#store.intents.insert(signed, undefined, created);
    } catch (err) {
      if (err instanceof CustosError && err.code === 'DUPLICATE_INTENT') {
        return this.#refuseIntent(actor, id, 'DUPLICATE_INTENT', err.message);
      }
      throw err;
    }
    await this.#notify('intent.created', {
      id,
      wallet: i.wallet,
      chain: i.chain,
      asset: i.asset,
      amount: i.amount,
      to: i.to,
      ...(i.outputs === undefined ? {} : { outputs: i.outputs }),
      requester: i.requester,
      expiresAt: i.expiresAt,
    });
    let status: IntentStatus = 'pending';
    if (decision.kind === 'pending') {
      await this.#notify('approval.needed', { id, missing: decision.missing, warnings: decision.warnings });
    } else if (await this.#approve(id, actor)) {
      // An automated rule (approvals: [], issue 13) allows at once: no approval POST, straight to the
      // signing pipeline. Every signer decides again with its own ledger and limits.
      status = 'approved';
    }
    return { id, status, decision: decisionView(decision) };
  }

  /**
   * GET /v1/intents/:id/receipts: every signer's signed receipt for the
   * intent's jobs (fee bumps included), as the signers posted them: what the
   * watcher checks a spend against by the signers' identity keys rather than
   * taking the audit log's word (issue 12). Nothing in it is the
   * coordinator's own statement.
   */
  async receipts(id: string): Promise<{ receipts: { receipt: Receipt; signature: string }[] }> {
    if ((await this.#store.intents.get(id)) === null) {
      throw new CustosError('NOT_FOUND', 'no such intent', { intent: id });
    }
    const jobs = await this.#store.jobs.of(id);
    return {
      receipts: jobs.flatMap((j) =>
        j.result === null ? [] : [{ receipt: j.result.receipt, signature: j.result.signature }],
      ),
    };
  }

  /** GET /v1/intents/:id. */
  async intentView(id: string, state: GovernanceState): Promise<IntentView> {
    const record = await this.#store.intents.get(id);
    if (record === null) throw new CustosError('NOT_FOUND', 'no such intent', { intent: id });
    const [approvals, tx, allJobs, evm, bumps] = await Promise.all([
      this.#store.approvals.of(id),
      this.#store.transactions.get(id),
      this.#store.jobs.of(id),
      this.#store.evm.get(id),
      this.#store.bumps.forIntent(id),
    ]);
    // A fee bump's jobs (issue 13) are shown with their bump, not as answers for the intent.
    const jobs = allJobs.filter((j) => j.job.bump === undefined);
    const signedApprovals = approvals.map((a) => a.signed);
    let decision: DecisionView | null = null;
    if (record.status === 'pending' || record.status === 'approved') {
      const now = this.#clock();
      const ledger = await this.#ledger(state, now);
      decision = decisionView(
        evaluate({
          state,
          intent: record.signed,
          approvals: signedApprovals,
          ledger,
          now,
          receiveAddress: walletReceiveAddress,
        }),
      );
    }
    return {
      id: record.id,
      status: record.status,
      statusCode: record.statusCode,
      statusMessage: record.statusMessage,
      intent: record.signed,
      approvals: signedApprovals,
      decision,
      psbt: record.psbt,
      ...(evm === null
        ? {}
        : {
            safeTx: {
              proposal: JSON.parse(evm.safeTx) as unknown,
              safeTxHash: evm.safeTxHash,
              executionTxHash: evm.execHash,
            },
          }),
      txid: record.txid ?? tx?.txid ?? null,
      confirmations: tx?.confirmations ?? (evm?.execHash == null ? null : evm.confirmations),
      signers: jobs.map(signerOutcome),
      ...(bumps.length === 0 ? {} : { bumps: bumps.map((b) => bumpView(b, allJobs)) }),
      receivedAt: record.receivedAt,
      updatedAt: record.updatedAt,
    };
  }

  /** GET /v1/intents. */
  async listIntents(q: {
    status?: IntentStatus;
    requester?: string;
    wallet?: string;
    limit?: number;
    cursor?: string;
  }): Promise<{ intents: IntentSummary[]; next: string | null }> {
    const page = await this.#store.intents.list(q);
    const intents = await Promise.all(
      page.intents.map(async (r) => {
        const [tx, jobs] = await Promise.all([this.#store.transactions.get(r.id), this.#store.jobs.of(r.id)]);
        const own = jobs.filter((j) => j.job.bump === undefined);
        return summary(r, tx?.confirmations ?? null, own.map(signerOutcome));
      }),
    );
    return { intents, next: page.next };
  }

  /**
   * PUT, PATCH, DELETE /v1/intents/:id (THREATS 8): an intent is immutable; a
   * change is a new intent, and all approvals start over. Audited.
   */
  async refuseEdit(p: Principal, id: string, req: RequestInfo): Promise<never> {
    return this.#auth.refuseRequest(
      p.keyId,
      'INTENT_IMMUTABLE',
      `intent ${id.slice(0, 64)} cannot be changed or deleted: submit a new intent (approvals start over)`,
      req,
    );
  }

  // ---------------------------------------------------------------- approvals

  /**
   * POST /v1/intents/:id/approvals. The request must come from the approver's
   * device named in the approval (for a passkey approval: from any Ed25519
   * device of the same approver). The approval is checked with core's
   * checkApproval (APPROVAL_SIGNATURE_INVALID for an approval of another
   * intent, THREATS 13; SELF_APPROVAL, THREATS 11; EXPIRED, THREATS 15), and
   * refused NOT_AUTHORIZED when its approver counts toward no group of the
   * rule that applies. Stored idempotently, then the intent is decided again
   * with every stored approval: allow moves it to approved (once), a counted
   * reject to rejected.
   */
  async addApproval(
    p: Principal,
    state: GovernanceState,
    id: string,
    signed: SignedApproval,
    req: RequestInfo,
  ): Promise<IntentView> {
    const a = signed.approval;
    // A passkey cannot sign HTTP requests: its approval, which carries the passkey's own
    // assertion, is sent with a request signed by another device of the same approver.
    const passkey = state.members.get(a.approver)?.devices.get(a.device)?.device.kind === 'webauthn';
    if (p.kind !== 'member' || p.member !== a.approver || (p.device !== a.device && !passkey)) {
      return this.#auth.refuseRequest(
        p.keyId,
        'NOT_AUTHORIZED',
        `an approval is submitted by its approver's device: sign the request as member:${a.approver}/${a.device}`,
        req,
      );
    }
    const actor = p.keyId;
    const digest = approvalDigest(a);
    const record = await this.#store.intents.get(id);
    if (record === null) throw new CustosError('NOT_FOUND', 'no such intent', { intent: id });
    const stored = await this.#store.approvals.of(id);
    const body = canonicalize(signed);
    // The same approval again (a client retrying) is answered as the first time.
    if (stored.some((s) => s.digest === digest && s.body === body)) return this.intentView(id, state);

    const refuseApproval = (code: ErrorCode, message: string): Promise<never> =>
      this.#refuseApproval(actor, id, digest, code, message);
    const notPending = statusRefusal(record);
    if (notPending !== null) return refuseApproval(notPending.code, notPending.message);
    const now = this.#clock();
    if (now >= record.signed.intent.expiresAt) {
      await this.#expire(id);
      return refuseApproval('EXPIRED', 'the intent has expired');
    }
    const checked = checkApproval(state, record.signed.intent, record.id, signed, now);
    if (!checked.ok) return refuseApproval(checked.code, checked.message);

    const ledger = await this.#ledger(state, now);
    const approvals = [...stored.map((s) => s.signed), signed];
    const preview = evaluate({
      state,
      intent: record.signed,
      approvals,
      ledger,
      now,
      receiveAddress: walletReceiveAddress,
    });
    const mine = preview.approvalChecks[approvals.length - 1];
    if (mine?.code === 'NOT_AUTHORIZED') {
      return refuseApproval(
        'NOT_AUTHORIZED',
        `${a.approver} counts toward no approval group of the rule that applies to this intent`,
      );
    }
    try {
      // The approval and its audit entry commit together; the same approval again adds neither.
      const added = this.#audit.event({ actor, event: 'approval.added', subject: id, digest, at: now });
      await this.#store.approvals.insert(signed, added);
    } catch (err) {
      if (err instanceof CustosError && (err.code === 'CONFLICT' || err.code === 'NOT_FOUND')) {
        return refuseApproval(err.code, err.message);
      }
      throw err;
    }
    await this.#settle(id, state, actor);
    return this.intentView(id, state);
  }

  /**
   * Decides a pending intent again with every stored approval and the time
   * now: expired, rejected, approved (compare-and-set, so only once), or left
   * pending. Used after each approval and by the sweep (cancel windows end and
   * intents expire with nobody posting anything).
   */
  async #settle(
    id: string,
    state: GovernanceState,
    actor: string,
    sweep?: { ledger: () => Promise<LedgerView> },
  ): Promise<'approved' | 'rejected' | 'expired' | null> {
    const record = await this.#store.intents.get(id);
    if (record === null || record.status !== 'pending') return null;
    const now = this.#clock();
    if (now >= record.signed.intent.expiresAt) return (await this.#expire(id)) ? 'expired' : null;
    const approvals = (await this.#store.approvals.of(id)).map((s) => s.signed);
    // With no approval only an automated rule (issue 13) can allow: one whose policy change or
    // cancel window was still pending when the intent came. Otherwise nothing can be decided yet.
    if (approvals.length === 0 && !policiesInForce(state, now).some((p) => p.rules.some(isAutomatedRule))) {
      return null;
    }
    const ledger = sweep === undefined ? await this.#ledger(state, now) : await sweep.ledger();
    const decision = evaluate({
      state,
      intent: record.signed,
      approvals,
      ledger,
      now,
      receiveAddress: walletReceiveAddress,
    });
    if (decision.kind === 'allow') return (await this.#approve(id, actor)) ? 'approved' : null;
    if (decision.kind === 'deny' && decision.code === 'INTENT_REJECTED') {
      return (await this.#reject(id, actor, decision.message)) ? 'rejected' : null;
    }
    return null;
  }

  /**
   * Looks at pending intents, oldest first (at most 1,000 per sweep): expires,
   * approves or rejects those whose time has come (a cancel window ended, an
   * expiry passed, a freeze was lifted). The preview ledger is read once per sweep.
   */
  async sweep(state: GovernanceState): Promise<SweepResult> {
    const counts = { approved: 0, rejected: 0, expired: 0 };
    let ledger: Promise<LedgerView> | undefined;
    const once = { ledger: () => (ledger ??= this.#ledger(state, this.#clock())) };
    let cursor: string | undefined;
    let seen = 0;
    do {
      const page = await this.#store.intents.list({
        status: 'pending',
        order: 'asc',
        limit: MAX_PAGE,
        ...(cursor === undefined ? {} : { cursor }),
      });
      for (const r of page.intents) {
        const outcome = await this.#settle(r.id, state, 'coordinator', once);
        if (outcome !== null) counts[outcome]++;
      }
      seen += page.intents.length;
      cursor = page.next ?? undefined;
    } while (cursor !== undefined && seen < SWEEP_MAX);
    return counts;
  }

  async #approve(id: string, actor: string): Promise<boolean> {
    const won = await this.#store.intents.updateStatus(id, {
      from: 'pending',
      to: 'approved',
      audit: this.#audit.event({ actor, event: 'intent.approved', subject: id, digest: id as Digest }),
    });
    if (!won) return false;
    try {
      await this.#pipeline.onApproved(id as Digest);
    } catch (err) {
      // The pipeline records its own failures; this is a bug in it, kept out of the approver's answer.
      this.#log.error({ err, intent: id }, 'the signing pipeline threw from onApproved');
    }
    return true;
  }

  async #reject(id: string, actor: string, message: string): Promise<boolean> {
    const won = await this.#store.intents.updateStatus(id, {
      from: 'pending',
      to: 'rejected',
      code: 'INTENT_REJECTED',
      message,
      audit: this.#audit.event({ actor, event: 'intent.rejected', subject: id, digest: id as Digest }),
    });
    if (!won) return false;
    await this.#notify('intent.refused', { id, code: 'INTENT_REJECTED', message });
    return true;
  }

  async #expire(id: string): Promise<boolean> {
    const won = await this.#store.intents.updateStatus(id, {
      from: 'pending',
      to: 'expired',
      code: 'EXPIRED',
      message: 'the intent expired before it was approved',
      audit: this.#audit.event({
        actor: 'coordinator',
        event: 'intent.expired',
        subject: id,
        digest: id as Digest,
      }),
    });
    if (!won) return false;
    await this.#notify('intent.refused', { id, code: 'EXPIRED', message: 'the intent expired' });
    return true;
  }

  /**
   * An intent refused when it is posted: audited and, as every refusal,
   * told to the webhooks (`by` names the key that posted it), so an
   * attempt to pay an address the policy does not allow is seen out of band.
   */
  async #refuseIntent(actor: string, id: Digest, code: ErrorCode, message: string): Promise<never> {
    await this.#audit.append({ actor, event: 'intent.refused', subject: id, digest: id });
    await this.#notify('intent.refused', { id, code, message, by: actor });
    throw new CustosError(code, message);
  }

  async #refuseApproval(
    actor: string,
    id: string,
    digest: Digest,
    code: ErrorCode,
    message: string,
  ): Promise<never> {
    await this.#audit.append({ actor, event: 'approval.refused', subject: id, digest });
    throw new CustosError(code, message);
  }

  /**
   * What this coordinator saw signed within the longest limit window (see
   * the module header), kept by the PreviewLedger as the audit log records
   * it, so its cost is what was signed since the last decision, not the window's.
   */
  async #ledger(state: GovernanceState, now: Millis): Promise<LedgerView> {
    const since = ledgerHorizon(policiesInForce(state, now), now);
    if (since === null) return NO_LEDGER;
    return this.#preview.view(since);
  }

  // ---------------------------------------------------------------- governance

  /**
   * POST /v1/governance/proposals and POST .../proposals/:id/signatures. The
   * request must come from an admin (or, for a freeze, a watcher). The entry
   * must extend the current head; each new signature is verified against the
   * current state (GOVERNANCE_SIGNATURE_INVALID otherwise, nothing stored).
   * With the quorum reached the entry is applied (appended at head + 1;
   * CONFLICT when another entry got there first), else it stays open.
   */
  async submitGovernance(
    p: Principal,
    state: GovernanceState,
    entry: GovernanceEntry,
    signatures: readonly GovernanceSignature[],
    req: RequestInfo,
  ): Promise<ProposalOutcome> {
    const now = this.#clock();
    const mayPropose =
      p.kind === 'member' &&
      (hasRole(state, p.member, ADMIN_ROLE, now) ||
        (entry.kind === 'freeze' && hasRole(state, p.member, WATCHER_ROLE, now)));
    if (!mayPropose) {
      return this.#auth.refuseRequest(
        p.keyId,
        'NOT_AUTHORIZED',
        entry.kind === 'freeze'
          ? 'a freeze is proposed by an admin or a watcher'
          : 'governance changes are proposed by admins',
        req,
      );
    }
    const actor = p.keyId;
    const id = governanceDigest(entry);
    const refuseEntry = async (code: ErrorCode, message: string): Promise<never> => {
      await this.#audit.append({
        actor,
        event: 'governance.refused',
        subject: String(entry.seq),
        digest: id,
      });
      throw new CustosError(code, message);
    };
    if (entry.kind === 'genesis') {
      return refuseEntry('GOVERNANCE_CHAIN_BROKEN', 'a genesis is not proposed: the organization exists');
    }
    if (entry.org !== state.org) return refuseEntry('WRONG_ORG', 'the entry belongs to another organization');
    if (entry.seq !== state.seq + 1 || entry.prev !== state.head) {
      if (entry.seq <= state.seq) await this.#supersede(state.seq);
      return refuseEntry(
        'GOVERNANCE_CHAIN_BROKEN',
        `the entry must follow the head: seq ${state.seq + 1} with prev ${state.head}`,
      );
    }
    // Issue 8, item 2: a wallet is its keys and threshold, not its text. A second wallet over the
    // same scripts would spend the first one's coins under its own limits. Every signer refuses such
    // a wallet's jobs on its own; the coordinator refuses to store the proposal at all.
    if (entry.kind === 'wallet.add' && isBitcoinWallet(entry.body)) {
      const alias = findWalletAlias(entry.body, [...state.wallets.values()].filter(isBitcoinWallet));
      if (alias.ok && alias.value !== null) {
        return refuseEntry(
          'WALLET_ALIAS',
          `wallet ${entry.body.id} has the same keys and threshold as wallet ${alias.value.id}: ` +
            "its scripts are that wallet's scripts",
        );
      }
    }
    const warnings = proposalWarnings(state, entry, now);

    // Each new signature on its own against the current state: a bad one refuses the whole submission.
    const alone = applyGovernance(state, { entry, signatures: [...signatures] }, now);
    if (!alone.ok && alone.code !== 'QUORUM_NOT_MET') return refuseEntry(alone.code, alone.message);

    let proposal = await this.#store.proposals.get(id);
    let created = false;
    if (proposal === null) {
      created = await this.#store.proposals.create(entry, signatures);
      proposal = await this.#store.proposals.get(id);
      if (proposal === null) throw new CustosError('INTERNAL', 'a stored proposal vanished');
    }
    if (proposal.status !== 'open') {
      if (proposal.status === 'applied') return { status: 'applied', id, seq: entry.seq, warnings };
      return refuseEntry('CONFLICT', 'the proposal was superseded by another entry at its seq');
    }
    if (!created) proposal = await this.#store.proposals.addSignatures(id, signatures);

    const all: SignedGovernanceEntry = { entry, signatures: [...proposal.signatures] };
    const together = applyGovernance(state, all, now);
    if (!together.ok) {
      if (together.quorum === undefined) return refuseEntry(together.code, together.message);
      await this.#audit.append({
        actor,
        event: created ? 'governance.proposed' : 'governance.signed',
        subject: String(entry.seq),
        digest: id,
        at: now,
      });
      const { needed: need, got: have } = together.quorum;
      await this.#notify('governance.proposed', {
        ...governanceNotice(state, entry, id, actor, now, warnings),
        signatures: { have, need },
      });
      return { status: 'open', id, seq: entry.seq, have, need, warnings };
    }

    try {
      await this.#store.governance.append(all);
    } catch (err) {
      if (err instanceof CustosError && err.code === 'CONFLICT') {
        await this.#store.proposals.setStatus(id, 'open', 'superseded');
        return refuseEntry('CONFLICT', 'another governance entry was applied at this seq first');
      }
      throw err;
    }
    await this.#store.proposals.setStatus(id, 'open', 'applied');
    await this.#supersede(entry.seq);
    await this.#audit.append({
      actor,
      event: 'governance.applied',
      subject: String(entry.seq),
      digest: id,
      at: now,
    });
    await this.#notify('governance.applied', governanceNotice(state, entry, id, actor, now, warnings));
    if (entry.kind === 'freeze') {
      await this.#audit.append({ actor, event: 'frozen', subject: String(entry.seq), digest: id, at: now });
      await this.#notify('frozen', { seq: entry.seq, reason: entry.body.reason, by: actor });
      // Every freeze is a critical alert too, so a receiver that takes only `alert` hears it: a
      // watcher's reason names the transaction it could not explain (issue 12).
      await this.#audit.append({ actor, event: 'alert', subject: String(entry.seq), digest: id, at: now });
      await this.#notify('alert', {
        subject: String(entry.seq),
        signer: null,
        code: 'FROZEN',
        severity: 'critical',
        message: entry.body.reason,
        by: actor,
      });
    }
    return { status: 'applied', id, seq: entry.seq, warnings };
  }

  /** POST /v1/governance/proposals/:id/signatures: the stored proposal's entry with more signatures. */
  async cosign(
    p: Principal,
    state: GovernanceState,
    id: string,
    signatures: readonly GovernanceSignature[],
    req: RequestInfo,
  ): Promise<ProposalOutcome> {
    const proposal = await this.#store.proposals.get(id);
    if (proposal === null) throw new CustosError('NOT_FOUND', 'no such proposal', { proposal: id });
    return this.submitGovernance(p, state, proposal.entry, signatures, req);
  }

  /** GET /v1/governance/proposals. */
  async listProposals(state: GovernanceState, status?: ProposalStatus): Promise<ProposalView[]> {
    const now = this.#clock();
    const list = await this.#store.proposals.list(status === undefined ? {} : { status });
    return list.map((r) => proposalView(r, proposalWarnings(state, r.entry, now)));
  }

  /** Open proposals at or below an applied seq can never apply: mark them superseded. */
  async #supersede(uptoSeq: number): Promise<void> {
    const open = await this.#store.proposals.list({ status: 'open' });
    for (const r of open) {
      if (r.seq <= uptoSeq) await this.#store.proposals.setStatus(r.id, 'open', 'superseded');
    }
  }

  async #notify(event: NotificationEvent, data: Record<string, unknown>): Promise<void> {
    try {
      await this.#notifier.emit(event, data);
    } catch (err) {
      // Notifications are availability plumbing: a failure to queue one never undoes a decision.
      this.#log.error({ err, event }, 'could not queue a notification');
    }
  }
}

/** Why an approval cannot be added to an intent in this status, or null while it is pending. */
function statusRefusal(r: IntentRecord): { code: ErrorCode; message: string } | null {
  switch (r.status) {
    case 'pending':
      return null;
    case 'rejected':
      return { code: 'INTENT_REJECTED', message: 'the intent was rejected by an approver' };
    case 'expired':
      return { code: 'EXPIRED', message: 'the intent has expired' };
    case 'refused':
      return { code: 'CONFLICT', message: `the intent was refused (${r.statusCode ?? 'no code'})` };
    default:
      return { code: 'CONFLICT', message: `the intent is already ${r.status}` };
  }
}

/** What one signer did with an intent's job, as the intent views show it. */
function signerOutcome(j: JobRecord): SignerOutcome {
  return {
    signer: j.signer,
    job: j.id,
    outcome: j.result === null ? (j.status === 'queued' ? 'queued' : 'delivered') : j.result.receipt.outcome,
    code: j.result?.receipt.code ?? null,
    message: j.result?.message ?? null,
    alert: j.result?.alert?.severity ?? null,
  };
}

function summary(
  r: IntentRecord,
  confirmations: number | null,
  signers: readonly SignerOutcome[],
): IntentSummary {
  return {
    id: r.id,
    status: r.status,
    statusCode: r.statusCode,
    statusMessage: r.statusMessage,
    intent: r.signed,
    txid: r.txid,
    confirmations,
    signers,
    receivedAt: r.receivedAt,
    updatedAt: r.updatedAt,
  };
}

function proposalView(r: ProposalRecord, warnings: readonly Warning[]): ProposalView {
  return {
    id: r.id,
    seq: r.seq,
    kind: r.kind,
    entry: r.entry,
    signatures: r.signatures,
    status: r.status,
    warnings,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
}

/**
 * Warnings a proposal carries for the people who sign it (THREATS 21): an
 * address-book entry that looks like a known one (same first and last
 * characters, per the look-alike settings of every policy in force).
 */
/**
 * What a governance webhook says of an entry (docs/api.md "Webhooks"): the
 * change in full (governance bodies hold public keys, addresses and rules,
 * nothing secret), whether it widens what can be signed, and when it binds:
 * a widening change after the delay in force, anything else at once. Every
 * admin's own webhook receives it, a channel a hostile console does not
 * control, so a change slipped in through one is seen during its delay.
 */
function governanceNotice(
  state: GovernanceState,
  entry: GovernanceEntry,
  id: string,
  actor: string,
  now: Millis,
  warnings: readonly Warning[],
): Record<string, unknown> {
  const row = entry.kind === 'genesis' ? undefined : GOVERNANCE_EFFECTS[entry.kind];
  const waits = row !== undefined && (row.effect === 'widens' || row.effect === 'both');
  const delayMs = waits ? effectiveDelay(state, now) : 0;
  return {
    id,
    seq: entry.seq,
    kind: entry.kind,
    by: actor,
    effect: row?.effect ?? null,
    how: row?.how ?? null,
    delayMs,
    bindsAt: now + delayMs,
    body: entry.body,
    warnings: warnings.map((w) => ({ code: w.code, message: w.message })),
  };
}

export function proposalWarnings(state: GovernanceState, entry: GovernanceEntry, now: Millis): Warning[] {
  if (entry.kind !== 'address.add') return [];
  const a = entry.body;
  const lookalikes = lookalikesInForce(state, a.chain, a.address, policiesInForce(state, now), now);
  if (lookalikes.entries.length === 0) return [];
  return [{ code: 'LOOKALIKE_ADDRESS', message: lookalikeMessage(a.address, lookalikes.entries) }];
}
