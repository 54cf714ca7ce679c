/**
 * `custos keys new|list|show` and `custos config`: the local identities and
 * the pin. A new device key is generated here, sealed under a password
 * before it touches the disk, and only its public half is ever printed: that
 * is what admins put into the genesis or a device.add entry.
 */
import { CustosError, DEFAULT_SCRYPT_LOG_N } from '@custos/core';
import type { Command } from '../command.js';
import { COMMON_HELP } from '../command.js';
import { homeOf } from '../context.js';
import { createDeviceKey } from '../device.js';
import { toJson, UsageError } from '../output.js';
import { readPassword } from '../password.js';

export const keysNew: Command = {
  name: 'keys new',
  summary: 'create a device key for a member, sealed with a password',
  help: `custos keys new --member <id> --device <id> [--profile <name>]

Creates an Ed25519 device key in the custos home (profiles/<name>/device.key,
mode 0600), sealed with a password (scrypt + XChaCha20-Poly1305), and prints
its public key. Give the public key (or \`custos keys show --json\`) to your
admins: they register it in the genesis or with a device.add entry.

Options:
  --member <id>           your member id in the organization
  --device <id>           a name for this device, e.g. laptop
  --profile <name>        the profile name (default: the member id)
  --default               make it the default profile
  --scrypt-log-n <n>      key-derivation cost, 2^n (default ${DEFAULT_SCRYPT_LOG_N}; lower only in tests)

Example:
  custos keys new --member approver-1 --device laptop
${COMMON_HELP}`,
  options: {
    member: { type: 'string' },
    device: { type: 'string' },
    default: { type: 'boolean' },
    'scrypt-log-n': { type: 'string' },
  },
  async run(ctx, args) {
    const member = args.required('member', 'your member id');
    const device = args.required('device', 'a name for this device');
    const home = homeOf(ctx);
    const profile = args.str('as') ?? args.str('profile') ?? member;
    if (home.hasProfile(profile))
      throw new CustosError('CONFLICT', `profile ${profile} already exists in ${home.dir}`);
    const logN = args.int('scrypt-log-n', { min: 10, max: 22 });
    const password = await readPassword({
      passwordFile: args.str('password-file'),
      env: ctx.env,
      prompt: `new password for ${member}/${device}`,
      confirm: true,
    });
    const file = await createDeviceKey(
      home,
      profile,
      member,
      device,
      password,
      logN === undefined ? {} : { logN },
    );
    if (args.bool('default') || home.profiles().length === 1) home.saveConfig({ profile });
    if (args.bool('json')) {
      ctx.io.out(toJson({ profile, member, device, kind: 'ed25519', publicKey: file.publicKey }));
    } else {
      ctx.io.out(`${file.publicKey}\n`);
      ctx.io.err(`device ${member}/${device} created in profile ${profile} (${home.profileDir(profile)})\n`);
    }
    return 0;
  },
};

export const keysList: Command = {
  name: 'keys list',
  summary: 'list the local identities',
  help: `custos keys list [--json]

Lists the profiles in the custos home: member, device and public key.

Example:
  custos keys list
${COMMON_HELP}`,
  options: {},
  async run(ctx, args) {
    const home = homeOf(ctx);
    const def = home.config().profile;
    const rows = home.profiles().map((p) => ({ profile: p, ...home.readProfile(p), default: p === def }));
    if (args.bool('json')) {
      ctx.io.out(
        toJson(
          rows.map(({ profile, member, device, publicKey }) => ({ profile, member, device, publicKey })),
        ),
      );
      return 0;
    }
    if (rows.length === 0) ctx.io.err(`no profile in ${home.dir}\n`);
    for (const r of rows)
      ctx.io.out(
        `${r.default ? '*' : ' '} ${r.profile.padEnd(16)} ${r.member}/${r.device}  ${r.publicKey}\n`,
      );
    return 0;
  },
};

export const keysShow: Command = {
  name: 'keys show',
  summary: "print a profile's public device (for the admins)",
  help: `custos keys show [--as <profile>] [--json]

Prints the member, device and public key of a profile, as the admins need
them for \`custos init --admins\` or a device.add entry. Never the secret.

Example:
  custos keys show --as approver-1 --json > approver-1.json
${COMMON_HELP}`,
  options: {},
  async run(ctx, args) {
    const home = homeOf(ctx);
    const profile = home.resolveProfile(args.str('as') ?? args.str('profile'));
    const p = home.readProfile(profile);
    const out = { id: p.member, device: p.device, kind: 'ed25519', publicKey: p.publicKey };
    ctx.io.out(args.bool('json') ? toJson(out) : `${p.member}/${p.device} ed25519 ${p.publicKey}\n`);
    return 0;
  },
};

export const configCommand: Command = {
  name: 'config',
  summary: 'pin the genesis and set the coordinator address',
  help: `custos config [--coordinator <url>] [--genesis <digest>] [--default <profile>]

Writes the custos home's config.json. The genesis digest is the trust anchor:
take it from your admins out of band (in person, a signed message), never
from the coordinator. With no option, prints the current settings.

Example:
  custos config --coordinator https://custos.example.com --genesis 3f1c...e09a
${COMMON_HELP}`,
  options: { default: { type: 'string' } },
  async run(ctx, args) {
    const home = homeOf(ctx);
    const change: { coordinator?: string; genesis?: string; profile?: string } = {};
    const coordinator = args.str('coordinator');
    const genesis = args.str('genesis');
    const profile = args.str('default');
    if (coordinator !== undefined) change.coordinator = coordinator;
    if (genesis !== undefined) change.genesis = genesis;
    if (profile !== undefined) {
      if (!home.hasProfile(profile)) throw new UsageError(`no profile ${profile} in ${home.dir}`);
      change.profile = profile;
    }
    const config = Object.keys(change).length > 0 ? home.saveConfig(change) : home.config();
    if (args.bool('json')) ctx.io.out(toJson({ home: home.dir, ...config }));
    else {
      ctx.io.out(`home         ${home.dir}\n`);
      ctx.io.out(`coordinator  ${config.coordinator ?? '(not set)'}\n`);
      ctx.io.out(`genesis      ${config.genesis ?? '(not pinned)'}\n`);
      ctx.io.out(`profile      ${config.profile ?? '(none)'}\n`);
    }
    return 0;
  },
};
