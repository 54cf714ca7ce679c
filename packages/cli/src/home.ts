/**
 * The profile directory: where this machine keeps its device keys, the pinned
 * genesis and the coordinator's address.
 *
 *   $CUSTOS_HOME, else $XDG_CONFIG_HOME/custos, else ~/.config/custos
 *     config.json                 { coordinator, genesis, profile }   the pin and the default profile
 *     profiles/<name>/profile.json { member, device, publicKey }       public, for `custos init --admins`
 *     profiles/<name>/device.key  the Ed25519 secret, sealed under a password (core sealed.ts)
 *     governance/<genesis>.json   governance entries this client verified, with when it first saw them
 *
 * Why so: the genesis digest is the trust anchor and is pinned out of band
 * (docs/architecture.md "Trust model"), so it lives in a file the user wrote, not in
 * anything the coordinator serves. Directories are 0700 and files 0600: a
 * sealed key is still a target for offline guessing. Files are replaced by
 * rename, so a crash leaves the old file or the new one, never half of one.
 *
 * When none of the variables is set and the default home has no config, a
 * `custos dev` deployment in the working directory (./.custos-dev/home) is
 * used, so `custos status` works right after `npm run dev`.
 */
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { CustosError, decode, type Infer, primitives, schema } from '@custos/core';
import { UsageError } from './output.js';

const { id, digest, hexBytes } = primitives;
const { object, string, literal } = schema;

export const DEV_HOME = join('.custos-dev', 'home');

const url = string({ min: 1, max: 2048, pattern: /^https?:\/\/[^\s@]+$/ });
const name = string({ min: 1, max: 64, pattern: /^[A-Za-z0-9][A-Za-z0-9._@-]*$/ });

export const homeConfig = object(
  { v: literal(1) },
  { coordinator: url, genesis: digest, profile: name },
  'The pin (genesis digest), the coordinator address and the default profile.',
);
export type HomeConfig = Infer<typeof homeConfig>;

export const profileFile = object(
  { v: literal(1), member: id, device: id, publicKey: hexBytes(32) },
  {
    // Development only (`custos dev`): where the demo password of this key sits, in the state folder.
    passwordFile: string({ min: 1, max: 4096 }),
  },
  'A local identity: one member device, its public key.',
);
export type ProfileFile = Infer<typeof profileFile>;

export interface Env {
  readonly [key: string]: string | undefined;
}

/** The home directory for this environment (see the module header). */
export function homeDir(env: Env, cwd: string): string {
  if (env.CUSTOS_HOME !== undefined && env.CUSTOS_HOME !== '') return resolve(cwd, env.CUSTOS_HOME);
  const base =
    env.XDG_CONFIG_HOME !== undefined && env.XDG_CONFIG_HOME !== ''
      ? join(env.XDG_CONFIG_HOME, 'custos')
      : join(env.HOME ?? homedir(), '.config', 'custos');
  if (!existsSync(join(base, 'config.json')) && existsSync(join(cwd, DEV_HOME, 'config.json'))) {
    return join(cwd, DEV_HOME);
  }
  return base;
}

export function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

/** Writes a file with mode 0600 through a temporary file and a rename. */
export function writePrivate(path: string, text: string): void {
  ensureDir(dirname(path));
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

export function writeJson(path: string, value: unknown): void {
  writePrivate(path, `${JSON.stringify(value, null, 2)}\n`);
}

export class Home {
  constructor(readonly dir: string) {}

  get configPath(): string {
    return join(this.dir, 'config.json');
  }

  config(): HomeConfig {
    if (!existsSync(this.configPath)) return { v: 1 };
    return decode(homeConfig, readFileSync(this.configPath));
  }

  saveConfig(change: { coordinator?: string; genesis?: string; profile?: string }): HomeConfig {
    const next = homeConfig.parse({ ...this.config(), ...change });
    writeJson(this.configPath, next);
    return next;
  }

  profileDir(profile: string): string {
    name.parse(profile, 'profile');
    return join(this.dir, 'profiles', profile);
  }

  hasProfile(profile: string): boolean {
    return existsSync(join(this.profileDir(profile), 'profile.json'));
  }

  profiles(): string[] {
    const dir = join(this.dir, 'profiles');
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .filter((p) => existsSync(join(dir, p, 'profile.json')))
      .sort();
  }

  readProfile(profile: string): ProfileFile {
    const path = join(this.profileDir(profile), 'profile.json');
    if (!existsSync(path)) {
      const known = this.profiles();
      throw new UsageError(
        `no profile ${JSON.stringify(profile)} in ${this.dir}` +
          (known.length > 0 ? ` (profiles: ${known.join(', ')})` : ' (create one with `custos keys new`)'),
      );
    }
    return decode(profileFile, readFileSync(path));
  }

  /**
   * The profile a command acts as: `--as`/`--profile`, else the default in
   * config.json, else the only profile there is.
   */
  resolveProfile(requested: string | undefined): string {
    if (requested !== undefined) return requested;
    const configured = this.config().profile;
    if (configured !== undefined) return configured;
    const all = this.profiles();
    if (all.length === 1) return all[0]!;
    if (all.length === 0)
      throw new UsageError(`no profile in ${this.dir}: create one with \`custos keys new\``);
    throw new UsageError(`several profiles in ${this.dir} (${all.join(', ')}): choose one with --as <name>`);
  }

  governanceCachePath(genesis: string): string {
    digest.parse(genesis, 'genesis');
    return join(this.dir, 'governance', `${genesis}.json`);
  }
}

/** The coordinator URL and the pinned genesis, from the options, the environment or config.json. */
export function connection(
  home: Home,
  env: Env,
  opts: { coordinator?: string | undefined; genesis?: string | undefined },
): { coordinator: string; genesis: string } {
  const config = home.config();
  const coordinator = opts.coordinator ?? env.CUSTOS_COORDINATOR ?? config.coordinator;
  const genesis = opts.genesis ?? env.CUSTOS_GENESIS ?? config.genesis;
  if (coordinator === undefined) {
    throw new UsageError(
      'no coordinator: pass --coordinator <url> or run `custos config --coordinator <url>`',
    );
  }
  if (genesis === undefined) {
    throw new UsageError(
      'no pinned genesis: pass --genesis <digest> or run `custos config --genesis <digest>` with the digest your admins gave you',
    );
  }
  try {
    url.parse(coordinator, 'coordinator');
    digest.parse(genesis, 'genesis');
  } catch (err) {
    if (err instanceof CustosError) throw new UsageError(err.message);
    throw err;
  }
  return { coordinator, genesis };
}
