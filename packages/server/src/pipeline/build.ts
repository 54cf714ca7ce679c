/**
 * Flow step 3: an approved intent becomes a PSBT and one job per signer.
 *
 * What is a decision and what is a retry: a check that can never pass for
 * this intent (unknown wallet, wrong chain, not enough funds, an amount or
 * address the wallet cannot pay, the organization frozen, the intent expired)
 * refuses it with its code, audited and notified. Anything thrown (the chain
 * node or the database unreachable, the tracker still catching up, another
 * coordinator winning a reservation race too often) leaves the intent
 * `approved`, and the pipeline's loop builds it again later: an outage
 * delays a withdrawal, it never refuses one. Those retries are logged, not
 * audited: they decide nothing, and the audit log records decisions.
 *
 * The status moves approved -> signing by compare-and-set with the PSBT in
 * the same write, so of two coordinators building one intent, one stores its
 * PSBT and the other releases the coins it reserved. Jobs are queued after
 * that write; if the process dies in between, the loop's repair queues them.
 */
import { analyzePsbt, networkOfChain, parseDescriptor, psbtFromBase64, psbtToBase64 } from '@custos/bitcoin';
import {
  CustosError,
  type Digest,
  type GovernanceState,
  type Intent,
  policiesInForce,
  type SignedApproval,
  type SignerJob,
  signerActive,
} from '@custos/core';
import type { IntentRecord } from '../db/repository.js';
import { auditEvent, auditRecord, type Context, jobId, refuseIntent, txDigest } from './context.js';

/** The job protocol carries at most 100 approvals (core jobs.ts). */
const MAX_JOB_APPROVALS = 100;

export async function buildIntent(ctx: Context, id: Digest): Promise<void> {
  const rec = await ctx.store.intents.get(id);
  if (rec === null || rec.status !== 'approved') return;
  const intent = rec.signed.intent;
  const now = ctx.clock();
  if (now >= intent.expiresAt) {
    await refuseIntent(ctx, id, 'approved', 'EXPIRED', 'the intent expired before it was built', 'expired');
    return;
  }
  const state = await ctx.governance.current();
  const wallet = state.wallets.get(intent.wallet);
  if (wallet === undefined) {
    await refuseIntent(ctx, id, 'approved', 'UNKNOWN_WALLET', `wallet ${intent.wallet} is not in governance`);
    return;
  }
  if (wallet.chain !== intent.chain) {
    await refuseIntent(ctx, id, 'approved', 'WRONG_CHAIN', `wallet ${wallet.id} is on ${wallet.chain}`);
    return;
  }
  if (!wallet.assets.includes(intent.asset)) {
    await refuseIntent(ctx, id, 'approved', 'UNKNOWN_ASSET', `wallet ${wallet.id} holds no ${intent.asset}`);
    return;
  }
  if (state.frozen !== null) {
    await refuseIntent(ctx, id, 'approved', 'FROZEN', 'the organization is frozen');
    return;
  }
  if (wallet.kind === 'evm-safe') {
    await ctx.evm.build(ctx, rec, state, wallet);
    return;
  }
  const network = networkOfChain(wallet.chain);
  const descriptor =
    network === undefined || wallet.kind !== 'bitcoin-wsh-sortedmulti'
      ? null
      : parseDescriptor(wallet.descriptor, network);
  if (
    wallet.kind !== 'bitcoin-wsh-sortedmulti' ||
    network === undefined ||
    descriptor === null ||
    !descriptor.ok
  ) {
    await refuseIntent(
      ctx,
      id,
      'approved',
      'UNSUPPORTED_TRANSACTION',
      `wallet ${wallet.id} cannot be built for`,
    );
    return;
  }
  if (state.signers.size === 0) {
    throw new CustosError('UNAVAILABLE', 'governance lists no signer to send jobs to');
  }

  await ctx.chain.sync(state);
  // An internal transfer (issue 13; its `to` proven by the policy to be this receive address):
  // the destination wallet is watched up to it before the transaction exists.
  if (intent.toWallet?.index !== undefined) {
    await ctx.chain.watchReceive(intent.toWallet.wallet, intent.toWallet.index);
  }
  const caps = feeCaps(state, intent, now);
  const estimate = await feeEstimate(ctx);
  let feeRate = estimate ?? ctx.opts.fallbackFeeRate;
  if (caps.maxFeeRate !== null && feeRate > caps.maxFeeRate) feeRate = caps.maxFeeRate;
  if (feeRate < 1n) feeRate = 1n;

  const built = await ctx.chain.build({
    intent: id,
    wallet: wallet.id,
    to: intent.to,
    amount: BigInt(intent.amount),
    ...(intent.outputs === undefined
      ? {}
      : { outputs: intent.outputs.map((o) => ({ to: o.to, amount: BigInt(o.amount) })) }),
    feeRate,
    maxFee: caps.maxFee,
  });
  if (!built.ok) {
    await refuseIntent(ctx, id, 'approved', built.code, built.message);
    return;
  }
  const psbt = psbtToBase64(built.value.psbt);
  const moved = await ctx.store.intents.updateStatus(id, { from: 'approved', to: 'signing', psbt });
  if (!moved) {
    // Another coordinator built it first, or it was refused meanwhile: the coins reserved are
    // those of the PSBT that was stored, or none.
    const after = await ctx.store.intents.get(id);
    const stored = after?.psbt == null ? null : psbtFromBase64(after.psbt);
    const analyzed = stored?.ok === true ? analyzePsbt(stored.value, descriptor.value) : null;
    const keep = after !== null && ['signing', 'signed', 'broadcast'].includes(after.status);
    await ctx.chain.reserve(
      id,
      keep && analyzed?.ok === true ? analyzed.value.inputs.map((i) => `${i.txid}:${i.vout}`) : [],
    );
    return;
  }
  ctx.log.info(
    { intent: id, txid: built.value.txid, fee: built.value.fee.toString(), feeRate: feeRate.toString() },
    'transaction built',
  );
  await auditEvent(ctx, { event: 'transaction.built', subject: id, digest: txDigest(built.value.txid) });
  const signing = await ctx.store.intents.get(id);
  if (signing !== null) await queueJobs(ctx, signing, state, built.value.txid);
}

/** The node's fee estimate, per coordinator, as of the tracked tip it was asked at. */
const ESTIMATES = new WeakMap<Context, { readonly tip: number; readonly rate: bigint | null }>();

/**
 * The node's estimate for confirmation within 2 blocks (estimatesmartfee 2),
 * asked again whenever the tracked tip moves: the estimate is made from
 * blocks, so between two blocks every build would get the same answer.
 */
async function feeEstimate(ctx: Context): Promise<bigint | null> {
  const tip = ctx.chain.tipHeight;
  const known = ESTIMATES.get(ctx);
  if (tip !== null && known?.tip === tip) return known.rate;
  const rate = await ctx.rpc.estimateFeeRate(2);
  if (tip !== null) ESTIMATES.set(ctx, { tip, rate });
  return rate;
}

/**
 * One job per signer of governance (attempt 1), from the PSBT stored on the
 * intent. Idempotent: jobs already queued with these ids are left as they are.
 */
export async function queueJobs(
  ctx: Context,
  rec: IntentRecord,
  state: GovernanceState,
  txid: string,
): Promise<void> {
  if (rec.psbt === null) return;
  const approvals = await approvalsOf(ctx, rec.id);
  // A signer added by governance gets no job before its delay has passed (GOVERNANCE_EFFECTS).
  const now = ctx.clock();
  const signers = [...state.signers.keys()].filter((id) => signerActive(state, id, now)).sort();
  const jobs: SignerJob[] = signers.map((signer) => ({
    v: 1,
    id: jobId(rec.id, signer, 1),
    signer,
    intent: rec.signed,
    approvals,
    governance: { seq: state.seq, digest: state.head },
    psbt: rec.psbt as string,
  }));
  await ctx.store.jobs.enqueue(
    jobs,
    auditRecord(ctx, { event: 'signing.queued', subject: rec.id, digest: txDigest(txid) }),
  );
  for (const signer of signers) ctx.wake(signer);
}

/** Every stored approval (signers decide which count), as the job protocol allows. */
export async function approvalsOf(ctx: Context, intent: Digest): Promise<SignedApproval[]> {
  const records = await ctx.store.approvals.of(intent);
  return records.slice(0, MAX_JOB_APPROVALS).map((a) => a.signed);
}

/**
 * The tightest fee caps in force for this wallet and asset (the same rule
 * the signers apply): the build stays under them, since a PSBT over a cap is
 * refused FEE_TOO_HIGH by every signer.
 */
function feeCaps(
  state: GovernanceState,
  intent: Intent,
  now: number,
): { maxFee: bigint | null; maxFeeRate: bigint | null } {
  let maxFee: bigint | null = null;
  let maxFeeRate: bigint | null = null;
  for (const policy of policiesInForce(state, now)) {
    const matching = policy.feeCaps.filter(
      (c) => c.asset === intent.asset && (c.wallet === undefined || c.wallet === intent.wallet),
    );
    const specific = matching.filter((c) => c.wallet !== undefined);
    for (const c of specific.length > 0 ? specific : matching) {
      const fee = BigInt(c.maxFee);
      const rate = BigInt(c.maxFeeRate);
      if (maxFee === null || fee < maxFee) maxFee = fee;
      if (maxFeeRate === null || rate < maxFeeRate) maxFeeRate = rate;
    }
  }
  return { maxFee, maxFeeRate };
}
