/**
 * EIP-55 mixed-case checksum addresses (https://eips.ethereum.org/EIPS/eip-55),
 * checked against the spec's own vectors, and the chain ids of CAIP-2
 * `eip155:` chains.
 */
import { describe, expect, it } from 'vitest';
import { checkEvmAddress, evmAddress, evmChain, evmChainId, toChecksumAddress } from '../src/evm.js';

/** The test cases listed in EIP-55 ("All caps", "All Lower", "Normal"). */
const SPEC_VECTORS = [
  '0x52908400098527886E0F7030069857D2E4169EE7',
  '0x8617E340B3D01FA5F11F306F4090FD50E238070D',
  '0xde709f2102306220921060314715629080e2fb77',
  '0x27b1fdb04752bbc536007a920d24acb045561c26',
  '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed',
  '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359',
  '0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB',
  '0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb',
];

/** Flips the case of the first hex letter after `0x`: the same bytes, a wrong checksum. */
function flipFirstLetter(a: string): string {
  const i = [...a].findIndex((c, k) => k >= 2 && /[a-fA-F]/.test(c));
  const c = a[i] as string;
  const flipped = c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase();
  return a.slice(0, i) + flipped + a.slice(i + 1);
}

describe('EIP-55 checksums', () => {
  it('gives each spec vector from its lower-case and its upper-case spelling', () => {
    for (const v of SPEC_VECTORS) {
      expect(toChecksumAddress(v.toLowerCase())).toBe(v);
      expect(toChecksumAddress(`0x${v.slice(2).toUpperCase()}`)).toBe(v);
    }
  });

  it('accepts each spec vector as it is spelled, including the ones that are all caps or all lower case', () => {
    for (const v of SPEC_VECTORS) expect(checkEvmAddress(v)).toEqual({ ok: true, value: v });
  });

  it('refuses a mixed-case address with a wrong checksum as ADDRESS_CHECKSUM_INVALID', () => {
    for (const v of SPEC_VECTORS) {
      const bad = flipFirstLetter(v);
      const r = checkEvmAddress(bad);
      // Flipping one letter of an all-caps vector gives a mixed-case spelling: a wrong checksum too.
      expect(r).toMatchObject({ ok: false, code: 'ADDRESS_CHECKSUM_INVALID' });
    }
  });

  it('refuses a one-case spelling of a mixed-case address as NON_CANONICAL_ENCODING, naming the checksummed form', () => {
    const v = '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed';
    expect(checkEvmAddress(v.toLowerCase())).toMatchObject({
      ok: false,
      code: 'NON_CANONICAL_ENCODING',
      details: { expected: v },
    });
    expect(checkEvmAddress(`0x${v.slice(2).toUpperCase()}`)).toMatchObject({
      ok: false,
      code: 'NON_CANONICAL_ENCODING',
    });
  });

  it('refuses what is not 0x and 40 hex digits as INVALID_VALUE', () => {
    for (const bad of [
      '',
      '5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed',
      '0X5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed',
      '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe',
      '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAedd',
      '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg',
    ]) {
      expect(checkEvmAddress(bad)).toMatchObject({ ok: false, code: 'INVALID_VALUE' });
    }
    expect(() => toChecksumAddress('0x1234')).toThrow(/40 hex digits/);
  });

  it('the evmAddress schema refuses with the same codes, at the field path', () => {
    expect(evmAddress.parse(SPEC_VECTORS[4])).toBe(SPEC_VECTORS[4]);
    expect(() => evmAddress.parse(flipFirstLetter(SPEC_VECTORS[4] as string), 'owner')).toThrow(
      expect.objectContaining({ code: 'ADDRESS_CHECKSUM_INVALID', details: { path: 'owner' } }),
    );
    expect(() => evmAddress.parse((SPEC_VECTORS[4] as string).toLowerCase())).toThrow(
      expect.objectContaining({ code: 'NON_CANONICAL_ENCODING' }),
    );
  });
});

describe('eip155 chain ids', () => {
  it('reads the canonical decimal chain id of a CAIP-2 eip155 chain', () => {
    expect(evmChainId('eip155:1')).toBe(1);
    expect(evmChainId('eip155:31337')).toBe(31337);
    expect(evmChainId('eip155:9007199254740991')).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('has none for another namespace, a leading zero, zero, a sign, letters or more than 2^53 - 1', () => {
    for (const c of [
      'bitcoin:mainnet',
      'eip155:01',
      'eip155:0',
      'eip155:+1',
      'eip155:0x1',
      'eip155:mainnet',
      'eip155:9007199254740992',
      'eip155:',
    ]) {
      expect(evmChainId(c)).toBeUndefined();
    }
    expect(() => evmChain.parse('eip155:01')).toThrow(expect.objectContaining({ code: 'INVALID_VALUE' }));
    expect(() => evmChain.parse('eip155:9007199254740992')).toThrow(
      expect.objectContaining({ code: 'INVALID_VALUE' }),
    );
  });
});
