/**
 * Look-alike addresses (THREATS 21, address poisoning): which address-book
 * entries a destination imitates, and the one sentence every part shows for
 * it: the policy's refusal or warning (and so each signer's), the
 * coordinator's warning on a proposed address, and the CLI's review, request
 * and governance views. Pure.
 */

import { isEvmChain } from './evm.js';
import type { AddressEntry, Policy } from './objects.js';
import type { GovernanceState } from './state.js';
import type { Millis } from './types.js';

/**
 * Address-book entries on `chain` whose address differs from `address` but
 * shares its first `lookalike.prefix` and last `lookalike.suffix` characters
 * (THREATS 21: address poisoning). Entries count whether active or still
 * pending at `now`, since a pending look-alike is the attack being prepared;
 * active ones come first. Characters are compared without regard to case, as
 * a person comparing by eye does not reliably see it.
 *
 * On an EVM chain the `0x` every address shares is not compared: poisoners
 * grind addresses whose first and last *hex digits* match the victim's (a
 * few hours of GPU time buys 4 + 4), so `prefix` and `suffix` count hex
 * digits after `0x`, compared without case (EIP-55 case carries no identity).
 *
 * @example
 * findLookalikes(state, 'bitcoin:mainnet', 'bc1qxy2k...0wlh', { prefix: 6, suffix: 4, action: 'deny' }, now);
 */
export function findLookalikes(
  state: GovernanceState,
  chain: string,
  address: string,
  lookalike: Policy['lookalike'],
  now: Millis,
): AddressEntry[] {
  const evm = isEvmChain(chain);
  const target = comparable(address, evm);
  const head = target.slice(0, lookalike.prefix);
  const tail = target.slice(Math.max(0, target.length - lookalike.suffix));
  const active: AddressEntry[] = [];
  const pending: AddressEntry[] = [];
  const consider = (value: AddressEntry, list: AddressEntry[]) => {
    if (value.chain !== chain) return;
    const other = comparable(value.address, evm);
    if (other === target || !other.startsWith(head) || !other.endsWith(tail)) return;
    list.push(value);
  };
  for (const { value, activeFrom } of state.addresses.values()) {
    consider(value, activeFrom <= now ? active : pending);
  }
  // Removing the entry a poisoned address imitates must not lift the check before the delay.
  for (const r of state.retiredAddresses) if (r.until > now) consider(r.value, pending);
  return active.concat(pending);
}

/** The characters a person compares: lower case, and on an EVM chain without the shared `0x`. */
function comparable(address: string, evm: boolean): string {
  const lower = address.toLowerCase();
  return evm && lower.startsWith('0x') ? lower.slice(2) : lower;
}

/** What the look-alike settings of every policy in force find for one destination. */
export interface Lookalikes {
  /** Each imitated entry once, in the order the policies find them; empty if none. */
  readonly entries: readonly AddressEntry[];
  /** True when a policy that finds one of them says deny (the transfer is refused: LOOKALIKE_ADDRESS). */
  readonly deny: boolean;
}

/** The look-alikes of `address` under the settings of each policy in `policies` (those in force at `now`). */
export function lookalikesInForce(
  state: GovernanceState,
  chain: string,
  address: string,
  policies: readonly Policy[],
  now: Millis,
): Lookalikes {
  const entries: AddressEntry[] = [];
  const ids = new Set<string>();
  const settings = new Set<string>();
  let deny = false;
  for (const { lookalike } of policies) {
    const key = `${lookalike.prefix}/${lookalike.suffix}/${lookalike.action}`;
    if (settings.has(key)) continue;
    settings.add(key);
    const found = findLookalikes(state, chain, address, lookalike, now);
    if (found.length > 0 && lookalike.action === 'deny') deny = true;
    for (const e of found) {
      if (ids.has(e.id)) continue;
      ids.add(e.id);
      entries.push(e);
    }
  }
  return { entries, deny };
}

/** How many imitated entries a message names before it says "...". */
const NAMED = 3;

/**
 * The sentence for a destination that looks like address-book entries, the
 * same wherever it is shown: each entry's label, id and address, so a person
 * can compare the two by eye.
 */
export function lookalikeMessage(address: string, entries: readonly AddressEntry[]): string {
  const names = entries
    .slice(0, NAMED)
    .map((e) => `${e.label} (${e.id}) at ${e.address}`)
    .join('; ');
  const more = entries.length > NAMED ? `; and ${entries.length - NAMED} more` : '';
  return `${address} looks like address-book entr${entries.length === 1 ? 'y' : 'ies'} ${names}${more}, but is a different address`;
}
