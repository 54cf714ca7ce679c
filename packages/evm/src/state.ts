/**
 * Reads a Safe's state from an EVM node over JSON-RPC (the I/O half of the
 * state attestation; safe-state.ts compares).
 *
 * A signer points this at a node it trusts itself, never one the
 * coordinator names. Every read is pinned to one block so that the answer
 * is one state, not a mix of two.
 */
import {
  type Address,
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  getAddress,
  type Hex,
  http,
  keccak256,
  type PublicClient,
} from 'viem';
import { SAFE_ABI } from './exec.js';
import {
  FALLBACK_HANDLER_STORAGE_SLOT,
  GUARD_STORAGE_SLOT,
  type ObservedSafeState,
  SENTINEL_ADDRESS,
  SINGLETON_STORAGE_SLOT,
} from './safe-state.js';

/** A Safe that is governed has no modules; more than this many is refused by the comparison anyway. */
const MODULE_PAGE = 100n;

export interface SafeStateRead extends ObservedSafeState {
  readonly blockNumber: bigint;
}

/** A viem public client for a JSON-RPC URL (no retries: a failed read is a failed attestation). */
export function evmClient(rpcUrl: string): PublicClient {
  // cacheTime 0: viem remembers the block number for 4 s by default, so a reused client would
  // attest the Safe as it was seconds ago (a singleton swapped since would pass).
  return createPublicClient({ cacheTime: 0, transport: http(rpcUrl, { retryCount: 0, timeout: 10_000 }) });
}

/** A view function that reverted is `null` (a foreign singleton); a transport failure is thrown (no attestation). */
async function orNullOnRevert<T>(read: Promise<T>): Promise<T | null> {
  try {
    return await read;
  } catch (err) {
    if (err instanceof BaseError && err.walk((e) => e instanceof ContractFunctionRevertedError) !== null) {
      return null;
    }
    throw err;
  }
}

function wordToAddress(word: Hex | undefined): Address {
  const hex = (word ?? '0x').slice(2).padStart(64, '0');
  if (!/^0{24}/.test(hex)) {
    throw new Error('storage word is not an address');
  }
  return getAddress(`0x${hex.slice(24)}`);
}

/** Reads singleton, its code hash, owners, threshold, nonce, modules, guard and fallback handler at one block. */
export async function readSafeState(client: PublicClient | string, safe: Address): Promise<SafeStateRead> {
  const c = typeof client === 'string' ? evmClient(client) : client;
  const blockNumber = await c.getBlockNumber();
  const at = { blockNumber } as const;
  const read = <N extends 'getOwners' | 'getThreshold' | 'nonce'>(functionName: N) =>
    orNullOnRevert(c.readContract({ address: safe, abi: SAFE_ABI, functionName, ...at }));
  const [slot0, guardWord, handlerWord, owners, threshold, nonce, modulesPage] = await Promise.all([
    c.getStorageAt({ address: safe, slot: SINGLETON_STORAGE_SLOT, ...at }),
    c.getStorageAt({ address: safe, slot: GUARD_STORAGE_SLOT, ...at }),
    c.getStorageAt({ address: safe, slot: FALLBACK_HANDLER_STORAGE_SLOT, ...at }),
    read('getOwners'),
    read('getThreshold'),
    read('nonce'),
    orNullOnRevert(
      c.readContract({
        address: safe,
        abi: SAFE_ABI,
        functionName: 'getModulesPaginated',
        args: [SENTINEL_ADDRESS, MODULE_PAGE],
        ...at,
      }),
    ),
  ]);
  const singleton = wordToAddress(slot0);
  const code = (await c.getCode({ address: singleton, ...at })) ?? '0x';
  return {
    blockNumber,
    singleton,
    singletonCodeHash: keccak256(code),
    owners: owners === null ? null : (owners as readonly Address[]).map((o) => getAddress(o)),
    threshold: threshold as bigint | null,
    nonce: nonce as bigint | null,
    modules: modulesPage === null ? null : modulesPage[0].map((m) => getAddress(m)),
    guard: wordToAddress(guardWord),
    fallbackHandler: wordToAddress(handlerWord),
  };
}
