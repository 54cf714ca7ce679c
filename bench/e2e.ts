/**
 * End to end (issue 5): withdrawals fully authorized per second through the
 * real HTTP API, on SQLite and on PostgreSQL, against the ceiling set by the
 * signatures one withdrawal needs, measured in the same run.
 *
 * What runs, all on 127.0.0.1:
 * - a bcoin regtest node (in this process), the wallet funded with many
 *   coins first (one funding transaction per coin, as deposits arrive; see
 *   docs/benchmarks.md), mined, so coin selection never waits;
 * - the coordinator (`startServer`, the code `custos serve` runs) in a child
 *   process: the real app, the real pipeline on the regtest node, SQLite or a
 *   real PostgreSQL 15 server started for the run and stopped after;
 * - two real signer processes (`custos signer run`: keystore, own SQLite
 *   ledger with fsync, outbound-only HTTP job loop). Child processes, not
 *   in-process Signers, so their cost, memory and profile are their own and
 *   nothing is shared with the clients but the wire;
 * - `clients` concurrent clients (CustosClient, the CLI's HTTP client, each
 *   request RFC 9421-signed): each signs an intent on the requester's device,
 *   POSTs it, POSTs two approvals signed by two approvers' devices, and waits
 *   until both signers' receipts are in (status signed, then broadcast),
 *   then starts the next withdrawal (closed loop).
 *
 * Completion is read from the audit log through the API (GET /v1/audit,
 * every 50 ms, by the watcher's device): the second `signing.signed` entry
 * of an intent is when both signatures are stored. Latency is from the
 * moment the last approval is sent to that entry's time (both Date.now on
 * this machine; the approval's answer comes back once the PSBT is built and
 * the jobs queued).
 *
 * `npx tsx bench/run.ts e2e --profile` also runs a shorter SQLite pass with
 * `node --cpu-prof` on the coordinator and on signer-1 and prints where their
 * time goes (self time by package and function, inclusive time by Custos
 * function).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { deriveAddress, descriptorKeyOf, signerKeyFromSeed } from '@custos/bitcoin';
import { type RegtestNode, startRegtestNode } from '@custos/bitcoin/regtest';
import {
  type AuditEntry,
  digestOf,
  ed25519PublicKey,
  fromHex,
  generateEd25519,
  intentDigest,
  sealWithPassword,
  signBytes,
  signDigest,
  toHex,
  verifyEd25519,
} from '@custos/core';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { CustosClient, memberSigner } from '../packages/cli/src/client.js';
import { propose, secretKeyFor } from '../packages/core/test/support/org.js';
import {
  initOrganization,
  openDatabase,
  type ServerConfig,
  Store,
  startServer,
} from '../packages/server/src/index.js';
import { startPostgres } from '../packages/server/test/support/postgres.js';
import { defaultPath, keystorePublic, writeKeystore } from '../packages/signer/src/keystore.js';
import { makeWorld, type World } from '../packages/signer/test/support/world.js';
import { measure, type Row } from './harness.js';

const SIGNER_MAIN = new URL('../packages/signer/src/main.ts', import.meta.url).pathname;
const SELF = new URL(import.meta.url).pathname;
const ROOT = new URL('..', import.meta.url).pathname;
const PASSWORD = 'a bench password, not a real one';
const AMOUNT = 100_000n;
const COIN = 1_000_000n;

export interface E2eOptions {
  readonly clients?: number;
  readonly seconds?: number;
  readonly coins?: number;
  readonly backends?: readonly ('sqlite' | 'postgres')[];
  readonly profile?: boolean;
}

export async function e2eBench(opts: E2eOptions = {}): Promise<Row[]> {
  const clients = opts.clients ?? 8;
  const seconds = opts.seconds ?? 25;
  const coins = opts.coins ?? 600;
  const profile = opts.profile ?? process.argv.includes('--profile');
  const rows: Row[] = [];
  const ceiling = measureCeiling();
  rows.push(...ceiling.rows);
  for (const backend of opts.backends ?? (['sqlite', 'postgres'] as const)) {
    const r = await runDeployment({ backend, clients, seconds, coins, profile: false });
    const label = `${backend}, ${clients} clients`;
    rows.push({
      suite: 'e2e',
      figure: `${label}: withdrawals signed`,
      value: r.rate,
      unit: '/s',
      note: `${r.done} in ${r.seconds.toFixed(1)} s`,
    });
    rows.push({ suite: 'e2e', figure: `${label}: p50 last approval -> signed`, value: r.p50, unit: 'ms' });
    rows.push({ suite: 'e2e', figure: `${label}: p99 last approval -> signed`, value: r.p99, unit: 'ms' });
    rows.push({ suite: 'e2e', figure: `${label}: p50 intent POST -> signed`, value: r.p50Total, unit: 'ms' });
    rows.push({
      suite: 'e2e',
      figure: `${label}: withdrawals / ceiling (${ceiling.cores} cores)`,
      value: r.rate / ceiling.perSecond,
      unit: 'ratio',
    });
    rows.push({
      suite: 'e2e',
      figure: `${label}: coordinator peak RSS`,
      value: r.rss.coordinator,
      unit: 'MiB',
      note: 'VmHWM',
    });
    rows.push({
      suite: 'e2e',
      figure: `${label}: signer-1 peak RSS`,
      value: r.rss.signer1,
      unit: 'MiB',
      note: 'VmHWM',
    });
    rows.push({
      suite: 'e2e',
      figure: `${label}: signer-2 peak RSS`,
      value: r.rss.signer2,
      unit: 'MiB',
      note: 'VmHWM',
    });
  }
  if (profile) {
    const r = await runDeployment({ backend: 'sqlite', clients, seconds: 12, coins: 400, profile: true });
    rows.push({
      suite: 'e2e',
      figure: `sqlite, ${clients} clients, under --cpu-prof: withdrawals signed`,
      value: r.rate,
      unit: '/s',
    });
  }
  return rows;
}

// ------------------------------------------------------------------ ceiling

/**
 * The signatures one 1-input withdrawal needs, counted at their minimum:
 * Ed25519 signatures: client 6 (intent, 2 approvals, 3 RFC 9421 requests:
 *   POST intent, 2 POST approvals), each signer 2 (receipt, the request
 *   that POSTs it; job long-polls can carry several jobs, so not counted) = 10;
 * Ed25519 verifications: coordinator 10 (3 client request signatures, the
 *   intent, 2 approvals, 2 signer request signatures, 2 receipts), each
 *   signer 3 (intent, 2 approvals) = 16;
 * ECDSA secp256k1 signatures: 1 per input per signer = 2.
 * The work can spread over every core (clients, coordinator and signers are
 * separate processes), so the ceiling is cores / (seconds of that work).
 */
function measureCeiling(): { perSecond: number; cores: number; rows: Row[] } {
  const ed = generateEd25519();
  const d = digestOf('bench', 1, { n: 1 });
  const sig = signDigest(ed.secretKey, d);
  if (sig.kind !== 'ed25519') throw new Error('unexpected');
  const msg = fromHex(d);
  const verify = measure('ed25519 verify', () => {
    verifyEd25519(ed.publicKey, msg, sig.sig);
  });
  const edSign = measure('ed25519 sign', () => {
    signBytes(ed.secretKey, msg);
  });
  const ecKey = secp256k1.utils.randomSecretKey();
  const ecSign = measure('ecdsa sign', () => {
    secp256k1.sign(msg, ecKey, { prehash: false });
  });
  const work = 10 / edSign.perSecond + 16 / verify.perSecond + 2 / ecSign.perSecond;
  const cores = cpus().length;
  return {
    perSecond: cores / work,
    cores,
    rows: [
      { suite: 'e2e', figure: 'raw Ed25519 sign', value: edSign.perSecond, unit: '/s' },
      { suite: 'e2e', figure: 'raw Ed25519 verify', value: verify.perSecond, unit: '/s' },
      { suite: 'e2e', figure: 'raw ECDSA secp256k1 sign', value: ecSign.perSecond, unit: '/s' },
      {
        suite: 'e2e',
        figure: 'ceiling, one core (10 sign + 16 verify + 2 ECDSA)',
        value: 1 / work,
        unit: '/s',
      },
      { suite: 'e2e', figure: `ceiling, ${cores} cores`, value: cores / work, unit: '/s' },
    ],
  };
}

// --------------------------------------------------------------- deployment

interface RunResult {
  readonly done: number;
  readonly seconds: number;
  readonly rate: number;
  readonly p50: number;
  readonly p99: number;
  readonly p50Total: number;
  readonly rss: { coordinator: number; signer1: number; signer2: number };
}

interface Child {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

function spawnNode(args: readonly string[], env: Record<string, string> = {}): Child {
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
  return { child, output: () => out, exited };
}

async function waitOutput(c: Child, pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = c.output().match(pattern);
    if (m !== null) return m;
    if (c.child.exitCode !== null) throw new Error(`child exited (${c.child.exitCode}):\n${c.output()}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}:\n${c.output()}`);
    await sleep(25);
  }
}

async function stopChild(c: Child): Promise<void> {
  if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGTERM');
  const t = setTimeout(() => c.child.kill('SIGKILL'), 20_000);
  await c.exited;
  clearTimeout(t);
}

/** Peak resident set of a live process, from /proc (Linux), in MiB. */
function peakRss(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmHWM:\s+(\d+) kB/);
    return m === null ? Number.NaN : Number(m[1]) / 1024;
  } catch {
    return Number.NaN;
  }
}

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

async function runDeployment(o: {
  backend: 'sqlite' | 'postgres';
  clients: number;
  seconds: number;
  coins: number;
  profile: boolean;
}): Promise<RunResult> {
  const log = (s: string) => process.stdout.write(`  e2e ${o.backend}: ${s}\n`);
  const dir = mkdtempSync(join(tmpdir(), 'custos-bench-e2e-'));
  const children: Child[] = [];
  let node: RegtestNode | undefined;
  let pg: Awaited<ReturnType<typeof startPostgres>> | undefined;
  try {
    // The organization: the signer test world with its two signers' keys in keystores.
    const signer1Secret = secretKeyFor('custos-test', 'signer-1');
    const signer2Secret = secretKeyFor('custos-test', 'signer-2');
    const k1 = await writeSignerKeystore(join(dir, 'signer-1.key'), 'signer-1', signer1Secret);
    const k2 = await writeSignerKeystore(join(dir, 'signer-2.key'), 'signer-2', signer2Secret);
    const world: World = makeWorld({
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
    log(`regtest node up, ${o.coins} coins funded in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    // Storage, seeded with the organization as `custos init` does.
    t = performance.now();
    let databaseUrl: string | undefined;
    if (o.backend === 'postgres') {
      pg = await startPostgres();
      databaseUrl = pg.url;
    }
    const sqlitePath = join(dir, 'coordinator.db');
    const db = await openDatabase(databaseUrl === undefined ? { sqlitePath } : { url: databaseUrl });
    const store = new Store(db, { now: Date.now });
    await initOrganization(store, org.genesis, { org: org.orgId });
    await store.appendGovernance(addSigner2);
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
    const profDir = join(dir, 'profiles');
    const prof = (name: string) =>
      o.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(profDir, name)}`, '--cpu-prof-interval=500'] : [];
    const coordinator = spawnNode([
      ...prof('coordinator'),
      SELF,
      'e2e-coordinator',
      join(dir, 'coordinator.json'),
    ]);
    children.push(coordinator);
    const url = (await waitOutput(coordinator, /coordinator listening at (\S+)/))[1]!;
    log(`coordinator on ${url} (${o.backend}) in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    const signers: Child[] = [];
    for (const id of ['signer-1', 'signer-2']) {
      writeFileSync(
        join(dir, `${id}.json`),
        JSON.stringify({
          id,
          coordinatorUrl: url,
          genesis: org.orgId,
          keystore: `${id}.key`,
          database: `${id}.db`,
          chains: ['bitcoin:regtest'],
          waitMs: 2000,
        }),
      );
      const s = spawnNode(
        [
          ...(id === 'signer-1' ? prof('signer-1') : []),
          SIGNER_MAIN,
          'signer',
          'run',
          '--config',
          join(dir, `${id}.json`),
        ],
        { CUSTOS_SIGNER_PASSWORD: PASSWORD },
      );
      children.push(s);
      signers.push(s);
    }
    await Promise.all(signers.map((s) => waitOutput(s, /signer\.started/)));

    const client = (p: { id: string; device: { id: string; secretKey: Uint8Array } }) =>
      new CustosClient({
        baseUrl: url,
        signer: memberSigner({ member: p.id, device: p.device.id, secretKey: p.device.secretKey }),
      });
    const requester = client(org.requester);
    const approvers = org.approvers.slice(0, 2).map(client);
    const watcher = client(org.watcher);

    // The coordinator's tracker must have seen the coins before the first withdrawal.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const w = (await watcher.wallets())[0];
      if (w?.balance !== null && w?.balance !== undefined && BigInt(w.balance) >= COIN * BigInt(o.coins))
        break;
      if (Date.now() > deadline)
        throw new Error(`the coordinator did not see the funded wallet:\n${coordinator.output()}`);
      await sleep(100);
    }

    // Completion, from the audit log through the API.
    const signedCount = new Map<string, number>();
    const waiters = new Map<string, (at: number) => void>();
    const failures: string[] = [];
    let from = 0;
    let watching = true;
    const trace: string[] | null = process.env.CUSTOS_BENCH_E2E_TRACE === undefined ? null : [];
    const watch = (async () => {
      while (watching) {
        const page = await watcher.audit(from, 1000);
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
        if (page.entries.length < 1000) await sleep(50);
      }
    })();

    const budget = o.coins - o.clients * 2;
    let started = 0;
    let measuring = false;
    let stop = false;
    const latencies: number[] = [];
    const totals: number[] = [];
    let done = 0;
    const withdraw = async (): Promise<void> => {
      world.clock.now = Date.now();
      const signed = world.intent(AMOUNT);
      const id = intentDigest(signed.intent);
      const approvals = world.approve(signed);
      const signedAt = new Promise<number>((r) => waiters.set(id, r));
      const t0 = Date.now();
      await requester.postIntent(signed);
      await approvers[0]!.postApproval(id, approvals[0]!);
      const tLast = Date.now();
      await approvers[1]!.postApproval(id, approvals[1]!);
      const at = await signedAt;
      waiters.delete(id);
      if (Number.isNaN(at)) throw new Error(`withdrawal ${id} failed: ${failures.join(', ')}`);
      if (measuring) {
        latencies.push(at - tLast);
        totals.push(at - t0);
        done++;
      }
    };
    const loop = async (): Promise<void> => {
      while (!stop && started < budget) {
        started++;
        await withdraw();
      }
    };
    // Warm-up: two withdrawals per client, not counted.
    await Promise.all(Array.from({ length: o.clients }, () => withdraw().then(() => withdraw())));
    started = 0;
    measuring = true;
    const t1 = performance.now();
    const timer = setTimeout(() => {
      stop = true;
    }, o.seconds * 1000);
    await Promise.all(Array.from({ length: o.clients }, loop));
    clearTimeout(timer);
    const elapsed = (performance.now() - t1) / 1000;
    watching = false;
    await watch;
    if (trace !== null) writeFileSync(process.env.CUSTOS_BENCH_E2E_TRACE!, `${trace.join('\n')}\n`);
    log(`${done} withdrawals in ${elapsed.toFixed(1)} s${started >= budget ? ' (coin budget used up)' : ''}`);

    const rss = {
      coordinator: peakRss(coordinator.child.pid),
      signer1: peakRss(signers[0]!.child.pid),
      signer2: peakRss(signers[1]!.child.pid),
    };
    for (const c of [...signers, coordinator]) await stopChild(c);
    if (o.profile) {
      for (const name of ['coordinator', 'signer-1']) {
        // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread (the others are tsx's loader).
        const files = readdirSync(join(profDir, name)).filter((f) => /\.0\.\d+\.cpuprofile$/.test(f));
        for (const f of files) printProfile(name, join(profDir, name, f));
      }
    }
    const pct = (xs: number[], q: number) => {
      const s = [...xs].sort((a, b) => a - b);
      return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
    };
    return {
      done,
      seconds: elapsed,
      rate: done / elapsed,
      p50: pct(latencies, 0.5),
      p99: pct(latencies, 0.99),
      p50Total: pct(totals, 0.5),
      rss,
    };
  } finally {
    for (const c of children) {
      if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    }
    await node?.close().catch(() => undefined);
    await pg?.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

// ----------------------------------------------------------------- profiles

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { functionName: string; url: string; lineNumber: number };
  readonly hitCount?: number;
  readonly children?: readonly number[];
}

/** Self time by function and by package, from a V8 .cpuprofile. */
function printProfile(name: string, file: string): void {
  const p = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: ProfileNode[];
    samples: number[];
    timeDeltas: number[];
    startTime: number;
    endTime: number;
  };
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0));
  }
  const parent = new Map<number, ProfileNode>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n);
  // Where in Custos the time is spent: the nearest three Custos frames up the stack.
  const custosPath = (n: ProfileNode): string => {
    const path: string[] = [];
    for (let at: ProfileNode | undefined = n; at !== undefined && path.length < 3; at = parent.get(at.id)) {
      const m = at.callFrame.url.match(/packages\/([^/]+)\/src\/([^/]+)$/);
      if (m !== null) path.push(`${at.callFrame.functionName || '(anonymous)'} ${m[1]}/${m[2]}`);
    }
    return path.length === 0 ? '(outside Custos code)' : path.join(' < ');
  };
  const byCustos = new Map<string, number>();
  // Inclusive time of each Custos function: every sample counts once for each function on its stack.
  const inclusive = new Map<string, number>();
  const custosFrames = (n: ProfileNode): Set<string> => {
    const seen = new Set<string>();
    for (let at: ProfileNode | undefined = n; at !== undefined; at = parent.get(at.id)) {
      const m = at.callFrame.url.match(/packages\/([^/]+)\/src\/(.+)$/);
      if (m !== null) seen.add(`${at.callFrame.functionName || '(anonymous)'} ${m[1]}/${m[2]}`);
    }
    return seen;
  };
  const byFn = new Map<string, number>();
  const byPkg = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const n of p.nodes) {
    const us = selfUs.get(n.id) ?? 0;
    if (us === 0) continue;
    const f = n.callFrame;
    if (f.functionName === '(idle)') {
      idle += us;
      continue;
    }
    total += us;
    const where = f.url === '' ? '' : `${basename(f.url)}:${f.lineNumber + 1}`;
    const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
    byFn.set(key, (byFn.get(key) ?? 0) + us);
    for (const f of custosFrames(n)) inclusive.set(f, (inclusive.get(f) ?? 0) + us);
    const cp = custosPath(n);
    byCustos.set(cp, (byCustos.get(cp) ?? 0) + us);
    byPkg.set(packageOf(f.url, f.functionName), (byPkg.get(packageOf(f.url, f.functionName)) ?? 0) + us);
  }
  const wall = p.endTime - p.startTime;
  const out = [
    `\n--- profile ${name}: ${(wall / 1e6).toFixed(1)} s wall, ${(total / 1e6).toFixed(1)} s busy, ${(idle / 1e6).toFixed(1)} s idle`,
    '  by package (self time, share of busy):',
    ...top(byPkg, 12).map(([k, v]) => `    ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`),
    '  by Custos function (inclusive time, share of busy):',
    ...top(inclusive, 35).map(([k, v]) => `    ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`),
    '  by Custos call site (self time below it, share of busy):',
    ...top(byCustos, 20).map(([k, v]) => `    ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`),
    '  by function (self time, share of busy):',
    ...top(byFn, 15).map(([k, v]) => `    ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`),
  ];
  process.stdout.write(`${out.join('\n')}\n`);
}

function top(m: Map<string, number>, n: number): [string, number][] {
  return [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n);
}

function packageOf(url: string, fn: string): string {
  if (url === '') return fn.startsWith('(') ? fn : '(native)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const pk = url.match(/packages\/([^/]+)\/src\/(.*)$/);
  if (pk !== null) return `@custos/${pk[1]} ${pk[2]}`;
  if (url.startsWith('node:')) return url;
  return basename(url);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ------------------------------------------- the coordinator child process

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  if (process.argv[2] === 'e2e-coordinator') {
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
