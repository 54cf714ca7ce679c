/**
 * Two coordinators on one PostgreSQL database serve one organization under
 * concurrent load (issue 11, "scale out"). Everything is real and on
 * 127.0.0.1: a PostgreSQL 15 server, a bcoin regtest node, two coordinators
 * (the server's startServer, what `custos serve` runs, each with its own
 * database pool, pipeline and chain watcher, on its own port), and the two
 * signers of the 2-of-3 wallet (real Signer objects with their own SQLite
 * ledgers) each running the signer daemon's job loop over HTTP against BOTH
 * coordinators at once, so the two coordinators' job claims race.
 *
 * WORKERS clients create and approve WITHDRAWALS withdrawals concurrently,
 * each sending the intent to one coordinator and the approvals to the other
 * (so either may be the one that builds). Asserted:
 * - no coin is reserved twice: no two intents' PSBTs (as handed to the
 *   signers) share an input;
 * - no job is handed out twice: each signer receives each job id once, over
 *   both coordinators, and exactly one job per intent;
 * - every intent is signed exactly once by each signer (two `signing.signed`
 *   audit entries, one per signer, and one signed result each), and
 *   broadcast once;
 * - every transaction is accepted by the node and mined, and the intents
 *   become `confirmed`;
 * - the audit log verifies (core's verifyAuditChain, with the signers'
 *   checkpoints).
 * Then both coordinators stop and a third starts on the same database: it
 * loads the chain state the others saved and builds, signs, broadcasts and
 * confirms more withdrawals on regtest.
 */
import { BitcoinRpc, deriveAddress, parseBlock } from '@custos/bitcoin';
import type { RegtestNode } from '@custos/bitcoin/regtest';
import { type Digest, intentDigest, type SignedIntent, type SignerResult } from '@custos/core';
import { HttpJobSource, type JobSource, runDaemon, Signer, SignerStore } from '@custos/signer';
import { usePostgres } from '@custos/test-support/postgres';
import { Psbt } from 'bitcoinjs-lib';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/connect.js';
import { Store } from '../../src/db/repository.js';
import { initOrganization } from '../../src/governance-view.js';
import { createPipeline } from '../../src/pipeline.js';
import { type RunningServer, startServer } from '../../src/server.js';
import type { Client } from '../api/support/client.js';
import {
  makeOrg,
  type Org,
  tempDir,
  useCleanups,
  useRegtest,
  verifyAudit,
  waitFor,
} from '../pipeline/support/harness.js';
import { clientOf, serverConfig } from './support/process.js';

const WORKERS = 6;
const WITHDRAWALS = 24;
const AFTER_RESTART = 3;
const AMOUNT = 100_000n;
const COIN = 1_000_000n;
const COINS = WITHDRAWALS + AFTER_RESTART + 6;

const pg = usePostgres();
const regtest = useRegtest();
const cleanups = useCleanups();

/** A coordinator as `custos serve` runs it, with the real pipeline on the regtest node and fast loops. */
async function coordinator(url: string, node: RegtestNode, org: Org): Promise<RunningServer> {
  const server = await startServer(
    { ...serverConfig({ databaseUrl: url }), org: org.orgId },
    {
      createPipeline: ({ store, governance, audit, notifier, clock }) =>
        createPipeline(
          { store, governance, audit, notifier, clock },
          {
            rpc: { url: node.rpcUrl, username: node.rpcUser, password: node.rpcPassword },
            pollMs: 100,
            repairMs: 500,
            checkpointIntervalMs: 1000,
            confirmationsTarget: 1,
          },
        ),
      createNotifier: () => ({ emit: async () => undefined }),
      handleSignals: false,
      logger: pino({ level: 'silent' }),
    },
  );
  cleanups.push(() => server.close());
  return server;
}

interface Received {
  readonly job: string;
  readonly intent: string;
  readonly psbt: string;
  readonly via: string;
}

/**
 * One signer over its own ledger, running the daemon's job loop against each
 * URL at once (one Signer: its decisions are serialized by its SQLite
 * ledger, as in `custos signer run`). Records every job each loop received.
 */
function startSigner(dir: string, org: Org, id: 'signer-1' | 'signer-2', urls: readonly string[]) {
  const identitySecret = org.identities.get(id) as Uint8Array;
  const store = new SignerStore(`${dir}/${id}.db`);
  const signer = Signer.init(
    {
      id,
      identitySecret,
      key: org.world.keys[id === 'signer-1' ? 0 : 1]!,
      pinnedGenesis: org.orgId,
      chains: ['bitcoin:regtest'],
      store,
    },
    org.world.org.genesis,
  );
  const received: Received[] = [];
  const results: SignerResult[] = [];
  const errors: unknown[] = [];
  const stopper = new AbortController();
  const loops = urls.map((url) => {
    const http = new HttpJobSource({ baseUrl: url, signerId: id, identitySecret, timeoutMs: 10_000 });
    const source: JobSource = {
      async nextJobs(waitMs, signal) {
        const next = await http.nextJobs(waitMs, signal);
        for (const j of next.jobs as { id: string; intent: SignedIntent; psbt: string }[]) {
          received.push({ job: j.id, intent: intentDigest(j.intent.intent), psbt: j.psbt, via: url });
        }
        return next;
      },
      submit: (r) => http.submit(r),
      submitCheckpoint: (c) => http.submitCheckpoint(c),
      governanceEntries: (after, upto) => http.governanceEntries(after, upto),
    };
    return runDaemon({
      signer,
      source,
      signal: stopper.signal,
      waitMs: 1000,
      maxBackoffMs: 500,
      onResult: (r) => void results.push(r),
      onError: (err) => void errors.push(err),
    });
  });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    stopper.abort();
    await Promise.all(loops);
    store.close();
  };
  cleanups.push(stop);
  return { id, received, results, errors, stop };
}

/** Creates and approves one withdrawal: the intent to `a`, the approvals to `b`. */
async function withdraw(org: Org, a: ClientSet, b: ClientSet): Promise<Digest> {
  org.world.clock.now = Date.now();
  const signed = org.world.intent(AMOUNT);
  const id = intentDigest(signed.intent);
  const posted = await a.requester.post('/v1/intents', signed);
  expect(posted.status, JSON.stringify(posted.body)).toBe(201);
  const approvals = org.world.approve(signed);
  for (const [i, approval] of approvals.entries()) {
    const res = await b.approvers[i]!.post(`/v1/intents/${id}/approvals`, approval);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  }
  return id;
}

interface ClientSet {
  readonly requester: Client;
  readonly approvers: readonly Client[];
  readonly watcher: Client;
}

function clients(url: string, org: Org): ClientSet {
  const o = org.world.org;
  return {
    requester: clientOf({ baseUrl: url }, o.requester),
    approvers: o.approvers.slice(0, 2).map((p) => clientOf({ baseUrl: url }, p)),
    watcher: clientOf({ baseUrl: url }, o.watcher),
  };
}

interface Status {
  readonly status: string;
  readonly statusCode: string | null;
  readonly statusMessage: string | null;
  readonly txid: string | null;
}

async function statusOf(c: ClientSet, id: string): Promise<Status> {
  const res = await c.watcher.get(`/v1/intents/${id}`);
  expect(res.status).toBe(200);
  return res.body as Status;
}

/** Waits until every intent has reached `status` (failing at once on a refused or expired one). */
async function allReach(c: ClientSet, ids: readonly string[], status: string, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  let seen = new Map<string, number>();
  for (let round = 0; round < 10_000; round++) {
    seen = new Map();
    for (const id of ids) {
      const s = await statusOf(c, id);
      if (s.status === 'refused' || s.status === 'expired') {
        throw new Error(`${id} is ${s.status}: ${s.statusCode} ${s.statusMessage}`);
      }
      seen.set(s.status, (seen.get(s.status) ?? 0) + 1);
    }
    if (seen.get(status) === ids.length) return;
    if (performance.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(
    `timed out waiting for ${ids.length} intents to be ${status}: ${JSON.stringify([...seen])}`,
  );
}

async function walletSeen(c: ClientSet, coins: number): Promise<void> {
  await waitFor(
    'the coordinator to see the funded wallet',
    async () => {
      const res = await c.watcher.get('/v1/wallets');
      const w = (res.body as { wallets?: { balance: string | null }[] }).wallets?.[0];
      return w?.balance != null && BigInt(w.balance) >= COIN * BigInt(coins) ? true : undefined;
    },
    30_000,
  );
}

function inputsOf(psbt: string): string[] {
  return Psbt.fromBase64(psbt).txInputs.map(
    (i) => `${Buffer.from(i.hash).reverse().toString('hex')}:${i.index}`,
  );
}

describe('two coordinators on one PostgreSQL database', () => {
  it(`${WITHDRAWALS} concurrent withdrawals over both: no coin reserved twice, no job handed out twice, each intent signed once, all mined, the audit log verifies; a third coordinator builds on the saved chain state`, async () => {
    const node = regtest();
    const started = performance.now();
    const phases: Record<string, number> = {};
    const phase = (name: string): void => {
      phases[name] = Math.round(performance.now() - started);
      console.log(`two-coordinators: ${name} at ${phases[name]} ms`);
    };
    const url = await pg.freshDatabase();
    const org = makeOrg();
    const tmp = tempDir();
    cleanups.push(() => tmp.remove());
    {
      const db = await openDatabase({ url });
      const store = new Store(db, { now: Date.now });
      await initOrganization(store, org.world.org.genesis, { org: org.orgId });
      for (const e of org.entries.slice(1)) await store.governance.append(e);
      await db.close();
    }
    // One coin per withdrawal, each its own funding transaction, to receive addresses 0..19.
    for (let i = 0; i < COINS; i++) {
      await node.fund(deriveAddress(org.world.descriptor, 0, i % 20).script, COIN);
    }
    await node.mine(1);
    phase('funded');

    const a = await coordinator(url, node, org);
    const b = await coordinator(url, node, org);
    const ca = clients(a.url, org);
    const cb = clients(b.url, org);
    await walletSeen(ca, COINS);
    await walletSeen(cb, COINS);
    phase('both coordinators see the coins');
    const signers = (['signer-1', 'signer-2'] as const).map((id) =>
      startSigner(tmp.dir, org, id, [a.url, b.url]),
    );

    // Concurrent load: WORKERS clients, each withdrawal's intent to one coordinator, approvals to the other.
    const ids: string[] = [];
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: WORKERS }, async () => {
        for (let n = next++; n < WITHDRAWALS; n = next++) {
          const [x, y] = n % 2 === 0 ? [ca, cb] : [cb, ca];
          ids.push(await withdraw(org, x, y));
        }
      }),
    );
    expect(new Set(ids).size).toBe(WITHDRAWALS);
    await allReach(ca, ids, 'broadcast', 40_000);
    phase('all broadcast');
    const broadcastMs = Math.round(performance.now() - t0);
    await node.mine(1);
    await allReach(cb, ids, 'confirmed', 20_000);
    phase('all confirmed');

    // No job handed out twice; one job per intent per signer; every intent signed once by each signer.
    for (const s of signers) {
      const jobs = s.received.map((r) => r.job);
      expect(new Set(jobs).size, `${s.id} received a job twice`).toBe(jobs.length);
      expect(s.received.map((r) => r.intent).sort()).toEqual([...ids].sort());
      const signedIntents = s.results
        .filter((r) => r.receipt.outcome === 'signed')
        .map((r) => r.receipt.intent);
      expect(signedIntents.sort()).toEqual([...ids].sort());
      expect(s.results.filter((r) => r.receipt.outcome !== 'signed')).toEqual([]);
      // Both coordinators handed out jobs.
      expect(new Set(s.received.map((r) => r.via)).size).toBe(2);
    }
    // No coin reserved twice: the PSBTs of distinct intents share no input.
    const holder = new Map<string, string>();
    for (const s of signers) {
      for (const r of s.received) {
        for (const outpoint of inputsOf(r.psbt)) {
          const other = holder.get(outpoint);
          expect(other === undefined || other === r.intent, `${outpoint} in ${other} and ${r.intent}`).toBe(
            true,
          );
          holder.set(outpoint, r.intent);
        }
      }
    }
    // The audit log: two signing.signed per intent (one per signer), one broadcast; it verifies.
    const db = await openDatabase({ url });
    cleanups.push(() => db.close());
    const store = new Store(db, { now: Date.now });
    const audit = await store.audit.range(0, 10_000);
    for (const id of ids) {
      const signedBy = audit
        .filter((e) => e.event === 'signing.signed' && e.subject === id)
        .map((e) => e.actor);
      expect(signedBy.sort(), id).toEqual(['signer:signer-1', 'signer:signer-2'].sort());
      expect(audit.filter((e) => e.event === 'transaction.broadcast' && e.subject === id)).toHaveLength(1);
    }
    expect(await verifyAudit(store, org)).toMatchObject({ ok: true });
    // Every transaction is in the node's chain: the intents' txids, all distinct, all confirmed.
    const txids = await Promise.all(ids.map(async (id) => (await statusOf(ca, id)).txid));
    expect(new Set(txids).size).toBe(WITHDRAWALS);
    const client = new BitcoinRpc({ url: node.rpcUrl, username: node.rpcUser, password: node.rpcPassword });
    const tip = await client.getBlockCount();
    const mined = new Set(
      parseBlock(await client.getBlockRaw(await client.getBlockHash(tip))).txs.map((t) => t.txid),
    );
    for (const txid of txids) expect(mined.has(txid as string), `${txid} mined`).toBe(true);
    for (const s of signers) expect(s.errors.filter((e) => !String(e).includes('abort'))).toEqual([]);

    // Both stop; a third coordinator loads the chain state they saved and builds on regtest.
    for (const s of signers) await s.stop();
    phase('checked; signers stopped');
    await a.close();
    phase('first coordinator closed');
    await b.close();
    phase('second coordinator closed');
    const c = await coordinator(url, node, org);
    phase('third coordinator up');
    const cc = clients(c.url, org);
    const again = (['signer-1', 'signer-2'] as const).map((id) => startSigner(tmp.dir, org, id, [c.url]));
    const more: string[] = [];
    for (let i = 0; i < AFTER_RESTART; i++) more.push(await withdraw(org, cc, cc));
    await allReach(cc, more, 'broadcast', 30_000);
    phase('after restart: broadcast');
    await node.mine(1);
    await allReach(cc, more, 'confirmed', 20_000);
    phase('after restart: confirmed');
    for (const s of again)
      expect(s.results.map((r) => r.receipt.outcome)).toEqual(['signed', 'signed', 'signed']);
    const restarted = await verifyAudit(store, org);
    expect(restarted).toMatchObject({ ok: true });
    const via = (s: (typeof signers)[number]) =>
      Object.fromEntries(
        [a.url, b.url].map((u, i) => [i === 0 ? 'a' : 'b', s.received.filter((r) => r.via === u).length]),
      );
    console.log(
      `RESILIENCE two-coordinators ${JSON.stringify({
        withdrawals: WITHDRAWALS,
        workers: WORKERS,
        allBroadcastMs: broadcastMs,
        jobsBySignerAndCoordinator: Object.fromEntries(signers.map((s) => [s.id, via(s)])),
        distinctInputs: holder.size,
        afterRestart: AFTER_RESTART,
        auditEntries: (await store.audit.range(0, 10_000)).length,
        phasesMs: phases,
      })}`,
    );
  }, 150_000);
});
