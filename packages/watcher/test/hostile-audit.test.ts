/**
 * The watcher against a hostile coordinator (issue 12; THREATS 6, 7 and 22).
 * The coordinator writes the audit log, so a thief who holds two signers'
 * keys and also the coordinator, its database or the relay in front of it
 * (the DMM Bitcoin path) can write entries saying the theft was built for an
 * approved intent and signed. The watcher takes the audit log as an index
 * only: a spend is explained by the signers' own receipts, checked by their
 * identity keys from governance, the wallet's threshold of them naming the
 * txid.
 *
 * Here the watcher talks to the real coordinator (`custos serve`) through a
 * relay that, once armed, appends to the audit log a chained
 * `transaction.built` of the theft's txid for an intent the signers really
 * signed, and a `signing.signed` by signer-1, and adds to that intent's
 * receipts copies of the real ones naming the theft's txid (their
 * signatures no longer verify). The real withdrawal is matched through the
 * relay, by both signers' receipts; the theft is frozen.
 */

import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { deriveAddress, parseDescriptor } from '@custos/bitcoin';
import { openSealedDeviceKey } from '@custos/cli/client';
import { type AuditEntry, auditEntryDigest } from '@custos/core';
import { eventually, type Running, start } from '@custos/test-support/cli';
import {
  type Deployment,
  PASSWORD,
  startDeployment,
  writeWatcherConfig,
} from '@custos/test-support/deployment';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorClient } from '../src/coordinator.js';
import { exportKeys, steal } from './support/theft.js';

let d: Deployment;
let relay: Server;
let relayUrl: string;
let watcher: Running;
/** What the relay forges once armed: the theft's txid, told as the legitimate intent's. */
let forge: { txid: string; intent: string } | null = null;
let forgedAudit = false;
let lastSeen: AuditEntry | null = null;
const forgedReceiptsServed: string[] = [];

async function ready(): Promise<number> {
  const r = await fetch(new URL('/v1/ready', d.coordinatorUrl));
  return ((await r.json()) as { governanceSeq: number }).governanceSeq;
}

/** Forwards every call unchanged (the watcher's RFC 9421 signature covers method, path, query and body), rewriting two answers once armed. */
function startRelay(target: string): Promise<string> {
  relay = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const headers = Object.fromEntries(
      Object.entries(req.headers).filter(
        ([k, v]) => typeof v === 'string' && !['host', 'content-length', 'connection'].includes(k),
      ),
    ) as Record<string, string>;
    const upstream = await fetch(new URL(req.url ?? '/', target), {
      method: req.method ?? 'GET',
      headers,
      ...(chunks.length === 0 ? {} : { body: Buffer.concat(chunks) }),
    });
    let body = Buffer.from(await upstream.arrayBuffer());
    const path = (req.url ?? '').split('?')[0]!;
    if (upstream.ok && path === '/v1/audit') {
      const page = JSON.parse(body.toString('utf8')) as { entries: AuditEntry[] };
      if (page.entries.length > 0) lastSeen = page.entries.at(-1)!;
      if (forge !== null && !forgedAudit && page.entries.length < 1000 && lastSeen !== null) {
        // Chained like real entries, so only the signers' receipts can tell them apart.
        const built: AuditEntry = {
          seq: lastSeen.seq + 1,
          prev: auditEntryDigest(lastSeen),
          at: Date.now() as never,
          actor: 'coordinator',
          event: 'transaction.built',
          subject: forge.intent,
          digest: forge.txid as never,
        };
        const signed: AuditEntry = {
          ...built,
          seq: built.seq + 1,
          prev: auditEntryDigest(built),
          actor: 'signer:signer-1',
          event: 'signing.signed',
        };
        page.entries.push(built, signed);
        lastSeen = signed;
        forgedAudit = true;
        body = Buffer.from(JSON.stringify(page));
      }
    } else if (upstream.ok && forge !== null && path === `/v1/intents/${forge.intent}/receipts`) {
      const page = JSON.parse(body.toString('utf8')) as {
        receipts: { receipt: { txid: string | null }; signature: string }[];
      };
      const copies = page.receipts.map((r) => ({ ...r, receipt: { ...r.receipt, txid: forge!.txid } }));
      page.receipts.push(...copies);
      forgedReceiptsServed.push(forge.intent);
      body = Buffer.from(JSON.stringify(page));
    }
    res.writeHead(upstream.status, {
      'content-type': upstream.headers.get('content-type') ?? 'application/json',
    });
    res.end(body);
  });
  return new Promise((resolve) =>
    relay.listen(0, '127.0.0.1', () => {
      const a = relay.address();
      resolve(`http://127.0.0.1:${typeof a === 'object' && a !== null ? a.port : 0}`);
    }),
  );
}

beforeAll(async () => {
  d = await startDeployment({ watcher: true });
  relayUrl = await startRelay(d.coordinatorUrl);
  const config = writeWatcherConfig(d, { coordinatorUrl: relayUrl, pollMs: 50 });
  watcher = start(['watch', '--config', config], { env: d.env });
  await watcher.waitFor('watcher.started');
}, 240_000);

afterAll(async () => {
  if (watcher !== undefined && watcher.child.exitCode === null) watcher.child.kill('SIGTERM');
  if (watcher !== undefined) await Promise.race([watcher.exited, new Promise((r) => setTimeout(r, 5000))]);
  await new Promise((r) => relay?.close(r));
  await d?.stop();
});

describe('custos watch behind a hostile coordinator', () => {
  it('THREATS 7 and 22: audit entries and receipts forged to explain a theft do not keep the watcher from freezing; the real withdrawal is matched by both signers’ receipts', async () => {
    // A real withdrawal, matched through the relay by the two signers' verified receipts.
    const id = await d.request('100000', 'through the relay');
    for (const approver of ['approver-1', 'approver-2']) {
      const r = await d.cli(['approve', id, '--as', approver, '--yes']);
      expect(r.code, r.stderr).toBe(0);
    }
    const view = await eventually(async () => {
      const v = await d.show<{ status: string; txid: string | null }>(id);
      if (['refused', 'expired', 'rejected'].includes(v.status)) throw new Error(JSON.stringify(v));
      return ['broadcast', 'confirmed'].includes(v.status) ? v : undefined;
    }, 'the withdrawal to be broadcast');
    const matched = await watcher.waitFor(
      new RegExp(`"event":"watcher.matched","txid":"${view.txid}"[^\\n]*`),
      30_000,
    );
    expect(matched).toContain(`"intent":"${id}"`);
    expect(matched).toMatch(/"signers":\["signer-[12]","signer-[12]"\]/);

    // The thief: two signers' keys, a coin at receive index 1, and the coordinator's relay.
    const parsed = parseDescriptor(d.descriptor, 'regtest');
    if (!parsed.ok) throw new Error(parsed.message);
    const coin = await d.node.fund(deriveAddress(parsed.value, 0, 1).script, 20_000_000n);
    await d.node.mine(1);
    const tx = steal(d, await exportKeys(d, ['signer-1', 'signer-2']), coin, 1, 20_000_000n);
    const client = new CoordinatorClient(
      d.coordinatorUrl,
      await openSealedDeviceKey(join(d.home, 'profiles', 'watcher-1', 'device.key'), PASSWORD),
    );
    const signedBefore = (await client.audit(0)).filter((e) => e.event === 'signing.signed').length;
    forge = { txid: tx.getId(), intent: id };

    const before = await ready();
    const txid = await d.node.rpc.sendRawTransaction(tx.toHex());
    expect(txid).toBe(tx.getId());
    await eventually(async () => ((await ready()) > before ? true : undefined), 'the freeze', 15_000);

    // The forgeries were served and read, and explained nothing.
    expect(forgedAudit).toBe(true);
    expect(forgedReceiptsServed).toContain(id);
    const short = await watcher.waitFor(
      new RegExp(`"event":"watcher.receipts_short","txid":"${txid}"[^\\n]*`),
    );
    expect(short).toContain('"signers":[]');
    expect(short).toContain('"rejected":2');
    expect(watcher.output()).toContain(`"code":"UNEXPLAINED_SPEND","txid":"${txid}"`);
    expect(watcher.output()).not.toContain(`"event":"watcher.matched","txid":"${txid}"`);

    // The code, nothing signed, the audit entry.
    const shown = JSON.parse(await d.ok(['governance', 'show', '--as', 'admin-1', '--json'])) as {
      state: { frozen: { reason: string } | null };
    };
    expect(shown.state.frozen?.reason).toContain(txid);
    const entries = await client.audit(0);
    expect(entries.filter((e) => e.event === 'signing.signed')).toHaveLength(signedBefore);
    expect(entries.some((e) => e.event === 'frozen')).toBe(true);
    expect(entries.some((e) => e.digest === txid && e.event === 'transaction.built')).toBe(false);
  });
});
