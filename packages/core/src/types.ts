/**
 * Branded types: a Digest is not just any string, an Amount is not a number.
 * Values get these brands only from the decoders and constructors that check
 * them, so a function taking a Digest knows it is 64 lower-case hex digits.
 */
declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };

/** 64 lower-case hex digits: a sha256 output. */
export type Digest = Brand<string, 'Digest'>;
/** A non-negative integer in base units (satoshi, wei) as a canonical decimal string. */
export type Amount = Brand<string, 'Amount'>;
/** A destination address as the chain spells it. */
export type Address = Brand<string, 'Address'>;
/** Lower-case hex of any length. */
export type Hex = Brand<string, 'Hex'>;
/** Unpadded base64url. */
export type Base64url = Brand<string, 'Base64url'>;
/** Milliseconds since the Unix epoch, UTC. */
export type Millis = number;
