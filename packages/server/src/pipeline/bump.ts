/**
 * Fee bumps on the coordinator's side (issue 13, BIP 125): a signed bump in,
 * a replacement built, signed by the signers that signed the original,
 * broadcast, and followed on chain beside the original until one of them
 * confirms.
 *
 * What the coordinator decides and what it does not: it refuses early what
 * no signer would sign (the bump's signature and requester, an intent not
 * broadcast or already confirmed, a fee over the caps, a fee that does not
 * beat the original's) with the code a signer would give, audited
 * `bump.refused`, nothing queued. What it builds is the original's
 * transaction with the same inputs (their reservations stay as they are),
 * the same outputs in the same order, and the higher fee taken from the
 * change (bitcoin buildReplacement). Every signer checks that again from its
 * own ledger: the replacement must spend an input of every transaction it
 * signed for the intent, so the chain confirms at most one of them.
 *
 * Following: once a replacement is broadcast, the intent's transaction row
 * points at it (a node drops the original from its mempool when it takes the
 * replacement) and the bump keeps the transaction it replaced. Confirmations
 * look for every transaction of the intent (confirm.ts): whichever is mined
 * becomes the intent's transaction, its bump `mined`, the other bumps
 * `replaced`, audited `transaction.replaced`.
 */
import {
  analyzePsbt,
  buildReplacement,
  finalizeAnalyzed,
  networkOfChain,
  type PsbtAnalysis,
  parseDescriptor,
  psbtFromBase64,
  psbtToBase64,
  type WalletDescriptor,
} from '@custos/bitcoin';
import {
  bumpDigest,
  CustosError,
  checkBump,
  type Digest,
  type ErrorCode,
  feeCapsFor,
  type GovernanceState,
  policiesInForce,
  type SignedBump,
  type SignerJob,
  signerActive,
} from '@custos/core';
import type { BumpRecord, BumpStatus } from '../db/bump-store.js';
import type { IntentRecord, JobRecord, TransactionRecord } from '../db/repository.js';
import { approvalsOf } from './build.js';
import { auditEvent, auditRecord, type Context, jobId, notify, txDigest } from './context.js';

/** Bitcoin Core's RPC_VERIFY_ALREADY_IN_CHAIN. */
const RPC_VERIFY_ALREADY_IN_CHAIN = -27;

/** A bump as GET /v1/intents/:id shows it. */
export interface BumpView {
  readonly id: Digest;
  readonly bump: SignedBump;
  readonly status: BumpStatus;
  readonly code: string | null;
  readonly message: string | null;
  /** The replacement's txid. */
  readonly txid: string;
  /** Its fee in satoshi, decimal. */
  readonly fee: string;
  /** The transaction it replaced when broadcast (the original or an earlier replacement). */
  readonly replaces: string | null;
  readonly signers: readonly {
    readonly signer: string;
    readonly outcome: 'queued' | 'delivered' | 'signed' | 'refused';
    readonly code: string | null;
    readonly message: string | null;
  }[];
  readonly createdAt: number;
  readonly updatedAt: number;
}

export function bumpView(b: BumpRecord, jobs: readonly JobRecord[]): BumpView {
  return {
    id: b.id,
    bump: b.signed,
    status: b.status,
    code: b.code,
    message: b.message,
    txid: b.txid,
    fee: b.fee.toString(),
    replaces: b.replacedTxid,
    signers: jobs
      .filter((j) => bumpOfJob(j.job) === b.id)
      .map((j) => ({
        signer: j.signer,
        outcome:
          j.result === null ? (j.status === 'queued' ? 'queued' : 'delivered') : j.result.receipt.outcome,
        code: j.result?.receipt.code ?? null,
        message: j.result?.message ?? null,
      })),
    createdAt: b.createdAt,
    updatedAt: b.updatedAt,
  };
}

/** The bump digest a job carries, or null for a job without a bump. */
export function bumpOfJob(job: SignerJob): Digest | null {
  if (job.bump === undefined) return null;
  try {
    return bumpDigest(job.bump.bump);
  } catch {
    return null;
  }
}

/**
 * POST /v1/intents/:id/bumps after authentication: checks the bump, builds
 * the replacement, stores it and queues one job per signer that signed the
 * original. Idempotent per bump. Refusals are audited `bump.refused` and thrown.
 */
export async function requestBump(
  ctx: Context,
  id: string,
  signed: SignedBump,
  actor: string,
): Promise<BumpView> {
  const rec = await ctx.store.intents.get(id);
  if (rec === null) throw new CustosError('NOT_FOUND', 'no such intent', { intent: id });
  const digest = bumpDigest(signed.bump);
  const existing = await ctx.store.bumps.get(digest);
  if (existing !== null && existing.intent === rec.id) return viewOf(ctx, existing);
  const refused = async (code: ErrorCode, message: string): Promise<never> => {
    await auditEvent(ctx, { actor, event: 'bump.refused', subject: rec.id, digest });
    throw new CustosError(code, message);
  };
  const state = await ctx.governance.current();
  const now = ctx.clock();
  const checked = checkBump(state, signed, rec.signed.intent, now);
  if (!checked.ok) return refused(checked.code, checked.message);
  if (rec.status === 'confirmed') {
    return refused('NOT_A_REPLACEMENT', 'the withdrawal is confirmed: there is nothing to replace');
  }
  if (rec.status !== 'broadcast') {
    return refused(
      ['signing', 'signed'].includes(rec.status) ? 'CONFLICT' : 'NOT_A_REPLACEMENT',
      `the intent is ${rec.status}: only a broadcast, unconfirmed withdrawal can be bumped`,
    );
  }
  const tx = await ctx.store.transactions.get(rec.id);
  if (tx === null) return refused('CONFLICT', 'the intent has no transaction recorded yet');
  if (tx.blockHeight !== null) {
    return refused('NOT_A_REPLACEMENT', `transaction ${tx.txid} is mined: there is nothing to replace`);
  }
  const descriptor = descriptorOf(state, rec);
  if (descriptor === null || rec.psbt === null) {
    return refused('UNSUPPORTED_TRANSACTION', 'only a Bitcoin withdrawal can be bumped');
  }
  const bumps = await ctx.store.bumps.forIntent(rec.id);
  if (bumps.some((b) => b.status === 'signing')) {
    return refused('CONFLICT', 'another bump of this intent is being signed; wait for it');
  }
  // The latest replacement broadcast, else the original: same inputs, so it conflicts with all of them.
  const latest = bumps.filter((b) => b.status === 'broadcast').at(-1);
  const base = psbtFromBase64(latest?.psbt ?? rec.psbt);
  if (!base.ok) throw new CustosError('INTERNAL', 'the stored PSBT does not decode');
  const built = buildReplacement(base.value, descriptor, BigInt(signed.bump.feeRate));
  if (!built.ok) return refused(built.code, built.message);
  const caps = feeCapsFor(policiesInForce(state, now), rec.signed.intent);
  if (caps === null || built.value.fee > caps.maxFee || built.value.feeRate > caps.maxFeeRate) {
    return refused(
      'FEE_TOO_HIGH',
      caps === null
        ? 'no fee cap is set for this wallet and asset'
        : `the replacement pays ${built.value.fee} sat (${built.value.feeRate} sat/vB); the caps are ${caps.maxFee} sat and ${caps.maxFeeRate} sat/vB`,
    );
  }
  // Only a signer that signed the original can replace it (each checks its own ledger).
  const jobs = await ctx.store.jobs.of(rec.id);
  const signers = [
    ...new Set(
      jobs
        .filter((j) => j.job.bump === undefined && j.result?.receipt.outcome === 'signed')
        .map((j) => j.signer),
    ),
  ]
    .filter((s) => signerActive(state, s, now))
    .sort();
  if (signers.length < descriptor.m) {
    return refused('QUORUM_NOT_MET', `fewer than ${descriptor.m} signers that signed the original can sign`);
  }
  const psbt = psbtToBase64(built.value.psbt);
  let inserted: boolean;
  try {
    inserted = await ctx.store.bumps.insert({
      id: digest,
      intent: rec.id,
      signed,
      psbt,
      txid: built.value.txid,
      fee: built.value.fee,
    });
  } catch (err) {
    // Two bumps requested at once both got past the check above; the database keeps one.
    if (err instanceof CustosError && err.code === 'CONFLICT') return refused('CONFLICT', err.message);
    throw err;
  }
  if (inserted) {
    await auditEvent(ctx, { actor, event: 'bump.requested', subject: rec.id, digest });
    ctx.log.info(
      { intent: rec.id, bump: digest, txid: built.value.txid, fee: built.value.fee.toString() },
      'replacement built',
    );
  }
  const approvals = await approvalsOf(ctx, rec.id);
  const queued: SignerJob[] = signers.map((signer) => ({
    v: 1,
    id: jobId(digest, signer, 1),
    signer,
    intent: rec.signed,
    approvals,
    governance: { seq: state.seq, digest: state.head },
    psbt,
    bump: signed,
  }));
  await ctx.store.jobs.enqueue(
    queued,
    auditRecord(ctx, { event: 'signing.queued', subject: rec.id, digest: txDigest(built.value.txid) }),
  );
  for (const s of signers) ctx.wake(s);
  const stored = await ctx.store.bumps.get(digest);
  if (stored === null) throw new CustosError('INTERNAL', 'the bump was not stored');
  return viewOf(ctx, stored);
}

async function viewOf(ctx: Context, b: BumpRecord): Promise<BumpView> {
  return bumpView(b, await ctx.store.jobs.of(b.intent));
}

function descriptorOf(state: GovernanceState, rec: IntentRecord): WalletDescriptor | null {
  const wallet = state.wallets.get(rec.signed.intent.wallet);
  const network = wallet === undefined ? undefined : networkOfChain(wallet.chain);
  if (wallet === undefined || network === undefined || wallet.kind !== 'bitcoin-wsh-sortedmulti') return null;
  const parsed = parseDescriptor(wallet.descriptor, network);
  return parsed.ok ? parsed.value : null;
}

/**
 * Looks at a bump's jobs and moves it on: with m usable signatures over the
 * replacement, combine, finalize and broadcast it (the intent's transaction
 * row then points at it); when fewer than m signers can still sign, refuse
 * it with the first refusal's code. The original stays as it was either way.
 */
export async function advanceBump(ctx: Context, id: Digest): Promise<void> {
  const b = await ctx.store.bumps.get(id);
  if (b === null || b.status !== 'signing') return;
  const jobs = (await ctx.store.jobs.of(b.intent)).filter((j) => bumpOfJob(j.job) === id);
  const refuseBump = async (code: ErrorCode, message: string): Promise<void> => {
    if (!(await ctx.store.bumps.move(id, 'signing', 'refused', { code, message }))) return;
    for (const j of jobs) if (j.status !== 'done') await ctx.store.jobs.withdraw(j.id);
    ctx.log.info({ intent: b.intent, bump: id, code }, message);
    await auditEvent(ctx, { event: 'bump.refused', subject: b.intent, digest: id });
  };
  const rec = await ctx.store.intents.get(b.intent);
  const state = await ctx.governance.current();
  const descriptor = rec === null ? null : descriptorOf(state, rec);
  if (rec === null || descriptor === null) return refuseBump('UNKNOWN_WALLET', 'the wallet left governance');
  if (rec.status !== 'broadcast') {
    return refuseBump(
      'NOT_A_REPLACEMENT',
      `the intent is ${rec.status}: its transaction is no longer unconfirmed`,
    );
  }
  const usable = new Map<string, PsbtAnalysis>();
  const refusals: { signer: string; code: ErrorCode; message?: string }[] = [];
  let pending = 0;
  for (const j of jobs) {
    if (j.status !== 'done') {
      pending++;
      continue;
    }
    const result = j.result;
    if (result === null) continue;
    if (result.receipt.outcome === 'refused') {
      refusals.push({
        signer: j.signer,
        code: result.receipt.code ?? 'INTERNAL',
        ...(result.message === undefined ? {} : { message: result.message }),
      });
      continue;
    }
    const bytes = result.psbt === undefined ? null : psbtFromBase64(result.psbt);
    const analyzed = bytes?.ok === true ? analyzePsbt(bytes.value, descriptor) : null;
    if (
      result.receipt.txid !== b.txid ||
      analyzed === null ||
      !analyzed.ok ||
      analyzed.value.txid !== b.txid ||
      analyzed.value.inputs.some((i) => i.signatures === 0)
    ) {
      refusals.push({ signer: j.signer, code: 'BAD_SIGNATURE' });
      continue;
    }
    usable.set(j.signer, analyzed.value);
  }
  if (usable.size < descriptor.m) {
    if (usable.size + pending < descriptor.m) {
      const first = refusals[0];
      await refuseBump(
        first?.code ?? 'QUORUM_NOT_MET',
        first === undefined
          ? `fewer than ${descriptor.m} signers can sign the replacement`
          : `signer ${first.signer} refused (${first.code}${first.message === undefined ? '' : `: ${first.message}`})`,
      );
    }
    return;
  }
  const parts = [...usable]
    .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
    .slice(0, descriptor.m)
    .map(([, p]) => p);
  const final = finalizeAnalyzed(parts, descriptor);
  if (!final.ok || final.value.txid !== b.txid) {
    return refuseBump(
      final.ok ? 'INTERNAL' : final.code,
      `signatures do not finalize: ${final.ok ? 'another transaction' : final.message}`,
    );
  }
  try {
    await ctx.rpc.sendRawTransaction(final.value.hex);
  } catch (err) {
    if (!(err instanceof CustosError) || err.code !== 'CHAIN_REJECTED') throw err; // the loop sends again
    if (err.details.rpcCode !== RPC_VERIFY_ALREADY_IN_CHAIN) return refuseBump('CHAIN_REJECTED', err.message);
  }
  const tx = await ctx.store.transactions.get(b.intent);
  if (tx === null) throw new CustosError('INTERNAL', 'a broadcast intent has no transaction row');
  // The bump and the intent's transaction move together: the intent now follows the replacement.
  const moved = await ctx.store.bumps.markBroadcast(id, {
    intent: b.intent,
    txid: b.txid,
    rawHex: final.value.hex,
    replacedTxid: tx.txid,
    replacedHex: tx.rawHex,
    at: ctx.clock(),
  });
  if (!moved) return;
  for (const j of jobs) if (j.status !== 'done') await ctx.store.jobs.withdraw(j.id);
  ctx.log.info({ intent: b.intent, bump: id, txid: b.txid, replaces: tx.txid }, 'replacement broadcast');
  await auditEvent(ctx, { event: 'bump.broadcast', subject: b.intent, digest: txDigest(b.txid) });
  // A receiver that follows txids (an exchange's backend) learns the new one, and what it replaces.
  const intent = rec.signed.intent;
  await notify(ctx, 'transaction.broadcast', {
    intent: b.intent,
    txid: b.txid,
    replaces: tx.txid,
    wallet: intent.wallet,
    chain: intent.chain,
    asset: intent.asset,
    amount: intent.amount,
    to: intent.to,
  });
}

/** Every transaction of these intents that a bump broadcast or replaced, with its raw hex, by txid. */
export async function transactionsOfBumps(
  ctx: Context,
  open: readonly TransactionRecord[],
): Promise<Map<string, { readonly intent: Digest; readonly rawHex: string }>> {
  const out = new Map<string, { intent: Digest; rawHex: string }>();
  for (const b of await ctx.store.bumps.broadcastFor(open.map((t) => t.intent))) {
    if (b.rawHex !== null) out.set(b.txid, { intent: b.intent, rawHex: b.rawHex });
    if (b.replacedTxid !== null && b.replacedHex !== null) {
      out.set(b.replacedTxid, { intent: b.intent, rawHex: b.replacedHex });
    }
  }
  return out;
}

/**
 * One of the intent's transactions was found mined: it becomes the intent's
 * transaction (if it was not already), its bump `mined`, every other bump
 * `replaced`, audited `transaction.replaced` when that changed anything
 * (once, or again after a reorganization mined another one). Returns the transaction
 * row to follow; `t` itself when the intent has no bump or nothing is mined.
 */
export async function settleBumps(
  ctx: Context,
  t: TransactionRecord,
  alternatives: ReadonlyMap<string, { readonly intent: Digest; readonly rawHex: string }>,
  found: ReadonlyMap<string, unknown>,
): Promise<TransactionRecord> {
  const mine = [...alternatives].filter(([, a]) => a.intent === t.intent);
  if (mine.length === 0) return t;
  const winner = found.has(t.txid) ? t.txid : mine.find(([txid]) => found.has(txid))?.[0];
  if (winner === undefined) return t;
  // The intent follows the mined transaction first, then the bumps settle: a crash in between
  // leaves bumps still to settle, which the next pass does (and audits).
  let next = t;
  if (winner !== t.txid) {
    const rawHex = (alternatives.get(winner) as { rawHex: string }).rawHex;
    await ctx.store.bumps.switchTransaction(t.intent, { txid: winner, rawHex, at: t.broadcastAt });
    next = { ...t, txid: winner, rawHex, confirmations: 0, blockHeight: null, blockHash: null };
  }
  let changed = false;
  for (const b of await ctx.store.bumps.broadcastFor([t.intent])) {
    const settled: BumpStatus = b.txid === winner ? 'mined' : 'replaced';
    if (b.status === settled) continue;
    // From broadcast, or back after a reorganization mined another transaction of the intent.
    if (await ctx.store.bumps.move(b.id, ['broadcast', 'mined', 'replaced'], settled)) changed = true;
  }
  if (changed) {
    ctx.log.info(
      { intent: t.intent, txid: winner },
      'transaction mined; the others of the intent are replaced',
    );
    await auditEvent(ctx, { event: 'transaction.replaced', subject: t.intent, digest: txDigest(winner) });
  }
  return next;
}
