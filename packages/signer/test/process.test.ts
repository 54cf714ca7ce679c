import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzePsbt, psbtFromBase64 } from '@custos/bitcoin';
import {
  digestOf,
  fromHex,
  type Intent,
  receiptDigest,
  verifyCheckpointSignature,
  verifyEd25519,
} from '@custos/core';
import type { FakeCoordinator } from '@custos/test-support/fake-coordinator';
import { ATTACKER } from '@custos/test-support/psbt-fixtures';
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

let dir: string;
let keystore: KeystoreInfo;
let world: World;
let coordinator: FakeCoordinator;
let signer: RunningSigner;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custos-signer-process-'));
  keystore = await initKeystore(dir, 'signer-1');
  world = makeWorld({ firstKey: keystore.descriptorKey });
  // Real time: the process reads its own clock.
  world.clock.now = Date.now();
  ({ coordinator, signer } = await startStand(dir, keystore, world));
});

afterAll(() => stopStand(signer, coordinator, dir));

describe('the signer process', () => {
  it('prints its public half at init and never the seed or the password', () => {
    expect(keystore.descriptorKey.xpub).toMatch(/^tpub/);
    expect(keystore.identityKey).toMatch(/^[0-9a-f]{64}$/);
    expect(signer.output()).not.toContain('correct horse');
  });

  it('pulls a job over HTTP, signs it, and hands back a signed receipt and its partial signatures', async () => {
    const w = world.withdrawal(5_000_000n, { id: 'job-good' });
    coordinator.push(w.job);
    const [result] = await coordinator.waitForResults(1);
    expect(result!.receipt).toMatchObject({
      job: 'job-good',
      outcome: 'signed',
      intent: w.digest,
      txid: w.built.txid,
    });
    expect(
      verifyEd25519(keystore.identityKey, fromHex(receiptDigest(result!.receipt)), result!.signature),
    ).toBe(true);
    const psbt = psbtFromBase64(result!.psbt!);
    if (!psbt.ok) throw new Error(psbt.message);
    const analysis = analyzePsbt(psbt.value, world.descriptor);
    if (!analysis.ok) throw new Error(analysis.message);
    expect(analysis.value.inputs[0]!.signatures).toBe(1);
    // Every request it made was signed with its identity key.
    expect(coordinator.refusedRequests).toBe(0);
  });

  it('THREATS 6 (the DMM replay): a relay rewrites amount and destination; the signer refuses, nothing is signed, an alert is raised', async () => {
    const w = world.withdrawal(5_000_000n, { id: 'job-dmm' });
    const rewritten = {
      ...w.job,
      intent: {
        ...w.job.intent,
        intent: { ...w.job.intent.intent, amount: '450290000000', to: ATTACKER } as Intent,
      },
    };
    coordinator.push(rewritten);
    const results = await coordinator.waitForResults(2);
    const result = results[1]!;
    expect(result.receipt).toMatchObject({
      job: 'job-dmm',
      outcome: 'refused',
      code: 'INTENT_SIGNATURE_INVALID',
    });
    expect(result.psbt).toBeUndefined();
    expect(result.alert).toEqual({ severity: 'critical', code: 'INTENT_SIGNATURE_INVALID' });
    await waitForOutput(signer, '"job":"job-dmm"');
    expect(signer.output()).toContain('"code":"INTENT_SIGNATURE_INVALID"');
  });

  it('countersigns the audit head it is asked to, and refuses another head for the same seq (THREATS 30)', async () => {
    const head = digestOf('test', 1, 'audit head 7');
    coordinator.requestCheckpoint(7, head);
    await waitForOutput(signer, '"event":"signer.checkpoint"');
    expect(coordinator.checkpoints).toHaveLength(1);
    const cp = coordinator.checkpoints[0]!;
    expect(cp.checkpoint).toMatchObject({ seq: 7, head, signer: 'signer-1', org: world.org.orgId });
    expect(verifyCheckpointSignature(cp, keystore.identityKey)).toBe(true);
    // The log is rewritten: the coordinator now claims another head at seq 7.
    coordinator.requestCheckpoint(7, digestOf('test', 1, 'rewritten'));
    await waitForOutput(signer, '"event":"signer.alert"');
    expect(signer.output()).toContain('"code":"AUDIT_CHAIN_BROKEN"');
    expect(coordinator.checkpoints).toHaveLength(1);
  });

  it('stops cleanly on SIGTERM with its ledger intact: one signed intent, the refusal recorded', async () => {
    signer.child.kill('SIGTERM');
    expect(await signer.exited).toBe(0);
    const store = new SignerStore(join(dir, 'signer-1.db'));
    try {
      expect(store.ledgerCount()).toBe(1);
      expect(store.decisions().map((d) => [d.job, d.outcome, d.code])).toEqual([
        ['job-good', 'signed', null],
        ['job-dmm', 'refused', 'INTENT_SIGNATURE_INVALID'],
      ]);
    } finally {
      store.close();
    }
  });
});
