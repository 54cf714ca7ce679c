/**
 * Our safeTxHash is the deployed Safe 1.4.1's own getTransactionHash, over
 * random fields: what a Custos signer signs is what the Safe checks.
 */
import { type EvmChain, startEvmChain } from '@custos/test-support/evm-chain';
import fc from 'fast-check';
import { type Address, getAddress, type Hex } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SAFE_ABI, type SafeTx, safeTxHash } from '../src/index.js';

let chain: EvmChain;
let safe: Address;

beforeAll(async () => {
  chain = await startEvmChain();
  const owners = chain.accounts.slice(1, 4).map((a) => a.address);
  safe = (await chain.deploySafe(owners, 2, { eth: 0n, tokens: 0n })).address;
});

afterAll(async () => {
  await chain?.stop();
});

const address = fc
  .uint8Array({ minLength: 20, maxLength: 20 })
  .map((b) => getAddress(`0x${Buffer.from(b).toString('hex')}`));
const uint256 = fc.bigInt({ min: 0n, max: (1n << 256n) - 1n });
const smallOrHuge = fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 1000n }), uint256);
const data = fc.uint8Array({ maxLength: 200 }).map((b) => `0x${Buffer.from(b).toString('hex')}` as Hex);
const safeTx: fc.Arbitrary<SafeTx> = fc.record({
  to: address,
  value: smallOrHuge,
  data,
  operation: fc.constantFrom(0, 1),
  safeTxGas: smallOrHuge,
  baseGas: smallOrHuge,
  gasPrice: smallOrHuge,
  gasToken: fc.oneof(fc.constant('0x0000000000000000000000000000000000000000' as Address), address),
  refundReceiver: fc.oneof(fc.constant('0x0000000000000000000000000000000000000000' as Address), address),
  nonce: smallOrHuge,
});

describe('safeTxHash equals the deployed Safe 1.4.1 getTransactionHash', () => {
  it('should equal the Safe’s own hash for random SafeTx fields', async () => {
    await fc.assert(
      fc.asyncProperty(safeTx, async (tx) => {
        const onChain = await chain.publicClient.readContract({
          address: safe,
          abi: SAFE_ABI,
          functionName: 'getTransactionHash',
          args: [
            tx.to,
            tx.value,
            tx.data,
            tx.operation,
            tx.safeTxGas,
            tx.baseGas,
            tx.gasPrice,
            tx.gasToken,
            tx.refundReceiver,
            tx.nonce,
          ],
        });
        expect(safeTxHash(safe, chain.chainId, tx)).toBe(onChain);
      }),
      { numRuns: 50 },
    );
  });

  it('should differ for another chain id or another Safe (the domain binds both)', async () => {
    const tx: SafeTx = {
      to: chain.token,
      value: 0n,
      data: '0x',
      operation: 0,
      safeTxGas: 0n,
      baseGas: 0n,
      gasPrice: 0n,
      gasToken: '0x0000000000000000000000000000000000000000',
      refundReceiver: '0x0000000000000000000000000000000000000000',
      nonce: 0n,
    };
    const here = safeTxHash(safe, chain.chainId, tx);
    expect(safeTxHash(safe, chain.chainId + 1, tx)).not.toBe(here);
    expect(safeTxHash(chain.token, chain.chainId, tx)).not.toBe(here);
  });
});
