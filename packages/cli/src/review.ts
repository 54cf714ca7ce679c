/**
 * What an approver's client checks before it lets a person approve
 * (docs/architecture.md "The withdrawal flow", step 2): the coordinator's summary is
 * never shown, because the coordinator is exactly what DMM's relay and
 * Bybit's web page were. From the verified governance state alone this
 * module checks the requester's signature over the intent, decodes the
 * transaction against the wallet's own descriptor, requires it to pay exactly
 * the intent's destination and amount (THREATS 6, 23, 24), and gathers the
 * warnings a person needs: the address-book label, first payment to an
 * address, a look-alike of a known address (THREATS 21), an amount large
 * against the wallet's history.
 *
 * Pure: state, the coordinator's answers and the clock in; a review out. The
 * commands print it and decide what to do with its problems.
 */
import {
  addressToScript,
  decodePsbt,
  networkOfChain,
  type PsbtSummary,
  parseDescriptor,
  psbtFromBase64,
  type VerifiedPsbt,
  verifyPsbt,
  walletReceiveAddress,
} from '@custos/bitcoin/sign';
import {
  addressStatus,
  checkInternalDestination,
  type Digest,
  deviceLookupMessage,
  type ErrorCode,
  evaluate,
  feeCapsFor,
  type GovernanceState,
  historyWarnings,
  type Intent,
  intentDigest,
  intentWallet,
  type LedgerEntry,
  ledgerViewOf,
  lookalikeMessage,
  lookalikesInForce,
  lookupDevice,
  type PolicyDecision,
  policiesInForce,
  refusalFrom,
  type SignedIntent,
  verifyDeviceSignature,
  type Wallet,
  ZERO_DIGEST,
} from '@custos/core';
import type { IntentView } from './client.js';
import { formatSats, relativeTime } from './output.js';
import { formatAssetAmount, reviewSafeTx, type SafeTxReview } from './review-evm.js';

export interface Problem {
  readonly code: ErrorCode;
  readonly message: string;
}

export interface ReviewWarning {
  readonly code: string;
  readonly message: string;
}

export interface Review {
  readonly id: Digest | null;
  readonly intent: Intent;
  readonly wallet: Wallet | null;
  readonly requesterName: string;
  /**
   * An internal transfer (issue 13): the wallet the intent names as its
   * destination, and whether `to` was proven here to be that wallet's address
   * (derived from its governed descriptor); null for any other intent.
   */
  readonly internal: {
    readonly wallet: string;
    readonly label: string;
    readonly index?: number;
    readonly proven: boolean;
  } | null;
  /** Address-book label of the destination, with its status. */
  readonly destination: { label: string; status: 'active' | 'pending' | 'unknown'; activeFrom?: number };
  /**
   * A batch's outputs (issue 13), in the order signed, each with its
   * address-book label and status; empty for a single-output intent.
   */
  readonly outputs: readonly {
    readonly to: string;
    readonly amount: string;
    readonly label: string;
    readonly status: 'active' | 'pending' | 'unknown';
  }[];
  /** The transaction as decoded against the wallet descriptor, when the coordinator built one. */
  readonly transaction: PsbtSummary | null;
  readonly verified: VerifiedPsbt | null;
  /** EVM Safe: the SafeTx decoded here (the coordinator's proposal, or built here before it exists). */
  readonly safeTx: SafeTxReview | null;
  /** The amount with its unit from the asset registry (BTC as before). */
  readonly amountText: string;
  /** Integrity failures: approving is refused while there is one. */
  readonly problems: readonly Problem[];
  readonly warnings: readonly ReviewWarning[];
  /** The policy as this client evaluates it, with the approvals the coordinator showed (checked here). */
  readonly decision: PolicyDecision;
}

export interface ReviewInput {
  readonly state: GovernanceState;
  readonly pinnedGenesis: string;
  readonly view: IntentView;
  /** Earlier transfers the coordinator lists as confirmed (their signatures are checked here too). */
  readonly history: readonly IntentView[];
  readonly now: number;
}

export function reviewIntent(input: ReviewInput): Review {
  const { state, view, now } = input;
  const signed: SignedIntent = view.intent;
  const intent = signed.intent;
  const problems: Problem[] = [];
  const warnings: ReviewWarning[] = [];

  let id: Digest | null = null;
  try {
    id = intentDigest(intent);
  } catch (err) {
    const r = refusalFrom(err);
    problems.push({ code: r.code, message: r.message });
  }
  if (intent.org !== input.pinnedGenesis) {
    problems.push({
      code: 'WRONG_ORG',
      message: 'the intent names another organization than the pinned genesis',
    });
  }

  // The requester's signature, against the device governance registered (THREATS 4-6).
  const requester = lookupDevice(state, intent.requester, intent.device, now);
  if (!requester.ok) {
    problems.push({
      code: requester.code,
      message: deviceLookupMessage(requester, intent.requester, intent.device),
    });
  } else if (id !== null) {
    const sig = verifyDeviceSignature(requester.device, id, signed.signature);
    if (!sig.ok) {
      problems.push({
        code: 'INTENT_SIGNATURE_INVALID',
        message: `the signature of ${intent.requester}/${intent.device} does not verify over this intent: it was changed after it was signed`,
      });
    }
  }
  // After the signature: an intent rewritten after signing also has another digest, and the signature
  // says more about what happened than the id does.
  if (id !== null && id !== view.id) {
    problems.push({
      code: 'INVALID_VALUE',
      message: `the coordinator calls this intent ${view.id}, but its digest is ${id}`,
    });
  }
  if (now >= intent.expiresAt) problems.push({ code: 'EXPIRED', message: 'the intent has expired' });

  // The wallet as the policy's step 2 checks it (THREATS 16).
  const wallet = state.wallets.get(intent.wallet) ?? null;
  const walletCheck = intentWallet(state, intent, now);
  if (!walletCheck.ok) problems.push({ code: walletCheck.code, message: walletCheck.message });

  // The transaction, decoded here from the bytes against the wallet's own descriptor.
  let transaction: PsbtSummary | null = null;
  let verified: VerifiedPsbt | null = null;
  const network = networkOfChain(intent.chain);
  if (view.psbt !== null && wallet !== null && network !== undefined) {
    const checked = checkTransaction(view.psbt, intent, wallet, network, state, now);
    transaction = checked.summary;
    verified = checked.verified;
    problems.push(...checked.problems);
  } else if (network !== undefined && addressToScript(intent.to, network) === undefined) {
    problems.push({ code: 'INVALID_VALUE', message: `${intent.to} is not a ${network} address` });
  }
  // A Safe: the SafeTx decoded here, every field that is not the plain transfer a warning (THREATS 28-29).
  let safeTx: SafeTxReview | null = null;
  if (wallet !== null && wallet.kind === 'evm-safe') {
    const checked = reviewSafeTx(intent, wallet, state, view.safeTx?.proposal ?? null);
    safeTx = checked.review;
    problems.push(...checked.problems);
    warnings.push(...checked.warnings);
  }

  // An internal transfer: `to` derived here from the named wallet's governed descriptor (issue 13).
  let internal: Review['internal'] = null;
  if (intent.toWallet !== undefined) {
    const proof = checkInternalDestination(state, intent, now, walletReceiveAddress);
    if (!proof.ok) problems.push({ code: proof.code, message: proof.message });
    const label = state.wallets.get(intent.toWallet.wallet)?.label ?? intent.toWallet.wallet;
    internal = {
      wallet: intent.toWallet.wallet,
      label,
      ...(intent.toWallet.index === undefined ? {} : { index: intent.toWallet.index }),
      proven: proof.ok,
    };
  }

  // Address book, look-alikes (THREATS 21), first payment, size against history.
  const book = addressStatus(state, intent.chain, intent.to, now);
  const destination =
    book.status === 'active'
      ? { label: book.entry.label, status: 'active' as const }
      : book.status === 'pending'
        ? { label: book.entry.label, status: 'pending' as const, activeFrom: book.activeFrom }
        : { label: 'not in the address book', status: 'unknown' as const };
  if (book.status === 'unknown' && internal === null) {
    warnings.push({ code: 'DESTINATION_NOT_ALLOWED', message: `${intent.to} is not in the address book` });
  } else if (book.status === 'pending') {
    warnings.push({
      code: 'DESTINATION_NOT_ACTIVE',
      message: `the address-book entry ${book.entry.id} becomes active ${relativeTime(book.activeFrom, now)}`,
    });
  }
  const lookalikes = lookalikesInForce(state, intent.chain, intent.to, policiesInForce(state, now), now);
  if (lookalikes.entries.length > 0) {
    warnings.push({ code: 'LOOKALIKE_ADDRESS', message: lookalikeMessage(intent.to, lookalikes.entries) });
  }
  // A batch: every output with its book status, and each later destination's warnings (the first is `to`).
  const outputs: Review['outputs'][number][] = [];
  const seen = new Set<string>([intent.to]);
  for (const o of intent.outputs ?? []) {
    const b = addressStatus(state, intent.chain, o.to, now);
    outputs.push({
      to: o.to,
      amount: o.amount,
      label: b.status === 'unknown' ? 'not in the address book' : b.entry.label,
      status: b.status,
    });
    if (seen.has(o.to)) continue;
    seen.add(o.to);
    if (network !== undefined && addressToScript(o.to, network) === undefined) {
      problems.push({ code: 'INVALID_VALUE', message: `${o.to} is not a ${network} address` });
    }
    if (b.status === 'unknown') {
      warnings.push({ code: 'DESTINATION_NOT_ALLOWED', message: `${o.to} is not in the address book` });
    }
    const l = lookalikesInForce(state, intent.chain, o.to, policiesInForce(state, now), now);
    if (l.entries.length > 0)
      warnings.push({ code: 'LOOKALIKE_ADDRESS', message: lookalikeMessage(o.to, l.entries) });
  }
  // FIRST_PAYMENT and LARGE_AMOUNT as the policy gives them, over the history this client trusts.
  const earlier = ledgerViewOf(trustedHistory(state, input.history, id, now));
  warnings.push(...historyWarnings(earlier, intent, id ?? ZERO_DIGEST));

  const decision = evaluate({
    state,
    intent: signed,
    approvals: view.approvals,
    ledger: [],
    now,
    receiveAddress: walletReceiveAddress,
  });
  const requesterName = state.members.get(intent.requester)?.name ?? intent.requester;
  return {
    id,
    intent,
    wallet,
    requesterName,
    internal,
    destination,
    outputs,
    transaction,
    verified,
    safeTx,
    amountText:
      network !== undefined
        ? formatSats(intent.amount, intent.asset)
        : formatAssetAmount(intent.amount, state.assets.get(intent.asset)?.value, intent.asset),
    problems,
    warnings,
    decision,
  };
}

function checkTransaction(
  psbtText: string,
  intent: Intent,
  wallet: Wallet,
  network: NonNullable<ReturnType<typeof networkOfChain>>,
  state: GovernanceState,
  now: number,
): { summary: PsbtSummary | null; verified: VerifiedPsbt | null; problems: Problem[] } {
  const problems: Problem[] = [];
  if (wallet.kind !== 'bitcoin-wsh-sortedmulti') {
    const message = `wallet ${wallet.id} is not a Bitcoin wallet`;
    return { summary: null, verified: null, problems: [{ code: 'UNSUPPORTED_TRANSACTION', message }] };
  }
  const descriptor = parseDescriptor(wallet.descriptor, network);
  if (!descriptor.ok) {
    return {
      summary: null,
      verified: null,
      problems: [{ code: descriptor.code, message: descriptor.message }],
    };
  }
  const bytes = psbtFromBase64(psbtText);
  if (!bytes.ok)
    return { summary: null, verified: null, problems: [{ code: bytes.code, message: bytes.message }] };
  const decoded = decodePsbt(bytes.value, descriptor.value);
  if (!decoded.ok) {
    return { summary: null, verified: null, problems: [{ code: decoded.code, message: decoded.message }] };
  }
  const caps = feeCapsFor(policiesInForce(state, now), intent);
  let verified: VerifiedPsbt | null = null;
  if (caps === null) {
    problems.push({
      code: 'FEE_TOO_HIGH',
      message: `the policy sets no fee cap for ${intent.wallet}/${intent.asset}`,
    });
  }
  // THREATS 23-25: exactly the destination and amount, change only to the wallet, fee under the caps.
  // An approver's client keeps no record of the change indexes used: the change index is not bounded
  // here, each signer bounds it by its own ledger (CHANGE_BEYOND_GAP, issue 8 item 4).
  const result = verifyPsbt(
    bytes.value,
    intent,
    descriptor.value,
    caps ?? { maxFee: 0n, maxFeeRate: 0n },
    UNBOUNDED_CHANGE,
  );
  if (result.ok) verified = result.value;
  else if (!(caps === null && result.code === 'FEE_TOO_HIGH')) {
    problems.push({ code: result.code, message: `the transaction the coordinator built: ${result.message}` });
  }
  return { summary: decoded.value, verified, problems };
}

/** The highest BIP 32 unhardened index: no bound on the change index. */
const UNBOUNDED_CHANGE = 0x7fffffff;

/**
 * The coordinator's history as ledger entries, keeping only intents whose
 * requester signature verifies (dated by their createdAt).
 */
function trustedHistory(
  state: GovernanceState,
  history: readonly IntentView[],
  self: Digest | null,
  now: number,
): LedgerEntry[] {
  const out: LedgerEntry[] = [];
  for (const v of history) {
    const i = v.intent.intent;
    let digest: Digest;
    try {
      digest = intentDigest(i);
    } catch {
      continue;
    }
    if (digest === self || i.createdAt > now) continue;
    const d = lookupDevice(state, i.requester, i.device, now);
    // Only transfers signed by a device governance still knows; anything else is the coordinator's word.
    if (!d.ok) continue;
    if (!verifyDeviceSignature(d.device, digest, v.intent.signature).ok) continue;
    out.push({
      intent: digest,
      wallet: i.wallet,
      asset: i.asset,
      amount: i.amount,
      to: i.to,
      ...(i.outputs === undefined ? {} : { outputs: i.outputs }),
      requester: i.requester,
      at: i.createdAt,
    });
  }
  return out;
}

/** The review as text for a person. */
export function formatReview(r: Review, now: number): string {
  const i = r.intent;
  const lines: string[] = [];
  lines.push(`Intent     ${r.id ?? '(no digest)'}`);
  lines.push(
    `Wallet     ${r.wallet === null ? i.wallet : `${r.wallet.label} (${r.wallet.id}, ${r.wallet.chain})`}`,
  );
  lines.push(`Amount     ${r.amountText}`);
  lines.push(`To         ${i.to}`);
  if (r.internal !== null) {
    const where = r.internal.index === undefined ? '' : ` (receive index ${r.internal.index})`;
    lines.push(
      r.internal.proven
        ? `           internal transfer to wallet ${r.internal.wallet}${where}: ${r.internal.label}, address derived here`
        : `           CLAIMS internal transfer to wallet ${r.internal.wallet}${where}, but it is NOT that wallet's address`,
    );
  } else
    lines.push(
      `           ${r.destination.status === 'active' ? `address book: ${r.destination.label}` : r.destination.status === 'pending' ? `address book: ${r.destination.label} (PENDING)` : 'NOT IN THE ADDRESS BOOK'}`,
    );
  if (r.outputs.length > 0) {
    // Issue 13: a batch shows every output it pays, as signed; the Amount above is their sum.
    lines.push(`Outputs    ${r.outputs.length} (a batch; To is the first)`);
    const width = String(r.outputs.length).length;
    for (const [n, o] of r.outputs.entries()) {
      const book =
        o.status === 'active' ? o.label : o.status === 'pending' ? `${o.label} (PENDING)` : 'NOT IN BOOK';
      lines.push(`  ${String(n + 1).padStart(width)}. ${o.to}  ${formatSats(o.amount, i.asset)}  ${book}`);
    }
  }
  lines.push(`Requester  ${r.requesterName} (${i.requester}/${i.device})`);
  if (i.memo !== undefined && i.memo !== '') lines.push(`Memo       ${JSON.stringify(i.memo)}`);
  lines.push(`Expires    ${new Date(i.expiresAt).toISOString()} (${relativeTime(i.expiresAt, now)})`);
  if (r.safeTx !== null) {
    const t = r.safeTx;
    lines.push(
      t.proposed
        ? `SafeTx     ${t.safeTxHash ?? ''} (the coordinator's proposal, decoded and hashed here)`
        : 'SafeTx     not built yet; the one plain transfer this intent allows, built here:',
    );
    for (const f of t.fields) {
      lines.push(`  ${f.name.padEnd(15)}${f.value}${f.note === undefined ? '' : `  ${f.note}`}`);
    }
  } else if (r.transaction !== null) {
    const t = r.transaction;
    lines.push(`Transaction ${t.txid} (decoded here against the wallet descriptor)`);
    for (const o of t.outputs) {
      lines.push(
        `  pays     ${formatSats(o.amount, i.asset)} to ${o.address ?? o.script}${o.isChange ? ` (change, wallet index ${o.changeIndex})` : ''}`,
      );
    }
    lines.push(`  fee      ${formatSats(t.fee, i.asset)}, ${t.feeRate} sat/vB, ${t.inputs.length} input(s)`);
  } else {
    lines.push('Transaction not built yet (the coordinator builds it once the approvals suffice)');
  }
  const d = r.decision;
  if (d.kind === 'pending') {
    const need = d.missing.map(
      (m) => `${m.need - m.have} more of ${'role' in m.of ? `role ${m.of.role}` : m.of.members.join('/')}`,
    );
    lines.push(
      `Policy     pending: ${need.length > 0 ? need.join('; ') : `cancel window until ${new Date(d.cancelWindowEndsAt ?? 0).toISOString()}`}`,
    );
  } else if (d.kind === 'allow') {
    lines.push(`Policy     allowed by rule ${d.rules.join(', ')} (approved by ${d.approvers.join(', ')})`);
  } else {
    lines.push(`Policy     DENIED here: ${d.code}: ${d.message}`);
  }
  for (const w of r.warnings) lines.push(`WARNING    ${w.code}: ${w.message}`);
  for (const p of r.problems) lines.push(`REFUSED    ${p.code}: ${p.message}`);
  return `${lines.join('\n')}\n`;
}
