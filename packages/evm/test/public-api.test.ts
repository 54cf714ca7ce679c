import { describe, expect, it } from 'vitest';
import * as evm from '../src/index.js';
import * as state from '../src/state.js';

/**
 * The public API of @custos/evm is this list (and `@custos/evm/state`'s).
 * The signer and the coordinator build on it: change it on purpose, here.
 */
const EXPORTS = [
  'ADDRESS_CHECKSUM_INVALID',
  'CALLDATA_MISMATCH',
  'ERC20_ABI',
  'ERC20_TRANSFER_SELECTOR',
  'EVM_CODES_FOR_CORE',
  'FALLBACK_HANDLER_STORAGE_SLOT',
  'GUARD_STORAGE_SLOT',
  'MAX_UINT256',
  'OPERATION_CALL',
  'OPERATION_DELEGATECALL',
  'OPERATION_FORBIDDEN',
  'SAFE_ABI',
  'SAFE_NONCE_REUSED',
  'SAFE_STATE_MISMATCH',
  'SAFE_TX_TYPES',
  'SENTINEL_ADDRESS',
  'SINGLETON_STORAGE_SLOT',
  'WRONG_CHAIN',
  'ZERO_ADDRESS',
  'buildTransferSafeTx',
  'checkSafeState',
  'checkSafeTxIsPlainTransfer',
  'compareAddresses',
  'decodeErc20Transfer',
  'decodeExecTransaction',
  'encodeErc20Transfer',
  'encodeExecTransaction',
  'evmAddressOf',
  'evmNodes',
  'formatAmount',
  'isChecksummedAddress',
  'packSafeSignatures',
  'parseAmount',
  'parseEvmAddress',
  'recoverSafeSigner',
  'refuseEvm',
  'safeTxHash',
  'safeTxTypedData',
  'sameAddress',
  'signSafeTxHash',
];

describe('public API', () => {
  it('should export exactly the listed names', () => {
    expect(Object.keys(evm).sort()).toEqual([...EXPORTS].sort());
    expect(Object.keys(state).sort()).toEqual(['evmClient', 'readSafeState']);
  });

  it('should list the codes core does not have yet', () => {
    expect(evm.EVM_CODES_FOR_CORE).toEqual([
      'SAFE_NONCE_REUSED',
      'SAFE_STATE_MISMATCH',
      'ADDRESS_CHECKSUM_INVALID',
    ]);
  });

  it('should pin the Safe storage slots (Safe 1.4.1 GuardManager and FallbackManager)', () => {
    expect(evm.GUARD_STORAGE_SLOT).toBe('0x4a204f620c8c5ccdca3fd54d003badd85ba500436a431f0cbda4f558c93c34c8');
    expect(evm.FALLBACK_HANDLER_STORAGE_SLOT).toBe(
      '0x6c9a6c4a39284e37ed1cf53d337577d14212a4870fb976a4366c693b939918d5',
    );
  });
});
