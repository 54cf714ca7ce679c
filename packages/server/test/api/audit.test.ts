/**
 * THREATS 30, the coordinator's side, on SQLite and PostgreSQL: the audit
 * log read through GET /v1/audit is a hash chain that core's
 * verifyAuditChain accepts, with every step of a withdrawal in it; after a
 * row is deleted in the database directly, the same read names the first
 * bad entry. (`custos audit verify`, the CLI, is tested with the CLI.)
 */
import { type AuditEntry, verifyAuditChain } from '@custos/core';
import type { Person } from '@custos/test-support/org';
import { describe, expect, it } from 'vitest';
import { useBackends } from '../db/backends.js';
import type { Client } from './support/client.js';
import { type Harness, useHarness } from './support/harness.js';

const { backends } = useBackends();
const harness = useHarness();

/** Reads the whole log through the API, page by page. */
async function readLog(reader: Client): Promise<{ entries: AuditEntry[]; head: unknown }> {
  const entries: AuditEntry[] = [];
  let head: unknown = null;
  let from = 0;
  for (;;) {
    const res = await reader.get(`/v1/audit?from=${from}&limit=3`);
    expect(res.status).toBe(200);
    const page = res.body as { entries: AuditEntry[]; head: unknown };
    head = page.head;
    entries.push(...page.entries);
    const last = page.entries[page.entries.length - 1];
    if (page.entries.length < 3 || last === undefined) break;
    from = last.seq + 1;
  }
  return { entries, head };
}

async function withdrawal(h: Harness): Promise<void> {
  const [a1, a2] = h.org.approvers as [Person, Person];
  const created = await h.as(h.org.requester).post('/v1/intents', h.intent());
  const id = (created.body as { id: string }).id;
  await h.as(a1).post(`/v1/intents/${id}/approvals`, h.approval(id as never, a1));
  await h.as(a2).post(`/v1/intents/${id}/approvals`, h.approval(id as never, a2));
  await h.as(h.org.requester).post('/v1/intents', h.intent({ to: 'bcrt1qnotinthebook' as never }));
}

describe.each(backends)('audit log on $name', (backend) => {
  it('THREATS 30: the log read through the API verifies and holds every step, refusals included', async () => {
    const h = await harness(backend);
    await withdrawal(h);
    const { entries, head } = await readLog(h.as(h.org.watcher));
    expect(entries.map((e) => e.event)).toEqual([
      'governance.applied',
      'intent.created',
      'approval.added',
      'approval.added',
      'intent.approved',
      'intent.refused',
      // The same refusal as a refused request, with its code (docs/architecture.md flow step 6).
      'request.refused',
    ]);
    expect(entries.at(-1)?.subject).toBe('DESTINATION_NOT_ALLOWED POST /v1/intents');
    const verified = verifyAuditChain(entries);
    expect(verified).toMatchObject({ ok: true, entries: 7 });
    expect(head).toEqual({ seq: 6, hash: verified.ok ? verified.head : null });
    // Signers read it too.
    expect((await h.signer().get('/v1/audit?from=0&limit=1000')).status).toBe(200);
    expect((await h.as(h.org.watcher).get('/v1/audit/checkpoints')).body).toEqual({ checkpoints: [] });
  });

  it('a follower long-polls the log: GET /v1/audit?wait= answers with the next entry once it is appended, or nothing after the wait', async () => {
    const h = await harness(backend);
    const watcher = h.as(h.org.watcher);
    const next = ((await watcher.get('/v1/audit')).body as { head: { seq: number } }).head.seq + 1;
    const empty = await watcher.get(`/v1/audit?from=${next}&wait=200`);
    expect(empty.status).toBe(200);
    expect((empty.body as { entries: AuditEntry[] }).entries).toEqual([]);
    const waiting = watcher.get(`/v1/audit?from=${next}&wait=20000`);
    await new Promise((r) => setTimeout(r, 50));
    await h.as(h.org.requester).post('/v1/intents', h.intent());
    const res = await waiting;
    expect(res.status).toBe(200);
    expect((res.body as { entries: AuditEntry[] }).entries.map((e) => [e.seq, e.event])).toEqual([
      [next, 'intent.created'],
    ]);
    // Out of range is refused like any other query parameter.
    expect((await watcher.get(`/v1/audit?from=${next}&wait=9999999`)).status).toBe(400);
  });

  it('THREATS 30: a row deleted in the database makes verification name the first bad entry', async () => {
    const h = await harness(backend);
    await withdrawal(h);
    await h.fresh.db.db.deleteFrom('audit_log').where('seq', '=', 3).execute();
    const { entries } = await readLog(h.as(h.org.watcher));
    expect(entries.map((e) => e.seq)).toEqual([0, 1, 2, 4, 5, 6]);
    const verified = verifyAuditChain(entries);
    expect(verified).toMatchObject({ ok: false, code: 'AUDIT_CHAIN_BROKEN', firstBadSeq: 3 });
  });

  it('THREATS 30: an edited row makes verification name it', async () => {
    const h = await harness(backend);
    await withdrawal(h);
    await h.fresh.db.db
      .updateTable('audit_log')
      .set({ actor: 'someone-else' })
      .where('seq', '=', 2)
      .execute();
    const verified = verifyAuditChain((await readLog(h.as(h.org.watcher))).entries);
    expect(verified).toMatchObject({ ok: false, code: 'AUDIT_CHAIN_BROKEN', firstBadSeq: 2 });
  });

  it('a query beyond the limits is refused INVALID_VALUE', async () => {
    const h = await harness(backend);
    for (const q of ['limit=1001', 'from=-1', 'limit=0']) {
      const res = await h.as(h.org.watcher).get(`/v1/audit?${q}`);
      expect(res.status).toBe(400);
    }
  });
});
