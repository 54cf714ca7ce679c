/**
 * Safe owner signatures.
 *
 * An owner signs the 32-byte safeTxHash itself (no EIP-191 prefix): plain
 * ECDSA over secp256k1, encoded as Safe's `checkNSignatures` reads it,
 * r (32) || s (32) || v (1) with v = 27 + recovery id. Signatures are RFC
 * 6979 deterministic and low-s (@noble/curves), so one key signs one hash
 * to one byte string. `execTransaction` wants them concatenated in strictly
 * ascending order of owner address (Safe.sol rejects `currentOwner <=
 * lastOwner`), which {@link packSafeSignatures} does.
 *
 * Recovery is strict: v other than 27/28 is refused (0 contract signature,
 * 1 approved hash and v > 30 eth_sign are Safe signature kinds that Custos
 * never produces), and so is a high-s signature (malleable twin).
 */

import { accept } from '@custos/core';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { type Address, bytesToHex, concatHex, type Hex, hexToBytes, isHex } from 'viem';
import { publicKeyToAddress } from 'viem/accounts';
import { type EvmResult, refuseEvm } from './codes.js';

export type SecretKey = Uint8Array | Hex;

const SIGNATURE_HEX_LENGTH = 2 + 2 * 65;

function keyBytes(key: SecretKey): Uint8Array {
  const bytes = typeof key === 'string' ? hexToBytes(key) : key;
  if (bytes.length !== 32) {
    throw new RangeError('a secp256k1 secret key is 32 bytes');
  }
  return bytes;
}

function hashBytes(hash: Hex): Uint8Array {
  if (!isHex(hash, { strict: true }) || hash.length !== 66) {
    throw new RangeError('a safeTxHash is 32 bytes of hex');
  }
  return hexToBytes(hash);
}

function addressOfPublicKey(publicKey: Uint8Array): Address {
  const uncompressed = secp256k1.Point.fromBytes(publicKey).toBytes(false);
  return publicKeyToAddress(bytesToHex(uncompressed));
}

/** The EVM address (checksummed) of a secret key: the owner address governance lists for a signer. */
export function evmAddressOf(secretKey: SecretKey): Address {
  return addressOfPublicKey(secp256k1.getPublicKey(keyBytes(secretKey), false));
}

/** Signs a safeTxHash as a Safe owner: 65 bytes r || s || v, v 27 or 28. */
export function signSafeTxHash(hash: Hex, secretKey: SecretKey): Hex {
  const recovered = secp256k1.sign(hashBytes(hash), keyBytes(secretKey), {
    prehash: false,
    format: 'recovered',
  });
  // noble's 'recovered' format is recovery id || r || s.
  const out = new Uint8Array(65);
  out.set(recovered.subarray(1), 0);
  out[64] = 27 + recovered[0]!;
  return bytesToHex(out);
}

/** The owner whose key made `signature` over `hash`, or a refusal for anything but a canonical 27/28 signature. */
export function recoverSafeSigner(hash: Hex, signature: Hex): EvmResult<Address> {
  if (!isHex(signature, { strict: true }) || signature.length !== SIGNATURE_HEX_LENGTH) {
    return refuseEvm('INVALID_VALUE', 'an owner signature is 65 bytes');
  }
  const bytes = hexToBytes(signature);
  const v = bytes[64]!;
  if (v !== 27 && v !== 28) {
    return refuseEvm('BAD_SIGNATURE', 'only ECDSA owner signatures with v 27 or 28 are accepted', { v });
  }
  const compact = bytes.subarray(0, 64);
  let sig: ReturnType<typeof secp256k1.Signature.fromBytes>;
  try {
    sig = secp256k1.Signature.fromBytes(compact, 'compact');
  } catch {
    return refuseEvm('BAD_SIGNATURE', 'r or s out of range');
  }
  if (sig.hasHighS()) {
    return refuseEvm('BAD_SIGNATURE', 'high-s signature (the malleable twin of a low-s one)');
  }
  const recovered = new Uint8Array(65);
  recovered[0] = v - 27;
  recovered.set(compact, 1);
  try {
    return accept(
      addressOfPublicKey(secp256k1.recoverPublicKey(recovered, hashBytes(hash), { prehash: false })),
    );
  } catch {
    return refuseEvm('BAD_SIGNATURE', 'no public key recovers from this signature');
  }
}

export interface OwnerSignature {
  readonly owner: Address;
  readonly signature: Hex;
}

/** Concatenates owner signatures in ascending owner order, as execTransaction requires. Duplicates are a caller's bug. */
export function packSafeSignatures(signatures: readonly OwnerSignature[]): Hex {
  const sorted = [...signatures].sort((a, b) => compareAddresses(a.owner, b.owner));
  for (let i = 0; i < sorted.length; i++) {
    const { owner, signature } = sorted[i]!;
    if (!isHex(signature, { strict: true }) || signature.length !== SIGNATURE_HEX_LENGTH) {
      throw new RangeError(`the signature of ${owner} is not 65 bytes`);
    }
    if (i > 0 && compareAddresses(sorted[i - 1]!.owner, owner) === 0) {
      throw new RangeError(`two signatures of ${owner}`);
    }
  }
  return sorted.length === 0 ? '0x' : concatHex(sorted.map((s) => s.signature));
}

/** Orders addresses as uint160, which is Safe's order. */
export function compareAddresses(a: Address, b: Address): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
