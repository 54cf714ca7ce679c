import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex, utf8 } from '../src/bytes.js';
import { SHA256_BACKEND, sha256, sha256Noble } from '../src/hash.js';

describe('sha256 backends agree', () => {
  it('uses OpenSSL through node:crypto on Node', () => {
    expect(SHA256_BACKEND).toBe('openssl');
  });

  it.each([
    ['', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
    ['abc', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
    [
      'abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq',
      '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
    ],
  ])('FIPS 180-4 vector %j', (text, digest) => {
    expect(toHex(sha256(utf8(text)))).toBe(digest);
    expect(toHex(sha256Noble(utf8(text)))).toBe(digest);
  });

  it('gives the same digest as noble for any bytes, including views into larger buffers (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(16), (bytes, offset) => {
        const padded = new Uint8Array(bytes.length + offset + 8);
        padded.set(bytes, offset);
        const view = padded.subarray(offset, offset + bytes.length);
        expect(toHex(sha256(view))).toBe(toHex(sha256Noble(bytes)));
      }),
    );
  });
});
