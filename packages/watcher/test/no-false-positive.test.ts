/**
 * The watcher raises no false positive (issue 12): 1,000 ordinary
 * withdrawals through Custos while `custos watch` runs, and not one alert,
 * not one freeze.
 *
 * A real deployment (@custos/test-support/deployment: `custos serve`, two
 * `custos signer run` processes of the 2-of-3 wallet, bcoin regtest in this
 * process) whose genesis policy has an automated tier (issue 13): member
 * payout-service, role `service`, pays up to 0.001 BTC to the address book
 * with no approval, bounded by the wallet's daily limit. Each withdrawal is
 * its own intent, signed on the service's device key and posted
 * (`submitTransfer`), authorized by the policy, signed by both signer
 * processes, combined and broadcast by the coordinator, and mined: eight
 * clients at once, a block mined right after a broadcast every
 * MINE_EVERY_MS, so the watcher meets spends in its mempool reads and
 * spends it first sees in a block (both kinds are asserted). The wallet is
 * funded with COINS coins first (one funding transaction each, as deposits
 * arrive); the change of each withdrawal comes back to the wallet and is
 * spent again once mined.
 *
 * Then: every withdrawal confirmed (the coordinator's `transaction.confirmed`
 * audit entries), and the watcher, caught up with the node, has matched each
 * broadcast txid exactly once (its record file and `/metrics`: matched
 * 1000, unexplained 0, freezes signed 0), logged no alert and signed no
 * freeze; the coordinator's governance is not frozen and its audit log has
 * no `frozen` or `alert` entry.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deriveAddress, parseDescriptor } from '@custos/bitcoin';
import { CustosClient, openSealedDeviceKey } from '@custos/cli/client';
import { type AuditEntry, CustosError } from '@custos/core';
import { eventually, type Running, start } from '@custos/test-support/cli';
import {
  type Deployment,
  PASSWORD,
  startDeployment,
  writeWatcherConfig,
} from '@custos/test-support/deployment';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const WITHDRAWALS = 1000;
const CLIENTS = 8;
/** Funding coins of 0.02 BTC; with the change of each withdrawal coming back, far more than 8 clients need between blocks. */
const COINS = 300;
const COIN = 2_000_000n;
const AMOUNT = '10000';
const MINE_EVERY_MS = 1500;
/** The watcher's round interval: two coordinator reads per round stay well inside a member key's 20 requests/s. */
const POLL_MS = 250;
const SERVICE = 'payout-service';

/** The default policy's address-book rule for people, and an automated tier for the service (issue 13). */
const POLICY = {
  v: 1,
  rules: [
    {
      id: 'payouts',
      match: {
        destination: { kind: 'address-book' },
        wallets: ['btc-main'],
        assets: ['BTC'],
        maxAmount: '100000',
        requesterRoles: ['service'],
      },
      action: 'allow',
      approvals: [],
    },
    {
      id: 'address-book',
      match: { destination: { kind: 'address-book' }, requesterRoles: ['requester'] },
      action: 'allow',
      approvals: [{ m: 2, role: 'approver' }],
    },
  ],
  limits: [
    {
      id: 'btc-main-daily',
      scope: 'wallet-asset',
      wallet: 'btc-main',
      asset: 'BTC',
      windowMs: 86_400_000,
      max: '1000000000',
    },
  ],
  feeCaps: [{ wallet: 'btc-main', asset: 'BTC', maxFee: '200000', maxFeeRate: '200' }],
  lookalike: { prefix: 8, suffix: 6, action: 'deny' },
};

let d: Deployment;
let watcher: Running;
let watcherUrl: string;

async function metrics(): Promise<(name: string) => number> {
  const res = await fetch(`${watcherUrl}/metrics`);
  expect(res.status).toBe(200);
  const families = parsePrometheusTextFormat(await res.text());
  // A family's samples summed (a labelled counter with no sample yet is 0).
  return (name) =>
    families.find((f) => f.name === name)?.metrics.reduce((sum, m) => sum + Number(m.value ?? 0), 0) ?? 0;
}

async function governanceSeq(): Promise<number> {
  const r = await fetch(new URL('/v1/ready', d.coordinatorUrl));
  return ((await r.json()) as { governanceSeq: number }).governanceSeq;
}

beforeAll(async () => {
  const t0 = performance.now();
  d = await startDeployment({
    watcher: true,
    members: [{ id: SERVICE, roles: ['requester', 'service'] }],
    policy: POLICY,
  });
  const tDeployed = performance.now();
  const parsed = parseDescriptor(d.descriptor, 'regtest');
  if (!parsed.ok) throw new Error(parsed.message);
  for (let i = 0; i < COINS; i++) await d.node.fund(deriveAddress(parsed.value, 0, i % 20).script, COIN);
  await d.node.mine(1);
  const admin = new CustosClient({
    baseUrl: d.coordinatorUrl,
    signer: await openSealedDeviceKey(join(d.home, 'profiles', 'admin-1', 'device.key'), PASSWORD),
  });
  await eventually(
    async () => ((await admin.wallets())[0]!.utxos >= COINS + 1 ? true : undefined),
    'the coordinator to see the funding coins',
    120_000,
  );
  const tFunded = performance.now();

  writeWatcherConfig(d, { listen: { host: '127.0.0.1', port: 0 }, pollMs: POLL_MS });
  watcher = start(['watch', '--config', join(d.dir, 'watcher.json')], { env: d.env });
  const line = await watcher.waitFor(/"url":"http:\/\/127\.0\.0\.1:[0-9]+"/);
  watcherUrl = line.slice('"url":"'.length, -1);
  await eventually(async () => {
    const m = await metrics();
    return m('custos_watcher_processed_height') === d.node.height() && m('custos_watcher_lag_blocks') === 0
      ? true
      : undefined;
  }, 'the watcher to catch up with the funding blocks');
  console.log(
    `no-false-positive: deployment up in ${((tDeployed - t0) / 1000).toFixed(1)} s, ${COINS} coins funded and seen in ${((tFunded - tDeployed) / 1000).toFixed(1)} s, the watcher caught up in ${s(tFunded)} s`,
  );
}, 300_000);

afterAll(async () => {
  if (watcher !== undefined && watcher.child.exitCode === null) watcher.child.kill('SIGTERM');
  if (watcher !== undefined) await Promise.race([watcher.exited, new Promise((r) => setTimeout(r, 5000))]);
  await d?.stop();
});

function s(since: number): string {
  return ((performance.now() - since) / 1000).toFixed(1);
}

describe('no false positive', () => {
  it(`${WITHDRAWALS} ordinary withdrawals through Custos while the watcher runs: each matched once, no alert, no freeze`, async () => {
    const seqBefore = await governanceSeq();
    const service = new CustosClient({
      baseUrl: d.coordinatorUrl,
      signer: await openSealedDeviceKey(join(d.home, 'profiles', SERVICE, 'device.key'), PASSWORD),
    });
    // The audit log, followed on admin-2's key: broadcasts and confirmations by intent, and anything wrong.
    const reader = new CustosClient({
      baseUrl: d.coordinatorUrl,
      signer: await openSealedDeviceKey(join(d.home, 'profiles', 'admin-2', 'device.key'), PASSWORD),
    });
    const broadcast = new Map<string, string>();
    const confirmed = new Set<string>();
    const bad: AuditEntry[] = [];
    /** Requests the coordinator refused (e.g. RATE_LIMITED): not a withdrawal's failure, but shown. */
    const refusedRequests: AuditEntry[] = [];
    /** Intent posts the coordinator answered RATE_LIMITED, sent again after a second. */
    let rateLimited = 0;
    const waiting = new Map<string, () => void>();
    let from = 0;
    let following = true;
    let lastMined = performance.now();
    let blocksMined = 0;
    let progress = 0;
    const t0 = performance.now();
    const follow = (async () => {
      while (following) {
        const page = await reader.audit(from, 1000, 1000);
        let mine = false;
        for (const e of page.entries) {
          from = e.seq + 1;
          if (e.event === 'transaction.broadcast') {
            broadcast.set(e.subject, e.digest);
            waiting.get(e.subject)?.();
            mine ||= performance.now() - lastMined >= MINE_EVERY_MS;
            if (broadcast.size >= progress + 100) {
              progress = Math.floor(broadcast.size / 100) * 100;
              console.log(
                `no-false-positive: ${progress} withdrawals broadcast in ${s(t0)} s, ${blocksMined} blocks mined`,
              );
            }
          } else if (e.event === 'transaction.confirmed') {
            confirmed.add(e.subject);
          } else if (e.event === 'request.refused') {
            refusedRequests.push(e);
          } else if (['alert', 'frozen', 'intent.refused', 'signing.refused'].includes(e.event)) {
            bad.push(e);
            waiting.get(e.subject)?.();
          }
        }
        // Right after a broadcast, before the watcher's next mempool read: some spends it first meets in a block.
        if (mine) {
          await d.node.mine(1);
          lastMined = performance.now();
          blocksMined++;
        }
        // Ten reads a second at most: inside the reader key's rate limit (20 a second).
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    let next = 0;
    const clients = Array.from({ length: CLIENTS }, async () => {
      while (next < WITHDRAWALS && bad.length === 0) {
        const i = next++;
        const transfer = {
          org: d.genesis,
          wallet: 'btc-main',
          chain: 'bitcoin:regtest',
          asset: 'BTC',
          amount: AMOUNT,
          to: i % 2 === 0 ? d.cold : d.exchange,
          memo: `payout ${i}`,
        } as const;
        let posted: Awaited<ReturnType<typeof service.submitTransfer>> | undefined;
        while (posted === undefined) {
          try {
            posted = await service.submitTransfer(transfer);
          } catch (err) {
            // One service key for eight clients: past its rate (20 a second), a backend waits and
            // sends again, like every client of a rate-limited API (nothing was stored).
            if (!(err instanceof CustosError) || err.code !== 'RATE_LIMITED') throw err;
            rateLimited++;
            await new Promise((r) => setTimeout(r, 1000));
          }
        }
        expect(posted.status, JSON.stringify(posted.decision)).toBe('approved');
        await new Promise<void>((resolve, reject) => {
          const check = () => {
            if (broadcast.has(posted.id)) return resolve();
            if (bad.length > 0) return reject(new Error(`withdrawal ${i}: ${JSON.stringify(bad)}`));
          };
          waiting.set(posted.id, check);
          check();
          setTimeout(
            () => reject(new Error(`withdrawal ${i} (${posted.id}) not broadcast in 120 s`)),
            120_000,
          ).unref();
        });
        waiting.delete(posted.id);
      }
    });
    try {
      await Promise.all(clients);
      const signedSeconds = s(t0);
      // Every one mined and confirmed by the coordinator.
      await eventually(
        async () => {
          if (confirmed.size >= WITHDRAWALS) return true;
          await d.node.mine(1);
          blocksMined++;
          await new Promise((r) => setTimeout(r, 500));
          return undefined;
        },
        'every withdrawal confirmed',
        120_000,
      );
      console.log(
        `no-false-positive: ${WITHDRAWALS} withdrawals broadcast in ${signedSeconds} s, all confirmed in ${s(t0)} s, ${blocksMined} blocks`,
      );
    } finally {
      following = false;
      await follow;
    }
    expect(bad).toEqual([]);
    expect(broadcast.size).toBe(WITHDRAWALS);
    const txids = new Set(broadcast.values());
    expect(txids.size).toBe(WITHDRAWALS);

    // The watcher, caught up with the node: every spend matched once, nothing else.
    const m = await eventually(async () => {
      const x = await metrics();
      return x('custos_watcher_processed_height') === d.node.height() &&
        x('custos_watcher_lag_blocks') === 0 &&
        x('custos_watcher_spends_matched_total') >= WITHDRAWALS
        ? x
        : undefined;
    }, 'the watcher to match every withdrawal');
    expect(m('custos_watcher_spends_matched_total')).toBe(WITHDRAWALS);
    expect(m('custos_watcher_spends_unexplained_total')).toBe(0);
    expect(m('custos_watcher_freezes_signed_total')).toBe(0);
    expect(m('custos_watcher_freezes_delivered_total')).toBe(0);
    expect(m('custos_watcher_mempool_transactions_read_total')).toBeGreaterThan(0);

    const record = JSON.parse(readFileSync(join(d.dir, 'watcher-record.json'), 'utf8')) as {
      matched: { txid: string; intent: string; seenIn: number | 'mempool' }[];
      unexplained: unknown[];
      freezes: unknown[];
    };
    expect(record.unexplained).toEqual([]);
    expect(record.freezes).toEqual([]);
    expect(record.matched).toHaveLength(WITHDRAWALS);
    expect(new Set(record.matched.map((r) => r.txid))).toEqual(txids);
    for (const r of record.matched) expect(broadcast.get(r.intent), r.txid).toBe(r.txid);
    // Both ways of meeting a spend were exercised: in the mempool, and first in a block.
    const inMempool = record.matched.filter((r) => r.seenIn === 'mempool').length;
    const inBlock = record.matched.filter((r) => typeof r.seenIn === 'number').length;
    console.log(
      `no-false-positive: the watcher met ${inMempool} spends in its mempool, ${inBlock} first in a block`,
    );
    expect(inMempool).toBeGreaterThan(0);
    expect(inBlock).toBeGreaterThan(0);

    const errors = watcher.output().match(/"event":"watcher\.error"[^\n]*/g) ?? [];
    console.log(
      `no-false-positive: ${rateLimited} intent posts rate limited and sent again, ${refusedRequests.length} requests refused by the coordinator (${[...new Set(refusedRequests.map((e) => `${e.actor} ${e.subject}`))].slice(0, 5).join('; ')}), ${errors.length} watcher.error lines (${errors.slice(0, 3).join('; ')})`,
    );
    expect(watcher.output()).not.toContain('watcher.alert');
    expect(watcher.output()).not.toContain('watcher.freeze');
    expect(await governanceSeq()).toBe(seqBefore);
    const shown = JSON.parse(await d.ok(['governance', 'show', '--as', 'admin-1', '--json'])) as {
      state: { frozen: unknown };
    };
    expect(shown.state.frozen).toBeNull();
  }, 600_000);
});
