/**
 * What the pipeline's parts share: the coordinator's parts, the chain
 * watcher, resolved options, and the few steps every part takes the same
 * way (audit an event, notify, refuse an intent, job ids).
 *
 * Audit and notification are part of every decision, but a notification that
 * cannot be queued must not undo a decision already stored: notify() logs
 * and carries on (the outbox is best effort by design, docs/api.md
 * "Webhooks"). An audit append that fails is thrown to the caller, which
 * retries the step.
 */
import type { BitcoinRpc } from '@custos/bitcoin';
import { type Digest, type ErrorCode, type Millis, sha256, toHex, utf8 } from '@custos/core';
import type { ChainWatcher } from '../chain.js';
import type { AuditLog, GovernanceView, NotificationEvent, Notifier } from '../contracts.js';
import type { AuditEvent, IntentStatus, Store } from '../db/repository.js';
import type { EvmSafes } from './evm.js';
import { errorFields, type Logger } from './support.js';

/** The coordinator's own audit actor. */
export const ACTOR = 'coordinator';

export interface ResolvedOptions {
  readonly fallbackFeeRate: bigint;
  /** null: 1 on regtest, 6 elsewhere (decided once the node's network is known). */
  readonly confirmationsTarget: number | null;
  readonly pollMs: number;
  readonly repairMs: number;
  readonly checkpointIntervalMs: number;
  readonly rebroadcastAfterMs: number;
  /** Deliveries of one signer's job refused UNAVAILABLE before that refusal counts. */
  readonly maxJobAttempts: number;
}

export interface Context {
  readonly store: Store;
  readonly governance: GovernanceView;
  readonly audit: AuditLog;
  readonly notifier: Notifier;
  readonly clock: () => Millis;
  readonly rpc: BitcoinRpc;
  readonly chain: ChainWatcher;
  /** Safe wallets (pipeline/evm.ts): their nodes, executors, proposals. */
  readonly evm: EvmSafes;
  readonly log: Logger;
  readonly opts: ResolvedOptions;
  /** Wakes the long polls of one signer (jobs were queued for it in this process). */
  wake(signer: string): void;
}

export async function auditEvent(
  ctx: Context,
  e: { actor?: string; event: string; subject: string; digest: Digest },
): Promise<void> {
  await ctx.audit.append({
    actor: e.actor ?? ACTOR,
    event: e.event,
    subject: e.subject,
    digest: e.digest,
    at: ctx.clock(),
  });
}

/** The stored form of an event, for a status change that commits with its entry (intents.updateStatus). */
export function auditRecord(
  ctx: Context,
  e: { actor?: string; event: string; subject: string; digest: Digest },
): AuditEvent {
  return ctx.audit.event({
    actor: e.actor ?? ACTOR,
    event: e.event,
    subject: e.subject,
    digest: e.digest,
    at: ctx.clock(),
  });
}

export async function notify(
  ctx: Context,
  event: NotificationEvent,
  data: Record<string, unknown>,
): Promise<void> {
  try {
    await ctx.notifier.emit(event, data);
  } catch (err) {
    ctx.log.warn({ ...errorFields(err), event }, 'notification not queued');
  }
}

/** A txid is 32 bytes of hex: the digest of the transaction for the audit log. */
export function txDigest(txid: string): Digest {
  return txid as Digest;
}

/**
 * Moves an intent to `refused` (or `expired`) with its code, once: the
 * compare-and-set decides which caller audits and notifies. Its unanswered
 * jobs are withdrawn and its coins released. Returns whether this call did it.
 */
export async function refuseIntent(
  ctx: Context,
  id: Digest,
  from: IntentStatus | readonly IntentStatus[],
  code: ErrorCode,
  message: string,
  to: 'refused' | 'expired' = 'refused',
): Promise<boolean> {
  const moved = await ctx.store.intents.updateStatus(id, {
    from,
    to,
    code,
    message,
    audit: auditRecord(ctx, { event: 'intent.refused', subject: id, digest: id }),
  });
  if (!moved) return false;
  ctx.log.info({ intent: id, code, status: to }, message);
  await ctx.store.jobs.cancel(id, code);
  try {
    await ctx.chain.release(new Set([id]));
  } catch (err) {
    // The loop's reservation sweep frees them later.
    ctx.log.warn({ ...errorFields(err), intent: id }, 'coins of a refused intent not released yet');
  }
  await notify(ctx, 'intent.refused', { intent: id, status: to, code, message });
  return true;
}

/**
 * `${intent[0..16]}-${signer}-${attempt}` as docs/api.md spells job ids; a
 * signer id too long for the 64-character id is replaced by a hash of it.
 */
export function jobId(intent: string, signer: string, attempt: number): string {
  const plain = `${intent.slice(0, 16)}-${signer}-${attempt}`;
  if (plain.length <= 64) return plain;
  return `${intent.slice(0, 16)}-${toHex(sha256(utf8(signer))).slice(0, 24)}-${attempt}`;
}
