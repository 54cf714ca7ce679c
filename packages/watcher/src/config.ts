/**
 * `custos watch --config <file>`: the watcher's configuration (JSON). Paths
 * are relative to the file.
 *
 * ```json
 * {"coordinatorUrl":"https://custos.example","genesis":"<digest>","keyFile":"watcher.key",
 *  "passwordFile":"watcher.password","record":"watcher-record.json",
 *  "bitcoin":{"rpcUrl":"http://127.0.0.1:8332/","rpcUser":"watcher","rpcPasswordFile":"rpc.password"},
 *  "evm":{"1":{"rpcUrl":"http://127.0.0.1:8545/","startBlock":0}},
 *  "listen":{"host":"127.0.0.1","port":8090},"pollMs":200,"startHeight":0}
 * ```
 * `bitcoin` and `evm` are each optional; at least one is needed (the CLI checks).
 */
import { primitives, schema } from '@custos/core';
import { evmWatchNodes } from './evm-follow.js';

const { object, string, int } = schema;
const path = string({ min: 1, max: 4096 });
const url = string({ min: 1, max: 2048, pattern: /^https?:\/\/[^\s@]+$/ });

export const watcherConfig = object(
  {
    coordinatorUrl: url,
    genesis: primitives.digest,
    /** The watcher's sealed device key file (`custos keys new` format). */
    keyFile: path,
    record: path,
  },
  {
    bitcoin: object({ rpcUrl: url }, { rpcUser: string({ min: 1, max: 256 }), rpcPasswordFile: path }),
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
