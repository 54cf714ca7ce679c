/**
 * `@custos/bitcoin/sign`: what a signer needs, and nothing of the chain side.
 * Descriptor wallets, addresses per network, the strict PSBT codec, the
 * analysis and verify-against-intent, wallet identities (aliases) and
 * signing. All pure: no I/O, no clock, no randomness. The chain side (the
 * JSON-RPC client, the block parser and UTXO tracker, PSBT construction) is
 * in the main entry `@custos/bitcoin`, which re-exports this one; the regtest
 * node (bcoin) is `@custos/bitcoin/regtest`. test/public-api.test.ts pins
 * the names of each entry.
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
export { INCREMENTAL_RELAY_FEE, type VerifiedReplacement, verifyReplacement } from './replace.js';
export {
  combinePsbts,
  descriptorKeyOf,
  exportAccountKey,
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
export { walletReceiveAddress } from './wallet-address.js';
