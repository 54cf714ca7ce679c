import { describe, expect, it } from 'vitest';
import { feeCap, feeCapsFor, type Policy } from '../src/index.js';

function policyWith(caps: { asset: string; wallet?: string; maxFee: string; maxFeeRate: string }[]): Policy {
  return {
    v: 1,
    rules: [],
    limits: [],
    feeCaps: caps.map((c) => feeCap.parse(c)),
    lookalike: { prefix: 4, suffix: 4, action: 'deny' },
  } as unknown as Policy;
}

const transfer = { wallet: 'hot', asset: 'BTC' };

describe('feeCapsFor', () => {
  it('is null when a policy in force sets no cap for the asset: a missing cap is never "no limit"', () => {
    expect(feeCapsFor([policyWith([])], transfer)).toBeNull();
    expect(feeCapsFor([policyWith([{ asset: 'ETH', maxFee: '1', maxFeeRate: '1' }])], transfer)).toBeNull();
    expect(
      feeCapsFor([policyWith([{ asset: 'BTC', maxFee: '10', maxFeeRate: '2' }]), policyWith([])], transfer),
    ).toBeNull();
  });

  it('prefers a cap naming the wallet over one for the asset alone', () => {
    const p = policyWith([
      { asset: 'BTC', maxFee: '100', maxFeeRate: '5' },
      { asset: 'BTC', wallet: 'hot', maxFee: '500', maxFeeRate: '50' },
      { asset: 'BTC', wallet: 'cold', maxFee: '1', maxFeeRate: '1' },
    ]);
    expect(feeCapsFor([p], transfer)).toEqual({ maxFee: 500n, maxFeeRate: 50n });
    expect(feeCapsFor([p], { wallet: 'other', asset: 'BTC' })).toEqual({ maxFee: 100n, maxFeeRate: 5n });
  });

  it('takes the tightest of each cap across every policy in force (old and new during a delay)', () => {
    const a = policyWith([{ asset: 'BTC', maxFee: '1000', maxFeeRate: '3' }]);
    const b = policyWith([{ asset: 'BTC', maxFee: '200', maxFeeRate: '9' }]);
    expect(feeCapsFor([a, b], transfer)).toEqual({ maxFee: 200n, maxFeeRate: 3n });
  });
});
