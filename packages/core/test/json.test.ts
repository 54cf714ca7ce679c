import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CustosError, type ErrorCode } from '../src/errors.js';
import { canonicalize } from '../src/jcs.js';
import { parseJson, parseJsonBytes } from '../src/json.js';

function codeOf(fn: () => unknown): ErrorCode | 'NO_ERROR' {
  try {
    fn();
    return 'NO_ERROR';
  } catch (err) {
    if (err instanceof CustosError) return err.code;
    throw err;
  }
}

describe('strict JSON parser', () => {
  it('parses what JSON.parse parses for ordinary integer-only documents', () => {
    const text = '{"a":[1,2,{"b":null,"c":true,"d":false}],"e":"x\\ny\\u00e9","f":-12}';
    expect(parseJson(text)).toEqual(JSON.parse(text));
  });

  it.each([
    ['{"a":1,"a":2}', 'DUPLICATE_KEY'],
    ['{"a":{"b":1,"b":1}}', 'DUPLICATE_KEY'],
    ['{"\\u0061":1,"a":2}', 'DUPLICATE_KEY'],
    ['{} {}', 'TRAILING_DATA'],
    ['1 2', 'TRAILING_DATA'],
    ['1.0', 'NON_CANONICAL_NUMBER'],
    ['1e3', 'NON_CANONICAL_NUMBER'],
    ['-0', 'NON_CANONICAL_NUMBER'],
    ['9007199254740993', 'NON_CANONICAL_NUMBER'],
    ['01', 'TRAILING_DATA'],
    ['"\\ud800"', 'LONE_SURROGATE'],
    ['"\\udc00x"', 'LONE_SURROGATE'],
    ['{"a":1,}', 'INVALID_JSON'],
    ['[1,]', 'INVALID_JSON'],
    ["{'a':1}", 'INVALID_JSON'],
    ['"a\tb"', 'INVALID_JSON'],
    ['"\\x41"', 'INVALID_JSON'],
    ['nul', 'INVALID_JSON'],
    ['', 'INVALID_JSON'],
    ['"unterminated', 'INVALID_JSON'],
  ] as const)('refuses %s with %s', (text, code) => {
    expect(codeOf(() => parseJson(text))).toBe(code);
  });

  it('refuses nesting deeper than the limit without exhausting the stack', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    expect(codeOf(() => parseJson(deep, { maxBytes: 1 << 20 }))).toBe('TOO_DEEP');
    expect(codeOf(() => parseJson('[[[1]]]', { maxDepth: 2 }))).toBe('TOO_DEEP');
    expect(parseJson('[[1]]', { maxDepth: 2 })).toEqual([[1]]);
  });

  it('refuses input over the byte limit before parsing it', () => {
    expect(codeOf(() => parseJsonBytes(new Uint8Array(11), { maxBytes: 10 }))).toBe('TOO_LARGE');
  });

  it('refuses bytes that are not UTF-8 and a byte order mark', () => {
    expect(codeOf(() => parseJsonBytes(new Uint8Array([0x22, 0xff, 0x22])))).toBe('INVALID_UTF8');
    expect(codeOf(() => parseJsonBytes(new Uint8Array([0xef, 0xbb, 0xbf, 0x31])))).toBe('INVALID_JSON');
  });

  it('treats __proto__ as an ordinary key and does not pollute prototypes', () => {
    const v = parseJson('{"__proto__":{"polluted":1}}') as Record<string, unknown>;
    expect(Object.keys(v)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('round-trips any integer-only JSON value through canonicalize (property)', () => {
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        fc.constant(null),
        fc.boolean(),
        fc.maxSafeInteger(),
        fc.string({ unit: 'grapheme' }),
        fc.array(tie('node'), { maxLength: 5 }),
        fc.dictionary(fc.string({ unit: 'grapheme' }), tie('node'), { maxKeys: 5 }),
      ),
    })).node;
    fc.assert(
      fc.property(value, (v) => {
        const text = canonicalize(v);
        const parsed = parseJson(text, { maxDepth: 64 });
        expect(canonicalize(parsed)).toBe(text);
      }),
    );
  });

  it('never throws anything but a CustosError on arbitrary input (property)', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        try {
          parseJson(s);
        } catch (err) {
          expect(err).toBeInstanceOf(CustosError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
