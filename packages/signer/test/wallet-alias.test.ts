/**
 * Issue 8, item 2, through a real `custos signer run` process: governance
 * holds a second wallet over the first wallet's keys (the same xpubs
 * reordered, another descriptor text) with limits of its own. The first
 * wallet's daily limit is spent; a withdrawal from the second wallet that
 * spends the first wallet's coins is refused WALLET_ALIAS with a critical
 * alert and nothing signed, although every other check (policy, limits,
 * PSBT against the second descriptor) would pass. The coordinator here is a
 * stand-in that serves whatever governance it is given: the signer does not
 * rely on the coordinator's own alias check.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildPsbt,
  changeIndexLimit,
  descriptorKeyOf,
  formatDescriptor,
  parseDescriptor,
  verifyPsbt,
  walletFromKeys,
} from '@custos/bitcoin';
import {
  type Amount,
  applyGovernance,
  type GovernanceState,
  type LaterKind,
  type Policy,
  type BitcoinWallet as Wallet,
} from '@custos/core';
import type { FakeCoordinator } from '@custos/test-support/fake-coordinator';
import { propose, unwrap } from '@custos/test-support/org';
import {
  initKeystore,
  type KeystoreInfo,
  type RunningSigner,
  waitForOutput,
} from '@custos/test-support/signer-process';
import { makeWorld, type World } from '@custos/test-support/world';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignerStore } from '../src/store.js';
import { startStand, stopStand } from './support/stand.js';

const DAY = 86_400_000;
let dir: string;
let keystore: KeystoreInfo;
let world: World;
let coordinator: FakeCoordinator;
let signer: RunningSigner;
let state: GovernanceState;
let twin: Wallet;

function bothWallets(p: Policy): Policy {
  const limit = (wallet: string) => ({
    id: `${wallet}-daily`,
    scope: 'wallet-asset' as const,
    wallet,
    asset: 'BTC',
    windowMs: DAY,
    max: '100000000' as Amount,
  });
  return {
    ...p,
    rules: p.rules.map((r) => ({ ...r, match: { ...r.match, wallets: ['btc-main', 'btc-twin'] } })),
    limits: [limit('btc-main'), limit('btc-twin')],
    feeCaps: [
      { wallet: 'btc-main', asset: 'BTC', maxFee: '100000' as Amount, maxFeeRate: '100' as Amount },
      { wallet: 'btc-twin', asset: 'BTC', maxFee: '100000' as Amount, maxFeeRate: '100' as Amount },
    ],
  };
}

function govern<K extends LaterKind>(kind: K, body: Parameters<typeof propose<K>>[2]): void {
  const signed = propose(state, kind, body, world.org.admins.slice(0, 2), Date.now());
  state = unwrap(applyGovernance(state, signed, Date.now()));
  world.governance.push(signed);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custos-signer-alias-'));
  keystore = await initKeystore(dir, 'signer-1');
  // No loosening delay, so the second wallet and its policy count at once: the alias check must not lean on a delay.
  world = makeWorld({ firstKey: keystore.descriptorKey, delayMs: 0 });
  world.clock.now = Date.now();
  state = world.org.state;
  const keys = [keystore.descriptorKey, ...world.keys.slice(1).map((k) => descriptorKeyOf(k, 'regtest'))];
  twin = {
    ...world.wallet,
    id: 'btc-twin',
    label: 'Twin (the same keys reordered)',
    descriptor: formatDescriptor(walletFromKeys(2, [keys[2]!, keys[0]!, keys[1]!], 'regtest')),
  };
  expect(twin.descriptor).not.toBe(world.wallet.descriptor);
  govern('wallet.add', twin);
  govern('policy.set', { policy: bothWallets(world.org.policy) });
  ({ coordinator, signer } = await startStand(dir, keystore, world));
});

afterAll(() => stopStand(signer, coordinator, dir));

describe('a wallet that aliases an earlier one (issue 8, item 2)', () => {
  it('the first wallet spends its limit; the twin over the same keys is refused WALLET_ALIAS, critical, nothing signed', async () => {
    world.clock.now = Date.now();
    // 0.9 BTC of btc-main's 1 BTC a day: signed.
    const first = world.withdrawal(90_000_000n, { id: 'job-main' });
    coordinator.push(
      world.job(first.intent, world.approve(first.intent), first.built.psbt, { id: 'job-main', state }),
    );
    const [signed] = await coordinator.waitForResults(1);
    expect(signed!.receipt).toMatchObject({ job: 'job-main', outcome: 'signed' });

    // 0.5 BTC more from btc-main is past its limit.
    const over = world.intent(50_000_000n);
    const overPsbt = world.build(over).psbt;
    coordinator.push(world.job(over, world.approve(over), overPsbt, { id: 'job-over', state }));
    const results = await coordinator.waitForResults(2);
    expect(results[1]!.receipt).toMatchObject({
      job: 'job-over',
      outcome: 'refused',
      code: 'LIMIT_EXCEEDED',
    });

    // The same 0.5 BTC through the twin, spending coins at btc-main's own addresses.
    const intent = world.intent(50_000_000n, { wallet: 'btc-twin' });
    const twinDescriptor = parseDescriptor(twin.descriptor, 'regtest');
    if (!twinDescriptor.ok) throw new Error(twinDescriptor.message);
    const coins = world.utxos([50_100_000n]);
    const built = buildPsbt({
      wallet: twinDescriptor.value,
      utxos: coins,
      to: intent.intent.to,
      amount: 50_000_000n,
      feeRate: 5n,
      changeIndex: 0,
    });
    if (!built.ok) throw new Error(built.message);
    // The hole: the PSBT is a perfectly good spend of btc-main's coins under the twin's descriptor...
    expect(
      verifyPsbt(
        built.value.psbt,
        intent.intent,
        twinDescriptor.value,
        { maxFee: 100_000n, maxFeeRate: 100n },
        changeIndexLimit(-1),
      ).ok,
    ).toBe(true);
    expect(built.value.inputs.map((i) => i.branch)).toEqual([0]);
    // ...and the twin's limit is untouched.
    coordinator.push(world.job(intent, world.approve(intent), built.value.psbt, { id: 'job-twin', state }));
    const all = await coordinator.waitForResults(3);
    const refused = all[2]!;
    expect(refused.receipt).toMatchObject({ job: 'job-twin', outcome: 'refused', code: 'WALLET_ALIAS' });
    expect(refused.psbt).toBeUndefined();
    expect(refused.alert).toEqual({ severity: 'critical', code: 'WALLET_ALIAS' });
    expect((refused as { message?: string }).message).toContain('btc-main');
    await waitForOutput(signer, '"job":"job-twin"');
    expect(signer.output()).toMatch(/"job":"job-twin".*"code":"WALLET_ALIAS".*"severity":"critical"/);
  });

  it('its ledger holds the one signed withdrawal from btc-main and nothing for the twin', async () => {
    signer.child.kill('SIGTERM');
    expect(await signer.exited).toBe(0);
    const store = new SignerStore(join(dir, 'signer-1.db'));
    try {
      expect(store.allLedger().map((r) => r.wallet)).toEqual(['btc-main']);
      expect(store.decisions().map((d) => [d.job, d.outcome, d.code])).toEqual([
        ['job-main', 'signed', null],
        ['job-over', 'refused', 'LIMIT_EXCEEDED'],
        ['job-twin', 'refused', 'WALLET_ALIAS'],
      ]);
    } finally {
      store.close();
    }
  });
});
