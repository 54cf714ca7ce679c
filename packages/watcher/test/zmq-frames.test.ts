/**
 * The watcher's reading of Bitcoin Core's ZMQ notifications (zmq.ts), on
 * frames written byte by byte from Core's doc/zmq.md: `rawtx` and the four
 * `sequence` labels parse, with the hash in RPC order and the little-endian
 * numbers; anything else is refused with a stable code, never a throw; and
 * the per-topic numbers show a lost message, a repeat and the wrap at 2^32,
 * per topic, with a reset after a reconnect. The config's `bitcoin.zmq`
 * takes both topics' addresses, with stable codes for anything else; and
 * the feed's SUB sockets against real zeromq PUB sockets report the
 * connect, the messages in order, the publisher going away and coming back.
 */
import { createRequire } from 'node:module';
import { CustosError, decode } from '@custos/core';
import { describe, expect, it } from 'vitest';
import { watcherConfig } from '../src/config.js';
import { parseZmqMessage, SequenceGaps, ZmqFeed, type ZmqItem } from '../src/zmq.js';

const zmq = createRequire(import.meta.url)('zeromq') as typeof import('zeromq');

const le32 = (n: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
};
const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const HASH = '00000000000000000002a7c4c1e48d76c5a37902165a270156b7a8d72728a054';
const hashBody = (label: string, mempoolSeq?: bigint): Uint8Array => {
  const body = new Uint8Array(mempoolSeq === undefined ? 33 : 41);
  body.set(Buffer.from(HASH, 'hex'), 0);
  body[32] = label.charCodeAt(0);
  if (mempoolSeq !== undefined) new DataView(body.buffer).setBigUint64(33, mempoolSeq, true);
  return body;
};

describe('ZMQ notifications as Core sends them', () => {
  it('parses rawtx and the sequence labels C, D, A and R', () => {
    const raw = Uint8Array.from([2, 0, 0, 0, 1, 2, 3]);
    expect(parseZmqMessage([text('rawtx'), raw, le32(7)])).toEqual({
      ok: true,
      value: { topic: 'rawtx', seq: 7, raw },
    });
    for (const label of ['C', 'D'] as const) {
      expect(parseZmqMessage([text('sequence'), hashBody(label), le32(0xfffffffe)])).toEqual({
        ok: true,
        value: { topic: 'sequence', seq: 0xfffffffe, hash: HASH, label },
      });
    }
    for (const label of ['A', 'R'] as const) {
      expect(parseZmqMessage([text('sequence'), hashBody(label, 2n ** 40n + 3n), le32(1)])).toEqual({
        ok: true,
        value: { topic: 'sequence', seq: 1, hash: HASH, label, mempoolSeq: 2n ** 40n + 3n },
      });
    }
  });

  it('refuses what Core does not send: wrong part count, topic, number size, label or body size', () => {
    const refused = (frames: Uint8Array[]) => {
      const r = parseZmqMessage(frames);
      return r.ok ? 'accepted' : r.code;
    };
    expect(refused([text('rawtx'), Uint8Array.of(1)])).toBe('INVALID_VALUE');
    expect(refused([text('rawtx'), Uint8Array.of(1), le32(0), le32(0)])).toBe('INVALID_VALUE');
    expect(refused([text('hashtx'), new Uint8Array(32), le32(0)])).toBe('INVALID_VALUE');
    expect(refused([text('rawtx'), Uint8Array.of(1), Uint8Array.of(0, 0, 0)])).toBe('INVALID_VALUE');
    expect(refused([text('rawtx'), new Uint8Array(0), le32(0)])).toBe('INVALID_VALUE');
    expect(refused([text('rawtx'), new Uint8Array(4_000_001), le32(0)])).toBe('TOO_LARGE');
    expect(refused([text('sequence'), hashBody('X'), le32(0)])).toBe('INVALID_VALUE');
    expect(refused([text('sequence'), hashBody('C', 1n), le32(0)])).toBe('INVALID_VALUE');
    expect(refused([text('sequence'), hashBody('A'), le32(0)])).toBe('INVALID_VALUE');
    expect(refused([text('sequence'), new Uint8Array(32), le32(0)])).toBe('INVALID_VALUE');
  });
});

describe('sequence gaps', () => {
  it('first, next, a gap with the count lost, a repeat, and the wrap at 2^32, each topic on its own', () => {
    const gaps = new SequenceGaps();
    expect(gaps.check('rawtx', 5)).toEqual({ kind: 'first' });
    expect(gaps.check('rawtx', 6)).toEqual({ kind: 'next' });
    expect(gaps.check('sequence', 100)).toEqual({ kind: 'first' });
    expect(gaps.check('rawtx', 9)).toEqual({ kind: 'gap', missed: 2 });
    expect(gaps.check('sequence', 101)).toEqual({ kind: 'next' });
    // The same number again is no "next": the publisher restarted or the stream is confused.
    expect(gaps.check('rawtx', 9)).toEqual({ kind: 'gap', missed: 2 ** 32 - 1 });
    expect(gaps.check('rawtx', 2 ** 32 - 1)).toEqual({ kind: 'gap', missed: 2 ** 32 - 1 - 9 - 1 });
    expect(gaps.check('rawtx', 0)).toEqual({ kind: 'next' });
    expect(gaps.check('rawtx', 2)).toEqual({ kind: 'gap', missed: 1 });
    gaps.reset('rawtx');
    expect(gaps.check('rawtx', 0)).toEqual({ kind: 'first' });
    expect(gaps.check('sequence', 102)).toEqual({ kind: 'next' });
  });
});

describe('the watcher config, bitcoin.zmq', () => {
  const base = {
    coordinatorUrl: 'http://127.0.0.1:8080',
    genesis: 'ab'.repeat(32),
    keyFile: 'watcher.key',
    record: 'watcher-record.json',
  };
  const withZmq = (zmq: unknown) => ({ ...base, bitcoin: { rpcUrl: 'http://127.0.0.1:8332', zmq } });
  const codeOf = (value: unknown): string | undefined => {
    try {
      decode(watcherConfig, JSON.stringify(value));
      return undefined;
    } catch (err) {
      return err instanceof CustosError ? err.code : 'NOT_A_CUSTOS_ERROR';
    }
  };

  it('takes both publishers, on one address or two, tcp or ipc; without it the watcher polls as before', () => {
    const c = decode(
      watcherConfig,
      JSON.stringify(withZmq({ rawtx: 'tcp://127.0.0.1:28333', sequence: 'tcp://127.0.0.1:28332' })),
    );
    expect(c.bitcoin?.zmq).toEqual({ rawtx: 'tcp://127.0.0.1:28333', sequence: 'tcp://127.0.0.1:28332' });
    expect(codeOf(withZmq({ rawtx: 'tcp://node:28332', sequence: 'tcp://node:28332' }))).toBeUndefined();
    expect(
      codeOf(withZmq({ rawtx: 'ipc:///run/bitcoind/zmq', sequence: 'tcp://[::1]:28332' })),
    ).toBeUndefined();
    expect(codeOf({ ...base, bitcoin: { rpcUrl: 'http://127.0.0.1:8332' } })).toBeUndefined();
  });

  it('refuses one topic alone, another scheme, no port, an unknown topic or a wrong type, each with its code', () => {
    expect(codeOf(withZmq({ rawtx: 'tcp://127.0.0.1:28333' }))).toBe('MISSING_FIELD');
    expect(codeOf(withZmq({ sequence: 'tcp://127.0.0.1:28332' }))).toBe('MISSING_FIELD');
    expect(codeOf(withZmq({ rawtx: 'http://127.0.0.1:28333', sequence: 'tcp://127.0.0.1:28332' }))).toBe(
      'INVALID_VALUE',
    );
    expect(codeOf(withZmq({ rawtx: 'tcp://127.0.0.1', sequence: 'tcp://127.0.0.1:28332' }))).toBe(
      'INVALID_VALUE',
    );
    expect(
      codeOf(withZmq({ rawtx: 'tcp://a:1', sequence: 'tcp://a:2', hashblock: 'tcp://127.0.0.1:28334' })),
    ).toBe('UNKNOWN_FIELD');
    expect(codeOf(withZmq('tcp://127.0.0.1:28332'))).toBe('WRONG_TYPE');
  });
});

describe('the ZMQ feed against real zeromq publishers', () => {
  it('reports the connect, the messages in order, a gap-free stream, the publisher gone and back', async () => {
    const items: ZmqItem[] = [];
    const wait = async (what: string, done: () => boolean): Promise<void> => {
      for (const deadline = Date.now() + 10_000; !done(); ) {
        if (Date.now() > deadline) throw new Error(`no ${what}: ${JSON.stringify(items)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    let pub = new zmq.Publisher();
    await pub.bind('tcp://127.0.0.1:*');
    const endpoint = pub.lastEndpoint as string;
    // Both topics on one address, as bitcoind allows: one socket.
    const feed = new ZmqFeed({ rawtx: endpoint, sequence: endpoint });
    feed.start((item) => items.push(item));
    try {
      await wait('connect', () => items.some((i) => i.kind === 'connected'));
      expect(items[0]).toEqual({ kind: 'connected', endpoint, topics: ['sequence', 'rawtx'] });
      const le = (n: number) => {
        const b = Buffer.alloc(4);
        b.writeUInt32LE(n);
        return b;
      };
      // Published until the subscription has reached the publisher (ZMQ's slow joiner), then in order.
      const block = Buffer.concat([Buffer.alloc(32, 1), Buffer.from('C')]);
      for (let n = 0; !items.some((i) => i.kind === 'message'); n++) {
        await pub.send([Buffer.from('sequence'), block, le(n)]);
        await new Promise((r) => setTimeout(r, 20));
      }
      await pub.send([Buffer.from('rawtx'), Buffer.from([2, 0, 0, 0]), le(0)]);
      await pub.send([Buffer.from('hashtx'), Buffer.alloc(32), le(0)]);
      await pub.send([Buffer.from('rawtx'), Buffer.from([2, 0, 0, 0]), le(1), Buffer.alloc(1)]);
      await wait(
        'the rawtx and the bad message',
        () => items.filter((i) => i.kind !== 'connected').length >= 3,
      );
      const after = items.filter((i) => i.kind !== 'connected').slice(-2);
      expect(after[0]).toMatchObject({ kind: 'message', message: { topic: 'rawtx', seq: 0 } });
      // hashtx was not subscribed to; the four-part one is refused, not thrown.
      expect(after[1]).toMatchObject({ kind: 'invalid', code: 'INVALID_VALUE' });

      // The publisher goes away (bitcoind restarts) and comes back on the same address.
      pub.close();
      await wait('disconnect', () => items.some((i) => i.kind === 'disconnected'));
      expect(items.find((i) => i.kind === 'disconnected')).toEqual({
        kind: 'disconnected',
        endpoint,
        topics: ['sequence', 'rawtx'],
      });
      pub = new zmq.Publisher();
      await pub.bind(endpoint);
      await wait('reconnect', () => items.filter((i) => i.kind === 'connected').length >= 2);
    } finally {
      await feed.close();
      pub.close();
    }
  });
});
