/**
 * The fast PSBT reader and the signing from the analysis (issue 11) against
 * @scure/btc-signer, which they replace on the hot path:
 * - what the fast reader accepts, scure's strict read (decode, re-encode,
 *   compare) accepts with the same result, on honest PSBTs and on random
 *   mutations of them, and parsePsbt gives the same answer either way;
 * - encodeKnownPsbt writes the bytes scure's encoder writes;
 * - the BIP 143 digests are scure's, and signPsbt makes the PSBT scure's
 *   Transaction.signIdx made, for every key and 1 to 10 inputs, with valid
 *   low-S signatures of those digests (OpenSSL's nonces are hedged, not
 *   RFC 6979, so the signature bytes differ).
 */

import { createHash } from 'node:crypto';
import { built, DESTINATION, signers, utxosOf, wallet } from '@custos/test-support/psbt-fixtures';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { SigHash, Transaction } from '@scure/btc-signer';
import { RawPSBTV0 } from '@scure/btc-signer/psbt.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { analyzePsbt, signPsbt } from '../src/index.js';
import {
  encodeKnownPsbt,
  encodePsbt,
  isValidPublicKey,
  parsePsbt,
  type RawPsbt,
  readCanonicalPsbt,
} from '../src/psbt.js';
import { ECDSA_BACKEND, signInput, witnessV0Digests } from '../src/sign.js';

/** The strict read as it was before the fast path: scure decodes, re-encodes, compares. */
function scureRead(bytes: Uint8Array): RawPsbt | undefined {
  try {
    const decoded = RawPSBTV0.decode(bytes) as unknown as RawPsbt;
    const again = RawPSBTV0.encode(decoded as never);
    if (Buffer.compare(Buffer.from(again), Buffer.from(bytes)) !== 0) return undefined;
    if (decoded.global.version !== undefined && decoded.global.version !== 0) return undefined;
    const tx = decoded.global.unsignedTx;
    if (decoded.inputs.length !== tx.inputs.length || decoded.outputs.length !== tx.outputs.length)
      return undefined;
    return decoded;
  } catch {
    return undefined;
  }
}

/** What scure's signIdx made: decode the PSBT again, sign each input, encode again. */
function scureSign(psbt: Uint8Array, key: (typeof signers)[number]): Uint8Array {
  const a = analyzePsbt(psbt, wallet);
  if (!a.ok) throw new Error(a.message);
  const tx = Transaction.fromPSBT(psbt, {
    unknown: 'strict',
    proprietary: 'strict',
    strictPrevoutValidation: true,
  });
  for (const [i, input] of a.value.inputs.entries()) {
    const child = key.account.deriveChild(input.branch).deriveChild(input.index);
    tx.signIdx(child.privateKey!, i, [SigHash.ALL]);
  }
  return tx.toPSBT(0);
}

function manyInputs(n: number, nonce: number) {
  return built({
    utxos: utxosOf(
      Array.from({ length: n }, (_, k) => ({
        branch: (k % 2) as 0 | 1,
        index: k,
        value: 30_000n + BigInt(k),
      })),
      nonce,
    ),
    amount: 10_000n * BigInt(n),
    to: DESTINATION,
  }).psbt;
}

const honest: Uint8Array[] = [built().psbt, built({ amount: 150_000n }).psbt, manyInputs(10, 77)];
{
  const once = signPsbt(built({ amount: 150_000n }).psbt, signers[1]!, wallet);
  if (!once.ok) throw new Error(once.message);
  honest.push(once.value.psbt);
}

describe('fast PSBT reader', () => {
  it.each(honest.map((p, i) => [i, p] as const))(
    'honest PSBT %i: read fast, as scure reads it',
    (_, psbt) => {
      const fast = readCanonicalPsbt(psbt, true);
      expect(fast).toBeDefined();
      expect(fast).toEqual(scureRead(psbt));
      expect(Buffer.from(encodeKnownPsbt(fast!)).equals(Buffer.from(psbt))).toBe(true);
      expect(Buffer.from(encodePsbt(fast!)).equals(Buffer.from(psbt))).toBe(true);
    },
  );

  it('on random mutations, accepts only what scure accepts, with the same result, and parsePsbt agrees (property)', () => {
    let fastAccepted = 0;
    fc.assert(
      fc.property(
        fc.nat(honest.length - 1),
        fc.array(
          fc.record({
            kind: fc.constantFrom('set', 'insert', 'delete'),
            at: fc.nat(),
            byte: fc.integer({ min: 0, max: 255 }),
          }),
          { minLength: 1, maxLength: 3 },
        ),
        (which, mutations) => {
          let bytes = Uint8Array.from(honest[which]!);
          for (const m of mutations) {
            const at = 5 + (m.at % (bytes.length - 5));
            if (m.kind === 'set') bytes[at] = m.byte;
            else if (m.kind === 'insert')
              bytes = Uint8Array.from([...bytes.subarray(0, at), m.byte, ...bytes.subarray(at)]);
            else bytes = Uint8Array.from([...bytes.subarray(0, at), ...bytes.subarray(at + 1)]);
          }
          const reference = scureRead(bytes);
          for (const validate of [true, false]) {
            const fast = readCanonicalPsbt(bytes, validate);
            if (fast !== undefined) {
              if (validate) fastAccepted++;
              // Unvalidated keys can only differ from scure in accepting an off-curve key.
              if (validate || reference !== undefined) expect(fast).toEqual(reference);
            }
          }
          const parsed = parsePsbt(bytes);
          expect(parsed.ok).toBe(reference !== undefined);
          if (parsed.ok) expect(parsed.value).toEqual(reference);
        },
      ),
      { numRuns: 600 },
    );
    // Most single-byte edits inside a script or an amount keep the framing: the fast path was exercised.
    expect(fastAccepted).toBeGreaterThan(20);
  });

  it('an off-curve public key is refused by parsePsbt and by the analysis with INVALID_VALUE, as before', () => {
    const psbt = built().psbt;
    const raw = parsePsbt(psbt);
    if (!raw.ok) throw new Error(raw.message);
    // x = 5 is not the x of a secp256k1 point (5^3 + 7 = 132 is not a square mod p).
    const bad = new Uint8Array(33);
    bad[0] = 0x02;
    bad[32] = 0x05;
    expect(isValidPublicKey(bad)).toBe(false);
    expect(() => secp256k1.Point.fromBytes(bad)).toThrow();
    const ders = raw.value.inputs[0]!.bip32Derivation!;
    const edited: RawPsbt = {
      ...raw.value,
      inputs: [
        { ...raw.value.inputs[0]!, bip32Derivation: [[bad, ders[0]![1]], ...ders.slice(1)] },
        ...raw.value.inputs.slice(1),
      ],
    };
    const bytes = encodeKnownPsbt(edited);
    expect(readCanonicalPsbt(bytes, false)).toBeDefined();
    expect(readCanonicalPsbt(bytes, true)).toBeUndefined();
    expect(parsePsbt(bytes)).toMatchObject({ ok: false, code: 'INVALID_VALUE' });
    expect(analyzePsbt(bytes, wallet)).toMatchObject({ ok: false, code: 'INVALID_VALUE' });
  });
});

describe('signing from the analysis', () => {
  it('computes each input BIP 143 digest as scure does', () => {
    for (const psbt of honest) {
      const a = analyzePsbt(psbt, wallet);
      if (!a.ok) throw new Error(a.message);
      const tx = Transaction.fromPSBT(psbt);
      const digests = witnessV0Digests(a.value);
      expect(digests).toHaveLength(a.value.inputs.length);
      for (const [i, input] of a.value.inputs.entries()) {
        const script = a.value.raw.inputs[i]!.witnessScript!;
        expect(Buffer.from(digests[i]!).toString('hex')).toBe(
          Buffer.from(tx.preimageWitnessV0(i, script, SigHash.ALL, input.value)).toString('hex'),
        );
      }
    }
  });

  /** The PSBT with each partial signature's value replaced by its key: what is left must be equal. */
  function withoutSignatures(psbt: Uint8Array): unknown {
    const r = parsePsbt(psbt);
    if (!r.ok) throw new Error(r.message);
    return {
      ...r.value,
      inputs: r.value.inputs.map((m) => ({ ...m, partialSig: m.partialSig?.map(([k]) => k) })),
    };
  }

  it('signs what scure signIdx signed, for each key, 1 to 10 inputs: same PSBT, valid low-S signatures of each digest', () => {
    expect(ECDSA_BACKEND).toBe('openssl');
    const psbts = [built().psbt, manyInputs(3, 5), manyInputs(10, 6)];
    for (const psbt of psbts) {
      const a = analyzePsbt(psbt, wallet);
      if (!a.ok) throw new Error(a.message);
      const digests = witnessV0Digests(a.value);
      const check = (signed: Uint8Array, reference: Uint8Array) => {
        expect(withoutSignatures(signed)).toEqual(withoutSignatures(reference));
        const r = parsePsbt(signed);
        if (!r.ok) throw new Error(r.message);
        for (const [i, m] of r.value.inputs.entries()) {
          for (const [pub, sig] of m.partialSig ?? []) {
            expect(sig[sig.length - 1]).toBe(0x01);
            expect(
              secp256k1.verify(sig.subarray(0, -1), digests[i]!, pub, {
                prehash: false,
                format: 'der',
                lowS: true,
              }),
            ).toBe(true);
          }
        }
      };
      for (const key of signers) {
        const mine = signPsbt(psbt, key, wallet);
        if (!mine.ok) throw new Error(mine.message);
        check(mine.value.psbt, scureSign(psbt, key));
        // A second key signs on top of the first, as scure would.
        const other = signers[(signers.indexOf(key) + 1) % signers.length]!;
        const twice = signPsbt(mine.value.psbt, other, wallet);
        if (!twice.ok) throw new Error(twice.message);
        check(twice.value.psbt, scureSign(mine.value.psbt, other));
      }
    }
  });

  it('signInput: the BIP 32 child key computed for OpenSSL is the descriptor key, or it throws INTERNAL (property)', () => {
    const branch = signers[0]!.account.deriveChild(0);
    fc.assert(
      fc.property(fc.nat(2 ** 31 - 1), fc.uint8Array({ minLength: 32, maxLength: 32 }), (index, half) => {
        const expected = branch.deriveChild(index).publicKey!;
        const der = signInput(branch, index, expected, half);
        const digest = Uint8Array.from(createHash('sha256').update(half).digest());
        expect(secp256k1.verify(der, digest, expected, { prehash: false, format: 'der', lowS: true })).toBe(
          true,
        );
        const wrong = branch.deriveChild(index + 1).publicKey!;
        expect(() => signInput(branch, index, wrong, half)).toThrow(/does not match the descriptor/);
      }),
      { numRuns: 40 },
    );
  });
});
