/**
 * THREATS 32: kill a signer at any moment during signing; on restart there is
 * no double signing and no lost ledger entry.
 *
 * The real signer process runs against a coordinator over HTTP with several
 * jobs queued at once. It is killed with SIGKILL at random moments, restarted,
 * and handed again every job it had not answered. Mixed in are attacks on the
 * restart: the same intent with another transaction (must be DUPLICATE_INTENT
 * if the first was signed) and the same job again (must get the same answer).
 * At the end every signature that ever left the process has its ledger row,
 * and no intent was signed for two transactions.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { psbtToBase64 } from '@custos/bitcoin';
import type { SignerJob, SignerResult } from '@custos/core';
import { type FakeCoordinator, startFakeCoordinator } from '@custos/test-support/fake-coordinator';
import {
  initKeystore,
  type RunningSigner,
  runSigner,
  waitForOutput,
  writeConfig,
} from '@custos/test-support/signer-process';
import { makeWorld } from '@custos/test-support/world';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { SignerStore } from '../src/store.js';

const SIGNINGS = 220;
const dir = mkdtempSync(join(tmpdir(), 'custos-signer-crash-'));
let coordinator: FakeCoordinator | undefined;
let current: RunningSigner | undefined;

afterAll(async () => {
  current?.child.kill('SIGKILL');
  await current?.exited;
  await coordinator?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('THREATS 32: a signer killed at random points while signing', () => {
  it(`signs ${SIGNINGS} withdrawals through repeated SIGKILLs with no double signing and no lost ledger entry`, async () => {
    const keystore = await initKeystore(dir, 'signer-1');
    // A generous daily limit: this test is about crashes, not limits.
    const world = makeWorld({
      firstKey: keystore.descriptorKey,
      policy: (p) => ({ ...p, limits: p.limits.map((l) => ({ ...l, max: '10000000000' as never })) }),
    });
    world.clock.now = Date.now();
    coordinator = await startFakeCoordinator(new Map([['signer-1', keystore.identityKey]]));
    coordinator.setGovernance(world.governance);
    const config = writeConfig(dir, 'signer-1', coordinator.url, world.org.orgId);

    const withdrawals = Array.from({ length: SIGNINGS }, (_, i) =>
      world.withdrawal(100_000n, { id: `w-${i}` }),
    );
    const jobs = new Map<string, SignerJob>(withdrawals.map((w) => [w.job.id, w.job]));
    // After a crash, an attacker replays some intents with a different transaction.
    const attacks = new Map<string, SignerJob>();
    for (const [i, w] of withdrawals.entries()) {
      if (i % 10 !== 3) continue;
      const other = world.build(w.intent, { utxos: world.utxos([300_000n]) });
      attacks.set(`dup-${i}`, { ...w.job, id: `dup-${i}`, psbt: psbtToBase64(other.psbt) });
    }
    const answered = new Map<string, SignerResult>();
    // Kill after a random number of new answers (1-12), then a random 0-30 ms more, so kills land
    // mid-signing however fast the signer is; a bounded wait if answers stop coming.
    const afterAnswers = fc.sample(fc.integer({ min: 1, max: 12 }), { numRuns: 200, seed: 32 });
    const extraMs = fc.sample(fc.integer({ min: 0, max: 30 }), { numRuns: 200, seed: 33 });
    let kills = 0;

    const pending = () => [...jobs.keys(), ...attacks.keys()].filter((id) => !answered.has(id));
    for (let round = 0; round < 200 && pending().length > 0; round++) {
      current = runSigner(config);
      await waitForOutput(current, 'signer.started');
      for (const id of pending()) coordinator.push(jobs.get(id) ?? attacks.get(id));
      const target = coordinator.results.length + afterAnswers[round % afterAnswers.length]!;
      const waitUntil = Date.now() + 5_000;
      while (coordinator.results.length < target && pending().length > 0 && Date.now() < waitUntil) {
        await new Promise((r) => setTimeout(r, 2));
        for (const r of coordinator.results) answered.set(r.receipt.job, r);
      }
      await new Promise((r) => setTimeout(r, extraMs[round % extraMs.length]!));
      if (pending().length > 0) {
        current.child.kill('SIGKILL');
        kills++;
      } else {
        current.child.kill('SIGTERM');
      }
      await current.exited;
      // Results that reached the coordinator before the kill.
      for (const r of coordinator.results) answered.set(r.receipt.job, r);
      // Jobs still queued in the coordinator are handed out again next round.
      coordinator.drain();
    }
    expect(pending()).toEqual([]);
    // About 35 kills with these seeds; at least 20, so a faster signer cannot make it a test of nothing.
    expect(kills).toBeGreaterThanOrEqual(20);

    const store = new SignerStore(join(dir, 'signer-1.db'));
    try {
      const ledger = new Map(store.allLedger().map((row) => [row.intent, row]));
      const signedByIntent = new Map<string, Set<string>>();
      for (const r of coordinator.results) {
        if (r.receipt.outcome !== 'signed') continue;
        const intent = r.receipt.intent!;
        // No lost ledger entry: every signature that left the process is in the ledger, for that transaction.
        expect(ledger.get(intent)?.txid).toBe(r.receipt.txid);
        const txids = signedByIntent.get(intent) ?? new Set<string>();
        txids.add(r.receipt.txid!);
        signedByIntent.set(intent, txids);
      }
      // No intent ever signed for two transactions.
      for (const txids of signedByIntent.values()) expect(txids.size).toBe(1);
      // Every withdrawal ended signed exactly once in the ledger.
      expect(ledger.size).toBe(SIGNINGS);
      for (const w of withdrawals) expect(ledger.get(w.digest)?.txid).toBe(w.built.txid);
      // Every replay with another transaction was refused as a duplicate, or was refused before.
      for (const id of attacks.keys()) {
        const r = answered.get(id)!;
        expect(r.receipt.outcome === 'refused' ? r.receipt.code : 'signed').toBe('DUPLICATE_INTENT');
      }
    } finally {
      store.close();
    }
  }, 600_000);
});
