/**
 * Secrets at rest: a password-sealed box for signer keystores and client
 * device keys (docs/architecture.md "Storage": scrypt key derivation, XChaCha20-Poly1305).
 *
 * scrypt (RFC 7914) makes each password guess cost memory and time; the
 * 24-byte XChaCha20 nonce is random, so nonces never repeat in practice. The
 * public metadata is bound as associated data: swapping the label or public
 * key of a sealed box makes it fail to open rather than open under a lie.
 * A wrong password and a tampered file look the same (BAD_PASSWORD): the
 * error says nothing about which, and nothing about the secret.
 */
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { scryptAsync } from '@noble/hashes/scrypt.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { fromHex, toHex, utf8 } from './bytes.js';
import { CustosError } from './errors.js';
import { canonicalize } from './jcs.js';
import { hexBytes, hexOfMaxBytes } from './primitives.js';
import { type Infer, int, literal, object, type Schema } from './schema.js';

export const sealedBox = object({
  v: literal(1),
  kdf: object({
    name: literal('scrypt'),
    logN: int({ min: 10, max: 22 }),
    r: int({ min: 1, max: 32 }),
    p: int({ min: 1, max: 16 }),
    salt: hexBytes(16),
  }),
  cipher: object({ name: literal('xchacha20poly1305'), nonce: hexBytes(24) }),
  ciphertext: hexOfMaxBytes(1 << 16),
});
export type SealedBox = Infer<typeof sealedBox>;

/** scrypt cost: 2^17 with r=8 (128 MiB, about half a second) by default; tests may use less. */
export const DEFAULT_SCRYPT_LOG_N = 17;

async function deriveKey(password: string, kdf: SealedBox['kdf']): Promise<Uint8Array> {
  if (password.length === 0) throw new CustosError('INVALID_VALUE', 'the password is empty');
  return scryptAsync(utf8(password.normalize('NFC')), fromHex(kdf.salt), {
    N: 2 ** kdf.logN,
    r: kdf.r,
    p: kdf.p,
    dkLen: 32,
    maxmem: 2 ** kdf.logN * kdf.r * 128 * 2,
  });
}

/**
 * Seals `secret` (any JSON value) under `password`, binding `publicPart` as
 * associated data. `publicPart` is stored by the caller beside the box.
 */
export async function sealWithPassword(
  secret: unknown,
  password: string,
  publicPart: unknown,
  opts: { logN?: number } = {},
): Promise<SealedBox> {
  const kdf = {
    name: 'scrypt' as const,
    logN: opts.logN ?? DEFAULT_SCRYPT_LOG_N,
    r: 8,
    p: 1,
    salt: toHex(randomBytes(16)) as SealedBox['kdf']['salt'],
  };
  const key = await deriveKey(password, kdf);
  const nonce = randomBytes(24);
  const plaintext = utf8(canonicalize(secret));
  const ciphertext = xchacha20poly1305(key, nonce, utf8(canonicalize(publicPart))).encrypt(plaintext);
  plaintext.fill(0);
  key.fill(0);
  return sealedBox.parse({
    v: 1,
    kdf,
    cipher: { name: 'xchacha20poly1305', nonce: toHex(nonce) },
    ciphertext: toHex(ciphertext),
  });
}

/** Opens a sealed box and checks the secret against `schema`. BAD_PASSWORD on a wrong password or tampering. */
export async function openWithPassword<T>(
  box: SealedBox,
  password: string,
  publicPart: unknown,
  schema: Schema<T>,
): Promise<T> {
  const key = await deriveKey(password, box.kdf);
  let plaintext: Uint8Array;
  try {
    plaintext = xchacha20poly1305(key, fromHex(box.cipher.nonce), utf8(canonicalize(publicPart))).decrypt(
      fromHex(box.ciphertext),
    );
  } catch {
    throw new CustosError('BAD_PASSWORD', 'the password is wrong or the key file was altered');
  } finally {
    key.fill(0);
  }
  const value = schema.parse(JSON.parse(new TextDecoder().decode(plaintext)));
  plaintext.fill(0);
  return value;
}
