/**
 * Fee caps: the largest fee and fee rate a policy allows for a wallet and
 * asset. They apply on top of every rule (docs/architecture.md, Policy); the
 * signer refuses a transaction over them and a reviewer is shown them. Pure.
 */

import type { Policy } from './objects.js';

/** The caps in force for one transfer, in base units (bigint so a chain's arithmetic stays exact). */
export interface FeeCaps {
  /** Largest fee in base units (satoshi). */
  readonly maxFee: bigint;
  /** Largest fee rate in base units per virtual byte (Bitcoin) or per gas (EVM). */
  readonly maxFeeRate: bigint;
}

/**
 * The tightest fee caps for this wallet and asset across every policy in
 * force; null if any policy sets none for them (nothing is signed then: a
 * missing cap is never "no limit").
 */
export function feeCapsFor(
  policies: readonly Policy[],
  transfer: { readonly wallet: string; readonly asset: string },
): FeeCaps | null {
  let caps: FeeCaps | null = null;
  for (const policy of policies) {
    const matching = policy.feeCaps.filter(
      (c) => c.asset === transfer.asset && (c.wallet === undefined || c.wallet === transfer.wallet),
    );
    // A cap naming the wallet is more specific than one for the asset alone.
    const specific = matching.filter((c) => c.wallet !== undefined);
    const chosen = specific.length > 0 ? specific : matching;
    if (chosen.length === 0) return null;
    for (const c of chosen) {
      const next = { maxFee: BigInt(c.maxFee), maxFeeRate: BigInt(c.maxFeeRate) };
      caps =
        caps === null
          ? next
          : {
              maxFee: next.maxFee < caps.maxFee ? next.maxFee : caps.maxFee,
              maxFeeRate: next.maxFeeRate < caps.maxFeeRate ? next.maxFeeRate : caps.maxFeeRate,
            };
    }
  }
  return caps;
}
