/**
 * A QR-friendly text form for the offline job and result files (issue 13):
 * Base45 (RFC 9285) in numbered lines. Base45 uses exactly the 45
 * characters of a QR code's alphanumeric mode, which packs them at 5.5 bits
 * each, so 2 bytes take 16.5 bits in a code (byte mode with base64 would take
 * 21.3). Each line is one QR code's content:
 *
 *   CUSTOS1:<i>/<n>:<first 16 hex digits of SHA-256 of the whole, upper case>:<Base45>
 *
 * A reader scans the codes in any order; the line header says where each
 * goes and the hash binds them to one file, so a missing, repeated with
 * different content, or foreign line is refused (INVALID_VALUE), never
 * glued into another file. The hash is for the media, not for security: the
 * file's contents are checked by who reads them (the signer verifies every
 * signed object, the coordinator the receipt).
 */

import { toHex } from './bytes.js';
import { CustosError } from './errors.js';
import { sha256 } from './hash.js';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:';
const VALUE = new Map([...ALPHABET].map((c, i) => [c, i] as const));

/** Base45 of `bytes` (RFC 9285 section 4). */
export function toBase45(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    let n = bytes[i]! * 256 + bytes[i + 1]!;
    const c = n % 45;
    n = (n - c) / 45;
    const d = n % 45;
    const e = (n - d) / 45;
    out += ALPHABET[c]! + ALPHABET[d]! + ALPHABET[e]!;
  }
  if (bytes.length % 2 === 1) {
    const n = bytes[bytes.length - 1]!;
    out += ALPHABET[n % 45]! + ALPHABET[Math.floor(n / 45)]!;
  }
  return out;
}

/**
 * The bytes of a Base45 text (RFC 9285 section 4.2), strictly: a length of
 * 3k or 3k + 2, only alphabet characters, and no group above what it can
 * encode (65535 for three characters, 255 for a final two), so one byte
 * string has exactly one Base45 form.
 */
export function fromBase45(text: string): Uint8Array {
  if (text.length % 3 === 1) throw invalid('a Base45 text has a length of 3k or 3k + 2');
  const out = new Uint8Array(Math.floor(text.length / 3) * 2 + (text.length % 3 === 2 ? 1 : 0));
  let o = 0;
  for (let i = 0; i < text.length; i += 3) {
    const c = digit(text, i);
    const d = digit(text, i + 1);
    if (i + 2 < text.length) {
      const n = c + d * 45 + digit(text, i + 2) * 45 * 45;
      if (n > 0xffff) throw invalid(`Base45 group at ${i} is above 65535`);
      out[o++] = n >> 8;
      out[o++] = n & 0xff;
    } else {
      const n = c + d * 45;
      if (n > 0xff) throw invalid(`Base45 group at ${i} is above 255`);
      out[o++] = n;
    }
  }
  return out;
}

const HEADER = /^CUSTOS1:([1-9][0-9]{0,3})\/([1-9][0-9]{0,3}):([0-9A-F]{16}):(.*)$/;

/** Most characters of Base45 per line by default: a QR code of version 25 or so at error correction M. */
export const QR_CHUNK_CHARS = 1020;

/**
 * Splits `bytes` into QR-sized lines (see the module header); at most 9999.
 * `chunkChars` is rounded down to a multiple of 3, so each line's Base45
 * stands on its own.
 */
export function toQrChunks(bytes: Uint8Array, chunkChars = QR_CHUNK_CHARS): string[] {
  const size = Math.max(3, chunkChars - (chunkChars % 3));
  const text = toBase45(bytes);
  const n = Math.max(1, Math.ceil(text.length / size));
  if (n > 9999) throw new CustosError('TOO_LARGE', `${n} QR chunks: more than 9999`);
  const hash = fileHash(bytes);
  return Array.from(
    { length: n },
    (_, i) => `CUSTOS1:${i + 1}/${n}:${hash}:${text.slice(i * size, (i + 1) * size)}`,
  );
}

/** Whether `text` is in the chunked form (its first line has the header), not JSON. */
export function isQrChunks(text: string): boolean {
  return text.startsWith('CUSTOS1:');
}

/**
 * The bytes of QR lines, in any order (empty lines ignored; a line read
 * twice is fine if it reads the same). Refused (INVALID_VALUE): a line
 * without the header, lines of different files or counts, a line missing,
 * two different lines for one place, or a whole whose hash is not the one
 * the lines name.
 */
export function fromQrChunks(lines: readonly string[]): Uint8Array {
  let n: number | null = null;
  let hash: string | null = null;
  const parts = new Map<number, string>();
  for (const [k, raw] of lines.entries()) {
    const line = raw.replace(/\r$/, '');
    if (line === '') continue;
    const m = HEADER.exec(line);
    if (m === null) throw invalid(`line ${k + 1} is not a Custos QR chunk`);
    const [, i, count, h, data] = m as unknown as [string, string, string, string, string];
    if (n === null) n = Number(count);
    if (hash === null) hash = h;
    if (Number(count) !== n || h !== hash) throw invalid(`line ${k + 1} belongs to another file`);
    if (Number(i) > n) throw invalid(`line ${k + 1} is chunk ${i} of ${n}`);
    const seen = parts.get(Number(i));
    if (seen !== undefined && seen !== data) throw invalid(`two different chunks ${i} of ${n}`);
    parts.set(Number(i), data);
  }
  if (n === null || hash === null) throw invalid('no QR chunks');
  const missing = Array.from({ length: n }, (_, i) => i + 1).filter((i) => !parts.has(i));
  if (missing.length > 0) throw invalid(`chunks missing: ${missing.slice(0, 20).join(', ')} of ${n}`);
  const bytes = fromBase45(Array.from({ length: n }, (_, i) => parts.get(i + 1)!).join(''));
  if (fileHash(bytes) !== hash) throw invalid('the chunks do not hash to the file they name');
  return bytes;
}

function fileHash(bytes: Uint8Array): string {
  return toHex(sha256(bytes)).slice(0, 16).toUpperCase();
}

function digit(text: string, i: number): number {
  const v = VALUE.get(text[i]!);
  if (v === undefined) throw invalid(`character ${i} is not Base45`);
  return v;
}

function invalid(message: string): CustosError {
  return new CustosError('INVALID_VALUE', message);
}
