/**
 * EVM addresses and chain ids as governance and intents carry them (issue 9).
 *
 * Why it is built this way:
 * - One spelling per address. A signed object on an `eip155:` chain carries
 *   the EIP-55 checksummed form and nothing else, so two strings never name
 *   the same 20 bytes (the address book, the Safe's owners and a ledger's
 *   "paid before" compare text). Clients normalize a lower-case address
 *   before signing; core refuses it as NON_CANONICAL_ENCODING rather than
 *   fix it, because a signature covers bytes, not what they meant.
 * - A mixed-case address is a claim to carry the EIP-55 checksum; a wrong one
 *   is a typo or a doctored copy (address poisoning copies the first and last
 *   characters and nothing else), so it is refused with its own code,
 *   ADDRESS_CHECKSUM_INVALID, never normalized silently.
 * - The keccak is @noble/hashes' (audited); nothing here is cryptography of
 *   its own. Core stays independent of viem and of packages/evm.
 */
import { keccak_256 } from '@noble/hashes/sha3.js';
import { accept, CustosError, type Result, refuse } from './errors.js';
import { type Problem, refine, type Schema, string } from './schema.js';
import type { Address } from './types.js';

/** The zero address: what an absent Safe guard is, and never a valid owner, module or singleton. */
export const EVM_ZERO_ADDRESS = '0x0000000000000000000000000000000000000000' as Address;

/** Safe's linked-list sentinel (OwnerManager, ModuleManager): never an owner or a module. */
const SENTINEL = '0x0000000000000000000000000000000000000001';

const SHAPE = /^0x[0-9a-fA-F]{40}$/;
const CHAIN = /^eip155:([1-9][0-9]{0,15})$/;

/**
 * The EIP-55 spelling of an address given in any case: hex letters upper
 * case where the keccak-256 of the lower-case hex digits has a nibble ≥ 8.
 * Throws INVALID_VALUE for anything but `0x` and 40 hex digits (a caller's
 * mistake; data goes through {@link checkEvmAddress}).
 *
 * @example
 * toChecksumAddress('0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed') // '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed'
 */
export function toChecksumAddress(address: string): Address {
  if (!SHAPE.test(address)) {
    throw new CustosError('INVALID_VALUE', 'an EVM address is 0x and 40 hex digits');
  }
  const lower = address.slice(2).toLowerCase();
  const hash = keccak_256(new TextEncoder().encode(lower));
  let out = '0x';
  for (let i = 0; i < 40; i++) {
    const c = lower[i] as string;
    const byte = hash[i >> 1] as number;
    const nibble = i % 2 === 0 ? byte >> 4 : byte & 0x0f;
    out += nibble >= 8 ? c.toUpperCase() : c;
  }
  return out as Address;
}

/**
 * Whether `address` is an EVM address in its one canonical spelling.
 * Refusals: INVALID_VALUE (not 0x and 40 hex digits), ADDRESS_CHECKSUM_INVALID
 * (mixed case with a wrong checksum), NON_CANONICAL_ENCODING (all lower or
 * all upper case where the checksummed form differs: normalize, then sign).
 */
export function checkEvmAddress(address: string): Result<Address> {
  if (!SHAPE.test(address)) return refuse('INVALID_VALUE', 'an EVM address is 0x and 40 hex digits');
  const canonical = toChecksumAddress(address);
  if (canonical === address) return accept(canonical);
  const digits = address.slice(2);
  if (digits === digits.toLowerCase() || digits === digits.toUpperCase()) {
    return refuse(
      'NON_CANONICAL_ENCODING',
      `${address} is not in its EIP-55 checksummed form ${canonical}; signed objects carry that form`,
      { expected: canonical },
    );
  }
  return refuse(
    'ADDRESS_CHECKSUM_INVALID',
    `${address} mixes upper and lower case but its EIP-55 checksum is wrong: a typo or a tampered copy`,
  );
}

/** Whether a CAIP-2 chain id is in the `eip155` namespace (whatever its reference). */
export function isEvmChain(chain: string): boolean {
  return chain.startsWith('eip155:');
}

/**
 * The numeric chain id of a CAIP-2 `eip155:<id>` chain: a canonical decimal
 * (no sign, no leading zero) from 1 up to 2^53 - 1, the EIP-712 domain's
 * `chainId`. Undefined for anything else.
 *
 * @example
 * evmChainId('eip155:1') // 1
 * evmChainId('eip155:01') // undefined
 */
export function evmChainId(chain: string): number | undefined {
  const m = CHAIN.exec(chain);
  if (m === null) return undefined;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Why an address cannot be a Safe owner or module: the zero address and the sentinel mean "none" to the Safe. */
export function reservedSafeAddress(address: string): boolean {
  return address === EVM_ZERO_ADDRESS || address === SENTINEL;
}

/** An EVM address field, always in its EIP-55 checksummed spelling ({@link checkEvmAddress}). */
export const evmAddress: Schema<Address> = refine(
  string({
    min: 42,
    max: 42,
    pattern: SHAPE,
    description: 'EVM address, 0x and 40 hex digits in the EIP-55 checksummed spelling',
  }) as Schema<Address>,
  (a) => {
    const r = checkEvmAddress(a);
    return r.ok ? undefined : { code: r.code, message: r.message };
  },
);

/** A CAIP-2 `eip155:<id>` chain with a canonical numeric chain id ({@link evmChainId}). */
export const evmChain: Schema<string> = refine(
  string({
    min: 8,
    max: 23,
    pattern: CHAIN,
    description: 'CAIP-2 chain id of an EVM chain, eip155:<decimal chain id>',
  }),
  (c) => (evmChainId(c) === undefined ? 'the chain id must be at most 2^53 - 1' : undefined),
);

/**
 * The problem with `address` on `chain`, if any: on an `eip155:` chain the
 * chain id must be numeric and the address EIP-55 checksummed; any other
 * chain's addresses are left as the chain spells them.
 */
export function chainAddressProblem(chain: string, address: string, field: string): Problem | undefined {
  if (!isEvmChain(chain)) return undefined;
  if (evmChainId(chain) === undefined) {
    return {
      code: 'INVALID_VALUE',
      message: `${chain}: an eip155 chain id is a decimal number from 1 to 2^53 - 1`,
      field: 'chain',
    };
  }
  const r = checkEvmAddress(address);
  if (r.ok) return undefined;
  return { code: r.code, message: r.message, field };
}
