/**
 * The coordinator killed mid-request. The coordinator runs as a child process
 * (support/coordinator-process.ts: the server's startServer, what `custos
 * serve` runs) on SQLite; WORKERS clients fire intent creations and approvals
 * (two approvers per intent, the second makes it `approved`) at it, and at a
 * random moment (PRNG seeded by KILL_SEED) it gets SIGKILL, with requests in
 * flight. It is started again on the same database file, KILL_ROUNDS times.
 *
 * After each restart, asserted:
 * - every request that got a success answer before the kill is there: each
 *   intent answered 201 is found, each approval answered 200 is in its
 *   intent's approvals (no accepted intent or approval lost);
 * - every request that got no answer can be sent again, unchanged, with a new
 *   request signature: the same intent is 201 or 409 DUPLICATE_INTENT and is
 *   then there; the same approval is 200 and is then there;
 * - an intent with two approvals is `approved` (after the kill, at the
 *   latest by the coordinator's own sweep: it resumes by itself);
 * and at the end the audit chain read over GET /v1/audit verifies with core's
 * verifyAuditChain, and every intent answered 201 has its `intent.created`
 * entry. The figures are printed as one JSON line (docs/resilience.md).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AuditEntry,
  type Digest,
  intentDigest,
  type Millis,
  type SignedApproval,
  type SignedIntent,
  verifyAuditChain,
} from '@custos/core';
import { afterAll, describe, expect, it } from 'vitest';
import { type Client, codeOf, type Res } from '../api/support/client.js';
import { makeApproval, makeIntent } from '../api/support/harness.js';
import {
  type CoordinatorProcess,
  clientOf,
  createOrg,
  prng,
  seedOrganization,
  serverConfig,
  sleep,
  startCoordinatorProcess,
} from './support/process.js';

const ROUNDS = Number(process.env.KILL_ROUNDS ?? 3);
const SEED = Number(process.env.KILL_SEED ?? 32_032);
const WORKERS = 6;

const dir = mkdtempSync(join(tmpdir(), 'custos-kill-'));
let proc: CoordinatorProcess | undefined;

afterAll(async () => {
  await proc?.kill();
  rmSync(dir, { recursive: true, force: true });
});

interface IntentState {
  readonly signed: SignedIntent;
  answered: 'created' | 'no answer' | 'pending';
  approvals: { signed: SignedApproval; answered: boolean }[];
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('the coordinator process killed with SIGKILL mid-request (SQLite)', () => {
  it(`${ROUNDS} kills at random moments: no accepted intent or approval lost, unanswered requests retry safely, the audit chain verifies`, async () => {
    const org = createOrg();
    const sqlitePath = join(dir, 'coordinator.db');
    await seedOrganization({ sqlitePath }, org);
    const rnd = prng(SEED);
    const intents = new Map<string, IntentState>();
    const figures: Record<string, unknown>[] = [];
    const approverOf = (step: number) => org.approvers[step] ?? org.requester;

    for (let round = 0; round < ROUNDS; round++) {
      proc = await startCoordinatorProcess(serverConfig({ sqlitePath }));
      const target = { baseUrl: proc.url };
      const requester = clientOf(target, org.requester);
      const approvers = [0, 1].map((i) => clientOf(target, approverOf(i)));
      let killed = false;
      const counts = { created: 0, approved: 0, noAnswer: 0, refused: [] as string[] };
      const tasks: { id: string; step: number }[] = [];
      for (const [id, s] of intents) {
        if (s.approvals.length < 2 && s.answered === 'created') tasks.push({ id, step: s.approvals.length });
      }

      const post = async (client: Client, url: string, body: unknown): Promise<Res | null> => {
        try {
          return await client.post(url, body);
        } catch {
          if (!killed) throw new Error(`no answer from a live coordinator: ${url}`);
          return null;
        }
      };
      const worker = async (w: number): Promise<void> => {
        const r = prng(SEED * 31 + round * 7 + w);
        for (let i = 0; i < 10_000 && !killed; i++) {
          const task = r() < 0.5 ? tasks.shift() : undefined;
          if (task === undefined) {
            const signed = makeIntent(org, Date.now() as Millis);
            const id = intentDigest(signed.intent);
            const state: IntentState = { signed, answered: 'pending', approvals: [] };
            intents.set(id, state);
            const res = await post(requester, '/v1/intents', signed);
            if (res === null) {
              state.answered = 'no answer';
              counts.noAnswer++;
            } else if (res.status === 201) {
              state.answered = 'created';
              counts.created++;
              tasks.push({ id, step: 0 });
            } else counts.refused.push(`${res.status} ${codeOf(res)}`);
          } else {
            const signed = makeApproval(task.id as Digest, approverOf(task.step), Date.now() as Millis);
            const entry = { signed, answered: false };
            (intents.get(task.id) as IntentState).approvals.push(entry);
            const res = await post(
              approvers[task.step] as Client,
              `/v1/intents/${task.id}/approvals`,
              signed,
            );
            if (res === null) counts.noAnswer++;
            else if (res.status === 200) {
              entry.answered = true;
              counts.approved++;
              if (task.step === 0) tasks.push({ id: task.id, step: 1 });
            } else counts.refused.push(`${res.status} ${codeOf(res)}`);
          }
        }
      };

      const killAfterMs = Math.round(400 + rnd() * 1200);
      const t0 = performance.now();
      const killer = (async () => {
        await sleep(killAfterMs);
        killed = true;
        await (proc as CoordinatorProcess).kill();
      })();
      await Promise.all([killer, ...Array.from({ length: WORKERS }, (_, w) => worker(w))]);
      expect(await proc.exited).toEqual({ code: null, signal: 'SIGKILL' });
      expect(counts.refused).toEqual([]);

      // Started again on the same database.
      const t1 = performance.now();
      proc = await startCoordinatorProcess(serverConfig({ sqlitePath }));
      const restartMs = Math.round(performance.now() - t1);
      const again = { baseUrl: proc.url };
      const req2 = clientOf(again, org.requester);
      const appr2 = [0, 1].map((i) => clientOf(again, approverOf(i)));
      const view = async (id: string): Promise<{ status: string; approvals: SignedApproval[] } | null> => {
        const res = await req2.get(`/v1/intents/${id}`);
        if (res.status === 404) return null;
        expect(res.status).toBe(200);
        return res.body as { status: string; approvals: SignedApproval[] };
      };
      const has = (v: { approvals: SignedApproval[] } | null, a: SignedApproval): boolean =>
        v?.approvals.some((x) => x.approval.approver === a.approval.approver) ?? false;

      let lost = 0;
      const retried: Record<string, number> = {};
      const count = (k: string): void => {
        retried[k] = (retried[k] ?? 0) + 1;
      };
      for (const [id, s] of intents) {
        if (s.answered === 'created') {
          const v = await view(id);
          if (v === null) lost++;
          for (const a of s.approvals.filter((x) => x.answered)) if (!has(v, a.signed)) lost++;
        } else if (s.answered === 'no answer') {
          // Sent again, unchanged (a new request signature): stored once, whatever the kill did.
          const res = await req2.post('/v1/intents', s.signed);
          count(`intent ${res.status} ${codeOf(res) ?? ''}`.trim());
          expect([201, 409]).toContain(res.status);
          if (res.status === 409) expect(codeOf(res)).toBe('DUPLICATE_INTENT');
          expect(await view(id)).not.toBeNull();
          s.answered = 'created';
        }
        for (const [step, a] of s.approvals.entries()) {
          if (a.answered) continue;
          const res = await (appr2[step] as Client).post(`/v1/intents/${id}/approvals`, a.signed);
          count(`approval ${res.status} ${codeOf(res) ?? ''}`.trim());
          expect(res.status, JSON.stringify(res.body)).toBe(200);
          expect(has(await view(id), a.signed)).toBe(true);
          a.answered = true;
        }
      }
      expect(lost).toBe(0);
      // Two approvals make an intent approved; a kill between the two steps is healed by the sweep.
      const twice = [...intents].filter(([, s]) => s.approvals.length === 2).map(([id]) => id);
      const healedAfterMs = await until('every intent with two approvals to be approved', async () => {
        for (const id of twice) if ((await view(id))?.status !== 'approved') return undefined;
        return Math.round(performance.now() - t1);
      });
      figures.push({
        round,
        killAfterMs,
        sentBeforeKill: counts.created + counts.approved + counts.noAnswer,
        answeredCreated: counts.created,
        answeredApproved: counts.approved,
        noAnswer: counts.noAnswer,
        retried,
        restartMs,
        allApprovedAfterMs: healedAfterMs,
        roundMs: Math.round(performance.now() - t0),
      });
      if (round < ROUNDS - 1) await proc.kill();
    }

    // The audit chain, read over the API, verifies; every accepted intent has its entry.
    const admin = clientOf({ baseUrl: (proc as CoordinatorProcess).url }, org.admins[0] ?? org.requester);
    const audit: AuditEntry[] = [];
    for (let page = 0; page < 1000; page++) {
      const res = await admin.get(`/v1/audit?from=${audit.length}&limit=1000`);
      expect(res.status).toBe(200);
      const entries = (res.body as { entries: AuditEntry[] }).entries;
      audit.push(...entries);
      if (entries.length < 1000) break;
    }
    expect(verifyAuditChain(audit)).toMatchObject({ ok: true });
    const createdEntries = new Set(audit.filter((e) => e.event === 'intent.created').map((e) => e.subject));
    const missing = [...intents.keys()].filter((id) => !createdEntries.has(id));
    console.log(
      `RESILIENCE coordinator-kill ${JSON.stringify({ seed: SEED, rounds: figures, intents: intents.size, auditEntries: audit.length, intentsWithoutCreatedEntry: missing.length })}`,
    );
    await (proc as CoordinatorProcess).stop();
  }, 120_000);
});
