/**
 * How each kind of governance entry takes effect: the one table of record
 * (issue 8, item 1). governance.ts applies entries the way this table says and
 * test/governance-effects.test.ts checks it kind by kind, with a property test
 * over random entries that nothing widening the set of allowed transfers
 * binds before the delay.
 *
 * Why: keys that authorize can be stolen as any keys can (Ronin 2022: five
 * of nine validator keys, one of them a stale delegated right; Harmony 2022:
 * two of five multisig keys), and an admin quorum is such a set of keys.
 * The loosening delay is the window in which a watcher or a person notices a
 * hostile change and freezes. A change that adds a way to authorize (a device,
 * a member, a role, a wallet, an asset, a destination, a looser rule) must wait it out
 * on each signer's own clock, or the stolen quorum adds its own devices and
 * withdraws at once. A change that only removes authority binds at once.
 *
 * A change of mixed effect (a new policy, a new role set, a removed address
 * that a stricter rule or a look-alike check relied on) binds twice while
 * pending: every intent must be allowed both by the state before it and by the
 * state after it (policy.ts step 6, state.ts policiesInForce and roleViews),
 * so its tightening part is immediate and its loosening part waits.
 */
import type { LaterKind } from './governance.js';

/**
 * - `tightens`: can only remove authority; binds when the verifier first sees it.
 * - `widens`: adds authority; binds only once the verifier's delay has passed.
 * - `both`: what it removes binds at once, what it adds waits out the delay.
 * - `restores`: `unfreeze`, which lifts a freeze. It needs the full quorum
 *   and binds at once: a freeze is an emergency stop whose signer (one admin
 *   or the watcher) may be wrong, and every loosening change it held up still
 *   waits out its own delay after it (docs/architecture.md "Governance").
 */
export type GovernanceEffect = 'tightens' | 'widens' | 'both' | 'restores';

export interface EffectRow {
  readonly effect: GovernanceEffect;
  /** Who must sign it, in the state before it. */
  readonly signedBy: 'quorum' | 'one admin or watcher';
  /** What waits and what binds at once, for people (docs, the CLI). */
  readonly how: string;
}

export const GOVERNANCE_EFFECTS: Readonly<Record<LaterKind, EffectRow>> = {
  'member.add': {
    effect: 'widens',
    signedBy: 'quorum',
    how: 'the member exists at once; its devices sign and its roles count only after the delay',
  },
  'member.remove': {
    effect: 'tightens',
    signedBy: 'quorum',
    how: 'the member and every device of it stop counting at once',
  },
  'device.add': {
    effect: 'widens',
    signedBy: 'quorum',
    how: 'the device signs nothing (requests, intents, approvals, governance) until the delay has passed',
  },
  'device.revoke': {
    effect: 'tightens',
    signedBy: 'quorum',
    how: 'the device stops counting at once (DEVICE_REVOKED)',
  },
  'role.set': {
    effect: 'both',
    signedBy: 'quorum',
    how: 'new roles count after the delay; dropped roles stop granting at once but still bind the rules that restricted them until the delay has passed',
  },
  'policy.set': {
    effect: 'both',
    signedBy: 'quorum',
    how: 'until the delay has passed, an intent must satisfy the policy in force and the new one',
  },
  'address.add': {
    effect: 'widens',
    signedBy: 'quorum',
    how: 'the destination is usable after the delay (DESTINATION_NOT_ACTIVE before); look-alike checks see it at once',
  },
  'address.remove': {
    effect: 'both',
    signedBy: 'quorum',
    how: 'the destination is refused at once; look-alike checks and the rules that named it still see it until the delay has passed',
  },
  'wallet.add': {
    effect: 'widens',
    signedBy: 'quorum',
    how: 'the wallet spends nothing until the delay has passed (WALLET_NOT_ACTIVE); an alias of an existing wallet is refused (WALLET_ALIAS)',
  },
  'asset.add': {
    effect: 'widens',
    signedBy: 'quorum',
    how: 'a Safe sends the asset only after the delay (UNKNOWN_ASSET before); one entry per token and chain, and an id keeps its meaning for good',
  },
  'asset.remove': {
    effect: 'tightens',
    signedBy: 'quorum',
    how: 'a Safe sends the asset no more, at once (UNKNOWN_ASSET); the id can come back only as the same token',
  },
  'signer.add': {
    effect: 'widens',
    signedBy: 'quorum',
    how: 'the signer gets no jobs and its requests are refused until the delay has passed',
  },
  'signer.remove': {
    effect: 'tightens',
    signedBy: 'quorum',
    how: 'the signer stops counting at once',
  },
  'quorum.set': {
    effect: 'both',
    signedBy: 'quorum',
    how: 'a higher quorum or a longer delay binds at once; a lower quorum or a shorter delay after the current delay',
  },
  freeze: {
    effect: 'tightens',
    signedBy: 'one admin or watcher',
    how: 'every signer refuses everything at once (FROZEN)',
  },
  unfreeze: {
    effect: 'restores',
    signedBy: 'quorum',
    how: 'lifts the freeze at once, and a signer’s own freeze on proof of an equivocation; changes held up still wait their own delay',
  },
};
