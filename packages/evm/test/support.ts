/**
 * Shared by the on-chain tests: sign a SafeTx with owner keys (our code),
 * have the executor send execTransaction, and read balances.
 */
import type { EvmChain } from '@custos/test-support/evm-chain';
import { TOKEN_ABI } from '@custos/test-support/evm-chain';
import type { Address, Hex } from 'viem';
import {
  encodeExecTransaction,
  evmAddressOf,
  packSafeSignatures,
  type SafeTx,
  safeTxHash,
  signSafeTxHash,
} from '../src/index.js';

/** Signs `tx` for `safe` with each key and packs the signatures in owner order. */
export function signByOwners(safe: Address, chainId: number, tx: SafeTx, keys: readonly Hex[]): Hex {
  const hash = safeTxHash(safe, chainId, tx);
  return packSafeSignatures(
    keys.map((k) => ({ owner: evmAddressOf(k), signature: signSafeTxHash(hash, k) })),
  );
}

/** The executor (account 4, not an owner) sends execTransaction; resolves to the receipt's transaction hash. */
export async function execute(chain: EvmChain, safe: Address, tx: SafeTx, signatures: Hex): Promise<Hex> {
  const executor = chain.accounts[4]!.address;
  return chain.send(executor, safe, encodeExecTransaction(tx, signatures));
}

export function tokenBalance(chain: EvmChain, owner: Address): Promise<bigint> {
  return chain.publicClient.readContract({
    address: chain.token,
    abi: TOKEN_ABI,
    functionName: 'balanceOf',
    args: [owner],
  });
}

export function ethBalance(chain: EvmChain, owner: Address): Promise<bigint> {
  return chain.publicClient.getBalance({ address: owner });
}
