/**
 * Fee bumps in the coordinator's store, on SQLite and PostgreSQL: one bump
 * of an intent is signed at a time, kept by the database (migration 0009),
 * so two bumps requested at once on two requests or two coordinators cannot
 * both reach the signers.
 */
import { intentDigest, type SignedBump } from '@custos/core';
import { describe, expect, it } from 'vitest';
import { useBackends } from './backends.js';
import { codeOf, makeIntent } from './fixtures.js';

const { backends } = useBackends();

/** A stored bump's fields; the store keeps the signed body as it is given. */
function bump(intent: string, n: number) {
  return {
    id: `${String(n).repeat(64)}`.slice(0, 64) as never,
    intent: intent as never,
    signed: { bump: { feeRate: String(10 + n) } } as unknown as SignedBump,
    psbt: 'cHNidP8BAA==',
    txid: `${'f'.repeat(63)}${n}`,
    fee: 1000n + BigInt(n),
  };
}

describe.each(backends)('fee bumps on $name', (backend) => {
  it('keeps one bump of an intent in signing: a second is CONFLICT, the same one again is a retry, the next after it is done is taken', async () => {
    const { store } = await backend.fresh();
    const signed = makeIntent(1);
    await store.intents.insert(signed);
    const id = intentDigest(signed.intent);
    expect(await store.bumps.insert(bump(id, 1))).toBe(true);
    expect(await store.bumps.insert(bump(id, 1))).toBe(false);
    expect(await codeOf(store.bumps.insert(bump(id, 2)))).toBe('CONFLICT');
    // Two at once: exactly one is stored.
    const other = makeIntent(2);
    await store.intents.insert(other);
    const otherId = intentDigest(other.intent);
    const both = await Promise.allSettled([
      store.bumps.insert(bump(otherId, 3)),
      store.bumps.insert(bump(otherId, 4)),
    ]);
    expect(both.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    // Once the first is no longer signing, the next bump of the intent is taken.
    await store.bumps.move(bump(id, 1).id, 'signing', 'refused', { code: 'CONFLICT', message: 'test' });
    expect(await store.bumps.insert(bump(id, 2))).toBe(true);
  });
});
