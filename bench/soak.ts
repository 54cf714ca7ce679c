/**
 * Soak (issue 11, "cost independent of history"): `npm run bench -- soak`
 * runs the end-to-end deployment of bench/deployment.ts for 10 minutes
 * (`--minutes N`, or CUSTOS_SOAK_MINUTES, to shorten it) on PostgreSQL with 4
 * clients in closed loops and a block mined every 30 s (so change comes back
 * as spendable coins and the coordinator's tracker and confirmations move, as
 * in production), and prints each minute: withdrawals signed per second, the
 * p50 from the last approval to both signatures, the RSS (VmRSS) of the
 * coordinator and both signers, and the machine's load average. At the end:
 * the last minute against the first (throughput, each RSS), the RSS slope
 * over the second half, and whether both are flat within noise (throughput
 * of the last minute at least 0.85 of the first; RSS of the last minute at
 * most 1.1 times minute 2's, the first minute growing the heaps).
 *
 * Not in CI and not run by a bare `npm run bench`: it takes the full time.
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { cpuMs, currentRss, type Deployment, percentile, sleep, startDeployment } from './deployment.js';
import { printProfile } from './e2e.js';
import type { Row } from './harness.js';

/** Small, so a 0.01 BTC coin and its change serve many withdrawals. */
const AMOUNT = 10_000n;
const BLOCK_EVERY_MS = 30_000;
/** Throughput of the last minute at least this share of the first: flat. */
const THROUGHPUT_FLOOR = 0.85;
/** RSS of the last minute at most this multiple of the first: flat. */
const RSS_CEILING = 1.1;

export interface SoakOptions {
  readonly minutes?: number;
  readonly clients?: number;
  readonly coins?: number;
  readonly profile?: boolean;
}

function minutesFromArgs(): number | undefined {
  const argv = process.argv;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--minutes') return Number(argv[i + 1]);
    if (a.startsWith('--minutes=')) return Number(a.slice('--minutes='.length));
  }
  const env = process.env.CUSTOS_SOAK_MINUTES;
  return env === undefined ? undefined : Number(env);
}

interface Minute {
  readonly minute: number;
  readonly withdrawals: number;
  readonly perSecond: number;
  readonly p50: number;
  readonly rss: Record<string, number>;
  readonly coordinatorCpuMs: number;
  readonly load: number;
}

export async function soakBench(opts: SoakOptions = {}): Promise<Row[]> {
  const minutes = opts.minutes ?? minutesFromArgs() ?? 10;
  if (!Number.isInteger(minutes) || minutes < 1 || minutes > 600) {
    throw new Error('--minutes must be a whole number from 1 to 600');
  }
  const clients = opts.clients ?? 4;
  const coins = opts.coins ?? 600;
  const log = (s: string) => process.stdout.write(`  soak: ${s}\n`);
  // `--profile`: the coordinator runs under --cpu-prof; its profile over the whole soak is printed at the end.
  const profile = opts.profile ?? process.argv.includes('--profile');
  const profDir = join('/tmp', `custos-soak-prof-${randomUUID()}`);
  let d: Deployment | undefined;
  try {
    d = await startDeployment({
      backend: 'postgres',
      coins,
      log,
      nodeArgs: (name) =>
        profile && name === 'coordinator-1'
          ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, '--cpu-prof-interval=1000']
          : [],
    });
    const dep = d;
    let stop = false;
    let done = 0;
    let latencies: number[] = [];
    const failures: unknown[] = [];
    const loop = async (client: number): Promise<void> => {
      while (!stop) {
        try {
          const t = await dep.withdraw(client, AMOUNT);
          done++;
          latencies.push(t.at - t.tLast);
        } catch (err) {
          failures.push(err);
          stop = true;
        }
      }
    };
    // Warm-up: two withdrawals per client, not counted.
    await Promise.all(
      Array.from({ length: clients }, (_, i) => dep.withdraw(i, AMOUNT).then(() => dep.withdraw(i, AMOUNT))),
    );
    log(`${minutes} minutes, ${clients} clients, PostgreSQL, a block every ${BLOCK_EVERY_MS / 1000} s`);
    const t1 = performance.now();
    const loops = Array.from({ length: clients }, (_, i) => loop(i));
    let blocks = 0;
    const miner = (async () => {
      for (let i = 1; !stop && i <= (minutes * 60_000) / BLOCK_EVERY_MS + 1; i++) {
        const wait = t1 + i * BLOCK_EVERY_MS - performance.now();
        if (wait > 0) await sleep(wait);
        if (stop) break;
        await dep.node.mine(1);
        blocks++;
      }
    })();
    const rows: Row[] = [];
    const table: Minute[] = [];
    let lastDone = 0;
    let lastCpu = dep.coordinators.reduce((a, c) => a + cpuMs(c), 0);
    const header = `  ${'min'.padStart(3)} ${'wd/s'.padStart(6)} ${'p50 ms'.padStart(7)} ${dep.children.map((c) => `${c.name} MiB`.padStart(19)).join(' ')} ${'coord ms/wd'.padStart(11)} ${'load'.padStart(5)}`;
    process.stdout.write(`${header}\n`);
    for (let m = 1; m <= minutes && !stop; m++) {
      const wait = t1 + m * 60_000 - performance.now();
      if (wait > 0) await sleepUnless(wait, () => stop);
      if (stop) break;
      const count = done - lastDone;
      lastDone = done;
      const cpu = dep.coordinators.reduce((a, c) => a + cpuMs(c), 0);
      const rss: Record<string, number> = {};
      for (const c of dep.children) rss[c.name] = currentRss(c);
      const row: Minute = {
        minute: m,
        withdrawals: count,
        perSecond: count / 60,
        p50: percentile(latencies, 0.5),
        rss,
        coordinatorCpuMs: count === 0 ? Number.NaN : (cpu - lastCpu) / count,
        load: loadavg()[0] ?? Number.NaN,
      };
      lastCpu = cpu;
      latencies = [];
      table.push(row);
      process.stdout.write(
        `  ${String(m).padStart(3)} ${row.perSecond.toFixed(2).padStart(6)} ${row.p50.toFixed(0).padStart(7)} ${dep.children.map((c) => (rss[c.name] ?? Number.NaN).toFixed(1).padStart(19)).join(' ')} ${row.coordinatorCpuMs.toFixed(1).padStart(11)} ${row.load.toFixed(2).padStart(5)}\n`,
      );
      rows.push({
        suite: 'soak',
        figure: `minute ${m}: withdrawals signed`,
        value: row.perSecond,
        unit: '/s',
      });
      rows.push({
        suite: 'soak',
        figure: `minute ${m}: p50 last approval -> signed`,
        value: row.p50,
        unit: 'ms',
      });
      rows.push({
        suite: 'soak',
        figure: `minute ${m}: coordinator CPU per withdrawal`,
        value: row.coordinatorCpuMs,
        unit: 'ms',
      });
      for (const [name, mib] of Object.entries(rss)) {
        rows.push({
          suite: 'soak',
          figure: `minute ${m}: ${name} RSS`,
          value: mib,
          unit: 'MiB',
          note: 'VmRSS',
        });
      }
      rows.push({ suite: 'soak', figure: `minute ${m}: load average`, value: row.load, unit: '' });
    }
    stop = true;
    await Promise.all(loops);
    await miner;
    if (failures.length > 0) throw failures[0];
    log(`${done} withdrawals, ${blocks} blocks mined`);

    const first = table[0];
    const last = table[table.length - 1];
    if (first === undefined || last === undefined) return rows;
    const throughput = last.perSecond / first.perSecond;
    const flatThroughput = throughput >= THROUGHPUT_FLOOR;
    rows.push({
      suite: 'soak',
      figure: `throughput, minute ${last.minute} / minute 1`,
      value: throughput,
      unit: 'ratio',
      note: flatThroughput ? 'flat' : `NOT flat (under ${THROUGHPUT_FLOOR})`,
    });
    let flatRss = true;
    const half = table.slice(Math.floor(table.length / 2));
    // The first minute still grows each heap to its working size: RSS is compared with minute 2
    // when there are at least 4.
    const base = table.length >= 4 ? table[1]! : first;
    for (const name of Object.keys(first.rss)) {
      const ratio = (last.rss[name] ?? Number.NaN) / (base.rss[name] ?? Number.NaN);
      const flat = ratio <= RSS_CEILING;
      flatRss &&= flat;
      rows.push({
        suite: 'soak',
        figure: `${name} RSS, minute ${last.minute} / minute ${base.minute}`,
        value: ratio,
        unit: 'ratio',
        note: flat ? 'flat' : `NOT flat (over ${RSS_CEILING})`,
      });
      rows.push({
        suite: 'soak',
        figure: `${name} RSS slope, second half`,
        value: slope(half.map((r) => [r.minute, r.rss[name] ?? Number.NaN])),
        unit: 'MiB/min',
      });
    }
    if (profile) {
      await dep.stop();
      // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread.
      for (const f of readdirSync(profDir).filter((f) => /\.0\.\d+\.cpuprofile$/.test(f))) {
        printProfile('coordinator-1', join(profDir, f));
      }
      rmSync(profDir, { recursive: true, force: true });
    }
    log(
      `throughput ${flatThroughput ? 'flat' : 'NOT flat'} (minute ${last.minute} / minute 1 = ${throughput.toFixed(2)}), RSS ${flatRss ? 'flat' : 'NOT flat'} (minute ${last.minute} / minute ${base.minute} <= ${RSS_CEILING} for every process: ${flatRss})`,
    );
    return rows;
  } finally {
    await d?.stop();
  }
}

/** Least-squares slope of y over x. */
function slope(points: readonly [number, number][]): number {
  const n = points.length;
  if (n < 2) return Number.NaN;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? Number.NaN : num / den;
}

/** Sleeps `ms`, waking early (checked every second) once `stopped()` is true. */
async function sleepUnless(ms: number, stopped: () => boolean): Promise<void> {
  const end = performance.now() + ms;
  for (let i = 0; i < 100_000 && !stopped(); i++) {
    const left = end - performance.now();
    if (left <= 0) return;
    await sleep(Math.min(1000, left));
  }
}
