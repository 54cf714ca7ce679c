/**
 * The watcher (issue 12): how fast an unexplained spend freezes the
 * deployment, and that ordinary withdrawals never do. `npm run bench --
 * watch` (`--spends 100 --withdrawals 300` are the defaults). Not in CI.
 *
 * What runs, all on 127.0.0.1: the deployment of bench/deployment.ts (a
 * bcoin regtest node in this process, the coordinator on SQLite and two
 * `custos signer run` processes as child processes), and `custos watch` as
 * a child process with the key of member watcher-1 (role watcher), its own
 * RPC connection to the node, polling every 200 ms (the default).
 *
 * 1. False positives: `withdrawals` withdrawals through Custos (intent, two
 *    approvals, both signers; four clients at once, a block mined every
 *    2 s), then the watcher's `/metrics` once it has matched them all:
 *    spends matched, unexplained (must be 0), freezes signed (must be 0),
 *    and the watcher's CPU per transaction it read.
 * 2. Latency: `spends` thefts, each a coin of the wallet spent with the two
 *    signers' keys (their keystores, unlocked here: what a thief who copied
 *    them holds) outside Custos, sent to the node; the time from the
 *    sendrawtransaction call to the freeze applied on the coordinator (its
 *    governance head moves; read every 5 ms). Before each theft two admins
 *    unfreeze with one quorum-signed entry, so every theft meets an
 *    unfrozen deployment. p50 and p99 printed; the target is p99 under 1 s.
 */
import { writeFileSync } from 'node:fs';
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
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import {
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
const POLL_MS = 200;
const CLIENTS = 4;

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i < 0 ? Number.NaN : Number(process.argv[i + 1]);
  return Number.isSafeInteger(v) && v > 0 ? v : fallback;
}

export async function watchBench(): Promise<Row[]> {
  const spends = flag('spends', 100);
  const withdrawals = flag('withdrawals', 300);
  const log = (s: string) => process.stdout.write(`  ${s}\n`);
  const d = await startDeployment({ backend: 'sqlite', coins: withdrawals + spends + 20, log });
  const rows: Row[] = [];
  const org = d.world.org;
  try {
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
        bitcoin: { rpcUrl: d.node.rpcUrl, rpcUser: d.node.rpcUser, rpcPasswordFile: 'rpc.password' },
        listen: { host: '127.0.0.1', port: 0 },
        pollMs: POLL_MS,
      }),
    );
    const watcher = spawnNode('watcher', [CLI, 'watch', '--config', join(d.dir, 'watcher.json')]);
    const url = (await waitOutput(watcher, /"url":"(http:\/\/[^"]+)"/))[1]!;
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
    const cpu0 = cpuMs(watcher);
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
    const cpu1 = cpuMs(watcher);
    const read =
      m1('custos_watcher_mempool_transactions_read_total') -
      m0('custos_watcher_mempool_transactions_read_total');
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
      figure: 'watcher CPU per mempool transaction read',
      value: (cpu1 - cpu0) / Math.max(1, read),
      unit: 'ms',
      note: `${((cpu1 - cpu0) / 1000).toFixed(1)} s CPU for ${read} transactions and ${m1('custos_watcher_blocks_read_total') - m0('custos_watcher_blocks_read_total')} blocks, polling every ${POLL_MS} ms`,
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
    const latencies: number[] = [];
    const cpu2 = cpuMs(watcher);
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
      const t = performance.now();
      await d.node.rpc.sendRawTransaction(tx.value.hex);
      for (;;) {
        const head = await admin.governanceHead();
        if (head !== null && head.seq > state.seq) break;
        if (performance.now() - t > 30_000)
          throw new Error(`theft ${i} not frozen in 30 s:\n${watcher.output().slice(-2000)}`);
        await sleep(5);
      }
      latencies.push(performance.now() - t);
      if (i % 20 === 19) await d.node.mine(1);
    }
    const cpu3 = cpuMs(watcher);
    const m2 = await metrics();
    rows.push({
      suite: 'watch',
      figure: `${spends} unexplained spends: p50 broadcast -> freeze applied on the coordinator`,
      value: percentile(latencies, 0.5),
      unit: 'ms',
      note: `poll every ${POLL_MS} ms`,
    });
    rows.push({
      suite: 'watch',
      figure: `${spends} unexplained spends: p99 broadcast -> freeze applied on the coordinator`,
      value: percentile(latencies, 0.99),
      unit: 'ms',
      note: `target 1000 ms; max ${Math.max(...latencies).toFixed(0)} ms`,
    });
    rows.push({
      suite: 'watch',
      figure: `${spends} unexplained spends: freezes signed / delivered`,
      value: m2('custos_watcher_freezes_delivered_total'),
      unit: 'delivered',
      note: `${m2('custos_watcher_freezes_signed_total')} signed, ${m2('custos_watcher_spends_unexplained_total')} unexplained`,
    });
    rows.push({
      suite: 'watch',
      figure: 'watcher CPU per unexplained spend (judge, sign, deliver)',
      value: (cpu3 - cpu2) / spends,
      unit: 'ms',
      note: 'including its polling meanwhile',
    });
    await stopChild(watcher);
  } finally {
    await d.stop();
  }
  return rows;
}
