/**
 * Issue 8 item 6 and THREATS 10 through the real signer process and a hostile
 * coordinator over HTTP:
 * - the head digest in a job is unsigned: a wrong one is refused
 *   GOVERNANCE_HEAD_MISMATCH with a critical alert, nothing is signed, and the
 *   signer is NOT frozen (the next honest job is signed);
 * - an entry that conflicts with the signer's chain but is not quorum-signed
 *   is refused GOVERNANCE_SIGNATURE_INVALID, no freeze;
 * - two quorum-signed entries for one seq are proof: the signer freezes,
 *   keeps both entries, alerts with them as evidence, and `custos signer
 *   status` shows it;
 * - a quorum-signed unfreeze applied afterwards clears the freeze: it signs again.
 * Every receipt carries the governance head digest with its seq (item 7).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  applyGovernance,
  buildEntry,
  type Digest,
  fromHex,
  type GovernanceState,
  governanceDigest,
  receiptDigest,
  type SignedGovernanceEntry,
  type SignerResult,
  verifyEd25519,
} from '@custos/core';
import type { FakeCoordinator } from '@custos/test-support/fake-coordinator';
import { signBy } from '@custos/test-support/org';
import {
  initKeystore,
  type KeystoreInfo,
  type RunningSigner,
  signerCli,
  waitForOutput,
} from '@custos/test-support/signer-process';
import { makeWorld, type World } from '@custos/test-support/world';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignerStore } from '../src/store.js';
import { startStand, stopStand } from './support/stand.js';

let dir: string;
let config: string;
let keystore: KeystoreInfo;
let world: World;
let coordinator: FakeCoordinator;
let signer: RunningSigner;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custos-signer-equivocation-'));
  keystore = await initKeystore(dir, 'signer-1');
  world = makeWorld({ firstKey: keystore.descriptorKey });
  world.clock.now = Date.now();
  const stand = await startStand(dir, keystore, world);
  ({ coordinator, signer } = stand);
  config = stand.configs[0]!;
});

afterAll(() => stopStand(signer, coordinator, dir));

let jobs = 0;

/** A fully approved withdrawal naming `head` as the governance head, pushed to the signer; its result. */
async function submit(head: { seq: number; digest: Digest }, state = world.org.state): Promise<SignerResult> {
  const intent = world.intent(1_000_000n);
  const built = world.build(intent);
  const job = world.job(intent, world.approve(intent), built.psbt, { id: `job-${++jobs}`, state });
  coordinator.push({ ...job, governance: head });
  const results = await coordinator.waitForResults(jobs);
  const result = results[jobs - 1] as SignerResult;
  expect(result.receipt.job).toBe(job.id);
  // Every receipt is signed by the identity key and names the head digest with its seq.
  expect(verifyEd25519(keystore.identityKey, fromHex(receiptDigest(result.receipt)), result.signature)).toBe(
    true,
  );
  return result;
}

/** `custos signer status --config <file> --json`, through the real command line. */
async function status(): Promise<Record<string, unknown>> {
  const out = await signerCli(['status', '--config', config, '--json']);
  expect(out.code).toBe(0);
  return JSON.parse(out.stdout) as Record<string, unknown>;
}

function expectRefusedUnsigned(result: SignerResult, code: string): void {
  expect(result.receipt).toMatchObject({ outcome: 'refused', code, txid: null });
  expect(result.psbt).toBeUndefined();
}

/** A later entry after `state`, signed by the first `n` admins (the quorum is 2). */
function entry(state: GovernanceState, delayMs: number, n = 2): SignedGovernanceEntry {
  const quorum = state.quorum[0]?.value ?? 2;
  return signBy(
    buildEntry(state, 'quorum.set', { quorum, delayMs }, world.clock.now),
    world.org.admins.slice(0, n),
  );
}

function after(state: GovernanceState, signed: SignedGovernanceEntry): GovernanceState {
  const next = applyGovernance(state, signed, Date.now());
  if (!next.ok) throw new Error(next.message);
  return next.value;
}

describe('a hostile coordinator against a real signer process', () => {
  const genesis = () => world.org.state;
  let a: SignedGovernanceEntry;
  let stateA: GovernanceState;

  it('THREATS 10: a wrong unsigned head digest is GOVERNANCE_HEAD_MISMATCH with a critical alert; nothing signed; not frozen', async () => {
    const wrong = 'ab'.repeat(32) as Digest;
    const refused = await submit({ seq: 0, digest: wrong });
    expectRefusedUnsigned(refused, 'GOVERNANCE_HEAD_MISMATCH');
    expect(refused.alert).toEqual({ severity: 'critical', code: 'GOVERNANCE_HEAD_MISMATCH' });
    expect(refused.message).toContain(wrong);
    expect(refused.receipt).toMatchObject({ governanceSeq: 0, governanceHead: world.org.orgId });
    await waitForOutput(signer, '"code":"GOVERNANCE_HEAD_MISMATCH"');
    expect(await status()).toMatchObject({ frozen: false, freeze: null, equivocations: 0 });

    // The next honest job is signed: the lie cost the attacker one refusal, not the signer.
    const signed = await submit({ seq: 0, digest: world.org.orgId });
    expect(signed.receipt).toMatchObject({
      outcome: 'signed',
      governanceSeq: 0,
      governanceHead: world.org.orgId,
    });
    expect(signed.psbt).toBeDefined();
  });

  it('THREATS 10: an entry for a known seq that only one admin signed is GOVERNANCE_SIGNATURE_INVALID; no freeze', async () => {
    a = entry(genesis(), world.org.state.delayMs[0]?.value ?? 0);
    stateA = after(genesis(), a);
    coordinator.setGovernance([world.org.genesis, a]);
    const first = await submit({ seq: 1, digest: stateA.head }, stateA);
    expect(first.receipt).toMatchObject({ outcome: 'signed', governanceSeq: 1, governanceHead: stateA.head });

    const weak = entry(genesis(), 1234, 1);
    coordinator.setGovernance([world.org.genesis, weak]);
    const refused = await submit({ seq: 1, digest: governanceDigest(weak.entry) }, stateA);
    expectRefusedUnsigned(refused, 'GOVERNANCE_SIGNATURE_INVALID');
    expect(refused.alert).toEqual({ severity: 'critical', code: 'GOVERNANCE_SIGNATURE_INVALID' });
    expect(await status()).toMatchObject({ frozen: false, equivocations: 0 });
  });

  it('THREATS 10: two quorum-signed entries for one seq: frozen, both kept as evidence, alerted, shown by `custos signer status`', async () => {
    const b = entry(genesis(), 4321);
    const bDigest = governanceDigest(b.entry);
    coordinator.setGovernance([world.org.genesis, b]);
    const refused = await submit({ seq: 1, digest: bDigest }, stateA);
    expectRefusedUnsigned(refused, 'GOVERNANCE_EQUIVOCATION');
    expect(refused.alert).toEqual({
      severity: 'critical',
      code: 'GOVERNANCE_EQUIVOCATION',
      evidence: [
        { seq: 1, digest: stateA.head },
        { seq: 1, digest: bDigest },
      ],
    });
    expect(refused.receipt).toMatchObject({ governanceSeq: 1, governanceHead: stateA.head });

    const report = await status();
    expect(report).toMatchObject({
      signer: 'signer-1',
      frozen: true,
      freeze: {
        code: 'GOVERNANCE_EQUIVOCATION',
        governanceSeq: 1,
        evidence: { known: { seq: 1, digest: stateA.head }, other: { seq: 1, digest: bDigest } },
      },
      governance: { seq: 1, head: stateA.head },
      ledger: { entries: 2 },
      equivocations: 1,
    });
    const since = (report.freeze as { since: number }).since;
    expect(since).toBeGreaterThan(Date.now() - 120_000);
    const text = await signerCli(['status', '--config', config]);
    expect(text.stdout).toContain('frozen: yes, GOVERNANCE_EQUIVOCATION');
    expect(text.stdout).toContain(bDigest);
    expect(text.stdout).toContain(`governance: seq 1, head ${stateA.head}`);

    // Both entries are in the signer's own database, whole.
    const store = new SignerStore(join(dir, 'signer-1.db'));
    try {
      const [proof] = store.equivocations();
      expect(proof?.known.signed).toEqual(a);
      expect(proof?.other.signed).toEqual(b);
    } finally {
      store.close();
    }

    // Frozen: even an honest job on its own chain is refused.
    coordinator.setGovernance([world.org.genesis, a]);
    const frozen = await submit({ seq: 1, digest: stateA.head }, stateA);
    expectRefusedUnsigned(frozen, 'FROZEN');
  });

  it('THREATS 10: a quorum-signed unfreeze applied after the freeze clears it: the signer signs again', async () => {
    const unfreeze = signBy(
      buildEntry(stateA, 'unfreeze', { reason: 'fork investigated: seq 1 is a' }, world.clock.now),
      world.org.admins.slice(0, 2),
    );
    const stateU = after(stateA, unfreeze);
    coordinator.setGovernance([world.org.genesis, a, unfreeze]);
    const signed = await submit({ seq: 2, digest: stateU.head }, stateU);
    expect(signed.receipt).toMatchObject({
      outcome: 'signed',
      governanceSeq: 2,
      governanceHead: stateU.head,
    });
    expect(signed.psbt).toBeDefined();
    expect(await status()).toMatchObject({
      frozen: false,
      freeze: null,
      governance: { seq: 2, head: stateU.head },
      ledger: { entries: 3 },
      equivocations: 1,
    });
  });
});
