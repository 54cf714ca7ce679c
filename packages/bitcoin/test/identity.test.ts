/**
 * Wallet identity (issue 8, item 2): two descriptors alias when some branch of
 * one produces the same scripts as some branch of the other, whatever the
 * text says. Aliases are built the ways an attacker would write them
 * (reordered keys, multi for sortedmulti, an xpub re-serialized with other
 * metadata, an xpub published as its own child, a multipath form), and each
 * verdict is checked against addresses actually derived.
 */
import { HDKey } from '@scure/bip32';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HARDENED } from '../src/descriptor.js';
import {
  type DescriptorKey,
  deriveAddress,
  descriptorChecksum,
  findWalletAlias,
  formatDescriptor,
  identitiesOverlap,
  parseDescriptor,
  refuseWalletAlias,
  type WalletIdentity,
  walletFromKeys,
  walletIdentity,
} from '../src/index.js';

const TESTNET = { private: 0x04358394, public: 0x043587cf };
const ACCOUNT = "m/48'/1'/0'/2'";
const ORIGIN = '48h/1h/0h/2h';

interface Cosigner {
  readonly master: HDKey;
  readonly account: HDKey;
  readonly fp: string;
  readonly key: DescriptorKey;
}

function cosigner(seedByte: number): Cosigner {
  const master = HDKey.fromMasterSeed(new Uint8Array(32).fill(seedByte), TESTNET);
  const account = master.derive(ACCOUNT);
  const fp = master.fingerprint.toString(16).padStart(8, '0');
  return { master, account, fp, key: { fingerprint: fp, path: ORIGIN, xpub: account.publicExtendedKey } };
}

const [A, B, C, D] = [1, 2, 3, 4].map(cosigner) as [Cosigner, Cosigner, Cosigner, Cosigner];

function canonical(m: number, keys: readonly Cosigner[]): string {
  return formatDescriptor(
    walletFromKeys(
      m,
      keys.map((k) => k.key),
      'regtest',
    ),
  );
}

/** A descriptor text with a checksum, from key expressions written out by hand. */
function text(
  outer: (inner: string) => string,
  fn: 'multi' | 'sortedmulti',
  m: number,
  keys: string[],
): string {
  const body = outer(`${fn}(${m},${keys.join(',')})`);
  return `${body}#${descriptorChecksum(body)}`;
}
const wsh = (s: string) => `wsh(${s})`;
const keyExpr = (c: Cosigner, tail: string) => `[${c.fp}/${ORIGIN}]${c.account.publicExtendedKey}/${tail}`;

function identity(desc: string): WalletIdentity {
  const r = walletIdentity(desc);
  if (!r.ok) throw new Error(`${r.code}: ${r.message}`);
  return r.value;
}

const alias = (a: string, b: string) => identitiesOverlap(identity(a), identity(b));

/** Sorted hex pubkeys of the multisig at `index` of a branch, derived from the branch's keys. */
function scriptKeysAt(branchKeys: readonly string[], index: number): string[] {
  return branchKeys
    .map((k) =>
      Buffer.from(
        new HDKey({
          publicKey: Buffer.from(k.slice(0, 66), 'hex'),
          chainCode: Buffer.from(k.slice(66), 'hex'),
        }).deriveChild(index).publicKey!,
      ).toString('hex'),
    )
    .sort();
}

describe('walletIdentity', () => {
  it('a Custos descriptor has two branches, receive and change, whose keys give the addresses deriveAddress gives', () => {
    const desc = canonical(2, [A, B, C]);
    const parsed = parseDescriptor(desc, 'regtest');
    if (!parsed.ok) throw new Error(parsed.message);
    const id = identity(desc);
    expect(id.branches).toHaveLength(2);
    for (const [b, branch] of id.branches.entries()) {
      expect(branch).toMatchObject({ script: 'wsh', m: 2 });
      for (const index of [0, 7, HARDENED - 1]) {
        const derived = deriveAddress(parsed.value, b as 0 | 1, index);
        const expected = derived.derivations.map((d) => Buffer.from(d.pubkey).toString('hex')).sort();
        expect(scriptKeysAt(branch.keys, index)).toEqual(expected);
      }
    }
  });

  it('every descriptor parseDescriptor accepts has an identity (property)', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 255 }), { minLength: 1, maxLength: 5 }),
        fc.nat(),
        (seeds, t) => {
          const keys = seeds.map(cosigner);
          const m = 1 + (t % keys.length);
          const desc = canonical(m, keys);
          expect(parseDescriptor(desc, 'regtest').ok).toBe(true);
          expect(identity(desc).branches.map((b) => b.m)).toEqual([m, m]);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('refuses what no wallet can be made of: a bad checksum, a private key, a hardened step after the xpub, an unranged key', () => {
    const good = canonical(2, [A, B, C]);
    const [body] = good.split('#');
    expect(walletIdentity(`${body}#qqqqqqqq`)).toMatchObject({ ok: false, code: 'INVALID_VALUE' });
    const priv = text(wsh, 'sortedmulti', 1, [`${A.account.privateExtendedKey}/0/*`]);
    expect(walletIdentity(priv)).toMatchObject({ ok: false, code: 'INVALID_VALUE' });
    const hardened = text(wsh, 'sortedmulti', 1, [`${A.account.publicExtendedKey}/0h/*`]);
    expect(walletIdentity(hardened)).toMatchObject({ ok: false, code: 'INVALID_VALUE' });
    const unranged = text(wsh, 'sortedmulti', 1, [`${A.account.publicExtendedKey}/0/5`]);
    expect(walletIdentity(unranged)).toMatchObject({ ok: false, code: 'INVALID_VALUE' });
    expect(walletIdentity('tr(abc)')).toMatchObject({ ok: false, code: 'INVALID_VALUE' });
  });
});

describe('wallet aliases', () => {
  const original = canonical(2, [A, B, C]);

  it('the same xpubs reordered: another text, the same wallet', () => {
    const reordered = canonical(2, [C, A, B]);
    expect(reordered).not.toBe(original);
    expect(parseDescriptor(reordered, 'regtest').ok).toBe(true);
    expect(alias(original, reordered)).toBe(true);
  });

  it('multi for sortedmulti: the same keys, in any order, are the same wallet', () => {
    for (const order of [
      [A, B, C],
      [B, C, A],
    ]) {
      const multi = text(
        wsh,
        'multi',
        2,
        order.map((c) => keyExpr(c, '0/*')),
      );
      expect(alias(original, multi)).toBe(true);
    }
  });

  it('an xpub re-serialized with other depth, parent and child number (and a matching origin) still parses, and is the same wallet', () => {
    // Metadata changes no script; parseDescriptor only checks the origin agrees with it.
    const forged = new HDKey({
      versions: TESTNET,
      depth: 3,
      index: HARDENED + 7,
      parentFingerprint: 0x12345678,
      chainCode: A.account.chainCode!,
      publicKey: A.account.publicKey!,
    });
    const keys = [
      { fingerprint: 'deadbeef', path: '1h/2h/7h', xpub: forged.publicExtendedKey },
      B.key,
      C.key,
    ];
    const desc = formatDescriptor(walletFromKeys(2, keys, 'regtest'));
    expect(desc).not.toBe(original);
    expect(alias(original, desc)).toBe(true);
    // And it really pays the same addresses.
    const a = parseDescriptor(original, 'regtest');
    const b = parseDescriptor(desc, 'regtest');
    if (!a.ok || !b.ok) throw new Error('both parse');
    expect(deriveAddress(b.value, 1, 3).address).toBe(deriveAddress(a.value, 1, 3).address);
  });

  it('an xpub published as its own child (X/0 serialized as an xpub, wildcard right after it) is the same wallet', () => {
    const child = (c: Cosigner, branch: number) =>
      `[${c.fp}/${ORIGIN}/${branch}]${c.account.deriveChild(branch).publicExtendedKey}/*`;
    const receive = text(wsh, 'sortedmulti', 2, [child(A, 0), keyExpr(B, '0/*'), keyExpr(C, '0/*')]);
    expect(alias(original, receive)).toBe(true);
    const change = text(wsh, 'sortedmulti', 2, [child(A, 1), child(B, 1), child(C, 1)]);
    expect(alias(original, change)).toBe(true);
  });

  it('X/1/* and X/<0;1>/* share the change branch; so do X/1/* and the Custos X/0/*', () => {
    const changeOnly = text(
      wsh,
      'sortedmulti',
      2,
      [A, B, C].map((c) => keyExpr(c, '1/*')),
    );
    const multipath = text(
      wsh,
      'sortedmulti',
      2,
      [B, A, C].map((c) => keyExpr(c, '<0;1>/*')),
    );
    expect(alias(changeOnly, multipath)).toBe(true);
    expect(alias(original, changeOnly)).toBe(true);
    expect(alias(original, multipath)).toBe(true);
  });

  it('is not fooled into false aliases: another threshold, another key, another script type, a deeper branch', () => {
    expect(alias(original, canonical(3, [A, B, C]))).toBe(false);
    expect(alias(original, canonical(1, [A, B, C]))).toBe(false);
    expect(alias(original, canonical(2, [A, B, D]))).toBe(false);
    expect(alias(original, canonical(2, [A, B, C, D]))).toBe(false);
    expect(alias(original, canonical(2, [A, B]))).toBe(false);
    const nested = text(
      (s) => `sh(wsh(${s}))`,
      'sortedmulti',
      2,
      [A, B, C].map((c) => keyExpr(c, '0/*')),
    );
    expect(alias(original, nested)).toBe(false);
    // The child xpub written in the Custos form X/0/0/*: its scripts are one level deeper, no coin in common.
    const deeper = formatDescriptor(
      walletFromKeys(
        2,
        [A, B, C].map((c) => ({
          fingerprint: c.fp,
          path: `${ORIGIN}/0`,
          xpub: c.account.deriveChild(0).publicExtendedKey,
        })),
        'regtest',
      ),
    );
    expect(alias(original, deeper)).toBe(false);
  });

  it('property: any order, multi or sortedmulti, receive or multipath form is an alias; replacing one key is not', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 10, max: 200 }), { minLength: 2, maxLength: 5 }),
        fc.nat(),
        fc.func(fc.integer()),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 201, max: 255 }),
        (seeds, t, rank, multi, multipath, stranger) => {
          const keys = seeds.map(cosigner);
          const m = 1 + (t % keys.length);
          const base = canonical(m, keys);
          const shuffled = [...keys].sort((x, y) => rank(x.fp) - rank(y.fp) || x.fp.localeCompare(y.fp));
          const other = text(
            wsh,
            multi ? 'multi' : 'sortedmulti',
            m,
            shuffled.map((c) => keyExpr(c, multipath ? '<0;1>/*' : '0/*')),
          );
          expect(alias(base, other)).toBe(true);
          const replaced = canonical(m, [...keys.slice(1), cosigner(stranger)]);
          expect(alias(base, replaced)).toBe(false);
        },
      ),
      { numRuns: 20 },
    );
  });

  it('findWalletAlias names the earlier wallet on the same chain; refuseWalletAlias says WALLET_ALIAS', () => {
    const main = { id: 'btc-main', chain: 'bitcoin:regtest', descriptor: original };
    const twin = { id: 'btc-twin', chain: 'bitcoin:regtest', descriptor: canonical(2, [B, C, A]) };
    const elsewhere = { id: 'btc-test', chain: 'bitcoin:testnet', descriptor: original };
    const broken = { id: 'placeholder', chain: 'bitcoin:regtest', descriptor: 'wsh(sortedmulti(2,...))' };
    expect(findWalletAlias(twin, [broken, main])).toEqual({ ok: true, value: main });
    // Itself (by id) and other chains are not compared.
    expect(findWalletAlias(main, [main, elsewhere])).toEqual({ ok: true, value: null });
    expect(refuseWalletAlias(twin, [main])).toMatchObject({
      ok: false,
      code: 'WALLET_ALIAS',
      details: { wallet: 'btc-twin', aliasOf: 'btc-main' },
    });
    expect(refuseWalletAlias({ ...twin, descriptor: canonical(2, [A, B, D]) }, [main])).toEqual({
      ok: true,
      value: undefined,
    });
    expect(findWalletAlias(broken, [main])).toMatchObject({ ok: false, code: 'INVALID_VALUE' });
  });
});
