/**
 * A complete local deployment for the end-to-end benches (bench/e2e.ts,
 * bench/soak.ts), all on 127.0.0.1:
 * - a bcoin regtest node in this process, the wallet funded with `coins`
 *   coins of 0.01 BTC (one funding transaction per coin, as deposits arrive;
 *   see docs/benchmarks.md), mined;
 * - the coordinator (`startServer`, the code `custos serve` runs) as one or
 *   more child processes on one database: SQLite, or a real PostgreSQL 15
 *   server started for the run (packages/test-support/src/postgres.ts);
 * - two real signer processes (`custos signer run`: keystore, own SQLite
 *   ledger with fsync, outbound-only HTTP job loop); with two coordinators,
 *   signer-1 polls the first and signer-2 the second;
 * - clients (CustosClient, the CLI's HTTP client, every request RFC 9421
 *   signed) spread over the coordinators, and a watcher reading the audit log
 *   through the API to see when both signatures of an intent are stored.
 *
 * Also the /proc readings the benches print: CPU time and RSS of each child.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { deriveAddress, descriptorKeyOf, signerKeyFromSeed } from '@custos/bitcoin';
import { type RegtestNode, startRegtestNode } from '@custos/bitcoin/regtest';
import { CustosClient, memberSigner } from '@custos/cli/client';
import { type AuditEntry, ed25519PublicKey, intentDigest, sealWithPassword, toHex } from '@custos/core';
import { initOrganization, openDatabase, type ServerConfig, Store, startServer } from '@custos/server';
import { defaultPath, keystorePublic, writeKeystore } from '@custos/signer/keystore';
import { propose, secretKeyFor } from '@custos/test-support/org';
import { type PostgresServer, startPostgres } from '@custos/test-support/postgres';
import { makeWorld, type World } from '@custos/test-support/world';

const SIGNER_MAIN = new URL('../packages/signer/src/main.ts', import.meta.url).pathname;
const SELF = new URL(import.meta.url).pathname;
const ROOT = new URL('..', import.meta.url).pathname;
export const PASSWORD = 'a bench password, not a real one';
/** Each funding coin: 0.01 BTC. */
export const COIN = 1_000_000n;
const WITHDRAWAL_TIMEOUT_MS = 120_000;

export type Backend = 'sqlite' | 'postgres';

// ------------------------------------------------------------ child processes

export interface Child {
  readonly name: string;
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

/** How long the bench's audit follower waits after a page with entries before reading again. */
const FOLLOW_GATHER_MS = 20;

export function spawnNode(name: string, args: readonly string[], env: Record<string, string> = {}): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: ROOT, // tsx resolves from here
  });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => {
    out = (out + b.toString()).slice(-200_000);
  });
  child.stderr?.on('data', (b: Buffer) => {
    out = (out + b.toString()).slice(-200_000);
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { name, child, output: () => out, exited };
}

export async function waitOutput(c: Child, pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = c.output().match(pattern);
    if (m !== null) return m;
    if (c.child.exitCode !== null) throw new Error(`${c.name} exited (${c.child.exitCode}):\n${c.output()}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}:\n${c.output()}`);
    await sleep(25);
  }
}

export async function stopChild(c: Child): Promise<void> {
  if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGTERM');
  const t = setTimeout(() => c.child.kill('SIGKILL'), 20_000);
  await c.exited;
  clearTimeout(t);
}

function procStatus(pid: number | undefined, field: 'VmHWM' | 'VmRSS'): number {
  if (pid === undefined) return Number.NaN;
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`${field}:\\s+(\\d+) kB`));
    return m === null ? Number.NaN : Number(m[1]) / 1024;
  } catch {
    return Number.NaN;
  }
}

/** Peak resident set of a live process, from /proc (Linux), in MiB. */
export function peakRss(c: Child): number {
  return procStatus(c.child.pid, 'VmHWM');
}

/** Resident set of a live process now, in MiB. */
export function currentRss(c: Child): number {
  return procStatus(c.child.pid, 'VmRSS');
}

let ticksPerSecond: number | undefined;

/** CPU time (user + system, every thread) a live process has used so far, in ms, from /proc/<pid>/stat. */
export function cpuMs(c: Child): number {
  const pid = c.child.pid;
  if (pid === undefined) return Number.NaN;
  try {
    ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ppid ...: utime and stime are fields 14 and 15, the 12th and 13th after the comm.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond;
  } catch {
    return Number.NaN;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function percentile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
}

// ----------------------------------------------------------------- deployment

/** A keystore as `custos signer init` writes it, but with a given identity key (the org's signer record). */
async function writeSignerKeystore(path: string, id: string, identity: Uint8Array) {
  const seed = randomBytes(64);
  const key = signerKeyFromSeed(seed, defaultPath('regtest'));
  const descriptorKey = descriptorKeyOf(key, 'regtest');
  const pub = keystorePublic.parse({
    id,
    network: 'regtest',
    identityKey: ed25519PublicKey(identity),
    fingerprint: descriptorKey.fingerprint,
    path: descriptorKey.path,
    xpub: descriptorKey.xpub,
  });
  const box = await sealWithPassword({ seed: toHex(seed), identity: toHex(identity) }, PASSWORD, pub, {
    logN: 12,
  });
  writeKeystore(path, { v: 1, kind: 'custos-signer-keystore', public: pub, box });
  return descriptorKey;
}

export interface DeploymentOptions {
  readonly backend: Backend;
  /** Coordinator processes on the one database (default 1). */
  readonly coordinators?: number;
  /** Funding coins of 0.01 BTC. */
  readonly coins: number;
  /** Extra node flags per child (e.g. --cpu-prof), by name: coordinator-1, signer-1, ... */
  readonly nodeArgs?: (name: string) => readonly string[];
  readonly log: (s: string) => void;
}

export interface Completion {
  /** Audit time of the second `signing.signed` entry, or NaN when the intent failed. */
  readonly at: number;
}

export interface WithdrawalTimes {
  /** When the intent was POSTed. */
  readonly t0: number;
  /** When the last approval was sent. */
  readonly tLast: number;
  /** When both signatures were stored (audit time). */
  readonly at: number;
}

export interface Deployment {
  readonly dir: string;
  readonly node: RegtestNode;
  readonly world: World;
  readonly coordinators: readonly Child[];
  readonly signers: readonly Child[];
  readonly urls: readonly string[];
  /** One withdrawal by client `client` (its coordinator is client % coordinators), until both signatures are stored. */
  withdraw(client: number, amount: bigint): Promise<WithdrawalTimes>;
  /** The children, for CPU and RSS readings: coordinator-1.., signer-1, signer-2. */
  readonly children: readonly Child[];
  /** Stops the signers and coordinators (SIGTERM), then the node and the database; removes the folder. */
  stop(): Promise<void>;
}

/** Starts everything and waits until the coordinators' trackers have seen every coin. */
export async function startDeployment(o: DeploymentOptions): Promise<Deployment> {
  const count = o.coordinators ?? 1;
  const dir = mkdtempSync(join(tmpdir(), 'custos-bench-'));
  const children: Child[] = [];
  let node: RegtestNode | undefined;
  let pg: PostgresServer | undefined;
  let watching = true;
  let watch: Promise<void> = Promise.resolve();
  const stopAll = async (graceful: boolean): Promise<void> => {
    watching = false;
    await watch.catch(() => undefined);
    // Signers first, so no job is in flight when their coordinator goes.
    const order = [...children.filter((c) => c.name.startsWith('signer')), ...children];
    for (const c of order) {
      if (graceful) await stopChild(c);
      else if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    }
    await node?.close().catch(() => undefined);
    await pg?.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // The organization: the signer test world with its two signers' keys in keystores.
    const signer1Secret = secretKeyFor('custos-test', 'signer-1');
    const signer2Secret = secretKeyFor('custos-test', 'signer-2');
    const k1 = await writeSignerKeystore(join(dir, 'signer-1.key'), 'signer-1', signer1Secret);
    const k2 = await writeSignerKeystore(join(dir, 'signer-2.key'), 'signer-2', signer2Secret);
    const world: World = makeWorld({
      // No loosening delay: signer-2, added by governance, must get jobs at once.
      delayMs: 0,
      firstKey: k1,
      secondKey: k2,
      policy: (p) => ({ ...p, limits: p.limits.map((l) => ({ ...l, max: '2100000000000000' as never })) }),
    });
    world.clock.now = Date.now();
    const org = world.org;
    const addSigner2 = propose(
      org.state,
      'signer.add',
      { id: 'signer-2', publicKey: ed25519PublicKey(signer2Secret), label: 'Signer 2' },
      org.admins.slice(0, 2),
    );

    // Chain: many confirmed coins of the wallet.
    let t = performance.now();
    node = await startRegtestNode();
    await node.activateSegwit();
    for (let i = 0; i < o.coins; i++) {
      await node.fund(deriveAddress(world.descriptor, 0, i % 20).script, COIN);
    }
    await node.mine(1);
    o.log(`regtest node up, ${o.coins} coins funded in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    // Storage, seeded with the organization as `custos init` does.
    t = performance.now();
    let databaseUrl: string | undefined;
    if (o.backend === 'postgres') {
      pg = await startPostgres();
      databaseUrl = pg.url;
    } else if (count > 1) {
      throw new Error('several coordinators need PostgreSQL');
    }
    const sqlitePath = join(dir, 'coordinator.db');
    const db = await openDatabase(databaseUrl === undefined ? { sqlitePath } : { url: databaseUrl });
    const store = new Store(db, { now: Date.now });
    await initOrganization(store, org.genesis, { org: org.orgId });
    await store.governance.append(addSigner2);
    await db.close();

    const config: ServerConfig = {
      host: '127.0.0.1',
      port: 0,
      sqlitePath,
      ...(databaseUrl === undefined ? {} : { databaseUrl }),
      org: org.orgId,
      chain: { rpcUrl: node.rpcUrl, rpcUser: node.rpcUser, rpcPassword: node.rpcPassword },
      webhooks: [],
      logLevel: 'warn',
      // The per-key rate limits are for one person's device; the bench drives one requester
      // and two approvers at the rate of a whole organization.
      limits: {
        memberRate: { perSecond: 1_000_000, burst: 1_000_000 },
        signerRate: { perSecond: 1_000_000, burst: 1_000_000 },
      },
    };
    writeFileSync(join(dir, 'coordinator.json'), JSON.stringify(config));
    const coordinators: Child[] = [];
    for (let i = 1; i <= count; i++) {
      const name = `coordinator-${i}`;
      const c = spawnNode(name, [
        ...(o.nodeArgs?.(name) ?? []),
        SELF,
        'bench-coordinator',
        join(dir, 'coordinator.json'),
      ]);
      children.push(c);
      coordinators.push(c);
    }
    const urls: string[] = [];
    for (const c of coordinators) urls.push((await waitOutput(c, /coordinator listening at (\S+)/))[1]!);
    o.log(
      `${count} coordinator(s) on ${urls.join(', ')} in ${((performance.now() - t) / 1000).toFixed(1)} s`,
    );

    const signers: Child[] = [];
    for (const [i, id] of ['signer-1', 'signer-2'].entries()) {
      writeFileSync(
        join(dir, `${id}.json`),
        JSON.stringify({
          id,
          coordinatorUrl: urls[i % urls.length],
          genesis: org.orgId,
          keystore: `${id}.key`,
          database: `${id}.db`,
          chains: ['bitcoin:regtest'],
          waitMs: 2000,
        }),
      );
      const s = spawnNode(
        id,
        [...(o.nodeArgs?.(id) ?? []), SIGNER_MAIN, 'signer', 'run', '--config', join(dir, `${id}.json`)],
        { CUSTOS_SIGNER_PASSWORD: PASSWORD },
      );
      children.push(s);
      signers.push(s);
    }
    await Promise.all(signers.map((s) => waitOutput(s, /signer\.started/)));

    const client = (url: string, p: { id: string; device: { id: string; secretKey: Uint8Array } }) =>
      new CustosClient({
        baseUrl: url,
        signer: memberSigner({ member: p.id, device: p.device.id, secretKey: p.device.secretKey }),
      });
    const requesters = urls.map((u) => client(u, org.requester));
    const approvers = urls.map((u) => org.approvers.slice(0, 2).map((a) => client(u, a)));
    const watcher = client(urls[0]!, org.watcher);

    // Every coordinator's tracker must have seen the coins before the first withdrawal.
    for (const url of urls) {
      const w = client(url, org.watcher);
      const deadline = Date.now() + 120_000;
      for (;;) {
        const wallet = (await w.wallets())[0];
        const balance = wallet?.balance;
        if (balance !== null && balance !== undefined && BigInt(balance) >= COIN * BigInt(o.coins)) break;
        if (Date.now() > deadline) throw new Error(`${url} did not see the funded wallet`);
        await sleep(100);
      }
    }

    // Completion, from the audit log through the API (one database: the first coordinator serves it all).
    const signedCount = new Map<string, number>();
    const waiters = new Map<string, (at: number) => void>();
    const failures: string[] = [];
    let from = 0;
    const trace: string[] | null = process.env.CUSTOS_BENCH_E2E_TRACE === undefined ? null : [];
    watch = (async () => {
      while (watching) {
        let page: Awaited<ReturnType<CustosClient['audit']>>;
        try {
          // One coordinator: a long poll, answered as soon as it appends an entry. With two, the
          // other's entries would wait for the 250 ms table poll: poll every 50 ms instead.
          page = await watcher.audit(from, 1000, urls.length === 1 ? 1000 : 0);
        } catch (err) {
          failures.push(`audit read failed: ${String(err)}`);
          await sleep(200);
          continue;
        }
        for (const e of page.entries as AuditEntry[]) {
          from = e.seq + 1;
          if (trace !== null) trace.push(`${e.at} ${e.event} ${e.subject.slice(0, 12)} ${e.actor}`);
          if (e.event === 'signing.signed') {
            const n = (signedCount.get(e.subject) ?? 0) + 1;
            signedCount.set(e.subject, n);
            if (n === 2) waiters.get(e.subject)?.(e.at);
          } else if (e.event === 'signing.refused' || e.event === 'alert' || e.event === 'intent.refused') {
            failures.push(`${e.event} ${e.subject}`);
            waiters.get(e.subject)?.(Number.NaN);
          }
        }
        if (urls.length > 1 && page.entries.length < 1000) await sleep(50);
        // Entries come a dozen per withdrawal: a follower that reads again at once costs the
        // coordinator a signed request per entry or two, which a production follower (the
        // watcher reads every second) does not. 20 ms lets a page gather several withdrawals'
        // entries; completion times are the entries' own `at`, so no latency figure moves.
        else if (page.entries.length > 0 && page.entries.length < 1000) await sleep(FOLLOW_GATHER_MS);
      }
      if (trace !== null) writeFileSync(process.env.CUSTOS_BENCH_E2E_TRACE!, `${trace.join('\n')}\n`);
    })();

    const withdraw = async (i: number, amount: bigint): Promise<WithdrawalTimes> => {
      const at = i % urls.length;
      world.clock.now = Date.now();
      const signed = world.intent(amount);
      const id = intentDigest(signed.intent);
      const approvals = world.approve(signed);
      // Bounded: a withdrawal neither signed nor refused within WITHDRAWAL_TIMEOUT_MS fails the run.
      let timer: NodeJS.Timeout | undefined;
      const signedAt = new Promise<number>((r) => {
        waiters.set(id, r);
        timer = setTimeout(() => {
          failures.push(`${id} not signed in ${WITHDRAWAL_TIMEOUT_MS} ms`);
          r(Number.NaN);
        }, WITHDRAWAL_TIMEOUT_MS);
      });
      try {
        const t0 = Date.now();
        await requesters[at]!.postIntent(signed);
        await approvers[at]![0]!.postApproval(id, approvals[0]!);
        const tLast = Date.now();
        await approvers[at]![1]!.postApproval(id, approvals[1]!);
        const done = await signedAt;
        if (Number.isNaN(done)) throw new Error(`withdrawal ${id} failed: ${failures.join(', ')}`);
        return { t0, tLast, at: done };
      } finally {
        clearTimeout(timer);
        waiters.delete(id);
      }
    };

    return {
      dir,
      node,
      world,
      coordinators,
      signers,
      urls,
      children,
      withdraw,
      stop: () => stopAll(true),
    };
  } catch (err) {
    await stopAll(false);
    throw err;
  }
}

// ------------------------------------------- the coordinator child process

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  if (process.argv[2] === 'bench-coordinator') {
    const config = JSON.parse(readFileSync(process.argv[3]!, 'utf8')) as ServerConfig;
    const running = await startServer(config, { handleSignals: false });
    process.stdout.write(`coordinator listening at ${running.url}\n`);
    process.once('SIGTERM', () => {
      running.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    });
  }
}
