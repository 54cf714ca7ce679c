/**
 * A fee bump (issue 13, BIP 125 replace-by-fee): a signed request to replace
 * a withdrawal that was signed and broadcast but not mined by a transaction
 * with the same payments and a higher fee.
 *
 * What a bump may change is only the fee: it names the original intent by its
 * digest (which is its id) and asks for a fee rate; it adds no payee, so it
 * needs no approval, and the amount was counted against the limits when the
 * original was signed, so it is not counted again. What keeps it from being a
 * second payment is the signer's rule, not this object: a signer signs a
 * replacement only if it spends an input of every transaction it signed for
 * the intent (so at most one of them can ever confirm) and pays every payee
 * output exactly as before (NOT_A_REPLACEMENT otherwise), under the fee caps
 * in force (FEE_TOO_HIGH).
 *
 * Who may sign a bump: the original intent's requester, on a device active
 * now, while still holding the requester role. The requester could already
 * have asked for this withdrawal; a bump lets the same key raise its fee up
 * to the caps, nothing more. A bump lives no longer than an intent may
 * (the policy's lifetimes), so an old signed bump is not a standing order.
 */

import { accept, type Result, refuse } from './errors.js';
import { digestOf } from './jcs.js';
import { verifyDeviceSignature } from './keys.js';
import { deviceSignature, type Intent, intentDigest } from './objects.js';
import { CLOCK_SKEW_MS, lifetimesOf, REQUESTER_ROLE } from './policy.js';
import { amount, digest, id, millis, nonce } from './primitives.js';
import { type Infer, literal, object, refine } from './schema.js';
import {
  deviceLookupMessage,
  type GovernanceState,
  hasRole,
  lookupDevice,
  policiesInForce,
} from './state.js';
import type { Digest, Millis } from './types.js';

/** The highest fee rate a bump may ask for, in sat/vB: what the PSBT builder accepts. */
export const MAX_BUMP_FEE_RATE = 100_000n;

export const bump = refine(
  object(
    {
      v: literal(1),
      org: digest,
      /** The original intent's digest (its id). */
      intent: digest,
      /** The fee rate asked for the replacement, sat/vB. */
      feeRate: amount,
      requester: id,
      device: id,
      nonce,
      createdAt: millis,
      expiresAt: millis,
    },
    {},
    "A fee bump: a request, signed on the original requester's device, to replace the intent's unconfirmed transaction by one with the same outputs and a higher fee.",
  ),
  (b) => {
    if (b.feeRate === '0') return 'feeRate must be greater than zero';
    if (BigInt(b.feeRate) > MAX_BUMP_FEE_RATE) return `feeRate must be at most ${MAX_BUMP_FEE_RATE} sat/vB`;
    if (b.expiresAt <= b.createdAt) return 'expiresAt must be after createdAt';
    return undefined;
  },
);
export type Bump = Infer<typeof bump>;

export const signedBump = object({ bump, signature: deviceSignature });
export type SignedBump = Infer<typeof signedBump>;

export function bumpDigest(b: Bump): Digest {
  return digestOf('bump', 1, b);
}

/**
 * Whether `signed` is a bump of `original` that its verifier may act on now:
 * same organization, the original's digest, signed by the original's
 * requester on an active device, the requester role still held, within the
 * intent lifetime the policy allows, not expired nor dated in the future, the
 * organization not frozen. Pure; returns the bump's digest.
 */
export function checkBump(
  state: GovernanceState,
  signed: SignedBump,
  original: Intent,
  now: Millis,
): Result<Digest> {
  const b = signed.bump;
  let d: Digest;
  let originalDigest: Digest;
  try {
    d = bumpDigest(b);
    originalDigest = intentDigest(original);
  } catch {
    return refuse('INTENT_SIGNATURE_INVALID', 'the bump or its intent cannot be digested');
  }
  if (state.frozen !== null) return refuse('FROZEN', 'the organization is frozen');
  if (b.org !== state.org || original.org !== state.org) {
    return refuse('WRONG_ORG', 'the bump is for another organization');
  }
  if (b.intent !== originalDigest) return refuse('NOT_A_REPLACEMENT', 'the bump names another intent');
  if (b.requester !== original.requester) {
    return refuse(
      'NOT_AUTHORIZED',
      `only ${original.requester}, who requested the withdrawal, may bump its fee`,
    );
  }
  const device = lookupDevice(state, b.requester, b.device, now);
  if (!device.ok) return refuse(device.code, deviceLookupMessage(device, b.requester, b.device));
  const sig = verifyDeviceSignature(device.device, d, signed.signature);
  if (!sig.ok)
    return refuse('INTENT_SIGNATURE_INVALID', `the bump's signature does not verify: ${sig.message}`);
  if (!hasRole(state, b.requester, REQUESTER_ROLE, now)) {
    return refuse('NOT_AUTHORIZED', `${b.requester} does not hold the ${REQUESTER_ROLE} role`);
  }
  const { intentMs } = lifetimesOf(policiesInForce(state, now));
  if (b.expiresAt - b.createdAt > intentMs) {
    return refuse('LIFETIME_TOO_LONG', 'the bump lives longer than the policy allows an intent to');
  }
  if (now >= b.expiresAt) return refuse('EXPIRED', 'the bump has expired');
  if (b.createdAt > now + CLOCK_SKEW_MS) {
    return refuse('NOT_YET_VALID', 'the bump is dated in the future beyond the allowed clock skew');
  }
  return accept(d);
}
