/**
 * Internal transfers (issue 13) through a real signer process, its jobs
 * handed straight to it (a hostile coordinator builds and queues whatever it
 * likes). The organization pays from btc-main (whose first key is this
 * process's keystore) to btc-hot, a second governed wallet, under a rule
 * that allows by wallet (`destination: {kind: 'wallets'}`).
 *
 * The signer proves the intent's `toWallet` claim itself, deriving btc-hot's
 * receive address from the governed descriptor: the honest transfer is
 * signed; an intent signed with the claim but the attacker's address in `to`
 * (its PSBT consistently paying the attacker, so every other check passes)
 * is refused DESTINATION_NOT_WALLET with nothing signed, as is the address of
 * another receive index than the one claimed; the offline signer (`custos
 * signer offline` on a job file) refuses the forged claim the same way.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatDescriptor, walletReceiveAddress } from '@custos/bitcoin';
import {
  type Address,
  applyGovernance,
  type BitcoinWallet,
  type GovernanceState,
  OFFLINE_JOB_KIND,
  offlineResultFile,
  type PolicyRule,
  parseJson,
} from '@custos/core';
import type { FakeCoordinator } from '@custos/test-support/fake-coordinator';
import { propose, unwrap, WALLET_ID } from '@custos/test-support/org';
import { ATTACKER, otherWallet } from '@custos/test-support/psbt-fixtures';
import {
  initKeystore,
  type KeystoreInfo,
  PASSWORD,
  type RunningSigner,
  signerCli,
} from '@custos/test-support/signer-process';
import { makeWorld, type World } from '@custos/test-support/world';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignerStore } from '../src/store.js';
import { startStand, stopStand } from './support/stand.js';

const HOT: BitcoinWallet = {
  id: 'btc-hot',
  label: 'Hot BTC',
  chain: 'bitcoin:regtest',
  assets: ['BTC'],
  kind: 'bitcoin-wsh-sortedmulti',
  descriptor: formatDescriptor(otherWallet, 0),
};
const REFILL: PolicyRule = {
  id: 'refill',
  match: { destination: { kind: 'wallets', wallets: ['btc-hot'] }, wallets: [WALLET_ID] },
  action: 'allow',
  approvals: [{ m: 2, role: 'approver' }],
};

let dir: string;
let keystore: KeystoreInfo;
let world: World;
let state: GovernanceState;
let coordinator: FakeCoordinator;
let signer: RunningSigner;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custos-signer-internal-'));
  keystore = await initKeystore(dir, 'signer-1');
  // No delay: btc-hot, added by governance, is active as soon as the signer sees it.
  world = makeWorld({
    firstKey: keystore.descriptorKey,
    delayMs: 0,
    policy: (p) => ({ ...p, rules: [REFILL, ...p.rules] }),
  });
  world.clock.now = Date.now();
  const add = propose(world.org.state, 'wallet.add', HOT, world.org.admins.slice(0, 2));
  state = unwrap(applyGovernance(world.org.state, add, Date.now()));
  world.governance.push(add);
  ({ coordinator, signer } = await startStand(dir, keystore, world));
});

afterAll(() => stopStand(signer, coordinator, dir));

const hotAddress = (index: number) => unwrap(walletReceiveAddress(HOT, index)) as Address;

describe('an internal transfer through the signer process', () => {
  it('signs btc-main → btc-hot when to is btc-hot’s receive address at the claimed index', async () => {
    const intent = world.intent(500_000n, { to: hotAddress(5), toWallet: { wallet: 'btc-hot', index: 5 } });
    const built = world.build(intent, { utxos: world.utxos([700_000n]) });
    coordinator.push(world.job(intent, world.approve(intent), built.psbt, { id: 'job-refill', state }));
    const [result] = await coordinator.waitForResults(1);
    expect(result!.receipt).toMatchObject({ job: 'job-refill', outcome: 'signed', txid: built.txid });
  });

  it("THREATS 6: refuses the claim toWallet btc-hot with the attacker's to, or another index's address: DESTINATION_NOT_WALLET, nothing signed, a critical alert", async () => {
    const forged = world.intent(500_000n, {
      to: ATTACKER as Address,
      toWallet: { wallet: 'btc-hot', index: 5 },
    });
    const shifted = world.intent(500_000n, { to: hotAddress(6), toWallet: { wallet: 'btc-hot', index: 5 } });
    for (const [id, intent] of [
      ['job-forged', forged],
      ['job-shifted', shifted],
    ] as const) {
      // The PSBT pays exactly the intent's `to`: only the claim is false.
      const built = world.build(intent, { utxos: world.utxos([700_000n]) });
      coordinator.push(world.job(intent, world.approve(intent), built.psbt, { id, state }));
    }
    const results = (await coordinator.waitForResults(3)).slice(1);
    for (const id of ['job-forged', 'job-shifted']) {
      const r = results.find((x) => x.receipt.job === id);
      expect(r?.receipt).toMatchObject({ job: id, outcome: 'refused', code: 'DESTINATION_NOT_WALLET' });
      expect(r?.psbt).toBeUndefined();
      // The coordinator refuses such a claim at the door: one reaching a signer was let through.
      expect(r?.alert).toEqual({ severity: 'critical', code: 'DESTINATION_NOT_WALLET' });
    }
  });

  it('is refused the same by the offline signer (`custos signer offline`, a job file): DESTINATION_NOT_WALLET, no result PSBT', async () => {
    writeFileSync(join(dir, 'password'), `${PASSWORD}\n`, { mode: 0o600 });
    writeFileSync(
      join(dir, 'offline.json'),
      JSON.stringify({
        id: 'signer-1',
        genesis: world.org.orgId,
        keystore: 'signer-1.key',
        database: 'offline.db',
        chains: ['bitcoin:regtest'],
        passwordFile: 'password',
      }),
    );
    const forged = world.intent(400_000n, {
      to: ATTACKER as Address,
      toWallet: { wallet: 'btc-hot', index: 2 },
    });
    const built = world.build(forged, { utxos: world.utxos([700_000n]) });
    const job = world.job(forged, world.approve(forged), built.psbt, { id: 'job-offline-forged', state });
    writeFileSync(
      join(dir, 'job-offline.json'),
      JSON.stringify({ v: 1, kind: OFFLINE_JOB_KIND, job, governance: world.governance }),
    );
    const r = await signerCli([
      'offline',
      '--config',
      join(dir, 'offline.json'),
      '--job',
      join(dir, 'job-offline.json'),
      '--out',
      join(dir, 'result-offline.json'),
    ]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('DESTINATION_NOT_WALLET');
    const result = offlineResultFile.parse(
      parseJson(readFileSync(join(dir, 'result-offline.json'), 'utf8')),
    ).result;
    expect(result.receipt).toMatchObject({ outcome: 'refused', code: 'DESTINATION_NOT_WALLET', txid: null });
    expect(result.psbt).toBeUndefined();
  }, 60_000);

  it('keeps only the honest transfer in its ledger', async () => {
    signer.child.kill('SIGTERM');
    expect(await signer.exited).toBe(0);
    const store = new SignerStore(join(dir, 'signer-1.db'));
    try {
      expect(store.allLedger().map((r) => [r.to, r.amount])).toEqual([[hotAddress(5), '500000']]);
      expect(store.decisions().map((d) => [d.job, d.outcome, d.code])).toEqual([
        ['job-refill', 'signed', null],
        ['job-forged', 'refused', 'DESTINATION_NOT_WALLET'],
        ['job-shifted', 'refused', 'DESTINATION_NOT_WALLET'],
      ]);
    } finally {
      store.close();
    }
  });
});
