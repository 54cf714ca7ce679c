/**
 * The routes of an offline signer (cold storage, issue 13), on SQLite and
 * PostgreSQL: an admin or operator exports the job queued for a signer that
 * never polls, as the feed would hand it, with the governance entries it may
 * need, and imports its result, which goes to the pipeline under the
 * receipt's signer (where the receipt signature is checked, as for an online
 * signer: pipeline tests). Anyone else is refused NOT_AUTHORIZED and
 * audited; carrying is audited (signing.exported, signing.imported). The real
 * pipeline, the signer process and regtest: packages/cli/test/cold-storage.test.ts.
 */
import { intentDigest, type SignerJob } from '@custos/core';
import { describe, expect, it } from 'vitest';
import { useBackends } from '../db/backends.js';
import { makeResult } from '../db/fixtures.js';
import { outcome, useHarness } from './support/harness.js';

const { backends } = useBackends();
const harness = useHarness();

describe.each(backends)('offline signer routes on $name', (backend) => {
  async function queued(h: Awaited<ReturnType<typeof harness>>) {
    const signed = h.intent();
    await h.store.intents.insert(signed);
    const id = intentDigest(signed.intent);
    const state = await h.state();
    const job: SignerJob = {
      v: 1,
      id: `${id.slice(0, 16)}-signer-1-1`,
      signer: 'signer-1',
      intent: signed,
      approvals: [],
      governance: { seq: state.seq, digest: state.head },
      psbt: 'cHNidP8BAA==',
    };
    return { id, job };
  }

  it('gives an admin the job file of a queued job, with the entries after `after`; audited signing.exported', async () => {
    const h = await harness(backend);
    const admin = h.as(h.org.admins[0]!);
    const { id, job } = await queued(h);
    const url = `/v1/intents/${id}/offline-job?signer=signer-1`;
    // Not being signed: there is no job to carry.
    expect(outcome(await admin.get(url))).toEqual({ status: 409, code: 'CONFLICT' });
    await h.store.intents.updateStatus(id, { from: 'pending', to: 'signing' });
    expect(outcome(await admin.get(url))).toEqual({ status: 404, code: 'NOT_FOUND' });
    await h.store.jobs.enqueue([job]);

    const res = await admin.get(url);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ v: 1, kind: 'custos.offline-job', job, governance: [h.org.genesis] });
    const shorter = await admin.get(`${url}&after=0`);
    expect(shorter.body).toEqual({ v: 1, kind: 'custos.offline-job', job, governance: [] });
    expect(outcome(await admin.get(`/v1/intents/${id}/offline-job?signer=signer-9`))).toEqual({
      status: 404,
      code: 'NOT_FOUND',
    });
    const exported = await h.events('signing.exported');
    expect(exported.map((e) => [e.actor, e.subject])).toEqual([
      [`member:${h.org.admins[0]!.id}/${h.org.admins[0]!.device.id}`, id],
      [`member:${h.org.admins[0]!.id}/${h.org.admins[0]!.device.id}`, id],
    ]);
    // Reading it changed nothing: the job is still queued for the signer.
    expect((await h.store.jobs.get(job.id))?.status).toBe('queued');
  });

  it('hands an imported result to the pipeline under the receipt signer; audited signing.imported', async () => {
    const h = await harness(backend);
    const admin = h.as(h.org.admins[0]!);
    const { id, job } = await queued(h);
    await h.store.intents.updateStatus(id, { from: 'pending', to: 'signing' });
    await h.store.jobs.enqueue([job]);
    const result = makeResult(job);
    const res = await admin.post('/v1/offline/results', { v: 1, kind: 'custos.offline-result', result });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ job: job.id, intent: id, signer: 'signer-1', outcome: 'refused' });
    expect(h.pipeline.results).toEqual([{ signer: 'signer-1', result }]);
    expect((await h.events('signing.imported')).map((e) => e.subject)).toEqual([id]);
    // Not a result file: refused when decoded, nothing handed on.
    const wrong = await admin.post('/v1/offline/results', { v: 1, kind: 'custos.offline-job', result });
    expect(outcome(wrong)).toEqual({ status: 400, code: 'INVALID_VALUE' });
    expect(h.pipeline.results).toHaveLength(1);
  });

  it('refuses export and import to members who are neither admins nor operators, and to signers (NOT_AUTHORIZED, audited)', async () => {
    const h = await harness(backend);
    const { id, job } = await queued(h);
    await h.store.intents.updateStatus(id, { from: 'pending', to: 'signing' });
    await h.store.jobs.enqueue([job]);
    const file = { v: 1, kind: 'custos.offline-result', result: makeResult(job) };
    const url = `/v1/intents/${id}/offline-job?signer=signer-1`;
    for (const client of [h.as(h.org.requester), h.as(h.org.approvers[0]!), h.signer()]) {
      expect(outcome(await client.get(url))).toEqual({ status: 403, code: 'NOT_AUTHORIZED' });
      expect(outcome(await client.post('/v1/offline/results', file))).toEqual({
        status: 403,
        code: 'NOT_AUTHORIZED',
      });
    }
    expect(h.pipeline.results).toEqual([]);
    expect(await h.events('signing.exported')).toEqual([]);
    expect((await h.events('request.refused')).length).toBeGreaterThanOrEqual(6);
  });
});
