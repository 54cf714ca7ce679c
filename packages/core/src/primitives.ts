/**
 * Field schemas shared by every Custos object. Limits are generous for real
 * use and small enough that no field can be used to blow up storage or logs.
 */
import { array, branded, int, string } from './schema.js';
import type { Address, Amount, Base64url, Digest, Hex } from './types.js';

export const ZERO_DIGEST = '0'.repeat(64) as Digest;

export const digest = branded<'Digest'>({
  min: 64,
  max: 64,
  pattern: /^[0-9a-f]{64}$/,
  description: 'sha256 digest, 64 lower-case hex digits',
});

/** Base units as a decimal string: no sign, no leading zero, no exponent, at most 78 digits (2^256). */
export const amount = branded<'Amount'>({
  min: 1,
  max: 78,
  pattern: /^(?:0|[1-9][0-9]*)$/,
  patternCode: 'NON_CANONICAL_AMOUNT',
  description: 'amount in base units (satoshi, wei) as a canonical decimal string',
});

/** Identifiers of members, devices, wallets, assets, rules, address-book entries. */
export const id = string({
  min: 1,
  max: 64,
  pattern: /^[A-Za-z0-9][A-Za-z0-9._:@-]*$/,
  description: 'identifier: letters, digits and . _ : @ -',
});

/** A CAIP-2 chain id, e.g. bitcoin:regtest, eip155:1. */
export const chain = string({
  min: 5,
  max: 41,
  pattern: /^[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}$/,
  description: 'CAIP-2 chain id, e.g. bitcoin:mainnet, bitcoin:regtest, eip155:1',
});

export const address = branded<'Address'>({
  min: 1,
  max: 128,
  pattern: /^[\x21-\x7e]+$/,
  description: 'destination address as the chain spells it',
});

/** Milliseconds since the Unix epoch, UTC. */
export const millis = int({
  min: 0,
  max: Number.MAX_SAFE_INTEGER,
  description: 'milliseconds since the Unix epoch',
});

/** A duration in milliseconds, up to 10 years. */
export const duration = int({ min: 0, max: 10 * 366 * 86_400_000, description: 'duration in milliseconds' });

/** 128 random bits as 32 hex digits. */
export const nonce = branded<'Hex'>({
  min: 32,
  max: 32,
  pattern: /^[0-9a-f]{32}$/,
  description: '128-bit nonce, hex',
});

export function hexBytes(bytes: number, description?: string) {
  return branded<'Hex'>({
    min: bytes * 2,
    max: bytes * 2,
    pattern: new RegExp(`^[0-9a-f]{${bytes * 2}}$`),
    ...(description === undefined ? {} : { description }),
  });
}

export function hexOfMaxBytes(maxBytes: number) {
  return branded<'Hex'>({ min: 2, max: maxBytes * 2, pattern: /^(?:[0-9a-f]{2})+$/ });
}

export function base64url(maxChars: number) {
  return branded<'Base64url'>({ min: 1, max: maxChars, pattern: /^[A-Za-z0-9_-]+$/ });
}

export const label = string({ min: 1, max: 128, description: 'human-readable label' });
export const text = string({ max: 512, description: 'free text' });
export const ids = (max: number) => array(id, { max, unique: true });

export type { Address, Amount, Base64url, Digest, Hex };
