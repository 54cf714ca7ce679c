/**
 * The QR-friendly form of the offline job and result files (issue 13):
 * Base45 as RFC 9285 defines it (its examples, section 4.3 and 4.4), strict
 * on the way in (one text per byte string), and numbered lines bound to one
 * file by its hash, read in any order.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CustosError,
  fromBase45,
  fromQrChunks,
  isQrChunks,
  toBase45,
  toQrChunks,
  utf8,
} from '../src/index.js';

const text = (b: Uint8Array) => new TextDecoder().decode(b);

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (err) {
    return err instanceof CustosError ? err.code : 'THROWN';
  }
  return undefined;
}

describe('Base45 (RFC 9285)', () => {
  it('encodes and decodes the examples of RFC 9285 sections 4.3 and 4.4', () => {
    expect(toBase45(utf8('AB'))).toBe('BB8');
    expect(toBase45(utf8('Hello!!'))).toBe('%69 VD92EX0');
    expect(toBase45(utf8('base-45'))).toBe('UJCLQE7W581');
    expect(text(fromBase45('QED8WEX0'))).toBe('ietf!');
  });

  it('refuses a length of 3k + 1, a character outside the alphabet, and groups above 65535 or 255', () => {
    expect(codeOf(() => fromBase45('QED8WEX'))).toBe('INVALID_VALUE');
    expect(codeOf(() => fromBase45('qed'))).toBe('INVALID_VALUE');
    // ':::' is 44 + 44*45 + 44*2025 = 91124 > 65535; '::' is 44 + 44*45 = 2024 > 255.
    expect(codeOf(() => fromBase45(':::'))).toBe('INVALID_VALUE');
    expect(codeOf(() => fromBase45('::'))).toBe('INVALID_VALUE');
  });

  it('round-trips any bytes, and every text it accepts is the one encoding of its bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        expect(fromBase45(toBase45(b))).toEqual(b);
      }),
    );
    fc.assert(
      fc.property(
        fc.string({
          unit: fc.constantFrom(...'0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:'),
          maxLength: 30,
        }),
        (t) => {
          let bytes: Uint8Array;
          try {
            bytes = fromBase45(t);
          } catch {
            return;
          }
          expect(toBase45(bytes)).toBe(t);
        },
      ),
    );
  });
});

describe('QR chunks of a file', () => {
  const file = utf8(JSON.stringify({ v: 1, kind: 'custos.offline-job', pad: 'x'.repeat(5000) }));

  it('splits a file into numbered lines of at most the chunk size, read back in any order', () => {
    const lines = toQrChunks(file, 600);
    expect(lines.length).toBeGreaterThan(5);
    for (const l of lines) {
      expect(l).toMatch(/^CUSTOS1:[0-9]+\/[0-9]+:[0-9A-F]{16}:[0-9A-Z $%*+\-./:]{1,600}$/);
    }
    expect(isQrChunks(lines.join('\n'))).toBe(true);
    expect(isQrChunks('{"v":1}')).toBe(false);
    expect(fromQrChunks([...lines].reverse())).toEqual(file);
    // A code scanned twice reads the same: harmless.
    expect(fromQrChunks([...lines, lines[0]!, ''])).toEqual(file);
  });

  it('refuses a missing line, a line of another file, two different lines for one place, and a changed character', () => {
    const lines = toQrChunks(file, 600);
    const other = toQrChunks(utf8('another file'), 600);
    expect(codeOf(() => fromQrChunks(lines.slice(1)))).toBe('INVALID_VALUE');
    expect(codeOf(() => fromQrChunks([...lines, other[0]!]))).toBe('INVALID_VALUE');
    const changed = lines[1]!.slice(0, -1) + (lines[1]!.endsWith('0') ? '1' : '0');
    expect(codeOf(() => fromQrChunks([...lines, changed]))).toBe('INVALID_VALUE');
    expect(codeOf(() => fromQrChunks([lines[0]!, changed, ...lines.slice(2)]))).toBe('INVALID_VALUE');
    expect(codeOf(() => fromQrChunks(['{"v":1}']))).toBe('INVALID_VALUE');
  });
});
