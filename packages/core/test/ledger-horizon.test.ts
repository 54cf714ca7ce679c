import { describe, expect, it } from 'vitest';
import { ledgerHorizon, type Policy, rollingLimit } from '../src/index.js';

function policyWith(windows: number[]): Policy {
  return {
    v: 1,
    rules: [],
    limits: windows.map((windowMs, i) =>
      rollingLimit.parse({ id: `l${i}`, scope: 'wallet-asset', asset: 'BTC', max: '1000', windowMs }),
    ),
    feeCaps: [],
    lookalike: { prefix: 4, suffix: 4, action: 'deny' },
  } as unknown as Policy;
}

describe('ledgerHorizon', () => {
  it('is the start of the longest window of any policy in force, null without limits', () => {
    expect(ledgerHorizon([policyWith([])], 10_000)).toBeNull();
    expect(ledgerHorizon([policyWith([1000, 3000]), policyWith([2000])], 10_000)).toBe(7000);
  });
});
