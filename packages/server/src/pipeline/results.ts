/**
 * Flow steps 4 to 5 on the coordinator's side: signers' results in, the
 * combined transaction out.
 *
 * A result is believed only as far as its receipt's signature goes: it must
 * verify with the identity key governance lists for the signer that sent it
 * (anything else is BAD_SIGNATURE and an `alert`, and changes nothing). A
 * refusal carrying an `alert` (the signer caught tampering, THREATS 6-7, 9-10)
 * is audited as an `alert` and sent as an `alert` webhook, so a rewrite in the
 * relay (the DMM attack) ends as evidence, not as a silent failed job. The
 * coordinator adds its own alert when a signer's receipt names another intent
 * than the one queued: the job was changed on its way.
 *
 * Quorum rule: a wallet needs m signatures (its descriptor's threshold) over
 * one and the same transaction. The intent is refused as soon as fewer than m
 * signers can still sign it, i.e. signed + unanswered < m; with the usual two
 * online signers of a 2-of-3 wallet, one refusal refuses the intent. A refusal
 * with UNAVAILABLE (the signer could not fetch governance) is not a decision:
 * the job is queued again, up to maxJobAttempts deliveries, before it counts.
 *
 * Broadcast: the first m usable signatures (a signed PSBT of the same txid
 * with a signature on every input) are combined and finalized, which checks
 * every signature (finalizeAnalyzed). Each signed PSBT is read strictly once
 * (analyzePsbt, remembered by its bytes), and that analysis is what is
 * combined and finalized: no PSBT is decoded again on the way to the
 * network. signing -> signed is a compare-and-set, so
 * one caller broadcasts. A node that cannot be reached leaves the intent
 * `signed` and the loop sends again; a node that rejects the transaction
 * refuses the intent with CHAIN_REJECTED; "already in the chain" (RPC -27)
 * counts as sent, so sending again after a crash is harmless.
 *
 * Idempotence: the job table keeps the first result of a job; the same
 * result again is accepted and changes nothing. A result for a job withdrawn
 * (its intent refused, or signed by others) is audited once per process, as a
 * signer's decision always is, and changes nothing else.
 */
import {
  analyzePsbt,
  finalizeAnalyzed,
  networkOfChain,
  type PsbtAnalysis,
  parseDescriptor,
  psbtFromBase64,
  type WalletDescriptor,
} from '@custos/bitcoin';
import {
  CustosError,
  type Digest,
  type ErrorCode,
  fromHex,
  type Receipt,
  receiptDigest,
  type SignerResult,
  verifyEd25519,
} from '@custos/core';
import type { IntentRecord, JobRecord } from '../db/repository.js';
import { queueJobs } from './build.js';
import { advanceBump, bumpOfJob } from './bump.js';
import { auditEvent, auditRecord, type Context, jobId, notify, refuseIntent, txDigest } from './context.js';
import { safeWalletOf } from './evm.js';
import { errorFields, type KeyedLock } from './support.js';

/** The audit event of a signer's decision on a job: a signature or a refusal, of an intent or of a fee bump. */
function decisionEvent(job: JobRecord, r: Receipt): string {
  const signed = r.outcome === 'signed';
  if (job.job.bump !== undefined) return signed ? 'bump.signed' : 'bump.refused';
  return signed ? 'signing.signed' : 'signing.refused';
}

/** Bitcoin Core's RPC_VERIFY_ALREADY_IN_CHAIN: the transaction is mined already. */
const RPC_VERIFY_ALREADY_IN_CHAIN = -27;
/** Receipt digests of late results already audited (bounded). */
const MAX_LATE = 1000;

interface Built {
  readonly descriptor: WalletDescriptor;
  readonly txid: string;
}

export class Results {
  readonly #ctx: Context;
  readonly #lock: KeyedLock;
  readonly #late = new Set<string>();

  constructor(ctx: Context, lock: KeyedLock) {
    this.#ctx = ctx;
    this.#lock = lock;
  }

  async accept(signer: string, result: SignerResult): Promise<void> {
    const ctx = this.#ctx;
    const r = result.receipt;
    const digest = receiptDigest(r);
    const job = await ctx.store.jobs.get(r.job);
    const subject = job?.intent ?? r.intent ?? `signer:${signer}`;
    const state = await ctx.governance.current();
    const key = state.signers.get(signer)?.publicKey;
    if (r.signer !== signer || key === undefined || !verifyEd25519(key, fromHex(digest), result.signature)) {
      await this.#alert({
        actor: 'coordinator',
        signer,
        subject,
        digest,
        code: 'BAD_SIGNATURE',
        severity: 'critical',
        message: `a result sent by signer ${signer} carries a receipt not signed by its identity key`,
      });
      throw new CustosError('BAD_SIGNATURE', "the receipt is not signed by this signer's identity key", {
        signer,
      });
    }
    if (job === null) throw new CustosError('NOT_FOUND', 'no such job', { job: r.job });
    if (job.signer !== signer) {
      throw new CustosError('NOT_AUTHORIZED', 'the job belongs to another signer', { job: job.id });
    }
    // The decision's entry commits with the result: whoever then combines the intent (this
    // process or another coordinator) appends `intent.signed` after it.
    const decision = auditRecord(ctx, {
      actor: `signer:${signer}`,
      event: decisionEvent(job, r),
      subject: job.intent,
      digest,
    });
    let fresh: boolean;
    try {
      fresh = await ctx.store.jobs.complete(job.id, result, decision);
    } catch (err) {
      if (!(err instanceof CustosError) || err.code !== 'CONFLICT') throw err;
      const current = await ctx.store.jobs.get(job.id);
      if (current === null || current.result !== null) throw err;
      // The job was withdrawn before the signer answered: its decision is still evidence.
      if (this.#late.has(digest)) return;
      this.#late.add(digest);
      if (this.#late.size > MAX_LATE) this.#late.delete(this.#late.values().next().value as string);
      await ctx.audit.append(decision);
      await this.#record(job, signer, result, digest);
      return;
    }
    if (fresh) await this.#record(job, signer, result, digest);
    const bump = bumpOfJob(job.job);
    if (bump !== null) {
      // A fee bump's answer (issue 13) moves the bump on, not the intent.
      try {
        await this.#lock.run(bump, () => advanceBump(ctx, bump));
      } catch (err) {
        ctx.log.warn(
          { ...errorFields(err), intent: job.intent, bump },
          'bump not moved on yet; the loop retries',
        );
      }
      return;
    }
    try {
      await this.advance(job.intent);
    } catch (err) {
      // The result is stored: moving the intent on (a broadcast to a node that is away) is the
      // coordinator's to retry, not the signer's; the loop does it.
      ctx.log.warn({ ...errorFields(err), intent: job.intent }, 'intent not moved on yet; the loop retries');
    }
  }

  /** Looks at an intent's jobs and moves it on: requeue, refuse, or combine and broadcast. */
  advance(id: Digest): Promise<void> {
    return this.#lock.run(id, () => this.#advance(id));
  }

  async #advance(id: Digest): Promise<void> {
    const ctx = this.#ctx;
    const rec = await ctx.store.intents.get(id);
    if (rec === null || (rec.status !== 'signing' && rec.status !== 'signed')) return;
    const safe = await safeWalletOf(ctx, rec);
    if (safe !== null) return ctx.evm.advance(ctx, rec, safe);
    const built = await this.#built(rec);
    if (built === null) {
      await refuseIntent(ctx, id, ['signing', 'signed'], 'UNKNOWN_WALLET', 'the wallet left governance');
      return;
    }
    const jobs = await ctx.store.jobs.of(id);
    if (jobs.length === 0) {
      if (rec.status === 'signing') await queueJobs(ctx, rec, await ctx.governance.current(), built.txid);
      return;
    }
    const latest = new Map<string, { job: JobRecord; attempt: number }>();
    for (const job of jobs) {
      const attempt = attemptOf(job.id);
      const seen = latest.get(job.signer);
      if (seen === undefined || attempt > seen.attempt) latest.set(job.signer, { job, attempt });
    }
    const usable = new Map<string, PsbtAnalysis>();
    const refusals: { signer: string; code: ErrorCode; message?: string }[] = [];
    let pending = 0;
    for (const [signer, { job, attempt }] of latest) {
      if (job.status !== 'done') {
        pending++;
        continue;
      }
      const result = job.result;
      if (result === null) continue; // withdrawn
      if (result.receipt.outcome === 'signed') {
        const sig = usableSignature(result, built);
        if (typeof sig === 'string') refusals.push({ signer, code: 'BAD_SIGNATURE' });
        else usable.set(signer, sig);
        continue;
      }
      const code = result.receipt.code ?? 'INTERNAL';
      if (code === 'UNAVAILABLE' && attempt < ctx.opts.maxJobAttempts && rec.status === 'signing') {
        await this.#requeue(job, attempt + 1, built.txid);
        pending++;
        continue;
      }
      refusals.push({ signer, code, ...(result.message === undefined ? {} : { message: result.message }) });
    }
    const m = built.descriptor.m;
    if (usable.size >= m) {
      await this.#broadcast(rec, usable, built);
      return;
    }
    if (rec.status === 'signing' && usable.size + pending < m) {
      const first = refusals[0];
      await refuseIntent(
        ctx,
        id,
        'signing',
        first?.code ?? 'QUORUM_NOT_MET',
        first === undefined
          ? `fewer than ${m} signers can sign`
          : `signer ${first.signer} refused (${first.code}${first.message === undefined ? '' : `: ${first.message}`}); fewer than ${m} signers can still sign`,
      );
    }
  }

  async #broadcast(
    rec: IntentRecord,
    usable: ReadonlyMap<string, PsbtAnalysis>,
    built: Built,
  ): Promise<void> {
    const ctx = this.#ctx;
    const id = rec.id;
    if (rec.status === 'signing') {
      const signed = await ctx.store.intents.updateStatus(id, {
        from: 'signing',
        to: 'signed',
        audit: auditRecord(ctx, { event: 'intent.signed', subject: id, digest: txDigest(built.txid) }),
      });
      if (!signed) return;
      // Enough signatures: the other signers' jobs are not needed (and would use their limits).
      await ctx.store.jobs.cancel(id, null);
    }
    const parts = [...usable]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .slice(0, built.descriptor.m)
      .map(([, psbt]) => psbt);
    const final = finalizeAnalyzed(parts, built.descriptor);
    if (!final.ok || final.value.txid !== built.txid) {
      const code = final.ok ? 'INTERNAL' : final.code;
      const message = final.ok ? 'the finalized transaction is not the one built' : final.message;
      await this.#alert({
        actor: 'coordinator',
        signer: null,
        subject: id,
        digest: txDigest(built.txid),
        code,
        severity: 'critical',
        message: `signatures do not finalize: ${message}`,
      });
      await refuseIntent(ctx, id, 'signed', code, `signatures do not finalize: ${message}`);
      return;
    }
    const { hex, txid } = final.value;
    try {
      await ctx.rpc.sendRawTransaction(hex);
    } catch (err) {
      const rejected = err instanceof CustosError && err.code === 'CHAIN_REJECTED';
      if (!rejected) throw err; // UNAVAILABLE: stays `signed`, sent again by the loop
      if (err.details.rpcCode !== RPC_VERIFY_ALREADY_IN_CHAIN) {
        await refuseIntent(ctx, id, 'signed', 'CHAIN_REJECTED', err.message);
        return;
      }
    }
    await ctx.store.transactions.record({ intent: id, txid, rawHex: hex, broadcastAt: ctx.clock() });
    const sent = await ctx.store.intents.updateStatus(id, {
      from: 'signed',
      to: 'broadcast',
      txid,
      audit: auditRecord(ctx, { event: 'transaction.broadcast', subject: id, digest: txDigest(txid) }),
    });
    if (!sent) return;
    ctx.log.info({ intent: id, txid }, 'transaction broadcast');
    const intent = rec.signed.intent;
    await notify(ctx, 'intent.signed', { intent: id, txid });
    await notify(ctx, 'transaction.broadcast', {
      intent: id,
      txid,
      wallet: intent.wallet,
      chain: intent.chain,
      asset: intent.asset,
      amount: intent.amount,
      to: intent.to,
    });
  }

  async #requeue(job: JobRecord, attempt: number, txid: string): Promise<void> {
    const ctx = this.#ctx;
    const next = { ...job.job, id: jobId(job.intent, job.signer, attempt) };
    const queued = auditRecord(ctx, { event: 'signing.queued', subject: job.intent, digest: txDigest(txid) });
    if ((await ctx.store.jobs.enqueue([next], queued)) > 0) {
      ctx.log.info({ intent: job.intent, signer: job.signer, attempt }, 'job queued again after UNAVAILABLE');
    }
    ctx.wake(job.signer);
  }

  /**
   * Audits what follows a signer's verified decision (its entry is written
   * already): the governance head it decided on, and its alert if it raised one.
   */
  async #record(job: JobRecord, signer: string, result: SignerResult, digest: Digest): Promise<void> {
    const ctx = this.#ctx;
    const r = result.receipt;
    const bump = job.job.bump !== undefined;
    await this.#governanceHead(job, signer, r, digest);
    if (result.alert !== undefined) {
      await this.#alert({
        actor: `signer:${signer}`,
        signer,
        subject: job.intent,
        digest,
        code: result.alert.code,
        severity: result.alert.severity,
        message: result.message ?? `signer ${signer} refused with ${r.code ?? result.alert.code}`,
      });
      return;
    }
    if (r.intent !== null && r.intent !== job.intent) {
      await this.#alert({
        actor: 'coordinator',
        signer,
        subject: job.intent,
        digest,
        code: 'INTENT_SIGNATURE_INVALID',
        severity: 'critical',
        message: `signer ${signer} was handed another intent than the one queued: the job was changed in transit`,
      });
      return;
    }
    // A bump's signature is judged against its replacement when the bump is advanced (pipeline/bump.ts).
    if (r.outcome === 'signed' && !bump) {
      const rec = await ctx.store.intents.get(job.intent);
      const safe = rec === null ? null : await safeWalletOf(ctx, rec);
      const row = safe === null ? null : await ctx.store.evm.get(job.intent);
      const built = rec === null || safe !== null ? null : await this.#built(rec);
      const sig =
        safe !== null
          ? row === null
            ? 'the intent has no Safe proposal'
            : ctx.evm.usableSignature(await ctx.governance.current(), safe, row, signer, result)
          : built === null
            ? 'the intent has no built transaction'
            : usableSignature(result, built);
      if (typeof sig === 'string') {
        await this.#alert({
          actor: 'coordinator',
          signer,
          subject: job.intent,
          digest,
          code: 'BAD_SIGNATURE',
          severity: 'warning',
          message: `signer ${signer} signed, but not the transaction built: ${sig}`,
        });
      }
    }
  }

  /**
   * Issue 8 item 7: the governance head the signer decided on (its seq and
   * digest, from the signed receipt) goes into the audit log as
   * `signing.governance`, so a fork shows there. When that digest is not the
   * coordinator's own entry at that seq (or the coordinator has none), the
   * signer and the coordinator follow different chains: a critical alert.
   */
  async #governanceHead(job: JobRecord, signer: string, r: Receipt, digest: Digest): Promise<void> {
    const ctx = this.#ctx;
    await auditEvent(ctx, {
      actor: `signer:${signer}`,
      event: 'signing.governance',
      subject: `${job.intent} governance ${r.governanceSeq}`,
      digest: r.governanceHead,
    });
    const [ours] = await ctx.store.governance.range(r.governanceSeq - 1, r.governanceSeq, 1);
    const mine = ours?.seq === r.governanceSeq ? ours.digest : null;
    if (mine === r.governanceHead) return;
    await this.#alert({
      actor: 'coordinator',
      signer,
      subject: job.intent,
      digest,
      code: 'GOVERNANCE_HEAD_MISMATCH',
      severity: 'critical',
      message:
        mine === null
          ? `signer ${signer} decided on governance entry ${r.governanceSeq} (${r.governanceHead}), which this coordinator does not hold`
          : `signer ${signer} decided on governance entry ${r.governanceSeq} as ${r.governanceHead}, this coordinator holds ${mine}: the chains differ`,
    });
  }

  async #alert(a: {
    actor: string;
    signer: string | null;
    subject: string;
    digest: Digest;
    code: ErrorCode;
    severity: 'warning' | 'critical';
    message: string;
  }): Promise<void> {
    const ctx = this.#ctx;
    ctx.log.warn({ signer: a.signer, subject: a.subject, code: a.code, severity: a.severity }, a.message);
    await auditEvent(ctx, { actor: a.actor, event: 'alert', subject: a.subject, digest: a.digest });
    await notify(ctx, 'alert', {
      subject: a.subject,
      signer: a.signer,
      code: a.code,
      severity: a.severity,
      message: a.message,
    });
  }

  /** The wallet descriptor and unsigned txid of an intent's stored PSBT, or null. */
  async #built(rec: IntentRecord): Promise<Built | null> {
    if (rec.psbt === null) return null;
    const state = await this.#ctx.governance.current();
    const wallet = state.wallets.get(rec.signed.intent.wallet);
    const network = wallet === undefined ? undefined : networkOfChain(wallet.chain);
    if (wallet === undefined || network === undefined || wallet.kind !== 'bitcoin-wsh-sortedmulti')
      return null;
    const descriptor = parseDescriptor(wallet.descriptor, network);
    const bytes = psbtFromBase64(rec.psbt);
    if (!descriptor.ok || !bytes.ok) return null;
    const analyzed = analyzePsbt(bytes.value, descriptor.value);
    if (!analyzed.ok) {
      this.#ctx.log.error({ intent: rec.id, code: analyzed.code }, 'the stored PSBT does not analyze');
      return null;
    }
    return { descriptor: descriptor.value, txid: analyzed.value.txid };
  }
}

/** The signed PSBT's analysis if it signs the built transaction on every input; else why not. */
function usableSignature(result: SignerResult, built: Built): PsbtAnalysis | string {
  if (result.receipt.txid !== built.txid) return 'the receipt names another transaction';
  if (result.psbt === undefined) return 'the result carries no PSBT';
  const bytes = psbtFromBase64(result.psbt);
  if (!bytes.ok) return `the PSBT does not decode: ${bytes.message}`;
  const analyzed = analyzePsbt(bytes.value, built.descriptor);
  if (!analyzed.ok) return `the PSBT does not analyze: ${analyzed.message}`;
  if (analyzed.value.txid !== built.txid) return 'the PSBT is another transaction';
  if (analyzed.value.inputs.some((i) => i.signatures === 0)) return 'an input carries no signature';
  return analyzed.value;
}

function attemptOf(id: string): number {
  const m = /-([1-9][0-9]{0,3})$/.exec(id);
  return m === null ? 1 : Number(m[1]);
}
