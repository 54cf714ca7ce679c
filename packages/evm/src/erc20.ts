/**
 * ERC-20 `transfer(address,uint256)` calldata.
 *
 * The one call a Custos signer lets a Safe make to a token. Decoding is
 * strict: exactly 4 + 32 + 32 = 68 bytes, selector a9059cbb, the address
 * word's 12 high bytes zero. The EVM ignores trailing bytes and a token's
 * ABI decoder may ignore dirty padding, so calldata that a lenient decoder
 * reads as the approved transfer could still carry something else; a
 * signer only accepts the one canonical encoding (the scure README: a parser
 * that produces garbage but doesn't throw is still broken).
 */
import { accept } from '@custos/core';
import { type Address, decodeFunctionData, encodeFunctionData, getAddress, type Hex, isHex } from 'viem';
import { type EvmResult, refuseEvm } from './codes.js';

export const ERC20_ABI = [
  {
    type: 'function',
    name: 'transfer',
    stateMutability: 'nonpayable',
    inputs: [
      { name: 'to', type: 'address' },
      { name: 'amount', type: 'uint256' },
    ],
    outputs: [{ name: '', type: 'bool' }],
  },
  {
    type: 'function',
    name: 'balanceOf',
    stateMutability: 'view',
    inputs: [{ name: 'owner', type: 'address' }],
    outputs: [{ name: '', type: 'uint256' }],
  },
  {
    type: 'function',
    name: 'decimals',
    stateMutability: 'view',
    inputs: [],
    outputs: [{ name: '', type: 'uint8' }],
  },
] as const;

/** keccak256("transfer(address,uint256)")[0..4]. */
export const ERC20_TRANSFER_SELECTOR: Hex = '0xa9059cbb';

const TRANSFER_HEX_LENGTH = 2 + 2 * (4 + 32 + 32);

export interface Erc20Transfer {
  readonly to: Address;
  readonly amount: bigint;
}

/** The calldata of `transfer(to, amount)`. */
export function encodeErc20Transfer(to: Address, amount: bigint): Hex {
  return encodeFunctionData({ abi: ERC20_ABI, functionName: 'transfer', args: [to, amount] });
}

/** Decodes calldata that must be exactly one canonical `transfer(address,uint256)`. */
export function decodeErc20Transfer(data: Hex): EvmResult<Erc20Transfer> {
  if (!isHex(data, { strict: true }) || data.length !== TRANSFER_HEX_LENGTH) {
    return refuseEvm('INVALID_VALUE', 'ERC-20 transfer calldata is exactly 68 bytes');
  }
  const lower = data.toLowerCase() as Hex;
  if (lower.slice(0, 10) !== ERC20_TRANSFER_SELECTOR) {
    return refuseEvm('INVALID_VALUE', 'not the transfer(address,uint256) selector', {
      selector: lower.slice(0, 10),
    });
  }
  if (!/^0{24}$/.test(lower.slice(10, 34))) {
    return refuseEvm('NON_CANONICAL_ENCODING', "the recipient word's 12 high bytes are not zero");
  }
  const { args } = decodeFunctionData({ abi: ERC20_ABI, data: lower });
  if (args === undefined || args.length !== 2) {
    return refuseEvm('INVALID_VALUE', 'not an ERC-20 transfer');
  }
  const [to, amount] = args as readonly [Address, bigint];
  return accept({ to: getAddress(to), amount });
}
