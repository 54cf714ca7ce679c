/**
 * The watcher's reading of Bitcoin Core's ZMQ notifications (zmq.ts), on
 * frames written byte by byte from Core's doc/zmq.md: `rawtx` and the four
 * `sequence` labels parse, with the hash in RPC order and the little-endian
 * numbers; anything else is refused with a stable code, never a throw; and
 * the per-topic numbers show a lost message, a repeat and the wrap at 2^32,
 * per topic, with a reset after a reconnect.
 */
import { describe, expect, it } from 'vitest';
import { parseZmqMessage, SequenceGaps } from '../src/zmq.js';

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
