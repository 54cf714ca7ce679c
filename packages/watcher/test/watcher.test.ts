/**
 * The watcher end to end (issue 12), on a real deployment: `custos serve`,
 * two `custos signer run` processes of a 2-of-3 wallet and bcoin regtest,
 * with `custos watch` holding the key of governed member watcher-1 (role
 * `watcher`) and reading the node over RPC.
 *
 * - A withdrawal through Custos is matched: no freeze.
 * - A spend signed outside Custos with two keys exported from the test's own
 *   signers (`custos signer export-key`, bitcoinjs-lib alone on the signing
 *   path) reaches the node: the watcher freezes, and the latency from
 *   broadcast to the freeze applied on the coordinator and at every signer
 *   is measured. Every signer is frozen: both signer processes of the
 *   deployment pull the watcher's freeze (`watchers` in their configs) and
 *   log `signer.frozen`, and `custos signer status` shows the freeze entry as
 *   each one's governance head with its ledger unchanged. The admins' webhook
 *   (a receiver verifying with the `standardwebhooks` package) gets the
 *   `frozen` notice naming the txid and the watcher; the audit log's `frozen`
 *   entry names the watcher and the freeze entry whose reason names the
 *   txid. The coordinator's governance shows the freeze, the watcher's record
 *   keeps the transaction and the coin it spent, and a later withdrawal is
 *   refused FROZEN with nothing signed and its audit entry.
 * - A signer whose coordinator withholds the freeze (a stand-in that serves
 *   governance only up to the entry before it) still refuses FROZEN: it
 *   pulled the freeze from the watcher.
 * - After the quorum unfreezes, a theft made while the watcher was stopped
 *   is found in its block when the watcher starts again (reconciliation),
 *   and frozen; the first theft stays judged once.
 * - `/metrics` on the watcher's server parses as Prometheus text and moves:
 *   blocks and mempool transactions read, the spend matched, lag 0 once
 *   caught up, the last poll recent; after the theft one unexplained spend
 *   and one freeze signed and delivered.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { deriveAddress, parseDescriptor } from '@custos/bitcoin';
import { CustosClient, openSealedDeviceKey } from '@custos/cli/client';
import { governanceDigest } from '@custos/core';
import { type AdminWebhook, startAdminWebhook } from '@custos/test-support/admin-webhook';
import { eventually, type Running, start } from '@custos/test-support/cli';
import {
  type Deployment,
  PASSWORD,
  startDeployment,
  unfreeze,
  writeWatcherConfig,
} from '@custos/test-support/deployment';
import { type FakeCoordinator, startFakeCoordinator } from '@custos/test-support/fake-coordinator';
import { signerCli } from '@custos/test-support/signer-process';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorClient } from '../src/coordinator.js';
import { exportKeys, steal } from './support/theft.js';

let d: Deployment;
let watcher: Running;
let watcherUrl: string;
const extra: Running[] = [];
let fake: FakeCoordinator | undefined;
let hook: AdminWebhook;
/** The admins' webhook secret (a raw secret: its UTF-8 bytes are the HMAC key on both sides). */
const WEBHOOK_SECRET = 'the admins webhook secret of the watcher test';
const SIGNERS = ['signer-1', 'signer-2'] as const;
/** The account keys exported from signer-1 and signer-2: what a thief who copied them holds. */
const xprvs: string[] = [];

interface IntentJson {
  id: string;
  status: string;
  statusCode: string | null;
  txid: string | null;
  intent: unknown;
  approvals: unknown[];
  psbt: string | null;
  signers: { signer: string; outcome: string; code: string | null }[];
}

async function ready(): Promise<number> {
  const r = await fetch(new URL('/v1/ready', d.coordinatorUrl));
  return ((await r.json()) as { governanceSeq: number }).governanceSeq;
}

async function withdraw(amount: string, memo: string): Promise<string> {
  const id = await d.request(amount, memo);
  for (const approver of ['approver-1', 'approver-2']) {
    const r = await d.cli(['approve', id, '--as', approver, '--yes']);
    expect(r.code, r.stderr).toBe(0);
  }
  return id;
}

/** A port free now on 127.0.0.1: the watcher's, known before the signers that pull from it start. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** `custos signer status --json` of one of the deployment's signers (read beside the running process). */
async function signerStatus(
  id: string,
): Promise<{ governance: { seq: number; head: string } | null; ledger: { entries: number } }> {
  const r = await signerCli(['status', '--config', join(d.dir, `${id}.json`), '--json'], { env: d.env });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

beforeAll(async () => {
  hook = await startAdminWebhook(WEBHOOK_SECRET);
  const port = await freePort();
  d = await startDeployment({
    watcher: true,
    // Every signer pulls signed freezes from the watcher itself, whatever the coordinator does.
    signerWatchers: [`http://127.0.0.1:${port}`],
    webhooks: [{ url: hook.url, secret: WEBHOOK_SECRET, events: ['alert', 'frozen', 'governance.applied'] }],
  });
  writeWatcherConfig(d, { listen: { host: '127.0.0.1', port }, pollMs: 50 });
  watcher = startWatcher();
  const line = await watcher.waitFor(/"url":"http:\/\/127\.0\.0\.1:[0-9]+"/);
  watcherUrl = line.slice('"url":"'.length, -1);
}, 240_000);

afterAll(async () => {
  for (const r of [watcher, ...extra]) {
    if (r !== undefined && r.child.exitCode === null) r.child.kill('SIGTERM');
    if (r !== undefined) await Promise.race([r.exited, new Promise((res) => setTimeout(res, 5000))]);
  }
  await fake?.close();
  await d?.stop();
  await hook?.close();
});

/** One figure of the watcher's `/metrics` (a family of one sample, or the sample with `labels`); absent: undefined. */
async function scrape(): Promise<
  (name: string, type: string, labels?: Record<string, string>) => number | undefined
> {
  const res = await fetch(`${watcherUrl}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  const families = parsePrometheusTextFormat(await res.text());
  return (name, type, labels = {}) => {
    const family = families.find((f) => f.name === name);
    if (family === undefined) return undefined;
    expect(family.type).toBe(type);
    const sample = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
    return sample?.value === undefined ? undefined : Number(sample.value);
  };
}

function startWatcher(): Running {
  return start(['watch', '--config', join(d.dir, 'watcher.json')], { env: d.env });
}

describe('custos watch', () => {
  let matchedIntent: IntentJson;
  let freezeSeq: number;

  it('matches a withdrawal signed through Custos: recorded, no freeze', async () => {
    const before = await ready();
    const m0 = await scrape();
    expect(m0('custos_watcher_spends_matched_total', 'COUNTER')).toBe(0);
    const id = await withdraw('100000', 'watched payout');
    matchedIntent = await eventually(async () => {
      const v = await d.show<IntentJson>(id);
      if (['refused', 'expired', 'rejected'].includes(v.status)) throw new Error(JSON.stringify(v));
      return ['broadcast', 'confirmed'].includes(v.status) ? v : undefined;
    }, 'the withdrawal to be broadcast');
    await watcher.waitFor(`"event":"watcher.matched","txid":"${matchedIntent.txid}"`, 30_000);
    await d.node.mine(1);
    await new Promise((r) => setTimeout(r, 500));
    expect(watcher.output()).not.toContain('watcher.alert');
    expect(await ready()).toBe(before);

    // The metrics moved: the spend matched, its block and mempool transaction read, caught up, polled just now.
    const m1 = await eventually(async () => {
      const m = await scrape();
      return m('custos_watcher_lag_blocks', 'GAUGE') === 0 &&
        m('custos_watcher_processed_height', 'GAUGE') === d.node.height()
        ? m
        : undefined;
    }, 'the watcher to read the new block');
    expect(m1('custos_watcher_spends_matched_total', 'COUNTER')).toBe(1);
    expect(m1('custos_watcher_spends_unexplained_total', 'COUNTER', { code: 'UNEXPLAINED_SPEND' }) ?? 0).toBe(
      0,
    );
    expect(m1('custos_watcher_blocks_read_total', 'COUNTER')).toBeGreaterThan(
      m0('custos_watcher_blocks_read_total', 'COUNTER')!,
    );
    expect(m1('custos_watcher_mempool_transactions_read_total', 'COUNTER')).toBeGreaterThanOrEqual(1);
    expect(m1('custos_watcher_node_height', 'GAUGE')).toBe(d.node.height());
    expect(m1('custos_watcher_freezes_signed_total', 'COUNTER')).toBe(0);
    const polled = m1('custos_watcher_last_poll_timestamp_seconds', 'GAUGE')!;
    expect(Math.abs(Date.now() / 1000 - polled)).toBeLessThan(10);
  });

  it('freezes on a spend signed outside Custos with two exported signer keys', async () => {
    // A second coin for the wallet, at receive index 1.
    const parsed = parseDescriptor(d.descriptor, 'regtest');
    if (!parsed.ok) throw new Error(parsed.message);
    const script = deriveAddress(parsed.value, 0, 1).script;
    const coin = await d.node.fund(script, 20_000_000n);
    await d.node.mine(1);

    // Keys copied out of the signers: two exports, then bitcoinjs-lib alone.
    xprvs.push(...(await exportKeys(d, ['signer-1', 'signer-2'])));
    const tx = steal(d, xprvs, coin, 1, 20_000_000n);
    // What each signer holds before the theft: the genesis as its head, the one withdrawal in its ledger.
    const statusBefore = new Map<string, Awaited<ReturnType<typeof signerStatus>>>();
    for (const id of SIGNERS) statusBefore.set(id, await signerStatus(id));
    for (const id of SIGNERS) expect(d.signers[id]!.output()).not.toContain('signer.frozen');

    const before = await ready();
    const t0 = performance.now();
    const txid = await d.node.rpc.sendRawTransaction(tx.toHex());
    // Each signer process logs the freeze it pulled from the watcher and applied to its own chain.
    const atSigners = Promise.all(
      SIGNERS.map((id) =>
        d.signers[id]!.waitFor(
          `"event":"signer.frozen","source":"watcher","seq":${before + 1},"outcome":"applied"`,
          15_000,
        ).then(() => performance.now() - t0),
      ),
    );
    await eventually(async () => ((await ready()) > before ? true : undefined), 'the freeze', 10_000);
    const latency = performance.now() - t0;
    const signerLatency = Math.max(...(await atSigners));
    console.log(
      `watcher: broadcast to freeze applied on the coordinator in ${latency.toFixed(0)} ms, at every signer in ${signerLatency.toFixed(0)} ms`,
    );
    expect(latency).toBeLessThan(5_000);
    expect(signerLatency).toBeLessThan(10_000);
    freezeSeq = before + 1;

    const shown = JSON.parse(await d.ok(['governance', 'show', '--as', 'admin-1', '--json'])) as {
      state: { frozen: { reason: string } | null };
    };
    expect(shown.state.frozen?.reason).toContain(txid);
    expect(watcher.output()).toContain(
      `"event":"watcher.alert","severity":"critical","code":"UNEXPLAINED_SPEND","txid":"${txid}"`,
    );
    const m = await scrape();
    expect(m('custos_watcher_spends_unexplained_total', 'COUNTER', { code: 'UNEXPLAINED_SPEND' })).toBe(1);
    expect(m('custos_watcher_freezes_signed_total', 'COUNTER')).toBe(1);
    expect(m('custos_watcher_freezes_delivered_total', 'COUNTER')).toBe(1);
    const record = JSON.parse(readFileSync(join(d.dir, 'watcher-record.json'), 'utf8')) as {
      unexplained: {
        txid: string;
        inputs: { txid: string; vout: number }[];
        freeze: { seq: number; digest: string; delivered: boolean };
      }[];
      matched: { txid: string }[];
    };
    expect(record.unexplained).toEqual([
      expect.objectContaining({
        txid,
        inputs: [expect.objectContaining({ txid: coin.txid, vout: coin.vout, wallet: 'btc-main' })],
        freeze: expect.objectContaining({ seq: freezeSeq, delivered: true }),
      }),
    ]);
    expect(record.matched.map((m) => m.txid)).toEqual([matchedIntent.txid]);
    const freezeDigest = record.unexplained[0]!.freeze.digest;

    // The admins' webhook: the frozen notice, its Standard Webhooks signature verified by the library.
    const notice = await hook.waitFor((x) => x.event === 'frozen', 'the frozen webhook');
    expect(notice.verified).toBe(true);
    expect(notice.data).toEqual({
      seq: freezeSeq,
      reason: expect.stringContaining(`unexplained spend ${txid} of wallet btc-main`),
      by: expect.stringMatching(/^member:watcher-1\//),
    });
    const applied = await hook.waitFor(
      (x) => x.event === 'governance.applied' && x.data.seq === freezeSeq,
      'the governance.applied webhook of the freeze',
    );
    expect(applied.verified).toBe(true);
    expect(applied.data).toMatchObject({ id: freezeDigest, kind: 'freeze', effect: 'tightens' });
    // The critical alert, for a receiver that takes only `alert`: it names the txid.
    const alert = await hook.waitFor((x) => x.event === 'alert', 'the alert webhook of the freeze');
    expect(alert.verified).toBe(true);
    expect(alert.data).toEqual({
      subject: String(freezeSeq),
      signer: null,
      code: 'FROZEN',
      severity: 'critical',
      message: expect.stringContaining(`unexplained spend ${txid}`),
      by: expect.stringMatching(/^member:watcher-1\//),
    });
    expect(hook.deliveries.every((x) => x.verified)).toBe(true);
    // And `custos status`: the freeze in force, and the alert naming the watcher and the txid.
    const status = await d.cli(['status', '--as', 'admin-1']);
    expect(status.stdout).toMatch(new RegExp(`FROZEN {7}by \\S*watcher-1\\S* \\(entry ${freezeSeq}\\)`));
    expect(status.stdout).toMatch(
      new RegExp(
        `ALERT {8}watcher-1 froze signing .* \\(governance entry ${freezeSeq}, in force\\): .*${txid}`,
      ),
    );
    const client = new CoordinatorClient(
      d.coordinatorUrl,
      await openSealedDeviceKey(join(d.home, 'profiles', 'watcher-1', 'device.key'), PASSWORD),
    );
    const auditBefore = await client.audit(0);
    const signedBefore = auditBefore.filter((e) => e.event === 'signing.signed').length;
    const later = await d.cli([
      'request',
      '--as',
      'requester-1',
      '--wallet',
      'btc-main',
      '--to',
      d.cold,
      '--amount',
      '50000',
      '--memo',
      'after the theft',
    ]);
    expect(later.code).toBe(1);
    expect(later.stderr).toContain('FROZEN');
    const entries = await client.audit(0);
    expect(entries.filter((e) => e.event === 'signing.signed')).toHaveLength(signedBefore);
    // The audit's frozen entry: by the watcher, naming the freeze entry, whose reason names the txid.
    expect(entries.filter((e) => e.event === 'frozen')).toEqual([
      expect.objectContaining({
        actor: expect.stringMatching(/^member:watcher-1\//),
        subject: String(freezeSeq),
        digest: freezeDigest,
      }),
    ]);
    expect(
      entries.filter(
        (e) => e.event === 'alert' && e.subject === String(freezeSeq) && e.digest === freezeDigest,
      ),
    ).toHaveLength(1);
    const freezeEntry = (await client.governanceEntries(freezeSeq - 1)).find(
      (e) => e.entry.seq === freezeSeq,
    )!;
    expect(governanceDigest(freezeEntry.entry)).toBe(freezeDigest);
    expect(freezeEntry.entry).toMatchObject({
      kind: 'freeze',
      body: { reason: expect.stringContaining(txid) },
    });

    // Every signer is frozen on its own chain (the freeze is its governance head) and signed nothing more.
    for (const id of SIGNERS) {
      const st = await signerStatus(id);
      expect(st.governance, id).toEqual({ seq: freezeSeq, head: freezeDigest });
      expect(st.ledger.entries, id).toBe(statusBefore.get(id)!.ledger.entries);
    }
    const refusedEntries = (list: typeof entries) =>
      list.filter((e) => e.event === 'intent.refused' || e.event === 'request.refused').length;
    expect(refusedEntries(entries)).toBeGreaterThan(refusedEntries(auditBefore));
  });

  it('a signer whose coordinator withholds the freeze still refuses FROZEN: it pulled it from the watcher', async () => {
    const device = await openSealedDeviceKey(join(d.home, 'profiles', 'watcher-1', 'device.key'), PASSWORD);
    const all = await new CoordinatorClient(d.coordinatorUrl, device).governanceEntries(-1);
    const withheld = all.filter((e) => e.entry.seq < freezeSeq);
    expect(all.some((e) => e.entry.seq === freezeSeq && e.entry.kind === 'freeze')).toBe(true);
    const pub = JSON.parse(readFileSync(join(d.dir, 'signer-2.pub.json'), 'utf8')) as { identityKey: string };
    fake = await startFakeCoordinator(new Map([['signer-2', pub.identityKey]]));
    fake.setGovernance(withheld);
    const head = withheld.at(-1)!;
    writeFileSync(
      join(d.dir, 'withheld.json'),
      JSON.stringify({
        id: 'signer-2',
        coordinatorUrl: fake.url,
        genesis: d.genesis,
        keystore: 'signer-2.key',
        database: 'withheld.db',
        chains: ['bitcoin:regtest'],
        waitMs: 500,
        watchers: [{ url: watcherUrl }],
      }),
    );
    const signer = start(['signer', 'run', '--config', join(d.dir, 'withheld.json')], { env: d.env });
    extra.push(signer);
    await signer.waitFor('signer.started');
    const admin = await openSealedDeviceKey(join(d.home, 'profiles', 'admin-1', 'device.key'), PASSWORD);
    const view = await new CustosClient({ baseUrl: d.coordinatorUrl, signer: admin }).intent(
      matchedIntent.id,
    );
    fake.push({
      v: 1,
      id: 'withheld-job-1',
      signer: 'signer-2',
      intent: view.intent,
      approvals: view.approvals,
      governance: { seq: head.entry.seq, digest: governanceDigest(head.entry) },
      psbt: view.psbt,
    });
    const [result] = await fake.waitForResults(1, 30_000);
    expect(result!.receipt.outcome).toBe('refused');
    expect(result!.receipt.code).toBe('FROZEN');
    expect(result!.message).toContain('unexplained spend');
    expect(result!.psbt).toBeUndefined();
    expect(signer.output()).toContain('"event":"signer.frozen"');
  });

  it('after the quorum unfreezes, a theft made while the watcher was stopped is found when it starts again, and frozen', async () => {
    // The runbook's last step: two admins unfreeze.
    await unfreeze(d, 'keys rotated after the theft');
    const unfrozenAt = await ready();
    expect(unfrozenAt).toBe(freezeSeq + 1);

    // The watcher is stopped; meanwhile a coin arrives and is stolen, and both are mined.
    watcher.child.kill('SIGTERM');
    await watcher.exited;
    const parsed = parseDescriptor(d.descriptor, 'regtest');
    if (!parsed.ok) throw new Error(parsed.message);
    const coin = await d.node.fund(deriveAddress(parsed.value, 0, 2).script, 30_000_000n);
    await d.node.mine(1);
    const txid = await d.node.rpc.sendRawTransaction(steal(d, xprvs, coin, 2, 30_000_000n).toHex());
    await d.node.mine(1);
    expect(await ready()).toBe(unfrozenAt);

    // Started again, it reads the blocks it missed and freezes.
    watcher = startWatcher();
    await eventually(
      async () => ((await ready()) > unfrozenAt ? true : undefined),
      'the second freeze',
      60_000,
    );
    const shown = JSON.parse(await d.ok(['governance', 'show', '--as', 'admin-1', '--json'])) as {
      state: { frozen: { reason: string } | null };
    };
    expect(shown.state.frozen?.reason).toContain(txid);
    const record = JSON.parse(readFileSync(join(d.dir, 'watcher-record.json'), 'utf8')) as {
      unexplained: { txid: string; seenIn: unknown }[];
      matched: { txid: string }[];
    };
    // The first theft stays judged once; the second is found in its block.
    expect(record.unexplained.map((u) => u.txid)).toHaveLength(2);
    expect(record.unexplained[1]).toMatchObject({ txid, seenIn: expect.any(Number) });
    expect(record.matched.map((m) => m.txid)).toEqual([matchedIntent.txid]);
  });
});
