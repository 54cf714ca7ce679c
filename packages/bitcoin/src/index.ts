/**
 * @custos/bitcoin: descriptor wallets, PSBT construction, verify-against-intent
 * and signing. Three entry points, so each process loads only what it uses:
 *
 * - `@custos/bitcoin/sign` (signing.ts): the pure signing side a signer
 *   needs: descriptors, addresses, the PSBT codec, analysis, verification,
 *   wallet identities and signing;
 * - `@custos/bitcoin` (this module): all of that plus the chain side a
 *   coordinator needs: PSBT construction (build.ts), the block parser
 *   (block.ts), the JSON-RPC client (rpc.ts, over fetch) and syncChain in
 *   scanner.ts, which reads blocks through it into the pure UtxoTracker;
 * - `@custos/bitcoin/regtest` (regtest.ts, bcoin): an in-process node for
 *   tests and `custos dev`; bcoin is an optional peer dependency, installed
 *   by whoever uses this entry.
 *
 * Each surface is an explicit list, kept small; test/public-api.test.ts pins
 * them.
 */

export {
  blockHash,
  MAX_BLOCK_BYTES,
  type ParsedBlock,
  type ParsedTx,
  parseBlock,
  parseTransaction,
} from './block.js';
export { type BuildRequest, type BuiltPsbt, buildPsbt, SEQUENCE, type WalletUtxo } from './build.js';
export { type BuiltReplacement, buildReplacement } from './replace.js';
export { BitcoinRpc, type BitcoinRpcOptions, type ChainInfo } from './rpc.js';
export {
  type ChainTip,
  COINBASE_MATURITY,
  DEFAULT_MAX_UNDO,
  type SyncOptions,
  type SyncResult,
  syncChain,
  type TrackedUtxo,
  type TrackerJson,
  UtxoTracker,
  type WatchedScript,
  type WatchFn,
} from './scanner.js';
export * from './signing.js';
