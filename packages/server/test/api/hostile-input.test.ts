/**
 * THREATS 31 on SQLite and PostgreSQL: floods of malformed JSON, oversized
 * bodies, 10,000-deep nesting, wrong content types and random bytes, signed
 * by a real member key (so they reach the parser) and unsigned (so they do
 * not). Every answer is a 4xx with a stable code, never a 5xx; the server
 * stays up; nothing is stored. Some of it over a real socket, with raw bytes
 * that are not even HTTP.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { MAX_BODY_BYTES, MAX_DRAIN_BYTES } from '../../src/body.js';
import { useBackends } from '../db/backends.js';
import { type Client, type PreparedRequest, send, type Target, unsigned } from './support/client.js';
import { type Harness, outcome, useHarness } from './support/harness.js';

const { backends } = useBackends();
const harness = useHarness();

interface Hostile {
  readonly name: string;
  readonly url: string;
  readonly body: Buffer | string;
  readonly contentType: string | null;
  /** Expected answer when the request is signed by a member. */
  readonly status: number;
  readonly code: string | RegExp;
}

/** Random bytes are mostly not UTF-8; when they happen to be, they are not JSON. */
const RANDOM = /^(INVALID_UTF8|INVALID_JSON)$/;

function expected(x: Hostile): unknown {
  return {
    name: x.name,
    status: x.status,
    code: typeof x.code === 'string' ? x.code : expect.stringMatching(x.code),
  };
}

const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
const deepObject = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;

function hostile(h: Harness): Hostile[] {
  const intent = h.intent();
  const valid = JSON.stringify(intent);
  return [
    {
      name: 'truncated JSON',
      url: '/v1/intents',
      body: valid.slice(0, 40),
      contentType: 'application/json',
      status: 400,
      code: 'INVALID_JSON',
    },
    {
      name: 'empty JSON body',
      url: '/v1/intents',
      body: '',
      contentType: 'application/json',
      status: 400,
      code: 'INVALID_JSON',
    },
    {
      name: 'trailing garbage',
      url: '/v1/intents',
      body: `${valid}}`,
      contentType: 'application/json',
      status: 400,
      code: 'TRAILING_DATA',
    },
    {
      name: 'duplicate keys',
      url: '/v1/intents',
      body: `{"intent":1,${valid.slice(1)}`,
      contentType: 'application/json',
      status: 400,
      code: 'DUPLICATE_KEY',
    },
    {
      name: 'a fraction',
      url: '/v1/intents',
      body: valid.replace('"v":1', '"v":1.0'),
      contentType: 'application/json',
      status: 400,
      code: 'NON_CANONICAL_NUMBER',
    },
    {
      name: 'a lone surrogate',
      url: '/v1/intents',
      body: '{"memo":"\\ud800"}',
      contentType: 'application/json',
      status: 400,
      code: 'LONE_SURROGATE',
    },
    {
      name: 'invalid UTF-8',
      url: '/v1/intents',
      body: Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]),
      contentType: 'application/json',
      status: 400,
      code: 'INVALID_UTF8',
    },
    {
      name: 'an unknown field',
      url: '/v1/intents',
      body: JSON.stringify({ ...intent, admin: true }),
      contentType: 'application/json',
      status: 400,
      code: 'UNKNOWN_FIELD',
    },
    {
      name: 'a missing field',
      url: '/v1/intents',
      body: JSON.stringify({ intent: intent.intent }),
      contentType: 'application/json',
      status: 400,
      code: 'MISSING_FIELD',
    },
    {
      name: 'a wrong type',
      url: '/v1/intents',
      body: '[]',
      contentType: 'application/json',
      status: 400,
      code: 'WRONG_TYPE',
    },
    {
      name: '10,000-deep arrays',
      url: '/v1/intents',
      body: deep,
      contentType: 'application/json',
      status: 400,
      code: 'TOO_DEEP',
    },
    {
      name: '10,000-deep objects',
      url: '/v1/governance/proposals',
      body: deepObject,
      contentType: 'application/json',
      status: 400,
      code: 'TOO_DEEP',
    },
    {
      name: 'a 2 MiB body',
      url: '/v1/intents',
      body: Buffer.alloc(2 << 20, 0x20),
      contentType: 'application/json',
      status: 413,
      code: 'TOO_LARGE',
    },
    {
      name: 'a 5 MiB governance body',
      url: '/v1/governance/proposals',
      body: Buffer.alloc(5 << 20, 0x20),
      contentType: 'application/json',
      status: 413,
      code: 'TOO_LARGE',
    },
    {
      name: 'text/plain',
      url: '/v1/intents',
      body: valid,
      contentType: 'text/plain',
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
    },
    {
      name: 'a form',
      url: '/v1/intents',
      body: 'intent=1&signature=2',
      contentType: 'application/x-www-form-urlencoded',
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
    },
    {
      name: 'multipart',
      url: '/v1/intents',
      body: '--x\r\n\r\n--x--',
      contentType: 'multipart/form-data; boundary=x',
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
    },
    {
      name: 'no content type',
      url: '/v1/intents',
      body: valid,
      contentType: null,
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
    },
    {
      name: 'no body at all',
      url: '/v1/intents',
      body: '',
      contentType: null,
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
    },
    {
      name: 'a malformed content type',
      url: '/v1/intents',
      body: valid,
      contentType: 'application/',
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
    },
    {
      name: 'random bytes',
      url: '/v1/intents',
      body: randomBytes(4096),
      contentType: 'application/json',
      status: 400,
      code: RANDOM,
    },
    {
      name: 'random bytes as an approval',
      url: `/v1/intents/${'a'.repeat(64)}/approvals`,
      body: randomBytes(512),
      contentType: 'application/json',
      status: 400,
      code: RANDOM,
    },
  ];
}

function signedRequest(client: Client, x: Hostile): PreparedRequest {
  return client.prepare('POST', x.url, { body: x.body, contentType: x.contentType });
}

async function expectUntouched(h: Harness, target: Target): Promise<void> {
  expect((await send(target, unsigned('GET', '/v1/health'))).status).toBe(200);
  expect((await h.store.intents.list()).intents).toEqual([]);
  expect(await h.store.proposals.list()).toEqual([]);
  expect((await h.store.governance.head())?.seq).toBe(0);
  expect(h.pipeline.approved).toEqual([]);
}

describe.each(backends)('hostile input on $name', (backend) => {
  it('THREATS 31: each malformed, oversized, deep or mistyped body from a real member gets a 4xx with its code', async () => {
    const h = await harness(backend);
    const admin = h.as(h.org.admins[0] ?? h.org.requester);
    for (const x of hostile(h)) {
      const res = await send(h.target, signedRequest(admin, x));
      expect({ name: x.name, ...outcome(res) }).toEqual(expected(x));
    }
    await expectUntouched(h, h.target);
  });

  it('THREATS 31: a concurrent flood, signed and unsigned, gets only 4xx answers; the server stays up; nothing is stored', async () => {
    const h = await harness(backend);
    const admin = h.as(h.org.admins[0] ?? h.org.requester);
    const cases = hostile(h);
    const requests: PreparedRequest[] = [];
    for (let round = 0; round < 5; round++) {
      for (const x of cases) {
        requests.push(signedRequest(admin, x));
        requests.push(unsigned('POST', x.url, { body: x.body, contentType: x.contentType }));
      }
    }
    const answers = await Promise.all(requests.map((r) => send(h.target, r)));
    for (const a of answers) {
      expect(a.status).toBeGreaterThanOrEqual(400);
      expect(a.status).toBeLessThan(500);
      expect(outcome(a).code).toMatch(/^[A-Z0-9_]+$/);
    }
    await expectUntouched(h, h.target);
  });

  it('THREATS 31: over a real socket too, including bytes that are not HTTP at all', async () => {
    const h = await harness(backend);
    const url = await h.coordinator.app.listen({ host: '127.0.0.1', port: 0 });
    const target: Target = { baseUrl: url };
    const admin = h.as(h.org.admins[0] ?? h.org.requester).on(target);
    const picks = hostile(h).filter((x) =>
      [
        '10,000-deep arrays',
        'a 2 MiB body',
        'a 5 MiB governance body',
        'text/plain',
        'random bytes',
        'duplicate keys',
      ].includes(x.name),
    );
    for (const x of picks) {
      const res = await send(target, signedRequest(admin, x));
      expect({ name: x.name, ...outcome(res) }).toEqual(expected(x));
    }
    const { port } = new URL(url);
    for (const garbage of [
      randomBytes(2048),
      Buffer.from('GET / HTTP/9.9\r\nHost\r\n\r\n'),
      Buffer.from('\u0000\r\n\r\n'),
    ]) {
      await new Promise<void>((resolve) => {
        const socket = connect(Number(port), '127.0.0.1', () => socket.end(garbage));
        socket.on('data', () => undefined);
        socket.on('close', () => resolve());
        socket.on('error', () => resolve());
      });
    }
    await expectUntouched(h, target);
  });

  it('unknown routes and methods are 404 NOT_FOUND in the error format', async () => {
    const h = await harness(backend);
    for (const [method, url] of [
      ['GET', '/v1/nothing'],
      ['POST', '/v1/health'],
      ['GET', '/'],
    ] as const) {
      const res = await send(h.target, unsigned(method, url));
      expect(outcome(res)).toEqual({ status: 404, code: 'NOT_FOUND' });
    }
  });
});

/** A raw HTTP/1.1 exchange on one socket: what arrived, and how the connection ended. */
interface RawExchange {
  readonly socket: Socket;
  /** Everything received so far. */
  received(): string;
  /** Resolves when the server has closed its side: 'end' (a FIN) or the socket error's code. */
  readonly closed: Promise<string>;
}

function rawExchange(port: number, head: string): Promise<RawExchange> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let closedAs = '';
    let onClosed: (how: string) => void = () => undefined;
    const closed = new Promise<string>((r) => {
      onClosed = r;
    });
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(head);
      resolve({ socket, received: () => Buffer.concat(chunks).toString('latin1'), closed });
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      closedAs ||= 'end';
      socket.end();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      closedAs ||= err.code ?? 'error';
    });
    socket.on('close', () => onClosed(closedAs || 'close'));
    socket.once('error', reject);
  });
}

function writeAll(socket: Socket, bytes: Buffer): Promise<void> {
  return new Promise((resolve, reject) => socket.write(bytes, (err) => (err ? reject(err) : resolve())));
}

const sleepMs = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('oversized bodies over a real socket (sqlite)', () => {
  const sqlite = backends.find((b) => b.name === 'sqlite');

  async function listening(): Promise<{ h: Harness; url: string; port: number }> {
    if (sqlite === undefined) throw new Error('no sqlite backend');
    const h = await harness(sqlite);
    const url = await h.coordinator.app.listen({ host: '127.0.0.1', port: 0 });
    return { h, url, port: Number(new URL(url).port) };
  }

  it('an oversized body is read to its end before the 413, which then arrives on a cleanly closed connection', async () => {
    const { h, port } = await listening();
    const size = 2 * MAX_BODY_BYTES;
    const x = await rawExchange(
      port,
      `POST /v1/intents HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${size}\r\n\r\n`,
    );
    await writeAll(x.socket, Buffer.alloc(size / 2, 0x20));
    await sleepMs(200);
    // An answer now would come while the client is still writing: closing under it resets the connection.
    expect(x.received()).toBe('');
    await writeAll(x.socket, Buffer.alloc(size / 2, 0x20));
    expect(await x.closed).toBe('end');
    const answer = x.received();
    expect(answer.startsWith('HTTP/1.1 413 ')).toBe(true);
    expect(answer.toLowerCase()).toContain('connection: close');
    expect(answer).toContain('"code":"TOO_LARGE"');
    await expectUntouched(h, h.target);
  });

  it('a body declared past the drain bound gets its 413 at once, without the server waiting for it', async () => {
    const { h, port } = await listening();
    const x = await rawExchange(
      port,
      `POST /v1/intents HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${MAX_DRAIN_BYTES + 1}\r\n\r\n`,
    );
    const how = await x.closed;
    expect(['end', 'ECONNRESET']).toContain(how);
    expect(x.received()).toMatch(/^HTTP\/1\.1 413 [\s\S]*"code":"TOO_LARGE"/);
    await expectUntouched(h, h.target);
  });

  it('a chunked body that never ends is answered 413 and cut off after the drain bound', async () => {
    const { h, port } = await listening();
    const x = await rawExchange(
      port,
      'POST /v1/intents HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n',
    );
    const chunk = Buffer.concat([
      Buffer.from(`${(256 << 10).toString(16)}\r\n`),
      Buffer.alloc(256 << 10, 0x20),
      Buffer.from('\r\n'),
    ]);
    let sent = 0;
    let closed = false;
    void x.closed.then(() => {
      closed = true;
    });
    while (!closed && sent < 4 * MAX_DRAIN_BYTES) {
      try {
        await writeAll(x.socket, chunk);
      } catch {
        break;
      }
      sent += chunk.length;
    }
    await x.closed;
    expect(x.received()).toMatch(/^HTTP\/1\.1 413 [\s\S]*"code":"TOO_LARGE"/);
    // The server stopped reading near the bound, not at what the client was willing to send.
    expect(sent).toBeLessThan(2 * MAX_DRAIN_BYTES);
    await expectUntouched(h, h.target);
  });

  it('a concurrent flood of oversized bodies through fetch: every one gets its 413, none a reset', async () => {
    const { h, url } = await listening();
    const admin = h.as(h.org.admins[0] ?? h.org.requester).on({ baseUrl: url });
    const requests = Array.from({ length: 16 }, (_, i) =>
      i % 2 === 0
        ? admin.prepare('POST', '/v1/intents', { body: Buffer.alloc(2 << 20, 0x20) })
        : admin.prepare('POST', '/v1/governance/proposals', { body: Buffer.alloc(5 << 20, 0x20) }),
    );
    const answers = await Promise.all(
      requests.map((r) =>
        send({ baseUrl: url }, r).then(outcome, (err: unknown) => ({ status: 0, code: String(err) })),
      ),
    );
    expect(answers).toEqual(requests.map(() => ({ status: 413, code: 'TOO_LARGE' })));
    await expectUntouched(h, h.target);
  });
});
