/**
 * Prometheus metrics (issue 12) at GET /metrics, on SQLite and PostgreSQL,
 * over a real socket, read by another implementation of the text format
 * (parse-prometheus-text-format, a port of the Prometheus Python client's
 * parser): requests by route template and status, signer decisions by
 * signer, outcome and code from the receipts two real signers returned (a
 * payout signed, then LIMIT_EXCEEDED from each signer's own ledger), open
 * intents by status, unanswered jobs, each signer's last poll, and the chain
 * tracker against the node. The bearer token is required when configured,
 * and no label carries an intent id, an address or an amount.
 */
import type { Amount, Digest, Millis, PolicyRule, RollingLimit } from '@custos/core';
import { DAY, WALLET_ID } from '@custos/test-support/org';
import { customerAddress } from '@custos/test-support/psbt-fixtures';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { describe, expect, it } from 'vitest';
import { createCoordinator } from '../../src/app.js';
import { createMetrics, observeNotifier, observePipeline } from '../../src/metrics.js';
import { createPipeline } from '../../src/pipeline.js';
import { createNotifier } from '../../src/webhooks.js';
import { Client } from '../api/support/client.js';
import { TEST_LIMITS } from '../api/support/harness.js';
import { useBackends } from '../db/backends.js';
import {
  fund,
  makeOrg,
  seedGovernance,
  startSigners,
  storeAudit,
  storeGovernance,
  tempDir,
  useCleanups,
  useRegtest,
  waitFor,
} from './support/harness.js';

const { backends } = useBackends();
const regtest = useRegtest();
const cleanups = useCleanups();
const TOKEN = 'metrics-token-0123456789abcdef';

const PER_PAYOUT = 300_000n;
/** Room for one payout a day: the second is LIMIT_EXCEEDED in each signer. */
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
const DAILY: RollingLimit = {
  id: 'payouts-daily',
  scope: 'wallet-asset',
  wallet: WALLET_ID,
  asset: 'BTC',
  windowMs: DAY,
  max: (PER_PAYOUT + 1000n).toString() as Amount,
};

/** `name{labels}` → value, for every sample of the exposition. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const family of parsePrometheusTextFormat(text)) {
    for (const m of family.metrics) {
      const labels = Object.entries(m.labels ?? {})
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => `${k}="${v}"`)
        .join(',');
      out.set(`${family.name}{${labels}}`, Number(m.value));
    }
  }
  return out;
}

describe.each(backends)('metrics on $name', (backend) => {
  it('GET /metrics: requests by route template, signer decisions by code from real receipts, open intents, jobs, polls and chain lag, read by another parser', async () => {
    const { store } = await backend.fresh();
    const org = makeOrg((p) => ({ ...p, rules: [PAYOUTS, ...p.rules], limits: [...p.limits, DAILY] }));
    const node = regtest();
    await seedGovernance(store, org);
    // The pipeline reports through the observed notifier, as server.ts wires it.
    const metrics = createMetrics({ store, chainHeight: () => node.rpc.getBlockCount() });
    const governance = storeGovernance(store, org.orgId);
    const notifier = observeNotifier(createNotifier(store, []), metrics);
    const made = createPipeline(
      { store, governance, audit: storeAudit(store), notifier, clock: Date.now },
      {
        rpc: node.rpc,
        startHeight: (await node.rpc.getBlockCount()) + 1,
        pollMs: 50,
        repairMs: 100,
        checkpointIntervalMs: 0,
        confirmationsTarget: 1,
      },
    );
    cleanups.push(() => made.stop());
    const pipeline = observePipeline(made, metrics);
    const http = await createCoordinator({
      store,
      pipeline,
      notifier,
      governance,
      clock: Date.now,
      limits: TEST_LIMITS,
      metrics,
      metricsToken: TOKEN,
    });
    cleanups.push(() => http.close());
    const url = await http.app.listen({ host: '127.0.0.1', port: 0 });
    await fund(node, org, [1_000_000n, 1_000_000n]);
    const backendKey = org.world.org.requester;
    const client = new Client(
      { baseUrl: url },
      { keyId: `member:${backendKey.id}/${backendKey.device.id}`, secretKey: backendKey.device.secretKey },
      () => Date.now() as Millis,
    );

    const ids: Digest[] = [];
    for (const k of [1, 2]) {
      org.world.clock.now = Date.now();
      const res = await client.post(
        '/v1/intents',
        org.world.intent(PER_PAYOUT, { to: customerAddress(`custos metrics customer ${k}`) }),
      );
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      ids.push((res.body as { id: Digest }).id);
    }
    expect((await client.get(`/v1/intents/${ids[0]}`)).status).toBe(200);
    const tmp = tempDir();
    cleanups.push(() => tmp.remove());
    const signers = startSigners(tmp.dir, org, pipeline, store);
    cleanups.push(() => signers.stop());
    await waitFor(
      'one payout broadcast, the other refused',
      async () => {
        const all = await Promise.all(ids.map((id) => store.intents.get(id)));
        const statuses = all.map((r) => r?.status).sort();
        return statuses[0] === 'broadcast' && statuses[1] === 'refused' ? statuses : undefined;
      },
      60_000,
    );

    // Without the token, or with another, nothing is told.
    for (const authorization of [undefined, `Bearer ${TOKEN}x`, TOKEN]) {
      const res = await fetch(
        `${url}/metrics`,
        authorization === undefined ? {} : { headers: { authorization } },
      );
      expect(res.status).toBe(401);
      expect(await res.text()).not.toContain('custos_');
    }
    const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const m = samples(text);

    expect(m.get('custos_http_requests_total{method="POST",route="/v1/intents",status="201"}')).toBe(2);
    expect(m.get('custos_http_requests_total{method="GET",route="/v1/intents/:id",status="200"}')).toBe(1);
    for (const signer of ['signer-1', 'signer-2']) {
      expect(m.get(`custos_signer_decisions_total{code="",outcome="signed",signer="${signer}"}`)).toBe(1);
      expect(
        m.get(`custos_signer_decisions_total{code="LIMIT_EXCEEDED",outcome="refused",signer="${signer}"}`),
      ).toBe(1);
      expect(m.get(`custos_signer_last_poll_age_seconds{signer="${signer}"}`)).toBeLessThan(60);
    }
    expect(m.get('custos_intents_refused_total{code="LIMIT_EXCEEDED"}')).toBe(1);
    expect(m.get('custos_intents{status="broadcast"}')).toBe(1);
    expect(m.get('custos_intents{status="pending"}')).toBe(0);
    const tip = await node.rpc.getBlockCount();
    expect(m.get('custos_chain_height{source="node"}')).toBe(tip);
    const tracker = m.get('custos_chain_height{source="tracker"}');
    expect(tracker).toBeLessThanOrEqual(tip);
    expect(m.get('custos_chain_lag_blocks{}')).toBe(tip - tracker!);

    // Labels are templates, codes and ids of signers: never an intent id, an address or an amount.
    for (const id of ids) expect(text).not.toContain(id);
    expect(text).not.toContain(customerAddress('custos metrics customer 1'));
    expect(text).not.toContain(PER_PAYOUT.toString());
  });
});
