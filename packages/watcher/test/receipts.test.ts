/**
 * receipts.ts: a spend is explained by the signers' own receipts, checked by
 * their identity keys from governance, the wallet's threshold of distinct
 * signers naming the transaction; anything the coordinator could have
 * written itself counts for nothing.
 */
import {
  type Digest,
  ed25519PublicKey,
  fromHex,
  type GovernanceState,
  type Receipt,
  receiptDigest,
  signBytes,
} from '@custos/core';
import { secretKeyFor } from '@custos/test-support/org';
import { makeWorld } from '@custos/test-support/world';
import { describe, expect, it } from 'vitest';
import { type ReceiptsPage, receiptsPage, signaturesNeeded, signersOf } from '../src/receipts.js';

const world = makeWorld();
const secret2 = secretKeyFor('receipts-test', 'signer-2');
const state: GovernanceState = {
  ...world.org.state,
  signers: new Map([
    ['signer-1', world.org.signer.record],
    ['signer-2', { id: 'signer-2', publicKey: ed25519PublicKey(secret2) }],
  ]),
};
const secrets: Record<string, Uint8Array> = { 'signer-1': world.org.signer.secretKey, 'signer-2': secret2 };
const INTENT = 'a'.repeat(64) as Digest;
const TXID = 'b'.repeat(64);

function signed(signer: string, over: Partial<Receipt> = {}, key = secrets[signer]!) {
  const receipt: Receipt = {
    v: 1,
    signer,
    job: `job-${signer}`,
    intent: INTENT,
    txid: TXID,
    outcome: 'signed',
    code: null,
    governanceSeq: 0,
    governanceHead: state.head,
    at: 1 as never,
    ...over,
  } as Receipt;
  return { receipt, signature: signBytes(key, fromHex(receiptDigest(receipt))) };
}

const page = (...receipts: ReturnType<typeof signed>[]): ReceiptsPage => ({ receipts });

describe('receipts', () => {
  it('counts each governed signer whose verified receipt names the txid and the intent, once', () => {
    const r = signersOf(
      state,
      page(signed('signer-1'), signed('signer-2'), signed('signer-1')),
      INTENT,
      TXID,
    );
    expect(r).toEqual({ signers: ['signer-1', 'signer-2'], rejected: 0 });
  });

  it('counts nothing the coordinator could forge: another txid, another intent, a refusal, a bad signature, an unknown signer', () => {
    const forged = signed('signer-2');
    const r = signersOf(
      state,
      page(
        signed('signer-1', { txid: 'c'.repeat(64) as Receipt['txid'] }),
        signed('signer-1', { intent: 'd'.repeat(64) as Digest }),
        signed('signer-1', { outcome: 'refused', code: 'LIMIT_EXCEEDED', txid: null }),
        { receipt: { ...forged.receipt, at: 2 as never }, signature: forged.signature },
        signed('signer-2', {}, secrets['signer-1']!),
        signed('signer-9', {}, secrets['signer-1']!),
      ),
      INTENT,
      TXID,
    );
    expect(r).toEqual({ signers: [], rejected: 3 });
  });

  it("needs the wallet's threshold (the descriptor's m); a wallet governance does not name explains nothing", () => {
    const wallet = [...state.wallets.keys()][0]!;
    const m = Number(
      /sortedmulti\((\d+),/.exec((state.wallets.get(wallet) as { descriptor: string }).descriptor)![1],
    );
    expect(m).toBeGreaterThan(1);
    expect(signaturesNeeded(state, [wallet])).toBe(m);
    expect(signaturesNeeded(state, [wallet, 'no-such-wallet'])).toBe(Number.POSITIVE_INFINITY);
  });

  it('reads the coordinator’s page strictly', () => {
    const good = page(signed('signer-1'));
    expect(receiptsPage.parse(JSON.parse(JSON.stringify(good)))).toEqual(good);
    expect(() => receiptsPage.parse({ receipts: [{ receipt: good.receipts[0]!.receipt }] })).toThrow();
    expect(() => receiptsPage.parse({ receipts: [{ ...good.receipts[0], extra: 1 }] })).toThrow();
  });
});
