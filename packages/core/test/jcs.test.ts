import { sha256 } from '@noble/hashes/sha2.js';
import { describe, expect, it } from 'vitest';
import { toHex, utf8 } from '../src/bytes.js';
import { CustosError } from '../src/errors.js';
import { canonicalize, digestOf, digestPrefix } from '../src/jcs.js';

describe('RFC 8785 canonicalization', () => {
  it('sorts object members by UTF-16 code units (RFC 8785 section 3.2.3 example)', () => {
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    // Compare the text: JavaScript objects list integer-like keys first, so key order must be read from bytes.
    const order = ['\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33'] as const;
    const expected = `{${order.map((k) => `${JSON.stringify(k)}:${JSON.stringify(input[k])}`).join(',')}}`;
    expect(canonicalize(input)).toBe(expected);
  });

  it('escapes strings as RFC 8785 section 3.2.2.2 requires', () => {
    const input = { string: '\u20ac$\u000F\u000aA\'\u0042\u0022\u005c\\"/' };
    expect(canonicalize(input)).toBe('{"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
  });

  it('writes no whitespace and keeps array order', () => {
    expect(canonicalize({ b: [3, 1, 2], a: { d: null, c: true } })).toBe(
      '{"a":{"c":true,"d":null},"b":[3,1,2]}',
    );
  });

  it('refuses values Custos objects cannot hold', () => {
    for (const bad of [1.5, Number.NaN, 2 ** 60, -0, '\ud800', new Date(0), () => 1]) {
      expect(() => canonicalize({ x: bad })).toThrow(CustosError);
    }
  });

  it('drops undefined members, as JSON.stringify does', () => {
    expect(canonicalize({ a: 1, b: undefined })).toBe('{"a":1}');
  });
});

describe('digests', () => {
  it('are sha256 of the domain prefix and the canonical body', () => {
    const body = { b: '2', a: 1 };
    const expected = toHex(sha256(utf8('custos/intent/v1\n{"a":1,"b":"2"}')));
    expect(digestOf('intent', 1, body)).toBe(expected);
  });

  it('separate domains: the same body has different digests as an intent and as an approval', () => {
    expect(digestOf('intent', 1, { a: 1 })).not.toBe(digestOf('approval', 1, { a: 1 }));
    expect(digestOf('intent', 1, { a: 1 })).not.toBe(digestOf('intent', 2, { a: 1 }));
  });

  it('refuses malformed domain names', () => {
    expect(() => digestPrefix('Intent', 1)).toThrow(CustosError);
    expect(() => digestPrefix('intent\n', 1)).toThrow(CustosError);
    expect(() => digestPrefix('intent', 0)).toThrow(CustosError);
  });
});
