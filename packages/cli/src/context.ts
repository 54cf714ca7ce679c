/**
 * What a command runs with: the environment, where to print, the clock, and
 * the session it opens (home, pinned genesis, coordinator client, unlocked
 * device). Commands take all of it as arguments so tests drive the real
 * command line and nothing reads globals behind their back.
 */
import type { Args } from './args.js';
import { CustosClient, memberSigner } from './client.js';
import { type DeviceIdentity, unlockDevice } from './device.js';
import { type VerifiedGovernance, verifiedGovernance } from './governance.js';
import { connection, type Env, Home, homeDir } from './home.js';
import type { Io } from './output.js';

export interface Context {
  readonly env: Env;
  readonly cwd: string;
  readonly io: Io;
  readonly now: () => number;
  /** The path of bin/custos.js, for the child processes `custos dev` starts. */
  readonly bin: string;
}

export function homeOf(ctx: Context): Home {
  return new Home(homeDir(ctx.env, ctx.cwd));
}

export interface Session {
  readonly home: Home;
  readonly coordinator: string;
  readonly genesis: string;
  readonly client: CustosClient;
  readonly identity: DeviceIdentity;
  governance(): Promise<VerifiedGovernance>;
}

/** Opens a session as the chosen profile: unlocks its device key and signs every request with it. */
export async function openSession(ctx: Context, args: Args): Promise<Session> {
  const home = homeOf(ctx);
  const profile = home.resolveProfile(args.str('as') ?? args.str('profile'));
  const conn = connection(home, ctx.env, {
    coordinator: args.str('coordinator'),
    genesis: args.str('genesis'),
  });
  const identity = await unlockDevice(home, profile, {
    passwordFile: args.str('password-file'),
    env: ctx.env,
  });
  const client = new CustosClient({ baseUrl: conn.coordinator, signer: memberSigner(identity) });
  let cached: Promise<VerifiedGovernance> | undefined;
  return {
    home,
    coordinator: conn.coordinator,
    genesis: conn.genesis,
    client,
    identity,
    governance: () => {
      cached ??= verifiedGovernance(client, home, conn.genesis, ctx.now);
      return cached;
    },
  };
}
