/**
 * The signer keystore: one BIP 32 seed (its share of the Bitcoin wallets),
 * one secp256k1 EVM key (its Safe owner key, issue 9) and one Ed25519
 * identity key (its receipts and checkpoints), sealed under a password
 * (scrypt + XChaCha20-Poly1305, core/sealed.ts). The public half (ids, the
 * account xpub, the EVM address, the identity public key) sits beside the box
 * in clear and is bound to it as associated data, so `custos signer init` can
 * print what the admins put into the wallet descriptor and into governance
 * (the signer record's `evmAddress`, a Safe's owners) without the password.
 *
 * The EVM key is its own random key, not derived from the BIP 32 seed: one
 * leaked key then costs one chain family, and a Safe owner key can be rotated
 * (a governed owner swap) without touching the Bitcoin descriptors. A
 * keystore made before EVM support has no EVM key; it opens as before and its
 * signer refuses EVM jobs (UNAVAILABLE).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { BITCOIN_NETWORKS, descriptorKeyOf, type SignerKey, signerKeyFromSeed } from '@custos/bitcoin/sign';
import {
  CustosError,
  canonicalize,
  decode,
  ed25519PublicKey,
  evmAddress,
  fromHex,
  generateEd25519,
  type Infer,
  openWithPassword,
  primitives,
  schema,
  sealedBox,
  sealWithPassword,
  toChecksumAddress,
  toHex,
} from '@custos/core';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { randomBytes } from '@noble/hashes/utils.js';

const { id, hexBytes } = primitives;
const { literal, object, oneOf, string } = schema;

export const keystorePublic = object(
  {
    id,
    network: oneOf(BITCOIN_NETWORKS),
    identityKey: hexBytes(32),
    fingerprint: string({ min: 8, max: 8, pattern: /^[0-9a-f]{8}$/ }),
    path: string({ min: 1, max: 64, pattern: /^[0-9]+['h]?(\/[0-9]+['h]?)*$/ }),
    xpub: string({ min: 100, max: 120, pattern: /^[1-9A-HJ-NP-Za-km-z]+$/ }),
  },
  {
    /** The EIP-55 address of the EVM key: the signer record's `evmAddress`, a Safe owner. */
    evmAddress,
  },
);
export type KeystorePublic = Infer<typeof keystorePublic>;

export const keystoreFile = object({
  v: literal(1),
  kind: literal('custos-signer-keystore'),
  public: keystorePublic,
  box: sealedBox,
});
const keystoreSecret = object({ seed: hexBytes(64), identity: hexBytes(32) }, { evm: hexBytes(32) });

export interface UnlockedKeystore {
  readonly public: KeystorePublic;
  readonly identitySecret: Uint8Array;
  readonly key: SignerKey;
  /** The secp256k1 Safe owner key; null in a keystore made before EVM support. */
  readonly evmSecret: Uint8Array | null;
}

/** BIP 48 account path for P2WSH multisig: m/48'/coin'/0'/2'. */
export function defaultPath(network: 'mainnet' | 'testnet' | 'signet' | 'regtest'): string {
  return network === 'mainnet' ? "48'/0'/0'/2'" : "48'/1'/0'/2'";
}

export async function createKeystore(opts: {
  id: string;
  network: (typeof BITCOIN_NETWORKS)[number];
  password: string;
  path?: string;
  logN?: number;
}): Promise<{ file: Infer<typeof keystoreFile>; unlocked: UnlockedKeystore }> {
  const seed = randomBytes(64);
  const identity = generateEd25519();
  const evmSecret = randomEvmSecret();
  const key = signerKeyFromSeed(seed, opts.path ?? defaultPath(opts.network));
  const descriptorKey = descriptorKeyOf(key, opts.network);
  const pub: KeystorePublic = keystorePublic.parse({
    id: opts.id,
    network: opts.network,
    identityKey: identity.publicKey,
    fingerprint: descriptorKey.fingerprint,
    path: descriptorKey.path,
    xpub: descriptorKey.xpub,
    evmAddress: evmAddressOf(evmSecret),
  });
  const box = await sealWithPassword(
    { seed: toHex(seed), identity: toHex(identity.secretKey), evm: toHex(evmSecret) },
    opts.password,
    pub,
    opts.logN === undefined ? {} : { logN: opts.logN },
  );
  seed.fill(0);
  const file = { v: 1 as const, kind: 'custos-signer-keystore' as const, public: pub, box };
  return { file, unlocked: { public: pub, identitySecret: identity.secretKey, key, evmSecret } };
}

export function writeKeystore(path: string, file: Infer<typeof keystoreFile>): void {
  writeFileSync(path, `${canonicalize(file)}\n`, { mode: 0o600, flag: 'wx' });
}

export async function unlockKeystore(path: string, password: string): Promise<UnlockedKeystore> {
  const file = decode(keystoreFile, readFileSync(path));
  const secret = await openWithPassword(file.box, password, file.public, keystoreSecret);
  const seed = fromHex(secret.seed);
  const identitySecret = fromHex(secret.identity);
  if (ed25519PublicKey(identitySecret) !== file.public.identityKey) {
    throw new CustosError('BAD_PASSWORD', 'the keystore identity key does not match its public half');
  }
  const key = signerKeyFromSeed(seed, file.public.path);
  seed.fill(0);
  const descriptorKey = descriptorKeyOf(key, file.public.network);
  if (descriptorKey.xpub !== file.public.xpub || descriptorKey.fingerprint !== file.public.fingerprint) {
    throw new CustosError('BAD_PASSWORD', 'the keystore seed does not match its public half');
  }
  const evmSecret = secret.evm === undefined ? null : fromHex(secret.evm);
  // The EVM key and the public address must come together: a box with one and not the other was altered.
  const evmAddress = evmSecret === null ? undefined : evmAddressOf(evmSecret);
  if (evmAddress !== file.public.evmAddress) {
    throw new CustosError('BAD_PASSWORD', 'the keystore EVM key does not match its public half');
  }
  return { public: file.public, identitySecret, key, evmSecret };
}

/** A uniformly random secp256k1 secret key (rejection sampling: 0 and values >= n are not keys). */
function randomEvmSecret(): Uint8Array {
  for (;;) {
    const k = randomBytes(32);
    const n = BigInt(`0x${toHex(k)}`);
    if (n > 0n && n < SECP256K1_N) return k;
  }
}

/**
 * The EIP-55 address of a secp256k1 key: the last 20 bytes of Keccak-256 of
 * the uncompressed public key without its 0x04 prefix. Computed here with
 * noble rather than through @custos/evm, so that reading or writing a
 * keystore (the CLI does both) does not load viem.
 */
function evmAddressOf(secret: Uint8Array): ReturnType<typeof toChecksumAddress> {
  const pub = secp256k1.getPublicKey(secret, false);
  return toChecksumAddress(`0x${toHex(keccak_256(pub.subarray(1)).subarray(12))}`);
}

const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
