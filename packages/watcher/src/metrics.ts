/**
 * The watcher's Prometheus metrics (issue 12), served at `GET /metrics` on
 * its HTTP server next to `/v1/freezes`, through prom-client.
 *
 * Everything is observed from outside the watcher's decisions, so counting
 * cannot change what it judges:
 * - its node, through {@link WatcherMetrics.instrumentRpc}: a Proxy over the
 *   RPC client that counts the blocks and mempool transactions read, keeps
 *   the node's tip (getblockcount) and the last block read, and the time of
 *   the last poll of the node; every other method goes to the client as is;
 * - its log, through {@link WatcherMetrics.observe}: spends matched,
 *   unexplained ones by code, freezes signed and delivered, failed rounds,
 *   the ZMQ feed's gaps, messages lost, connects and disconnects (each one a
 *   reconciliation over RPC), and blocks taken back after a reorg.
 *
 * Lag is the node's tip minus the last block read: 0 when caught up (the
 * mempool is read only then). A watcher whose rounds fail (its coordinator
 * or node unreachable) stops polling: `custos_watcher_last_poll_timestamp_seconds`
 * goes stale, which the alert rules in docs/operations.md catch.
 *
 * Counters are this process's, since it started. No label carries an
 * address, an amount or a txid: codes only.
 */
import type { BitcoinRpc } from '@custos/bitcoin';
import { Counter, Gauge, Registry } from 'prom-client';

export interface WatcherMetrics {
  readonly registry: Registry;
  readonly contentType: string;
  /** The watcher's own node, counted (the same client, through a Proxy). */
  instrumentRpc<T extends BitcoinRpc>(rpc: T): T;
  /** One line of the watcher's log (`watcher.matched`, `watcher.alert`, `watcher.freeze`, `watcher.error`). */
  observe(event: string, fields: Readonly<Record<string, unknown>>): void;
  /** The text exposition format. */
  render(): Promise<string>;
}

export function watcherMetrics(opts: { readonly clock?: () => number } = {}): WatcherMetrics {
  const clock = opts.clock ?? Date.now;
  const registry = new Registry();
  const counter = (name: string, help: string, labelNames: readonly string[] = []) =>
    new Counter({ name, help, labelNames: [...labelNames], registers: [registry] });
  const gauge = (name: string, help: string) => new Gauge({ name, help, registers: [registry] });
  const blocks = counter('custos_watcher_blocks_read_total', 'Blocks read from the watcher’s own node.');
  const mempool = counter(
    'custos_watcher_mempool_transactions_read_total',
    'Mempool transactions read from the watcher’s own node (each once while it stays in the mempool).',
  );
  const matched = counter(
    'custos_watcher_spends_matched_total',
    'Spends of governed funds matched to what the signers signed.',
  );
  const unexplained = counter(
    'custos_watcher_spends_unexplained_total',
    'Spends or Safe changes nothing the signers signed explains, by code (each one freezes).',
    ['code'],
  );
  const signed = counter('custos_watcher_freezes_signed_total', 'Freezes this watcher signed.');
  const delivered = counter(
    'custos_watcher_freezes_delivered_total',
    'Freezes the coordinator accepted from this watcher.',
  );
  const errors = counter(
    'custos_watcher_round_errors_total',
    'Rounds that failed (coordinator or node unreachable, governance that does not verify), by code.',
    ['code'],
  );
  const zmqEvents = counter(
    'custos_watcher_zmq_events_total',
    'ZMQ feed events that made the watcher read its node again over RPC: gap (messages lost), connected, disconnected, invalid.',
    ['kind'],
  );
  const zmqMissed = counter(
    'custos_watcher_zmq_missed_messages_total',
    'ZMQ messages lost, by the gaps in each topic’s sequence numbers.',
  );
  const disconnected = counter(
    'custos_watcher_blocks_disconnected_total',
    'Blocks the watcher took back from its coin view after a reorg, by how it learnt of it (zmq or rpc).',
    ['source'],
  );
  const tip = gauge('custos_watcher_node_height', 'The watcher’s node’s tip at the last poll.');
  const processed = gauge('custos_watcher_processed_height', 'The last block the watcher read.');
  const lag = gauge(
    'custos_watcher_lag_blocks',
    'Blocks the watcher is behind its node (node tip minus the last block read); 0 when caught up.',
  );
  const lastPoll = gauge(
    'custos_watcher_last_poll_timestamp_seconds',
    'When the watcher last polled its node (Unix seconds).',
  );
  let tipHeight: number | null = null;
  let readHeight: number | null = null;
  const setLag = (): void => {
    if (tipHeight !== null && readHeight !== null) lag.set(Math.max(0, tipHeight - readHeight));
  };
  const code = (fields: Readonly<Record<string, unknown>>): string =>
    typeof fields.code === 'string' && /^[A-Z_]{1,64}$/.test(fields.code) ? fields.code : 'INTERNAL';

  return {
    registry,
    contentType: registry.contentType,
    instrumentRpc<T extends BitcoinRpc>(rpc: T): T {
      /** The height asked of getblockhash, read once its block arrives. */
      const asked = new Map<string, number>();
      return new Proxy(rpc, {
        get(target, prop) {
          const value = Reflect.get(target, prop, target) as unknown;
          if (typeof value !== 'function') return value;
          const fn = value as (...args: unknown[]) => Promise<unknown>;
          switch (prop) {
            case 'getBlockCount':
              return async () => {
                const height = (await fn.call(target)) as number;
                tipHeight = height;
                tip.set(height);
                lastPoll.set(clock() / 1000);
                setLag();
                return height;
              };
            case 'getBlockHash':
              return async (height: number) => {
                const hash = (await fn.call(target, height)) as string;
                asked.clear();
                asked.set(hash, height);
                return hash;
              };
            case 'getBlockRaw':
              return async (hash: string) => {
                const raw = await fn.call(target, hash);
                blocks.inc();
                const height = asked.get(hash);
                if (height !== undefined) {
                  readHeight = height;
                  processed.set(height);
                  setLag();
                }
                return raw;
              };
            case 'getRawMempool':
              return async () => {
                const list = await fn.call(target);
                // The mempool is read only when every block is: caught up.
                if (tipHeight !== null) {
                  readHeight = Math.max(readHeight ?? tipHeight, tipHeight);
                  processed.set(readHeight);
                  setLag();
                }
                return list;
              };
            case 'getRawTransaction':
              return async (txid: string) => {
                const raw = await fn.call(target, txid);
                mempool.inc();
                return raw;
              };
            default:
              return fn.bind(target);
          }
        },
      });
    },
    observe(event, fields) {
      if (event === 'watcher.matched') matched.inc();
      else if (event === 'watcher.alert') unexplained.inc({ code: code(fields) });
      else if (event === 'watcher.freeze') {
        signed.inc();
        if (fields.delivered === true) delivered.inc();
      } else if (event === 'watcher.error') errors.inc({ code: code(fields) });
      else if (event === 'watcher.zmq') {
        const kind = ['gap', 'connected', 'disconnected', 'invalid'].find((k) => k === fields.kind);
        if (kind !== undefined) zmqEvents.inc({ kind });
        if (kind === 'gap' && typeof fields.missed === 'number') zmqMissed.inc(fields.missed);
      } else if (event === 'watcher.reorg') {
        disconnected.inc({ source: fields.source === 'zmq' ? 'zmq' : 'rpc' });
      }
    },
    render: () => registry.metrics(),
  };
}
