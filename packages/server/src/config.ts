/**
 * Configuration: the HTTP edge's limits (createCoordinator) and what
 * `custos serve` reads from its environment (startServer).
 *
 * Defaults are safe for a single coordinator on one host: it listens on
 * 127.0.0.1 only (put a TLS-terminating proxy in front to expose it), keeps
 * its data in a SQLite file unless DATABASE_URL names a PostgreSQL database,
 * and every limit below is on. Secrets (database URL password, RPC password,
 * webhook secrets) may be given as `<NAME>_FILE` paths, so they need not sit
 * in the environment of every process, and they are never logged.
 */
import { readFileSync } from 'node:fs';
import { CustosError, type Digest, type Millis } from '@custos/core';
import { DEFAULT_REFUSAL_LIMITS, type RefusalLimits } from './audit-log.js';
import { SIGNATURE_WINDOW_S } from './auth.js';
import { MAX_BODY_BYTES, MAX_LARGE_BODY_BYTES } from './body.js';
import type { NotificationEvent } from './contracts.js';
import type { EvmConfig } from './pipeline/evm.js';
import type { BucketRate } from './rate-limit.js';
import type { WebhookTarget } from './webhooks.js';

export type { WebhookTarget };

export interface CoordinatorLimits {
  /** Per member device key. */
  readonly memberRate: BucketRate;
  /** Per signer key: signers long-poll and report results, so they get more. */
  readonly signerRate: BucketRate;
  /**
   * Per member device key of a member holding one of these roles, by role
   * (e.g. a payout service's `service` role in a bank run): the fastest of
   * the member's roles listed, if faster than `memberRate`.
   */
  readonly roleRates: Readonly<Record<string, BucketRate>>;
  /** How many refused requests are audited (audit-log.ts). */
  readonly refusals: RefusalLimits;
  /** How far a request signature's `created` may be from the server's clock, in seconds. */
  readonly signatureWindowS: number;
  /** Body limit of most routes, in bytes. */
  readonly maxBodyBytes: number;
  /** Body limit of governance routes and signer results, in bytes. */
  readonly maxLargeBodyBytes: number;
  /** Longest long-poll of GET /v1/signer/jobs. */
  readonly maxWaitMs: Millis;
  /** How often pending intents are looked at (cancel windows, expiry); 0 turns the sweep off. */
  readonly sweepIntervalMs: Millis;
  /** Longest time to receive a whole request (slow clients cannot hold connections). */
  readonly requestTimeoutMs: Millis;
}

export const DEFAULT_LIMITS: CoordinatorLimits = {
  memberRate: { perSecond: 20, burst: 100 },
  signerRate: { perSecond: 50, burst: 200 },
  roleRates: {},
  refusals: DEFAULT_REFUSAL_LIMITS,
  signatureWindowS: SIGNATURE_WINDOW_S,
  maxBodyBytes: MAX_BODY_BYTES,
  maxLargeBodyBytes: MAX_LARGE_BODY_BYTES,
  maxWaitMs: 30_000,
  sweepIntervalMs: 5_000,
  requestTimeoutMs: 30_000,
};

export function resolveLimits(partial: Partial<CoordinatorLimits> = {}): CoordinatorLimits {
  return { ...DEFAULT_LIMITS, ...partial };
}

/** Webhook events (docs/api.md "Webhooks"), to check configured event lists against. */
export const NOTIFICATION_EVENTS = [
  'intent.created',
  'approval.needed',
  'intent.signed',
  'transaction.broadcast',
  'intent.refused',
  'alert',
  'frozen',
  'governance.proposed',
  'governance.applied',
] as const satisfies readonly NotificationEvent[];

/** Settings of the chain node, passed through to the signing pipeline as they are. */
export interface ChainConfig {
  /** e.g. http://127.0.0.1:18443 */
  readonly rpcUrl?: string;
  readonly rpcUser?: string;
  readonly rpcPassword?: string;
}

export interface ServerConfig {
  readonly host: string;
  readonly port: number;
  /** PostgreSQL URL; when absent, `sqlitePath` is used. */
  readonly databaseUrl?: string;
  readonly sqlitePath: string;
  /** The pinned organization (genesis digest); the coordinator refuses to serve another. */
  readonly org?: Digest;
  readonly chain: ChainConfig;
  /** EVM chains for Safe wallets, by chain id: {rpcUrl, executorKey, confirmations?} (pipeline/evm.ts). */
  readonly evm?: EvmConfig;
  readonly webhooks: readonly WebhookTarget[];
  readonly logLevel: string;
  readonly limits?: Partial<CoordinatorLimits>;
  /** A built approver console (manifest.json and its files) to serve at `/`; absent: none is served. */
  readonly consoleDir?: string;
  /** Whether `GET /metrics` is served (CUSTOS_METRICS, on unless `off`); absent: served. */
  readonly metrics?: boolean;
  /** When set, `/metrics` needs `Authorization: Bearer <token>` (CUSTOS_METRICS_TOKEN or _FILE). */
  readonly metricsToken?: string;
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads `custos serve`'s configuration from the environment:
 * CUSTOS_HOST (127.0.0.1), CUSTOS_PORT (8080), DATABASE_URL, CUSTOS_SQLITE
 * (./custos.db), CUSTOS_ORG, BITCOIN_RPC_URL, BITCOIN_RPC_USER,
 * BITCOIN_RPC_PASSWORD, CUSTOS_WEBHOOKS (a JSON array of
 * {url, secret, events?}), CUSTOS_EVM (a JSON object
 * {"<chainId>": {rpcUrl, executorKey, confirmations?}}; or CUSTOS_EVM_FILE,
 * since it holds the executor's key), CUSTOS_LOG_LEVEL (info), CUSTOS_CONSOLE_DIR
 * (a built console, `npm run build -w @custos/web`; unset: `/` is not served),
 * CUSTOS_METRICS (`on`, the default, or `off`: Prometheus text at /metrics),
 * CUSTOS_METRICS_TOKEN (or _FILE: a bearer token /metrics then requires),
 * CUSTOS_MEMBER_RATE and CUSTOS_SIGNER_RATE (`<per second>/<burst>`, per key;
 * 20/100 and 50/200), CUSTOS_ROLE_RATES (`<role>=<per second>/<burst>,...`: a
 * member holding a listed role gets its rate). Throws INVALID_VALUE naming the
 * variable that is wrong (never its value).
 */
export function readServerConfig(env: Env = process.env): ServerConfig {
  const port = Number(env.CUSTOS_PORT ?? '8080');
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new CustosError('INVALID_VALUE', 'CUSTOS_PORT must be a port number');
  }
  const org = env.CUSTOS_ORG;
  if (org !== undefined && !/^[0-9a-f]{64}$/.test(org)) {
    throw new CustosError('INVALID_VALUE', 'CUSTOS_ORG must be the genesis digest (64 hex digits)');
  }
  const databaseUrl = secret(env, 'DATABASE_URL');
  const rpcUrl = env.BITCOIN_RPC_URL;
  const rpcUser = env.BITCOIN_RPC_USER;
  const rpcPassword = secret(env, 'BITCOIN_RPC_PASSWORD');
  const metrics = env.CUSTOS_METRICS ?? 'on';
  if (metrics !== 'on' && metrics !== 'off')
    throw new CustosError('INVALID_VALUE', 'CUSTOS_METRICS must be on or off');
  const metricsToken = secret(env, 'CUSTOS_METRICS_TOKEN');
  if (metricsToken !== undefined && metricsToken.length < 16) {
    throw new CustosError('INVALID_VALUE', 'CUSTOS_METRICS_TOKEN must hold at least 16 characters');
  }
  const limits = rateLimits(env);
  return {
    host: env.CUSTOS_HOST ?? '127.0.0.1',
    port,
    ...(databaseUrl === undefined ? {} : { databaseUrl }),
    sqlitePath: env.CUSTOS_SQLITE ?? './custos.db',
    ...(org === undefined ? {} : { org: org as Digest }),
    chain: {
      ...(rpcUrl === undefined ? {} : { rpcUrl }),
      ...(rpcUser === undefined ? {} : { rpcUser }),
      ...(rpcPassword === undefined ? {} : { rpcPassword }),
    },
    ...evmSection(secret(env, 'CUSTOS_EVM')),
    webhooks: webhooks(secret(env, 'CUSTOS_WEBHOOKS')),
    logLevel: env.CUSTOS_LOG_LEVEL ?? 'info',
    ...(env.CUSTOS_CONSOLE_DIR === undefined ? {} : { consoleDir: env.CUSTOS_CONSOLE_DIR }),
    metrics: metrics === 'on',
    ...(metricsToken === undefined ? {} : { metricsToken }),
    ...(Object.keys(limits).length === 0 ? {} : { limits }),
  };
}

/** The most a rate may be set to: a key's bucket, not a way to switch the limit off. */
const MAX_PER_SECOND = 100_000;
const MAX_BURST = 1_000_000;

/** `<per second>/<burst>`, e.g. `200/1000`; null when it is not one. */
function bucketRate(text: string): BucketRate | null {
  const m = /^([0-9]+(?:\.[0-9]+)?)\/([0-9]+)$/.exec(text.trim());
  if (m === null) return null;
  const perSecond = Number(m[1]);
  const burst = Number(m[2]);
  if (!(perSecond > 0 && perSecond <= MAX_PER_SECOND) || !(burst >= 1 && burst <= MAX_BURST)) return null;
  return { perSecond, burst };
}

/** CUSTOS_MEMBER_RATE, CUSTOS_SIGNER_RATE and CUSTOS_ROLE_RATES, the ones set. */
function rateLimits(env: Env): Partial<CoordinatorLimits> {
  const one = (name: string, text: string | undefined): BucketRate | undefined => {
    if (text === undefined) return undefined;
    const rate = bucketRate(text);
    if (rate === null) {
      throw new CustosError(
        'INVALID_VALUE',
        `${name} must be <per second>/<burst>, e.g. 20/100 (at most ${MAX_PER_SECOND}/${MAX_BURST})`,
      );
    }
    return rate;
  };
  const memberRate = one('CUSTOS_MEMBER_RATE', env.CUSTOS_MEMBER_RATE);
  const signerRate = one('CUSTOS_SIGNER_RATE', env.CUSTOS_SIGNER_RATE);
  const roles = env.CUSTOS_ROLE_RATES;
  const roleRates: Record<string, BucketRate> = {};
  if (roles !== undefined) {
    for (const part of roles.split(',')) {
      if (part.trim() === '') continue;
      const eq = part.indexOf('=');
      const role = eq < 0 ? '' : part.slice(0, eq).trim();
      const rate = eq < 0 ? null : bucketRate(part.slice(eq + 1));
      if (
        !/^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$/.test(role) ||
        rate === null ||
        Object.hasOwn(roleRates, role)
      ) {
        throw new CustosError(
          'INVALID_VALUE',
          'CUSTOS_ROLE_RATES must be <role>=<per second>/<burst>, comma-separated, each role once, e.g. service=200/1000',
        );
      }
      roleRates[role] = rate;
    }
  }
  return {
    ...(memberRate === undefined ? {} : { memberRate }),
    ...(signerRate === undefined ? {} : { signerRate }),
    ...(Object.keys(roleRates).length === 0 ? {} : { roleRates }),
  };
}

/** NAME, or the contents of the file NAME_FILE names (trailing newline removed). */
function secret(env: Env, name: string): string | undefined {
  const file = env[`${name}_FILE`];
  if (file !== undefined) {
    try {
      return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch {
      throw new CustosError('INVALID_VALUE', `${name}_FILE cannot be read`);
    }
  }
  return env[name];
}

/**
 * CUSTOS_EVM: the shape only (chain ids, URLs, a 32-byte key); pipeline/evm.ts
 * checks it again when it builds the clients. Messages never quote the key.
 */
function evmSection(text: string | undefined): { evm?: EvmConfig } {
  if (text === undefined || text.trim() === '') return {};
  const bad = (what: string): CustosError =>
    new CustosError('INVALID_VALUE', `CUSTOS_EVM ${what}: expected {"<chainId>": {rpcUrl, executorKey}}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bad('is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('is not an object');
  const out: Record<string, { rpcUrl: string; executorKey: `0x${string}`; confirmations?: number }> = {};
  for (const [id, v] of Object.entries(value)) {
    const c = v as { rpcUrl?: unknown; executorKey?: unknown; confirmations?: unknown };
    if (!/^[1-9][0-9]{0,15}$/.test(id)) throw bad(`key "${id}" is not a chain id`);
    if (typeof c !== 'object' || c === null) throw bad(`.${id} is not an object`);
    if (typeof c.rpcUrl !== 'string' || !/^https?:\/\//.test(c.rpcUrl))
      throw bad(`.${id}.rpcUrl is not an http(s) URL`);
    if (typeof c.executorKey !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(c.executorKey)) {
      throw bad(`.${id}.executorKey is not 0x and 32 bytes of hex`);
    }
    if (
      c.confirmations !== undefined &&
      (!Number.isSafeInteger(c.confirmations) || (c.confirmations as number) < 1)
    ) {
      throw bad(`.${id}.confirmations is not a positive integer`);
    }
    out[id] = {
      rpcUrl: c.rpcUrl,
      executorKey: c.executorKey as `0x${string}`,
      ...(c.confirmations === undefined ? {} : { confirmations: c.confirmations as number }),
    };
  }
  return { evm: out };
}

function webhooks(text: string | undefined): WebhookTarget[] {
  if (text === undefined || text.trim() === '') return [];
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CustosError('INVALID_VALUE', 'CUSTOS_WEBHOOKS must be a JSON array of {url, secret, events?}');
  }
  if (!Array.isArray(value)) {
    throw new CustosError('INVALID_VALUE', 'CUSTOS_WEBHOOKS must be a JSON array of {url, secret, events?}');
  }
  return value.map((v, i) => {
    const t = v as { url?: unknown; secret?: unknown; events?: unknown };
    if (
      typeof t.url !== 'string' ||
      !/^https?:\/\//.test(t.url) ||
      typeof t.secret !== 'string' ||
      t.secret.length < 16
    ) {
      throw new CustosError(
        'INVALID_VALUE',
        `CUSTOS_WEBHOOKS[${i}] needs an http(s) url and a secret of at least 16 characters`,
      );
    }
    const known: ReadonlySet<unknown> = new Set(NOTIFICATION_EVENTS);
    if (t.events !== undefined && !(Array.isArray(t.events) && t.events.every((e) => known.has(e)))) {
      throw new CustosError(
        'INVALID_VALUE',
        `CUSTOS_WEBHOOKS[${i}].events must list events among ${NOTIFICATION_EVENTS.join(', ')}`,
      );
    }
    return {
      url: t.url,
      secret: t.secret,
      ...(t.events === undefined ? {} : { events: t.events as NotificationEvent[] }),
    };
  });
}
