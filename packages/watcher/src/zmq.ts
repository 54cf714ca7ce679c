/**
 * The watcher's push feed from a Bitcoin Core node (issue 12): the ZMQ
 * publishers bitcoind opens with `-zmqpubrawtx=<address>` and
 * `-zmqpubsequence=<address>` (Core's doc/zmq.md), read with a zeromq SUB
 * socket, so a theft is judged as the node accepts it rather than at the
 * next RPC poll.
 *
 * Core's wire format, one multipart message per notification:
 * `[topic, body, sequence]`, where `sequence` is 4 bytes, a little-endian
 * uint32 counting the messages of that topic the publisher sent (it wraps).
 * - `rawtx`: the body is a serialized transaction, sent when the mempool
 *   accepts it and again for each transaction of a connected block.
 * - `sequence`: the body is a 32-byte hash in the order RPC prints it, then
 *   one label byte: `C` a block connected, `D` a block disconnected, `A` a
 *   transaction added to the mempool and `R` removed for a reason other than
 *   a block, these two followed by the mempool's 8-byte little-endian
 *   sequence number.
 *
 * ZMQ drops messages when a subscriber is slow (the high water mark) and
 * loses those sent while it is not connected, and says nothing about it:
 * the per-topic numbers are the only sign. {@link SequenceGaps} finds a
 * number that does not follow the last one; the watcher then reads its node
 * over RPC again (new blocks and the mempool), as it does on a reconnect and
 * on the first message after it subscribed. Pure parsing and gap logic here;
 * {@link ZmqFeed} holds the sockets.
 */
import { createRequire } from 'node:module';
import { accept, CustosError, type Result, refuse, toHex } from '@custos/core';

export type ZmqTopic = 'rawtx' | 'sequence';

export type ZmqMessage =
  | { readonly topic: 'rawtx'; readonly seq: number; readonly raw: Uint8Array }
  | {
      readonly topic: 'sequence';
      readonly seq: number;
      /** Display order hex, as RPC prints it. */
      readonly hash: string;
      readonly label: 'C' | 'D';
    }
  | {
      readonly topic: 'sequence';
      readonly seq: number;
      readonly hash: string;
      readonly label: 'A' | 'R';
      readonly mempoolSeq: bigint;
    };

/** A transaction larger than a block cannot be one: refused before it is parsed. */
const MAX_RAWTX_BYTES = 4_000_000;
const TOPICS: ReadonlySet<string> = new Set(['rawtx', 'sequence']);

/** Parses one multipart message as Core sends it; anything else is refused with a stable code. */
export function parseZmqMessage(frames: readonly Uint8Array[]): Result<ZmqMessage> {
  if (frames.length !== 3) {
    return refuse('INVALID_VALUE', `a ZMQ notification has 3 parts, this one ${frames.length}`);
  }
  const [topicBytes, body, seqBytes] = frames as [Uint8Array, Uint8Array, Uint8Array];
  const topic = new TextDecoder().decode(topicBytes);
  if (!TOPICS.has(topic)) return refuse('INVALID_VALUE', `unexpected ZMQ topic ${JSON.stringify(topic)}`);
  if (seqBytes.length !== 4) {
    return refuse('INVALID_VALUE', `the ${topic} sequence number is 4 bytes, not ${seqBytes.length}`);
  }
  const seq = new DataView(seqBytes.buffer, seqBytes.byteOffset, 4).getUint32(0, true);
  if (topic === 'rawtx') {
    if (body.length === 0) return refuse('INVALID_VALUE', 'an empty rawtx notification');
    if (body.length > MAX_RAWTX_BYTES) {
      return refuse('TOO_LARGE', `a rawtx notification of ${body.length} bytes`);
    }
    return accept({ topic: 'rawtx', seq, raw: body });
  }
  const label = body.length >= 33 ? String.fromCharCode(body[32] as number) : '';
  const hash = toHex(body.subarray(0, 32));
  if ((label === 'C' || label === 'D') && body.length === 33)
    return accept({ topic: 'sequence', seq, hash, label });
  if ((label === 'A' || label === 'R') && body.length === 41) {
    const mempoolSeq = new DataView(body.buffer, body.byteOffset + 33, 8).getBigUint64(0, true);
    return accept({ topic: 'sequence', seq, hash, label, mempoolSeq });
  }
  return refuse(
    'INVALID_VALUE',
    `a sequence notification is a 32-byte hash and C or D, or A or R and 8 bytes; got ${body.length} bytes`,
  );
}

/** What the number of a message says about the messages before it. */
export type SequenceCheck =
  | { readonly kind: 'first' }
  | { readonly kind: 'next' }
  /** `missed` messages were lost (a number seen again counts as nearly 2^32 lost: still a gap). */
  | { readonly kind: 'gap'; readonly missed: number };

/**
 * Per-topic message numbers, for gap detection. Pure: the watcher asks it for
 * each message and reconciles over RPC on `first` and `gap`.
 */
export class SequenceGaps {
  readonly #last = new Map<string, number>();

  check(topic: string, seq: number): SequenceCheck {
    const last = this.#last.get(topic);
    this.#last.set(topic, seq);
    if (last === undefined) return { kind: 'first' };
    const missed = (seq - last - 1 + 2 ** 32) % 2 ** 32;
    return missed === 0 ? { kind: 'next' } : { kind: 'gap', missed };
  }

  /** Forgets a topic's last number (a new connection: the publisher may have restarted at 0). */
  reset(topic: string): void {
    this.#last.delete(topic);
  }
}

/** What the feed hands the watcher, in the order it happened. */
export type ZmqItem =
  | { readonly kind: 'message'; readonly message: ZmqMessage }
  | { readonly kind: 'invalid'; readonly code: string; readonly message: string }
  | { readonly kind: 'connected'; readonly topics: readonly ZmqTopic[]; readonly endpoint: string }
  | { readonly kind: 'disconnected'; readonly topics: readonly ZmqTopic[]; readonly endpoint: string };

export interface ZmqEndpoints {
  readonly rawtx: string;
  readonly sequence: string;
}

/** Something that hands the watcher ZMQ items: {@link ZmqFeed}, or a test's own. */
export interface ZmqSource {
  start(sink: (item: ZmqItem) => void): void;
  close(): Promise<void>;
}

/**
 * The SUB sockets: one per distinct address (both topics on one socket when
 * bitcoind publishes them on the same one). zeromq reconnects by itself; a
 * disconnect and the next connect are reported so the watcher reconciles.
 */
export class ZmqFeed implements ZmqSource {
  readonly #endpoints: ZmqEndpoints;
  readonly #sockets: { close(): void }[] = [];
  readonly #loops: Promise<void>[] = [];

  constructor(endpoints: ZmqEndpoints) {
    this.#endpoints = endpoints;
  }

  start(sink: (item: ZmqItem) => void): void {
    if (this.#sockets.length > 0) throw new CustosError('CONFLICT', 'the ZMQ feed is already started');
    const byAddress = new Map<string, ZmqTopic[]>();
    for (const topic of ['sequence', 'rawtx'] as const) {
      const address = this.#endpoints[topic];
      byAddress.set(address, [...(byAddress.get(address) ?? []), topic]);
    }
    // Loaded here, not at the top: a watcher without ZMQ never loads the native module.
    const zmq = loadZeromq();
    for (const [endpoint, topics] of byAddress) {
      const socket = new zmq.Subscriber({ reconnectInterval: 100, reconnectMaxInterval: 2000 });
      this.#sockets.push(socket);
      socket.events.on('handshake', () => sink({ kind: 'connected', topics, endpoint }));
      socket.events.on('disconnect', () => sink({ kind: 'disconnected', topics, endpoint }));
      socket.connect(endpoint);
      socket.subscribe(...topics);
      this.#loops.push(
        (async () => {
          try {
            for await (const frames of socket) {
              const parsed = parseZmqMessage(frames);
              sink(
                parsed.ok
                  ? { kind: 'message', message: parsed.value }
                  : { kind: 'invalid', code: parsed.code, message: parsed.message },
              );
            }
          } catch (err) {
            // Closing the socket ends the loop; anything else is one more reason to reconcile.
            if (!socket.closed) {
              sink({ kind: 'invalid', code: 'UNAVAILABLE', message: String(err) });
              sink({ kind: 'disconnected', topics, endpoint });
            }
          }
        })(),
      );
    }
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.close();
    await Promise.allSettled(this.#loops);
  }
}

type Zeromq = typeof import('zeromq');
let zeromq: Zeromq | undefined;
function loadZeromq(): Zeromq {
  try {
    zeromq ??= createRequire(import.meta.url)('zeromq') as Zeromq;
  } catch (err) {
    throw new CustosError(
      'UNAVAILABLE',
      `bitcoin.zmq is configured but the zeromq module does not load here (${err instanceof Error ? err.message : String(err)}); remove bitcoin.zmq to poll RPC only`,
    );
  }
  return zeromq;
}
