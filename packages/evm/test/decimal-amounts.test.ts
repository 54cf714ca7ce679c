/** Amounts in an asset's decimals: exact bigint base units, a narrow grammar. */
import fc from 'fast-check';
import { formatUnits, parseUnits } from 'viem';
import { describe, expect, it } from 'vitest';
import { formatAmount, MAX_UINT256, parseAmount } from '../src/index.js';

describe('parseAmount / formatAmount', () => {
  it('should read 1.5 at 6 decimals as 1,500,000 and 0.1 ETH as 10^17 wei', () => {
    expect(parseAmount('1.5', 6)).toEqual({ ok: true, value: 1_500_000n });
    expect(parseAmount('0.1', 18)).toEqual({ ok: true, value: 10n ** 17n });
    expect(parseAmount('25', 6)).toEqual({ ok: true, value: 25_000_000n });
    expect(parseAmount('0', 18)).toEqual({ ok: true, value: 0n });
    expect(parseAmount('0.000001', 6)).toEqual({ ok: true, value: 1n });
    expect(parseAmount('7', 0)).toEqual({ ok: true, value: 7n });
  });

  it('should refuse more fractional digits than the decimals (no rounding)', () => {
    const r = parseAmount('1.0000001', 6);
    expect(!r.ok && r.code).toBe('NON_CANONICAL_AMOUNT');
    expect(parseAmount('1.5', 0).ok).toBe(false);
  });

  it('should refuse sign, exponent, spaces, empty parts, leading zeros and other spellings', () => {
    for (const bad of [
      '',
      '-1',
      '+1',
      '1e6',
      '1E6',
      ' 1',
      '1 ',
      '1.',
      '.5',
      '01',
      '1..5',
      '1,5',
      '0x10',
      'Infinity',
      'NaN',
      '١',
    ]) {
      const r = parseAmount(bad, 6);
      expect(r.ok, bad).toBe(false);
      expect(!r.ok && r.code).toBe('INVALID_VALUE');
    }
  });

  it('should refuse amounts beyond uint256 and accept the maximum', () => {
    expect(parseAmount(MAX_UINT256.toString(), 0)).toEqual({ ok: true, value: MAX_UINT256 });
    expect(parseAmount((MAX_UINT256 + 1n).toString(), 0).ok).toBe(false);
    expect(parseAmount('1', 77).ok).toBe(true);
    expect(parseAmount('2', 77).ok).toBe(false);
  });

  it('should format the shortest exact form', () => {
    expect(formatAmount(1_500_000n, 6)).toBe('1.5');
    expect(formatAmount(10n ** 17n, 18)).toBe('0.1');
    expect(formatAmount(25_000_000n, 6)).toBe('25');
    expect(formatAmount(1n, 6)).toBe('0.000001');
    expect(formatAmount(0n, 6)).toBe('0');
  });

  it('should throw for a caller’s bad decimals or a negative amount', () => {
    expect(() => parseAmount('1', -1)).toThrow(RangeError);
    expect(() => parseAmount('1', 1.5)).toThrow(RangeError);
    expect(() => formatAmount(-1n, 6)).toThrow(RangeError);
  });

  it('should round-trip and agree with viem’s parseUnits/formatUnits (viem as the peer)', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: MAX_UINT256 }),
        fc.integer({ min: 0, max: 30 }),
        (base, decimals) => {
          const text = formatAmount(base, decimals);
          expect(parseAmount(text, decimals)).toEqual({ ok: true, value: base });
          expect(text).toBe(formatUnits(base, decimals));
          expect(parseUnits(text, decimals)).toBe(base);
        },
      ),
    );
  });
});
