/**
 * The seams inside the coordinator, so its parts can be built and tested
 * apart: the HTTP edge (app.ts and friends) owns requests, authentication,
 * intents, approvals and governance; the signing pipeline (pipeline.ts,
 * chain.ts) owns building transactions, the signer feed, results, broadcast
 * and confirmations; the notifier (webhooks.ts) owns the outbox.
 *
 * Nothing here is trusted by a signer: these are availability plumbing.
 */
import type {
  Digest,
  GovernanceState,
  Millis,
  SignedBump,
  SignedCheckpoint,
  SignerJob,
  SignerResult,
} from '@custos/core';
import type { AuditEvent, Store } from './db/repository.js';
import type { BumpView } from './pipeline/bump.js';

/** The verified governance state the coordinator works with (refreshed from the store when the head moves). */
export interface GovernanceView {
  current(): Promise<GovernanceState>;
}

/** Appends to the hash-chained audit log (docs/api.md lists the events). */
export interface AuditLog {
  append(e: { actor: string; event: string; subject: string; digest: Digest; at?: Millis }): Promise<void>;
  /** The stored form of an event, for Store operations that write a row and its entry in one transaction. */
  event(e: { actor: string; event: string; subject: string; digest: Digest; at?: Millis }): AuditEvent;
}

/** Webhook events (docs/api.md "Webhooks"), delivered from the outbox with retries. */
export type NotificationEvent =
  | 'intent.created'
  | 'approval.needed'
  | 'intent.signed'
  | 'transaction.broadcast'
  | 'intent.refused'
  | 'alert'
  | 'frozen'
  /** A governance entry was proposed or co-signed and waits for more signatures (out of band: issue 10). */
  | 'governance.proposed'
  /** A governance entry was applied; a loosening one binds after the delay the event names. */
  | 'governance.applied';

export interface Notifier {
  emit(event: NotificationEvent, data: Record<string, unknown>): Promise<void>;
}

export interface WalletSummary {
  readonly id: string;
  readonly chain: string;
  /** Confirmed balance in base units. */
  readonly balance: string;
  readonly utxos: number;
  readonly receiveAddress: string;
  /** Bitcoin: the receive index of `receiveAddress` (the next unused), e.g. for an internal transfer's toWallet. */
  readonly receiveIndex?: number;
  /** EVM Safe: each registered asset's balance in base units (`balance` above is the native coin's). */
  readonly balances?: readonly { readonly asset: string; readonly balance: string }[];
}

export interface SignerFeed {
  readonly jobs: readonly SignerJob[];
  /** An audit head the signer is asked to countersign, or null. */
  readonly checkpoint: { readonly seq: number; readonly head: Digest } | null;
}

/** Everything after "the policy allows": transaction, signers, broadcast, confirmations. */
export interface SigningPipeline {
  /** The intent's status just became `approved`: build the PSBT and queue one job per signer. Never throws for the caller; failures are recorded on the intent and audited. */
  onApproved(intentId: Digest): Promise<void>;
  /** Jobs for one signer, long-polling up to `waitMs` when there are none. */
  jobsFor(signer: string, waitMs: number, signal: AbortSignal): Promise<SignerFeed>;
  /** A result from `signer` (the request was authenticated as that signer). The receipt signature is checked here. */
  acceptResult(signer: string, result: SignerResult): Promise<void>;
  /** A checkpoint countersigned by `signer`. */
  acceptCheckpoint(signer: string, checkpoint: SignedCheckpoint): Promise<void>;
  wallets(): Promise<readonly WalletSummary[]>;
  /** Whether the chain node answers (for /v1/ready). */
  chainStatus(): Promise<{ readonly ok: boolean; readonly height: number | null; readonly message?: string }>;
  /**
   * A fee bump (issue 13) of a broadcast, unconfirmed Bitcoin withdrawal, authenticated as its
   * requester's device: builds the replacement and queues it for the signers that signed the
   * original. Refusals are audited `bump.refused` and thrown with their code. Optional: a pipeline
   * without it answers UNAVAILABLE.
   */
  bump?(intent: string, signed: SignedBump, actor: string): Promise<BumpView>;
  /** Background loops: chain sync, confirmations, job redelivery. Bounded; stop() waits for them. */
  start(): void;
  stop(): Promise<void>;
}

export interface CoordinatorParts {
  readonly store: Store;
  readonly governance: GovernanceView;
  readonly audit: AuditLog;
  readonly notifier: Notifier;
  readonly clock: () => Millis;
}
