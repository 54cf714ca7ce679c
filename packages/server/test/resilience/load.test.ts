/**
 * Sustained mixed load on a real coordinator process (THREATS 31 under load).
 *
 * The coordinator runs as a child process (support/coordinator-process.ts:
 * the server's startServer, what `custos serve` runs, on SQLite, on
 * 127.0.0.1). For LOAD_SECONDS (default 15) WORKERS clients send signed
 * requests over real sockets: intent creations by the requester, approvals by
 * two approvers (the second one makes the intent `approved`), reads of single
 * intents and of lists; about 5% of requests are hostile: malformed JSON, a
 * 2 MiB body, 10,000-deep nesting, a wrong content type, a request whose
 * signature covers another body, an intent whose own signature is forged, a
 * replay of an answered request, an unsigned request. A separate loop asks
 * /v1/health every 100 ms throughout.
 *
 * Asserted: no 5xx and no request without an answer; every good request got
 * its expected answer; every hostile one its 4xx and stable code; the health
 * loop never missed; after the run the database holds exactly the intents
 * that got 201 (none of the hostile ones), approved exactly when two approvals
 * were answered, and the audit chain verifies; the coordinator's heap (after a
 * full GC) and RSS after the run are within a bound of their values after
 * warm-up. The figures are printed as one JSON line (docs/resilience.md).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Digest, intentDigest, type SignedIntent, signDigest, verifyAuditChain } from '@custos/core';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/connect.js';
import { Store } from '../../src/db/repository.js';
import {
  type Client,
  codeOf,
  type PreparedRequest,
  type Res,
  send,
  unsigned,
} from '../api/support/client.js';
import { makeApproval, makeIntent } from '../api/support/harness.js';
import {
  type CoordinatorProcess,
  clientOf,
  createOrg,
  type Memory,
  prng,
  seedOrganization,
  serverConfig,
  sleep,
  startCoordinatorProcess,
} from './support/process.js';

const SECONDS = Number(process.env.LOAD_SECONDS ?? 15);
const WARMUP_SECONDS = 3;
const WORKERS = 8;
const HOSTILE_SHARE = 0.05;
const SEED = Number(process.env.LOAD_SEED ?? 20_261_121);
const MiB = 1 << 20;
/** Growth allowed from warm-up to the end of the run (live heap after GC; resident set). */
const HEAP_GROWTH_BOUND = 32 * MiB;
const RSS_GROWTH_BOUND = 128 * MiB;

const dir = mkdtempSync(join(tmpdir(), 'custos-load-'));
let proc: CoordinatorProcess | undefined;

afterAll(async () => {
  await proc?.stop();
  rmSync(dir, { recursive: true, force: true });
});

type HostileKind =
  | 'malformed JSON'
  | 'oversized body'
  | 'deeply nested body'
  | 'wrong content type'
  | 'signature over another body'
  | 'forged intent signature'
  | 'replayed request'
  | 'unsigned request';

const HOSTILE: Readonly<Record<HostileKind, { status: number; code: string }>> = {
  'malformed JSON': { status: 400, code: 'INVALID_JSON' },
  'oversized body': { status: 413, code: 'TOO_LARGE' },
  'deeply nested body': { status: 400, code: 'TOO_DEEP' },
  'wrong content type': { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  'signature over another body': { status: 401, code: 'BAD_SIGNATURE' },
  'forged intent signature': { status: 403, code: 'INTENT_SIGNATURE_INVALID' },
  'replayed request': { status: 401, code: 'REPLAYED_REQUEST' },
  'unsigned request': { status: 401, code: 'SIGNATURE_REQUIRED' },
};
const HOSTILE_KINDS = Object.keys(HOSTILE) as HostileKind[];
const DEEP = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
const BIG = Buffer.alloc(2 * MiB, 0x20);

interface Outcome {
  readonly kind: string;
  readonly hostile: boolean;
  readonly status: number | null;
  readonly code: string | null;
  readonly ok: boolean;
  readonly detail?: string;
}

describe('sustained mixed load on a coordinator process (SQLite, real sockets)', () => {
  it(`${SECONDS} s of ${WORKERS} concurrent clients, ${HOSTILE_SHARE * 100}% hostile: no 5xx, every answer as expected, nothing stored from hostile requests, memory bounded`, async () => {
    const org = createOrg();
    const sqlitePath = join(dir, 'coordinator.db');
    await seedOrganization({ sqlitePath }, org);
    proc = await startCoordinatorProcess(serverConfig({ sqlitePath }));
    const target = { baseUrl: proc.url };
    const requester = clientOf(target, org.requester);
    const approvers = [0, 1].map((i) => clientOf(target, org.approvers[i] ?? org.requester));
    const now = (): number => Date.now();

    const outcomes: Outcome[] = [];
    const created = new Set<string>();
    const approvedTwice = new Set<string>();
    const approvedOnce = new Set<string>();
    const hostileIds = new Set<string>();
    const approvalTasks: { id: string; step: 0 | 1 }[] = [];
    const replayable: PreparedRequest[] = [];
    const t0 = performance.now();
    const deadline = t0 + SECONDS * 1000;
    const health = { asked: 0, ok: 0, failures: [] as string[] };

    const record = (o: Outcome): void => {
      outcomes.push(o);
    };
    const answer = async (req: PreparedRequest): Promise<Res | string> => {
      try {
        return await send(target, req);
      } catch (err) {
        return `no answer: ${(err as Error).message}`;
      }
    };

    const good = async (rnd: () => number, client: Client, kind: string): Promise<void> => {
      if (kind === 'create' || (kind === 'approve' && approvalTasks.length === 0)) {
        const signed = makeIntent(org, now() as never);
        const id = intentDigest(signed.intent);
        const req = requester.prepare('POST', '/v1/intents', { body: signed });
        const res = await answer(req);
        if (typeof res === 'string')
          return record({ kind: 'create', hostile: false, status: null, code: null, ok: false, detail: res });
        const body = res.body as { id?: string; status?: string };
        const ok = res.status === 201 && body.id === id && body.status === 'pending';
        if (ok) {
          created.add(id);
          approvalTasks.push({ id, step: 0 });
          if (replayable.length < 64) replayable.push(req);
        }
        return record({ kind: 'create', hostile: false, status: res.status, code: codeOf(res), ok });
      }
      if (kind === 'approve') {
        const task = approvalTasks.splice(Math.floor(rnd() * approvalTasks.length), 1)[0];
        if (task === undefined) return;
        const by = org.approvers[task.step] ?? org.requester;
        const res = await answer(
          (approvers[task.step] as Client).prepare('POST', `/v1/intents/${task.id}/approvals`, {
            body: makeApproval(task.id as Digest, by, now() as never),
          }),
        );
        if (typeof res === 'string')
          return record({ kind, hostile: false, status: null, code: null, ok: false, detail: res });
        const expected = task.step === 0 ? 'pending' : 'approved';
        const ok = res.status === 200 && (res.body as { status?: string }).status === expected;
        if (ok && task.step === 0) {
          approvedOnce.add(task.id);
          approvalTasks.push({ id: task.id, step: 1 });
        }
        if (ok && task.step === 1) approvedTwice.add(task.id);
        return record({
          kind,
          hostile: false,
          status: res.status,
          code: codeOf(res),
          ok,
          detail: JSON.stringify(res.body).slice(0, 200),
        });
      }
      if (kind === 'read' && created.size > 0) {
        const ids = [...created];
        const id = ids[Math.floor(rnd() * ids.length)] as string;
        const res = await answer(client.prepare('GET', `/v1/intents/${id}`));
        if (typeof res === 'string')
          return record({ kind, hostile: false, status: null, code: null, ok: false, detail: res });
        return record({
          kind,
          hostile: false,
          status: res.status,
          code: codeOf(res),
          ok: res.status === 200 && (res.body as { id?: string }).id === id,
        });
      }
      const res = await answer(client.prepare('GET', '/v1/intents?limit=20'));
      if (typeof res === 'string')
        return record({ kind: 'list', hostile: false, status: null, code: null, ok: false, detail: res });
      return record({
        kind: 'list',
        hostile: false,
        status: res.status,
        code: codeOf(res),
        ok: res.status === 200 && Array.isArray((res.body as { intents?: unknown }).intents),
      });
    };

    const hostile = async (kind: HostileKind): Promise<void> => {
      const fresh = (): SignedIntent => makeIntent(org, now() as never);
      let req: PreparedRequest;
      switch (kind) {
        case 'malformed JSON':
          req = requester.prepare('POST', '/v1/intents', { body: JSON.stringify(fresh()).slice(0, 57) });
          break;
        case 'oversized body':
          req = requester.prepare('POST', '/v1/intents', { body: BIG });
          break;
        case 'deeply nested body':
          req = requester.prepare('POST', '/v1/intents', { body: DEEP });
          break;
        case 'wrong content type': {
          const s = fresh();
          hostileIds.add(intentDigest(s.intent));
          req = requester.prepare('POST', '/v1/intents', {
            body: JSON.stringify(s),
            contentType: 'text/plain',
          });
          break;
        }
        case 'signature over another body': {
          const shown = fresh();
          const sent = fresh();
          hostileIds.add(intentDigest(shown.intent)).add(intentDigest(sent.intent));
          const signedFor = requester.prepare('POST', '/v1/intents', { body: shown });
          req = { ...signedFor, payload: requester.prepare('POST', '/v1/intents', { body: sent }).payload };
          break;
        }
        case 'forged intent signature': {
          const s = fresh();
          const forger = org.approvers[2] ?? org.watcher;
          const forged = { ...s, signature: signDigest(forger.device.secretKey, intentDigest(s.intent)) };
          hostileIds.add(intentDigest(s.intent));
          req = requester.prepare('POST', '/v1/intents', { body: forged });
          break;
        }
        case 'replayed request': {
          const earlier = replayable[Math.floor(Math.random() * replayable.length)];
          if (earlier === undefined) return hostile('unsigned request');
          req = earlier;
          break;
        }
        case 'unsigned request': {
          const s = fresh();
          hostileIds.add(intentDigest(s.intent));
          req = unsigned('POST', '/v1/intents', { body: s });
          break;
        }
      }
      const res = await answer(req);
      const want = HOSTILE[kind];
      if (typeof res === 'string')
        return record({ kind, hostile: true, status: null, code: null, ok: false, detail: res });
      const code = codeOf(res);
      return record({
        kind,
        hostile: true,
        status: res.status,
        code,
        ok: res.status === want.status && code === want.code,
      });
    };

    const worker = async (w: number): Promise<void> => {
      const rnd = prng(SEED + w);
      const reader = w % 2 === 0 ? requester : (approvers[w % 2 === 1 ? 0 : 1] as Client);
      let hostileTurn = w;
      while (performance.now() < deadline) {
        const r = rnd();
        if (r < HOSTILE_SHARE) {
          await hostile(HOSTILE_KINDS[hostileTurn++ % HOSTILE_KINDS.length] as HostileKind);
        } else {
          const g = rnd();
          await good(rnd, reader, g < 0.4 ? 'create' : g < 0.7 ? 'approve' : g < 0.9 ? 'read' : 'list');
        }
      }
    };

    const healthLoop = async (): Promise<void> => {
      while (performance.now() < deadline) {
        health.asked++;
        const res = await answer(unsigned('GET', '/v1/health'));
        if (typeof res !== 'string' && res.status === 200) health.ok++;
        else health.failures.push(typeof res === 'string' ? res : String(res.status));
        await sleep(100);
      }
    };

    const samples: { at: number; memory: Memory }[] = [];
    const sampler = async (): Promise<Memory> => {
      await sleep(WARMUP_SECONDS * 1000);
      const warm = await (proc as CoordinatorProcess).memory();
      samples.push({ at: performance.now() - t0, memory: warm });
      while (performance.now() < deadline - 1500) {
        await sleep(1000);
        samples.push({ at: performance.now() - t0, memory: await (proc as CoordinatorProcess).memory() });
      }
      return warm;
    };

    const start = await proc.memory();
    const [warm] = await Promise.all([
      sampler(),
      healthLoop(),
      ...Array.from({ length: WORKERS }, (_, w) => worker(w)),
    ]);
    const elapsedS = (performance.now() - t0) / 1000;
    const end = await proc.memory();
    const after = await send(target, unsigned('GET', '/v1/health'));

    // The figures, for docs/resilience.md.
    const byStatus: Record<string, number> = {};
    const byKind: Record<string, number> = {};
    for (const o of outcomes) {
      const s = String(o.status ?? 'no answer');
      byStatus[s] = (byStatus[s] ?? 0) + 1;
      byKind[o.kind] = (byKind[o.kind] ?? 0) + 1;
    }
    const hostileCount = outcomes.filter((o) => o.hostile).length;
    const mb = (n: number): number => Math.round((n / MiB) * 10) / 10;
    console.log(
      `RESILIENCE load ${JSON.stringify({
        seconds: Math.round(elapsedS * 10) / 10,
        workers: WORKERS,
        requests: outcomes.length,
        perSecond: Math.round(outcomes.length / elapsedS),
        hostile: hostileCount,
        hostileShare: Math.round((hostileCount / outcomes.length) * 1000) / 10,
        byStatus,
        byKind,
        intentsCreated: created.size,
        approvedTwice: approvedTwice.size,
        health,
        memoryMiB: {
          start: { rss: mb(start.rss), heapUsed: mb(start.heapUsed) },
          warm: { rss: mb((warm as Memory).rss), heapUsed: mb((warm as Memory).heapUsed) },
          end: { rss: mb(end.rss), heapUsed: mb(end.heapUsed) },
          peakRss: mb(Math.max(...samples.map((s) => s.memory.rss), end.rss)),
        },
      })}`,
    );

    // Every request answered, none 5xx, each as expected.
    expect(outcomes.filter((o) => o.status === null || o.status >= 500)).toEqual([]);
    expect(outcomes.filter((o) => !o.ok)).toEqual([]);
    expect(hostileCount).toBeGreaterThan(0);
    for (const kind of HOSTILE_KINDS) expect(byKind[kind] ?? 0, kind).toBeGreaterThan(0);
    expect(health.failures).toEqual([]);
    expect(health.ok).toBeGreaterThan(SECONDS * 2);
    expect(after.status).toBe(200);

    // Memory: live heap and RSS after the run within a bound of their values after warm-up.
    expect(end.heapUsed - (warm as Memory).heapUsed).toBeLessThan(HEAP_GROWTH_BOUND);
    expect(end.rss - (warm as Memory).rss).toBeLessThan(RSS_GROWTH_BOUND);

    // The database: exactly the accepted intents, approved exactly when two approvals were answered.
    await proc.stop();
    expect(await proc.exited).toEqual({ code: 0, signal: null });
    const db = await openDatabase({ sqlitePath });
    try {
      const store = new Store(db);
      const stored = new Map<string, string>();
      let cursor: string | null = null;
      for (let page = 0; page < 10_000; page++) {
        const p = await store.intents.list({ limit: 200, ...(cursor === null ? {} : { cursor }) });
        for (const i of p.intents) stored.set(i.id, i.status);
        cursor = p.next;
        if (cursor === null) break;
      }
      expect([...stored.keys()].sort()).toEqual([...created].sort());
      expect([...hostileIds].filter((id) => stored.has(id))).toEqual([]);
      for (const id of approvedTwice) expect(stored.get(id), id).toBe('approved');
      for (const id of created) {
        if (!approvedTwice.has(id)) expect(stored.get(id), id).toBe('pending');
        expect((await store.approvals.of(id)).length, id).toBe(
          approvedTwice.has(id) ? 2 : approvedOnce.has(id) ? 1 : 0,
        );
      }
      const audit = [...(await store.audit.range(0, 1_000_000))];
      expect(verifyAuditChain(audit)).toMatchObject({ ok: true });
    } finally {
      await db.close();
    }
  }, 120_000);
});
