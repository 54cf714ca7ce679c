/**
 * EVM addresses, EIP-55.
 *
 * An address is 20 bytes; EIP-55 hides a checksum in the case of its hex
 * letters. A mixed-case address is a claim that it carries that checksum,
 * so a wrong one is refused: it is a typo or a doctored copy (address
 * poisoning copies the first and last characters and nothing else). An
 * all-lower or all-upper address carries no checksum and is accepted, then
 * normalized to the checksummed spelling, the one form compared and stored.
 *
 * viem's `isAddress` with `strict: true` checks the checksum of mixed-case
 * input; `getAddress` computes it. No keccak is written here.
 */
import { accept } from '@custos/core';
import { type Address, getAddress, isAddress } from 'viem';
import { ADDRESS_CHECKSUM_INVALID, type EvmResult, refuseEvm } from './codes.js';

export type { Address } from 'viem';

/** The zero address: gasToken ETH and refundReceiver "tx.origin" in a SafeTx, i.e. no refund target. */
export const ZERO_ADDRESS: Address = '0x0000000000000000000000000000000000000000';

const SHAPE = /^0x[0-9a-fA-F]{40}$/;

/**
 * Parses a 0x address as a person or a peer spelled it.
 *
 * @example parseEvmAddress('0xd8da6bf26964af9d7eed9e03e53415d37aa96045') // ok: '0xd8dA6BF2...6045'
 */
export function parseEvmAddress(input: string): EvmResult<Address> {
  if (typeof input !== 'string' || !SHAPE.test(input)) {
    return refuseEvm('INVALID_VALUE', 'not an EVM address (0x and 40 hex digits)');
  }
  const digits = input.slice(2);
  const oneCase = digits === digits.toLowerCase() || digits === digits.toUpperCase();
  if (!oneCase && !isAddress(input, { strict: true })) {
    return refuseEvm(
      ADDRESS_CHECKSUM_INVALID,
      'the address mixes upper and lower case but its EIP-55 checksum is wrong',
      {
        address: input,
      },
    );
  }
  return accept(getAddress(`0x${digits.toLowerCase()}`));
}

/** Whether `input` is exactly the checksummed spelling (what governance and ledgers store). */
export function isChecksummedAddress(input: string): input is Address {
  return SHAPE.test(input) && getAddress(input.toLowerCase()) === input;
}

/** Same 20 bytes, whatever the case. */
export function sameAddress(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}
