/**
 * Decoding outside bytes into checked objects: strict JSON, then a strict
 * schema. `decodeCanonical` further requires the bytes to be exactly the JCS
 * form, for places (test vectors, stored objects) where only one spelling may
 * exist.
 */

import { fromUtf8 } from './bytes.js';
import { CustosError } from './errors.js';
import { canonicalize } from './jcs.js';
import { type ParseLimits, parseJson, parseJsonBytes } from './json.js';
import type { Schema } from './schema.js';

export function decode<T>(schema: Schema<T>, input: Uint8Array | string, limits?: ParseLimits): T {
  const value = typeof input === 'string' ? parseJson(input, limits) : parseJsonBytes(input, limits);
  return schema.parse(value);
}

export function decodeCanonical<T>(schema: Schema<T>, input: Uint8Array | string, limits?: ParseLimits): T {
  const text = typeof input === 'string' ? input : fromUtf8(input);
  const value = decode(schema, text, limits);
  if (canonicalize(value) !== text) {
    throw new CustosError('NON_CANONICAL_ENCODING', 'input is valid but not in RFC 8785 canonical form');
  }
  return value;
}
