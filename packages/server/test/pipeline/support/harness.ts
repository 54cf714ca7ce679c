/**
 * A coordinator's pipeline with everything real around it, for the pipeline
 * tests: the storage backends (SQLite and PostgreSQL), a bcoin regtest node,
 * the signer test world's organization with a real 2-of-3 descriptor, and
 * two real Signer instances (packages/signer) with their own SQLite stores,
 * fed through pipeline.jobsFor and answering into pipeline.acceptResult:
 * the same job interface the HTTP edge exposes, minus the HTTP.
 *
 * The organization: the world's genesis (signer-1 in it) plus a `signer.add`
 * entry for signer-2 signed by an admin quorum, both stored through the
 * Store, so the coordinator queues a job for each (the organization has no
 * loosening delay, so signer-2 counts at once). signer-1 holds the first
 * seed key of the descriptor, signer-2 the second; the third is the offline
 * backup. Governance for the pipeline is read back from the store and
 * verified from the pinned genesis, as the coordinator does.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BitcoinRpc, deriveAddress } from '@custos/bitcoin';
import { type RegtestNode, startRegtestNode } from '@custos/bitcoin/regtest';
import {
  type AuditVerifyResult,
  type Digest,
  ed25519PublicKey,
  type GovernanceState,
  intentDigest,
  type Millis,
  type Policy,
  type SignedGovernanceEntry,
  type SignerJob,
  type SignerResult,
  signCheckpoint,
  verifyAuditChain,
  verifyGovernanceChain,
} from '@custos/core';
import { type GovernanceSource, Signer, SignerStore } from '@custos/signer';
import { propose, secretKeyFor } from '@custos/test-support/org';
import { makeWorld, type World } from '@custos/test-support/world';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { StoreAuditLog } from '../../../src/audit-log.js';
import type { AuditLog, GovernanceView } from '../../../src/contracts.js';
import type { Store } from '../../../src/db/repository.js';
import { createPipeline, type Pipeline, type PipelineOptions } from '../../../src/pipeline.js';
import { createNotifier, type WebhookNotifier } from '../../../src/webhooks.js';

export const WEBHOOK_SECRET = 'webhook-secret-for-tests-0123456789';
export const SIGNER_2_SECRET = secretKeyFor('custos-test', 'signer-2');

export interface Org {
  readonly world: World;
  readonly orgId: Digest;
  /** genesis, then signer.add for signer-2. */
  readonly entries: readonly SignedGovernanceEntry[];
  readonly signerKeys: ReadonlyMap<string, string>;
  readonly identities: ReadonlyMap<string, Uint8Array>;
}

/** The fixture organization with signer-2 added; `policy` edits the genesis policy (the default one when absent). */
export function makeOrg(policy?: (p: Policy) => Policy): Org {
  // No loosening delay: signer.add waits it out (GOVERNANCE_EFFECTS), and signer-2 must get jobs at once here.
  const world = makeWorld(policy === undefined ? { delayMs: 0 } : { delayMs: 0, policy });
  world.clock.now = Date.now();
  const org = world.org;
  const signer2 = { id: 'signer-2', publicKey: ed25519PublicKey(SIGNER_2_SECRET), label: 'Signer 2' };
  const add = propose(org.state, 'signer.add', signer2, org.admins.slice(0, 2));
  return {
    world,
    orgId: org.orgId,
    entries: [org.genesis, add],
    signerKeys: new Map([
      [org.signer.record.id, org.signer.record.publicKey],
      [signer2.id, signer2.publicKey],
    ]),
    identities: new Map([
      [org.signer.record.id, org.signer.secretKey],
      [signer2.id, SIGNER_2_SECRET],
    ]),
  };
}

export async function seedGovernance(store: Store, org: Org): Promise<void> {
  for (const e of org.entries) await store.governance.append(e);
}

/** Governance as the coordinator holds it: read from the store, verified from the pinned genesis. */
export function storeGovernance(store: Store, orgId: Digest): GovernanceView {
  let cached: { head: Digest; state: GovernanceState } | null = null;
  return {
    async current() {
      const head = await store.governance.head();
      if (head === null) throw new Error('no governance stored');
      if (cached?.head === head.digest) return cached.state;
      const records = await store.governance.range(-1, head.seq);
      const chain = verifyGovernanceChain(
        orgId,
        records.map((r) => ({ signed: r.signed, seenAt: r.receivedAt })),
      );
      if (!chain.ok) throw new Error(`stored governance does not verify: ${chain.message}`);
      cached = { head: head.digest, state: chain.value };
      return chain.value;
    },
  };
}

export function storeAudit(store: Store, clock: () => Millis = Date.now): AuditLog {
  return new StoreAuditLog(store, clock);
}

/** What a signer fetches governance from: the coordinator's stored entries, as JSON on a wire. */
export function storeSource(store: Store): GovernanceSource {
  return {
    async governanceEntries(after, upto) {
      const records = await store.governance.range(after, upto);
      return JSON.parse(JSON.stringify(records.map((r) => r.signed)));
    },
  };
}

export interface Coordinator {
  readonly store: Store;
  readonly pipeline: Pipeline;
  readonly notifier: WebhookNotifier;
  readonly governance: GovernanceView;
}

export async function makeCoordinator(
  store: Store,
  org: Org,
  opts: Partial<PipelineOptions> & Pick<PipelineOptions, 'rpc'>,
): Promise<Coordinator> {
  const governance = storeGovernance(store, org.orgId);
  const notifier = createNotifier(store, [
    { url: 'http://127.0.0.1:9/custos-hooks', secret: WEBHOOK_SECRET },
  ]);
  const pipeline = createPipeline(
    { store, governance, audit: storeAudit(store), notifier, clock: Date.now },
    { pollMs: 50, repairMs: 100, checkpointIntervalMs: 0, confirmationsTarget: 1, ...opts },
  );
  return { store, pipeline, notifier, governance };
}

/** Stores an intent with its two approvals and marks it approved, as the HTTP edge does. */
export async function approvedIntent(store: Store, org: Org, amount: bigint): Promise<Digest> {
  org.world.clock.now = Date.now();
  const signed = org.world.intent(amount);
  await store.intents.insert(signed);
  const id = intentDigest(signed.intent);
  for (const a of org.world.approve(signed)) await store.approvals.insert(a);
  if (!(await store.intents.updateStatus(id, { from: 'pending', to: 'approved' }))) {
    throw new Error('intent not approved');
  }
  return id;
}

export interface SignerRun {
  readonly id: string;
  readonly results: SignerResult[];
  readonly errors: unknown[];
  readonly checkpoints: number;
  stop(): Promise<void>;
}

export interface Signers {
  readonly runs: readonly SignerRun[];
  stop(): Promise<void>;
}

/**
 * Starts signer-1 and signer-2 (real Signer objects over their own stores in
 * `dir`), each pulling jobs from `pipeline` and answering into it. `relay`
 * may rewrite a signer's jobs on the way, as an attacker in the middle would.
 */
export function startSigners(
  dir: string,
  org: Org,
  pipeline: Pipeline,
  store: Store,
  opts: { relay?: Partial<Record<string, (job: SignerJob) => unknown>>; only?: readonly string[] } = {},
): Signers {
  const keys = org.world.keys;
  const ids = opts.only ?? ['signer-1', 'signer-2'];
  const runs = ids.map((id) => {
    const identitySecret = org.identities.get(id) as Uint8Array;
    const signerStore = new SignerStore(join(dir, `${id}.db`));
    const signer = Signer.init(
      {
        id,
        identitySecret,
        key: keys[id === 'signer-1' ? 0 : 1]!,
        pinnedGenesis: org.orgId,
        chains: ['bitcoin:regtest'],
        store: signerStore,
      },
      org.world.org.genesis,
    );
    return runSigner(id, signer, identitySecret, org.orgId, pipeline, storeSource(store), {
      relay: opts.relay?.[id],
      close: () => signerStore.close(),
    });
  });
  return {
    runs,
    async stop() {
      await Promise.all(runs.map((r) => r.stop()));
    },
  };
}

function runSigner(
  id: string,
  signer: Signer,
  identitySecret: Uint8Array,
  orgId: Digest,
  pipeline: Pipeline,
  source: GovernanceSource,
  opts: { relay: ((job: SignerJob) => unknown) | undefined; close: () => void },
): SignerRun {
  const results: SignerResult[] = [];
  const errors: unknown[] = [];
  const stopper = new AbortController();
  let checkpoints = 0;
  const loop = (async () => {
    // Bounded by stop(): every poll waits at most 200 ms.
    while (!stopper.signal.aborted) {
      let feed: Awaited<ReturnType<Pipeline['jobsFor']>>;
      try {
        feed = await pipeline.jobsFor(id, 200, stopper.signal);
      } catch (err) {
        errors.push(err);
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      for (const job of feed.jobs) {
        const onWire = JSON.parse(JSON.stringify(opts.relay === undefined ? job : opts.relay(job)));
        const result = await signer.handle(onWire, source);
        results.push(result);
        try {
          await pipeline.acceptResult(id, result);
        } catch (err) {
          errors.push(err);
        }
      }
      if (feed.checkpoint !== null) {
        const sc = signCheckpoint(identitySecret, {
          v: 1,
          org: orgId,
          signer: id,
          seq: feed.checkpoint.seq,
          head: feed.checkpoint.head,
          at: Date.now(),
        });
        try {
          await pipeline.acceptCheckpoint(id, sc);
          checkpoints++;
        } catch (err) {
          errors.push(err);
        }
      }
    }
  })();
  return {
    id,
    results,
    errors,
    get checkpoints() {
      return checkpoints;
    },
    async stop() {
      if (stopper.signal.aborted) return loop;
      stopper.abort();
      await loop;
      opts.close();
    },
  };
}

/** The whole audit log, verified with the stored checkpoints. */
export async function verifyAudit(store: Store, org: Org): Promise<AuditVerifyResult> {
  const entries = await store.audit.range(0, 10_000);
  const checkpoints = await store.audit.checkpoints();
  return verifyAuditChain(entries, { checkpoints, signerKeys: org.signerKeys, expectedOrg: org.orgId });
}

export async function auditEvents(
  store: Store,
): Promise<{ event: string; subject: string; actor: string }[]> {
  return (await store.audit.range(0, 10_000)).map((e) => ({
    event: e.event,
    subject: e.subject,
    actor: e.actor,
  }));
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 100_000; i++) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** One regtest node for the calling test file, segwit active. */
export function useRegtest(): () => RegtestNode {
  let node: RegtestNode | undefined;
  beforeAll(async () => {
    node = await startRegtestNode();
    await node.activateSegwit();
  }, 120_000);
  afterAll(async () => {
    await node?.close();
  });
  return () => {
    if (node === undefined) throw new Error('the regtest node is not started yet');
    return node;
  };
}

/** Pays `values` to the wallet's receive addresses 0, 1, ... and mines them into a block. */
export async function fund(node: RegtestNode, org: Org, values: readonly bigint[]): Promise<void> {
  for (const [index, value] of values.entries()) {
    await node.fund(deriveAddress(org.world.descriptor, 0, index).script, value);
  }
  await node.mine(1);
}

export function tempDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'custos-pipeline-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A TCP relay on 127.0.0.1 in front of the chain node: stopping it is the
 * node going away for the coordinator (connections refused, open ones cut),
 * starting it again on the same port is the node coming back.
 */
export interface NodeLink {
  readonly url: string;
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function nodeLink(node: RegtestNode): Promise<NodeLink> {
  const target = new URL(node.rpcUrl);
  const sockets = new Set<Socket>();
  let server: Server | null = null;
  let port = 0;
  const open = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const s = createServer((client) => {
        sockets.add(client);
        const upstream = connect(Number(target.port), target.hostname);
        sockets.add(upstream);
        client.pipe(upstream).pipe(client);
        const end = (): void => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        client.on('error', end).on('close', end);
        upstream.on('error', end).on('close', end);
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        const a = s.address();
        if (typeof a === 'object' && a !== null) port = a.port;
        server = s;
        resolve();
      });
    });
  await open();
  const down = async (): Promise<void> => {
    const s = server;
    server = null;
    if (s === null) return;
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  return {
    url: `http://127.0.0.1:${port}/`,
    down,
    up: async () => {
      if (server === null) await open();
    },
    close: down,
  };
}

export function rpcVia(link: NodeLink, node: RegtestNode): BitcoinRpc {
  return new BitcoinRpc({
    url: link.url,
    username: node.rpcUser,
    password: node.rpcPassword,
    timeoutMs: 3000,
  });
}

/**
 * Cleanups registered during a test, run newest first after it (servers,
 * signers, temp folders), so a failing test leaves nothing running.
 */
export function useCleanups(): (() => Promise<void> | void)[] {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return cleanups;
}
