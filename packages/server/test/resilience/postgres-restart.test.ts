/**
 * PostgreSQL restarted under load. A coordinator (the server's startServer,
 * in this process, on a real socket on 127.0.0.1) runs on a real PostgreSQL
 * 15 server; WORKERS clients keep creating intents while the server is
 * stopped (pg_ctl stop -m fast: open connections are cut) and, OUTAGE_MS
 * later, started again on the same data directory and port.
 *
 * Asserted: every answer is 201 or 503 UNAVAILABLE, never a 500 and never a
 * dropped connection; every request sent while the database was down got 503
 * UNAVAILABLE; /v1/health answers 200 throughout and /v1/ready says 503 while
 * the database is down; once it is back, requests succeed again without
 * restarting the coordinator; every intent that got 201 is in the database;
 * every intent that got 503 can be sent again and is then stored (201, or
 * 409 DUPLICATE_INTENT when it had been stored after all); the audit chain
 * verifies. The figures are printed as one JSON line (docs/resilience.md).
 */
import { type Digest, intentDigest, type Millis, verifyAuditChain } from '@custos/core';
import { usePostgres } from '@custos/test-support/postgres';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/connect.js';
import { Store } from '../../src/db/repository.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { codeOf, type Res, send, unsigned } from '../api/support/client.js';
import { makeIntent } from '../api/support/harness.js';
import { InertPipeline } from '../api/support/inert-pipeline.js';
import { clientOf, createOrg, seedOrganization, serverConfig, sleep } from './support/process.js';

const WORKERS = 4;
const BEFORE_MS = 1500;
const OUTAGE_MS = 2000;
const AFTER_MS = 4000;
/** Pause between a worker's requests, so the outage's quick 503s do not spin. */
const PAUSE_MS = 10;

const pg = usePostgres();
let server: RunningServer | undefined;
afterAll(async () => {
  await server?.close();
});

describe('PostgreSQL stopped and started under load', () => {
  it('answers 503 UNAVAILABLE during the outage, loses no accepted intent, and resumes by itself', async () => {
    const url = await pg.freshDatabase();
    const org = createOrg();
    await seedOrganization({ url }, org);
    const logs: string[] = [];
    server = await startServer(serverConfig({ databaseUrl: url }), {
      createPipeline: () => new InertPipeline(),
      createNotifier: () => ({ emit: async () => undefined }),
      handleSignals: false,
      logger: pino({ level: 'warn' }, { write: (s: string) => void logs.push(s) }),
    });
    const target = { baseUrl: server.url };
    const requester = clientOf(target, org.requester);

    interface Sent {
      readonly id: string;
      readonly at: number;
      readonly answeredAt: number;
      readonly status: number | null;
      readonly code: string | null;
      readonly detail?: string;
    }
    const sent: Sent[] = [];
    const signedOf = new Map<string, ReturnType<typeof makeIntent>>();
    const t0 = performance.now();
    const clock = (): number => performance.now() - t0;
    let stop = false;
    const timeline = { haltAsked: 0, haltDone: 0, resumeAsked: 0, resumeDone: 0, stoppedAt: 0 };
    const health = { asked: 0, ok: 0, readyDownSeen: 0, failures: [] as string[] };

    const worker = async (): Promise<void> => {
      while (!stop) {
        const signed = makeIntent(org, Date.now() as Millis);
        const id = intentDigest(signed.intent);
        signedOf.set(id, signed);
        const at = clock();
        let res: Res | string;
        try {
          res = await requester.send('POST', '/v1/intents', { body: signed });
        } catch (err) {
          res = (err as Error).message;
        }
        sent.push(
          typeof res === 'string'
            ? { id, at, answeredAt: clock(), status: null, code: null, detail: res }
            : { id, at, answeredAt: clock(), status: res.status, code: codeOf(res) },
        );
        await sleep(PAUSE_MS);
      }
    };
    const healthLoop = async (): Promise<void> => {
      while (!stop) {
        health.asked++;
        try {
          const h = await send(target, unsigned('GET', '/v1/health'));
          if (h.status === 200) health.ok++;
          else health.failures.push(String(h.status));
          const r = await send(target, unsigned('GET', '/v1/ready'));
          const during = timeline.haltDone > 0 && timeline.resumeAsked === 0;
          if (during && r.status === 503 && codeOf(r) === 'UNAVAILABLE') health.readyDownSeen++;
        } catch (err) {
          health.failures.push((err as Error).message);
        }
        await sleep(100);
      }
    };
    const faults = async (): Promise<void> => {
      await sleep(BEFORE_MS);
      timeline.haltAsked = clock();
      await pg.server().halt();
      timeline.haltDone = clock();
      await sleep(OUTAGE_MS);
      timeline.resumeAsked = clock();
      await pg.server().resume();
      timeline.resumeDone = clock();
      await sleep(AFTER_MS);
      timeline.stoppedAt = clock();
      stop = true;
    };
    await Promise.all([faults(), healthLoop(), ...Array.from({ length: WORKERS }, () => worker())]);

    const accepted = sent.filter((s) => s.status === 201);
    const unavailable = sent.filter((s) => s.status === 503 && s.code === 'UNAVAILABLE');
    const duringOutage = sent.filter(
      (s) => s.at >= timeline.haltDone && s.answeredAt <= timeline.resumeAsked,
    );
    const firstAfter = sent.find((s) => s.status === 201 && s.at >= timeline.resumeDone);
    const byStatus: Record<string, number> = {};
    for (const s of sent)
      byStatus[String(s.status ?? 'no answer')] = (byStatus[String(s.status ?? 'no answer')] ?? 0) + 1;

    // Everything that got 503 is sent again, now that the database is back.
    const retried: Record<string, number> = {};
    for (const s of unavailable) {
      const res = await requester.send('POST', '/v1/intents', { body: signedOf.get(s.id) });
      const key = `${res.status} ${codeOf(res) ?? ''}`.trim();
      retried[key] = (retried[key] ?? 0) + 1;
      expect([201, 409], JSON.stringify(res.body)).toContain(res.status);
      if (res.status === 409) expect(codeOf(res)).toBe('DUPLICATE_INTENT');
    }

    console.log(
      `RESILIENCE postgres-restart ${JSON.stringify({
        workers: WORKERS,
        requests: sent.length,
        byStatus,
        outageMs: {
          stopTook: Math.round(timeline.haltDone - timeline.haltAsked),
          down: Math.round(timeline.resumeAsked - timeline.haltDone),
          startTook: Math.round(timeline.resumeDone - timeline.resumeAsked),
        },
        requestsDuringOutage: duringOutage.length,
        firstSuccessAfterRestartMs:
          firstAfter === undefined ? null : Math.round(firstAfter.answeredAt - timeline.resumeDone),
        retriedAfterRestart: retried,
        health,
        serverLogLines: logs.length,
      })}`,
    );

    expect(sent.filter((s) => !(s.status === 201 || (s.status === 503 && s.code === 'UNAVAILABLE')))).toEqual(
      [],
    );
    expect(duringOutage.length).toBeGreaterThan(0);
    expect(duringOutage.filter((s) => s.status !== 503)).toEqual([]);
    expect(firstAfter).toBeDefined();
    // Once back, the last second's requests all succeed.
    const tail = sent.filter((s) => s.at >= timeline.stoppedAt - 1000);
    expect(tail.length).toBeGreaterThan(0);
    expect(tail.filter((s) => s.status !== 201)).toEqual([]);
    expect(health.failures).toEqual([]);
    expect(health.readyDownSeen).toBeGreaterThan(0);

    const db = await openDatabase({ url });
    try {
      const store = new Store(db);
      for (const s of [...accepted, ...unavailable]) {
        expect(await store.intents.get(s.id as Digest), s.id).not.toBeNull();
      }
      const audit = await store.audit.range(0, 1_000_000);
      expect(verifyAuditChain(audit)).toMatchObject({ ok: true });
      // An intent and its `intent.created` entry commit in one transaction: every stored intent,
      // including those whose answer was lost to the outage, has its entry.
      const createdEntries = new Set(audit.filter((e) => e.event === 'intent.created').map((e) => e.subject));
      const withoutEntry = [...accepted, ...unavailable].filter((s) => !createdEntries.has(s.id));
      console.log(
        `RESILIENCE postgres-restart audit ${JSON.stringify({ auditEntries: audit.length, storedIntentsWithoutCreatedEntry: withoutEntry.length })}`,
      );
      expect(withoutEntry).toEqual([]);
    } finally {
      await db.close();
    }
  }, 120_000);
});
