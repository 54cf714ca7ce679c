/**
 * Amounts in an asset's decimals.
 *
 * People write `1.5` USDT or `0.1` ETH; the chain counts base units (6
 * decimals for USDT, 18 for ETH). The conversion is decimal string to
 * bigint, never through a float: `0.1` as a double is not 10^17 wei. The
 * grammar is narrow on purpose: digits, one optional point, at most
 * `decimals` fractional digits (more would be silently rounded, and a
 * rounded amount is not the approved one), no sign, no exponent, no
 * whitespace, and the result fits a uint256 (what the EVM can hold).
 */
import { accept } from '@custos/core';
import { type EvmResult, refuseEvm } from './codes.js';

export const MAX_UINT256 = (1n << 256n) - 1n;

/** ERC-20 decimals are a uint8; more than 77 could not hold even 1 in a uint256. */
const MAX_DECIMALS = 77;

const DECIMAL = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/;

function checkDecimals(decimals: number): void {
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > MAX_DECIMALS) {
    throw new RangeError(`decimals must be an integer 0..${MAX_DECIMALS}`);
  }
}

/**
 * Parses a decimal amount into base units.
 *
 * @example parseAmount('1.5', 6) // ok: 1500000n
 * @example parseAmount('0.1', 18) // ok: 100000000000000000n
 */
export function parseAmount(input: string, decimals: number): EvmResult<bigint> {
  checkDecimals(decimals);
  const match = typeof input === 'string' ? DECIMAL.exec(input) : null;
  if (match === null) {
    return refuseEvm(
      'INVALID_VALUE',
      'not a decimal amount (digits, at most one point; no sign, exponent or spaces)',
    );
  }
  const whole = match[1]!;
  const fraction = match[2] ?? '';
  if (fraction.length > decimals) {
    return refuseEvm('NON_CANONICAL_AMOUNT', `more fractional digits than the asset's ${decimals} decimals`, {
      decimals,
    });
  }
  const base = BigInt(whole + fraction.padEnd(decimals, '0'));
  if (base > MAX_UINT256) {
    return refuseEvm('INVALID_VALUE', 'amount does not fit a uint256');
  }
  return accept(base);
}

/**
 * Formats base units in the asset's decimals, shortest exact form (no trailing zeros, no lone point).
 *
 * @example formatAmount(1500000n, 6) // '1.5'
 */
export function formatAmount(base: bigint, decimals: number): string {
  checkDecimals(decimals);
  if (base < 0n || base > MAX_UINT256) {
    throw new RangeError('amount must be a uint256');
  }
  if (decimals === 0) {
    return base.toString();
  }
  const digits = base.toString().padStart(decimals + 1, '0');
  const whole = digits.slice(0, -decimals);
  const fraction = digits.slice(-decimals).replace(/0+$/, '');
  return fraction === '' ? whole : `${whole}.${fraction}`;
}
