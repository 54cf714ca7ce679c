/**
 * The signer job queue in the coordinator's store, on SQLite and PostgreSQL:
 * each queued job is handed out once even to concurrent claimers, a job a
 * signer never answered is handed out again (a crashed signer gets it back,
 * THREATS 32), and a signer's result is recorded once.
 */
import { intentDigest, type SignerJob } from '@custos/core';
import { describe, expect, it } from 'vitest';
import type { Store } from '../../src/db/repository.js';
import { useBackends } from './backends.js';
import { codeOf, makeIntent, makeJob, makeResult, T0 } from './fixtures.js';

const { backends } = useBackends();

/** Stores `count` intents and one job each for `signer`, returns the jobs. */
async function seed(store: Store, count: number, signer = 'signer-1', from = 0): Promise<SignerJob[]> {
  const jobs: SignerJob[] = [];
  for (let n = from; n < from + count; n++) {
    const signed = makeIntent(n);
    await store.intents.insert(signed);
    jobs.push(makeJob(signed, `job-${signer}-${n}`, signer));
  }
  return jobs;
}

describe.each(backends)('signer jobs on $name', (backend) => {
  it('queues jobs and hands them to their signer only, oldest first', async () => {
    let now = T0;
    const { store } = await backend.fresh({ now: () => now });
    const mine = await seed(store, 3, 'signer-1');
    const theirs = await seed(store, 2, 'signer-2', 10);
    for (const job of mine) {
      expect(await store.jobs.enqueue([job])).toBe(1);
      now += 1;
    }
    expect(await store.jobs.enqueue(theirs)).toBe(2);
    const claimed = await store.jobs.claim('signer-1', 10);
    expect(claimed.map((j) => j.id)).toEqual(mine.map((j) => j.id));
    expect(claimed[0]?.job).toEqual(mine[0]);
    expect(
      claimed.every((j) => j.status === 'delivered' && j.deliveries === 1 && j.deliveredAt === now),
    ).toBe(true);
    expect(await store.jobs.claim('signer-1', 10)).toEqual([]);
    expect((await store.jobs.claim('signer-2', 1)).map((j) => j.id)).toEqual([theirs[0]?.id]);
  });

  it('accepts the same jobs again without queueing them twice', async () => {
    const { store } = await backend.fresh();
    const jobs = await seed(store, 2);
    expect(await store.jobs.enqueue(jobs)).toBe(2);
    expect(await store.jobs.enqueue(jobs)).toBe(0);
    expect(await store.jobs.claim('signer-1', 10)).toHaveLength(2);
  });

  it('refuses a different job under a stored id with CONFLICT, queueing none of the batch', async () => {
    const { store } = await backend.fresh();
    const [a, b] = await seed(store, 2);
    await store.jobs.enqueue([a!]);
    const changed: SignerJob = { ...a!, psbt: 'cHNidP8BAQ==' };
    expect(await codeOf(store.jobs.enqueue([b!, changed]))).toBe('CONFLICT');
    expect(await store.jobs.get(b!.id)).toBeNull();
    expect((await store.jobs.get(a!.id))?.job).toEqual(a);
  });

  it('says NOT_FOUND for a job whose intent is unknown', async () => {
    const { store } = await backend.fresh();
    expect(await codeOf(store.jobs.enqueue([makeJob(makeIntent(1), 'job-x')]))).toBe('NOT_FOUND');
  });

  it('delivers each of 50 jobs exactly once to 5 concurrent claimers', async () => {
    const fresh = await backend.fresh();
    const jobs = await seed(fresh.store, 50);
    await fresh.store.jobs.enqueue(jobs);
    const claimer = async (i: number): Promise<string[]> => {
      const got: string[] = [];
      for (;;) {
        const batch = await fresh.peer(i).jobs.claim('signer-1', 3);
        if (batch.length === 0) return got;
        got.push(...batch.map((j) => j.id));
      }
    };
    const perClaimer = await Promise.all([0, 1, 2, 3, 4].map(claimer));
    const all = perClaimer.flat();
    expect(all).toHaveLength(50);
    expect(new Set(all)).toEqual(new Set(jobs.map((j) => j.id)));
  });

  it('hands a delivered job out again once it is stale, and never a completed one', async () => {
    let now = T0;
    const { store } = await backend.fresh({ now: () => now, redeliverAfterMs: 30_000 });
    const [a, b] = await seed(store, 2);
    await store.jobs.enqueue([a!, b!]);
    expect(await store.jobs.claim('signer-1', 10)).toHaveLength(2);
    await store.jobs.complete(b!.id, makeResult(b!));
    now += 29_999;
    expect(await store.jobs.claim('signer-1', 10)).toEqual([]);
    now += 1;
    const again = await store.jobs.claim('signer-1', 10);
    expect(again.map((j) => [j.id, j.deliveries, j.deliveredAt])).toEqual([[a!.id, 2, now]]);
    expect(await store.jobs.claim('signer-1', 10)).toEqual([]);
  });

  it('records a result once, accepts the same result again, refuses a different one', async () => {
    let now = T0;
    const { store } = await backend.fresh({ now: () => now });
    const [a] = await seed(store, 1);
    await store.jobs.enqueue([a!]);
    await store.jobs.claim('signer-1', 1);
    now += 5;
    const result = makeResult(a!, { outcome: 'refused' });
    expect(await store.jobs.complete(a!.id, result)).toBe(true);
    expect(await store.jobs.complete(a!.id, result)).toBe(false);
    expect(await codeOf(store.jobs.complete(a!.id, makeResult(a!, { at: T0 + 1 })))).toBe('CONFLICT');
    const done = await store.jobs.get(a!.id);
    expect(done?.status).toBe('done');
    expect(done?.result).toEqual(result);
    expect(done?.completedAt).toBe(now);
    expect((await store.jobs.of(intentDigest(a!.intent.intent))).map((j) => j.id)).toEqual([a!.id]);
  });

  it('records a result and its audit entry together: both or neither, and the entry once', async () => {
    const { store, db } = await backend.fresh();
    const [a, b] = await seed(store, 2);
    await store.jobs.enqueue([a!, b!]);
    const entry = (job: SignerJob) => ({
      at: T0,
      actor: 'signer:signer-1',
      event: 'signing.signed',
      subject: intentDigest(job.intent.intent),
      digest: intentDigest(job.intent.intent),
    });
    expect(await store.jobs.complete(a!.id, makeResult(a!), entry(a!))).toBe(true);
    expect(await store.jobs.complete(a!.id, makeResult(a!), entry(a!))).toBe(false);
    const signed = (await store.audit.range(0, 100)).filter((e) => e.event === 'signing.signed');
    expect(signed.map((e) => e.subject)).toEqual([intentDigest(a!.intent.intent)]);
    // An audit log that cannot be appended to (edited) keeps the result out as well.
    await db.db
      .updateTable('audit_log')
      .set({ subject: 'intent-forged' })
      .where('event', '=', 'signing.signed')
      .execute();
    expect(await codeOf(store.jobs.complete(b!.id, makeResult(b!), entry(b!)))).toBe('AUDIT_CHAIN_BROKEN');
    expect((await store.jobs.get(b!.id))?.status).toBe('queued');
  });

  it("refuses another signer's result with NOT_AUTHORIZED and an unknown job with NOT_FOUND", async () => {
    const { store } = await backend.fresh();
    const [a] = await seed(store, 1);
    await store.jobs.enqueue([a!]);
    expect(await codeOf(store.jobs.complete(a!.id, makeResult(a!, { signer: 'signer-2' })))).toBe(
      'NOT_AUTHORIZED',
    );
    const ghost = makeJob(makeIntent(99), 'job-ghost');
    expect(await codeOf(store.jobs.complete('job-ghost', makeResult(ghost)))).toBe('NOT_FOUND');
    expect(await codeOf(store.jobs.complete('job-other', makeResult(a!)))).toBe('INVALID_VALUE');
    expect((await store.jobs.get(a!.id))?.status).toBe('queued');
  });

  it('withdraws an unanswered job: never handed out again, a late result refused, a done job left as it was', async () => {
    let now = T0;
    const { store } = await backend.fresh({ now: () => now, redeliverAfterMs: 30_000 });
    const [a, b] = await seed(store, 2);
    await store.jobs.enqueue([a!, b!]);
    await store.jobs.claim('signer-1', 1);
    const result = makeResult(b!);
    await store.jobs.complete(b!.id, result);
    now += 5;
    await store.jobs.withdraw(a!.id);
    await store.jobs.withdraw(b!.id);
    const withdrawn = await store.jobs.get(a!.id);
    expect([withdrawn?.status, withdrawn?.result, withdrawn?.completedAt]).toEqual(['done', null, now]);
    expect((await store.jobs.get(b!.id))?.result).toEqual(result);
    now += 60_000;
    expect(await store.jobs.claim('signer-1', 10)).toEqual([]);
    expect(await codeOf(store.jobs.complete(a!.id, makeResult(a!)))).toBe('CONFLICT');
  });
});
