/**
 * `custos init`: creating the organization. The genesis is the trust anchor
 * (docs/architecture.md "Trust model"): its digest is pinned in every signer and client,
 * so it is built here, on an admin's machine, from public keys the people
 * brought, and signed by the admins on their own devices: by the local
 * profiles at once, or by the others with `custos init sign <file>` in turn.
 * Once a quorum has signed, it is posted to the coordinator and this client
 * pins its digest.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { isBitcoinNetworkName } from '@custos/bitcoin';
import {
  buildGenesis,
  CustosError,
  createGenesisState,
  decode,
  type GenesisBody,
  type GovernanceEntry,
  type GovernanceSignature,
  governanceDigest,
  governanceEntry,
  governanceSignature,
  type Member,
  type SignedGovernanceEntry,
  type SignerRecord,
  schema,
  signEntry,
} from '@custos/core';
import { type Args, parseDuration } from '../args.js';
import { CustosClient, memberSigner } from '../client.js';
import { COMMON_HELP, type Command } from '../command.js';
import { type Context, homeOf } from '../context.js';
import { type DeviceIdentity, unlockDevice } from '../device.js';
import {
  addressesFrom,
  defaultPolicy,
  descriptorKeyFrom,
  genesisBody,
  mergeMembers,
  peopleFrom,
  signerFrom,
  walletOf,
} from '../genesis.js';
import type { Home } from '../home.js';
import { toJson, UsageError } from '../output.js';
import { confirm } from '../password.js';
import { readJsonArg } from './governance.js';

export const initCommand: Command = {
  name: 'init',
  summary: 'create the organization: build, sign and post the genesis',
  help: `custos init --name <org> --admins <file.json> [options]

Builds the genesis: the admins (with their public device keys), the other
members, the admin quorum and the delay of loosening changes, the first
policy, the address book, and a wallet from the signers' keys (m-of-n). It is
signed by the admins whose profiles are on this machine; when they reach the
quorum it is posted to the coordinator and its digest printed: pin it in
every signer config ("genesis") and every client (\`custos config --genesis\`).
Otherwise it is written to --out for the other admins: \`custos init sign
<file>\` on their machines, then \`custos init submit <file>\`.

Options:
  --name <org>                the organization's name
  --admins <file.json>        admins: [{ "id", "name"?, "device", "publicKey" }] (\`custos keys show --json\`)
  --members <file.json>       other members with roles: [{ "id", "roles": ["approver"], "device", "publicKey" }]
  --quorum <n>                admin signatures per governance change (default: 2, or 1 with one admin)
  --delay <time>              how long loosening changes wait on each signer (default 24h)
  --policy <file.json>        the first policy (default: address book only, --approvals approvers, fee caps)
  --approvals <n>             approvers the default policy needs (default 2)
  --addresses <file.json>     the address book: [{ "id", "chain", "address", "label", "tags"? }]
  --signers <file,...>        signer keystore public halves, as \`custos signer init\` prints them
  --signer-xpubs <key,...>    more wallet keys, [fingerprint/path]xpub (an offline backup)
  --threshold <m>             signatures the wallet needs (default: a majority of its keys)
  --network <name>            regtest, testnet, signet or mainnet (required with wallet keys)
  --wallet-id <id>            default btc-main
  --wallet-label <text>       default "Main BTC"
  --sign-as <profile,...>     which local admin profiles sign (default: every local admin profile)
  --out <file>                also write the signed genesis to this file
  --yes                       do not ask before signing

Example:
  custos init --name "Acme Custody" --admins admins.json --members members.json \\
    --signers signer-1.pub.json,signer-2.pub.json --signer-xpubs "[a1b2c3d4/48h/1h/0h/2h]tpub..." \\
    --threshold 2 --network regtest --addresses book.json --coordinator http://127.0.0.1:7340
${COMMON_HELP}`,
  options: {
    name: { type: 'string' },
    admins: { type: 'string' },
    members: { type: 'string' },
    quorum: { type: 'string' },
    delay: { type: 'string' },
    policy: { type: 'string' },
    approvals: { type: 'string' },
    addresses: { type: 'string' },
    signers: { type: 'string', multiple: true },
    'signer-xpubs': { type: 'string', multiple: true },
    threshold: { type: 'string' },
    network: { type: 'string' },
    'wallet-id': { type: 'string' },
    'wallet-label': { type: 'string' },
    'sign-as': { type: 'string' },
    out: { type: 'string' },
    yes: { type: 'boolean', short: 'y' },
  },
  async run(ctx, args) {
    const name = args.required('name', "the organization's name");
    const admins = peopleFrom(
      readJsonArg(args.required('admins', 'a JSON file of admins'), '--admins'),
      'admins',
      'admin',
    );
    const others =
      args.str('members') === undefined
        ? []
        : peopleFrom(readJsonArg(args.str('members')!, '--members'), 'members');
    const members = mergeMembers([admins, others]);
    const adminCount = members.filter((m) => m.roles.includes('admin')).length;
    const quorum = args.int('quorum', { min: 1, max: 100 }) ?? Math.min(2, adminCount);
    const delayMs = parseDuration(args.str('delay') ?? '24h', 'delay');

    const signerInfos = args.list('signers').map((f) => signerFrom(readJsonArg(f, '--signers'), f));
    const extraKeys = args.list('signer-xpubs').map(descriptorKeyFrom);
    const keys = [...signerInfos.map((s) => s.key), ...extraKeys];
    const wallets = [];
    const signers: SignerRecord[] = signerInfos.map((s) => s.record);
    if (keys.length > 0) {
      const network = args.str('network') ?? signerInfos[0]?.network;
      if (network === undefined || !isBitcoinNetworkName(network)) {
        throw new UsageError('--network is required with wallet keys (regtest, testnet, signet or mainnet)');
      }
      for (const s of signerInfos) {
        if (s.network !== network)
          throw new UsageError(`signer ${s.record.id} is a ${s.network} keystore, not ${network}`);
      }
      const threshold =
        args.int('threshold', { min: 1, max: keys.length }) ?? Math.floor(keys.length / 2) + 1;
      wallets.push(
        walletOf({
          id: args.str('wallet-id') ?? 'btc-main',
          label: args.str('wallet-label') ?? 'Main BTC',
          network,
          threshold,
          keys,
        }),
      );
    }
    const policy =
      args.str('policy') === undefined
        ? defaultPolicy(
            wallets.map((w) => w.id),
            args.int('approvals', { min: 1, max: 100 }) ?? 2,
          )
        : (readJsonArg(args.str('policy')!, '--policy') as GenesisBody['policy']);
    const addresses =
      args.str('addresses') === undefined
        ? []
        : addressesFrom(readJsonArg(args.str('addresses')!, '--addresses'));
    const body = genesisBody({ name, quorum, delayMs, members, policy, addresses, wallets, signers });
    const entry = buildGenesis(body, ctx.now());
    ctx.io.err(describeGenesis(entry));
    return signAndMaybeSubmit(ctx, args, { entry, signatures: [] });
  },
};

export const initSign: Command = {
  name: 'init sign',
  summary: 'add your admin signature to a genesis file',
  help: `custos init sign <genesis.json> [--sign-as <profile,...>] [--yes]

Shows the genesis in the file, asks, and adds the signatures of this
machine's admin profiles. When the quorum is reached and a coordinator is
configured, posts it (like \`custos init submit\`).

Example:
  custos init sign genesis.json --as admin-2
${COMMON_HELP}`,
  options: { 'sign-as': { type: 'string' }, out: { type: 'string' }, yes: { type: 'boolean', short: 'y' } },
  positionals: 1,
  async run(ctx, args) {
    const file = args.positional(0, 'the genesis file');
    const signed = readGenesisFile(file);
    ctx.io.err(describeGenesis(signed.entry));
    return signAndMaybeSubmit(ctx, args, signed, args.str('out') ?? file);
  },
};

export const initSubmit: Command = {
  name: 'init submit',
  summary: 'post a genesis signed by a quorum to the coordinator, and pin it',
  help: `custos init submit <genesis.json>

Checks that the genesis in the file is signed by a quorum of the admins it
lists, posts it to the coordinator (POST /v1/governance/genesis), and pins its
digest in this client's config.

Example:
  custos init submit genesis.json --coordinator http://127.0.0.1:7340 --as admin-1
${COMMON_HELP}`,
  options: {},
  positionals: 1,
  async run(ctx, args) {
    const signed = readGenesisFile(args.positional(0, 'the genesis file'));
    return submit(ctx, args, signed);
  },
};

function readGenesisFile(path: string): SignedGovernanceEntry {
  const signed = decode(signedGenesisFile, readFileSync(path), { maxBytes: 16 << 20, maxDepth: 64 });
  if (signed.entry.kind !== 'genesis')
    throw new CustosError('INVALID_VALUE', `${path} does not hold a genesis`);
  return { entry: signed.entry, signatures: signed.signatures };
}

/** A genesis file may carry no signature yet (written for the first signer). */
const signedGenesisFile = schema.object({
  entry: governanceEntry,
  signatures: schema.array(governanceSignature, { max: 100 }),
});

async function localAdmins(
  ctx: Context,
  args: Args,
  home: Home,
  entry: GovernanceEntry,
  already: readonly GovernanceSignature[],
): Promise<DeviceIdentity[]> {
  if (entry.kind !== 'genesis') return [];
  const wanted = args.list('sign-as');
  const chosen = wanted.length > 0 ? wanted : home.profiles();
  const out: DeviceIdentity[] = [];
  for (const profile of chosen) {
    const p = home.readProfile(profile);
    const m: Member | undefined = entry.body.members.find((x) => x.id === p.member);
    const registered = m?.devices.some(
      (d) => d.id === p.device && d.kind === 'ed25519' && d.publicKey === p.publicKey,
    );
    if (m === undefined || !m.roles.includes('admin') || registered !== true) {
      if (wanted.length > 0)
        throw new UsageError(`profile ${profile} is not an admin device of this genesis`);
      continue;
    }
    if (already.some((s) => s.member === p.member) || out.some((d) => d.member === p.member)) continue;
    out.push(await unlockDevice(home, profile, { passwordFile: args.str('password-file'), env: ctx.env }));
  }
  return out;
}

async function signAndMaybeSubmit(
  ctx: Context,
  args: Args,
  signed: { entry: GovernanceEntry; signatures: GovernanceSignature[] },
  defaultOut?: string,
): Promise<number> {
  const home = homeOf(ctx);
  const { entry } = signed;
  if (entry.kind !== 'genesis') throw new CustosError('INVALID_VALUE', 'not a genesis');
  const quorum = entry.body.quorum;
  const signers = await localAdmins(ctx, args, home, entry, signed.signatures);
  if (signers.length > 0 && !args.bool('yes')) {
    if (!(await confirm(`Sign this genesis as ${signers.map((s) => s.member).join(', ')}?`))) {
      ctx.io.err('nothing signed\n');
      return 1;
    }
  }
  const signatures = [...signed.signatures];
  for (const s of signers) {
    if (new Set(signatures.map((x) => x.member)).size >= quorum) break;
    signatures.push(signEntry(entry, s));
  }
  const digest = governanceDigest(entry);
  const distinct = new Set(signatures.map((x) => x.member)).size;
  const out = args.str('out') ?? defaultOut;
  const file = { entry, signatures };
  if (out !== undefined || distinct < quorum) {
    const path = out ?? 'genesis.json';
    writeFileSync(path, `${JSON.stringify(file, null, 2)}\n`);
    ctx.io.err(`genesis written to ${path} (${distinct} of ${quorum} admin signature(s))\n`);
  }
  if (distinct < quorum) {
    ctx.io.err(
      'next: the other admins run `custos init sign <file>`, then one runs `custos init submit <file>`\n',
    );
    if (args.bool('json'))
      ctx.io.out(toJson({ genesis: digest, submitted: false, signatures: distinct, quorum }));
    else ctx.io.out(`${digest}\n`);
    return 0;
  }
  return submit(ctx, args, { entry, signatures }, signers[0]);
}

async function submit(
  ctx: Context,
  args: Args,
  signed: SignedGovernanceEntry,
  signer?: DeviceIdentity,
): Promise<number> {
  const home = homeOf(ctx);
  const digest = governanceDigest(signed.entry);
  const state = createGenesisState(signed, ctx.now(), digest);
  if (!state.ok) throw new CustosError(state.code, state.message);
  const coordinator = args.str('coordinator') ?? ctx.env.CUSTOS_COORDINATOR ?? home.config().coordinator;
  if (coordinator === undefined) {
    ctx.io.err(
      'no coordinator configured: pass --coordinator <url> to post it, or run `custos init submit <file>` later\n',
    );
    ctx.io.out(`${digest}\n`);
    return 0;
  }
  let identity = signer;
  if (identity === undefined) {
    const profile = home.resolveProfile(args.str('as') ?? args.str('profile'));
    identity = await unlockDevice(home, profile, { passwordFile: args.str('password-file'), env: ctx.env });
  }
  const client = new CustosClient({ baseUrl: coordinator, signer: memberSigner(identity) });
  await client.postGenesis(signed);
  home.saveConfig({ coordinator, genesis: digest });
  if (args.bool('json')) {
    ctx.io.out(toJson({ genesis: digest, submitted: true, coordinator }));
  } else {
    ctx.io.out(`${digest}\n`);
    ctx.io.err(
      `organization created. Genesis digest ${digest}\n` +
        'pin it in every signer config ("genesis") and give it to every member out of band: `custos config --genesis <digest>`\n',
    );
  }
  return 0;
}

function describeGenesis(entry: GovernanceEntry): string {
  if (entry.kind !== 'genesis') return '';
  const b = entry.body;
  const lines = [
    `Genesis of "${b.name}" (digest ${governanceDigest(entry)})`,
    `  admin quorum ${b.quorum}, loosening delay ${Math.round(b.delayMs / 60_000)} min`,
  ];
  for (const m of b.members)
    lines.push(
      `  member ${m.id} (${m.roles.join(', ') || 'no role'}): ${m.devices.map((d) => d.id).join(', ')}`,
    );
  for (const w of b.wallets)
    lines.push(
      `  wallet ${w.id} ${w.chain} ${w.kind === 'bitcoin-wsh-sortedmulti' ? w.descriptor : `Safe ${w.address}`}`,
    );
  for (const s of b.signers) lines.push(`  signer ${s.id} identity ${s.publicKey}`);
  for (const a of b.addresses) lines.push(`  address ${a.id} ${a.address} "${a.label}"`);
  for (const r of b.policy.rules)
    lines.push(
      `  rule ${r.id}: ${r.action}${r.approvals ? `, ${r.approvals.map((g) => `${g.m} of ${g.role ?? g.members?.join('/')}`).join(' + ')}` : ''}`,
    );
  return `${lines.join('\n')}\n`;
}
