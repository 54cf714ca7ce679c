/**
 * Safe 1.4.1 transactions and their EIP-712 hash.
 *
 * What a Safe owner signs is `safeTxHash`: the EIP-712 hash of a `SafeTx`
 * under the domain `{chainId, verifyingContract: safe}` (Safe 1.3.0 and
 * later; 1.1.1, Bybit's version, had no chainId in the domain). Every field
 * is covered, so a signer that computes the hash itself from the fields it
 * checked signs exactly those fields and no other transaction, on no other
 * chain, for no other Safe. The type string and field order are Safe.sol's
 * SAFE_TX_TYPEHASH; viem's `hashTypedData` does the hashing.
 *
 * The only transactions Custos builds are plain transfers (issue 9): for the
 * native coin `to` is the recipient, `value` the amount and no data; for an
 * ERC-20 `to` is the registered token, `value` 0 and data exactly
 * `transfer(recipient, amount)`. Operation is CALL (0) and every gas and
 * refund field is zero: a refund pays `gasPrice * gas` from the Safe to
 * `refundReceiver`, which an attacker can set to drain it (THREATS 28).
 */
import { type Address, type Hex, hashTypedData } from 'viem';
import { ZERO_ADDRESS } from './address.js';
import { encodeErc20Transfer } from './erc20.js';

/** Enum.Operation in Safe.sol. */
export const OPERATION_CALL = 0;
export const OPERATION_DELEGATECALL = 1;

export interface SafeTx {
  readonly to: Address;
  readonly value: bigint;
  readonly data: Hex;
  /** 0 CALL, 1 DELEGATECALL (uint8 on chain). */
  readonly operation: number;
  readonly safeTxGas: bigint;
  readonly baseGas: bigint;
  readonly gasPrice: bigint;
  readonly gasToken: Address;
  readonly refundReceiver: Address;
  readonly nonce: bigint;
}

/** Safe.sol: SafeTx(address to,uint256 value,bytes data,uint8 operation,uint256 safeTxGas,uint256 baseGas,uint256 gasPrice,address gasToken,address refundReceiver,uint256 nonce). */
export const SAFE_TX_TYPES = {
  SafeTx: [
    { name: 'to', type: 'address' },
    { name: 'value', type: 'uint256' },
    { name: 'data', type: 'bytes' },
    { name: 'operation', type: 'uint8' },
    { name: 'safeTxGas', type: 'uint256' },
    { name: 'baseGas', type: 'uint256' },
    { name: 'gasPrice', type: 'uint256' },
    { name: 'gasToken', type: 'address' },
    { name: 'refundReceiver', type: 'address' },
    { name: 'nonce', type: 'uint256' },
  ],
} as const;

/** The EIP-712 typed data of a SafeTx, as a wallet or viem's signTypedData takes it. */
export function safeTxTypedData(safe: Address, chainId: number, tx: SafeTx) {
  return {
    domain: { chainId, verifyingContract: safe },
    types: SAFE_TX_TYPES,
    primaryType: 'SafeTx',
    message: {
      to: tx.to,
      value: tx.value,
      data: tx.data,
      operation: tx.operation,
      safeTxGas: tx.safeTxGas,
      baseGas: tx.baseGas,
      gasPrice: tx.gasPrice,
      gasToken: tx.gasToken,
      refundReceiver: tx.refundReceiver,
      nonce: tx.nonce,
    },
  } as const;
}

/** The hash the owners sign and Safe.getTransactionHash returns. */
export function safeTxHash(safe: Address, chainId: number, tx: SafeTx): Hex {
  return hashTypedData(safeTxTypedData(safe, chainId, tx));
}

export type EvmAsset = { readonly kind: 'native' } | { readonly kind: 'erc20'; readonly contract: Address };

export interface TransferRequest {
  readonly asset: EvmAsset;
  readonly to: Address;
  readonly amount: bigint;
  readonly nonce: bigint;
}

/** The one SafeTx an intent to transfer allows. */
export function buildTransferSafeTx(request: TransferRequest): SafeTx {
  const { asset, to, amount, nonce } = request;
  if (amount < 0n || nonce < 0n) {
    throw new RangeError('amount and nonce are unsigned');
  }
  const call =
    asset.kind === 'native'
      ? { to, value: amount, data: '0x' as Hex }
      : { to: asset.contract, value: 0n, data: encodeErc20Transfer(to, amount) };
  return {
    ...call,
    operation: OPERATION_CALL,
    safeTxGas: 0n,
    baseGas: 0n,
    gasPrice: 0n,
    gasToken: ZERO_ADDRESS,
    refundReceiver: ZERO_ADDRESS,
    nonce,
  };
}
