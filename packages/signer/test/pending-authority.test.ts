/**
 * Issue 8, items 1 and 3, through a real `custos signer run` process and a
 * coordinator stand-in that serves whatever it is told (a hostile or broken
 * coordinator skips its own checks):
 * - item 1: a stolen admin quorum gives a requester and two approvers new
 *   devices, and adds a new approver member, then withdraws at once. The
 *   signer counted the delay from when *it* first saw those entries, so the
 *   new devices count for nothing: DEVICE_NOT_ACTIVE for the intent,
 *   approvals not counted (QUORUM_NOT_MET); a new wallet spends nothing
 *   (WALLET_NOT_ACTIVE).
 * - item 3: an intent or approvals valid for ten years are refused
 *   (LIFETIME_TOO_LONG; an approval that lives too long is not counted).
 * Each refusal: its code in a signed receipt, no partial signature, no ledger
 * row, and the decision recorded in the signer's own store.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatDescriptor } from '@custos/bitcoin';
import {
  type Approval,
  applyGovernance,
  approvalDigest,
  type GovernanceState,
  intentDigest,
  type LaterKind,
  type SignedApproval,
  type SignedIntent,
  type SignerResult,
  signDigest,
} from '@custos/core';
import type { FakeCoordinator } from '@custos/test-support/fake-coordinator';
import {
  type DeviceKey,
  makeDevice,
  makePerson,
  type Person,
  propose,
  unwrap,
} from '@custos/test-support/org';
import { otherWallet } from '@custos/test-support/psbt-fixtures';
import { initKeystore, type KeystoreInfo, type RunningSigner } from '@custos/test-support/signer-process';
import { makeWorld, type World } from '@custos/test-support/world';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignerStore } from '../src/store.js';
import { startStand, stopStand } from './support/stand.js';

const YEAR = 365 * 86_400_000;
let dir: string;
let keystore: KeystoreInfo;
let world: World;
let coordinator: FakeCoordinator;
let signer: RunningSigner;
let state: GovernanceState;
let seen = 0;

const newcomer = makePerson('custos-test', 'approver-new', ['approver']);
let requesterDevice: DeviceKey;
let approverDevices: DeviceKey[];

function govern<K extends LaterKind>(kind: K, body: Parameters<typeof propose<K>>[2]): void {
  const signed = propose(state, kind, body, world.org.admins.slice(0, 2), Date.now());
  state = unwrap(applyGovernance(state, signed, Date.now()));
  world.governance.push(signed);
}

function signIntentWith(intent: SignedIntent, device: DeviceKey): SignedIntent {
  const i = { ...intent.intent, device: device.id };
  return { intent: i, signature: signDigest(device.secretKey, intentDigest(i)) };
}

function approveWith(
  intent: SignedIntent,
  voters: readonly { member: string; device: DeviceKey }[],
  o: Partial<Approval> = {},
): SignedApproval[] {
  const digest = intentDigest(intent.intent);
  return voters.map(({ member, device }) => {
    const a: Approval = {
      v: 1,
      intent: digest,
      approver: member,
      device: device.id,
      decision: 'approve',
      at: Date.now() - 500,
      expiresAt: Date.now() + 3_600_000,
      ...o,
    };
    return { approval: a, signature: signDigest(device.secretKey, approvalDigest(a)) };
  });
}

async function serve(
  id: string,
  intent: SignedIntent,
  approvals: readonly SignedApproval[],
  wallet?: string,
): Promise<SignerResult> {
  world.clock.now = Date.now();
  const built = world.build(intent);
  coordinator.push(world.job(intent, approvals, built.psbt, { id, state }));
  seen++;
  const results = await coordinator.waitForResults(seen);
  const result = results.find((r) => r.receipt.job === id);
  if (result === undefined) throw new Error(`no result for ${id}${wallet ?? ''}`);
  return result;
}

function expectRefused(result: SignerResult, code: string): void {
  expect(result.receipt).toMatchObject({ outcome: 'refused', code });
  expect(result.psbt).toBeUndefined();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custos-signer-pending-'));
  keystore = await initKeystore(dir, 'signer-1');
  // The default loosening delay: one day, counted by the signer from when it first sees each entry.
  world = makeWorld({ firstKey: keystore.descriptorKey });
  world.clock.now = Date.now();
  state = world.org.state;
  const requester = world.org.requester;
  const [ap1, ap2] = world.org.approvers as [Person, Person];
  requesterDevice = makeDevice('stolen-quorum', requester.id, `${requester.id}-attacker`);
  approverDevices = [ap1, ap2].map((p) => makeDevice('stolen-quorum', p.id, `${p.id}-attacker`));
  const add = (member: string, d: DeviceKey) =>
    govern('device.add', { member, device: { id: d.id, kind: 'ed25519', publicKey: d.publicKey } });
  add(requester.id, requesterDevice);
  add(ap1.id, approverDevices[0]!);
  add(ap2.id, approverDevices[1]!);
  govern('member.add', newcomer.member);
  govern('wallet.add', { ...world.wallet, id: 'btc-new', descriptor: formatDescriptor(otherWallet, 0) });
  ({ coordinator, signer } = await startStand(dir, keystore, world));
});

afterAll(() => stopStand(signer, coordinator, dir));

describe('issue 8, item 1: authority added by governance waits out the delay on the signer own clock', () => {
  it("an intent signed on the requester's new device is refused DEVICE_NOT_ACTIVE", async () => {
    world.clock.now = Date.now();
    const intent = signIntentWith(world.intent(1_000_000n), requesterDevice);
    const [ap1, ap2] = world.org.approvers as [Person, Person];
    const result = await serve(
      'job-new-requester-device',
      intent,
      approveWith(intent, [
        { member: ap1.id, device: ap1.device },
        { member: ap2.id, device: ap2.device },
      ]),
    );
    expectRefused(result, 'DEVICE_NOT_ACTIVE');
  });

  it("approvals from the approvers' new devices and from a new member count for nothing (QUORUM_NOT_MET)", async () => {
    world.clock.now = Date.now();
    const intent = world.intent(1_000_000n);
    const [ap1, ap2] = world.org.approvers as [Person, Person];
    const approvals = approveWith(intent, [
      { member: ap1.id, device: approverDevices[0]! },
      { member: ap2.id, device: approverDevices[1]! },
      { member: newcomer.id, device: newcomer.device },
    ]);
    expectRefused(await serve('job-new-approver-devices', intent, approvals), 'QUORUM_NOT_MET');
  });

  it('a wallet added by governance spends nothing before the delay (WALLET_NOT_ACTIVE)', async () => {
    world.clock.now = Date.now();
    const intent = world.intent(1_000_000n, { wallet: 'btc-new' });
    expectRefused(await serve('job-new-wallet', intent, world.approve(intent)), 'WALLET_NOT_ACTIVE');
  });

  it('the old devices still work: the same withdrawal with the approvers it had is signed', async () => {
    world.clock.now = Date.now();
    const intent = world.intent(1_000_000n);
    const result = await serve('job-honest', intent, world.approve(intent));
    expect(result.receipt).toMatchObject({ outcome: 'signed', code: null });
  });
});

describe('issue 8, item 3: lifetimes are bounded by the policy (24 h by default)', () => {
  it('an intent valid for ten years is refused LIFETIME_TOO_LONG', async () => {
    world.clock.now = Date.now();
    const intent = world.intent(1_000_000n, { expiresAt: Date.now() + 10 * YEAR });
    const result = await serve('job-ten-years', intent, world.approve(intent));
    expectRefused(result, 'LIFETIME_TOO_LONG');
  });

  it('an intent created long ago, within a long lifetime, is refused too', async () => {
    world.clock.now = Date.now();
    const intent = world.intent(1_000_000n, {
      createdAt: Date.now() - 2 * YEAR,
      expiresAt: Date.now() + 3_600_000,
    });
    expectRefused(await serve('job-created-long-ago', intent, world.approve(intent)), 'LIFETIME_TOO_LONG');
  });

  it('approvals valid for ten years are not counted (QUORUM_NOT_MET)', async () => {
    world.clock.now = Date.now();
    const intent = world.intent(1_000_000n);
    const approvals = world.approve(intent, undefined, { expiresAt: Date.now() + 10 * YEAR });
    expectRefused(await serve('job-long-approvals', intent, approvals), 'QUORUM_NOT_MET');
  });

  it('the ledger holds only the honest withdrawal and every refusal is recorded with its code', async () => {
    signer.child.kill('SIGTERM');
    expect(await signer.exited).toBe(0);
    const store = new SignerStore(join(dir, 'signer-1.db'));
    try {
      expect(store.ledgerCount()).toBe(1);
      expect(store.decisions().map((d) => [d.job, d.outcome, d.code])).toEqual([
        ['job-new-requester-device', 'refused', 'DEVICE_NOT_ACTIVE'],
        ['job-new-approver-devices', 'refused', 'QUORUM_NOT_MET'],
        ['job-new-wallet', 'refused', 'WALLET_NOT_ACTIVE'],
        ['job-honest', 'signed', null],
        ['job-ten-years', 'refused', 'LIFETIME_TOO_LONG'],
        ['job-created-long-ago', 'refused', 'LIFETIME_TOO_LONG'],
        ['job-long-approvals', 'refused', 'QUORUM_NOT_MET'],
      ]);
    } finally {
      store.close();
    }
  });
});
