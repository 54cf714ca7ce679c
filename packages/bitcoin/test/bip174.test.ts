/**
 * BIP 174 test vectors through the strict PSBT reader: every valid PSBT of
 * the BIP reads and re-encodes to the same bytes, every invalid one is
 * refused with a code, and bytes that are valid but not canonical are refused.
 */

import { built, wallet } from '@custos/test-support/psbt-fixtures';
import { describe, expect, it } from 'vitest';
import { analyzePsbt, psbtFromBase64, psbtToBase64 } from '../src/index.js';
import { encodePsbt, parsePsbt } from '../src/psbt.js';
import vectors from './vectors/bip174.json' with { type: 'json' };

function bytesOf(b64: string): Uint8Array {
  const r = psbtFromBase64(b64);
  if (!r.ok) throw new Error(r.message);
  return r.value;
}

describe('BIP 174 valid test vectors', () => {
  it.each(vectors.valid.map((v) => [v.case, v.base64] as const))(
    '%s: reads and re-encodes byte for byte',
    (_, b64) => {
      const bytes = bytesOf(b64);
      const r = parsePsbt(bytes);
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      expect(Buffer.from(encodePsbt(r.value)).equals(Buffer.from(bytes))).toBe(true);
      expect(psbtToBase64(encodePsbt(r.value))).toBe(b64);
    },
  );

  it.each(vectors.valid.map((v) => [v.case, v.base64] as const))(
    '%s: is not a spend of this wallet',
    (_, b64) => {
      const r = analyzePsbt(bytesOf(b64), wallet);
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect([
          'FOREIGN_INPUT',
          'UNSUPPORTED_TRANSACTION',
          'INVALID_VALUE',
          'INPUT_AMOUNT_UNPROVEN',
        ]).toContain(r.code);
      }
    },
  );
});

describe('BIP 174 invalid test vectors', () => {
  it.each(vectors.invalid.map((v) => [v.case, v.base64] as const))('%s: refused', (_, b64) => {
    const r = parsePsbt(bytesOf(b64));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(['INVALID_VALUE', 'NON_CANONICAL_ENCODING', 'UNSUPPORTED_TRANSACTION']).toContain(r.code);
    }
  });
});

/** The raw key-value records of each map: enough to reorder or duplicate records as a sloppy or hostile encoder would. */
function splitMaps(bytes: Uint8Array): Uint8Array[][] {
  const maps: Uint8Array[][] = [];
  let pos = 5;
  const compact = (): number => {
    const first = bytes[pos]!;
    if (first < 0xfd) {
      pos += 1;
      return first;
    }
    const len = first === 0xfd ? 2 : 4;
    let n = 0;
    for (let i = 0; i < len; i++) n += bytes[pos + 1 + i]! * 2 ** (8 * i);
    pos += 1 + len;
    return n;
  };
  while (pos < bytes.length && maps.length < 100) {
    const records: Uint8Array[] = [];
    while (pos < bytes.length) {
      const start = pos;
      const keyLen = compact();
      if (keyLen === 0) break;
      pos += keyLen;
      const valueLen = compact();
      pos += valueLen;
      records.push(bytes.slice(start, pos));
    }
    maps.push(records);
  }
  return maps;
}

function joinMaps(magic: Uint8Array, maps: Uint8Array[][]): Uint8Array {
  const parts: number[] = [...magic];
  for (const m of maps) {
    for (const r of m) parts.push(...r);
    parts.push(0);
  }
  return Uint8Array.from(parts);
}

describe('canonical encoding', () => {
  const psbt = built().psbt;
  const maps = splitMaps(psbt);

  it('re-joins its own split unchanged (the helper below is exact)', () => {
    expect(Buffer.from(joinMaps(psbt.slice(0, 5), maps)).equals(Buffer.from(psbt))).toBe(true);
  });

  it('refuses records in another order than BIP 174 key order: NON_CANONICAL_ENCODING', () => {
    const input = [...maps[1]!];
    const [a, b] = [input.length - 1, input.length - 2];
    [input[a], input[b]] = [input[b]!, input[a]!];
    const swapped = joinMaps(psbt.slice(0, 5), [maps[0]!, input, ...maps.slice(2)]);
    expect(parsePsbt(swapped)).toMatchObject({ ok: false, code: 'NON_CANONICAL_ENCODING' });
  });

  it('refuses a record written twice', () => {
    const input = [...maps[1]!, maps[1]![0]!];
    const doubled = joinMaps(psbt.slice(0, 5), [maps[0]!, input, ...maps.slice(2)]);
    expect(parsePsbt(doubled).ok).toBe(false);
  });

  it('refuses an extra empty map and trailing bytes', () => {
    expect(parsePsbt(joinMaps(psbt.slice(0, 5), [...maps, []])).ok).toBe(false);
    expect(parsePsbt(Uint8Array.from([...psbt, 0])).ok).toBe(false);
  });

  it('refuses non-canonical base64', () => {
    expect(psbtFromBase64(`${psbtToBase64(psbt)}\n`).ok).toBe(false);
    expect(psbtFromBase64('not base64!').ok).toBe(false);
  });
});
