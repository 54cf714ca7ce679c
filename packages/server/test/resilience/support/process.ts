/**
 * Starts and stops the coordinator process of coordinator-process.ts, and
 * seeds its database with the fixture organization's genesis (as `custos
 * init` would), so tests can sign requests with the fixture's device keys.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Millis } from '@custos/core';
import { createOrg, type Org, type Person } from '@custos/test-support/org';
import type { CoordinatorLimits, ServerConfig } from '../../../src/config.js';
import { openDatabase } from '../../../src/db/connect.js';
import { Store } from '../../../src/db/repository.js';
import { initOrganization } from '../../../src/governance-view.js';
import { Client, type Target } from '../../api/support/client.js';

const ENTRY = fileURLToPath(new URL('./coordinator-process.ts', import.meta.url));

/** Limits for load: the rate limit is not what is measured; the refusal audit budget stays the default. */
export const LOAD_LIMITS: Partial<CoordinatorLimits> = {
  memberRate: { perSecond: 100_000, burst: 100_000 },
  signerRate: { perSecond: 100_000, burst: 100_000 },
  sweepIntervalMs: 1000 as Millis,
};

export interface Memory {
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

export interface CoordinatorProcess {
  readonly url: string;
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Memory after a full GC in the process. */
  memory(): Promise<Memory>;
  /** stderr so far (the server log, level warn). */
  log(): string;
  /** SIGTERM (graceful), SIGKILL after 10 s. */
  stop(): Promise<void>;
  kill(): Promise<void>;
}

export function serverConfig(db: { sqlitePath: string } | { databaseUrl: string }): ServerConfig {
  return {
    host: '127.0.0.1',
    port: 0,
    sqlitePath: 'sqlitePath' in db ? db.sqlitePath : '',
    ...('databaseUrl' in db ? { databaseUrl: db.databaseUrl } : {}),
    chain: {},
    webhooks: [],
    logLevel: 'warn',
    limits: LOAD_LIMITS,
  };
}

/** Starts the coordinator process; resolves once it listens (rejects if it exits first or takes 60 s). */
export function startCoordinatorProcess(config: ServerConfig): Promise<CoordinatorProcess> {
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', ENTRY], {
    cwd: process.cwd(),
    env: { ...process.env, CUSTOS_RESILIENCE_CONFIG: JSON.stringify(config), NODE_OPTIONS: '' },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-20_000);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  const waiters: ((m: Memory) => void)[] = [];
  child.on('message', (m: { type?: string; usage?: Memory }) => {
    if (m?.type === 'memory' && m.usage !== undefined) waiters.shift()?.(m.usage);
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  const kill = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the coordinator did not start in 60 s:\n${stderr}`));
    }, 60_000);
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the coordinator exited (${code ?? signal}) before listening:\n${stderr}`));
    });
    child.on('message', (m: { type?: string; url?: string }) => {
      if (m?.type !== 'listening' || typeof m.url !== 'string') return;
      clearTimeout(timer);
      resolve({
        url: m.url,
        child,
        exited,
        memory: () =>
          new Promise<Memory>((res, rej) => {
            waiters.push(res);
            if (!child.send({ type: 'memory' })) rej(new Error('the coordinator process is gone'));
          }),
        log: () => stderr,
        stop,
        kill,
      });
    });
  });
}

/** Stores the fixture organization's genesis in a database (migrating it first), then closes it. */
export async function seedOrganization(
  db: { sqlitePath: string } | { url: string },
  org: Org,
): Promise<void> {
  const conn = await openDatabase(db);
  try {
    await initOrganization(new Store(conn, { now: Date.now }), org.genesis, { now: Date.now });
  } finally {
    await conn.close();
  }
}

export { createOrg, type Org, type Person };

/** A client over a real socket signing as `person`'s first device, with the real clock. */
export function clientOf(target: Target, person: Person): Client {
  return new Client(
    target,
    { keyId: `member:${person.id}/${person.device.id}`, secretKey: person.device.secretKey },
    () => Date.now() as Millis,
  );
}

/** A deterministic PRNG (mulberry32), so a run's mix can be repeated from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
