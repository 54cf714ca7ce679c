/**
 * Fee bumping end to end (issue 13, BIP 125), on a real regtest node with two
 * real signers over their own ledgers, on SQLite and PostgreSQL, through the
 * real HTTP API (RFC 9421-signed by the requester's device): a withdrawal is
 * signed and broadcast but not mined; a bump at a higher fee rate gets a
 * replacement built from the same coins, signed by both signers, broadcast
 * in place of the original (the node's mempool drops it), mined, and the
 * intent confirmed with the replacement's txid; the original never confirms.
 * Each signer's ledger holds the intent once, the replacement beside it.
 *
 * Refusals, each with its code, nothing signed and its audit entry: a bump of
 * a confirmed withdrawal, one over the fee cap, one signed by someone else
 * than the requester (the coordinator refuses them, `bump.refused`), and a
 * relay that rewrites the replacement (THREATS 6-7: a payee output changed,
 * or coins that do not conflict with the original) refused NOT_A_REPLACEMENT
 * by both signers with a critical alert (`bump.refused`, `alert`).
 */

import { join } from 'node:path';
import {
  BitcoinRpc,
  buildPsbt,
  deriveAddress,
  parseTransaction,
  psbtFromBase64,
  psbtToBase64,
} from '@custos/bitcoin';
import {
  type Amount,
  type Bump,
  bumpDigest,
  type Digest,
  fromHex,
  type Hex,
  type Millis,
  OFFLINE_RESULT_KIND,
  type SignedBump,
  type SignedGovernanceEntry,
  type SignerJob,
  signDigest,
} from '@custos/core';
import { Signer, SignerStore } from '@custos/signer';
import { MemorySource } from '@custos/test-support/memory-source';
import type { Person } from '@custos/test-support/org';
import { editPsbt } from '@custos/test-support/psbt-fixtures';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { createCoordinator } from '../../src/app.js';
import type { BumpView } from '../../src/pipeline/bump.js';
import { Client } from '../api/support/client.js';
import { outcome, TEST_LIMITS } from '../api/support/harness.js';
import { type Backend, useBackends } from '../db/backends.js';
import {
  approvedIntent,
  auditEvents,
  makeCoordinator,
  makeOrg,
  type Org,
  seedGovernance,
  startSigners,
  tempDir,
  useCleanups,
  useRegtest,
  waitFor,
} from './support/harness.js';

const { backends } = useBackends();
const regtest = useRegtest();
const cleanups = useCleanups();

let nonce = 0;
function bumpOf(org: Org, intent: Digest, feeRate: bigint, by: Person = org.world.org.requester): SignedBump {
  const b: Bump = {
    v: 1,
    org: org.orgId,
    intent,
    feeRate: feeRate.toString() as Amount,
    requester: by.id,
    device: by.device.id,
    nonce: (nonce++).toString(16).padStart(32, 'b') as Hex,
    createdAt: Date.now() - 1000,
    expiresAt: Date.now() + 3_600_000,
  };
  return { bump: b, signature: signDigest(by.device.secretKey, bumpDigest(b)) };
}

async function setUp(backend: Backend) {
  const { store } = await backend.fresh();
  const org = makeOrg();
  const node = regtest();
  await seedGovernance(store, org);
  const c = await makeCoordinator(store, org, {
    rpc: node.rpc,
    startHeight: (await node.rpc.getBlockCount()) + 1,
  });
  cleanups.push(() => c.pipeline.stop());
  const http = await createCoordinator({
    store,
    pipeline: c.pipeline,
    notifier: c.notifier,
    governance: c.governance,
    clock: Date.now,
    limits: TEST_LIMITS,
  });
  cleanups.push(() => http.close());
  const clientOf = (p: Person) =>
    new Client(
      { app: http.app },
      { keyId: `member:${p.id}/${p.device.id}`, secretKey: p.device.secretKey },
      () => Date.now() as Millis,
    );
  const tmp = tempDir();
  cleanups.push(() => tmp.remove());
  // Two coins: 0.3 BTC at receive index 0 (the withdrawal spends it) and 0.2 BTC at index 1.
  const coins = [];
  for (const [index, value] of [30_000_000n, 20_000_000n].entries()) {
    const f = await node.fund(deriveAddress(org.world.descriptor, 0, index).script, value);
    coins.push({ txid: f.txid, vout: f.vout, value, branch: 0 as const, index, prevTx: f.raw });
  }
  await node.mine(1);
  return { store, org, node, c, client: clientOf(org.world.org.requester), clientOf, dir: tmp.dir, coins };
}

/** Signs, broadcasts and returns the withdrawal's intent id and txid (not mined). */
async function broadcastWithdrawal(
  s: Awaited<ReturnType<typeof setUp>>,
  relay?: Record<string, (j: SignerJob) => unknown>,
) {
  const id = await approvedIntent(s.store, s.org, 10_000_000n);
  const signers = startSigners(s.dir, s.org, s.c.pipeline, s.store, relay === undefined ? {} : { relay });
  cleanups.push(() => signers.stop());
  await s.c.pipeline.onApproved(id);
  const rec = await waitFor('broadcast', async () => {
    const r = await s.store.intents.get(id);
    return r?.status === 'broadcast' ? r : undefined;
  });
  expect(await s.node.rpc.getRawMempool()).toEqual([rec.txid]);
  return { id, txid: rec.txid as string, signers };
}

async function bumpsOf(s: Awaited<ReturnType<typeof setUp>>, id: Digest): Promise<BumpView[]> {
  const res = await s.client.get(`/v1/intents/${id}`);
  expect(res.status).toBe(200);
  return ((res.body as { bumps?: BumpView[] }).bumps ?? []) as BumpView[];
}

function signerLedger(dir: string, signer: string) {
  const db = new Database(join(dir, `${signer}.db`), { readonly: true });
  try {
    return {
      ledger: db.prepare('SELECT intent, txid FROM ledger').all(),
      replacements: db.prepare('SELECT intent, txid, replaces FROM replacements').all(),
    };
  } finally {
    db.close();
  }
}

describe.each(backends)('fee bumps end to end on $name', (backend) => {
  it('a stuck withdrawal is bumped: the replacement is signed, replaces the original in the mempool, is mined and confirms the intent; the original never confirms', async () => {
    const s = await setUp(backend);
    const { id, txid: original, signers } = await broadcastWithdrawal(s);

    const res = await s.client.post(`/v1/intents/${id}/bumps`, bumpOf(s.org, id, 20n));
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const requested = res.body as BumpView;
    expect(requested).toMatchObject({ status: 'signing', replaces: null });
    const [bumped] = await waitFor('the replacement broadcast', async () => {
      const b = await bumpsOf(s, id);
      return b[0]?.status === 'broadcast' ? b : undefined;
    });
    expect(bumped).toMatchObject({ txid: requested.txid, replaces: original });
    expect(bumped?.signers.map((x) => [x.signer, x.outcome])).toEqual([
      ['signer-1', 'signed'],
      ['signer-2', 'signed'],
    ]);
    // The node took the replacement in place of the original.
    expect(await s.node.rpc.getRawMempool()).toEqual([requested.txid]);
    expect(await s.store.intents.get(id)).toMatchObject({ status: 'broadcast', txid: requested.txid });

    await s.node.mine(1);
    await s.c.pipeline.runOnce();
    expect(await s.store.intents.get(id)).toMatchObject({ status: 'confirmed', txid: requested.txid });
    expect(await s.store.transactions.get(id)).toMatchObject({ txid: requested.txid, confirmations: 1 });
    expect((await bumpsOf(s, id))[0]?.status).toBe('mined');
    const view = (await s.client.get(`/v1/intents/${id}`)).body as { signers: unknown[] };
    expect(view.signers).toHaveLength(2);
    await signers.stop();

    // Each signer: one ledger entry for the intent (the amount counts once), the replacement beside it.
    for (const signer of ['signer-1', 'signer-2']) {
      expect(signerLedger(s.dir, signer)).toEqual({
        ledger: [{ intent: id, txid: original }],
        replacements: [{ intent: id, txid: requested.txid, replaces: original }],
      });
    }
    const events = (await auditEvents(s.store)).filter((e) => e.subject === id).map((e) => e.event);
    expect(events).toEqual(
      expect.arrayContaining(['bump.requested', 'bump.signed', 'bump.broadcast', 'transaction.replaced']),
    );
    expect(events.filter((e) => e === 'bump.signed')).toHaveLength(2);
    expect(events.indexOf('transaction.replaced')).toBeLessThan(events.indexOf('transaction.confirmed'));
    // The webhook receivers learn the replacement's txid and what it replaces.
    const announced = (await s.store.outbox.due(Date.now() + 1, 100))
      .filter((o) => o.event === 'transaction.broadcast')
      .map((o) => (JSON.parse(o.payload) as { data: { txid: string; replaces?: string } }).data);
    expect(announced).toEqual([
      expect.objectContaining({ txid: original }),
      expect.objectContaining({ txid: requested.txid, replaces: original }),
    ]);

    // A bump of the confirmed withdrawal: NOT_A_REPLACEMENT, nothing queued, audited.
    const jobsBefore = (await s.store.jobs.of(id)).length;
    const late = await s.client.post(`/v1/intents/${id}/bumps`, bumpOf(s.org, id, 30n));
    expect(outcome(late)).toEqual({ status: 422, code: 'NOT_A_REPLACEMENT' });
    expect((await s.store.jobs.of(id)).length).toBe(jobsBefore);
    const tail = (await auditEvents(s.store)).slice(-2);
    expect(tail.map((e) => e.event)).toEqual(['bump.refused', 'request.refused']);
    expect(tail[0]?.subject).toBe(id);
  });

  it('refuses at the door a bump over the fee cap, one by another member than the requester, one that does not raise the fee; nothing queued, each audited', async () => {
    const s = await setUp(backend);
    const { id, signers } = await broadcastWithdrawal(s);
    await signers.stop();
    const jobs = (await s.store.jobs.of(id)).length;
    const cases: [SignedBump, Client, string][] = [
      // The policy caps the fee rate at 100 sat/vB.
      [bumpOf(s.org, id, 150n), s.client, 'FEE_TOO_HIGH'],
      [
        bumpOf(s.org, id, 20n, s.org.world.org.approvers[0]),
        s.clientOf(s.org.world.org.approvers[0]!),
        'NOT_AUTHORIZED',
      ],
      [bumpOf(s.org, id, 1n), s.client, 'NOT_A_REPLACEMENT'],
    ];
    for (const [bump, client, code] of cases) {
      const before = (await auditEvents(s.store)).length;
      const res = await client.post(`/v1/intents/${id}/bumps`, bump);
      expect(outcome(res)).toEqual({ status: code === 'NOT_AUTHORIZED' ? 403 : 422, code });
      const added = (await auditEvents(s.store)).slice(before);
      // The bump's own refusal, and the HTTP edge's record of the refused request.
      expect(added.map((e) => [e.event, e.subject.startsWith(code) ? code : e.subject])).toEqual([
        ['bump.refused', id],
        ['request.refused', code],
      ]);
    }
    // Signed with another device than the bump names: the request is refused as any such request.
    const other = await s
      .clientOf(s.org.world.org.approvers[0]!)
      .post(`/v1/intents/${id}/bumps`, bumpOf(s.org, id, 20n));
    expect(outcome(other)).toEqual({ status: 403, code: 'NOT_AUTHORIZED' });
    expect((await s.store.jobs.of(id)).length).toBe(jobs);
    expect(await bumpsOf(s, id)).toEqual([]);

    // Two bumps at once: one goes to the signers, the other is refused CONFLICT (one at a time).
    const both = await Promise.all([
      s.client.post(`/v1/intents/${id}/bumps`, bumpOf(s.org, id, 20n)),
      s.client.post(`/v1/intents/${id}/bumps`, bumpOf(s.org, id, 25n)),
    ]);
    expect(both.map((r) => r.status).sort()).toEqual([202, 409]);
    const bumps = await bumpsOf(s, id);
    expect(bumps.filter((b) => b.status === 'signing')).toHaveLength(1);
    expect((await s.store.jobs.of(id)).length).toBe(jobs + 2);
  });

  it('a bump overtaken by the original being mined is refused: its jobs are withdrawn, nothing signed, the original confirms', async () => {
    const s = await setUp(backend);
    const { id, txid: original, signers } = await broadcastWithdrawal(s);
    await signers.stop();
    const res = await s.client.post(`/v1/intents/${id}/bumps`, bumpOf(s.org, id, 20n));
    expect(res.status).toBe(202);
    const bumpId = (res.body as BumpView).id;
    // The original is mined before any signer sees the bump.
    await s.node.mine(1);
    await s.c.pipeline.runOnce();
    expect(await s.store.intents.get(id)).toMatchObject({ status: 'confirmed', txid: original });
    const again = startSigners(s.dir, s.org, s.c.pipeline, s.store);
    cleanups.push(() => again.stop());
    const refused = await waitFor('the bump refused', async () => {
      await s.c.pipeline.runOnce();
      const b = (await bumpsOf(s, id)).find((x) => x.id === bumpId);
      return b?.status === 'refused' ? b : undefined;
    });
    await again.stop();
    expect(refused.code).toBe('NOT_A_REPLACEMENT');
    expect(again.runs.flatMap((r) => r.results)).toEqual([]);
    for (const signer of ['signer-1', 'signer-2']) {
      expect(signerLedger(s.dir, signer).replacements).toEqual([]);
    }
    const events = (await auditEvents(s.store)).filter((e) => e.subject === id).map((e) => e.event);
    expect(events.slice(-2)).toEqual(['transaction.confirmed', 'bump.refused']);
    expect(await s.store.transactions.get(id)).toMatchObject({ txid: original, confirmations: 1 });
  });

  it('the original mined after its replacement was broadcast: the intent follows the original, the bump is marked replaced, audited', async () => {
    const s = await setUp(backend);
    // The coordinator's own node: it answers the replacement's txid but keeps it nowhere (a node
    // that restarts with an empty mempool), so the miner's mempool still holds the original.
    const lost = new Set<string>();
    class ForgetfulNode extends BitcoinRpc {
      override async sendRawTransaction(hex: string): Promise<string> {
        const txid = parseTransaction(fromHex(hex)).txid;
        if (lost.has(txid)) return txid;
        return super.sendRawTransaction(hex);
      }
    }
    const rpc = new ForgetfulNode({
      url: s.node.rpcUrl,
      username: s.node.rpcUser,
      password: s.node.rpcPassword,
    });
    const c = await makeCoordinator(s.store, s.org, { rpc, startHeight: await s.node.rpc.getBlockCount() });
    cleanups.push(() => c.pipeline.stop());
    const id = await approvedIntent(s.store, s.org, 10_000_000n);
    const signers = startSigners(s.dir, s.org, c.pipeline, s.store);
    cleanups.push(() => signers.stop());
    await c.pipeline.onApproved(id);
    const original = await waitFor('broadcast', async () => {
      const r = await s.store.intents.get(id);
      return r?.status === 'broadcast' ? (r.txid as string) : undefined;
    });
    const bump = bumpOf(s.org, id, 20n);
    const view = await c.pipeline.bump?.(id, bump, 'member:test');
    lost.add(view?.txid as string);
    await waitFor('the replacement "broadcast"', async () => {
      const b = await s.store.bumps.get(view?.id as string);
      return b?.status === 'broadcast' ? b : undefined;
    });
    await signers.stop();
    expect(await s.store.intents.get(id)).toMatchObject({ status: 'broadcast', txid: view?.txid });
    expect(await s.node.rpc.getRawMempool()).toEqual([original]);

    await s.node.mine(1);
    await c.pipeline.runOnce();
    expect(await s.store.intents.get(id)).toMatchObject({ status: 'confirmed', txid: original });
    expect(await s.store.transactions.get(id)).toMatchObject({ txid: original, confirmations: 1 });
    expect((await s.store.bumps.get(view?.id as string))?.status).toBe('replaced');
    const events = (await auditEvents(s.store)).filter((e) => e.subject === id).map((e) => e.event);
    expect(events.slice(-2)).toEqual(['transaction.replaced', 'transaction.confirmed']);
  });

  it("a cold signer's share of a bump travels as a job file: exported by an admin, signed offline, imported; the replacement is broadcast", async () => {
    const s = await setUp(backend);
    const { id, txid: original, signers } = await broadcastWithdrawal(s);
    await signers.stop();
    // signer-1 is online; signer-2 is now cold storage, reached through job files only.
    const online = startSigners(s.dir, s.org, s.c.pipeline, s.store, { only: ['signer-1'] });
    cleanups.push(() => online.stop());
    const res = await s.client.post(`/v1/intents/${id}/bumps`, bumpOf(s.org, id, 20n));
    expect(res.status).toBe(202);
    const requested = res.body as BumpView;
    await waitFor('signer-1 signed the replacement', async () => {
      const b = (await bumpsOf(s, id))[0];
      return b?.signers.find((x) => x.signer === 'signer-1')?.outcome === 'signed' ? b : undefined;
    });
    const admin = s.clientOf(s.org.world.org.admins[0]!);
    const exported = await admin.get(`/v1/intents/${id}/offline-job?signer=signer-2`);
    expect(exported.status, JSON.stringify(exported.body)).toBe(200);
    const file = exported.body as { job: SignerJob; governance: SignedGovernanceEntry[] };
    expect(file.job.bump).toBeDefined();
    expect(bumpDigest(file.job.bump!.bump)).toBe(requested.id);

    const store2 = new SignerStore(join(s.dir, 'signer-2.db'));
    try {
      const cold = Signer.init(
        {
          id: 'signer-2',
          identitySecret: s.org.identities.get('signer-2') as Uint8Array,
          key: s.org.world.keys[1]!,
          pinnedGenesis: s.org.orgId,
          chains: ['bitcoin:regtest'],
          store: store2,
        },
        s.org.world.org.genesis,
      );
      const result = await cold.handle(file.job, new MemorySource(file.governance));
      expect(result.receipt).toMatchObject({ outcome: 'signed', txid: requested.txid });
      const imported = await admin.post('/v1/offline/results', { v: 1, kind: OFFLINE_RESULT_KIND, result });
      expect(imported.status, JSON.stringify(imported.body)).toBe(200);
    } finally {
      store2.close();
    }
    await waitFor('the replacement broadcast', async () => {
      const b = (await bumpsOf(s, id))[0];
      return b?.status === 'broadcast' ? b : undefined;
    });
    expect(await s.node.rpc.getRawMempool()).toEqual([requested.txid]);
    expect(await s.node.rpc.getRawMempool()).not.toContain(original);
    await online.stop();
  });

  it('THREATS 6-7: a relay that rewrites the replacement (a payee output changed, coins that do not conflict) is refused NOT_A_REPLACEMENT by both signers, with an alert; nothing signed, the original stays', async () => {
    const s = await setUp(backend);
    let mode: 'payee' | 'twin' = 'payee';
    const twin = buildPsbt({
      wallet: s.org.world.descriptor,
      utxos: [s.coins[1]!],
      to: s.org.world.intent(1n).intent.to,
      amount: 10_000_000n,
      feeRate: 20n,
      changeIndex: 0,
    });
    if (!twin.ok) throw new Error(twin.message);
    const rewrite = (job: SignerJob): unknown => {
      if (job.bump === undefined) return job;
      if (mode === 'twin') return { ...job, psbt: psbtToBase64(twin.value.psbt) };
      const bytes = psbtFromBase64(job.psbt as string);
      if (!bytes.ok) throw new Error(bytes.message);
      // 1000 sat less to the payee (the larger output is the change: 0.3 BTC - 0.1 BTC - fee).
      const edited = editPsbt(bytes.value, (p) => {
        const outs = p.global.unsignedTx.outputs;
        const payee = outs.findIndex((o) => o.amount === 10_000_000n);
        outs[payee]!.amount -= 1000n;
      });
      return { ...job, psbt: psbtToBase64(edited) };
    };
    const {
      id,
      txid: original,
      signers,
    } = await broadcastWithdrawal(s, { 'signer-1': rewrite, 'signer-2': rewrite });

    for (const m of ['payee', 'twin'] as const) {
      mode = m;
      const before = (await auditEvents(s.store)).length;
      const res = await s.client.post(`/v1/intents/${id}/bumps`, bumpOf(s.org, id, 20n));
      expect(res.status).toBe(202);
      const bumpId = (res.body as BumpView).id;
      const refused = await waitFor('the bump refused', async () => {
        const b = (await bumpsOf(s, id)).find((x) => x.id === bumpId);
        return b?.status === 'refused' ? b : undefined;
      });
      expect(refused.code).toBe('NOT_A_REPLACEMENT');
      expect(refused.signers.map((x) => [x.signer, x.outcome, x.code])).toEqual([
        ['signer-1', 'refused', 'NOT_A_REPLACEMENT'],
        ['signer-2', 'refused', 'NOT_A_REPLACEMENT'],
      ]);
      // A signer's alert is audited just after its refusal, and the background loop may refuse
      // the bump in between: wait for both signers' alerts, then check the entries.
      const added = await waitFor('both signers audited with their alerts', async () => {
        const a = (await auditEvents(s.store)).slice(before).filter((e) => e.subject === id);
        return a.filter((e) => e.event === 'alert').length >= 2 ? a : undefined;
      });
      expect(added.filter((e) => e.event === 'bump.refused' && e.actor.startsWith('signer:'))).toHaveLength(
        2,
      );
      expect(added.filter((e) => e.event === 'alert')).toHaveLength(2);
      expect(added.some((e) => e.event === 'bump.broadcast')).toBe(false);
    }
    await signers.stop();
    const results = signers.runs
      .flatMap((r) => r.results)
      .filter((r) => r.receipt.code === 'NOT_A_REPLACEMENT');
    expect(results).toHaveLength(4);
    for (const r of results) {
      expect(r.psbt).toBeUndefined();
      expect(r.alert).toMatchObject({ severity: 'critical', code: 'NOT_A_REPLACEMENT' });
    }
    // Nothing signed: no replacement in either ledger, the original still the one in the mempool.
    for (const signer of ['signer-1', 'signer-2']) {
      expect(signerLedger(s.dir, signer).replacements).toEqual([]);
    }
    expect(await s.node.rpc.getRawMempool()).toEqual([original]);
    expect(await s.store.intents.get(id)).toMatchObject({ status: 'broadcast', txid: original });
    await s.node.mine(1);
    await s.c.pipeline.runOnce();
    expect(await s.store.intents.get(id)).toMatchObject({ status: 'confirmed', txid: original });
  });
});
