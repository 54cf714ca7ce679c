/**
 * A signer dying mid-withdrawal, on a real bcoin regtest node with the real
 * signing pipeline and two real Signers (packages/signer) over their own
 * SQLite stores (the pipeline tests' harness; SQLite coordinator store).
 *
 * signer-1 is stopped at the worst moment: it has taken its job, signed it
 * and committed the signing to its ledger, and dies before its answer reaches
 * the coordinator (the answer is dropped, its store closed, the Signer object
 * abandoned). It is then started again on the same store file. The
 * coordinator hands the unanswered job out again (redeliverAfterMs), the
 * restarted signer answers it from its ledger, and the withdrawal completes:
 * combined, broadcast, mined, confirmed. signer-1's ledger holds one signing
 * of the intent, with the signatures of its first answer (no double signing),
 * and the audit log verifies with the signers' checkpoints.
 *
 * This stops the signer in process; a real SIGKILL of the signer process at
 * random moments is packages/signer/test/crash.test.ts.
 */
import { join } from 'node:path';
import { intentDigest, type SignerResult } from '@custos/core';
import { Signer, SignerStore } from '@custos/signer';
import { afterEach, describe, expect, it } from 'vitest';
import {
  approvedIntent,
  fund,
  makeCoordinator,
  makeOrg,
  seedGovernance,
  startSigners,
  storeSource,
  tempDir,
  useRegtest,
  verifyAudit,
  waitFor,
} from '../pipeline/support/harness.js';
import { useSqliteBackend } from './support/sqlite-backend.js';

const backend = useSqliteBackend();
const regtest = useRegtest();
const REDELIVER_MS = 500;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('a signer dying between its ledger commit and its answer (regtest)', () => {
  it('after the restart the job is handed out again, answered from the ledger, and the withdrawal completes with one signing', async () => {
    const t0 = performance.now();
    const { store } = await backend.fresh({ redeliverAfterMs: REDELIVER_MS });
    const org = makeOrg();
    const node = regtest();
    await seedGovernance(store, org);
    const c = await makeCoordinator(store, org, {
      rpc: node.rpc,
      startHeight: (await node.rpc.getBlockCount()) + 1,
    });
    cleanups.push(() => c.pipeline.stop());
    const tmp = tempDir();
    cleanups.push(() => tmp.remove());
    await fund(node, org, [30_000_000n]);
    const id = await approvedIntent(store, org, 10_000_000n);
    await c.pipeline.onApproved(id);
    expect((await store.intents.get(id))?.status).toBe('signing');
    c.pipeline.start();

    // signer-1 takes its job, signs it (ledger committed) and dies before answering.
    const path = join(tmp.dir, 'signer-1.db');
    const first = new SignerStore(path);
    const identitySecret = org.identities.get('signer-1') as Uint8Array;
    const signer = Signer.init(
      {
        id: 'signer-1',
        identitySecret,
        key: org.world.keys[0] as never,
        pinnedGenesis: org.orgId,
        chains: ['bitcoin:regtest'],
        store: first,
      },
      org.world.org.genesis,
    );
    const abort = new AbortController();
    const feed = await waitFor('signer-1 to get its job', async () => {
      const f = await c.pipeline.jobsFor('signer-1', 200, abort.signal);
      return f.jobs.length > 0 ? f : undefined;
    });
    expect(feed.jobs.map((j) => intentDigest(j.intent.intent))).toEqual([id]);
    const lostAnswer: SignerResult = await signer.handle(
      JSON.parse(JSON.stringify(feed.jobs[0])),
      storeSource(store),
    );
    expect(lostAnswer.receipt.outcome).toBe('signed');
    expect(first.ledgerCount()).toBe(1);
    first.close();
    const diedAt = performance.now();

    // signer-2 answers normally; the intent cannot be signed without signer-1.
    const two = startSigners(tmp.dir, org, c.pipeline, store, { only: ['signer-2'] });
    cleanups.push(() => two.stop());
    await waitFor('signer-2 to answer', async () => (two.runs[0]?.results.length ? true : undefined));
    expect((await store.intents.get(id))?.status).toBe('signing');

    // signer-1 starts again on the same store file.
    const one = startSigners(tmp.dir, org, c.pipeline, store, { only: ['signer-1'] });
    cleanups.push(() => one.stop());
    await waitFor('broadcast', async () =>
      (await store.intents.get(id))?.status === 'broadcast' ? true : undefined,
    );
    const broadcastAfterMs = Math.round(performance.now() - diedAt);
    await node.mine(1);
    await waitFor('confirmed', async () =>
      (await store.intents.get(id))?.status === 'confirmed' ? true : undefined,
    );
    await one.stop();
    await two.stop();
    await c.pipeline.stop();

    const again = one.runs[0]?.results.filter((r) => r.receipt.intent === id) ?? [];
    expect(again.length).toBeGreaterThanOrEqual(1);
    for (const r of again) {
      expect(r.receipt.outcome).toBe('signed');
      expect(r.receipt.txid).toBe(lostAnswer.receipt.txid);
    }
    const ledger = new SignerStore(path);
    try {
      expect(ledger.ledgerCount()).toBe(1);
      expect(ledger.ledgerFor(id)?.txid).toBe(lostAnswer.receipt.txid);
    } finally {
      ledger.close();
    }
    expect((await store.intents.get(id))?.txid).toBe(lostAnswer.receipt.txid);
    expect((await verifyAudit(store, org)).ok).toBe(true);
    console.log(
      `RESILIENCE signer-restart ${JSON.stringify({
        redeliverAfterMs: REDELIVER_MS,
        answersAfterRestart: again.length,
        ledgerRows: 1,
        broadcastAfterDeathMs: broadcastAfterMs,
        testMs: Math.round(performance.now() - t0),
      })}`,
    );
  }, 90_000);
});
