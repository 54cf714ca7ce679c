/**
 * `custos request --to-wallet` (issue 13): the destination of an internal
 * transfer, derived here from the verified governance (the wallet's governed
 * descriptor, or the Safe's governed address), never taken from the
 * coordinator. The coordinator's wallet list only suggests the default
 * receive index (the next unused one); whatever it says, the index is
 * bounded by the schema and the address is this client's own derivation,
 * which the coordinator and every signer derive again.
 */
import { walletReceiveAddress } from '@custos/bitcoin';
import {
  CustosError,
  checkInternalDestination,
  type GovernanceState,
  type InternalDestination,
  MAX_INTERNAL_RECEIVE_INDEX,
  type Wallet,
} from '@custos/core';
import type { WalletView } from './client.js';
import { UsageError } from './output.js';

export interface InternalTarget {
  readonly to: string;
  readonly toWallet: InternalDestination;
}

/**
 * The address and claim for a transfer from `from` to the governed wallet
 * `toWalletId`: the Safe's address, or the receive address at `index`
 * (default: the coordinator's next unused index for that wallet, else 0).
 * Refused here, with the code the signers would give, when the claim could
 * not be proven (another chain, itself, a wallet not yet active, an asset it
 * does not hold).
 */
export async function internalDestinationOf(
  state: GovernanceState,
  from: Wallet,
  toWalletId: string,
  index: number | undefined,
  asset: string | undefined,
  now: number,
  wallets: () => Promise<readonly WalletView[]>,
): Promise<InternalTarget> {
  const dest = state.wallets.get(toWalletId);
  if (dest === undefined) {
    throw new CustosError(
      'UNKNOWN_WALLET',
      `no wallet ${toWalletId} in the verified governance (wallets: ${[...state.wallets.keys()].join(', ')})`,
    );
  }
  let target: InternalTarget;
  if (dest.kind === 'evm-safe') {
    if (index !== undefined) throw new UsageError('--index is for Bitcoin wallets: a Safe has one address');
    target = { to: dest.address, toWallet: { wallet: dest.id } };
  } else {
    const chosen = index ?? (await suggestedIndex(dest.id, wallets));
    const derived = walletReceiveAddress(dest, chosen);
    if (!derived.ok) throw new CustosError(derived.code, derived.message);
    target = { to: derived.value, toWallet: { wallet: dest.id, index: chosen } };
  }
  const proof = checkInternalDestination(
    state,
    { wallet: from.id, chain: from.chain, asset: asset ?? from.assets[0] ?? '', ...target },
    now,
    walletReceiveAddress,
  );
  if (!proof.ok) throw new CustosError(proof.code, proof.message);
  return target;
}

/** The coordinator's next unused receive index of `wallet` if it gives a usable one, else 0. */
async function suggestedIndex(
  wallet: string,
  wallets: () => Promise<readonly WalletView[]>,
): Promise<number> {
  try {
    const reported = (await wallets()).find((w) => w.id === wallet)?.receiveIndex;
    if (reported !== undefined && Number.isSafeInteger(reported) && reported >= 0) {
      return Math.min(reported, MAX_INTERNAL_RECEIVE_INDEX);
    }
  } catch {
    // Availability only: without the coordinator's answer the first address will do.
  }
  return 0;
}
