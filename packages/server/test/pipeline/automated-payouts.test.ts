/**
 * Automated payouts end to end (issue 13), on a real regtest node with two
 * real signers over their own ledgers, on SQLite and PostgreSQL: the
 * exchange backend posts customer payouts through the real HTTP API (RFC
 * 9421-signed by its device), a zero-approval rule approves each when it is
 * posted, the pipeline builds and queues it, and the signers sign with no
 * approval in the job until their own rolling limit is reached; past it
 * each refuses LIMIT_EXCEEDED: nothing signed, the intent refused with the
 * signer's code, `signing.refused` and `intent.refused` in the audit log.
 *
 * THREATS 20 with the backend's key stolen: the payouts arrive at once,
 * before any is signed, so the coordinator's preview (which counts what it
 * saw signed) lets them all through; each signer's own ledger still stops
 * them at the limit, and once they are signed the coordinator's preview
 * refuses the next one at the door.
 */
import type { Amount, Digest, Millis, PolicyRule, RollingLimit } from '@custos/core';
import { DAY, WALLET_ID } from '@custos/test-support/org';
import { customerAddress } from '@custos/test-support/psbt-fixtures';
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

const PER_PAYOUT = 300_000n;
const DAILY = 1_000_000n;

const PAYOUTS: PolicyRule = {
  id: 'payouts',
  match: {
    destination: { kind: 'any' },
    wallets: [WALLET_ID],
    assets: ['BTC'],
    maxAmount: PER_PAYOUT.toString() as Amount,
    requesterRoles: ['requester'],
  },
  action: 'allow',
  approvals: [],
};
const PAYOUTS_DAILY: RollingLimit = {
  id: 'payouts-daily',
  scope: 'wallet-asset',
  wallet: WALLET_ID,
  asset: 'BTC',
  windowMs: DAY,
  max: DAILY.toString() as Amount,
};

const SETTLED = ['signed', 'broadcast', 'confirmed', 'refused'];

describe.each(backends)('automated payouts end to end on $name', (backend) => {
  it("THREATS 20: the backend's payouts are signed with no approval until each signer's own limit, then LIMIT_EXCEEDED: nothing signed, refused, audited", async () => {
    const { store } = await backend.fresh();
    const org = makeOrg((p) => ({
      ...p,
      rules: [PAYOUTS, ...p.rules],
      limits: [...p.limits, PAYOUTS_DAILY],
    }));
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
    await fund(
      node,
      org,
      Array.from({ length: 6 }, () => 1_000_000n),
    );
    const backendKey = org.world.org.requester;
    const client = new Client(
      { app: http.app },
      { keyId: `member:${backendKey.id}/${backendKey.device.id}`, secretKey: backendKey.device.secretKey },
      () => Date.now() as Millis,
    );

    // Five payouts of 0.003 BTC arrive before anything is signed: each is approved when posted.
    const ids: Digest[] = [];
    for (let k = 0; k < 5; k++) {
      org.world.clock.now = Date.now();
      const res = await client.post(
        '/v1/intents',
        org.world.intent(PER_PAYOUT, { to: customerAddress(`custos pipeline customer ${k}`) }),
      );
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      expect(res.body).toMatchObject({ status: 'approved', decision: { kind: 'allow', approvers: [] } });
      ids.push((res.body as { id: Digest }).id);
    }
    const tmp = tempDir();
    cleanups.push(() => tmp.remove());
    const signers = startSigners(tmp.dir, org, c.pipeline, store);
    cleanups.push(() => signers.stop());
    const records = await waitFor(
      'every payout signed or refused',
      async () => {
        const all = await Promise.all(ids.map((id) => store.intents.get(id)));
        return all.every((r) => r !== null && SETTLED.includes(r.status)) ? all : undefined;
      },
      60_000,
    );
    await signers.stop();

    // Each signer signed at most its limit from its own ledger, with no approval in any job.
    for (const run of signers.runs) {
      const signed = run.results.filter((r) => r.receipt.outcome === 'signed');
      const refused = run.results.filter((r) => r.receipt.outcome === 'refused');
      expect(BigInt(signed.length) * PER_PAYOUT).toBeLessThanOrEqual(DAILY);
      expect(signed).toHaveLength(3);
      for (const r of refused) {
        expect(r.receipt.code).toBe('LIMIT_EXCEEDED');
        expect(r.psbt).toBeUndefined();
        expect(r.alert).toBeUndefined();
      }
    }
    const paid = records.filter((r) => r !== null && r.status !== 'refused');
    const refused = records.filter((r) => r?.status === 'refused');
    expect(BigInt(paid.length) * PER_PAYOUT).toBeLessThanOrEqual(DAILY);
    expect(paid).toHaveLength(3);
    expect(refused).toHaveLength(2);
    const events = await auditEvents(store);
    for (const r of refused) {
      expect(r?.statusCode).toBe('LIMIT_EXCEEDED');
      expect(r?.txid).toBeNull();
      const mine = events.filter((e) => e.subject === r?.id);
      expect(mine).toEqual(
        expect.arrayContaining([
          {
            event: 'intent.approved',
            subject: r?.id,
            actor: `member:${backendKey.id}/${backendKey.device.id}`,
          },
          expect.objectContaining({ event: 'signing.refused', subject: r?.id }),
          { event: 'intent.refused', subject: r?.id, actor: 'coordinator' },
        ]),
      );
      expect(mine.some((e) => e.event === 'transaction.broadcast')).toBe(false);
    }
    // No approval was ever stored.
    for (const id of ids) expect(await store.approvals.of(id)).toEqual([]);

    // Now that the coordinator saw 0.009 BTC signed, its preview refuses the next payout at the door.
    org.world.clock.now = Date.now();
    const next = await client.post(
      '/v1/intents',
      org.world.intent(PER_PAYOUT, { to: customerAddress('custos pipeline customer 9') }),
    );
    expect(outcome(next)).toEqual({ status: 422, code: 'LIMIT_EXCEEDED' });
  });
});
