/**
 * The derivation core's policy needs to prove an internal transfer's claim
 * (issue 13, core internal-transfer.ts): a governed Bitcoin wallet's receive
 * address at an index, from its descriptor on the network of its chain.
 * Pure and cached (parseDescriptor and deriveAddress keep their results), so
 * every verifier can pass it to `evaluate` at the cost of one lookup.
 */
import { type Result, refuse, type Wallet } from '@custos/core';
import { deriveAddress, parseDescriptor } from './descriptor.js';
import { networkOfChain } from './network.js';

/**
 * The receive (branch 0) address of `wallet` at `index`; a refusal for a
 * wallet that is not a Bitcoin descriptor wallet on a known network, a
 * descriptor that does not parse, or an index outside 0..2^31-1.
 *
 * @example
 * evaluate({ state, intent, approvals, ledger, now, receiveAddress: walletReceiveAddress });
 */
export function walletReceiveAddress(wallet: Wallet, index: number): Result<string> {
  if (wallet.kind !== 'bitcoin-wsh-sortedmulti') {
    return refuse('WRONG_CHAIN', `wallet ${wallet.id} is not a Bitcoin descriptor wallet`);
  }
  const network = networkOfChain(wallet.chain);
  if (network === undefined) return refuse('WRONG_CHAIN', `${wallet.chain} is not a Bitcoin chain`);
  const parsed = parseDescriptor(wallet.descriptor, network);
  if (!parsed.ok) return refuse('GOVERNANCE_INVALID', `wallet ${wallet.id}: ${parsed.message}`);
  if (!Number.isSafeInteger(index) || index < 0 || index >= 0x80000000) {
    return refuse('INVALID_VALUE', 'a receive index is an integer from 0 to 2^31-1');
  }
  return { ok: true, value: deriveAddress(parsed.value, 0, index).address };
}
