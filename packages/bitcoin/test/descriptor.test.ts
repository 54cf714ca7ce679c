/**
 * Descriptor wallets: BIP 380 checksums (the BIP's own vectors), the strict
 * wsh(sortedmulti(...)) form, and derivation checked against BIP 32 test
 * vectors with an independent CKDpub and bitcoinjs-lib's P2WSH(P2MS).
 */

import { SEEDS, wallet } from '@custos/test-support/psbt-fixtures';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { createBase58check, hex } from '@scure/base';
import { networks, payments } from 'bitcoinjs-lib';
import { describe, expect, it } from 'vitest';
import { checkDescriptorChecksum } from '../src/descriptor.js';
import {
  type DescriptorKey,
  deriveAddress,
  descriptorChecksum,
  descriptorKeyOf,
  formatDescriptor,
  parseDescriptor,
  signerKeyFromSeed,
  walletFromKeys,
} from '../src/index.js';

// BIP 32 test vectors 1, 3 and 4: the m/0H public keys, with their masters' fingerprints.
const TV1_0H =
  'xpub68Gmy5EdvgibQVfPdqkBBCHxA5htiqg55crXYuXoQRKfDBFA1WEjWgP6LHhwBZeNK1VTsfTFUHCdrfp1bgwQ9xv5ski8PX9rL2dZXvgGDnw';
const TV3_0H =
  'xpub68NZiKmJWnxxS6aaHmn81bvJeTESw724CRDs6HbuccFQN9Ku14VQrADWgqbhhTHBaohPX4CjNLf9fq9MYo6oDaPPLPxSb7gwQN3ih19Zm4Y';
const TV4_0H =
  'xpub69AUMk3qDBi3uW1sXgjCmVjJ2G6WQoYSnNHyzkmdCHEhSZ4tBok37xfFEqHd2AddP56Tqp4o56AePAgCjYdvpW2PU2jbUPFKsav5ut6Ch1m';
// BIP 32 test vector 1, chain m/0H/1: the change branch of the first key.
const TV1_0H_1 =
  'xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ';

const MAINNET_BODY = `wsh(sortedmulti(2,[3442193e/0h]${TV1_0H}/0/*,[41d63b50/0h]${TV3_0H}/0/*,[ad85d955/0h]${TV4_0H}/0/*))`;

const base58check = createBase58check(sha256);

/** BIP 32 CKDpub, written out here so derivation is checked against code that is not the library's. */
function ckdPub(xpub: string, ...indexes: number[]): Uint8Array {
  const raw = base58check.decode(xpub);
  let chain = raw.slice(13, 45);
  let pub = raw.slice(45, 78);
  for (const i of indexes) {
    const data = new Uint8Array(37);
    data.set(pub, 0);
    new DataView(data.buffer).setUint32(33, i, false);
    const I = hmac(sha512, chain, data);
    const tweak = BigInt(`0x${hex.encode(I.slice(0, 32))}`);
    pub = secp256k1.Point.fromBytes(pub).add(secp256k1.Point.BASE.multiply(tweak)).toBytes(true);
    chain = I.slice(32);
  }
  return pub;
}

function bitcoinjsAddress(m: number, pubkeys: Uint8Array[], network = networks.bitcoin): string {
  const sorted = [...pubkeys].sort((a, b) => hex.encode(a).localeCompare(hex.encode(b)));
  const p = payments.p2wsh({ redeem: payments.p2ms({ m, pubkeys: sorted, network }), network });
  return p.address!;
}

describe('BIP 380 checksum', () => {
  it('matches the BIP 380 test vectors', () => {
    expect(descriptorChecksum('raw(deadbeef)')).toBe('89f8spxm');
    expect(checkDescriptorChecksum('raw(deadbeef)#89f8spxm')).toEqual({ ok: true, value: 'raw(deadbeef)' });
    expect(checkDescriptorChecksum('raw(deadbeef)')).toEqual({ ok: true, value: 'raw(deadbeef)' });
  });

  it.each([
    ['missing checksum', 'raw(deadbeef)#'],
    ['too long checksum (9 chars)', 'raw(deadbeef)#89f8spxmx'],
    ['too short checksum (7 chars)', 'raw(deadbeef)#89f8spx'],
    ['error in payload', 'raw(deedbeef)#89f8spxm'],
    ['error in checksum', 'raw(deedbeef)##9f8spxm'],
    ['invalid characters in payload', 'raw(Ü)#00000000'],
  ])('refuses the BIP 380 invalid vector: %s', (_name, text) => {
    const r = checkDescriptorChecksum(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.code).toBe('INVALID_VALUE');
  });

  it('matches the checksum Bitcoin Core documents for an addr() descriptor', () => {
    expect(descriptorChecksum('addr(mkmZxiEcEd8ZqjQWVZuC6so5dFMKEFpN2j)')).toBe('02wpgw69');
  });

  it("matches BIP 380's reference code on wallet descriptors with either hardened marker", () => {
    // Computed with descsum_create from the BIP's Python listing.
    expect(formatDescriptor(wallet)).toMatch(/#9emrgnry$/);
    const apostrophes = formatDescriptor(wallet)
      .replace(/#.*$/, '')
      .replaceAll('h/', "'/")
      .replaceAll('h]', "']");
    expect(descriptorChecksum(apostrophes)).toBe('qvrk9cz7');
  });

  it('refuses a descriptor with any one character changed', () => {
    const text = formatDescriptor(wallet);
    const body = text.slice(0, text.indexOf('#'));
    // Change each character of the key material in turn to another of the same class.
    for (let i = 0; i < body.length; i += 7) {
      const c = body[i]!;
      const swapped = /[0-9]/.test(c)
        ? String((Number(c) + 1) % 10)
        : /[a-z]/.test(c)
          ? c === 'a'
            ? 'b'
            : 'a'
          : c === 'A'
            ? 'B'
            : 'A';
      const altered = `${body.slice(0, i)}${swapped}${body.slice(i + 1)}${text.slice(body.length)}`;
      const r = parseDescriptor(altered, 'regtest');
      expect(r.ok, `character ${i} (${c} -> ${swapped})`).toBe(false);
    }
  });
});

describe('parseDescriptor', () => {
  it('parses, and prints back the canonical form with its checksum', () => {
    const text = `${MAINNET_BODY}#${descriptorChecksum(MAINNET_BODY)}`;
    const r = parseDescriptor(text, 'mainnet');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.m).toBe(2);
    expect(r.value.keys).toEqual([
      { fingerprint: '3442193e', path: '0h', xpub: TV1_0H },
      { fingerprint: '41d63b50', path: '0h', xpub: TV3_0H },
      { fingerprint: 'ad85d955', path: '0h', xpub: TV4_0H },
    ]);
    expect(formatDescriptor(r.value)).toBe(text);
    expect(formatDescriptor(r.value, 1)).toBe(
      `${MAINNET_BODY.replaceAll('/0/*', '/1/*')}#${descriptorChecksum(MAINNET_BODY.replaceAll('/0/*', '/1/*'))}`,
    );
  });

  it("accepts h, H and ' as hardened markers and prints h", () => {
    const mixed = MAINNET_BODY.replace('[3442193e/0h]', "[3442193E/0']").replace(
      '[41d63b50/0h]',
      '[41d63b50/0H]',
    );
    const r = parseDescriptor(mixed, 'mainnet');
    expect(r.ok).toBe(true);
    if (r.ok) expect(formatDescriptor(r.value)).toBe(`${MAINNET_BODY}#${descriptorChecksum(MAINNET_BODY)}`);
  });

  it('accepts a descriptor without checksum', () => {
    expect(parseDescriptor(MAINNET_BODY, 'mainnet').ok).toBe(true);
  });

  it('refuses an xpub of another network: WRONG_CHAIN', () => {
    const r = parseDescriptor(MAINNET_BODY, 'regtest');
    expect(r).toMatchObject({ ok: false, code: 'WRONG_CHAIN' });
    const t = parseDescriptor(formatDescriptor(wallet), 'mainnet');
    expect(t).toMatchObject({ ok: false, code: 'WRONG_CHAIN' });
  });

  it('refuses a private key in place of an xpub', () => {
    const xprv = signerKeyFromSeed(SEEDS[0]!, '0h').account.privateExtendedKey;
    const r = parseDescriptor(MAINNET_BODY.replace(TV1_0H, xprv), 'mainnet');
    expect(r).toMatchObject({ ok: false, code: 'INVALID_VALUE' });
  });

  it.each([
    [
      'the change branch',
      MAINNET_BODY.replaceAll('/0/*', '/1/*'),
      /expected \[fingerprint\/path\]xpub\/0\/\*/,
    ],
    ['a hardened wildcard', MAINNET_BODY.replace('/0/*', "/0/*'"), /expected \[fingerprint/],
    ['a multipath key', MAINNET_BODY.replace('/0/*', '/<0;1>/*'), /expected \[fingerprint/],
    [
      'wsh(multi(...)) without sorting',
      MAINNET_BODY.replace('sortedmulti', 'multi'),
      /only wsh\(sortedmulti/,
    ],
    ['sh(wsh(...))', `sh(${MAINNET_BODY})`, /only wsh\(sortedmulti/],
    ['a key without origin', MAINNET_BODY.replace('[3442193e/0h]', ''), /expected \[fingerprint/],
    ['a threshold of 0', MAINNET_BODY.replace('(2,', '(0,'), /threshold must be between 1 and 15/],
    ['a threshold above the key count', MAINNET_BODY.replace('(2,', '(4,'), /needs between 4 and 15 keys/],
    ['a threshold with a leading zero', MAINNET_BODY.replace('(2,', '(02,'), /only wsh\(sortedmulti/],
    [
      'a key twice',
      MAINNET_BODY.replace(TV3_0H, TV1_0H).replace('41d63b50', '3442193e'),
      /same key appears twice/,
    ],
    ['an origin deeper than the key', MAINNET_BODY.replace('[3442193e/0h]', '[3442193e/0h/1]'), /at depth 1/],
    [
      'an origin with another child number',
      MAINNET_BODY.replace('[3442193e/0h]', '[3442193e/1h]'),
      /child number/,
    ],
    [
      'an origin naming another master',
      MAINNET_BODY.replace('[3442193e/0h]', '[3442193f/0h]'),
      /parent is not/,
    ],
    ['a non-hex fingerprint', MAINNET_BODY.replace('3442193e', '3442193g'), /fingerprint must be 8 hex/],
    ['a space', MAINNET_BODY.replace(',', ', '), /expected \[fingerprint/],
    ['a mistyped xpub', MAINNET_BODY.replace(TV1_0H, `${TV1_0H.slice(0, -1)}x`), /not a Base58Check/],
  ])('refuses %s', (_name, text, why) => {
    const r = parseDescriptor(text, 'mainnet');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toMatch(why);
  });

  it('refuses more than 15 keys', () => {
    const keys: DescriptorKey[] = Array.from({ length: 16 }, (_, i) =>
      descriptorKeyOf(signerKeyFromSeed(sha256(new Uint8Array([i])), '48h/1h/0h/2h'), 'regtest'),
    );
    expect(() => walletFromKeys(2, keys, 'regtest')).toThrow(/between 2 and 15 keys/);
    expect(walletFromKeys(15, keys.slice(0, 15), 'regtest').keys).toHaveLength(15);
  });

  it('never throws on arbitrary text', () => {
    for (const text of [
      '',
      '#',
      'wsh(',
      'wsh(sortedmulti(1,[)))',
      'x'.repeat(5000),
      '\u0000',
      'wsh(sortedmulti(1,[00000000]/0/*))',
    ]) {
      expect(parseDescriptor(text, 'mainnet').ok).toBe(false);
    }
  });
});

describe('deriveAddress', () => {
  const parsed = parseDescriptor(MAINNET_BODY, 'mainnet');
  if (!parsed.ok) throw new Error(parsed.message);
  const d = parsed.value;

  it('derives BIP 32 test vector 1 chain m/0H/1 as the change branch of its key', () => {
    for (const index of [0, 1, 2, 1000]) {
      const a = deriveAddress(d, 1, index);
      expect(hex.encode(a.derivations[0]!.pubkey)).toBe(hex.encode(ckdPub(TV1_0H_1, index)));
      expect(a.derivations[0]).toMatchObject({ fingerprint: 0x3442193e, path: [0x80000000, 1, index] });
    }
  });

  it("agrees with bitcoinjs-lib's P2WSH(P2MS) of independently derived, sorted keys", () => {
    for (const branch of [0, 1] as const) {
      for (const index of [0, 1, 2, 17, 2 ** 31 - 1]) {
        const a = deriveAddress(d, branch, index);
        const pubkeys = [TV1_0H, TV3_0H, TV4_0H].map((x) => ckdPub(x, branch, index));
        expect(a.address).toBe(bitcoinjsAddress(2, pubkeys));
        const p = payments.p2wsh({
          redeem: payments.p2ms({
            m: 2,
            pubkeys: pubkeys.sort((x, y) => hex.encode(x).localeCompare(hex.encode(y))),
          }),
        });
        expect(hex.encode(a.script)).toBe(hex.encode(p.output!));
        expect(hex.encode(a.witnessScript)).toBe(hex.encode(p.redeem!.output!));
        expect(a.address.startsWith('bc1q')).toBe(true);
      }
    }
  });

  it('uses the bcrt prefix on regtest and agrees with bitcoinjs-lib there too', () => {
    const a = deriveAddress(wallet, 0, 3);
    expect(a.address.startsWith('bcrt1q')).toBe(true);
    expect(a.address).toBe(bitcoinjsAddress(2, [...a.derivations.map((x) => x.pubkey)], networks.regtest));
  });

  it('refuses a hardened or negative index and an unknown branch', () => {
    expect(() => deriveAddress(d, 0, 2 ** 31)).toThrow();
    expect(() => deriveAddress(d, 0, -1)).toThrow();
    expect(() => deriveAddress(d, 2 as 0, 0)).toThrow();
  });
});

describe('walletFromKeys', () => {
  it('builds the wallet custos init writes from signer keys, with canonical paths', () => {
    const keys = SEEDS.map((s) => descriptorKeyOf(signerKeyFromSeed(s, "48'/1'/0'/2'"), 'regtest'));
    const w = walletFromKeys(2, keys, 'regtest');
    expect(w.keys.map((k) => k.path)).toEqual(['48h/1h/0h/2h', '48h/1h/0h/2h', '48h/1h/0h/2h']);
    const again = parseDescriptor(formatDescriptor(w), 'regtest');
    expect(again.ok && formatDescriptor(again.value)).toBe(formatDescriptor(w));
    expect(deriveAddress(w, 0, 0).address).toBe(deriveAddress(wallet, 0, 0).address);
  });

  it('throws on an invalid key set (a caller mistake)', () => {
    expect(() => walletFromKeys(3, wallet.keys.slice(0, 2), 'regtest')).toThrow();
    expect(() => walletFromKeys(2, wallet.keys, 'mainnet')).toThrow(/another network/);
  });
});
