/**
 * Internal transfers end to end (issue 13), on a real regtest node with two
 * real signers over their own ledgers and governance, on SQLite and
 * PostgreSQL. The fixture wallet btc-main plays cold storage; a second
 * governed wallet, btc-hot (2-of-3 over signer-1's and signer-2's keys and a
 * third), is refilled from it under a `wallets` rule with two approvals.
 *
 * - The refill goes through the HTTP API (the requester's intent names
 *   toWallet btc-hot at receive index 0, `to` derived from its descriptor),
 *   is approved, built, signed by both signers, broadcast and mined, and the
 *   coins show up in btc-hot's balance from the coordinator's own scan.
 * - THREATS 6 and 17 for internal transfers: an intent signed with the claim
 *   "toWallet btc-hot" but the attacker's address in `to` is refused at the
 *   door (DESTINATION_NOT_WALLET, `intent.refused` audited, nothing stored);
 *   put past the coordinator (a hostile coordinator stores it approved,
 *   builds the PSBT paying the attacker and queues the jobs), each signer
 *   derives the address itself and refuses DESTINATION_NOT_WALLET: nothing
 *   signed, the intent refused, `signing.refused` audited.
 * - The derived address without the claim is just an address: the wallets
 *   rule does not match it (DESTINATION_NOT_ALLOWED).
 */
import { descriptorKeyOf, formatDescriptor, walletFromKeys, walletReceiveAddress } from '@custos/bitcoin';
import {
  type Address,
  applyGovernance,
  type BitcoinWallet,
  type Digest,
  type GovernanceState,
  intentDigest,
  type Millis,
  type PolicyRule,
} from '@custos/core';
import { ASSET, propose, unwrap, WALLET_ID } from '@custos/test-support/org';
import { ATTACKER, otherSigners, signers as seedSigners } from '@custos/test-support/psbt-fixtures';
import { describe, expect, it } from 'vitest';
import { createCoordinator } from '../../src/app.js';
import { Client } from '../api/support/client.js';
import { outcome, TEST_LIMITS } from '../api/support/harness.js';
import { useBackends } from '../db/backends.js';
import {
  auditEvents,
  fund,
  makeCoordinator,
  makeOrg,
  type Org,
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

const HOT_ID = 'btc-hot';
const HOT: BitcoinWallet = {
  id: HOT_ID,
  label: 'Hot BTC (regtest)',
  chain: 'bitcoin:regtest',
  assets: [ASSET],
  kind: 'bitcoin-wsh-sortedmulti',
  descriptor: formatDescriptor(
    walletFromKeys(
      2,
      [seedSigners[0]!, seedSigners[1]!, otherSigners[0]!].map((k) => descriptorKeyOf(k, 'regtest')),
      'regtest',
    ),
    0,
  ),
};
const REFILL: PolicyRule = {
  id: 'refill',
  match: {
    destination: { kind: 'wallets', wallets: [HOT_ID] },
    wallets: [WALLET_ID],
    assets: [ASSET],
    requesterRoles: ['requester'],
  },
  action: 'allow',
  approvals: [{ m: 2, role: 'approver' }],
};
const REFILL_SATS = 2_000_000n;

function hotAddress(index: number): Address {
  return unwrap(walletReceiveAddress(HOT, index)) as Address;
}

/** The fixture organization with the refill rule first and btc-hot added by governance (no delay). */
function refillOrg(): Org {
  const org = makeOrg((p) => ({ ...p, rules: [REFILL, ...p.rules] }));
  const admins = org.world.org.admins.slice(0, 2);
  let state: GovernanceState = org.world.org.state;
  for (const e of org.entries.slice(1)) state = unwrap(applyGovernance(state, e, Date.now()));
  const add = propose(state, 'wallet.add', HOT, admins);
  return { ...org, entries: [...org.entries, add] };
}

const SETTLED = ['broadcast', 'confirmed', 'refused'];

describe.each(backends)('internal transfers on $name', (backend) => {
  it('a cold → hot refill is approved, signed by both signers, mined, and shows up in the hot wallet', async () => {
    const { store } = await backend.fresh();
    const org = refillOrg();
    const node = regtest();
    await seedGovernance(store, org);
    const c = await makeCoordinator(store, org, {
      rpc: node.rpc,
      startHeight: (await node.rpc.getBlockCount()) + 1,
    });
    cleanups.push(() => c.pipeline.stop());
    const http = await createCoordinator({
      store,
      pipeline: c.pipeline,
      notifier: c.notifier,
      governance: c.governance,
      clock: Date.now,
      limits: TEST_LIMITS,
    });
    cleanups.push(() => http.close());
    await fund(node, org, [10_000_000n]);

    const requester = org.world.org.requester;
    const client = new Client(
      { app: http.app },
      { keyId: `member:${requester.id}/${requester.device.id}`, secretKey: requester.device.secretKey },
      () => Date.now() as Millis,
    );
    org.world.clock.now = Date.now();
    const signed = org.world.intent(REFILL_SATS, {
      to: hotAddress(0),
      toWallet: { wallet: HOT_ID, index: 0 },
    });
    const posted = await client.post('/v1/intents', signed);
    expect(posted.status, JSON.stringify(posted.body)).toBe(201);
    expect(posted.body).toMatchObject({
      status: 'pending',
      decision: { kind: 'pending', missing: [{ rule: 'refill', need: 2 }] },
    });
    const id = intentDigest(signed.intent) as Digest;
    for (const [n, a] of org.world.approve(signed).entries()) {
      const approver = org.world.org.approvers[n]!;
      const as = new Client(
        { app: http.app },
        { keyId: `member:${approver.id}/${approver.device.id}`, secretKey: approver.device.secretKey },
        () => Date.now() as Millis,
      );
      const res = await as.post(`/v1/intents/${id}/approvals`, a);
      expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
    }

    const tmp = tempDir();
    cleanups.push(() => tmp.remove());
    const signers = startSigners(tmp.dir, org, c.pipeline, store);
    cleanups.push(() => signers.stop());
    const done = await waitFor(
      'the refill broadcast',
      async () => {
        const r = await store.intents.get(id);
        return r !== null && SETTLED.includes(r.status) ? r : undefined;
      },
      60_000,
    );
    await signers.stop();
    expect(done).toMatchObject({ status: 'broadcast' });
    expect(signers.runs.map((r) => r.results.map((x) => x.receipt.outcome))).toEqual([
      ['signed'],
      ['signed'],
    ]);
    await node.mine(1);
    await c.pipeline.runOnce();
    expect(await store.intents.get(id)).toMatchObject({ status: 'confirmed' });

    // The coordinator's own scan finds the coins at btc-hot's receive index 0.
    const hot = (await c.pipeline.wallets()).find((w) => w.id === HOT_ID);
    expect(hot).toMatchObject({ balance: REFILL_SATS.toString(), utxos: 1, receiveIndex: 1 });
    expect(hot?.receiveAddress).toBe(hotAddress(1));
    const events = (await auditEvents(store)).filter((e) => e.subject === id).map((e) => e.event);
    expect(events).toEqual(
      expect.arrayContaining(['intent.created', 'intent.approved', 'transaction.broadcast']),
    );
  });

  it("THREATS 6: toWallet btc-hot with the attacker's to is refused at the door, and past a hostile coordinator by each signer: nothing signed, audited", async () => {
    const { store } = await backend.fresh();
    const org = refillOrg();
    const node = regtest();
    await seedGovernance(store, org);
    const c = await makeCoordinator(store, org, {
      rpc: node.rpc,
      startHeight: (await node.rpc.getBlockCount()) + 1,
    });
    cleanups.push(() => c.pipeline.stop());
    const http = await createCoordinator({
      store,
      pipeline: c.pipeline,
      notifier: c.notifier,
      governance: c.governance,
      clock: Date.now,
      limits: TEST_LIMITS,
    });
    cleanups.push(() => http.close());
    await fund(node, org, [10_000_000n]);
    const requester = org.world.org.requester;
    const client = new Client(
      { app: http.app },
      { keyId: `member:${requester.id}/${requester.device.id}`, secretKey: requester.device.secretKey },
      () => Date.now() as Millis,
    );
    org.world.clock.now = Date.now();

    // At the door: the claim is signed, the address is the attacker's.
    const forged = org.world.intent(REFILL_SATS, {
      to: ATTACKER as Address,
      toWallet: { wallet: HOT_ID, index: 0 },
    });
    const forgedId = intentDigest(forged.intent) as Digest;
    const res = await client.post('/v1/intents', forged);
    expect(outcome(res)).toEqual({ status: 422, code: 'DESTINATION_NOT_WALLET' });
    expect(await store.intents.get(forgedId)).toBeNull();
    expect(await auditEvents(store)).toEqual(
      expect.arrayContaining([
        {
          event: 'intent.refused',
          subject: forgedId,
          actor: `member:${requester.id}/${requester.device.id}`,
        },
      ]),
    );

    // The derived address of btc-hot without the claim: the wallets rule does not match it.
    const unclaimed = org.world.intent(REFILL_SATS, { to: hotAddress(0) });
    expect(outcome(await client.post('/v1/intents', unclaimed))).toEqual({
      status: 422,
      code: 'DESTINATION_NOT_ALLOWED',
    });

    // Past a hostile coordinator: stored approved as if checked, built paying the attacker, queued.
    await store.intents.insert(forged);
    for (const a of org.world.approve(forged)) await store.approvals.insert(a);
    expect(await store.intents.updateStatus(forgedId, { from: 'pending', to: 'approved' })).toBe(true);
    await c.pipeline.onApproved(forgedId);
    expect(await store.intents.get(forgedId)).toMatchObject({ status: 'signing' });
    const tmp = tempDir();
    cleanups.push(() => tmp.remove());
    const signers = startSigners(tmp.dir, org, c.pipeline, store);
    cleanups.push(() => signers.stop());
    const refused = await waitFor(
      'the forged refill settled',
      async () => {
        const r = await store.intents.get(forgedId);
        return r !== null && SETTLED.includes(r.status) ? r : undefined;
      },
      60_000,
    );
    await signers.stop();
    expect(refused).toMatchObject({ status: 'refused', statusCode: 'DESTINATION_NOT_WALLET', txid: null });
    for (const run of signers.runs) {
      expect(run.results.length).toBeGreaterThan(0);
      for (const r of run.results) {
        expect(r.receipt).toMatchObject({ outcome: 'refused', code: 'DESTINATION_NOT_WALLET' });
        expect(r.psbt).toBeUndefined();
        expect(r.alert).toEqual({ severity: 'critical', code: 'DESTINATION_NOT_WALLET' });
      }
    }
    expect(await node.rpc.getRawMempool()).toEqual([]);
    const mine = (await auditEvents(store)).filter((e) => e.subject === forgedId).map((e) => e.event);
    expect(mine).toEqual(expect.arrayContaining(['signing.refused', 'alert', 'intent.refused']));
    expect(mine).not.toContain('transaction.broadcast');
  });
});
