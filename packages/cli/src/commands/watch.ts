/**
 * `custos watch --config <file>` (issue 12): runs the watcher of
 * @custos/watcher with its own node and its own key, a sealed device key
 * file (`custos keys new` format) of a member holding the `watcher` role.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CustosError, type Digest, decode } from '@custos/core';
import { type Command, commonHelp } from '../command.js';
import { openSealedDeviceKey } from '../device.js';

function log(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), event, ...fields })}\n`);
}

export const watchCommand: Command = {
  name: 'watch',
  summary: 'run the watcher: match every spend of custody funds, freeze on an unexplained one',
  help: `custos watch --config <file.json>

Runs the watcher: it follows its own Bitcoin node block by block and its
mempool (over RPC; with bitcoin.zmq, as the node announces them through
bitcoind's -zmqpubrawtx and -zmqpubsequence, RPC then polled every 10 s
as a safety net and after any lost message), matches every spend of a
governed wallet's coins against what the signers signed; on EVM chains it follows the governed Safes
block by block: every execution is matched by its safeTxHash, and a module
execution or a singleton, owners, threshold, modules, guard or fallback
handler that is not the governed one is unexplained. On anything
unexplained it signs a freeze with its
key (a member with the watcher role), delivers it to the coordinator and
serves it to signers at GET /v1/freezes. SIGTERM or Ctrl-C stops it.

Config file (relative paths are read from the file's folder):
  { "coordinatorUrl": "http://127.0.0.1:8080", "genesis": "<digest>",
    "keyFile": "watcher.key", "passwordFile": "watcher.password",
    "record": "watcher-record.json",
    "bitcoin": { "rpcUrl": "http://127.0.0.1:8332", "rpcUser": "watcher",
                 "rpcPasswordFile": "rpc.password",
                 "zmq": { "rawtx": "tcp://127.0.0.1:28333",
                          "sequence": "tcp://127.0.0.1:28332" } },
    "evm": { "1": { "rpcUrl": "http://127.0.0.1:8545", "startBlock": 0 } },
    "listen": { "host": "127.0.0.1", "port": 8090 }, "pollMs": 200 }
  The key password comes from passwordFile, else passwordEnv, else CUSTOS_WATCHER_PASSWORD.

Example:
  custos watch --config watcher.json
${commonHelp(['help'])}`,
  options: { config: { type: 'string' } },
  common: ['help'],
  async run(ctx, args) {
    const path = args.str('config');
    if (path === undefined) throw new CustosError('MISSING_FIELD', 'custos watch needs --config <file>');
    const { BitcoinRpc } = await import('@custos/bitcoin');
    const { CoordinatorClient, SafeFollower, serveFreezes, Watcher, watcherConfig, ZmqFeed } = await import(
      '@custos/watcher'
    );
    const { watcherMetrics } = await import('@custos/watcher');
    // Prometheus text at GET /metrics next to /v1/freezes: its node's reads and its log, counted.
    const metrics = watcherMetrics();
    const base = dirname(resolve(ctx.cwd, path));
    const config = decode(watcherConfig, readFileSync(resolve(ctx.cwd, path)));
    const password =
      config.passwordFile !== undefined
        ? readFileSync(resolve(base, config.passwordFile), 'utf8').replace(/\r?\n$/, '')
        : (ctx.env[config.passwordEnv ?? 'CUSTOS_WATCHER_PASSWORD'] ?? '');
    const device = await openSealedDeviceKey(resolve(base, config.keyFile), password);
    const btc = config.bitcoin;
    if (btc === undefined && config.evm === undefined) {
      throw new CustosError('MISSING_FIELD', 'the watcher config needs bitcoin, evm or both');
    }
    const rpcPassword =
      btc?.rpcPasswordFile === undefined
        ? undefined
        : readFileSync(resolve(base, btc.rpcPasswordFile), 'utf8').replace(/\r?\n$/, '');
    const rpc =
      btc === undefined
        ? undefined
        : new BitcoinRpc({
            url: btc.rpcUrl,
            ...(btc.rpcUser === undefined ? {} : { username: btc.rpcUser }),
            ...(rpcPassword === undefined ? {} : { password: rpcPassword }),
          });
    const { evmClient } = await import('@custos/evm/state');
    const evm = Object.entries(config.evm ?? {}).map(
      ([chainId, node]) =>
        new SafeFollower({
          chainId: Number(chainId),
          client: evmClient(node.rpcUrl),
          ...(node.startBlock === undefined ? {} : { startBlock: node.startBlock }),
        }),
    );
    const watcher = new Watcher({
      coordinator: new CoordinatorClient(config.coordinatorUrl, device),
      device,
      pinnedGenesis: config.genesis as Digest,
      ...(rpc === undefined ? {} : { rpc: metrics.instrumentRpc(rpc) }),
      ...(btc?.zmq === undefined ? {} : { zmq: new ZmqFeed(btc.zmq) }),
      evm,
      recordPath: resolve(base, config.record),
      ...(config.startHeight === undefined ? {} : { startHeight: config.startHeight }),
      ...(config.gap === undefined ? {} : { gap: config.gap }),
      log: (event, fields) => {
        metrics.observe(event, fields);
        log(event, fields);
      },
    });
    const server = await serveFreezes(() => watcher.freezes(), {
      metrics,
      ...(config.listen?.host === undefined ? {} : { host: config.listen.host }),
      ...(config.listen?.port === undefined ? {} : { port: config.listen.port }),
    });
    log('watcher.started', {
      member: device.member,
      device: device.device,
      url: server.url,
      pid: process.pid,
    });
    const controller = new AbortController();
    process.once('SIGINT', () => controller.abort());
    process.once('SIGTERM', () => controller.abort());
    // With ZMQ the node's announcements drive it; the RPC rounds are a safety net.
    await watcher.run(controller.signal, config.pollMs ?? (btc?.zmq === undefined ? 200 : 10_000));
    await server.close();
    log('watcher.stopped');
    return 0;
  },
};
