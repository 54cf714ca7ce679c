/**
 * A withdrawal of ETH and of the token from a 2-of-3 Safe: two owners sign
 * with our code, an executor that is not an owner sends execTransaction,
 * and the balances change by exactly the amounts (the executor's gas is
 * its own: the Safe pays nothing but the transfer).
 */
import { type EvmChain, startEvmChain } from '@custos/test-support/evm-chain';
import { type Address, getAddress } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTransferSafeTx, parseAmount, SAFE_ABI } from '../src/index.js';
import { ethBalance, execute, signByOwners, tokenBalance } from './support.js';

let chain: EvmChain;
let safe: Address;
const recipient = getAddress('0x00000000000000000000000000000000c0ffee01');

beforeAll(async () => {
  chain = await startEvmChain();
  const owners = chain.accounts.slice(1, 4).map((a) => a.address);
  safe = (await chain.deploySafe(owners, 2)).address;
});

afterAll(async () => {
  await chain?.stop();
});

async function safeNonce(): Promise<bigint> {
  return chain.publicClient.readContract({ address: safe, abi: SAFE_ABI, functionName: 'nonce' });
}

function amountOf(text: string, decimals: number): bigint {
  const parsed = parseAmount(text, decimals);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.value;
}

describe('withdrawal from a 2-of-3 Safe', () => {
  it('should move exactly 0.1 ETH when owners 1 and 3 sign and the executor sends', async () => {
    const amount = amountOf('0.1', 18);
    const tx = buildTransferSafeTx({
      asset: { kind: 'native' },
      to: recipient,
      amount,
      nonce: await safeNonce(),
    });
    const keys = [chain.accounts[3]!.privateKey, chain.accounts[1]!.privateKey];
    const [safeBefore, recipientBefore] = [await ethBalance(chain, safe), await ethBalance(chain, recipient)];
    await execute(chain, safe, tx, signByOwners(safe, chain.chainId, tx, keys));
    expect(await ethBalance(chain, safe)).toBe(safeBefore - amount);
    expect(await ethBalance(chain, recipient)).toBe(recipientBefore + amount);
    expect(await safeNonce()).toBe(tx.nonce + 1n);
  });

  it('should move exactly 25.5 tokens (6 decimals) and no ETH', async () => {
    const amount = amountOf('25.5', 6);
    expect(amount).toBe(25_500_000n);
    const tx = buildTransferSafeTx({
      asset: { kind: 'erc20', contract: chain.token },
      to: recipient,
      amount,
      nonce: await safeNonce(),
    });
    const keys = [chain.accounts[1]!.privateKey, chain.accounts[2]!.privateKey];
    const ethBefore = await ethBalance(chain, safe);
    const [safeBefore, recipientBefore] = [
      await tokenBalance(chain, safe),
      await tokenBalance(chain, recipient),
    ];
    await execute(chain, safe, tx, signByOwners(safe, chain.chainId, tx, keys));
    expect(await tokenBalance(chain, safe)).toBe(safeBefore - amount);
    expect(await tokenBalance(chain, recipient)).toBe(recipientBefore + amount);
    expect(await ethBalance(chain, safe)).toBe(ethBefore);
  });

  it('should be rejected by the Safe with one signature only (threshold 2)', async () => {
    const tx = buildTransferSafeTx({
      asset: { kind: 'native' },
      to: recipient,
      amount: 1n,
      nonce: await safeNonce(),
    });
    const one = signByOwners(safe, chain.chainId, tx, [chain.accounts[1]!.privateKey]);
    // GS020: signatures data too short.
    await expect(execute(chain, safe, tx, one)).rejects.toThrow(/GS020/);
  });

  it('should be rejected by the Safe when a signature comes from a non-owner', async () => {
    const tx = buildTransferSafeTx({
      asset: { kind: 'native' },
      to: recipient,
      amount: 1n,
      nonce: await safeNonce(),
    });
    const keys = [chain.accounts[1]!.privateKey, chain.accounts[5]!.privateKey];
    // GS026: invalid owner provided.
    await expect(execute(chain, safe, tx, signByOwners(safe, chain.chainId, tx, keys))).rejects.toThrow(
      /GS026/,
    );
  });
});
