/**
 * Automated payouts (issue 13) through a real `custos signer run` process and
 * a coordinator stand-in that serves whatever it is told: a policy whose
 * first rule pays any customer address up to 0.002 BTC with no approval,
 * bounded by 0.015 BTC a day from the wallet and 0.0025 BTC a day per
 * customer. The signer signs such a payout with no approval in the job, from
 * its own decision, until its own ledger reaches a limit; then every payout
 * is refused LIMIT_EXCEEDED, with no partial signature and no ledger row.
 *
 * The exchange backend's key is the one to steal here: whoever holds it (and
 * the coordinator, or its relay) gets at most the limits signed, however the
 * requests are sent, one by one or all at once (THREATS 20). A look-alike of
 * an address-book entry is refused though the policy only warns (THREATS 21):
 * with no approver, nobody would read the warning.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scriptToAddress } from '@custos/bitcoin';
import {
  type Address,
  type Amount,
  type PolicyRule,
  type RollingLimit,
  type SignedIntent,
  type SignerResult,
  sha256,
  utf8,
} from '@custos/core';
import type { FakeCoordinator } from '@custos/test-support/fake-coordinator';
import { COLD_STORAGE, DAY, WALLET_ID } from '@custos/test-support/org';
import { initKeystore, type KeystoreInfo, type RunningSigner } from '@custos/test-support/signer-process';
import { makeWorld, type World } from '@custos/test-support/world';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignerStore } from '../src/store.js';
import { startStand, stopStand } from './support/stand.js';

const PER_PAYOUT = 200_000n;
const WALLET_DAILY = 1_500_000n;
const PER_CUSTOMER_DAILY = 250_000n;

const PAYOUTS: PolicyRule = {
  id: 'payouts',
  match: {
    destination: { kind: 'any' },
    wallets: [WALLET_ID],
    assets: ['BTC'],
    maxAmount: PER_PAYOUT.toString() as Amount,
    requesterRoles: ['requester'],
  },
  action: 'allow',
  approvals: [],
};
const LIMITS: RollingLimit[] = [
  {
    id: 'payouts-daily',
    scope: 'wallet-asset',
    wallet: WALLET_ID,
    asset: 'BTC',
    windowMs: DAY,
    max: WALLET_DAILY.toString() as Amount,
  },
  {
    id: 'per-customer',
    scope: 'destination',
    asset: 'BTC',
    windowMs: DAY,
    max: PER_CUSTOMER_DAILY.toString() as Amount,
  },
];

/**
 * A regtest address with the first and last four characters of COLD_STORAGE
 * (`bcrt`...`jk4r`): P2WPKH of the first 20 bytes of
 * sha256("custos poisoned cold storage 87972"), found by trying counters.
 */
const POISONED = 'bcrt1qv9hx0rh544zvfy76tq2q055fp9twrj6rmfjk4r' as Address;

/** Customer `k`'s own address: nobody at the exchange knows it, it is in no book. */
function customer(k: string): Address {
  const program = sha256(utf8(`custos exchange customer ${k}`)).slice(0, 20);
  return scriptToAddress(new Uint8Array([0x00, 0x14, ...program]), 'regtest') as Address;
}

let dir: string;
let keystore: KeystoreInfo;
let world: World;
let coordinator: FakeCoordinator;
let signer: RunningSigner;
let served = 0;
/** What this signer signed, by job id, from its receipts. */
const signedAmounts = new Map<string, bigint>();

/** A payout the backend signed: `amount` sat to `to`, with no approval. */
function payout(amount: bigint, to: Address): SignedIntent {
  world.clock.now = Date.now();
  return world.intent(amount, { to });
}

/** Hands the signer one job per intent, all at once, and waits for every answer. */
async function serve(jobs: readonly { id: string; intent: SignedIntent }[]): Promise<SignerResult[]> {
  for (const { id, intent } of jobs) {
    coordinator.push(world.job(intent, [], world.build(intent).psbt, { id }));
  }
  served += jobs.length;
  const all = await coordinator.waitForResults(served, 60_000);
  return jobs.map(({ id, intent }) => {
    const r = all.find((x) => x.receipt.job === id);
    if (r === undefined) throw new Error(`no result for ${id}`);
    if (r.receipt.outcome === 'signed') signedAmounts.set(id, BigInt(intent.intent.amount));
    return r;
  });
}

function expectSigned(r: SignerResult): void {
  expect(r.receipt).toMatchObject({ outcome: 'signed', code: null });
  expect(r.psbt).toBeDefined();
}

function expectRefused(r: SignerResult, code: string): void {
  expect(r.receipt).toMatchObject({ outcome: 'refused', code });
  expect(r.psbt).toBeUndefined();
}

const total = () => [...signedAmounts.values()].reduce((a, b) => a + b, 0n);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custos-signer-automated-'));
  keystore = await initKeystore(dir, 'signer-1');
  world = makeWorld({
    firstKey: keystore.descriptorKey,
    policy: (p) => ({
      ...p,
      rules: [PAYOUTS, ...p.rules],
      limits: [...p.limits, ...LIMITS],
      lookalike: { ...p.lookalike, action: 'warn' },
    }),
  });
  world.clock.now = Date.now();
  ({ coordinator, signer } = await startStand(dir, keystore, world));
}, 60_000);

afterAll(() => stopStand(signer, coordinator, dir));

describe('automated payouts through a real signer process (issue 13)', () => {
  it("signs a customer's payout with no approval in the job", async () => {
    const [r] = await serve([{ id: 'payout-1', intent: payout(100_000n, customer('alice')) }]);
    expectSigned(r!);
  });

  it('THREATS 20: one customer is paid up to the per-destination limit from the signer own ledger, then LIMIT_EXCEEDED', async () => {
    const [second] = await serve([{ id: 'payout-2', intent: payout(100_000n, customer('alice')) }]);
    expectSigned(second!);
    // 200,000 signed to alice; 100,000 more would pass 250,000.
    const [third] = await serve([{ id: 'payout-3', intent: payout(100_000n, customer('alice')) }]);
    expectRefused(third!, 'LIMIT_EXCEEDED');
    expect(third!.message).toContain('per-customer');
    // Not tampering: a refusal by the rules, with no alert.
    expect(third!.alert).toBeUndefined();
  });

  it('still needs approvers for what the tier does not cover: above its maximum, with no approval, QUORUM_NOT_MET', async () => {
    const [r] = await serve([{ id: 'too-large', intent: payout(PER_PAYOUT + 1n, COLD_STORAGE) }]);
    expectRefused(r!, 'QUORUM_NOT_MET');
  });

  it('THREATS 21: refuses a look-alike of an address-book entry with no approver to see the warning (LOOKALIKE_ADDRESS)', async () => {
    const [r] = await serve([{ id: 'poisoned', intent: payout(100_000n, POISONED) }]);
    expectRefused(r!, 'LOOKALIKE_ADDRESS');
  });

  it("THREATS 20: the backend's key stolen: a loop of payouts to fresh addresses until refused gets at most the wallet limit signed", async () => {
    let k = 0;
    let refused: SignerResult | undefined;
    for (; k < 20 && refused === undefined; k++) {
      const [r] = await serve([{ id: `stolen-${k}`, intent: payout(PER_PAYOUT, customer(`thief-${k}`)) }]);
      if (r!.receipt.outcome === 'refused') refused = r;
    }
    expect(refused).toBeDefined();
    expectRefused(refused!, 'LIMIT_EXCEEDED');
    expect(refused!.message).toContain('payouts-daily');
    // 200,000 to alice, then six of 200,000: 1,400,000; a seventh would be 1,600,000.
    expect(k).toBe(7);
    expect(total()).toBe(1_400_000n);
    expect(total()).toBeLessThanOrEqual(WALLET_DAILY);
  });

  it('THREATS 20: a burst of payouts arriving at the same moment never passes the wallet limit either', async () => {
    const burst = Array.from({ length: 8 }, (_, i) => ({
      id: `burst-${i}`,
      intent: payout(30_000n, customer(`burst-${i}`)),
    }));
    const results = await serve(burst);
    const signed = results.filter((r) => r.receipt.outcome === 'signed');
    // 100,000 were left in the window: three of 30,000, whatever the order they are taken in.
    expect(signed).toHaveLength(3);
    for (const r of results.filter((x) => x.receipt.outcome === 'refused'))
      expectRefused(r, 'LIMIT_EXCEEDED');
    expect(total()).toBe(1_490_000n);
    expect(total()).toBeLessThanOrEqual(WALLET_DAILY);
  });

  it("the signer's own store: a ledger row for each payout signed and no other, every refusal recorded with its code", async () => {
    signer.child.kill('SIGTERM');
    expect(await signer.exited).toBe(0);
    const store = new SignerStore(join(dir, 'signer-1.db'));
    try {
      expect(store.ledgerCount()).toBe(signedAmounts.size);
      const decisions = store.decisions();
      expect(
        decisions
          .filter((d) => d.outcome === 'signed')
          .map((d) => d.job)
          .sort(),
      ).toEqual([...signedAmounts.keys()].sort());
      expect(decisions.filter((d) => d.outcome === 'refused').map((d) => [d.job, d.code])).toEqual([
        ['payout-3', 'LIMIT_EXCEEDED'],
        ['too-large', 'QUORUM_NOT_MET'],
        ['poisoned', 'LOOKALIKE_ADDRESS'],
        ['stolen-6', 'LIMIT_EXCEEDED'],
        ...Array.from({ length: 5 }, () => [expect.stringMatching(/^burst-/), 'LIMIT_EXCEEDED']),
      ]);
    } finally {
      store.close();
    }
  });
});
