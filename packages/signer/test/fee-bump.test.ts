/**
 * The signer's rule for fee bumps (issue 13, BIP 125), in process over its own
 * SQLite ledger: a replacement is signed only for an intent this signer
 * signed, by its requester's bump, when it conflicts with every transaction
 * signed for the intent (the original and earlier replacements) and pays the
 * payees exactly as before; a second bump must conflict with and outbid the
 * first replacement too; the same replacement again gets the stored answer;
 * the amount counts once in the rolling limits; anything else for the intent
 * without a bump is still DUPLICATE_INTENT; the policy is not evaluated again
 * (an expired intent can be bumped); a bump expired, dated in the future, of
 * another intent, or with a forged signature is refused.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildPsbt, buildReplacement } from '@custos/bitcoin';
import {
  type Amount,
  type Bump,
  bumpDigest,
  type Hex,
  intentDigest,
  type SignedBump,
  type SignedIntent,
  type SignerJob,
  type SignerResult,
  signDigest,
} from '@custos/core';
import { MemorySource } from '@custos/test-support/memory-source';
import { type EditablePsbt, editPsbt, utxosOf } from '@custos/test-support/psbt-fixtures';
import { COLD_STORAGE, MINUTE, makeWorld, type World } from '@custos/test-support/world';
import { RawPSBTV0 } from '@scure/btc-signer/psbt.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Signer } from '../src/signer.js';
import { SignerStore } from '../src/store.js';

let dir: string;
let store: SignerStore;
let world: World;
let signer: Signer;
let source: MemorySource;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'custos-signer-bump-'));
  store = new SignerStore(join(dir, 'signer.db'));
  world = makeWorld();
  signer = Signer.init(
    {
      id: 'signer-1',
      identitySecret: world.org.signer.secretKey,
      key: world.keys[0]!,
      pinnedGenesis: world.org.orgId,
      chains: ['bitcoin:regtest'],
      store,
      clock: () => world.clock.now,
    },
    world.org.genesis,
  );
  source = new MemorySource(world.governance);
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
function bumpOf(
  intent: SignedIntent,
  feeRate: bigint,
  o: Partial<Bump> = {},
  by = world.org.requester,
): SignedBump {
  const b: Bump = {
    v: 1,
    org: world.org.orgId,
    intent: intentDigest(intent.intent),
    feeRate: feeRate.toString() as Amount,
    requester: by.id,
    device: by.device.id,
    nonce: (n++).toString(16).padStart(32, 'c') as Hex,
    createdAt: world.clock.now - 1000,
    expiresAt: world.clock.now + 10 * MINUTE,
    ...o,
  };
  return { bump: b, signature: signDigest(by.device.secretKey, bumpDigest(b)) };
}

function jobOf(intent: SignedIntent, psbt: Uint8Array, bump?: SignedBump): SignerJob {
  const job = world.job(intent, world.approve(intent), psbt);
  return bump === undefined ? job : { ...job, bump };
}

function expectRefused(r: SignerResult, code: string): void {
  expect(r.receipt).toMatchObject({ outcome: 'refused', code, txid: null });
  expect(r.psbt).toBeUndefined();
  expect(store.decisions().at(-1)).toMatchObject({ job: r.receipt.job, outcome: 'refused', code });
}

function replacement(psbt: Uint8Array, feeRate: bigint) {
  const r = buildReplacement(psbt, world.descriptor, feeRate);
  if (!r.ok) throw new Error(`${r.code} ${r.message}`);
  return r.value;
}

describe('fee bumps at the signer', () => {
  it('signs a chain of replacements, each conflicting with and outbidding all before it; the same one again gets the stored answer', async () => {
    const { job, intent, built } = world.withdrawal(100_000n);
    expect((await signer.handle(job, source)).receipt.outcome).toBe('signed');

    const first = replacement(built.psbt, 10n);
    const one = await signer.handle(jobOf(intent, first.psbt, bumpOf(intent, 10n)), source);
    expect(one.receipt).toMatchObject({ outcome: 'signed', txid: first.txid });
    expect(one.psbt).toBeDefined();
    // The same replacement again (another bump object, another job): the stored answer, nothing new.
    const again = await signer.handle(jobOf(intent, first.psbt, bumpOf(intent, 10n)), source);
    expect(again).toEqual(one);

    // A second bump must beat the first replacement, not only the original.
    const tooLow = replacement(built.psbt, 8n);
    expectRefused(
      await signer.handle(jobOf(intent, tooLow.psbt, bumpOf(intent, 8n)), source),
      'NOT_A_REPLACEMENT',
    );
    const second = replacement(first.psbt, 20n);
    const two = await signer.handle(jobOf(intent, second.psbt, bumpOf(intent, 20n)), source);
    expect(two.receipt).toMatchObject({ outcome: 'signed', txid: second.txid });

    expect(store.replacementsFor(intentDigest(intent.intent)).map((r) => [r.txid, r.replaces])).toEqual([
      [first.txid, built.txid],
      [second.txid, built.txid],
    ]);
    expect(store.allLedger()).toHaveLength(1);
  });

  it('refuses a replacement that spends none of the inputs of an earlier replacement (both could confirm)', async () => {
    // Coins a, b, c, d of 0.0008 BTC. The original spends {a, b}; a first replacement {a, c}
    // conflicts with it through a. A second one spending {b, d} conflicts with the original but not
    // with the first replacement: both could confirm, so it is refused; {a, d} conflicts with both.
    const [a, b, c, d] = utxosOf(
      [0, 1, 2, 3].map((index) => ({ branch: 0 as const, index, value: 80_000n })),
      77,
    );
    const intent = world.intent(150_000n);
    const build = (coins: (typeof a)[], feeRate: bigint) => {
      const r = buildPsbt({
        wallet: world.descriptor,
        utxos: coins.map((x) => x!),
        to: intent.intent.to,
        amount: 150_000n,
        feeRate,
        changeIndex: 0,
      });
      if (!r.ok) throw new Error(r.message);
      return r.value;
    };
    expect((await signer.handle(jobOf(intent, build([a, b], 2n).psbt), source)).receipt.outcome).toBe(
      'signed',
    );
    const first = build([a, c], 10n);
    expect(
      (await signer.handle(jobOf(intent, first.psbt, bumpOf(intent, 10n)), source)).receipt.outcome,
    ).toBe('signed');
    const r = await signer.handle(jobOf(intent, build([b, d], 20n).psbt, bumpOf(intent, 20n)), source);
    expectRefused(r, 'NOT_A_REPLACEMENT');
    expect(r.message).toContain(`spends none of the inputs of ${first.txid}`);
    expect(r.alert).toMatchObject({ severity: 'critical', code: 'NOT_A_REPLACEMENT' });
    const both = build([a, d], 20n);
    const ok = await signer.handle(jobOf(intent, both.psbt, bumpOf(intent, 20n)), source);
    expect(ok.receipt).toMatchObject({ outcome: 'signed', txid: both.txid });
    expect(store.replacementsFor(intentDigest(intent.intent)).map((x) => x.txid)).toEqual([
      first.txid,
      both.txid,
    ]);
  });

  it('bumps a batch payout: every output paid as before, in the same order', async () => {
    // Three payments to the book's cold storage (a batch may pay one destination more than once).
    const outputs = [0, 1, 2].map((k) => ({ to: COLD_STORAGE, amount: `${30_000 + k}` as Amount }));
    const intent = world.intent(90_003n, { to: outputs[0]!.to, outputs });
    const built = world.build(intent, { feeRate: 2n });
    expect((await signer.handle(jobOf(intent, built.psbt), source)).receipt.outcome).toBe('signed');
    const r = replacement(built.psbt, 15n);
    const res = await signer.handle(jobOf(intent, r.psbt, bumpOf(intent, 15n)), source);
    expect(res.receipt).toMatchObject({ outcome: 'signed', txid: r.txid });
  });

  it('refuses a replacement that adds a coin of the wallet and gives it to the fee (more than the bump asks)', async () => {
    const intent = world.intent(100_000n);
    const [a, extra] = utxosOf(
      [
        { branch: 0, index: 0, value: 150_000n },
        { branch: 0, index: 1, value: 60_000n },
      ],
      91,
    );
    const built = world.build(intent, { utxos: [a!], feeRate: 2n });
    expect((await signer.handle(jobOf(intent, built.psbt), source)).receipt.outcome).toBe('signed');
    const r = replacement(built.psbt, 10n);
    // The coordinator slips in a second coin of the wallet; the change stays as it was, so the whole coin is fee.
    const padded = editPsbt(r.psbt, (p) => {
      const extraPsbt = world.build(world.intent(10_000n), { utxos: [extra!], feeRate: 2n }).psbt;
      const donor = RawPSBTV0.decode(extraPsbt) as unknown as EditablePsbt;
      p.global.unsignedTx.inputs.push(donor.global.unsignedTx.inputs[0]!);
      p.inputs.push(donor.inputs[0]!);
    });
    const res = await signer.handle(jobOf(intent, padded, bumpOf(intent, 10n)), source);
    expectRefused(res, 'FEE_TOO_HIGH');
    expect(res.message).toMatch(/more than the 10 sat\/vB the bump asks/);
  });

  it('counts the amount once: a bumped 0.6 BTC leaves room for another 0.4 BTC of the 1 BTC daily limit', async () => {
    const { job, intent, built } = world.withdrawal(60_000_000n);
    expect((await signer.handle(job, source)).receipt.outcome).toBe('signed');
    const r = replacement(built.psbt, 10n);
    expect((await signer.handle(jobOf(intent, r.psbt, bumpOf(intent, 10n)), source)).receipt.outcome).toBe(
      'signed',
    );
    const next = world.withdrawal(40_000_000n);
    expect((await signer.handle(next.job, source)).receipt.outcome).toBe('signed');
    const over = world.withdrawal(1_000n);
    expectRefused(await signer.handle(over.job, source), 'LIMIT_EXCEEDED');
  });

  it('keeps one intent, one transaction for everything without a bump (DUPLICATE_INTENT)', async () => {
    const { job, intent, built } = world.withdrawal(100_000n);
    await signer.handle(job, source);
    const r = replacement(built.psbt, 10n);
    expectRefused(await signer.handle(jobOf(intent, r.psbt), source), 'DUPLICATE_INTENT');
  });

  it('bumps an intent that has expired since it was signed (the policy is not judged again)', async () => {
    const { job, intent, built } = world.withdrawal(100_000n);
    await signer.handle(job, source);
    world.clock.now = intent.intent.expiresAt + MINUTE;
    const r = replacement(built.psbt, 10n);
    const res = await signer.handle(jobOf(intent, r.psbt, bumpOf(intent, 10n)), source);
    expect(res.receipt).toMatchObject({ outcome: 'signed', txid: r.txid });
  });

  it('refuses a bump expired, dated in the future, naming another intent, by another member, or with a forged signature', async () => {
    const { job, intent, built } = world.withdrawal(100_000n);
    await signer.handle(job, source);
    const r = replacement(built.psbt, 10n);
    const other = world.intent(5_000n);
    const cases: [SignedBump, string][] = [
      [
        bumpOf(intent, 10n, {
          createdAt: world.clock.now - 20 * MINUTE,
          expiresAt: world.clock.now - MINUTE,
        }),
        'EXPIRED',
      ],
      [
        bumpOf(intent, 10n, {
          createdAt: world.clock.now + 60 * MINUTE,
          expiresAt: world.clock.now + 90 * MINUTE,
        }),
        'NOT_YET_VALID',
      ],
      [bumpOf(intent, 10n, { intent: intentDigest(other.intent) }), 'NOT_A_REPLACEMENT'],
      [bumpOf(intent, 10n, {}, world.org.approvers[0]), 'NOT_AUTHORIZED'],
      [
        { ...bumpOf(intent, 10n), bump: { ...bumpOf(intent, 10n).bump, feeRate: '11' as Amount } },
        'INTENT_SIGNATURE_INVALID',
      ],
    ];
    for (const [bump, code] of cases)
      expectRefused(await signer.handle(jobOf(intent, r.psbt, bump), source), code);
    // The requester asked 5 sat/vB; a replacement at 10 is more than the bump allows.
    expectRefused(await signer.handle(jobOf(intent, r.psbt, bumpOf(intent, 5n)), source), 'FEE_TOO_HIGH');
    expect(store.replacementsFor(intentDigest(intent.intent))).toEqual([]);
  });
});
