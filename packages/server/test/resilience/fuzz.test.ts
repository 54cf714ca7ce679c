/**
 * Fuzzing of HTTP bodies (THREATS 31): fast-check generated bodies (random
 * bytes, random text, random JSON, and mutations of valid signed intents,
 * approvals, governance proposals, co-signatures and the genesis: a value
 * replaced, a key removed or added, bytes inserted or removed) sent to every
 * route that takes a body, each request carrying a VALID RFC 9421 signature
 * over the exact bytes sent by a key allowed to call the route, so what is
 * tested is the body parser, the schemas and the calls, not the
 * authentication.
 *
 * Every answer is a success or a 4xx whose code is a stable code with that
 * status; never a 5xx. When the answer is a refusal nothing is stored: the
 * intents and their statuses, the approvals, the proposals, the governance
 * head, what the pipeline was handed and the audit log (apart from its
 * `*.refused` entries, which record refusals by design) are as before.
 *
 * The coordinator runs in process (the real app over SQLite, fastify inject:
 * real HTTP parsing, no socket). Budget: FUZZ_RUNS bodies per route (default
 * 60, so CI stays fast; the seed FUZZ_SEED makes a run repeatable).
 */
import { type Digest, governanceDigest, intentDigest, utf8 } from '@custos/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { STATUS_OF } from '../../src/http-errors.js';
import type { Client, Method } from '../api/support/client.js';
import { type Harness, useHarness } from '../api/support/harness.js';
import { useSqliteBackend } from './support/sqlite-backend.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 60);
const SEED = Number(process.env.FUZZ_SEED ?? 31_031);
const backend = useSqliteBackend();
const harness = useHarness();

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every path to a value inside `v` (the root included). */
function paths(v: Json, at: (string | number)[] = []): (string | number)[][] {
  const out = [at];
  if (Array.isArray(v)) for (const [i, x] of v.entries()) out.push(...paths(x, [...at, i]));
  else if (v !== null && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]));
  return out;
}

/** `v` with the value at `path` replaced by `f(old)` (undefined removes it). */
function edit(v: Json, path: (string | number)[], f: (old: Json) => Json | undefined): Json | undefined {
  if (path.length === 0) return f(v);
  const [head, ...rest] = path;
  if (Array.isArray(v)) {
    const copy = [...v];
    const next = edit(copy[head as number] as Json, rest, f);
    if (next === undefined) copy.splice(head as number, 1);
    else copy[head as number] = next;
    return copy;
  }
  if (v !== null && typeof v === 'object') {
    const copy = { ...v };
    const next = edit(copy[head as string] as Json, rest, f);
    if (next === undefined) delete copy[head as string];
    else copy[head as string] = next;
    return copy;
  }
  return v;
}

/** Mutations of a valid body: structural ones on the value, byte-level ones on its JSON text. */
function mutated(seed: unknown): fc.Arbitrary<string | Uint8Array> {
  const value = JSON.parse(JSON.stringify(seed)) as Json;
  const all = paths(value);
  const text = JSON.stringify(value);
  const pick = fc.nat().map((i) => all[i % all.length] as (string | number)[]);
  const json = fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>;
  return fc.oneof(
    fc.constant(text),
    fc.tuple(pick, json).map(([p, x]) => JSON.stringify(edit(value, p, () => x) ?? null)),
    pick.map((p) => JSON.stringify(edit(value, p, () => undefined) ?? null)),
    fc
      .tuple(pick, fc.string({ maxLength: 12 }), json)
      .map(([p, k, x]) =>
        JSON.stringify(
          edit(value, p, (old) =>
            old !== null && typeof old === 'object' && !Array.isArray(old) ? { ...old, [k]: x } : old,
          ) ?? null,
        ),
      ),
    fc
      .tuple(pick, fc.constantFrom('', '0', '-1', '1e3', 'x'.repeat(300), '\u0301', 'A', ' '))
      .map(([p, s]) =>
        JSON.stringify(edit(value, p, (old) => (typeof old === 'string' ? old + s : old)) ?? null),
      ),
    fc.tuple(fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 6 })).map(([i, bytes]) => {
      const b = utf8(text);
      const at = i % (b.length + 1);
      return new Uint8Array([...b.slice(0, at), ...bytes, ...b.slice(at)]);
    }),
    fc.tuple(fc.nat(), fc.integer({ min: 1, max: 8 })).map(([i, n]) => {
      const b = utf8(text);
      const at = i % b.length;
      return new Uint8Array([...b.slice(0, at), ...b.slice(at + n)]);
    }),
  );
}

function bodies(seed: unknown | undefined): fc.Arbitrary<string | Uint8Array> {
  const generic = [
    fc.uint8Array({ maxLength: 2048 }),
    fc.string({ unit: 'binary', maxLength: 512 }),
    fc.jsonValue({ maxDepth: 6 }).map((v) => JSON.stringify(v) ?? 'null'),
  ];
  return seed === undefined
    ? fc.oneof(...generic)
    : fc.oneof(
        { arbitrary: mutated(seed), weight: 4 },
        ...generic.map((arbitrary) => ({ arbitrary, weight: 1 })),
      );
}

/** What must not change when a request is refused. */
async function snapshot(h: Harness): Promise<unknown> {
  const intents = (await h.store.intents.list({ limit: 200 })).intents;
  return {
    intents: intents.map((i) => [i.id, i.status]),
    approvals: await Promise.all(intents.map(async (i) => (await h.store.approvals.of(i.id)).length)),
    proposals: (await h.store.proposals.list()).map((p) => [p.id, p.status, p.signatures.length]),
    head: await h.store.governance.head(),
    results: h.pipeline.results.length,
    checkpoints: h.pipeline.checkpoints.length,
    approved: h.pipeline.approved.length,
    audit: (await h.audit()).filter((e) => !e.event.endsWith('.refused')).length,
  };
}

interface Route {
  readonly method: Method;
  readonly url: string;
  readonly as: (h: Harness) => Client;
  readonly seed?: unknown;
}

describe('fuzzing every body route with validly signed requests (SQLite, in process)', () => {
  it(`${RUNS} generated bodies per route: a success or a 4xx with its stable code, never a 5xx; nothing stored when refused`, async () => {
    const h = await harness(backend, {
      limits: { refusals: { perKey: 10, total: 200, windowMs: 60_000 } },
    });
    const admin1 = h.org.admins[0] ?? h.org.requester;
    const admin2 = h.org.admins[1] ?? h.org.requester;
    const approver = h.org.approvers[0] ?? h.org.requester;

    // A pending intent to approve, and an open proposal to co-sign.
    const pending = h.intent();
    const pendingId = intentDigest(pending.intent);
    expect((await h.as(h.org.requester).post('/v1/intents', pending)).status).toBe(201);
    const book = { id: 'fuzz', chain: 'bitcoin:regtest', address: 'bcrt1qfuzz', label: 'Fuzz' } as never;
    const proposal = await h.entry('address.add', book, [admin1]);
    const proposalId = governanceDigest(proposal.entry);
    expect((await h.as(admin1).post('/v1/governance/proposals', proposal)).status).toBe(201);
    const cosigned = await h.entry('address.add', book, [admin2]);

    const routes: Route[] = [
      { method: 'POST', url: '/v1/intents', as: (x) => x.as(x.org.requester), seed: h.intent() },
      {
        method: 'POST',
        url: `/v1/intents/${pendingId}/approvals`,
        as: (x) => x.as(approver),
        seed: h.approval(pendingId as Digest, approver),
      },
      { method: 'POST', url: `/v1/intents/${'0'.repeat(64)}/approvals`, as: (x) => x.as(approver) },
      { method: 'POST', url: '/v1/governance/genesis', as: (x) => x.as(admin1), seed: h.org.genesis },
      {
        method: 'POST',
        url: '/v1/governance/proposals',
        as: (x) => x.as(admin1),
        seed: await h.entry('quorum.set', { quorum: 2, delayMs: 0 } as never, [admin1]),
      },
      {
        method: 'POST',
        url: `/v1/governance/proposals/${proposalId}/signatures`,
        as: (x) => x.as(admin2),
        seed: { signatures: cosigned.signatures },
      },
      { method: 'POST', url: '/v1/signer/results', as: (x) => x.signer() },
      { method: 'POST', url: '/v1/audit/checkpoints', as: (x) => x.signer() },
      { method: 'PUT', url: `/v1/intents/${pendingId}`, as: (x) => x.as(x.org.requester), seed: pending },
      { method: 'PATCH', url: `/v1/intents/${pendingId}`, as: (x) => x.as(x.org.requester), seed: pending },
    ];

    const byStatus: Record<string, number> = {};
    let sent = 0;
    for (const [i, route] of routes.entries()) {
      const client = route.as(h);
      await fc.assert(
        fc.asyncProperty(bodies(route.seed), async (body) => {
          const before = await snapshot(h);
          const res = await client.send(route.method, route.url, { body });
          sent++;
          byStatus[res.status] = (byStatus[res.status] ?? 0) + 1;
          const code = (res.body as { error?: { code?: string } } | null)?.error?.code;
          const where = `${route.method} ${route.url}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`;
          expect(res.status, where).toBeLessThan(500);
          if (res.status >= 400) {
            expect(code, where).toMatch(/^[A-Z0-9_]+$/);
            expect(STATUS_OF[code as keyof typeof STATUS_OF], where).toBe(res.status);
            expect(await snapshot(h), where).toEqual(before);
          }
        }),
        { numRuns: RUNS, seed: SEED + i, endOnFailure: true },
      );
    }
    expect((await h.as(admin1).get('/v1/governance/head')).status).toBe(200);
    console.log(
      `RESILIENCE fuzz ${JSON.stringify({ routes: routes.length, runsPerRoute: RUNS, sent, byStatus })}`,
    );
  }, 120_000);
});
