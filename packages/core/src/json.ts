/**
 * A strict JSON parser for bytes that come from outside.
 *
 * `JSON.parse` keeps the last of two duplicate keys, accepts any number and
 * lets lone surrogates through. Two parties reading the same bytes must never
 * see different objects (the duplicate-key trick is a classic signature
 * bypass), so this parser refuses, with a stable code:
 * - bytes that are not UTF-8 (INVALID_UTF8), a byte order mark, or bytes after the value (TRAILING_DATA);
 * - duplicate keys in one object (DUPLICATE_KEY);
 * - nesting deeper than `maxDepth` (TOO_DEEP) or input longer than `maxBytes` (TOO_LARGE);
 * - numbers with a fraction, an exponent, `-0`, or outside the safe-integer range
 *   (NON_CANONICAL_NUMBER): Custos objects have only integers, and amounts are strings;
 * - strings holding a lone UTF-16 surrogate (LONE_SURROGATE), which JCS cannot encode.
 *
 * It never recurses on the input's shape beyond `maxDepth`, so hostile input
 * cannot exhaust the stack.
 */
import { fromUtf8 } from './bytes.js';
import { CustosError } from './errors.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface ParseLimits {
  /** Longest input accepted, in bytes (default 1 MiB). */
  readonly maxBytes?: number;
  /** Deepest nesting of arrays and objects (default 32). */
  readonly maxDepth?: number;
}

export const DEFAULT_MAX_BYTES = 1 << 20;
export const DEFAULT_MAX_DEPTH = 32;

/** Parses UTF-8 bytes as strict JSON. */
export function parseJsonBytes(bytes: Uint8Array, limits: ParseLimits = {}): JsonValue {
  const maxBytes = limits.maxBytes ?? DEFAULT_MAX_BYTES;
  if (bytes.length > maxBytes) {
    throw new CustosError('TOO_LARGE', `input is ${bytes.length} bytes; the limit is ${maxBytes}`, {
      limit: maxBytes,
    });
  }
  return parseJson(fromUtf8(bytes), limits);
}

/** Parses a string as strict JSON (see the module header for what is refused). */
export function parseJson(text: string, limits: ParseLimits = {}): JsonValue {
  const maxBytes = limits.maxBytes ?? DEFAULT_MAX_BYTES;
  // A UTF-16 length over the byte limit is over it in UTF-8 too.
  if (text.length > maxBytes) {
    throw new CustosError('TOO_LARGE', `input is over the limit of ${maxBytes} bytes`, { limit: maxBytes });
  }
  const parser = new Parser(text, limits.maxDepth ?? DEFAULT_MAX_DEPTH);
  parser.skipWhitespace();
  const value = parser.value(0);
  parser.skipWhitespace();
  if (parser.pos !== text.length) {
    throw new CustosError('TRAILING_DATA', `unexpected data after the JSON value at offset ${parser.pos}`, {
      offset: parser.pos,
    });
  }
  return value;
}

const NUMBER_RE = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const INTEGER_RE = /^-?(?:0|[1-9][0-9]*)$/;

class Parser {
  pos = 0;
  constructor(
    private readonly text: string,
    private readonly maxDepth: number,
  ) {}

  fail(message: string): never {
    throw new CustosError('INVALID_JSON', `${message} at offset ${this.pos}`, { offset: this.pos });
  }

  skipWhitespace(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.pos++;
      else break;
    }
  }

  value(depth: number): JsonValue {
    const c = this.text[this.pos];
    switch (c) {
      case '{':
        return this.object(depth + 1);
      case '[':
        return this.array(depth + 1);
      case '"':
        return this.string();
      case 't':
        return this.literal('true', true);
      case 'f':
        return this.literal('false', false);
      case 'n':
        return this.literal('null', null);
      case undefined:
        return this.fail('unexpected end of input');
      default:
        if (c === '-' || (c >= '0' && c <= '9')) return this.number();
        return this.fail(`unexpected character ${JSON.stringify(c)}`);
    }
  }

  literal<T extends JsonValue>(word: string, value: T): T {
    if (this.text.startsWith(word, this.pos)) {
      this.pos += word.length;
      return value;
    }
    return this.fail('invalid literal');
  }

  number(): number {
    NUMBER_RE.lastIndex = this.pos;
    const m = NUMBER_RE.exec(this.text);
    if (m === null) return this.fail('invalid number');
    const raw = m[0];
    if (!INTEGER_RE.test(raw) || raw === '-0') {
      throw new CustosError('NON_CANONICAL_NUMBER', `number ${raw} is not a plain integer`, {
        offset: this.pos,
      });
    }
    const n = Number(raw);
    if (!Number.isSafeInteger(n)) {
      throw new CustosError(
        'NON_CANONICAL_NUMBER',
        `integer ${raw} is outside the safe range; use a string`,
        {
          offset: this.pos,
        },
      );
    }
    this.pos += raw.length;
    return n;
  }

  string(): string {
    const t = this.text;
    this.pos++; // opening quote
    let out = '';
    let start = this.pos;
    for (;;) {
      if (this.pos >= t.length) return this.fail('unterminated string');
      const c = t.charCodeAt(this.pos);
      if (c === 0x22) {
        out += t.slice(start, this.pos);
        this.pos++;
        break;
      }
      if (c < 0x20) return this.fail('control character in string');
      if (c === 0x5c) {
        out += t.slice(start, this.pos);
        out += this.escape();
        start = this.pos;
        continue;
      }
      this.pos++;
    }
    if (!out.isWellFormed()) {
      throw new CustosError('LONE_SURROGATE', 'string contains a lone UTF-16 surrogate', {
        offset: this.pos,
      });
    }
    return out;
  }

  escape(): string {
    const t = this.text;
    const e = t[this.pos + 1];
    this.pos += 2;
    switch (e) {
      case '"':
        return '"';
      case '\\':
        return '\\';
      case '/':
        return '/';
      case 'b':
        return '\b';
      case 'f':
        return '\f';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'u': {
        const hex = t.slice(this.pos, this.pos + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) return this.fail('invalid \\u escape');
        this.pos += 4;
        return String.fromCharCode(Number.parseInt(hex, 16));
      }
      default:
        this.pos -= 2;
        return this.fail('invalid escape');
    }
  }

  array(depth: number): JsonValue[] {
    if (depth > this.maxDepth) {
      throw new CustosError('TOO_DEEP', `nesting is deeper than ${this.maxDepth}`, { limit: this.maxDepth });
    }
    this.pos++;
    const out: JsonValue[] = [];
    this.skipWhitespace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipWhitespace();
      out.push(this.value(depth));
      this.skipWhitespace();
      const c = this.text[this.pos];
      if (c === ',') this.pos++;
      else if (c === ']') {
        this.pos++;
        return out;
      } else return this.fail('expected , or ]');
    }
  }

  object(depth: number): { [key: string]: JsonValue } {
    if (depth > this.maxDepth) {
      throw new CustosError('TOO_DEEP', `nesting is deeper than ${this.maxDepth}`, { limit: this.maxDepth });
    }
    this.pos++;
    // A null-prototype object: "__proto__" is an ordinary key here.
    const out: { [key: string]: JsonValue } = Object.create(null);
    this.skipWhitespace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text[this.pos] !== '"') return this.fail('expected a string key');
      const keyOffset = this.pos;
      const key = this.string();
      if (Object.hasOwn(out, key)) {
        throw new CustosError('DUPLICATE_KEY', `duplicate key ${JSON.stringify(key)}`, {
          offset: keyOffset,
          key: key.slice(0, 64),
        });
      }
      this.skipWhitespace();
      if (this.text[this.pos] !== ':') return this.fail('expected :');
      this.pos++;
      this.skipWhitespace();
      out[key] = this.value(depth);
      this.skipWhitespace();
      const c = this.text[this.pos];
      if (c === ',') this.pos++;
      else if (c === '}') {
        this.pos++;
        return out;
      } else return this.fail('expected , or }');
    }
  }
}
