/**
 * `custos status`: is the deployment up, and what does it hold. The
 * organization, its wallets and signers are read from the governance this
 * client verified itself; balances and signer activity are the coordinator's
 * word (availability data) and are labelled as such.
 */
import { networkOfChain, parseDescriptor } from '@custos/bitcoin';
import { type AuditEntry, governanceDigest, type JsonValue } from '@custos/core';
import type { CustosClient } from '../client.js';
import type { Command } from '../command.js';
import { COMMON_HELP } from '../command.js';
import { openSession } from '../context.js';
import { formatSats, relativeTime, toJson } from '../output.js';
import { formatAssetAmount } from '../review-evm.js';

export const statusCommand: Command = {
  name: 'status',
  summary: 'coordinator health, governance head, wallets and balances, signers',
  help: `custos status [--json]

Shows whether the coordinator is up and ready, the organization and its
governance head (verified here from the pinned genesis), each wallet with its
balance as the coordinator reports it, each signer with its last
countersigned audit checkpoint, the critical alerts signers raised
recently (they caught tampering: a rewritten intent, forged approvals, a
forked governance chain), with their code and the signer's own sentence,
and recent fee bumps (\`custos bump\`): the transaction replaced, the
replacement, and whether it was mined in its place.
Exit 1 when the coordinator is not ready.

Example:
  custos status --as approver-1
${COMMON_HELP}`,
  options: {},
  async run(ctx, args) {
    const s = await openSession(ctx, args);
    let health = 'down';
    try {
      await s.client.health();
      health = 'ok';
    } catch {
      health = 'unreachable';
    }
    const ready = await s.client.ready().catch(() => ({ ready: false, body: null as JsonValue | null }));
    const { state } = await s.governance();
    const wallets = await s.client.wallets().catch(() => []);
    const checkpoints = await s.client.checkpoints().catch(() => []);
    const pending = await s.client.intents({ status: 'pending', limit: 200 }).catch(() => null);
    const recent = await recentAudit(s.client).catch(() => []);
    const alerts = await signerAlerts(s.client, recent).catch(() => []);
    const freezes = await recentFreezes(s.client, recent).catch(() => []);
    const bumps = await recentBumps(s.client, recent).catch(() => []);
    const now = ctx.now();
    const lastCheckpoint = new Map<string, { at: number; seq: number }>();
    for (const c of checkpoints) {
      const prev = lastCheckpoint.get(c.checkpoint.signer);
      if (prev === undefined || c.checkpoint.at > prev.at) {
        lastCheckpoint.set(c.checkpoint.signer, { at: c.checkpoint.at, seq: c.checkpoint.seq });
      }
    }
    const walletRows = [...state.wallets.values()].map((w) => {
      const reported = wallets.find((x) => x.id === w.id);
      const network = networkOfChain(w.chain);
      const parsed =
        network === undefined || w.kind !== 'bitcoin-wsh-sortedmulti'
          ? null
          : parseDescriptor(w.descriptor, network);
      return {
        id: w.id,
        label: w.label,
        chain: w.chain,
        assets: w.assets,
        multisig:
          parsed?.ok === true
            ? `${parsed.value.m}-of-${parsed.value.keys.length}`
            : w.kind === 'evm-safe'
              ? `Safe ${w.threshold}-of-${w.owners.length}`
              : w.kind,
        balance: reported?.balance ?? null,
        utxos: w.kind === 'evm-safe' ? null : (reported?.utxos ?? null),
        receiveAddress: reported?.receiveAddress ?? null,
        // EVM Safe: every registered asset's balance, with its unit from the verified asset registry.
        ...(w.kind === 'evm-safe'
          ? {
              balances: (reported?.balances ?? []).map((b) => ({
                asset: b.asset,
                balance: b.balance,
                text: formatAssetAmount(b.balance, state.assets.get(b.asset)?.value, b.asset),
              })),
            }
          : {}),
      };
    });
    const signerRows = [...state.signers.values()].map((sg) => ({
      id: sg.id,
      label: sg.label ?? sg.id,
      lastCheckpointAt: lastCheckpoint.get(sg.id)?.at ?? null,
      lastCheckpointSeq: lastCheckpoint.get(sg.id)?.seq ?? null,
    }));
    const out = {
      coordinator: { url: s.coordinator, health, ready: ready.ready, details: ready.body },
      organization: {
        name: state.name,
        genesis: state.org,
        seq: state.seq,
        head: state.head,
        frozen: state.frozen,
        members: state.members.size,
        addresses: state.addresses.size,
      },
      wallets: walletRows,
      signers: signerRows,
      alerts,
      freezes,
      bumps,
      pendingIntents: pending?.intents.length ?? null,
      as: `${s.identity.member}/${s.identity.device}`,
    };
    if (args.bool('json')) {
      ctx.io.out(toJson(out));
      return ready.ready ? 0 : 1;
    }
    const o = ctx.io.out;
    o(
      `Coordinator  ${s.coordinator}  health ${health}, ${ready.ready ? 'ready' : 'NOT READY'}${readyDetail(ready.body)}\n`,
    );
    o(`Organization ${state.name}  (genesis ${state.org})\n`);
    o(`Governance   seq ${state.seq}, head ${state.head}  verified from the pinned genesis\n`);
    if (state.frozen !== null)
      o(`FROZEN       by ${state.frozen.by} (entry ${state.frozen.seq}): ${state.frozen.reason}\n`);
    o(
      `Members      ${state.members.size}, address book ${state.addresses.size} entr${state.addresses.size === 1 ? 'y' : 'ies'}\n`,
    );
    for (const w of walletRows) {
      if (w.balances !== undefined) {
        const text = w.balances.length === 0 ? '(not reported)' : w.balances.map((b) => b.text).join(', ');
        o(`Wallet       ${w.id} "${w.label}" ${w.chain} ${w.multisig}  balances ${text}\n`);
        if (w.receiveAddress !== null) o(`             Safe at ${w.receiveAddress}\n`);
        continue;
      }
      o(
        `Wallet       ${w.id} "${w.label}" ${w.chain} ${w.multisig}  balance ${w.balance === null ? '(not reported)' : formatSats(w.balance, w.assets[0] ?? 'BTC')}${w.utxos === null ? '' : `, ${w.utxos} utxo(s)`}\n`,
      );
      if (w.receiveAddress !== null) o(`             receive at ${w.receiveAddress}\n`);
    }
    for (const sg of signerRows) {
      o(
        `Signer       ${sg.id}  ${sg.lastCheckpointAt === null ? 'no checkpoint yet' : `last checkpoint ${relativeTime(sg.lastCheckpointAt, now)} (audit seq ${sg.lastCheckpointSeq})`}\n`,
      );
    }
    for (const a of alerts) {
      o(
        `ALERT        ${a.signer} raised a ${a.severity} alert ${relativeTime(a.at, now)} on intent ${a.intent.slice(0, 12)}: ${a.code ?? 'no code'}${a.message === null ? '' : `: ${a.message}`}\n`,
      );
      o(`             \`custos intents ${a.intent.slice(0, 12)}\` shows it; audit entry ${a.seq}\n`);
    }
    for (const f of freezes) {
      const inForce = state.frozen !== null && state.frozen.seq === f.seq;
      o(
        `ALERT        ${f.by} froze signing ${relativeTime(f.at, now)} (governance entry ${f.seq}, ${inForce ? 'in force' : 'lifted since'}): ${f.reason}\n`,
      );
      o(`             audit entry ${f.auditSeq}; docs/operations.md "The runbook after a freeze"\n`);
    }
    for (const b of bumps) {
      const what =
        b.status === 'mined'
          ? 'mined in its place'
          : b.status === 'replaced'
            ? 'dropped: another transaction of the intent was mined'
            : b.status === 'refused'
              ? `refused (${b.code ?? 'no code'})`
              : b.status;
      o(
        `Bump         intent ${b.intent.slice(0, 12)} ${relativeTime(b.at, now)}: ${b.replaces ?? 'its transaction'} replaced by ${b.txid} (fee ${b.fee} sat), ${what}\n`,
      );
    }
    if (out.pendingIntents !== null)
      o(`Pending      ${out.pendingIntents} intent(s) waiting for approvals\n`);
    o(`Acting as    ${out.as}\n`);
    return ready.ready ? 0 : 1;
  },
};

/** How far back in the audit log `custos status` looks for signers' alerts, and how many it shows. */
const ALERT_LOOKBACK = 1000;

/** The last ALERT_LOOKBACK audit entries, read once for the alerts, freezes and bumps `custos status` shows. */
async function recentAudit(client: CustosClient): Promise<AuditEntry[]> {
  const head = (await client.audit(0, 1)).head;
  if (head === null) return [];
  const from = Math.max(0, head.seq - ALERT_LOOKBACK + 1);
  return [...(await client.audit(from, ALERT_LOOKBACK)).entries];
}
const ALERTS_SHOWN = 10;

interface SignerAlert {
  readonly seq: number;
  readonly at: number;
  readonly signer: string;
  readonly intent: string;
  readonly severity: string;
  readonly code: string | null;
  readonly message: string | null;
}

/**
 * The critical alerts signers raised recently (they caught tampering: a
 * rewritten intent, forged approvals, a forked governance chain): the
 * audit log's \`alert\` entries whose actor is a signer, newest first, with
 * the signer's own code and sentence from the intent they concern.
 */
async function signerAlerts(client: CustosClient, entries: readonly AuditEntry[]): Promise<SignerAlert[]> {
  const found = entries
    .filter((e) => e.event === 'alert' && e.actor.startsWith('signer:'))
    .reverse()
    .slice(0, ALERTS_SHOWN);
  const out: SignerAlert[] = [];
  for (const e of found) {
    const signer = e.actor.slice('signer:'.length);
    const view = await client.intent(e.subject).catch(() => null);
    const outcome = view?.signers.filter((x) => x.signer === signer && x.alert !== null).at(-1);
    out.push({
      seq: e.seq,
      at: e.at,
      signer,
      intent: e.subject,
      severity: outcome?.alert ?? 'critical',
      code: outcome?.code ?? null,
      message: outcome?.message ?? null,
    });
  }
  return out;
}

interface RecentFreeze {
  /** The freeze's governance entry. */
  readonly seq: number;
  readonly auditSeq: number;
  readonly at: number;
  /** The key that signed it: an admin's device, or a watcher's (issue 12). */
  readonly by: string;
  readonly reason: string;
}

/**
 * The freezes of the last ALERT_LOOKBACK audit entries, newest first: each
 * is a critical `alert` entry naming the freeze's governance entry, whose
 * reason (a watcher's names the transaction it could not explain) is read
 * from the entry whose digest the audit entry gives.
 */
async function recentFreezes(client: CustosClient, entries: readonly AuditEntry[]): Promise<RecentFreeze[]> {
  const found = entries
    .filter((e) => e.event === 'alert' && e.actor.startsWith('member:') && /^[0-9]+$/.test(e.subject))
    .reverse()
    .slice(0, ALERTS_SHOWN);
  const out: RecentFreeze[] = [];
  for (const e of found) {
    const seq = Number(e.subject);
    const [signed] = await client.governanceEntries(seq - 1, seq);
    if (signed === undefined || signed.entry.kind !== 'freeze' || governanceDigest(signed.entry) !== e.digest)
      continue;
    const reason = (signed.entry.body as { reason?: unknown }).reason;
    out.push({
      seq,
      auditSeq: e.seq,
      at: e.at,
      by: e.actor.slice('member:'.length).split('/')[0] ?? e.actor,
      reason: typeof reason === 'string' ? reason : '',
    });
  }
  return out;
}

/** Fee bumps shown by `custos status`, at most. */
const BUMPS_SHOWN = 10;

interface RecentBump {
  readonly intent: string;
  readonly at: number;
  /** The transaction it replaced (the original or an earlier replacement); null before it is broadcast. */
  readonly replaces: string | null;
  /** The replacement. */
  readonly txid: string;
  readonly fee: string;
  readonly status: string;
  readonly code: string | null;
}

/**
 * Fee bumps of recent withdrawals (issue 13): the audit log's
 * \`bump.requested\` entries, newest first, each with what the intent's view
 * says of it now: the transaction replaced, the replacement and its status.
 */
async function recentBumps(client: CustosClient, entries: readonly AuditEntry[]): Promise<RecentBump[]> {
  const requested = entries.filter((e) => e.event === 'bump.requested').reverse();
  const out: RecentBump[] = [];
  const views = new Map<string, Awaited<ReturnType<CustosClient['intent']>> | null>();
  for (const e of requested) {
    if (out.length >= BUMPS_SHOWN) break;
    if (!views.has(e.subject)) views.set(e.subject, await client.intent(e.subject).catch(() => null));
    const b = views.get(e.subject)?.bumps?.find((x) => x.id === e.digest);
    if (b === undefined) continue;
    out.push({
      intent: e.subject,
      at: e.at,
      replaces: b.replaces,
      txid: b.txid,
      fee: b.fee,
      status: b.status,
      code: b.code,
    });
  }
  return out;
}

function readyDetail(body: JsonValue | null): string {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return '';
  const chain = body.chain;
  if (
    chain !== null &&
    typeof chain === 'object' &&
    !Array.isArray(chain) &&
    typeof chain.height === 'number'
  ) {
    return ` (chain height ${chain.height})`;
  }
  return '';
}
