/**
 * Internal transfers (issue 13): an intent that names a governed wallet as
 * its destination (`toWallet`: cold → hot refill, hot → cold sweep), so a
 * policy rule can allow it by wallet (`destination: {kind: 'wallets'}`)
 * rather than by address-book entry.
 *
 * The claim is signed with the intent, but a signature only proves who said
 * it, not that it is true: a requester (or a service whose key leaked) could
 * sign `toWallet: 'cold'` with its own address in `to`, and a rule meant for
 * refills would pay the attacker. So the claim is PROVEN wherever it
 * authorizes, by deriving the wallet's address from its governed descriptor
 * and comparing it with `to`: here, in the policy every verifier runs
 * (coordinator preview, every online signer, the offline signer, the CLI's
 * review), before any rule is matched (policy.ts step 3b).
 *
 * Why here and with an injected derivation: core cannot import
 * @custos/bitcoin (the dependencies point the other way), and checking the
 * claim beside the PSBT instead would leave the policy matching on an
 * unproven claim wherever the PSBT is not verified (the coordinator's preview,
 * an EVM Safe's job). So the caller passes the Bitcoin derivation
 * (`@custos/bitcoin/sign`'s `walletReceiveAddress`) into `evaluate`, and a
 * verifier that passes none refuses every Bitcoin internal transfer
 * (fail closed): forgetting it can deny, never allow. A Safe has one address,
 * its own, which needs no derivation.
 */
import { accept, type Result, refuse } from './errors.js';
import type { Intent, Wallet } from './objects.js';
import { type GovernanceState, walletActive } from './state.js';
import type { Millis } from './types.js';

/**
 * The address of a Bitcoin wallet's receive branch (0) at `index`, derived
 * from its governed descriptor; a refusal when it cannot be derived. Pure.
 */
export type WalletAddressFn = (wallet: Wallet, index: number) => Result<string>;

/**
 * Proves an intent's `toWallet` claim (policy.ts step 3b): the named wallet
 * is governed (UNKNOWN_WALLET), not the paying wallet itself
 * (DESTINATION_NOT_WALLET), active at `now` (WALLET_NOT_ACTIVE), on the same
 * chain (WRONG_CHAIN), holds the asset (UNKNOWN_ASSET), and `to` is exactly
 * its address: the Safe's own, or the Bitcoin receive address at the claimed
 * index derived by `receiveAddress` (DESTINATION_NOT_WALLET, also when no
 * derivation is given). The index bound (MAX_INTERNAL_RECEIVE_INDEX) is the
 * schema's. Returns the destination wallet.
 */
export function checkInternalDestination(
  state: GovernanceState,
  intent: Pick<Intent, 'wallet' | 'chain' | 'asset' | 'toWallet'> & { readonly to: string },
  now: Millis,
  receiveAddress: WalletAddressFn | undefined,
): Result<Wallet> {
  const claim = intent.toWallet;
  if (claim === undefined) return refuse('DESTINATION_NOT_WALLET', 'the intent names no destination wallet');
  const dest = state.wallets.get(claim.wallet);
  if (dest === undefined) return refuse('UNKNOWN_WALLET', `no wallet ${claim.wallet} to transfer to`);
  if (dest.id === intent.wallet) {
    return refuse('DESTINATION_NOT_WALLET', `wallet ${dest.id} cannot transfer to itself`);
  }
  if (!walletActive(state, dest.id, now)) {
    return refuse('WALLET_NOT_ACTIVE', `destination wallet ${dest.id} is waiting out the governance delay`);
  }
  if (dest.chain !== intent.chain) {
    return refuse(
      'WRONG_CHAIN',
      `destination wallet ${dest.id} is on ${dest.chain}, the intent on ${intent.chain}`,
    );
  }
  if (!dest.assets.includes(intent.asset)) {
    return refuse('UNKNOWN_ASSET', `destination wallet ${dest.id} does not hold ${intent.asset}`);
  }
  let expected: string;
  let where: string;
  if (dest.kind === 'evm-safe') {
    expected = dest.address;
    where = 'the Safe address';
  } else {
    if (claim.index === undefined) {
      return refuse('DESTINATION_NOT_WALLET', `a receive index of wallet ${dest.id} is required`);
    }
    if (receiveAddress === undefined) {
      return refuse(
        'DESTINATION_NOT_WALLET',
        `this verifier cannot derive the addresses of wallet ${dest.id}, so it cannot prove the destination`,
      );
    }
    const derived = receiveAddress(dest, claim.index);
    if (!derived.ok) {
      return refuse(
        'DESTINATION_NOT_WALLET',
        `the receive address of wallet ${dest.id} cannot be derived: ${derived.message}`,
      );
    }
    expected = derived.value;
    where = `receive index ${claim.index}`;
  }
  if (intent.to !== expected) {
    return refuse(
      'DESTINATION_NOT_WALLET',
      `${intent.to} is not wallet ${dest.id}'s address (${where} is ${expected})`,
    );
  }
  return accept(dest);
}
