/** EIP-55: mixed case is a checksum claim; one case is accepted and normalized. */
import fc from 'fast-check';
import { getAddress } from 'viem';
import { describe, expect, it } from 'vitest';
import {
  ADDRESS_CHECKSUM_INVALID,
  isChecksummedAddress,
  parseEvmAddress,
  sameAddress,
} from '../src/index.js';

// EIP-55's own test vectors.
const EIP55_VECTORS = [
  '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed',
  '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359',
  '0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB',
  '0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb',
];

describe('parseEvmAddress (EIP-55)', () => {
  it('should accept the EIP-55 vectors unchanged', () => {
    for (const v of EIP55_VECTORS) {
      expect(parseEvmAddress(v)).toEqual({ ok: true, value: v });
      expect(isChecksummedAddress(v)).toBe(true);
    }
  });

  it('should accept all-lower and all-upper case and normalize to the checksum', () => {
    for (const v of EIP55_VECTORS) {
      expect(parseEvmAddress(v.toLowerCase())).toEqual({ ok: true, value: v });
      expect(parseEvmAddress(`0x${v.slice(2).toUpperCase()}`)).toEqual({ ok: true, value: v });
      expect(isChecksummedAddress(v.toLowerCase())).toBe(false);
    }
  });

  it('should refuse a mixed-case address with one letter’s case flipped', () => {
    const v = EIP55_VECTORS[0]!;
    const flipped = `${v.slice(0, 3)}${v[3]!.toUpperCase()}${v.slice(4)}`; // 'a' -> 'A'
    expect(flipped).not.toBe(v);
    const r = parseEvmAddress(flipped);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.code).toBe(ADDRESS_CHECKSUM_INVALID);
  });

  it('should refuse what is not 0x and 40 hex digits', () => {
    for (const bad of [
      '',
      '0x',
      '5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed',
      `0x${'0'.repeat(39)}`,
      `0x${'0'.repeat(41)}`,
      `0x${'g'.repeat(40)}`,
      ` ${EIP55_VECTORS[0]}`,
      `${EIP55_VECTORS[0]}\n`,
      `0X${'a'.repeat(40)}`,
    ]) {
      const r = parseEvmAddress(bad);
      expect(r.ok).toBe(false);
      expect(!r.ok && r.code).toBe('INVALID_VALUE');
    }
  });

  it('should agree with viem for random bytes and random case (viem as the peer)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 20, maxLength: 20 }),
        fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }),
        (bytes, upper) => {
          const lower = Buffer.from(bytes).toString('hex');
          const checksummed = getAddress(`0x${lower}`);
          const cased = `0x${[...lower].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join('')}`;
          const r = parseEvmAddress(cased);
          const digits = cased.slice(2);
          const oneCase = digits === digits.toLowerCase() || digits === digits.toUpperCase();
          if (oneCase || cased === checksummed) {
            expect(r).toEqual({ ok: true, value: checksummed });
          } else {
            expect(!r.ok && r.code).toBe(ADDRESS_CHECKSUM_INVALID);
          }
        },
      ),
    );
  });

  it('should compare addresses by their bytes', () => {
    const v = EIP55_VECTORS[1]!;
    expect(sameAddress(v, v.toLowerCase())).toBe(true);
    expect(sameAddress(v, EIP55_VECTORS[2]!)).toBe(false);
  });
});
