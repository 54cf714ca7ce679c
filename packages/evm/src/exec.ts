/**
 * `execTransaction` calldata: what the executor account sends to the Safe.
 *
 * It carries the SafeTx fields (not the nonce: the Safe uses its own) and
 * the packed owner signatures. The executor only pays gas; the signatures
 * authorize the move. The decoder is strict: the calldata must be exactly
 * the canonical ABI encoding of its decoded values (re-encoded and compared
 * byte for byte), so no trailing bytes, dirty padding or odd offsets.
 */
import { accept } from '@custos/core';
import { type Address, decodeFunctionData, encodeFunctionData, getAddress, type Hex, isHex } from 'viem';
import { type EvmResult, refuseEvm } from './codes.js';
import type { SafeTx } from './safe-tx.js';

/** The SafeTx fields as `execTransaction` and `getTransactionHash` take them, in order. */
const SAFE_TX_INPUTS = [
  { name: 'to', type: 'address' },
  { name: 'value', type: 'uint256' },
  { name: 'data', type: 'bytes' },
  { name: 'operation', type: 'uint8' },
  { name: 'safeTxGas', type: 'uint256' },
  { name: 'baseGas', type: 'uint256' },
  { name: 'gasPrice', type: 'uint256' },
  { name: 'gasToken', type: 'address' },
  { name: 'refundReceiver', type: 'address' },
] as const;

/** The fragments of Safe 1.4.1's ABI that Custos calls or reads. */
export const SAFE_ABI = [
  {
    type: 'function',
    name: 'execTransaction',
    stateMutability: 'payable',
    inputs: [...SAFE_TX_INPUTS, { name: 'signatures', type: 'bytes' }],
    outputs: [{ name: 'success', type: 'bool' }],
  },
  {
    type: 'function',
    name: 'getTransactionHash',
    stateMutability: 'view',
    inputs: [...SAFE_TX_INPUTS, { name: '_nonce', type: 'uint256' }],
    outputs: [{ name: '', type: 'bytes32' }],
  },
  {
    type: 'function',
    name: 'getOwners',
    stateMutability: 'view',
    inputs: [],
    outputs: [{ type: 'address[]' }],
  },
  {
    type: 'function',
    name: 'getThreshold',
    stateMutability: 'view',
    inputs: [],
    outputs: [{ type: 'uint256' }],
  },
  { type: 'function', name: 'nonce', stateMutability: 'view', inputs: [], outputs: [{ type: 'uint256' }] },
  { type: 'function', name: 'VERSION', stateMutability: 'view', inputs: [], outputs: [{ type: 'string' }] },
  {
    type: 'function',
    name: 'getModulesPaginated',
    stateMutability: 'view',
    inputs: [
      { name: 'start', type: 'address' },
      { name: 'pageSize', type: 'uint256' },
    ],
    outputs: [
      { name: 'array', type: 'address[]' },
      { name: 'next', type: 'address' },
    ],
  },
  {
    type: 'function',
    name: 'setup',
    stateMutability: 'nonpayable',
    inputs: [
      { name: '_owners', type: 'address[]' },
      { name: '_threshold', type: 'uint256' },
      { name: 'to', type: 'address' },
      { name: 'data', type: 'bytes' },
      { name: 'fallbackHandler', type: 'address' },
      { name: 'paymentToken', type: 'address' },
      { name: 'payment', type: 'uint256' },
      { name: 'paymentReceiver', type: 'address' },
    ],
    outputs: [],
  },
] as const;

/** The SafeTx fields execTransaction carries (the Safe supplies the nonce). */
export type ExecutedSafeTx = Omit<SafeTx, 'nonce'>;

export interface ExecTransactionCall {
  readonly tx: ExecutedSafeTx;
  readonly signatures: Hex;
}

/** The calldata of `execTransaction(tx..., signatures)`. */
export function encodeExecTransaction(tx: ExecutedSafeTx, signatures: Hex): Hex {
  return encodeFunctionData({
    abi: SAFE_ABI,
    functionName: 'execTransaction',
    args: [
      tx.to,
      tx.value,
      tx.data,
      tx.operation,
      tx.safeTxGas,
      tx.baseGas,
      tx.gasPrice,
      tx.gasToken,
      tx.refundReceiver,
      signatures,
    ],
  });
}

/** Decodes calldata that must be exactly one canonical execTransaction call. */
export function decodeExecTransaction(calldata: Hex): EvmResult<ExecTransactionCall> {
  if (!isHex(calldata, { strict: true })) {
    return refuseEvm('INVALID_VALUE', 'calldata is not hex');
  }
  let call: ExecTransactionCall;
  let canonical: Hex;
  try {
    const decoded = decodeFunctionData({ abi: SAFE_ABI, data: calldata });
    if (decoded.functionName !== 'execTransaction') {
      return refuseEvm('INVALID_VALUE', 'not execTransaction', { function: decoded.functionName });
    }
    const [to, value, data, operation, safeTxGas, baseGas, gasPrice, gasToken, refundReceiver, signatures] =
      decoded.args;
    call = {
      tx: {
        to: getAddress(to),
        value,
        data,
        operation,
        safeTxGas,
        baseGas,
        gasPrice,
        gasToken: getAddress(gasToken),
        refundReceiver: getAddress(refundReceiver as Address),
      },
      signatures,
    };
    canonical = encodeExecTransaction(call.tx, call.signatures);
  } catch {
    return refuseEvm('INVALID_VALUE', 'not a well-formed Safe execTransaction call');
  }
  if (canonical.toLowerCase() !== calldata.toLowerCase()) {
    return refuseEvm('NON_CANONICAL_ENCODING', 'execTransaction calldata is not the canonical ABI encoding');
  }
  return accept(call);
}
