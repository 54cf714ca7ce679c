/**
 * `custos watch --config <file>`: the watcher's configuration (JSON). Paths
 * are relative to the file.
 *
 * ```json
 * {"coordinatorUrl":"https://custos.example","genesis":"<digest>","keyFile":"watcher.key",
 *  "passwordFile":"watcher.password","record":"watcher-record.json",
 *  "bitcoin":{"rpcUrl":"http://127.0.0.1:8332/","rpcUser":"watcher","rpcPasswordFile":"rpc.password",
 *             "zmq":{"rawtx":"tcp://127.0.0.1:28333","sequence":"tcp://127.0.0.1:28332"}},
 *  "evm":{"1":{"rpcUrl":"http://127.0.0.1:8545/","startBlock":0}},
 *  "listen":{"host":"127.0.0.1","port":8090},"pollMs":200,"startHeight":0}
 * ```
 * `bitcoin` and `evm` are each optional; at least one is needed (the CLI checks).
 * `bitcoin.zmq` (optional) names the node's ZMQ publishers, bitcoind's
 * `-zmqpubrawtx` and `-zmqpubsequence` (zmq.ts): with them the watcher reads
 * transactions and blocks as the node announces them and polls RPC only as
 * a safety net (`pollMs` then defaults to 10 s, not 200 ms); both topics are required, since
 * `rawtx` carries the transactions and `sequence` the blocks, reorgs and
 * the numbering that shows a lost message. The two may share one address.
 */
import { primitives, schema } from '@custos/core';
import { evmWatchNodes } from './evm-follow.js';

const { object, string, int } = schema;
const path = string({ min: 1, max: 4096 });
const url = string({ min: 1, max: 2048, pattern: /^https?:\/\/[^\s@]+$/ });
/** A ZMQ endpoint as bitcoind's -zmqpub* options take it: tcp://host:port or ipc://path. */
const zmqUrl = string({ min: 1, max: 1024, pattern: /^(?:tcp:\/\/[^\s@/]+:[0-9]{1,5}|ipc:\/\/\S+)$/ });

export const watcherConfig = object(
  {
    coordinatorUrl: url,
    genesis: primitives.digest,
    /** The watcher's sealed device key file (`custos keys new` format). */
    keyFile: path,
    record: path,
  },
  {
    bitcoin: object(
      { rpcUrl: url },
      {
        rpcUser: string({ min: 1, max: 256 }),
        rpcPasswordFile: path,
        zmq: object({ rawtx: zmqUrl, sequence: zmqUrl }),
      },
    ),
    /** EVM chain id → the watcher's own node for the governed Safes there (evm-follow.ts). */
    evm: evmWatchNodes,
    passwordFile: path,
    passwordEnv: string({ min: 1, max: 128, pattern: /^[A-Z_][A-Z0-9_]*$/ }),
    listen: object({}, { host: string({ min: 1, max: 255 }), port: int({ min: 0, max: 65535 }) }),
    pollMs: int({ min: 10, max: 60_000 }),
    startHeight: int({ min: 0, max: 100_000_000 }),
    gap: int({ min: 1, max: 1000 }),
  },
);
export type WatcherConfig = schema.Infer<typeof watcherConfig>;
