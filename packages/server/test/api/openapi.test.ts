/**
 * The OpenAPI document served at GET /v1/openapi.json is the API: every route
 * fastify registered is in it, with its auth, its codes, and, for a body, the
 * very schema the route decodes with (core's objects). And the contract in
 * docs/api.md names exactly the same routes.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ERROR_CODES,
  governanceSignature,
  signedApproval,
  signedCheckpoint,
  signedGovernanceEntry,
  signedIntent,
  signerResult,
} from '@custos/core';
import { describe, expect, it } from 'vitest';
import { STATUS_OF } from '../../src/http-errors.js';
import { openApiPath } from '../../src/openapi.js';
import { useBackends } from '../db/backends.js';
import { send, unsigned } from './support/client.js';
import { outcome, useHarness } from './support/harness.js';

const { backends } = useBackends();
const harness = useHarness();

type Operation = {
  security: unknown[];
  'x-custos-auth': string;
  'x-custos-errors': string[];
  requestBody?: { content: { 'application/json': { schema: unknown } } };
  responses: Record<string, { content?: { 'application/json': { schema: { properties?: unknown } } } }>;
};
type Doc = { openapi: string; paths: Record<string, Record<string, Operation>> };

describe.each(backends)('the OpenAPI document on $name', (backend) => {
  it('is served without a signature and lists every route fastify registered', async () => {
    const h = await harness(backend);
    const res = await send(h.target, unsigned('GET', '/v1/openapi.json'));
    expect(res.status).toBe(200);
    const doc = res.body as Doc;
    expect(doc.openapi).toBe('3.1.0');
    const registered = h.coordinator.registered.map((r) => `${r.method} ${openApiPath(r.url)}`).sort();
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    expect(registered.length).toBeGreaterThan(20);
    expect(documented).toEqual(registered);
    for (const r of h.coordinator.registered) {
      expect(h.coordinator.app.hasRoute({ method: r.method as 'GET', url: r.url })).toBe(true);
    }
  });

  it("gives each body route the validator's own schema, from core's objects", async () => {
    const h = await harness(backend);
    const doc = (await send(h.target, unsigned('GET', '/v1/openapi.json'))).body as Doc;
    const expected: [string, string, unknown][] = [
      ['post', '/v1/intents', signedIntent],
      ['post', '/v1/intents/{id}/approvals', signedApproval],
      ['post', '/v1/governance/proposals', signedGovernanceEntry],
      ['post', '/v1/governance/genesis', signedGovernanceEntry],
      ['post', '/v1/signer/results', signerResult],
      ['post', '/v1/audit/checkpoints', signedCheckpoint],
    ];
    for (const [method, path, schema] of expected) {
      const spec = h.coordinator.routes.find(
        (r) => r.method.toLowerCase() === method && openApiPath(r.url) === path,
      );
      // The route decodes with this very object...
      expect(spec?.body).toBe(schema);
      // ...and the document shows its JSON Schema.
      const op = doc.paths[path]?.[method];
      expect(op?.requestBody?.content['application/json'].schema).toEqual(
        (schema as { jsonSchema: unknown }).jsonSchema,
      );
    }
    const cosign = doc.paths['/v1/governance/proposals/{id}/signatures']?.post;
    expect(cosign?.requestBody?.content['application/json'].schema).toMatchObject({
      properties: { signatures: { items: governanceSignature.jsonSchema } },
    });
    // Every route with a body in the document has a validator, and the other way round.
    for (const spec of h.coordinator.routes) {
      const op = doc.paths[openApiPath(spec.url)]?.[spec.method.toLowerCase()];
      expect(op?.requestBody !== undefined).toBe(spec.body !== undefined || spec.anyBody === true);
    }
  });

  it('says who may call each route and which codes it answers, each under its status', async () => {
    const h = await harness(backend);
    const doc = (await send(h.target, unsigned('GET', '/v1/openapi.json'))).body as Doc;
    expect(doc.paths['/v1/health']?.get?.security).toEqual([]);
    expect(doc.paths['/v1/intents']?.post?.security).toEqual([{ memberDevice: [] }]);
    expect(doc.paths['/v1/signer/jobs']?.get?.security).toEqual([{ signerKey: [] }]);
    const create = doc.paths['/v1/intents']?.post;
    for (const code of ['SIGNATURE_REQUIRED', 'REPLAYED_REQUEST', 'DESTINATION_NOT_ALLOWED', 'TOO_DEEP']) {
      expect(create?.['x-custos-errors']).toContain(code);
    }
    for (const [, ops] of Object.entries(doc.paths)) {
      for (const op of Object.values(ops)) {
        for (const code of op['x-custos-errors']) {
          expect(ERROR_CODES).toContain(code);
          const schema = op.responses[String(STATUS_OF[code as keyof typeof STATUS_OF])]?.content?.[
            'application/json'
          ].schema as { properties: { error: { properties: { code: { enum: string[] } } } } };
          expect(schema.properties.error.properties.code.enum).toContain(code);
        }
      }
    }
    // What the document promises is what the route answers.
    expect(outcome(await send(h.target, unsigned('POST', '/v1/intents', { body: {} })))).toEqual({
      status: 401,
      code: 'SIGNATURE_REQUIRED',
    });
  });

  it('names the same routes as the contract in docs/api.md', async () => {
    const h = await harness(backend);
    const text = await readFile(join(import.meta.dirname, '../../../../docs/api.md'), 'utf8');
    const inDocs = new Set<string>();
    for (const m of text.matchAll(
      /`((?:GET|POST|PUT|PATCH|DELETE)(?:\|(?:GET|POST|PUT|PATCH|DELETE))*) (\/v1\/[^\s`?]*)/g,
    )) {
      for (const method of (m[1] as string).split('|')) inDocs.add(`${method} ${m[2]}`);
    }
    const served = new Set(h.coordinator.routes.map((r) => `${r.method} ${r.url}`));
    expect([...inDocs].sort()).toEqual([...served].sort());
  });
});
