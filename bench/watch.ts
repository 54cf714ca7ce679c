/**
 * The watcher (issue 12): how fast an unexplained spend freezes the
 * deployment, and that ordinary withdrawals never do. `npm run bench --
 * watch` (`--spends 100 --withdrawals 300` are the defaults). Not in CI.
 *
 * What runs, all on 127.0.0.1: the deployment of bench/deployment.ts (a
 * bcoin regtest node in this process, the coordinator on SQLite and two
 * `custos signer run` processes as child processes), and `custos watch` as
 * a child process with the key of member watcher-1 (role watcher), its own
 * RPC connection to the node, and the node's ZMQ `rawtx` and `sequence`
 * publishers (played from the regtest node's events by
 * @custos/test-support/zmq-publisher, as bitcoind's -zmqpub* would publish
 * them; RPC polled every 10 s as the safety net, the default with ZMQ).
 * `--poll` runs it without ZMQ, polling RPC every 200 ms. Once the
 * watcher serves, both signers are restarted with it in their configuration
 * (`watchers: [{url}]`, `waitMs` 10 s and `freezePollMs` left at their
 * defaults), as an operator points them at it.
 *
 * 1. False positives: `withdrawals` withdrawals through Custos (intent, two
 *    approvals, both signers; four clients at once, a block mined every
 *    2 s), then the watcher's `/metrics` once it has matched them all:
 *    spends matched, unexplained (must be 0), freezes signed (must be 0).
 * 2. Latency: `spends` thefts, each a coin of the wallet spent with the two
 *    signers' keys (their keystores, unlocked here: what a thief who copied
 *    them holds) outside Custos, sent to the node. From the
 *    sendrawtransaction call (wall clock) to the freeze applied at each
 *    signer: the `at` of its `signer.frozen` line for the freeze's seq (its
 *    own log, pulled from the watcher: a signer learns the coordinator's
 *    governance only with its next job, and none comes while frozen); and
 *    to the freeze applied on the coordinator (its governance head moves;
 *    read every 5 ms). Before each theft two admins unfreeze with one
 *    quorum-signed entry and one withdrawal goes through Custos, which
 *    brings both signers to the new head (a freeze is applied only at a
 *    signer's head + 1) and shows them signing again; a block is mined. So
 *    every theft meets an unfrozen deployment. p50 and p99 printed; the
 *    target is p99 under 1 s at every signer.
 *
 * The watcher's CPU (utime + stime from /proc/<pid>/stat) per transaction it
 * observed (spends matched plus unexplained, from its /metrics), over the
 * withdrawals, over the theft series (thefts and the withdrawals between
 * them), and over both windows together.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  buildPsbt,
  combinePsbts,
  deriveAddress,
  finalizePsbt,
  scriptToAddress,
  signPsbt,
  type WalletUtxo,
} from '@custos/bitcoin';
import { CustosClient, memberSigner } from '@custos/cli/client';
import {
  buildEntry,
  type Digest,
  ed25519PublicKey,
  type GovernanceState,
  sealWithPassword,
  signGovernanceEntry,
  toHex,
  verifyGovernanceChain,
} from '@custos/core';
import { unlockKeystore } from '@custos/signer/keystore';
import { startZmqPublisher, type ZmqPublisher } from '@custos/test-support/zmq-publisher';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import {
  type Child,
  cpuMs,
  PASSWORD,
  percentile,
  sleep,
  spawnNode,
  startDeployment,
  stopChild,
  waitOutput,
} from './deployment.js';
import type { Row } from './harness.js';

const CLI = new URL('../packages/cli/bin/custos.js', import.meta.url).pathname;
const SIGNER_MAIN = new URL('../packages/signer/src/main.ts', import.meta.url).pathname;
const POLL_MS = 200;
const CLIENTS = 4;
const SIGNERS = ['signer-1', 'signer-2'] as const;

/** When a signer's own log says it applied the freeze `seq` pulled from a watcher (epoch ms), or null. */
function frozenAt(signer: Child, seq: number): number | null {
  const m = signer
    .output()
    .match(new RegExp(`"at":"([^"]+)","event":"signer\\.frozen","source":"watcher","seq":${seq},`));
  return m === null ? null : Date.parse(m[1]!);
}

/** When the watcher's own log raised the alert for `txid` (epoch ms), or null. */
function alertAt(watcher: Child, txid: string): number | null {
  const m = watcher
    .output()
    .match(new RegExp(`"at":"([^"]+)","event":"watcher\\.alert",[^\\n]*"txid":"${txid}"`));
  return m === null ? null : Date.parse(m[1]!);
}

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i < 0 ? Number.NaN : Number(process.argv[i + 1]);
  return Number.isSafeInteger(v) && v > 0 ? v : fallback;
}

export async function watchBench(): Promise<Row[]> {
  const spends = flag('spends', 100);
  const withdrawals = flag('withdrawals', 300);
  const zmq = !process.argv.includes('--poll');
  const feed = zmq ? 'ZMQ, RPC every 10 s' : `RPC every ${POLL_MS} ms`;
  const log = (s: string) => process.stdout.write(`  ${s}\n`);
  const d = await startDeployment({ backend: 'sqlite', coins: withdrawals + spends + 20, log });
  const rows: Row[] = [];
  const org = d.world.org;
  let watcher: Child | undefined;
  let publisher: ZmqPublisher | undefined;
  const signers: Child[] = [];
  try {
    if (zmq) publisher = await startZmqPublisher(d.node);
    // The watcher's sealed device key file, its node's RPC password, its config.
    const w = org.watcher;
    const pub = { member: w.id, device: w.device.id, publicKey: ed25519PublicKey(w.device.secretKey) };
    const box = await sealWithPassword({ secretKey: toHex(w.device.secretKey) }, PASSWORD, pub, { logN: 12 });
    writeFileSync(
      join(d.dir, 'watcher.key'),
      JSON.stringify({ v: 1, kind: 'custos-device-key', public: pub, box }),
    );
    writeFileSync(join(d.dir, 'watcher.password'), `${PASSWORD}\n`, { mode: 0o600 });
    writeFileSync(join(d.dir, 'rpc.password'), `${d.node.rpcPassword}\n`, { mode: 0o600 });
    writeFileSync(
      join(d.dir, 'watcher.json'),
      JSON.stringify({
        coordinatorUrl: d.urls[0],
        genesis: org.orgId,
        keyFile: 'watcher.key',
        passwordFile: 'watcher.password',
        record: 'watcher-record.json',
        bitcoin: {
          rpcUrl: d.node.rpcUrl,
          rpcUser: d.node.rpcUser,
          rpcPasswordFile: 'rpc.password',
          ...(publisher === undefined
            ? {}
            : { zmq: { rawtx: publisher.rawtx, sequence: publisher.sequence } }),
        },
        listen: { host: '127.0.0.1', port: 0 },
        ...(zmq ? {} : { pollMs: POLL_MS }),
      }),
    );
    const w1 = spawnNode('watcher', [CLI, 'watch', '--config', join(d.dir, 'watcher.json')]);
    watcher = w1;
    const url = (await waitOutput(w1, /"url":"(http:\/\/[^"]+)"/))[1]!;
    for (const endpoint of publisher === undefined ? [] : [publisher.rawtx, publisher.sequence]) {
      await waitOutput(w1, new RegExp(`"kind":"connected","endpoint":"${endpoint}"`));
    }
    log(`watcher at ${url}, reading its node by ${feed}`);
    // The signers pointed at the watcher: stopped, configured, started again on the same ledger.
    for (const [i, id] of SIGNERS.entries()) {
      await stopChild(d.signers[i]!);
      const file = join(d.dir, `${id}.json`);
      const config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
      const { waitMs: _bench, ...rest } = config;
      writeFileSync(file, JSON.stringify({ ...rest, watchers: [{ url }] }));
      const s = spawnNode(id, [SIGNER_MAIN, 'signer', 'run', '--config', file], {
        CUSTOS_SIGNER_PASSWORD: PASSWORD,
      });
      signers.push(s);
      await waitOutput(s, /signer\.started/);
    }
    const metrics = async () => {
      const families = parsePrometheusTextFormat(await (await fetch(`${url}/metrics`)).text());
      return (name: string) =>
        families.find((f) => f.name === name)?.metrics.reduce((sum, m) => sum + Number(m.value ?? 0), 0) ?? 0;
    };
    // Caught up with the funding blocks before anything is measured.
    for (;;) {
      const m = await metrics();
      if (m('custos_watcher_processed_height') >= d.node.height() && m('custos_watcher_lag_blocks') === 0)
        break;
      await sleep(100);
    }

    // 1. Withdrawals through Custos: every one matched, none unexplained.
    const miner = setInterval(() => void d.node.mine(1).catch(() => undefined), 2_000);
    const cpu0 = cpuMs(w1);
    const m0 = await metrics();
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, client) => {
        while (next < withdrawals) {
          next++;
          await d.withdraw(client, 10_000n);
        }
      }),
    );
    const withdrawSeconds = (performance.now() - t0) / 1000;
    log(`${withdrawals} withdrawals signed in ${withdrawSeconds.toFixed(1)} s`);
    let m1 = await metrics();
    const deadline = Date.now() + 120_000;
    while (m1('custos_watcher_spends_matched_total') < withdrawals && Date.now() < deadline) {
      await sleep(200);
      m1 = await metrics();
    }
    clearInterval(miner);
    await d.node.mine(1);
    await sleep(3 * POLL_MS);
    m1 = await metrics();
    const cpu1 = cpuMs(w1);
    const read =
      m1('custos_watcher_mempool_transactions_read_total') -
      m0('custos_watcher_mempool_transactions_read_total');
    const observed = (m: typeof m0) =>
      m('custos_watcher_spends_matched_total') + m('custos_watcher_spends_unexplained_total');
    const observed1 = observed(m1) - observed(m0);
    const blocks1 = m1('custos_watcher_blocks_read_total') - m0('custos_watcher_blocks_read_total');
    const unexplained = m1('custos_watcher_spends_unexplained_total');
    const freezes = m1('custos_watcher_freezes_signed_total');
    rows.push({
      suite: 'watch',
      figure: `${withdrawals} withdrawals through Custos: spends matched`,
      value: m1('custos_watcher_spends_matched_total'),
      unit: 'spends',
      note: `${CLIENTS} clients, ${withdrawSeconds.toFixed(0)} s, a block every 2 s`,
    });
    rows.push({
      suite: 'watch',
      figure: `${withdrawals} withdrawals through Custos: false positives`,
      value: unexplained,
      unit: 'unexplained',
      note: `${freezes} freezes signed; must be 0`,
    });
    rows.push({
      suite: 'watch',
      figure: 'watcher CPU per transaction observed, withdrawals',
      value: (cpu1 - cpu0) / Math.max(1, observed1),
      unit: 'ms',
      note: `${((cpu1 - cpu0) / 1000).toFixed(1)} s CPU in ${withdrawSeconds.toFixed(0)} s for ${observed1} spends (${read} read in the mempool) and ${blocks1} blocks; ${feed}`,
    });

    // 2. Thefts with the signers' own keys, each against a fresh unfreeze.
    const admin = new CustosClient({
      baseUrl: d.urls[0]!,
      signer: memberSigner({
        member: org.admins[0]!.id,
        device: org.admins[0]!.device.id,
        secretKey: org.admins[0]!.device.secretKey,
      }),
    });
    const admins = org.admins
      .slice(0, 2)
      .map((a) => ({ member: a.id, device: a.device.id, secretKey: a.device.secretKey }));
    const verified = async (): Promise<GovernanceState> => {
      const now = Date.now();
      const chain = verifyGovernanceChain(
        org.orgId as Digest,
        (await admin.governanceEntries(-1)).map((signed) => ({ signed, seenAt: now })),
      );
      if (!chain.ok) throw new Error(chain.message);
      return chain.value;
    };
    const keys = await Promise.all(
      ['signer-1', 'signer-2'].map(
        async (id) => (await unlockKeystore(join(d.dir, `${id}.key`), PASSWORD)).key,
      ),
    );
    const descriptor = d.world.descriptor;
    const thief = scriptToAddress(new Uint8Array([0x00, 0x14, ...new Uint8Array(20).fill(7)]), 'regtest')!;
    const coins: WalletUtxo[] = [];
    for (let i = 0; i < spends; i++) {
      const index = i % 20;
      const funded = await d.node.fund(deriveAddress(descriptor, 0, index).script, 200_000n);
      coins.push({
        txid: funded.txid,
        vout: funded.vout,
        value: 200_000n,
        branch: 0,
        index,
        prevTx: funded.raw,
      });
    }
    await d.node.mine(1);
    await sleep(3 * POLL_MS);
    const toCoordinator: number[] = [];
    const toAlert: number[] = [];
    const toEverySigner: number[] = [];
    const toSigner: number[][] = SIGNERS.map(() => []);
    const cpu2 = cpuMs(w1);
    const m2 = await metrics();
    const t2 = performance.now();
    for (const [i, coin] of coins.entries()) {
      let state = await verified();
      if (state.frozen !== null) {
        await admin.propose(
          signGovernanceEntry(
            buildEntry(state, 'unfreeze', { reason: `bench theft ${i}` }, Date.now()),
            admins,
          ),
        );
        state = await verified();
        // Both signers to the new head, signing again; its transaction and the last theft mined.
        await d.withdraw(0, 10_000n);
        await d.node.mine(1);
      }
      const built = buildPsbt({
        wallet: descriptor,
        utxos: [coin],
        to: thief,
        amount: 150_000n,
        feeRate: 2n,
        changeIndex: 0,
      });
      if (!built.ok) throw new Error(built.message);
      const parts = keys.map((k) => {
        const s = signPsbt(built.value.psbt, k, descriptor);
        if (!s.ok) throw new Error(s.message);
        return s.value.psbt;
      });
      const combined = combinePsbts(parts);
      if (!combined.ok) throw new Error(combined.message);
      const tx = finalizePsbt(combined.value);
      if (!tx.ok) throw new Error(tx.message);
      const seq = state.seq + 1;
      const wall = Date.now();
      const t = performance.now();
      await d.node.rpc.sendRawTransaction(tx.value.hex);
      let coordinator: number | null = null;
      const atSigner: (number | null)[] = SIGNERS.map(() => null);
      while (coordinator === null || atSigner.includes(null)) {
        if (coordinator === null) {
          const head = await admin.governanceHead();
          if (head !== null && head.seq > state.seq) coordinator = performance.now() - t;
        }
        for (const [k, s] of signers.entries()) atSigner[k] ??= frozenAt(s, seq);
        if (performance.now() - t > 30_000)
          throw new Error(
            `theft ${i} (freeze ${seq}) not applied everywhere in 30 s (coordinator ${coordinator} ms, signers ${atSigner.join(', ')}):\n${w1.output().slice(-2000)}\n${signers.map((s) => s.output().slice(-1000)).join('\n')}`,
          );
        if (coordinator === null || atSigner.includes(null)) await sleep(5);
      }
      toCoordinator.push(coordinator);
      const alerted = alertAt(w1, tx.value.txid);
      if (alerted !== null) toAlert.push(alerted - wall);
      const each = atSigner.map((at) => at! - wall);
      for (const [k, ms] of each.entries()) toSigner[k]!.push(ms);
      toEverySigner.push(Math.max(...each));
    }
    const cpu3 = cpuMs(w1);
    const m3 = await metrics();
    const seriesSeconds = (performance.now() - t2) / 1000;
    const observed3 = observed(m3) - observed(m2);
    const ms = (xs: number[]) =>
      `p50 ${percentile(xs, 0.5).toFixed(0)} ms, p99 ${percentile(xs, 0.99).toFixed(0)} ms`;
    rows.push({
      suite: 'watch',
      figure: `${spends} unexplained spends: p50 broadcast -> freeze applied at every signer`,
      value: percentile(toEverySigner, 0.5),
      unit: 'ms',
      note: `the later of ${SIGNERS.length}, from its own signer.frozen line; pulled from the watcher every 250 ms`,
    });
    rows.push({
      suite: 'watch',
      figure: `${spends} unexplained spends: p99 broadcast -> freeze applied at every signer`,
      value: percentile(toEverySigner, 0.99),
      unit: 'ms',
      note: `target under 1000 ms; max ${Math.max(...toEverySigner).toFixed(0)} ms; ${SIGNERS.map((id, k) => `${id} ${ms(toSigner[k]!)}`).join('; ')}`,
    });
    rows.push({
      suite: 'watch',
      figure: `${spends} unexplained spends: p50 broadcast -> freeze applied on the coordinator`,
      value: percentile(toCoordinator, 0.5),
      unit: 'ms',
      note: `watcher reads ${feed}; head read every 5 ms`,
    });
    rows.push({
      suite: 'watch',
      figure: `${spends} unexplained spends: p99 broadcast -> freeze applied on the coordinator`,
      value: percentile(toCoordinator, 0.99),
      unit: 'ms',
      note: `max ${Math.max(...toCoordinator).toFixed(0)} ms`,
    });
    rows.push({
      suite: 'watch',
      figure: `${spends} unexplained spends: p50 broadcast -> the watcher's alert`,
      value: percentile(toAlert, 0.5),
      unit: 'ms',
      note: `its own watcher.alert line, before it signs; p99 ${percentile(toAlert, 0.99).toFixed(0)} ms; ${toAlert.length} found`,
    });
    rows.push({
      suite: 'watch',
      figure: `${spends} unexplained spends: freezes signed / delivered`,
      value: m3('custos_watcher_freezes_delivered_total'),
      unit: 'delivered',
      note: `${m3('custos_watcher_freezes_signed_total')} signed, ${m3('custos_watcher_spends_unexplained_total')} unexplained`,
    });
    rows.push({
      suite: 'watch',
      figure: 'watcher CPU per transaction observed, theft series',
      value: (cpu3 - cpu2) / Math.max(1, observed3),
      unit: 'ms',
      note: `${((cpu3 - cpu2) / 1000).toFixed(1)} s CPU in ${seriesSeconds.toFixed(0)} s for ${observed3} spends (${m3('custos_watcher_spends_unexplained_total') - m2('custos_watcher_spends_unexplained_total')} thefts, the rest withdrawals between them) and ${m3('custos_watcher_blocks_read_total') - m2('custos_watcher_blocks_read_total')} blocks; serving /v1/freezes to ${SIGNERS.length} signers 4 times a second each`,
    });
    rows.push({
      suite: 'watch',
      figure: 'watcher CPU per transaction observed, overall',
      value: (cpu1 - cpu0 + cpu3 - cpu2) / Math.max(1, observed1 + observed3),
      unit: 'ms',
      note: `${((cpu1 - cpu0 + cpu3 - cpu2) / 1000).toFixed(1)} s CPU for ${observed1 + observed3} spends over both windows`,
    });
  } finally {
    for (const s of signers) await stopChild(s);
    if (watcher !== undefined) await stopChild(watcher);
    await publisher?.close();
    await d.stop();
  }
  return rows;
}
