import { describe, expect, it } from 'vitest';
import * as bitcoin from '../src/index.js';
import * as regtest from '../src/regtest.js';
import * as sign from '../src/signing.js';

/**
 * The public API of @custos/bitcoin is these lists, one per entry point
 * (package.json "exports"). `@custos/bitcoin/sign` is what a signer loads:
 * a change to it is a change to the signer's audit surface, so make it on
 * purpose, here.
 */
const SIGN = [
  'BITCOIN_NETWORKS',
  'CHANGE_GAP_LIMIT',
  'INCREMENTAL_RELAY_FEE',
  'MAX_KEYS',
  'MAX_MONEY',
  'NETWORKS',
  'SIGHASH_ALL',
  'addressToScript',
  'analyzePsbt',
  'bitcoinNetwork',
  'chainOfNetwork',
  'changeIndexLimit',
  'checkAddress',
  'claimedChangeIndex',
  'combinePsbts',
  'decodePsbt',
  'deriveAddress',
  'descriptorChecksum',
  'descriptorKeyOf',
  'dustThreshold',
  'estimateVsize',
  'exportAccountKey',
  'finalizeAnalyzed',
  'finalizePsbt',
  'findWalletAlias',
  'formatDescriptor',
  'formatPath',
  'identitiesOverlap',
  'isBitcoinNetworkName',
  'networkOfChain',
  'parseDescriptor',
  'parsePath',
  'psbtFromBase64',
  'psbtToBase64',
  'refuseWalletAlias',
  'scriptToAddress',
  'signPsbt',
  'signerKeyFromSeed',
  'verifyPsbt',
  'verifyReplacement',
  'walletFromKeys',
  'walletIdentity',
  'walletReceiveAddress',
];

/** The chain side the main entry adds to SIGN (a coordinator's needs). */
const CHAIN = [
  'BitcoinRpc',
  'COINBASE_MATURITY',
  'DEFAULT_MAX_UNDO',
  'MAX_BLOCK_BYTES',
  'SEQUENCE',
  'UtxoTracker',
  'blockHash',
  'buildPsbt',
  'buildReplacement',
  'parseBlock',
  'parseTransaction',
  'syncChain',
];

const REGTEST = ['startRegtestNode'];

describe('public API', () => {
  it('@custos/bitcoin/sign exports exactly the signing side', () => {
    expect(Object.keys(sign).sort()).toEqual(SIGN);
  });

  it('@custos/bitcoin exports the signing side and the chain side', () => {
    expect(Object.keys(bitcoin).sort()).toEqual([...SIGN, ...CHAIN].sort());
  });

  it('@custos/bitcoin/regtest exports the node only', () => {
    expect(Object.keys(regtest).sort()).toEqual(REGTEST);
  });
});
