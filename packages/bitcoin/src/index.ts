/**
 * @custos/bitcoin: descriptor wallets, PSBT construction, verify-against-intent
 * and signing. The signer depends on this package, so its surface is an
 * explicit list, kept small.
 *
 * The modules exported here are pure: no I/O, no clock, no randomness, except
 * the chain access: rpc.ts (a JSON-RPC client over fetch) and syncChain in
 * scanner.ts, which reads blocks through it into the pure UtxoTracker.
 * regtest.ts (bcoin) is deliberately not exported here but as the subpath
 * `@custos/bitcoin/regtest`, for tests and `custos dev`, so the signer never
 * loads a node implementation.
 */
export { checkAddress } from './address.js';
export {
  type AnalyzedInput,
  type AnalyzedOutput,
  analyzePsbt,
  type PsbtAnalysis,
  SIGHASH_ALL,
} from './analyze.js';
export {
  blockHash,
  MAX_BLOCK_BYTES,
  type ParsedBlock,
  type ParsedTx,
  parseBlock,
  parseTransaction,
} from './block.js';
export { type BuildRequest, type BuiltPsbt, buildPsbt, SEQUENCE, type WalletUtxo } from './build.js';
export {
  type DerivedAddress,
  type DescriptorKey,
  deriveAddress,
  descriptorChecksum,
  formatDescriptor,
  formatPath,
  type KeyDerivation,
  MAX_KEYS,
  parseDescriptor,
  parsePath,
  type WalletDescriptor,
  walletFromKeys,
} from './descriptor.js';
export { type FinalTransaction, finalizeAnalyzed } from './finalize.js';
export {
  type BranchIdentity,
  findWalletAlias,
  identitiesOverlap,
  type OuterScript,
  refuseWalletAlias,
  type WalletIdentity,
  type WalletText,
  walletIdentity,
} from './identity.js';
export {
  addressToScript,
  BITCOIN_NETWORKS,
  type BitcoinNetwork,
  type BitcoinNetworkName,
  bitcoinNetwork,
  chainOfNetwork,
  dustThreshold,
  isBitcoinNetworkName,
  NETWORKS,
  networkOfChain,
  scriptToAddress,
} from './network.js';
export { estimateVsize, MAX_MONEY, psbtFromBase64, psbtToBase64 } from './psbt.js';
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
export {
  combinePsbts,
  descriptorKeyOf,
  finalizePsbt,
  type SignerKey,
  signerKeyFromSeed,
  signPsbt,
} from './sign.js';
export {
  CHANGE_GAP_LIMIT,
  changeIndexLimit,
  claimedChangeIndex,
  decodePsbt,
  type FeeCaps,
  type IntentTransfer,
  type PsbtSummary,
  type VerifiedPsbt,
  verifyPsbt,
} from './verify.js';
