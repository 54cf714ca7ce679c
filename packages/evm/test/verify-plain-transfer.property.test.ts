/**
 * checkSafeTxIsPlainTransfer accepts exactly one SafeTx per intent: any
 * change to any field of it is refused, with one of the three codes.
 */
import fc from 'fast-check';
import { type Address, getAddress, type Hex } from 'viem';
import { describe, expect, it } from 'vitest';
import {
  buildTransferSafeTx,
  checkSafeTxIsPlainTransfer,
  type ExpectedTransfer,
  type SafeTx,
  safeTxHash,
} from '../src/index.js';

const address = fc
  .uint8Array({ minLength: 20, maxLength: 20 })
  .map((b) => getAddress(`0x${Buffer.from(b).toString('hex')}`) as Address);
const uint = fc.oneof(fc.bigInt({ min: 0n, max: 10n ** 30n }), fc.constantFrom(0n, 1n));
const expectedTransfer: fc.Arbitrary<ExpectedTransfer> = fc.record({
  chainId: fc.integer({ min: 1, max: 2 ** 40 }),
  safe: address,
  asset: fc.oneof(
    fc.constant({ kind: 'native' as const }),
    address.map((contract) => ({ kind: 'erc20' as const, contract })),
  ),
  to: address,
  amount: uint,
  nonce: uint,
});
const hexData = fc.uint8Array({ maxLength: 100 }).map((b) => `0x${Buffer.from(b).toString('hex')}` as Hex);
const mutation: fc.Arbitrary<Partial<SafeTx>> = fc.oneof(
  address.map((to) => ({ to })),
  uint.map((value) => ({ value })),
  hexData.map((data) => ({ data })),
  fc.integer({ min: 1, max: 255 }).map((operation) => ({ operation })),
  uint.map((safeTxGas) => ({ safeTxGas })),
  uint.map((baseGas) => ({ baseGas })),
  uint.map((gasPrice) => ({ gasPrice })),
  address.map((gasToken) => ({ gasToken })),
  address.map((refundReceiver) => ({ refundReceiver })),
  uint.map((nonce) => ({ nonce })),
);

function sameTx(a: SafeTx, b: SafeTx): boolean {
  return (
    safeTxHash(getAddress(`0x${'11'.repeat(20)}`), 1, a) ===
    safeTxHash(getAddress(`0x${'11'.repeat(20)}`), 1, b)
  );
}

describe('checkSafeTxIsPlainTransfer (property)', () => {
  it('should accept the built transfer and return its hash', () => {
    fc.assert(
      fc.property(expectedTransfer, (expected) => {
        const tx = buildTransferSafeTx(expected);
        const r = checkSafeTxIsPlainTransfer(
          { chainId: expected.chainId, safe: expected.safe, tx },
          expected,
        );
        expect(r.ok && r.value.safeTxHash).toBe(safeTxHash(expected.safe, expected.chainId, tx));
      }),
    );
  });

  it('should refuse any changed field with OPERATION_FORBIDDEN or CALLDATA_MISMATCH', () => {
    fc.assert(
      fc.property(expectedTransfer, mutation, (expected, change) => {
        const built = buildTransferSafeTx(expected);
        const tx = { ...built, ...change };
        fc.pre(!sameTx(tx, built));
        const r = checkSafeTxIsPlainTransfer(
          { chainId: expected.chainId, safe: expected.safe, tx },
          expected,
        );
        expect(r.ok).toBe(false);
        expect(['OPERATION_FORBIDDEN', 'CALLDATA_MISMATCH']).toContain(!r.ok && r.code);
      }),
      { numRuns: 500 },
    );
  });

  it('should refuse the exact transfer on any other chain with WRONG_CHAIN', () => {
    fc.assert(
      fc.property(expectedTransfer, fc.integer({ min: 1, max: 2 ** 40 }), (expected, chainId) => {
        fc.pre(chainId !== expected.chainId);
        const tx = buildTransferSafeTx(expected);
        const r = checkSafeTxIsPlainTransfer({ chainId, safe: expected.safe, tx }, expected);
        expect(!r.ok && r.code).toBe('WRONG_CHAIN');
      }),
    );
  });
});
