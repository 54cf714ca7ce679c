/**
 * RFC 8785 JSON Canonicalization Scheme (JCS), and Custos digests.
 *
 * JCS gives every JSON value one byte string: object members sorted by the
 * UTF-16 code units of their names (RFC 8785 section 3.2.3), no whitespace,
 * strings escaped as ECMAScript's JSON.stringify does (3.2.2.2), numbers in
 * ECMAScript's shortest form (3.2.2.3). Custos objects use only safe integers,
 * so the number rule reduces to plain decimal integers.
 *
 * A digest is sha256("custos/<type>/v<n>\n" || JCS(body)). The prefix
 * separates domains: an approval's bytes can never be read as an intent's.
 */

import { toHex, utf8 } from './bytes.js';
import { CustosError } from './errors.js';
import { sha256 } from './hash.js';
import type { Digest } from './types.js';

/** Canonical JSON text of a value. Throws on values JSON cannot hold. */
export function canonicalize(value: unknown): string {
  const parts: string[] = [];
  write(value, parts, 0);
  return parts.join('');
}

export function canonicalBytes(value: unknown): Uint8Array {
  return utf8(canonicalize(value));
}

const MAX_DEPTH = 64;

function write(value: unknown, out: string[], depth: number): void {
  if (depth > MAX_DEPTH) throw new CustosError('TOO_DEEP', 'value is nested too deeply to canonicalize');
  if (value === null) {
    out.push('null');
    return;
  }
  switch (typeof value) {
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'number':
      if (!Number.isFinite(value))
        throw new CustosError('INVALID_VALUE', 'JSON cannot hold a non-finite number');
      if (!Number.isSafeInteger(value) || Object.is(value, -0)) {
        throw new CustosError('NON_CANONICAL_NUMBER', 'Custos objects hold only safe integers');
      }
      out.push(String(value));
      return;
    case 'string':
      if (!value.isWellFormed()) throw new CustosError('LONE_SURROGATE', 'string holds a lone surrogate');
      out.push(JSON.stringify(value));
      return;
    case 'object': {
      if (Array.isArray(value)) {
        out.push('[');
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out.push(',');
          write(value[i], out, depth + 1);
        }
        out.push(']');
        return;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw new CustosError('WRONG_TYPE', 'only plain objects can be canonicalized');
      }
      const record = value as Record<string, unknown>;
      // Default sort compares UTF-16 code units, as RFC 8785 3.2.3 requires.
      const keys = Object.keys(record)
        .filter((k) => record[k] !== undefined)
        .sort();
      out.push('{');
      let first = true;
      for (const key of keys) {
        if (!first) out.push(',');
        first = false;
        if (!key.isWellFormed()) throw new CustosError('LONE_SURROGATE', 'key holds a lone surrogate');
        out.push(JSON.stringify(key), ':');
        write(record[key], out, depth + 1);
      }
      out.push('}');
      return;
    }
    default:
      throw new CustosError('WRONG_TYPE', `JSON cannot hold a ${typeof value}`);
  }
}

/** The domain-separation prefix of a digest: "custos/<type>/v<n>\n". */
export function digestPrefix(type: string, version: number): string {
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(type) || !Number.isSafeInteger(version) || version < 1) {
    throw new CustosError(
      'INVALID_VALUE',
      'digest type must be a lower-case name and version a positive integer',
    );
  }
  return `custos/${type}/v${version}\n`;
}

/** sha256("custos/<type>/v<n>\n" || JCS(body)) as raw bytes. */
export function digestBytes(type: string, version: number, body: unknown): Uint8Array {
  return sha256(utf8(digestPrefix(type, version) + canonicalize(body)));
}

/** sha256("custos/<type>/v<n>\n" || JCS(body)), lower-case hex. */
export function digestOf(type: string, version: number, body: unknown): Digest {
  return toHex(digestBytes(type, version, body)) as Digest;
}
