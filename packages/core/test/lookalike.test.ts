import { describe, expect, it } from 'vitest';
import { type AddressEntry, lookalikeMessage } from '../src/index.js';

const entry = (id: string, label: string, address: string) => ({ id, label, address }) as AddressEntry;

describe('lookalikeMessage', () => {
  it('names each imitated entry by label, id and address, so a person can compare by eye', () => {
    expect(lookalikeMessage('bc1qpoison', [entry('cold', 'Cold storage', 'bc1qgenuine')])).toBe(
      'bc1qpoison looks like address-book entry Cold storage (cold) at bc1qgenuine, but is a different address',
    );
  });

  it('names three entries and counts the rest', () => {
    const many = ['a', 'b', 'c', 'd', 'e'].map((x) => entry(x, x.toUpperCase(), `bc1q${x}`));
    expect(lookalikeMessage('bc1qx', many)).toBe(
      'bc1qx looks like address-book entries A (a) at bc1qa; B (b) at bc1qb; C (c) at bc1qc; and 2 more, but is a different address',
    );
  });
});
