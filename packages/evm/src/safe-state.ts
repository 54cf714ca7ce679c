/**
 * A Safe's state as governance pins it, and the pure comparison a signer
 * makes against what its own node reports (issue 9, state attestation).
 *
 * Bybit's Safe kept its address, owners and threshold; what changed was
 * storage slot 0, the singleton every call is delegated to. WazirX's was
 * upgraded the same way. So the attested state starts with the singleton
 * and the hash of its code, and also covers every other way to move funds
 * without the owners' signatures: modules (they call execTransactionFromModule
 * with no signature at all), the guard (it can veto or observe) and the
 * fallback handler (it receives every unknown call).
 */
import { accept } from '@custos/core';
import { type Address, type Hex, keccak256, stringToBytes } from 'viem';
import { sameAddress } from './address.js';
import { type EvmResult, refuseEvm, SAFE_STATE_MISMATCH } from './codes.js';

/** Safe's GuardManager: keccak256("guard_manager.guard.address"). */
export const GUARD_STORAGE_SLOT: Hex = keccak256(stringToBytes('guard_manager.guard.address'));
/** Safe's FallbackManager: keccak256("fallback_manager.handler.address"). */
export const FALLBACK_HANDLER_STORAGE_SLOT: Hex = keccak256(
  stringToBytes('fallback_manager.handler.address'),
);
/** Storage slot 0 of a SafeProxy: the singleton (masterCopy) address. */
export const SINGLETON_STORAGE_SLOT: Hex = '0x0';
/** ModuleManager's linked-list head. */
export const SENTINEL_ADDRESS: Address = '0x0000000000000000000000000000000000000001';

export interface SafeState {
  readonly singleton: Address;
  /** keccak256 of the singleton's runtime code. */
  readonly singletonCodeHash: Hex;
  readonly owners: readonly Address[];
  readonly threshold: bigint;
  readonly nonce: bigint;
  readonly modules: readonly Address[];
  readonly guard: Address;
  readonly fallbackHandler: Address;
}

/**
 * What a node reports. The Safe's view functions run the singleton's code,
 * so once the singleton is replaced (Bybit) they may revert or lie; a read
 * that reverted is `null`, which never equals a governed value. Storage
 * slots are read raw and are always there.
 */
export interface ObservedSafeState extends Omit<SafeState, 'owners' | 'threshold' | 'nonce' | 'modules'> {
  readonly owners: readonly Address[] | null;
  readonly threshold: bigint | null;
  readonly nonce: bigint | null;
  readonly modules: readonly Address[] | null;
}

/** What governance pins; the nonce is the signer's own ledger's business, checked apart. */
export type GovernedSafeState = Omit<SafeState, 'nonce'>;

function sameSet(a: readonly Address[] | null, b: readonly Address[]): boolean {
  if (a === null || a.length !== b.length) return false;
  const set = new Set(a.map((x) => x.toLowerCase()));
  return set.size === a.length && b.every((x) => set.has(x.toLowerCase()));
}

/**
 * Compares what the chain says with what governance pins. Owners compare as
 * a set (the Safe's linked list order is insertion order, not meaning).
 * The singleton is compared first: when it changed, that is the news.
 */
export function checkSafeState(
  observed: ObservedSafeState,
  governed: GovernedSafeState,
): EvmResult<SafeState> {
  const differs = (field: string) =>
    refuseEvm(SAFE_STATE_MISMATCH, `the Safe's ${field} on chain is not the governed one`, { field });
  if (!sameAddress(observed.singleton, governed.singleton)) return differs('singleton');
  if (observed.singletonCodeHash.toLowerCase() !== governed.singletonCodeHash.toLowerCase()) {
    return differs('singletonCodeHash');
  }
  if (!sameSet(observed.owners, governed.owners)) return differs('owners');
  if (observed.threshold !== governed.threshold) return differs('threshold');
  if (!sameSet(observed.modules, governed.modules)) return differs('modules');
  if (!sameAddress(observed.guard, governed.guard)) return differs('guard');
  if (!sameAddress(observed.fallbackHandler, governed.fallbackHandler)) return differs('fallbackHandler');
  if (observed.nonce === null) return differs('nonce');
  return accept({
    ...observed,
    owners: observed.owners!,
    threshold: observed.threshold!,
    modules: observed.modules!,
    nonce: observed.nonce,
  });
}
