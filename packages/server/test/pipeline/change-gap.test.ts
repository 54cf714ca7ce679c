/**
 * Issue 8, item 4, on the coordinator's side: its builder (chain.ts) never
 * puts change past the gap limit beyond the last change index seen paid, so
 * honest withdrawals never meet a signer's CHANGE_BEYOND_GAP, even when many
 * builds are never signed (refused, expired, built again, or built by
 * another coordinator on the same database) and the change counter runs
 * ahead. On a real regtest node, with the two real signers of the pipeline
 * tests.
 */
import { CHANGE_GAP_LIMIT, changeIndexLimit, deriveAddress, verifyPsbt } from '@custos/bitcoin';
import type { Digest, GovernanceState } from '@custos/core';
import { COLD_STORAGE } from '@custos/test-support/world';
import { describe, expect, it } from 'vitest';
import { ChainWatcher } from '../../src/chain.js';
import type { Store } from '../../src/db/repository.js';
import { useBackends } from '../db/backends.js';
import {
  approvedIntent,
  fund,
  makeCoordinator,
  makeOrg,
  type Org,
  seedGovernance,
  startSigners,
  storeGovernance,
  tempDir,
  useCleanups,
  useRegtest,
  waitFor,
} from './support/harness.js';

const { backends } = useBackends();
const regtest = useRegtest();
const cleanups = useCleanups();
const sqlite = backends.filter((b) => b.name === 'sqlite');

const CAPS = { maxFee: 100_000n, maxFeeRate: 100n };

/** A coordinator's builder on `store` (another coordinator, when the pipeline runs on it too). */
async function watcher(store: Store, org: Org): Promise<{ w: ChainWatcher; state: GovernanceState }> {
  const node = regtest();
  const w = new ChainWatcher(store, {
    rpc: node.rpc,
    addressGap: 20,
    startHeight: 1,
    maxBlocksPerSync: 500,
  });
  const state = await storeGovernance(store, org.orgId).current();
  await w.sync(state);
  return { w, state };
}

/** Builds for an intent that is never signed, then lets its coins go: its change index is spent for nothing. */
async function burn(w: ChainWatcher, intent: string): Promise<{ index: number; psbt: Uint8Array }> {
  const built = await w.build({
    intent,
    wallet: 'btc-main',
    to: COLD_STORAGE,
    amount: 10_000n,
    feeRate: 2n,
    maxFee: null,
  });
  if (!built.ok) throw new Error(`${built.code}: ${built.message}`);
  await w.release(new Set([intent]));
  expect(built.value.change).not.toBeNull();
  return { index: built.value.change!.index, psbt: built.value.psbt };
}

describe.each(sqlite)('change indexes the coordinator picks, on $name', (backend) => {
  it('builds that are never signed do not walk change past the gap: at most 20 past the last change seen paid', async () => {
    const { store } = await backend.fresh();
    const org = makeOrg();
    const node = regtest();
    await seedGovernance(store, org);
    await fund(node, org, [5_000_000n]);
    const { w, state } = await watcher(store, org);
    const intent = { chain: 'bitcoin:regtest', to: COLD_STORAGE, amount: '10000' };

    const first: number[] = [];
    for (let i = 0; i < 3 * CHANGE_GAP_LIMIT; i++) {
      const b = await burn(w, `never-signed-${i}`);
      first.push(b.index);
      // A signer that never signed change (-1) signs every one of them.
      expect(verifyPsbt(b.psbt, intent, org.world.descriptor, CAPS, changeIndexLimit(-1)).ok).toBe(true);
    }
    expect(Math.max(...first)).toBe(CHANGE_GAP_LIMIT - 1);
    expect(first.slice(0, CHANGE_GAP_LIMIT)).toEqual([...Array(CHANGE_GAP_LIMIT).keys()]);

    // Change index 7 is seen paid on chain: the window moves to 8..27.
    await node.fund(deriveAddress(org.world.descriptor, 1, 7).script, 1_000_000n);
    await node.mine(1);
    await w.sync(state);
    const after: number[] = [];
    for (let i = 0; i < 2 * CHANGE_GAP_LIMIT; i++) after.push((await burn(w, `later-${i}`)).index);
    expect(Math.min(...after)).toBe(8);
    expect(Math.max(...after)).toBe(7 + CHANGE_GAP_LIMIT);
  });

  it('an honest sequence of 30 withdrawals, with 25 builds thrown away before every 5, is all signed by both signers', async () => {
    const { store } = await backend.fresh();
    const org = makeOrg();
    const node = regtest();
    await seedGovernance(store, org);
    const c = await makeCoordinator(store, org, { rpc: node.rpc, startHeight: 1 });
    cleanups.push(() => c.pipeline.stop());
    const tmp = tempDir();
    cleanups.push(() => tmp.remove());
    await fund(
      node,
      org,
      Array.from({ length: 6 }, () => 20_000_000n),
    );
    // Another coordinator on the same database, whose builds are never signed.
    const { w: other } = await watcher(store, org);
    const signers = startSigners(tmp.dir, org, c.pipeline, store);
    cleanups.push(() => signers.stop());

    for (let round = 0; round < 6; round++) {
      await other.sync(await storeGovernance(store, org.orgId).current());
      // More than the gap: a counter that only counted up would put the next change out of every signer's reach.
      for (let i = 0; i < CHANGE_GAP_LIMIT + 5; i++) await burn(other, `thrown-away-${round}-${i}`);
      const ids: Digest[] = [];
      for (let i = 0; i < 5; i++) ids.push(await approvedIntent(store, org, 1_000_000n));
      for (const id of ids) await c.pipeline.onApproved(id);
      const done = await waitFor(
        `round ${round} broadcast`,
        async () => {
          const recs = await Promise.all(ids.map((id) => store.intents.get(id)));
          if (recs.some((r) => r?.status === 'refused')) return recs;
          return recs.every((r) => r?.status === 'broadcast') ? recs : undefined;
        },
        60_000,
      );
      expect(done.map((r) => [r?.status, r?.statusCode])).toEqual(ids.map(() => ['broadcast', null]));
      for (const r of done) {
        const jobs = await store.jobs.of(r!.id);
        for (const j of jobs) expect(j.result?.receipt).toMatchObject({ outcome: 'signed', code: null });
      }
      await node.mine(1);
      await c.pipeline.runOnce();
    }
    const results = signers.runs.flatMap((r) => r.results);
    expect(results.filter((r) => r.receipt.code === 'CHANGE_BEYOND_GAP')).toEqual([]);
    expect(results.filter((r) => r.receipt.outcome === 'signed')).toHaveLength(2 * 30);
  }, 240_000);
});
