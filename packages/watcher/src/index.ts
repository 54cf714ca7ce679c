/**
 * @custos/watcher (issue 12): follows its own chain node, matches every spend
 * of a governed wallet's coins against what the signers signed, and on
 * anything else signs a freeze, delivers it to the coordinator and serves it
 * to signers (`GET /v1/freezes`).
 */
export { type WatcherConfig, watcherConfig } from './config.js';
export { CoordinatorClient } from './coordinator.js';
export {
  type EvmWatchNode,
  evmWatchNodes,
  governedSafes,
  SAFE_EVENTS,
  type SafeFinding,
  type SafeFindingKind,
  SafeFollower,
  type SafeFollowerOptions,
} from './evm-follow.js';
export {
  CoinView,
  DEFAULT_GAP,
  MAX_UNDO_DEPTH,
  type Spend,
  type SpentCoin,
  type UndoneBlock,
} from './follow.js';
export { type WatcherMetrics, watcherMetrics } from './metrics.js';
export { type FreezeServer, serveFreezes } from './server.js';
export { type SpendRecord, Watcher, type WatcherOptions } from './watcher.js';
export {
  parseZmqMessage,
  type SequenceCheck,
  SequenceGaps,
  type ZmqEndpoints,
  ZmqFeed,
  type ZmqItem,
  type ZmqMessage,
  type ZmqSource,
  type ZmqTopic,
} from './zmq.js';
