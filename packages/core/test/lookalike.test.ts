import { describe, expect, it } from 'vitest';
import {
  type AddressEntry,
  findLookalikes,
  type GovernanceState,
  lookalikeMessage,
  lookalikesInForce,
  toChecksumAddress,
} from '../src/index.js';
import type { Address } from '../src/types.js';
import { buildState, entry, makePolicy, NOW } from './support/policy-fixture.js';

const named = (id: string, label: string, address: string) => ({ id, label, address }) as AddressEntry;

describe('lookalikeMessage', () => {
  it('names each imitated entry by label, id and address, so a person can compare by eye', () => {
    expect(lookalikeMessage('bc1qpoison', [named('cold', 'Cold storage', 'bc1qgenuine')])).toBe(
      'bc1qpoison looks like address-book entry Cold storage (cold) at bc1qgenuine, but is a different address',
    );
  });

  it('names three entries and counts the rest', () => {
    const many = ['a', 'b', 'c', 'd', 'e'].map((x) => named(x, x.toUpperCase(), `bc1q${x}`));
    expect(lookalikeMessage('bc1qx', many)).toBe(
      'bc1qx looks like address-book entries A (a) at bc1qa; B (b) at bc1qb; C (c) at bc1qc; and 2 more, but is a different address',
    );
  });
});

// ---------------------------------------------------------------- 0x addresses

const EVM_CHAIN = 'eip155:1';
/** vitalik.eth as an address-book entry. */
const GENUINE = toChecksumAddress('0xd8da6bf26964af9d7eed9e03e53415d37aa96045');
/** Address poisoning: a ground address with the first 4 and last 4 hex digits of GENUINE. */
const POISONED = toChecksumAddress(`0xd8da${'7'.repeat(32)}6045`);
/** Shares `0xd8` and the last four: with `0x` counted, a prefix of 4 would call it a look-alike. */
const TWO_DIGITS = toChecksumAddress(`0xd8${'7'.repeat(34)}6045`);

function evmState(...addresses: AddressEntry[]): GovernanceState {
  return buildState({ members: [], policies: [], addresses });
}

const book = entry('vitalik', GENUINE as Address, { chain: EVM_CHAIN, label: 'Vitalik' });
const FOUR_FOUR = { prefix: 4, suffix: 4, action: 'deny' } as const;

describe('findLookalikes on 0x addresses', () => {
  it('finds a poisoned address that copies the first 4 and last 4 hex digits after 0x', () => {
    expect(findLookalikes(evmState(book), EVM_CHAIN, POISONED, FOUR_FOUR, NOW)).toEqual([book]);
  });

  it('counts hex digits after 0x, not the 0x every address shares', () => {
    expect(findLookalikes(evmState(book), EVM_CHAIN, TWO_DIGITS, FOUR_FOUR, NOW)).toEqual([]);
    // A Bitcoin-style comparison of the whole string would have matched it on "0xd8".
    expect(findLookalikes(evmState(book), EVM_CHAIN, TWO_DIGITS, { ...FOUR_FOUR, prefix: 2 }, NOW)).toEqual([
      book,
    ]);
  });

  it('compares without case: EIP-55 case is a checksum, not part of what a person compares', () => {
    // The checksums of GENUINE and POISONED put their letters in different cases.
    expect(POISONED.slice(2, 6)).not.toBe(GENUINE.slice(2, 6));
    expect(POISONED.slice(2, 6).toLowerCase()).toBe(GENUINE.slice(2, 6).toLowerCase());
    expect(findLookalikes(evmState(book), EVM_CHAIN, POISONED, FOUR_FOUR, NOW)).toHaveLength(1);
  });

  it('does not flag the entry itself, another chain, or an address that differs in the copied digits', () => {
    const s = evmState(book);
    expect(findLookalikes(s, EVM_CHAIN, GENUINE, FOUR_FOUR, NOW)).toEqual([]);
    expect(findLookalikes(s, 'eip155:137', POISONED, FOUR_FOUR, NOW)).toEqual([]);
    const tailDiffers = toChecksumAddress(`0xd8da${'7'.repeat(32)}6046`);
    expect(findLookalikes(s, EVM_CHAIN, tailDiffers, FOUR_FOUR, NOW)).toEqual([]);
  });

  it('lookalikesInForce denies under a deny policy and names the entry in the message', () => {
    const found = lookalikesInForce(
      evmState(book),
      EVM_CHAIN,
      POISONED,
      [makePolicy([], { lookalike: FOUR_FOUR })],
      NOW,
    );
    expect(found).toEqual({ entries: [book], deny: true });
    expect(lookalikeMessage(POISONED, found.entries)).toBe(
      `${POISONED} looks like address-book entry Vitalik (vitalik) at ${GENUINE}, but is a different address`,
    );
  });
});
