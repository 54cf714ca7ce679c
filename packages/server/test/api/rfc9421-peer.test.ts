/**
 * Any RFC 9421 client works (docs/api.md "Authentication"): requests signed
 * by the `http-message-signatures` npm package, an independent
 * implementation, with its own label and its own component and parameter
 * order, go over a real socket to the coordinator and are accepted, on SQLite
 * and PostgreSQL. A signature that leaves out a required component or
 * parameter, or adds one, is still BAD_SIGNATURE, and two signatures in one
 * request are refused with BAD_SIGNATURE, never a 5xx. The other way round,
 * the package verifies a request signed by core's signRequest.
 */
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { contentDigest, signRequest, toHex } from '@custos/core';
import { createSigner, createVerifier, httpbis } from 'http-message-signatures';
import { describe, expect, it } from 'vitest';
import { useBackends } from '../db/backends.js';
import { payloadOf, type Res, send, type Target } from './support/client.js';
import { type Harness, outcome, useHarness } from './support/harness.js';

const { backends } = useBackends();
const harness = useHarness();

/** PKCS #8 and SPKI wrappers of a raw Ed25519 key (RFC 8410). */
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

interface PeerOptions {
  readonly name?: string;
  readonly fields?: readonly string[];
  readonly params?: readonly string[];
  /** A second signature over the same request, under another label. */
  readonly twice?: boolean;
}

/** Headers for a request signed by http-message-signatures with a member's device key. */
async function peerSign(
  h: Harness,
  target: { baseUrl: string },
  method: 'GET' | 'POST',
  path: string,
  body: Buffer | null,
  o: PeerOptions = {},
): Promise<Record<string, string>> {
  const who = h.org.requester;
  const key = createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, who.device.secretKey]),
    format: 'der',
    type: 'pkcs8',
  });
  const sign = async (name: string, headers: Record<string, string | string[]>) =>
    httpbis.signMessage(
      {
        key: createSigner(key, 'ed25519', `member:${who.id}/${who.device.id}`),
        name,
        fields: [...(o.fields ?? ['content-digest', '@path', '@method', '@query'])],
        params: [...(o.params ?? ['alg', 'nonce', 'keyid', 'created'])],
        paramValues: { created: new Date(h.clock.now), nonce: toHex(randomBytes(16)) },
      },
      { method, url: new URL(path, target.baseUrl), headers },
    );
  const headers: Record<string, string | string[]> = {
    'content-digest': contentDigest(body ?? new Uint8Array(0)),
  };
  if (body !== null) headers['content-type'] = 'application/json';
  let signed = await sign(o.name ?? 'custos-device', headers);
  if (o.twice === true) signed = await sign('second', signed.headers);
  return Object.fromEntries(
    Object.entries(signed.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : v]),
  );
}

async function peerSend(
  h: Harness,
  target: { baseUrl: string },
  method: 'GET' | 'POST',
  path: string,
  body: unknown,
  o: PeerOptions = {},
): Promise<Res> {
  const payload = payloadOf(body);
  const headers = await peerSign(h, target, method, path, payload, o);
  return send(target, { method, url: path, headers, payload });
}

async function listening(h: Harness): Promise<{ baseUrl: string }> {
  return { baseUrl: await h.coordinator.app.listen({ host: '127.0.0.1', port: 0 }) };
}

describe.each(backends)('an independent RFC 9421 client (http-message-signatures) on $name', (backend) => {
  it('its signatures, with its own label and parameter order, are accepted over a real socket', async () => {
    const h = await harness(backend);
    const target = await listening(h);
    const signed = h.intent();
    const created = await peerSend(h, target, 'POST', '/v1/intents', signed);
    expect(outcome(created)).toEqual({ status: 201, code: null });
    const id = (created.body as { id: string }).id;
    expect((await h.store.intents.list()).intents.map((i) => i.id)).toEqual([id]);

    // Another label (the package's default, sig), another order of components and
    // parameters, and a real query string.
    const list = await peerSend(h, target, 'GET', '/v1/intents?limit=5', undefined, {
      name: 'sig',
      fields: ['@query', '@method', 'content-digest', '@path'],
      params: ['created', 'nonce', 'alg', 'keyid'],
    });
    expect(outcome(list)).toEqual({ status: 200, code: null });
    expect((list.body as { intents: { id: string }[] }).intents.map((i) => i.id)).toEqual([id]);

    const one = await peerSend(h, target, 'GET', `/v1/intents/${id}`, undefined, {
      name: 'x1',
      params: ['keyid', 'created', 'alg', 'nonce'],
    });
    expect(outcome(one)).toEqual({ status: 200, code: null });
    expect(await h.events('request.refused')).toEqual([]);
  });

  it('a signature missing a required component or parameter, or with an extra one, is BAD_SIGNATURE and stores nothing', async () => {
    const h = await harness(backend);
    const target = await listening(h);
    const cases: readonly PeerOptions[] = [
      { fields: ['content-digest', '@path', '@method'] },
      { fields: ['@path', '@method', '@query'] },
      { fields: ['content-digest', '@path', '@method', '@query', 'content-type'] },
      { params: ['alg', 'keyid', 'created'] },
      { params: ['nonce', 'keyid', 'created'] },
      { params: ['alg', 'nonce', 'keyid'] },
      // The package's default parameters: keyid, alg, created and expires, no nonce.
      { params: ['keyid', 'alg', 'created', 'expires'] },
      { params: ['alg', 'nonce', 'keyid', 'created', 'expires'] },
    ];
    for (const c of cases) {
      const res = await peerSend(h, target, 'POST', '/v1/intents', h.intent(), c);
      expect({ c, ...outcome(res) }).toEqual({ c, status: 401, code: 'BAD_SIGNATURE' });
    }
    expect((await h.store.intents.list()).intents).toEqual([]);
    expect(await h.events('request.refused')).toHaveLength(cases.length);
  });

  it('two signatures (two labels) in one request are refused with BAD_SIGNATURE; the server stays up', async () => {
    const h = await harness(backend);
    const target = await listening(h);
    const res = await peerSend(h, target, 'POST', '/v1/intents', h.intent(), { twice: true });
    expect(outcome(res)).toEqual({ status: 401, code: 'BAD_SIGNATURE' });
    expect((res.body as { error: { message: string } }).error.message).toMatch(/more than one signature/);
    expect((await h.store.intents.list()).intents).toEqual([]);
    // The same request signed once still goes through.
    expect(outcome(await peerSend(h, target, 'POST', '/v1/intents', h.intent()))).toEqual({
      status: 201,
      code: null,
    });
  });

  it('the package verifies a request signed by core (the other direction)', async () => {
    const h = await harness(backend);
    const target: Target = await listening(h);
    const who = h.org.requester;
    const keyId = `member:${who.id}/${who.device.id}`;
    const payload = payloadOf(h.intent()) as Buffer;
    const headers = signRequest(
      { method: 'POST', path: '/v1/intents', query: '?', body: new Uint8Array(payload) },
      { keyId, created: Math.floor(h.clock.now / 1000), nonce: toHex(randomBytes(16)) },
      who.device.secretKey,
    );
    const publicKey = createPublicKey({
      key: Buffer.concat([SPKI_PREFIX, Buffer.from(who.device.publicKey, 'hex')]),
      format: 'der',
      type: 'spki',
    });
    const verified = await httpbis.verifyMessage(
      {
        keyLookup: async (p) =>
          p.keyid === keyId
            ? { id: keyId, algs: ['ed25519'], verify: createVerifier(publicKey, 'ed25519') }
            : null,
        notAfter: h.clock.now + 1000,
        tolerance: 300,
        requiredFields: ['@method', '@path', '@query', 'content-digest'],
        requiredParams: ['created', 'keyid', 'nonce', 'alg'],
      },
      { method: 'POST', url: new URL('/v1/intents', (target as { baseUrl: string }).baseUrl), headers },
    );
    expect(verified).toBe(true);
    // And the coordinator takes it too.
    const res = await send(target, {
      method: 'POST',
      url: '/v1/intents',
      headers: { ...headers, 'content-type': 'application/json' },
      payload,
    });
    expect(outcome(res)).toEqual({ status: 201, code: null });
  });
});
