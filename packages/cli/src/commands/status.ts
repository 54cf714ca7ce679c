/**
 * `custos status`: is the deployment up, and what does it hold. The
 * organization, its wallets and signers are read from the governance this
 * client verified itself; balances and signer activity are the coordinator's
 * word (availability data) and are labelled as such.
 */
import { networkOfChain, parseDescriptor } from '@custos/bitcoin';
import type { JsonValue } from '@custos/core';
import type { Command } from '../command.js';
import { COMMON_HELP } from '../command.js';
import { openSession } from '../context.js';
import { formatSats, relativeTime, toJson } from '../output.js';

export const statusCommand: Command = {
  name: 'status',
  summary: 'coordinator health, governance head, wallets and balances, signers',
  help: `custos status [--json]

Shows whether the coordinator is up and ready, the organization and its
governance head (verified here from the pinned genesis), each wallet with its
balance as the coordinator reports it, and each signer with its last
countersigned audit checkpoint. Exit 1 when the coordinator is not ready.

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
      const parsed = network === undefined ? null : parseDescriptor(w.descriptor, network);
      return {
        id: w.id,
        label: w.label,
        chain: w.chain,
        assets: w.assets,
        multisig: parsed?.ok === true ? `${parsed.value.m}-of-${parsed.value.keys.length}` : w.kind,
        balance: reported?.balance ?? null,
        utxos: reported?.utxos ?? null,
        receiveAddress: reported?.receiveAddress ?? null,
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
    if (out.pendingIntents !== null)
      o(`Pending      ${out.pendingIntents} intent(s) waiting for approvals\n`);
    o(`Acting as    ${out.as}\n`);
    return ready.ready ? 0 : 1;
  },
};

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
