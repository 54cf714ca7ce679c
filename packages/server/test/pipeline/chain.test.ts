/**
 * The coordinator's wallet view (chain.ts) on a real regtest node, on SQLite
 * and PostgreSQL: addresses are watched ahead and further as they are used,
 * a restart resumes from the saved state, the next receive address moves on,
 * and two coordinators racing to reserve coins (held at the worst moment:
 * both have read the reservations, neither has written) end with disjoint
 * coins, the loser selecting again: the reservation rows' primary key decides.
 */
import { addressToScript, deriveAddress } from '@custos/bitcoin';
import { describe, expect, it } from 'vitest';
import { ChainWatcher } from '../../src/chain.js';
import { ChainStore } from '../../src/db/chain-store.js';
import type { CoordinatorDb } from '../../src/db/connect.js';
import { Store } from '../../src/db/repository.js';
import { useBackends } from '../db/backends.js';
import { makeOrg, seedGovernance, storeGovernance, useRegtest } from './support/harness.js';

const { backends } = useBackends();
const regtest = useRegtest();

/** Holds its first `parties` passers until all have arrived, then lets everyone through. */
class Barrier {
  readonly #held: (() => void)[] = [];
  #parties = 0;

  arm(parties: number): void {
    this.#parties = parties;
  }

  pass(): Promise<void> {
    if (this.#parties === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#held.push(resolve);
      if (this.#held.length >= this.#parties) {
        this.#parties = 0;
        for (const r of this.#held.splice(0)) r();
      }
    });
  }
}

/**
 * Real reservation rows whose reads pass a barrier: armed for two, both
 * coordinators have read the same reservations when they insert, so both
 * select the same coin and exactly one insert can win. Only the timing is
 * arranged; every read and write goes to the database.
 */
class BarrierChainStore extends ChainStore {
  /** Reservations refused because another intent holds a coin. */
  lost = 0;

  constructor(
    db: CoordinatorDb,
    readonly barrier: Barrier,
  ) {
    super(db);
  }

  override async reservations(): Promise<Map<string, string>> {
    const value = await super.reservations();
    await this.barrier.pass();
    return value;
  }

  override async reserve(intent: string, outpoints: readonly string[]): Promise<boolean> {
    const won = await super.reserve(intent, outpoints);
    if (!won) this.lost++;
    return won;
  }
}

class BarrierStore extends Store {
  override readonly chain: BarrierChainStore;

  constructor(db: CoordinatorDb, barrier: Barrier) {
    super(db);
    this.chain = new BarrierChainStore(db, barrier);
  }
}

describe.each(backends)('the wallet view on $name', (backend) => {
  it('watches addresses ahead, extends the watch when one is used (even within one block), and resumes after a restart', async () => {
    const { store } = await backend.fresh();
    const org = makeOrg();
    const node = regtest();
    await seedGovernance(store, org);
    const state = await storeGovernance(store, org.orgId).current();
    const startHeight = (await node.rpc.getBlockCount()) + 1;
    const opts = { rpc: node.rpc, addressGap: 5, startHeight, maxBlocksPerSync: 500 };
    const watcher = new ChainWatcher(store, opts);
    const d = org.world.descriptor;

    // Receive 4 is the last watched (gap 5); 9 is watched only once 4 is seen, 14 once 9 is; all in
    // one block, paid in the worst order (block order follows it or not: either way all are found).
    for (const index of [14, 9, 4]) await node.fund(deriveAddress(d, 0, index).script, 1_000_000n);
    // Receive 40 is far past the gap: not found (a wallet must not skip that far).
    await node.fund(deriveAddress(d, 0, 40).script, 1_000_000n);
    // Change 3 is watched ahead too.
    await node.fund(deriveAddress(d, 1, 3).script, 2_000_000n);
    await node.mine(1);
    const synced = await watcher.sync(state);
    expect(synced).toMatchObject({ caughtUp: true });
    const [summary] = await watcher.summaries(state);
    expect(summary).toEqual({
      id: 'btc-main',
      chain: 'bitcoin:regtest',
      balance: '5000000',
      utxos: 4,
      receiveAddress: deriveAddress(d, 0, 15).address,
      receiveIndex: 15,
    });

    // A restart: a new watcher over the same store resumes from the saved state, reading no block again.
    const saved = await store.chain.loadTracker();
    expect(saved?.tip).toEqual(synced.tip);
    expect(saved?.utxos).toHaveLength(4);
    const restarted = new ChainWatcher(store, opts);
    expect(await restarted.sync(state)).toMatchObject({ caughtUp: true, applied: 0, disconnected: 0 });
    expect(await restarted.summaries(state)).toEqual([summary]);
    await node.mine(1);
    expect(await restarted.sync(state)).toMatchObject({ caughtUp: true, applied: 1 });
  });

  it('an internal transfer to a receive index past the gap (issue 13) is found: watchReceive records it for every coordinator on the database', async () => {
    const { store } = await backend.fresh();
    const org = makeOrg();
    const node = regtest();
    await seedGovernance(store, org);
    const state = await storeGovernance(store, org.orgId).current();
    const startHeight = (await node.rpc.getBlockCount()) + 1;
    const opts = { rpc: node.rpc, addressGap: 5, startHeight, maxBlocksPerSync: 500 };
    const d = org.world.descriptor;
    const builder = new ChainWatcher(store, opts);
    await builder.sync(state);
    // As the build does before an internal transfer to receive index 40 (gap 5: never watched otherwise).
    await builder.watchReceive('btc-main', 40);
    // Another coordinator on the same database, which never built it, reads the block paying index 40.
    const other = new ChainWatcher(store, opts);
    await node.fund(deriveAddress(d, 0, 40).script, 1_500_000n);
    await node.mine(1);
    await other.sync(state);
    expect((await other.summaries(state))[0]).toMatchObject({
      balance: '1500000',
      utxos: 1,
      receiveIndex: 41,
    });
    await builder.sync(state);
    expect((await builder.summaries(state))[0]).toMatchObject({ balance: '1500000', utxos: 1 });
  });

  it('saves the tracker as rows block by block; a coordinator that loads the rows another saved builds on regtest, and a save at the tip of the rows leaves them alone', async () => {
    const { store } = await backend.fresh();
    const org = makeOrg();
    const node = regtest();
    await seedGovernance(store, org);
    const state = await storeGovernance(store, org.orgId).current();
    const startHeight = (await node.rpc.getBlockCount()) + 1;
    const opts = { rpc: node.rpc, addressGap: 5, startHeight, maxBlocksPerSync: 500 };
    const d = org.world.descriptor;
    const first = new ChainWatcher(store, opts);
    await node.fund(deriveAddress(d, 0, 0).script, 3_000_000n);
    await node.mine(1);
    await first.sync(state);
    // Three more blocks, each saved on its own (only its rows written).
    for (const index of [1, 2, 3]) {
      await node.fund(deriveAddress(d, 0, index).script, 1_000_000n);
      await node.mine(1);
      await first.sync(state);
    }
    const rows = await store.chain.loadTracker();
    expect(rows?.utxos).toHaveLength(4);
    expect(rows?.undo.map((b) => b.height)).toEqual([0, 1, 2, 3].map((i) => startHeight + i));
    expect(rows?.tip?.height).toBe(startHeight + 3);

    // Another coordinator (or this one restarted) loads those rows: the same coins, no block read again,
    // and it builds on regtest (its wallets keep their chain id).
    const second = new ChainWatcher(store, opts);
    expect(await second.sync(state)).toMatchObject({ caughtUp: true, applied: 0 });
    expect(await second.summaries(state)).toEqual(await first.summaries(state));
    const built = await second.build({
      intent: 'c'.repeat(64),
      wallet: 'btc-main',
      to: 'bcrt1qmrst4npf9485jefh7rs4gs780w7hutgefcjk4r',
      amount: 2_500_000n,
      feeRate: 2n,
      maxFee: null,
    });
    expect(built.ok && built.value.inputs).toHaveLength(1);

    // Both follow the next block: the second saves first, the first finds the rows at its tip.
    await node.fund(deriveAddress(d, 0, 4).script, 1_000_000n);
    await node.mine(1);
    await second.sync(state);
    await first.sync(state);
    const after = await store.chain.loadTracker();
    expect(after?.utxos).toHaveLength(5);
    expect(after?.tip?.height).toBe(startHeight + 4);
    // A third coordinator starting now loads them at the tip and writes nothing over them.
    const third = new ChainWatcher(store, opts);
    expect(await third.sync(state)).toMatchObject({ applied: 0 });
    expect((await store.chain.loadTracker())?.utxos).toHaveLength(5);
  });

  it('two coordinators reserving at the same moment get disjoint coins: one insert wins the row of the coin, the other selects again', async () => {
    const fresh = await backend.fresh();
    const org = makeOrg();
    const node = regtest();
    await seedGovernance(fresh.store, org);
    const state = await storeGovernance(fresh.store, org.orgId).current();
    const startHeight = (await node.rpc.getBlockCount()) + 1;
    const barrier = new Barrier();
    // Two coordinators: on PostgreSQL two connection pools; on SQLite two Stores on one connection
    // (a second connection in one process would block the event loop, see backends.ts).
    const dbs = backend.name === 'postgres' ? [fresh.db, await fresh.reopen()] : [fresh.db, fresh.db];
    const stores = dbs.map((db) => new BarrierStore(db, barrier));
    const watchers = stores.map(
      (s) => new ChainWatcher(s, { rpc: node.rpc, addressGap: 5, startHeight, maxBlocksPerSync: 500 }),
    );
    for (const index of [0, 1])
      await node.fund(deriveAddress(org.world.descriptor, 0, index).script, 5_000_000n);
    await node.mine(1);
    await Promise.all(watchers.map((w) => w.sync(state)));

    barrier.arm(2);
    const to = 'bcrt1qmrst4npf9485jefh7rs4gs780w7hutgefcjk4r';
    expect(addressToScript(to, 'regtest')).toBeDefined();
    const order = (intent: string) => ({
      intent,
      wallet: 'btc-main',
      to,
      amount: 1_000_000n,
      feeRate: 2n,
      maxFee: null,
    });
    const [a, b] = await Promise.all([
      watchers[0]!.build(order('a'.repeat(64))),
      watchers[1]!.build(order('b'.repeat(64))),
    ]);
    if (!a.ok || !b.ok) throw new Error('build refused');
    const ia = a.value.inputs.map((u) => `${u.txid}:${u.vout}`);
    const ib = b.value.inputs.map((u) => `${u.txid}:${u.vout}`);
    expect(ia).toHaveLength(1);
    expect(ib).toHaveLength(1);
    expect(ia[0]).not.toBe(ib[0]);
    expect(stores[0]!.chain.lost + stores[1]!.chain.lost).toBe(1);
    expect(await watchers[0]!.reservedFor('a'.repeat(64))).toEqual(ia);
    expect(await watchers[0]!.reservedFor('b'.repeat(64))).toEqual(ib);

    // A third build finds nothing left: both coins are promised.
    const c = await watchers[0]!.build(order('c'.repeat(64)));
    expect(c).toMatchObject({ ok: false, code: 'INSUFFICIENT_FUNDS' });
    // Releasing one intent's coins makes them selectable again.
    await watchers[1]!.release(new Set(['a'.repeat(64)]));
    const d = await watchers[0]!.build(order('c'.repeat(64)));
    expect(d.ok && d.value.inputs.map((u) => `${u.txid}:${u.vout}`)).toEqual(ia);
  });
});
