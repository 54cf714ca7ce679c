/**
 * The requester's and the approvers' commands: `custos request`,
 * `custos approve`, `custos reject`, `custos intents`.
 *
 * Everything signed is built and signed here, on the device: the intent by
 * the requester, the approval by the approver over the intent's digest, which
 * this client computes itself from the intent it checked (review.ts). An
 * approval of anything else would be a signature over the coordinator's word.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { checkAddress, networkOfChain, walletReceiveAddress } from '@custos/bitcoin';
import {
  type Approval,
  addressStatus,
  approvalDigest,
  approval as approvalSchema,
  CustosError,
  type ErrorCode,
  evaluate,
  type Intent,
  intentDigest,
  intent as intentSchema,
  lookalikeMessage,
  lookalikesInForce,
  MAX_INTERNAL_RECEIVE_INDEX,
  policiesInForce,
  signDigest,
  toHex,
} from '@custos/core';
import { formatAmount, parseEvmAddress } from '@custos/evm';
import { parseAssetAmount, parseDuration, parseSats } from '../args.js';
import type { IntentView } from '../client.js';
import { COMMON_HELP, type Command } from '../command.js';
import { type Context, openSession, type Session } from '../context.js';
import { internalDestinationOf } from '../internal-transfer.js';
import { formatSats, relativeTime, table, toJson, UsageError } from '../output.js';
import { confirm } from '../password.js';
import { formatReview, reviewIntent } from '../review.js';
import { formatAssetAmount } from '../review-evm.js';

export const requestCommand: Command = {
  name: 'request',
  summary: 'ask for a transfer: build and sign an intent on this device',
  help: `custos request --wallet <id> --to <address> --amount <sats> [--asset BTC] [--memo <text>] [--expires 1h]
custos request --wallet <id> --batch <file.csv|file.json> [--asset BTC] [--memo <text>] [--expires 1h]
custos request --wallet <id> --to-wallet <id> [--index n] --amount <sats> [--memo <text>] [--expires 1h]

Builds the intent (wallet, chain, asset, amount, destination, a fresh 128-bit
nonce, created now, expiring after --expires), signs its digest with this
device's key, and sends it. Prints the intent id (its digest) and status.
The coordinator previews the policy; approvers and signers decide.

Options:
  --wallet <id>        the wallet to pay from (see \`custos status\`)
  --to <address>       the destination; it must be in the address book
                       (EVM: 0x...; lower case is checksummed here, a wrong
                       EIP-55 checksum is refused: ADDRESS_CHECKSUM_INVALID)
  --amount <amount>    satoshi (150000) or BTC with its unit (0.0015btc);
                       EVM: base units, or the asset's unit (25usdt, 0.1eth)
  --batch <file>       a batch payout (Bitcoin wallets, issue 13) instead of
                       --to/--amount: one transaction paying every line.
                       CSV: one "address,amount" per line (an optional
                       "to,amount" header, blank lines and # comments
                       skipped); JSON: [{"to": "...", "amount": "..."}].
                       Amounts as for --amount. 2 outputs at least; the
                       policy's maxBatchOutputs (default 250) at most.
  --to-wallet <id>     an internal transfer (issue 13) to another governed
                       wallet of the same chain instead of --to: the address
                       is derived here from that wallet's governed descriptor
                       (receive branch, index --index; a Safe: its address)
                       and the claim is signed; coordinator and signers derive
                       it again (else DESTINATION_NOT_WALLET)
  --index <n>          the destination's receive index, 0 to 999 (default:
                       the next unused one the coordinator reports, else 0)
  --asset <id>         default: the wallet's first asset
  --memo <text>        free text, signed with the intent
  --expires <time>     lifetime, e.g. 30m, 1h, 2d (default 1h)

Example:
  custos request --as requester-1 --wallet btc-main --to bcrt1q... --amount 150000 --memo "payout 42"
  custos request --wallet eth-safe --asset usdt --to 0x... --amount 25usdt
  custos request --wallet btc-hot --batch payouts.csv --memo "payouts 14:00"
  custos request --wallet btc-cold --to-wallet btc-hot --amount 0.5btc --memo "refill"
${COMMON_HELP}`,
  options: {
    wallet: { type: 'string' },
    batch: { type: 'string' },
    to: { type: 'string' },
    'to-wallet': { type: 'string' },
    index: { type: 'string' },
    amount: { type: 'string' },
    asset: { type: 'string' },
    memo: { type: 'string' },
    expires: { type: 'string' },
  },
  async run(ctx, args) {
    const walletId = args.required('wallet', 'the wallet id');
    const batchFile = args.str('batch');
    if (batchFile !== undefined && (args.str('to') !== undefined || args.str('amount') !== undefined)) {
      throw new UsageError('--batch takes the place of --to and --amount: give one or the other');
    }
    const toWalletId = args.str('to-wallet');
    if (toWalletId !== undefined && (args.str('to') !== undefined || batchFile !== undefined)) {
      throw new UsageError('--to-wallet takes the place of --to (and pays one wallet, no --batch)');
    }
    const toIndex = args.int('index', { min: 0, max: MAX_INTERNAL_RECEIVE_INDEX });
    if (toIndex !== undefined && toWalletId === undefined)
      throw new UsageError('--index goes with --to-wallet');
    const batchLines = batchFile === undefined ? undefined : readBatch(batchFile);
    const toText =
      batchLines?.[0]?.to ?? (toWalletId === undefined ? args.required('to', 'the destination address') : '');
    const amountText = batchLines === undefined ? args.required('amount', 'the amount') : '1';
    // A Bitcoin amount is checked before anything is unlocked or fetched, as a usage error; an EVM
    // destination (0x) means the asset's decimals decide, known once governance is read.
    const early = /^\s*0x/i.test(toText) || toWalletId !== undefined ? null : parseSats(amountText);
    const expiresIn = parseDuration(args.str('expires') ?? '1h', 'expires');
    if (expiresIn <= 0) throw new UsageError('--expires must be longer than zero');
    const s = await openSession(ctx, args);
    const { state } = await s.governance();
    const wallet = state.wallets.get(walletId);
    if (wallet === undefined) {
      throw new CustosError(
        'UNKNOWN_WALLET',
        `no wallet ${walletId} in the verified governance (wallets: ${[...state.wallets.keys()].join(', ') || 'none'})`,
      );
    }
    // An internal transfer: the destination derived here from the verified governance, never taken
    // from the coordinator (its word only picks the default index, bounded by the schema).
    const internal =
      toWalletId === undefined
        ? undefined
        : await internalDestinationOf(state, wallet, toWalletId, toIndex, args.str('asset'), ctx.now(), () =>
            s.client.wallets(),
          );
    // The network is the wallet's chain id, never guessed from the address; bech32 is stored in lower case.
    const network = networkOfChain(wallet.chain);
    const assetId = args.str('asset') ?? wallet.assets[0];
    let to = internal?.to ?? toText.trim();
    let amount: string;
    let outputs: { to: string; amount: string }[] | undefined;
    if (batchLines !== undefined) {
      if (network === undefined) throw new UsageError('--batch is for Bitcoin wallets only');
      outputs = batchLines.map((line) => {
        const checked = checkAddress(line.to, network);
        if (!checked.ok) throw new CustosError(checked.code, `line ${line.line}: ${checked.message}`);
        let sats: string;
        try {
          sats = parseSats(line.amount);
        } catch (err) {
          throw new UsageError(`line ${line.line}: ${err instanceof Error ? err.message : String(err)}`);
        }
        return { to: checked.value, amount: sats };
      });
      to = outputs[0]!.to;
      amount = outputs.reduce((sum, o) => sum + BigInt(o.amount), 0n).toString();
    } else if (network !== undefined) {
      amount = early ?? parseSats(amountText);
      const checked = checkAddress(to, network);
      if (!checked.ok) throw new CustosError(checked.code, checked.message);
      to = checked.value;
    } else if (wallet.kind === 'evm-safe') {
      // Issue 9: amounts in the asset's decimals; the address signed is the EIP-55 form.
      const asset = assetId === undefined ? undefined : state.assets.get(assetId)?.value;
      if (asset === undefined || asset.chain !== wallet.chain || !wallet.assets.includes(asset.id)) {
        throw new CustosError(
          'UNKNOWN_ASSET',
          `wallet ${wallet.id} holds no asset ${assetId ?? '(none given)'} (its assets: ${wallet.assets.join(', ')})`,
        );
      }
      amount = parseAssetAmount(amountText, asset);
      const checked = parseEvmAddress(to);
      if (!checked.ok) throw new CustosError(checked.code as ErrorCode, `--to ${to}: ${checked.message}`);
      to = checked.value;
    } else {
      amount = early ?? parseSats(amountText);
    }
    const now = ctx.now();
    const memo = args.str('memo');
    const body: Intent = intentSchema.parse({
      v: 1,
      org: s.genesis,
      wallet: wallet.id,
      chain: wallet.chain,
      asset: assetId,
      amount,
      to,
      requester: s.identity.member,
      device: s.identity.device,
      nonce: toHex(randomBytes(16)),
      createdAt: now,
      expiresAt: now + expiresIn,
      ...(memo === undefined ? {} : { memo }),
      ...(outputs === undefined ? {} : { outputs }),
      ...(internal === undefined ? {} : { toWallet: internal.toWallet }),
    });
    // What this client can tell before sending (the signers decide): book status and look-alikes.
    const book = addressStatus(state, wallet.chain, to, now);
    if (internal !== undefined) {
      const where =
        internal.toWallet.index === undefined ? '' : ` (receive index ${internal.toWallet.index})`;
      ctx.io.err(`internal transfer to wallet ${internal.toWallet.wallet}${where}: ${to}, derived here\n`);
    } else if (book.status !== 'active') {
      ctx.io.err(
        `warning: ${to} is ${book.status === 'pending' ? `pending in the address book (${book.entry.label})` : 'not in the address book'}\n`,
      );
    }
    const lookalikes = lookalikesInForce(state, wallet.chain, to, policiesInForce(state, now), now);
    if (lookalikes.entries.length > 0) ctx.io.err(`warning: ${lookalikeMessage(to, lookalikes.entries)}\n`);
    // A batch: the same warnings for each further destination (issue 13); the signers judge every output.
    for (const other of new Set((outputs ?? []).slice(1).map((o) => o.to))) {
      if (other === to) continue;
      if (addressStatus(state, wallet.chain, other, now).status === 'unknown') {
        ctx.io.err(`warning: ${other} is not in the address book\n`);
      }
      const l = lookalikesInForce(state, wallet.chain, other, policiesInForce(state, now), now);
      if (l.entries.length > 0) ctx.io.err(`warning: ${lookalikeMessage(other, l.entries)}\n`);
    }
    const signed = { intent: body, signature: signDigest(s.identity.secretKey, intentDigest(body)) };
    const answer = await s.client.postIntent(signed);
    if (args.bool('json')) {
      ctx.io.out(toJson({ id: answer.id, status: answer.status, decision: answer.decision }));
      return 0;
    }
    ctx.io.out(`${answer.id}\n`);
    if (outputs !== undefined)
      ctx.io.err(`batch: ${outputs.length} outputs, ${formatSats(amount, body.asset)} in all\n`);
    ctx.io.err(
      `intent ${answer.status}: ${network === undefined ? formatAssetAmount(amount, state.assets.get(body.asset)?.value, body.asset) : formatSats(amount, body.asset)} from ${wallet.id} to ${to}${book.status === 'active' ? ` (${book.entry.label})` : ''}\n`,
    );
    const missing = describeMissing(answer.decision);
    if (missing !== '') ctx.io.err(`needs: ${missing}\n`);
    ctx.io.err(`next: an approver runs \`custos approve ${answer.id}\`\n`);
    return 0;
  },
};

/**
 * The lines of a --batch file: CSV "address,amount" per line (an optional
 * "to,amount" header, blank lines and # comments skipped) or a JSON array of
 * {to, amount}. A usage error names the line that does not read.
 */
export function readBatch(file: string): { to: string; amount: string; line: number }[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--batch ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const out: { to: string; amount: string; line: number }[] = [];
  if (text.trimStart().startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new UsageError(`--batch ${file}: not a JSON array`);
    }
    if (!Array.isArray(parsed)) throw new UsageError(`--batch ${file}: not a JSON array`);
    parsed.forEach((item: unknown, n) => {
      const o = item as { to?: unknown; amount?: unknown } | null;
      if (
        o === null ||
        typeof o !== 'object' ||
        typeof o.to !== 'string' ||
        !['string', 'number'].includes(typeof o.amount)
      ) {
        throw new UsageError(`--batch ${file}: item ${n + 1} is not {"to": "...", "amount": "..."}`);
      }
      out.push({ to: o.to.trim(), amount: String(o.amount).trim(), line: n + 1 });
    });
  } else {
    text.split(/\r?\n/).forEach((raw, n) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const fields = line.split(',').map((f) => f.trim());
      if (out.length === 0 && fields[0]?.toLowerCase() === 'to') return;
      if (fields.length !== 2 || fields[0] === '' || fields[1] === '') {
        throw new UsageError(`--batch ${file}: line ${n + 1} is not "address,amount"`);
      }
      out.push({ to: fields[0]!, amount: fields[1]!, line: n + 1 });
    });
  }
  if (out.length < 2) throw new UsageError(`--batch ${file}: a batch pays 2 outputs or more`);
  return out;
}

function describeMissing(decision: unknown): string {
  if (decision === null || typeof decision !== 'object' || !('missing' in decision)) return '';
  const missing = (decision as { missing: unknown }).missing;
  if (!Array.isArray(missing)) return '';
  return missing
    .map((m: unknown) => {
      if (m === null || typeof m !== 'object') return '';
      const r = m as { need?: unknown; have?: unknown; of?: { role?: unknown; members?: unknown } };
      const need = typeof r.need === 'number' ? r.need : 0;
      const have = typeof r.have === 'number' ? r.have : 0;
      const of =
        typeof r.of?.role === 'string'
          ? `role ${r.of.role}`
          : Array.isArray(r.of?.members)
            ? r.of.members.join('/')
            : '?';
      return `${need - have} approval(s) of ${of}`;
    })
    .filter((x) => x !== '')
    .join('; ');
}

/** A full id, or a unique prefix of a pending intent's id (at least 8 hex digits). */
export async function resolveIntentId(s: Session, text: string): Promise<string> {
  if (/^[0-9a-f]{64}$/.test(text)) return text;
  if (!/^[0-9a-f]{8,63}$/.test(text))
    throw new UsageError('the intent id is 64 hex digits (or a unique prefix of 8 or more)');
  const candidates = (await s.client.allIntents({}, 10_000)).filter((i) => i.id.startsWith(text));
  if (candidates.length === 1) return candidates[0]!.id;
  if (candidates.length === 0) throw new CustosError('NOT_FOUND', `no intent id starts with ${text}`);
  throw new UsageError(`${candidates.length} intents start with ${text}: give more digits`);
}

function decideCommand(decision: 'approve' | 'reject'): Command {
  const verb = decision === 'approve' ? 'Approve' : 'Reject';
  return {
    name: decision,
    summary:
      decision === 'approve'
        ? 'check an intent and its transaction yourself, then approve it on this device'
        : 'reject an intent on this device (one valid reject vetoes it)',
    help: `custos ${decision} <intent id> [--yes] [--as <profile>] [--json]

Fetches the intent and, once built, its transaction, and checks them here,
trusting nothing the coordinator says: the governance chain from the pinned
genesis, the requester's signature, and the transaction decoded against the
wallet's own descriptor, which must pay exactly the intent's destination and
amount (else UNEXPECTED_OUTPUT, exit 1). Shows wallet, amount, destination
with its address-book label and warnings (first payment to this address,
look-alike of a known address, large against history), asks
"${verb}? [y/N]" and signs the ${decision === 'approve' ? 'approval' : 'rejection'} with this device.

Options:
  --yes                ${decision} without asking (scripts)
  --expires <time>     how long the decision stays valid (default: until the intent expires)

Example:
  custos ${decision} 5d0c3a1e --as approver-1
${COMMON_HELP}`,
    options: { yes: { type: 'boolean', short: 'y' }, expires: { type: 'string' } },
    positionals: 1,
    async run(ctx, args) {
      const idText = args.positional(0, 'the intent id');
      const s = await openSession(ctx, args);
      const { state } = await s.governance();
      const id = await resolveIntentId(s, idText);
      const view = await s.client.intent(id);
      const history = await s.client
        .allIntents({ status: 'confirmed', wallet: view.intent.intent.wallet }, 10_000)
        .catch(() => [] as IntentView[]);
      const now = ctx.now();
      const review = reviewIntent({ state, pinnedGenesis: s.genesis, view, history, now });
      const json = args.bool('json');
      if (!json) {
        ctx.io.out(formatReview(review, now));
        ctx.io.out(`Status     ${view.status}${view.statusCode === null ? '' : ` (${view.statusCode})`}\n`);
      }
      const first = review.problems[0];
      if (decision === 'approve' && first !== undefined) {
        if (json) ctx.io.out(toJson({ id, decided: false, review: reviewJson(review) }));
        throw new CustosError(first.code, `not approving: ${first.message}`);
      }
      if (review.id === null) throw new CustosError('INVALID_VALUE', 'the intent has no digest');
      const mine = view.approvals.find((a) => a.approval.approver === s.identity.member);
      if (mine !== undefined) {
        const d = mine.approval.decision === 'approve' ? 'approved' : 'rejected';
        throw new CustosError(
          'DUPLICATE_APPROVER',
          `you (${s.identity.member}) already ${d} this intent ${relativeTime(mine.approval.at, now)}; it is now ${view.status}, and nothing was signed`,
        );
      }
      if (view.status !== 'pending') {
        throw new CustosError(
          'CONFLICT',
          `the intent is already ${view.status}${view.statusCode === null ? '' : ` (${view.statusCode})`}: a decision now changes nothing, and nothing was signed`,
        );
      }
      if (s.identity.member === review.intent.requester) {
        throw new CustosError(
          'SELF_APPROVAL',
          'you asked for this transfer: another member must decide on it',
        );
      }
      if (!args.bool('yes')) {
        const yes = await confirm(`${verb}?`);
        if (!yes) {
          ctx.io.err('nothing signed\n');
          return 1;
        }
      }
      const at = ctx.now();
      const expiresText = args.str('expires');
      const expiresAt =
        expiresText === undefined
          ? Math.max(review.intent.expiresAt, at + 60_000)
          : at + parseDuration(expiresText, 'expires');
      const body: Approval = approvalSchema.parse({
        v: 1,
        intent: review.id,
        approver: s.identity.member,
        device: s.identity.device,
        decision,
        at,
        expiresAt,
      });
      const signed = { approval: body, signature: signDigest(s.identity.secretKey, approvalDigest(body)) };
      const after = await s.client.postApproval(review.id, signed);
      if (json) {
        ctx.io.out(
          toJson({
            id: review.id,
            decided: true,
            decision,
            status: after.status,
            review: reviewJson(review),
          }),
        );
      } else {
        ctx.io.out(
          `${decision === 'approve' ? 'approved' : 'rejected'} by ${s.identity.member}; intent is now ${after.status}\n`,
        );
        if (after.status === 'pending') {
          // What still stands between the intent and the signers, as this client evaluates it.
          const next = evaluate({
            state,
            intent: after.intent,
            approvals: after.approvals,
            ledger: [],
            now: ctx.now(),
            receiveAddress: walletReceiveAddress,
          });
          if (next.kind === 'pending' && next.missing.length === 0 && next.cancelWindowEndsAt !== undefined) {
            ctx.io.out(
              `cancel window open until ${new Date(next.cancelWindowEndsAt).toISOString()}: any approver can still reject\n`,
            );
          } else if (next.kind === 'pending') {
            ctx.io.out(
              `still needs ${next.missing.map((m) => `${m.need - m.have} of ${'role' in m.of ? `role ${m.of.role}` : m.of.members.join('/')}`).join('; ')}\n`,
            );
          }
        }
      }
      return 0;
    },
  };
}

export const approveCommand = decideCommand('approve');
export const rejectCommand = decideCommand('reject');

function reviewJson(r: ReturnType<typeof reviewIntent>): unknown {
  return {
    intent: r.intent,
    internal: r.internal,
    destination: r.destination,
    transaction: r.transaction,
    problems: r.problems,
    warnings: r.warnings,
    policy: r.decision.kind === 'deny' ? { kind: 'deny', code: r.decision.code } : { kind: r.decision.kind },
  };
}

export const intentsCommand: Command = {
  name: 'intents',
  summary: 'list intents',
  help: `custos intents [--status pending|approved|signing|signed|broadcast|confirmed|refused|rejected|expired] [--wallet <id>] [--limit n] [--json]
custos intents <intent id> [--json]

Lists intents, newest first as the coordinator orders them, or shows one:
its status, each signer's outcome (signed, or refused with its code), the
transaction id and confirmations. Amounts and destinations are read from the
signed intents themselves.

Example:
  custos intents --status pending
  custos intents 5d0c3a1e
${COMMON_HELP}`,
  options: {
    status: { type: 'string' },
    wallet: { type: 'string' },
    requester: { type: 'string' },
    limit: { type: 'string' },
  },
  positionals: 1,
  async run(ctx, args) {
    const s = await openSession(ctx, args);
    const one = args.positionals[0];
    if (one !== undefined) return showIntent(ctx, s, await resolveIntentId(s, one), args.bool('json'));
    const limit = args.int('limit', { min: 1, max: 100_000 }) ?? 50;
    const list = (
      await s.client.allIntents(
        {
          ...(args.str('status') === undefined ? {} : { status: args.str('status')! }),
          ...(args.str('wallet') === undefined ? {} : { wallet: args.str('wallet')! }),
          ...(args.str('requester') === undefined ? {} : { requester: args.str('requester')! }),
        },
        limit,
      )
    ).slice(0, limit);
    if (args.bool('json')) {
      ctx.io.out(
        toJson(
          list.map((v) => ({
            id: v.id,
            status: v.status,
            statusCode: v.statusCode,
            statusMessage: v.statusMessage,
            wallet: v.intent.intent.wallet,
            asset: v.intent.intent.asset,
            amount: v.intent.intent.amount,
            to: v.intent.intent.to,
            requester: v.intent.intent.requester,
            createdAt: v.intent.intent.createdAt,
            txid: v.txid,
            confirmations: v.confirmations,
            signers: v.signers,
          })),
        ),
      );
      return 0;
    }
    if (list.length === 0) {
      ctx.io.err('no intents\n');
      return 0;
    }
    const now = ctx.now();
    // An EVM asset's amount in its unit, from the verified registry (Bitcoin amounts stay in sat).
    const evm = list.some((v) => v.intent.intent.chain.startsWith('eip155:'));
    const assets = evm ? (await s.governance()).state.assets : null;
    const rows = [['ID', 'STATUS', 'AMOUNT', 'TO', 'REQUESTER', 'CREATED']];
    for (const v of list) {
      const i = v.intent.intent;
      const asset = i.chain.startsWith('eip155:') ? assets?.get(i.asset)?.value : undefined;
      rows.push([
        v.id.slice(0, 12),
        v.statusCode === null ? v.status : `${v.status} (${v.statusCode})`,
        asset === undefined
          ? formatSats(i.amount, i.asset)
          : `${formatAmount(BigInt(i.amount), asset.decimals)} ${asset.symbol}`,
        i.to,
        i.requester,
        relativeTime(i.createdAt, now),
      ]);
    }
    ctx.io.out(table(rows));
    return 0;
  },
};

async function showIntent(ctx: Context, s: Session, id: string, json: boolean): Promise<number> {
  const v = await s.client.intent(id);
  const i = v.intent.intent;
  const now = ctx.now();
  // When a pending intent's cancel window ends, as this client evaluates the policy (not the coordinator's word).
  let cancelWindowEndsAt: number | null = null;
  if (v.status === 'pending') {
    const { state } = await s.governance();
    const d = evaluate({
      state,
      intent: v.intent,
      approvals: v.approvals,
      ledger: [],
      now,
      receiveAddress: walletReceiveAddress,
    });
    if (d.kind === 'pending' && d.missing.length === 0 && d.cancelWindowEndsAt !== undefined) {
      cancelWindowEndsAt = d.cancelWindowEndsAt;
    }
  }
  const out = {
    id: v.id,
    status: v.status,
    statusCode: v.statusCode,
    statusMessage: v.statusMessage,
    cancelWindowEndsAt,
    wallet: i.wallet,
    asset: i.asset,
    amount: i.amount,
    to: i.to,
    requester: i.requester,
    memo: i.memo ?? null,
    createdAt: i.createdAt,
    expiresAt: i.expiresAt,
    approvals: v.approvals.map((a) => ({
      approver: a.approval.approver,
      decision: a.approval.decision,
      at: a.approval.at,
    })),
    signers: v.signers,
    txid: v.txid,
    confirmations: v.confirmations,
    ...(v.safeTx === null ? {} : { executionTxHash: v.safeTx.executionTxHash }),
    ...(v.bumps === undefined || v.bumps.length === 0 ? {} : { bumps: v.bumps }),
  };
  if (json) {
    ctx.io.out(toJson(out));
    return 0;
  }
  const o = ctx.io.out;
  o(`Intent     ${v.id}\n`);
  o(`Status     ${v.status}${v.statusCode === null ? '' : ` (${v.statusCode})`}\n`);
  if (v.statusMessage !== null) o(`Reason     ${v.statusMessage}\n`);
  if (cancelWindowEndsAt !== null) {
    o(
      `Cancel     window ends ${new Date(cancelWindowEndsAt).toISOString()} (${relativeTime(cancelWindowEndsAt, now)}): until then any approver can still reject\n`,
    );
  }
  o(`Amount     ${formatSats(i.amount, i.asset)} from ${i.wallet} to ${i.to}\n`);
  o(
    `Requester  ${i.requester}, ${relativeTime(i.createdAt, now)}${i.memo ? `, memo ${JSON.stringify(i.memo)}` : ''}\n`,
  );
  for (const a of out.approvals) o(`Decision   ${a.approver}: ${a.decision} (${relativeTime(a.at, now)})\n`);
  for (const sg of v.signers) {
    const why = sg.code === null ? '' : ` ${sg.code}${sg.message === null ? '' : `: ${sg.message}`}`;
    o(
      `Signer     ${sg.signer}: ${sg.outcome ?? 'waiting'}${why}${sg.alert === null ? '' : ` (${sg.alert.toUpperCase()} ALERT)`}\n`,
    );
  }
  if (v.txid !== null)
    o(`Txid       ${v.txid}${v.confirmations === null ? '' : `, ${v.confirmations} confirmation(s)`}\n`);
  // A Safe: the txid is the safeTxHash the signers signed; the chain transaction that executed it is apart.
  if (v.safeTx?.executionTxHash != null) o(`Executed   in ${v.safeTx.executionTxHash}\n`);
  // Fee bumps (issue 13): each replacement, what it replaced, and what became of it.
  for (const b of v.bumps ?? []) {
    o(
      `Bump       ${b.txid} (fee ${b.fee} sat) ${b.status}${b.code === null ? '' : ` (${b.code})`}${b.replaces === null ? '' : `, replaces ${b.replaces}`}\n`,
    );
  }
  return 0;
}
