/**
 * Bitcoin Core's ZMQ publishers, played by the in-process regtest node
 * (bcoin has none): `rawtx` and `sequence` PUB sockets bound on 127.0.0.1
 * at ports the system picks, fed from the node's events, so a watcher
 * process subscribes exactly as it would to bitcoind started with
 * `-zmqpubrawtx=<address> -zmqpubsequence=<address>`.
 *
 * The frames are written here from Core's doc/zmq.md and
 * src/zmq/zmqpublishnotifier.cpp, independently of the watcher's parser:
 * `[topic, body, 4-byte little-endian per-topic sequence number]`.
 * - a transaction accepted by the mempool: `rawtx` (its bytes) and
 *   `sequence` (txid, `A`, the 8-byte little-endian mempool sequence);
 * - a block connected: `rawtx` for each of its transactions, then
 *   `sequence` (block hash, `C`);
 * - a block disconnected: `sequence` (block hash, `D`).
 * Hashes are in the order RPC prints them.
 *
 * {@link ZmqPublisher.drop} loses the next messages of a topic on purpose,
 * as ZMQ does at its high water mark: the numbers still count them, so a
 * subscriber sees the gap.
 */
import { createRequire } from 'node:module';
import type { RegtestEvent, RegtestNode } from '@custos/bitcoin/regtest';

type Zeromq = typeof import('zeromq');
const zmq = createRequire(import.meta.url)('zeromq') as Zeromq;

export type ZmqPublisherTopic = 'rawtx' | 'sequence';

export interface ZmqPublisher {
  /** tcp://127.0.0.1:<port> of each publisher, for the watcher's `bitcoin.zmq`. */
  readonly rawtx: string;
  readonly sequence: string;
  /** Messages sent per topic so far (dropped ones included: they took a number). */
  sent(topic: ZmqPublisherTopic): number;
  /** Loses the next `n` messages of `topic` (numbered, never sent). */
  drop(topic: ZmqPublisherTopic, n: number): void;
  /** Resolves once every message handed to the sockets so far is sent. */
  flushed(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Binds both publishers (`at`: the addresses of a publisher closed before, as a restarted bitcoind
 * binds its configured ones; else ports the system picks) and publishes the node's events.
 */
export async function startZmqPublisher(
  node: RegtestNode,
  at?: { readonly rawtx: string; readonly sequence: string },
): Promise<ZmqPublisher> {
  const sockets = {
    rawtx: new zmq.Publisher({ sendHighWaterMark: 100_000 }),
    sequence: new zmq.Publisher({ sendHighWaterMark: 100_000 }),
  };
  const urls = { rawtx: '', sequence: '' };
  for (const topic of ['rawtx', 'sequence'] as const) {
    // A port just released may take a moment to be free again.
    for (let attempt = 0; ; attempt++) {
      try {
        await sockets[topic].bind(at?.[topic] ?? 'tcp://127.0.0.1:*');
        break;
      } catch (err) {
        if (at === undefined || attempt >= 40) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const endpoint = sockets[topic].lastEndpoint;
    if (endpoint === null) throw new Error('zeromq bound no endpoint');
    urls[topic] = endpoint;
  }
  const next = { rawtx: 0, sequence: 0 };
  const dropping = { rawtx: 0, sequence: 0 };
  let mempoolSeq = 0n;
  // One send at a time per socket (zeromq refuses a second while one is under way), in event order.
  let queue: Promise<void> = Promise.resolve();

  const publish = (topic: ZmqPublisherTopic, body: Uint8Array): void => {
    const seq = Buffer.alloc(4);
    seq.writeUInt32LE(next[topic] >>> 0);
    next[topic] += 1;
    if (dropping[topic] > 0) {
      dropping[topic] -= 1;
      return;
    }
    const frames = [Buffer.from(topic), Buffer.from(body), seq];
    queue = queue.then(() => sockets[topic].send(frames)).catch(() => undefined);
  };
  const hashBody = (hash: string, label: string, seq?: bigint): Uint8Array => {
    const body = Buffer.alloc(seq === undefined ? 33 : 41);
    Buffer.from(hash, 'hex').copy(body, 0);
    body.write(label, 32, 'latin1');
    if (seq !== undefined) body.writeBigUInt64LE(seq, 33);
    return body;
  };
  const onEvent = (e: RegtestEvent): void => {
    if (e.kind === 'tx') {
      publish('rawtx', e.raw);
      mempoolSeq += 1n;
      publish('sequence', hashBody(e.txid, 'A', mempoolSeq));
    } else if (e.kind === 'connect') {
      for (const tx of e.txs) publish('rawtx', tx.raw);
      publish('sequence', hashBody(e.hash, 'C'));
    } else {
      publish('sequence', hashBody(e.hash, 'D'));
    }
  };
  const unsubscribe = node.onEvent(onEvent);

  return {
    rawtx: urls.rawtx,
    sequence: urls.sequence,
    sent: (topic) => next[topic],
    drop: (topic, n) => {
      dropping[topic] += n;
    },
    flushed: () => queue,
    close: async () => {
      unsubscribe();
      await queue;
      for (const s of Object.values(sockets)) s.close();
    },
  };
}
