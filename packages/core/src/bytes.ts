/**
 * Byte helpers: strict hex and base64url, UTF-8, and constant-time comparison.
 * Decoders here reject anything that is not the one canonical spelling
 * (lower-case hex, unpadded base64url), so two different strings never decode
 * to the same bytes.
 */
import { base64urlnopad } from '@scure/base';
import { CustosError } from './errors.js';

const HEX_RE = /^(?:[0-9a-f]{2})*$/;

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Lower-case hex only, even length. Throws INVALID_VALUE otherwise. */
export function fromHex(hex: string): Uint8Array {
  if (!HEX_RE.test(hex)) {
    throw new CustosError('INVALID_VALUE', 'expected lower-case hex with an even number of digits');
  }
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export function toBase64url(bytes: Uint8Array): string {
  return base64urlnopad.encode(bytes);
}

/** Unpadded base64url only (RFC 4648 section 5); non-canonical trailing bits are rejected. */
export function fromBase64url(text: string): Uint8Array {
  try {
    return base64urlnopad.decode(text);
  } catch (err) {
    throw new CustosError('INVALID_VALUE', 'expected unpadded base64url', {}, { cause: err });
  }
}

const encoder = new TextEncoder();
const fatalDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Decodes UTF-8, rejecting malformed sequences (no replacement characters). */
export function fromUtf8(bytes: Uint8Array): string {
  try {
    return fatalDecoder.decode(bytes);
  } catch (err) {
    throw new CustosError('INVALID_UTF8', 'input is not valid UTF-8', {}, { cause: err });
  }
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/**
 * Compares two byte strings in time that depends only on their lengths.
 * Use for secrets (HMAC tags, tokens). Lengths are not secret here.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}
