/**
 * `custos governance propose|approve|show`: the admins' commands.
 *
 * An entry is built here from the state this client verified (org, next seq,
 * head as prev: core buildEntry), signed on this device, and co-signed by the
 * other admins on theirs after they have seen it decoded by their own client.
 * Look-alikes of known addresses are flagged in every client that shows an
 * address.add (THREATS 21), and loosening kinds say that they wait out the
 * delay on every signer's own clock (THREATS 18, 19).
 */
import { existsSync, readFileSync } from 'node:fs';
import {
  ADMIN_ROLE,
  buildEntry,
  CustosError,
  type Digest,
  effectiveDelay,
  effectiveQuorum,
  GOVERNANCE_EFFECTS,
  GOVERNANCE_KINDS,
  type GovernanceEntry,
  type GovernanceEntryOf,
  type GovernanceState,
  governanceDigest,
  governanceSummary,
  isAutomatedRule,
  type LaterKind,
  lookalikeMessage,
  lookalikesInForce,
  lookupDevice,
  parseJson,
  policiesInForce,
  signEntry,
  signGovernanceEntry,
  verifyDeviceSignature,
  WATCHER_ROLE,
} from '@custos/core';
import type { ProposalView } from '../client.js';
import { COMMON_HELP, type Command } from '../command.js';
import { openSession } from '../context.js';
import { formatSats, relativeTime, toJson, UsageError } from '../output.js';
import { confirm } from '../password.js';

const LATER_KINDS = GOVERNANCE_KINDS.filter((k): k is LaterKind => k !== 'genesis');

/** A JSON value given inline (`{...}`) or as a file path. */
export function readJsonArg(text: string, what: string): unknown {
  const trimmed = text.trim();
  const source = trimmed.startsWith('{') || trimmed.startsWith('[') ? trimmed : readFileText(text, what);
  return parseJson(source, { maxBytes: 4 << 20 });
}

function readFileText(path: string, what: string): string {
  if (!existsSync(path)) throw new UsageError(`${what}: ${path} is neither JSON nor a file`);
  return readFileSync(path, 'utf8');
}

export const governancePropose: Command = {
  name: 'governance propose',
  summary: 'propose a governance change, signed on this device',
  help: `custos governance propose <kind> --body <json|file> [--yes]

Builds the next governance entry from the state verified here (org, next
sequence number, current head) and signs it with this admin's device. If the
signatures reach the admin quorum it is applied at once; otherwise the other
admins co-sign it with \`custos governance approve <id>\`. A freeze needs one
admin or the watcher.

Kinds: ${LATER_KINDS.join(', ')}

Example:
  custos governance propose address.add --as admin-1 \\
    --body '{"id":"exchange-2","chain":"bitcoin:regtest","address":"bcrt1q...","label":"Exchange deposit 2"}'
  custos governance propose freeze --as watcher-1 --body '{"reason":"lost laptop"}'
${COMMON_HELP}`,
  options: { body: { type: 'string' }, yes: { type: 'boolean', short: 'y' } },
  positionals: 1,
  async run(ctx, args) {
    const kind = args.positional(0, 'the kind of change');
    if (!(LATER_KINDS as readonly string[]).includes(kind)) {
      throw new UsageError(`unknown kind ${kind}; one of ${LATER_KINDS.join(', ')}`);
    }
    const body = readJsonArg(args.required('body', 'the change as JSON or a file'), '--body');
    const s = await openSession(ctx, args);
    const { state } = await s.governance();
    const now = ctx.now();
    // The body is checked against the kind's schema inside buildEntry (a CustosError if it does not fit).
    const entry = buildEntry(state, kind as LaterKind, body as GovernanceEntryOf<LaterKind>['body'], now);
    ctx.io.out(describeEntry(entry, state, now));
    if (!args.bool('yes') && !(await confirm('Sign and propose?'))) {
      ctx.io.err('nothing signed\n');
      return 1;
    }
    const signed = signGovernanceEntry(entry, [s.identity]);
    const result = await s.client.propose(signed);
    if (args.bool('json')) ctx.io.out(toJson({ digest: governanceDigest(entry), seq: entry.seq, ...result }));
    else if (result.status === 'applied') ctx.io.out(`applied as governance entry ${entry.seq}\n`);
    else {
      ctx.io.out(`${result.id ?? governanceDigest(entry)}\n`);
      ctx.io.err(
        `proposal open: ${effectiveQuorum(state, now) - 1} more admin signature(s) needed; others run \`custos governance approve ${result.id ?? governanceDigest(entry)}\`\n`,
      );
    }
    return 0;
  },
};

export const governanceApprove: Command = {
  name: 'governance approve',
  summary: 'co-sign an open governance proposal after checking it',
  help: `custos governance approve <proposal id> [--yes]

Fetches the open proposal, checks that it extends the governance head
verified here, shows it decoded (with look-alike warnings for new addresses
and the delay of loosening changes), verifies the signatures it already
carries, asks, and adds this admin's signature.

Example:
  custos governance approve 9c2e...41 --as admin-2
${COMMON_HELP}`,
  options: { yes: { type: 'boolean', short: 'y' } },
  positionals: 1,
  async run(ctx, args) {
    const id = args.positional(0, 'the proposal id');
    const s = await openSession(ctx, args);
    const { state } = await s.governance();
    const proposals = await s.client.proposals('open');
    const found = proposals.filter((p) => p.id === id || (id.length >= 8 && p.id.startsWith(id)));
    if (found.length !== 1) {
      throw new CustosError(
        'NOT_FOUND',
        found.length === 0 ? `no open proposal ${id}` : `${id} is ambiguous`,
      );
    }
    const p = found[0]!;
    const entry = p.entry;
    const digest = governanceDigest(entry);
    if (entry.org !== s.genesis)
      throw new CustosError('WRONG_ORG', 'the proposal is for another organization');
    if (entry.seq !== state.seq + 1 || entry.prev !== state.head) {
      throw new CustosError(
        'GOVERNANCE_CHAIN_BROKEN',
        `the proposal is for seq ${entry.seq} after ${entry.prev}, but the verified head is seq ${state.seq} ${state.head}: it is stale`,
      );
    }
    const now = ctx.now();
    ctx.io.out(describeEntry(entry, state, now));
    ctx.io.out(describeSignatures(p, state, digest));
    if (p.signatures.some((x) => x.member === s.identity.member)) {
      ctx.io.err(`${s.identity.member} already signed this proposal\n`);
      return 0;
    }
    if (!args.bool('yes') && !(await confirm('Co-sign?'))) {
      ctx.io.err('nothing signed\n');
      return 1;
    }
    const sig = signEntry(entry, s.identity);
    const result = await s.client.cosign(p.id, [sig]);
    if (args.bool('json')) ctx.io.out(toJson({ id: p.id, result }));
    else {
      const status =
        result !== null &&
        typeof result === 'object' &&
        !Array.isArray(result) &&
        typeof result.status === 'string'
          ? result.status
          : 'signed';
      ctx.io.out(`co-signed by ${s.identity.member}: ${status}\n`);
    }
    return 0;
  },
};

export const governanceShow: Command = {
  name: 'governance show',
  summary: 'show the verified governance state (and open proposals)',
  help: `custos governance show [--proposals] [--json]

Prints the governance state this client verified from the pinned genesis:
members with roles and devices, quorum and delay, policy rules and limits,
address book, wallets, signers, and whether the organization is frozen.
With --proposals, the open proposals too.

Example:
  custos governance show --proposals
${COMMON_HELP}`,
  options: { proposals: { type: 'boolean' } },
  async run(ctx, args) {
    const s = await openSession(ctx, args);
    const { state } = await s.governance();
    const now = ctx.now();
    const proposals = args.bool('proposals') ? await s.client.proposals('open') : [];
    if (args.bool('json')) {
      ctx.io.out(toJson({ state: governanceSummary(state, now), proposals }));
      return 0;
    }
    const o = ctx.io.out;
    o(`Organization ${state.name}\n  genesis ${state.org}\n  head    seq ${state.seq} ${state.head}\n`);
    o(
      `  quorum  ${effectiveQuorum(state, now)} admin(s); loosening changes wait ${Math.round(effectiveDelay(state, now) / 60_000)} min\n`,
    );
    if (state.frozen !== null)
      o(`  FROZEN by ${state.frozen.by} (entry ${state.frozen.seq}): ${state.frozen.reason}\n`);
    o('Members\n');
    for (const m of state.members.values()) {
      const roles = [...m.roles].map(([r, from]) =>
        from > now ? `${r} (from ${relativeTime(from, now)})` : r,
      );
      const devices = [...m.devices].map(([d, st]) => `${d}${st.revoked ? ' (revoked)' : ''}`);
      o(
        `  ${m.id.padEnd(14)} ${m.name}  roles: ${roles.join(', ') || '-'}  devices: ${devices.join(', ')}\n`,
      );
    }
    o('Policy\n');
    for (const p of policiesInForce(state, now)) {
      for (const r of p.rules) {
        const m = r.match;
        const range = `${m.minAmount ?? '0'}..${m.maxAmount ?? '∞'} sat`;
        const groups = (r.approvals ?? [])
          .map((g) => `${g.m} of ${g.role ?? g.members?.join('/')}`)
          .join(' + ');
        o(
          `  rule ${r.id}: ${r.action} ${range} to ${m.destination.kind === 'wallets' ? `wallet ${m.destination.wallets.join(', ')} (internal transfer)` : m.destination.kind}${groups ? `, approvals ${groups}` : isAutomatedRule(r) ? ', no approval (automated, bounded by the limits)' : ''}${r.cancelWindowMs ? `, cancel window ${Math.round(r.cancelWindowMs / 1000)} s` : ''}\n`,
        );
      }
      for (const l of p.limits)
        o(
          `  limit ${l.id}: ${formatSats(l.max, l.asset)} per ${Math.round(l.windowMs / 3_600_000)} h (${l.scope})\n`,
        );
      for (const c of p.feeCaps) o(`  fee cap ${c.asset}: ${c.maxFee} sat, ${c.maxFeeRate} sat/vB\n`);
      o(
        `  look-alikes: same first ${p.lookalike.prefix} and last ${p.lookalike.suffix} characters -> ${p.lookalike.action}\n`,
      );
    }
    o('Address book\n');
    for (const { value: a, activeFrom } of state.addresses.values()) {
      o(
        `  ${a.id.padEnd(18)} ${a.address}  ${a.label}${activeFrom > now ? ` (active ${relativeTime(activeFrom, now)})` : ''}\n`,
      );
    }
    o('Wallets\n');
    for (const w of state.wallets.values())
      o(
        `  ${w.id} "${w.label}" ${w.chain} ${w.kind === 'bitcoin-wsh-sortedmulti' ? w.descriptor : `Safe ${w.address}`}\n`,
      );
    o('Signers\n');
    for (const sg of state.signers.values())
      o(`  ${sg.id} ${sg.publicKey}${sg.label ? ` "${sg.label}"` : ''}\n`);
    if (args.bool('proposals')) {
      o(`Open proposals (${proposals.length})\n`);
      for (const p of proposals)
        o(`  ${p.id}  seq ${p.entry.seq} ${p.entry.kind}, ${p.signatures.length} signature(s)\n`);
    }
    return 0;
  },
};

/** An entry for a person: kind, body, and what a careful admin must know about it. */
export function describeEntry(entry: GovernanceEntry, state: GovernanceState, now: number): string {
  const lines = [`Governance entry ${entry.seq}: ${entry.kind}`, JSON.stringify(entry.body, null, 2)];
  // How the change binds comes from core's one table (GOVERNANCE_EFFECTS), never a list of our own.
  if (entry.kind !== 'genesis') {
    const row = GOVERNANCE_EFFECTS[entry.kind];
    const delay = Math.round(effectiveDelay(state, now) / 60_000);
    if (row.effect === 'widens' || row.effect === 'both') {
      lines.push(
        `NOTE: ${row.effect === 'widens' ? 'a loosening change' : 'what this change adds'} takes effect ${delay} min after each signer first sees it: ${row.how}`,
      );
    } else {
      lines.push(`NOTE: takes effect at once: ${row.how}`);
    }
  }
  if (entry.kind === 'address.add') {
    const { chain, address } = entry.body;
    const lookalikes = lookalikesInForce(state, chain, address, policiesInForce(state, now), now);
    if (lookalikes.entries.length > 0) {
      lines.push(`WARNING LOOKALIKE_ADDRESS: ${lookalikeMessage(address, lookalikes.entries)}`);
    }
  }
  if (entry.kind === 'freeze' || entry.kind === 'unfreeze') {
    lines.push(
      entry.kind === 'freeze'
        ? 'NOTE: every signer refuses everything until a quorum unfreezes'
        : 'NOTE: signing resumes',
    );
  }
  return `${lines.join('\n')}\n`;
}

function describeSignatures(p: ProposalView, state: GovernanceState, digest: Digest): string {
  const lines: string[] = [];
  for (const sig of p.signatures) {
    const d = lookupDevice(state, sig.member, sig.device, Date.now());
    const holds = state.members.get(sig.member)?.roles;
    const role = holds?.has(ADMIN_ROLE) ? 'admin' : holds?.has(WATCHER_ROLE) ? 'watcher' : 'not an admin';
    const ok = d.ok && verifyDeviceSignature(d.device, digest, sig.signature).ok;
    lines.push(`  signed by ${sig.member}/${sig.device} (${role}): ${ok ? 'verifies' : 'DOES NOT VERIFY'}`);
  }
  return `${lines.join('\n')}\n`;
}
