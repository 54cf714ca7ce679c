/**
 * The fee bump object (issue 13): its strict schema, its digest
 * sha256("custos/bump/v1\n" || JCS(bump)) computed independently, and
 * checkBump, which every verifier runs: only the original intent's
 * requester, on an active device, still a requester, may bump it, within an
 * intent's lifetime, with the organization not frozen.
 */
import { createHash } from 'node:crypto';
import { MINUTE, makeWorld } from '@custos/test-support/world';
import { describe, expect, it } from 'vitest';
import { type Bump, bump, bumpDigest, checkBump, type SignedBump, signedBump } from '../src/bump.js';
import { CustosError } from '../src/errors.js';
import { canonicalize } from '../src/jcs.js';
import { signDigest } from '../src/keys.js';
import { intentDigest } from '../src/objects.js';
import type { Amount, Hex } from '../src/types.js';

const world = makeWorld();
const intent = world.intent(100_000n);
const now = world.clock.now;

function bumpBy(o: Partial<Bump> = {}, by = world.org.requester): SignedBump {
  const b: Bump = {
    v: 1,
    org: world.org.orgId,
    intent: intentDigest(intent.intent),
    feeRate: '12' as Amount,
    requester: by.id,
    device: by.device.id,
    nonce: '0123456789abcdef0123456789abcdef' as Hex,
    createdAt: now - 1000,
    expiresAt: now + 10 * MINUTE,
    ...o,
  };
  return { bump: b, signature: signDigest(by.device.secretKey, bumpDigest(b)) };
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof CustosError ? err.code : 'not a CustosError';
  }
  return undefined;
}

describe('the bump object', () => {
  it('has the digest sha256("custos/bump/v1\\n" || JCS(bump)), computed independently', () => {
    const b = bumpBy().bump;
    const independent = createHash('sha256')
      .update(`custos/bump/v1\n${canonicalize(b)}`, 'utf8')
      .digest('hex');
    expect(bumpDigest(b)).toBe(independent);
    expect(signedBump.parse(JSON.parse(JSON.stringify(bumpBy())))).toEqual(bumpBy());
  });

  it('refuses a zero or huge fee rate, an unknown field, a lifetime that ends before it starts', () => {
    const b = bumpBy().bump;
    expect(codeOf(() => bump.parse({ ...b, feeRate: '0' }))).toBe('INVALID_VALUE');
    expect(codeOf(() => bump.parse({ ...b, feeRate: '100001' }))).toBe('INVALID_VALUE');
    expect(codeOf(() => bump.parse({ ...b, feeRate: '012' }))).toBe('NON_CANONICAL_AMOUNT');
    expect(codeOf(() => bump.parse({ ...b, outputs: [] }))).toBe('UNKNOWN_FIELD');
    expect(codeOf(() => bump.parse({ ...b, expiresAt: b.createdAt }))).toBe('INVALID_VALUE');
  });
});

describe('checkBump', () => {
  const state = world.org.state;

  it("accepts the requester's own bump of its intent and returns its digest", () => {
    const b = bumpBy();
    expect(checkBump(state, b, intent.intent, now)).toEqual({ ok: true, value: bumpDigest(b.bump) });
  });

  it.each([
    ['another member (an approver)', () => bumpBy({}, world.org.approvers[0]), 'NOT_AUTHORIZED'],
    ['another intent', () => bumpBy({ intent: intentDigest(world.intent(5n).intent) }), 'NOT_A_REPLACEMENT'],
    [
      'a forged signature (the fee rate changed after signing)',
      () => ({ ...bumpBy(), bump: { ...bumpBy().bump, feeRate: '99' as Amount } }),
      'INTENT_SIGNATURE_INVALID',
    ],
    [
      'an unknown device',
      () => ({ ...bumpBy(), bump: { ...bumpBy().bump, device: 'nope' } }),
      'UNKNOWN_DEVICE',
    ],
    ['another organization', () => bumpBy({ org: intentDigest(intent.intent) }), 'WRONG_ORG'],
    ['an expired bump', () => bumpBy({ createdAt: now - 20 * MINUTE, expiresAt: now - MINUTE }), 'EXPIRED'],
    [
      'a bump dated in the future',
      () => bumpBy({ createdAt: now + 30 * MINUTE, expiresAt: now + 60 * MINUTE }),
      'NOT_YET_VALID',
    ],
    [
      'a bump that lives longer than an intent may',
      () => bumpBy({ expiresAt: now + 3 * 86_400_000 }),
      'LIFETIME_TOO_LONG',
    ],
  ])('refuses %s', (_what, make, code) => {
    expect(checkBump(state, make(), intent.intent, now)).toMatchObject({ ok: false, code });
  });

  it('refuses every bump while the organization is frozen', () => {
    const frozen = { ...state, frozen: { seq: 9, by: 'admin-1', reason: 'test', at: now } };
    expect(checkBump(frozen as typeof state, bumpBy(), intent.intent, now)).toMatchObject({
      ok: false,
      code: 'FROZEN',
    });
  });
});
