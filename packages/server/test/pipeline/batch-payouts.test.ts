/**
 * Batch payouts end to end (issue 13), on a real regtest node with two real
 * signers over their own ledgers, on SQLite and PostgreSQL: one approved
 * intent paying 100 customers is built into one transaction (every output
 * plus change, the fee under the caps), signed by both signers, combined,
 * broadcast and mined; the mined transaction pays each output exactly.
 */
import { parseTransaction, scriptToAddress } from '@custos/bitcoin';
import { type Amount, type Digest, intentDigest, type LedgerEntry } from '@custos/core';
import { withCustomers } from '@custos/test-support/org';
import { customerAddress } from '@custos/test-support/psbt-fixtures';
import { describe, expect, it } from 'vitest';
import { useBackends } from '../db/backends.js';
import {
  fund,
  makeCoordinator,
  makeOrg,
  seedGovernance,
  startSigners,
  tempDir,
  useCleanups,
  useRegtest,
  waitFor,
} from './support/harness.js';

const { backends } = useBackends();
const regtest = useRegtest();
const cleanups = useCleanups();

describe.each(backends)('a batch of 100 payouts on $name', (backend) => {
  it('is built into one transaction, signed by two real signers, broadcast and mined, each output exact', async () => {
    const { store } = await backend.fresh();
    const org = makeOrg(withCustomers);
    const node = regtest();
    await seedGovernance(store, org);
    const c = await makeCoordinator(store, org, {
      rpc: node.rpc,
      startHeight: (await node.rpc.getBlockCount()) + 1,
    });
    cleanups.push(() => c.pipeline.stop());
    await fund(node, org, [30_000_000n]);

    const outputs = Array.from({ length: 100 }, (_, k) => ({
      to: customerAddress(`custos pipeline batch customer ${k}`),
      amount: (10_000 + 137 * k).toString() as Amount,
    }));
    const total = outputs.reduce((s, o) => s + BigInt(o.amount), 0n);
    org.world.clock.now = Date.now();
    const signed = org.world.intent(total, { to: outputs[0]!.to, outputs });
    await store.intents.insert(signed);
    const id = intentDigest(signed.intent) as Digest;
    for (const a of org.world.approve(signed)) await store.approvals.insert(a);
    expect(await store.intents.updateStatus(id, { from: 'pending', to: 'approved' })).toBe(true);
    // The coordinator's preview ledger reads the batch's outputs back with its other columns.
    const [entry] = (await store.intents.ledgerEntriesOf([id], () => 0)) as LedgerEntry[];
    expect(entry?.outputs).toEqual(outputs);

    await c.pipeline.onApproved(id);
    expect(await store.intents.get(id)).toMatchObject({ status: 'signing', statusCode: null });

    const tmp = tempDir();
    cleanups.push(() => tmp.remove());
    const signers = startSigners(tmp.dir, org, c.pipeline, store, {});
    cleanups.push(() => signers.stop());
    const broadcast = await waitFor('broadcast', async () => {
      const rec = await store.intents.get(id);
      return rec?.status === 'broadcast' || rec?.status === 'refused' ? rec : undefined;
    });
    await signers.stop();
    expect(broadcast).toMatchObject({ status: 'broadcast' });
    expect(
      signers.runs.flatMap((r) => r.results.map((x) => [x.receipt.signer, x.receipt.outcome])).sort(),
    ).toEqual([
      ['signer-1', 'signed'],
      ['signer-2', 'signed'],
    ]);
    const txid = broadcast.txid as string;
    expect(await node.rpc.getRawMempool()).toEqual([txid]);
    const raw = await node.rpc.getRawTransaction(txid);
    await node.mine(1);
    await c.pipeline.runOnce();
    expect(await store.intents.get(id)).toMatchObject({ status: 'confirmed', txid });

    // The mined transaction: the 100 outputs exactly (as a multiset: BIP 69 sorted them) plus change.
    const { tx } = parseTransaction(raw);
    const paid: string[] = [];
    let change = 0;
    for (let j = 0; j < tx.outputsLength; j++) {
      const out = tx.getOutput(j);
      const address = scriptToAddress(out.script as Uint8Array, 'regtest');
      if (outputs.some((o) => o.to === address)) paid.push(`${address}:${out.amount}`);
      else change++;
    }
    expect(paid.sort()).toEqual(outputs.map((o) => `${o.to}:${o.amount}`).sort());
    expect(change).toBe(1);
    const [wallet] = await c.pipeline.wallets();
    const fee = 30_000_000n - total - BigInt(wallet?.balance ?? '0');
    expect(fee).toBeGreaterThan(0n);
    expect(fee).toBeLessThanOrEqual(100_000n); // the fixture policy's fee cap
  });
});
