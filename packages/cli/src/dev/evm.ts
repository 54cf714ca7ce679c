/**
 * The EVM side of `custos dev` (issue 9): a local chain (Hardhat 2, its EDR
 * engine, in this process on 127.0.0.1) with Safe 1.4.1 deployed from the
 * npm artifacts, a 6-decimal token (USDT), Bybit's trojan and backdoor, and
 * the demo's 2-of-3 Safe: owners signer-1, signer-2 (their keystores' EVM
 * keys) and the offline backup key, funded with ETH and the token. The
 * coordinator executes from account 4 (it pays gas and owns nothing).
 *
 * The chain lives in memory. Every deployment is deterministic (the same
 * deployer, nonces and CREATE2 salt), so a restart deploys the Safe again at
 * the address governance pins, freshly funded; what was executed before the
 * restart is gone with the old chain (the banner says so).
 *
 * It needs the repository's development dependencies (hardhat, solc, the
 * Safe artifacts), through the test-support package that also runs the EVM
 * tests: loaded only here, on use. Without them `custos dev` runs Bitcoin
 * only and says why.
 */
import type { Address } from '@custos/core';

/** Hardhat's default chain id: local, and marked so by every wallet. */
export const DEV_CHAIN_ID = 31337;
export const DEV_SAFE_WALLET = 'eth-safe';
/** The funding of the demo Safe: 100 ETH and 1,000,000 USDT (6 decimals). */
const SAFE_ETH = 100n * 10n ** 18n;
const SAFE_TOKENS = 1_000_000n * 10n ** 6n;
/** The CREATE2 salt of the demo Safe, fixed so that a restart deploys it at the same address. */
const SAFE_SALT = 7_340n;

export interface DevEvm {
  readonly rpcUrl: string;
  readonly chainId: number;
  readonly safe: Address;
  readonly singleton: Address;
  readonly singletonCodeHash: string;
  readonly fallbackHandler: Address;
  readonly token: Address;
  /** A contract the Safe owns (the Radiant replay's target). */
  readonly ownable: Address;
  /** Bybit's trojan (its transfer writes the Safe's slot 0). */
  readonly trojan: Address;
  /** The executor: pays gas for execTransaction, owns nothing. */
  readonly executorKey: `0x${string}`;
  /** An account that is no owner (the attacker of the demo). */
  readonly attacker: Address;
  /** The Safe's nonce on this chain now. */
  safeNonce(): Promise<bigint>;
  /** Sends `data` to the Safe from the executor and waits for it to be mined (throws if it reverted). */
  sendToSafe(data: `0x${string}`): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts the chain and deploys the demo Safe owned by `owners` (2 of 3).
 * Throws UNAVAILABLE-like errors as plain Errors; the caller reports them.
 */
export async function startDevEvm(owners: readonly Address[]): Promise<DevEvm> {
  const { startEvmChain } = await import('@custos/test-support/evm-chain');
  const chain = await startEvmChain({ chainId: DEV_CHAIN_ID });
  try {
    const safe = await chain.deploySafe(owners as readonly `0x${string}`[], 2, {
      eth: SAFE_ETH,
      tokens: SAFE_TOKENS,
      saltNonce: SAFE_SALT,
    });
    return {
      rpcUrl: chain.rpcUrl,
      chainId: chain.chainId,
      safe: safe.address as Address,
      singleton: chain.safeContracts.singleton as Address,
      singletonCodeHash: chain.safeContracts.singletonCodeHash.toLowerCase(),
      fallbackHandler: chain.safeContracts.fallbackHandler as Address,
      token: chain.token as Address,
      ownable: safe.ownable as Address,
      trojan: chain.trojan as Address,
      executorKey: chain.accounts[4]!.privateKey,
      attacker: chain.accounts[5]!.address as Address,
      safeNonce: async () => {
        const { SAFE_ABI } = await import('@custos/evm');
        return chain.publicClient.readContract({
          address: safe.address,
          abi: SAFE_ABI,
          functionName: 'nonce',
        });
      },
      sendToSafe: async (data) => {
        await chain.send(chain.accounts[4]!.address, safe.address, data);
      },
      close: () => chain.stop(),
    };
  } catch (err) {
    await chain.stop().catch(() => undefined);
    throw err;
  }
}

/**
 * A restart's fresh chain has the Safe at nonce 0, but the signers' own
 * ledgers remember the nonces they signed before (and refuse to sign one of
 * them again, SAFE_NONCE_REUSED, as they must). So the dev deployment, which
 * holds every owner key of its demo Safe, uses the nonces up to `target` with
 * zero-value transfers signed by two owner keys directly (not through the
 * signers: development only), and the next withdrawal gets the nonce the
 * signers expect.
 */
export async function catchUpSafeNonce(
  evm: DevEvm,
  target: bigint,
  ownerSecrets: readonly Uint8Array[],
  payee: Address,
): Promise<number> {
  const {
    buildTransferSafeTx,
    encodeExecTransaction,
    evmAddressOf,
    packSafeSignatures,
    safeTxHash,
    signSafeTxHash,
  } = await import('@custos/evm');
  let used = 0;
  for (let nonce = await evm.safeNonce(); nonce < target; nonce++) {
    const tx = buildTransferSafeTx({
      asset: { kind: 'native' },
      to: payee as `0x${string}`,
      amount: 0n,
      nonce,
    });
    const hash = safeTxHash(evm.safe as `0x${string}`, evm.chainId, tx);
    const signatures = packSafeSignatures(
      ownerSecrets.map((k) => ({ owner: evmAddressOf(k), signature: signSafeTxHash(hash, k) })),
    );
    await evm.sendToSafe(encodeExecTransaction(tx, signatures));
    used++;
  }
  return used;
}

/** The highest Safe nonce any of the signers' ledgers (their SQLite files) holds for `safe`, plus one; 0 if none. */
export async function signedNoncesEnd(databases: readonly string[], safe: string): Promise<bigint> {
  const { default: Database } = await import('better-sqlite3');
  const { existsSync } = await import('node:fs');
  let end = 0n;
  for (const file of databases) {
    if (!existsSync(file)) continue;
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      const has = db
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'safe_nonces'")
        .get();
      if (has === undefined) continue;
      const row = db
        .prepare('SELECT max(nonce) AS n FROM safe_nonces WHERE lower(safe) = lower(?)')
        .get(safe) as {
        n: number | null;
      };
      if (row.n !== null && BigInt(row.n) + 1n > end) end = BigInt(row.n) + 1n;
    } finally {
      db.close();
    }
  }
  return end;
}
