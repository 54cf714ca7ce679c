import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addressToScript, analyzePsbt, buildPsbt, psbtFromBase64, psbtToBase64 } from '@custos/bitcoin';
import {
  applyGovernance,
  buildEntry,
  ed25519PublicKey,
  fromHex,
  governanceDigest,
  type Intent,
  receiptDigest,
  type SignerJob,
  type SignerResult,
  verifyEd25519,
} from '@custos/core';
import { MemorySource } from '@custos/test-support/memory-source';
import { propose, signBy } from '@custos/test-support/org';
import { ATTACKER, editPsbt, otherWallet, utxosOf } from '@custos/test-support/psbt-fixtures';
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

function open(w: World): Signer {
  return Signer.init(
    {
      id: 'signer-1',
      identitySecret: w.org.signer.secretKey,
      key: w.keys[0]!,
      pinnedGenesis: w.org.orgId,
      chains: ['bitcoin:regtest'],
      store,
      clock: () => w.clock.now,
    },
    w.org.genesis,
  );
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'custos-signer-'));
  store = new SignerStore(join(dir, 'signer.db'));
  world = makeWorld();
  signer = open(world);
  source = new MemorySource(world.governance);
});

afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** What a user checks after a refusal: the code, that nothing was signed, and the recorded decision. */
function expectRefused(result: SignerResult, code: string, ledgerBefore = 0) {
  expect(result.receipt.outcome).toBe('refused');
  expect(result.receipt.code).toBe(code);
  expect(result.psbt).toBeUndefined();
  expect(store.ledgerCount()).toBe(ledgerBefore);
  const last = store.decisions().at(-1);
  expect(last).toMatchObject({ job: result.receipt.job, outcome: 'refused', code });
}

function partialSigs(psbtB64: string): number {
  const bytes = psbtFromBase64(psbtB64);
  if (!bytes.ok) throw new Error(bytes.message);
  const a = analyzePsbt(bytes.value, world.descriptor);
  if (!a.ok) throw new Error(a.message);
  return a.value.inputs.reduce((n, i) => n + i.signatures, 0);
}

function tamperIntent(job: SignerJob, change: Partial<Intent>): SignerJob {
  return { ...job, intent: { ...job.intent, intent: { ...job.intent.intent, ...change } } };
}

describe('signer: a valid withdrawal', () => {
  it('signs every input it holds a key for, records the ledger, and returns a receipt signed by its identity key', async () => {
    const w = world.withdrawal(10_000_000n, { inputs: 2 });
    const result = await signer.handle(w.job, source);
    expect(result.receipt).toMatchObject({
      outcome: 'signed',
      code: null,
      intent: w.digest,
      txid: w.built.txid,
    });
    expect(partialSigs(result.psbt!)).toBe(2);
    expect(store.ledgerFor(w.digest)).toMatchObject({ txid: w.built.txid, amount: '10000000' });
    const key = ed25519PublicKey(world.org.signer.secretKey);
    expect(verifyEd25519(key, fromHex(receiptDigest(result.receipt)), result.signature)).toBe(true);
  });

  it('answers the same job again with the same signatures (a lost reply is never a second signing)', async () => {
    const w = world.withdrawal(10_000_000n);
    const first = await signer.handle(w.job, source);
    const again = await signer.handle({ ...w.job, id: 'retry-1' }, source);
    expect(again).toEqual(first);
    expect(store.ledgerCount()).toBe(1);
  });
});

describe('signer: THREATS 6-7, the DMM attack on the relay and the database', () => {
  it('THREATS 6: amount rewritten in transit -> INTENT_SIGNATURE_INVALID, critical alert, nothing signed', async () => {
    const w = world.withdrawal(10_000_000n);
    const result = await signer.handle(
      tamperIntent(w.job, { amount: '450290000000' as Intent['amount'] }),
      source,
    );
    expectRefused(result, 'INTENT_SIGNATURE_INVALID');
    expect(result.alert).toEqual({ severity: 'critical', code: 'INTENT_SIGNATURE_INVALID' });
  });

  it('THREATS 6: destination rewritten in transit (with a PSBT to match) -> INTENT_SIGNATURE_INVALID', async () => {
    const w = world.withdrawal(10_000_000n);
    const evil = tamperIntent(w.job, { to: ATTACKER as Intent['to'] });
    const built = world.build(evil.intent);
    const result = await signer.handle({ ...evil, psbt: psbtToBase64(built.psbt) }, source);
    expectRefused(result, 'INTENT_SIGNATURE_INVALID');
  });

  it('THREATS 7: approvals inserted in the database with forged signatures are not counted -> QUORUM_NOT_MET', async () => {
    const w = world.withdrawal(10_000_000n);
    const forged = w.job.approvals.map((a) => ({
      ...a,
      signature: { kind: 'ed25519' as const, sig: 'ab'.repeat(64) as never },
    }));
    const result = await signer.handle({ ...w.job, approvals: forged }, source);
    expectRefused(result, 'QUORUM_NOT_MET');
  });

  it('THREATS 7: an intent marked approved with no approvals at all -> QUORUM_NOT_MET', async () => {
    const w = world.withdrawal(10_000_000n);
    expectRefused(await signer.handle({ ...w.job, approvals: [] }, source), 'QUORUM_NOT_MET');
  });

  it('THREATS 27: a PSBT with no intent behind it -> NO_APPROVED_INTENT', async () => {
    const w = world.withdrawal(10_000_000n);
    const { intent: _gone, ...noIntent } = w.job;
    const result = await signer.handle(noIntent, source);
    expectRefused(result, 'NO_APPROVED_INTENT');
  });
});

describe('signer: THREATS 9-10, governance', () => {
  it('THREATS 9: a governance row written into the database (an approver added by a non-admin) -> GOVERNANCE_SIGNATURE_INVALID', async () => {
    const forged = propose(
      world.org.state,
      'role.set',
      { member: world.org.requester.id, roles: ['requester', 'approver'] },
      [world.org.approvers[0]!, world.org.approvers[1]!],
    );
    source.entries = [...world.governance, forged];
    const w = world.withdrawal(10_000_000n);
    const job = { ...w.job, governance: { seq: 1, digest: '11'.repeat(32) as never } };
    const result = await signer.handle(job, source);
    expectRefused(result, 'GOVERNANCE_SIGNATURE_INVALID');
    expect(result.alert?.severity).toBe('critical');
    expect(signer.governance.seq).toBe(0);
  });

  it('THREATS 10: a second, quorum-signed entry for a known seq freezes the signer (GOVERNANCE_EQUIVOCATION) with both entries as evidence, then FROZEN', async () => {
    const a = propose(world.org.state, 'freeze', { reason: 'drill' }, [world.org.admins[0]!]);
    const applied = applyGovernance(world.org.state, a, world.clock.now);
    if (!applied.ok) throw new Error(applied.message);
    source.entries = [...world.governance, a];
    const w1 = world.withdrawal(10_000_000n);
    await signer.handle({ ...w1.job, governance: { seq: 1, digest: applied.value.head } }, source);
    expect(signer.governance.seq).toBe(1);
    // The coordinator now shows another entry at seq 1, signed by a quorum of the admins before it.
    const b = signBy(
      buildEntry(world.org.state, 'address.remove', { id: 'cold-storage' }, world.clock.now),
      world.org.admins.slice(0, 2),
    );
    const bDigest = governanceDigest(b.entry);
    source.entries = [...world.governance, b];
    const w2 = world.withdrawal(10_000_000n);
    const result = await signer.handle({ ...w2.job, governance: { seq: 1, digest: bDigest } }, source);
    expectRefused(result, 'GOVERNANCE_EQUIVOCATION');
    expect(result.alert).toEqual({
      severity: 'critical',
      code: 'GOVERNANCE_EQUIVOCATION',
      evidence: [
        { seq: 1, digest: applied.value.head },
        { seq: 1, digest: bDigest },
      ],
    });
    expect(store.freeze()).toMatchObject({ code: 'GOVERNANCE_EQUIVOCATION', governanceSeq: 1 });
    const [proof] = store.equivocations();
    expect(proof?.known.signed).toEqual(a);
    expect(proof?.other.signed).toEqual(b);
    const w3 = world.withdrawal(10_000_000n);
    expectRefused(await signer.handle(w3.job, source), 'FROZEN');
  });

  it("THREATS 10: a quorum-signed successor whose prev is not this signer's entry is proof too: frozen, both kept", async () => {
    const a = propose(
      world.org.state,
      'address.remove',
      { id: 'cold-storage' },
      world.org.admins.slice(0, 2),
    );
    const stateA = applyGovernance(world.org.state, a, world.clock.now);
    if (!stateA.ok) throw new Error(stateA.message);
    source.entries = [...world.governance, a];
    await signer.handle(
      { ...world.withdrawal(10_000_000n).job, governance: { seq: 1, digest: stateA.value.head } },
      source,
    );
    expect(signer.governance.seq).toBe(1);
    // Another branch: b at seq 1 (never shown), then c at seq 2 linking to b, both quorum-signed.
    const b = propose(world.org.state, 'freeze', { reason: 'other branch' }, world.org.admins.slice(0, 2));
    const stateB = applyGovernance(world.org.state, b, world.clock.now);
    if (!stateB.ok) throw new Error(stateB.message);
    const c = propose(stateB.value, 'unfreeze', { reason: 'other branch' }, world.org.admins.slice(0, 2));
    const cDigest = governanceDigest(c.entry);
    source.entries = [...world.governance, a, c];
    const result = await signer.handle(
      { ...world.withdrawal(10_000_000n).job, governance: { seq: 2, digest: cDigest } },
      source,
    );
    expectRefused(result, 'GOVERNANCE_EQUIVOCATION');
    expect(result.alert?.evidence).toEqual([
      { seq: 1, digest: stateA.value.head },
      { seq: 2, digest: cDigest },
    ]);
    expect(signer.governance.seq).toBe(1);
    expect(store.freeze()?.code).toBe('GOVERNANCE_EQUIVOCATION');
    expect(store.equivocations()[0]?.other.signed).toEqual(c);
  });

  it('an unsigned head digest that disagrees with the chain is GOVERNANCE_HEAD_MISMATCH with an alert, and no freeze', async () => {
    const w1 = world.withdrawal(10_000_000n);
    const result = await signer.handle(
      { ...w1.job, governance: { seq: 0, digest: '33'.repeat(32) as never } },
      source,
    );
    expectRefused(result, 'GOVERNANCE_HEAD_MISMATCH');
    expect(result.alert).toEqual({ severity: 'critical', code: 'GOVERNANCE_HEAD_MISMATCH' });
    expect(store.freeze()).toBeNull();
    expect((await signer.handle(world.withdrawal(10_000_000n).job, source)).receipt.outcome).toBe('signed');
  });

  it('a conflicting entry signed by one admin only is GOVERNANCE_SIGNATURE_INVALID, and no freeze', async () => {
    const a = propose(
      world.org.state,
      'address.remove',
      { id: 'cold-storage' },
      world.org.admins.slice(0, 2),
    );
    const applied = applyGovernance(world.org.state, a, world.clock.now);
    if (!applied.ok) throw new Error(applied.message);
    source.entries = [...world.governance, a];
    await signer.handle(
      { ...world.withdrawal(10_000_000n).job, governance: { seq: 1, digest: applied.value.head } },
      source,
    );
    const weak = signBy(
      buildEntry(world.org.state, 'quorum.set', { quorum: 1, delayMs: 0 }, world.clock.now),
      world.org.admins.slice(0, 1),
    );
    source.entries = [...world.governance, weak];
    const w = world.withdrawal(10_000_000n);
    const result = await signer.handle(
      { ...w.job, governance: { seq: 1, digest: governanceDigest(weak.entry) } },
      source,
    );
    expectRefused(result, 'GOVERNANCE_SIGNATURE_INVALID');
    expect(result.alert?.severity).toBe('critical');
    expect(store.freeze()).toBeNull();
    expect(store.equivocations()).toEqual([]);
  });

  it('THREATS 22: a freeze signed by one admin stops every signing (FROZEN)', async () => {
    const freeze = propose(world.org.state, 'freeze', { reason: 'incident' }, [world.org.admins[2]!]);
    const next = applyGovernance(world.org.state, freeze, world.clock.now);
    if (!next.ok) throw new Error(next.message);
    source.entries = [...world.governance, freeze];
    const w = world.withdrawal(10_000_000n);
    const result = await signer.handle({ ...w.job, governance: { seq: 1, digest: next.value.head } }, source);
    expectRefused(result, 'FROZEN');
  });
});

describe('signer: THREATS 14 and 20, its own ledger', () => {
  it('THREATS 14: the same intent with another transaction -> DUPLICATE_INTENT; never signed twice', async () => {
    const w = world.withdrawal(10_000_000n);
    expect((await signer.handle(w.job, source)).receipt.outcome).toBe('signed');
    const other = world.build(w.intent, { utxos: world.utxos([20_000_000n]) });
    const result = await signer.handle({ ...w.job, id: 'again', psbt: psbtToBase64(other.psbt) }, source);
    expectRefused(result, 'DUPLICATE_INTENT', 1);
    expect(result.alert?.code).toBe('DUPLICATE_INTENT');
  });

  it('THREATS 20: split withdrawals arriving at the same moment never pass the rolling limit (LIMIT_EXCEEDED)', async () => {
    // The fixture policy allows 1 BTC a day from the wallet; 15 requests of 0.1 BTC arrive at once.
    const jobs = Array.from(
      { length: 15 },
      (_, i) => world.withdrawal(10_000_000n, { id: `split-${i}` }).job,
    );
    const results = await Promise.all(jobs.map((j) => signer.handle(j, source)));
    const signed = results.filter((r) => r.receipt.outcome === 'signed');
    expect(signed).toHaveLength(10);
    expect(results.filter((r) => r.receipt.code === 'LIMIT_EXCEEDED')).toHaveLength(5);
    expect(store.ledgerCount()).toBe(10);
    // A day later the window has rolled.
    world.clock.now += 24 * 60 * MINUTE + 1;
    expect((await signer.handle(world.withdrawal(10_000_000n).job, source)).receipt.outcome).toBe('signed');
  });
});

describe('signer: THREATS 23-26, the transaction itself', () => {
  const attackerScript = addressToScript(ATTACKER, 'regtest')!;
  const destination = addressToScript(COLD_STORAGE, 'regtest')!;

  it('THREATS 23: change sent to a foreign address -> UNEXPECTED_OUTPUT', async () => {
    const w = world.withdrawal(10_000_000n);
    const tampered = editPsbt(w.built.psbt, (p) => {
      const outs = p.global.unsignedTx.outputs;
      const change = outs.findIndex((o) => !equal(o.script, destination));
      expect(change).toBeGreaterThanOrEqual(0);
      outs[change]!.script = attackerScript;
      p.outputs[change] = {};
    });
    expectRefused(
      await signer.handle({ ...w.job, psbt: psbtToBase64(tampered) }, source),
      'UNEXPECTED_OUTPUT',
    );
  });

  it('THREATS 24: an added output -> UNEXPECTED_OUTPUT', async () => {
    const w = world.withdrawal(10_000_000n);
    const tampered = editPsbt(w.built.psbt, (p) => {
      // The attacker's output is paid out of the change, so the fee stays plausible.
      const outs = p.global.unsignedTx.outputs;
      const change = outs.findIndex((o) => !equal(o.script, destination));
      outs[change]!.amount -= 5000n;
      outs.push({ amount: 5000n, script: attackerScript });
      p.outputs.push({});
    });
    expectRefused(
      await signer.handle({ ...w.job, psbt: psbtToBase64(tampered) }, source),
      'UNEXPECTED_OUTPUT',
    );
  });

  it('THREATS 24: the amount split over two outputs to the destination -> UNEXPECTED_OUTPUT', async () => {
    const w = world.withdrawal(10_000_000n);
    const tampered = editPsbt(w.built.psbt, (p) => {
      const outs = p.global.unsignedTx.outputs;
      const dest = outs.findIndex((o) => equal(o.script, destination));
      outs[dest]!.amount -= 4_000_000n;
      outs.push({ amount: 4_000_000n, script: destination });
      p.outputs.push({});
    });
    expectRefused(
      await signer.handle({ ...w.job, psbt: psbtToBase64(tampered) }, source),
      'UNEXPECTED_OUTPUT',
    );
  });

  it('THREATS 25: a fee above the caps -> FEE_TOO_HIGH', async () => {
    const intent = world.intent(10_000_000n);
    const built = world.build(intent, { feeRate: 500n, utxos: world.utxos([12_000_000n]) });
    const job = world.job(intent, world.approve(intent), built.psbt);
    expectRefused(await signer.handle(job, source), 'FEE_TOO_HIGH');
  });

  it("THREATS 26: an input that is not the wallet's -> FOREIGN_INPUT", async () => {
    const intent = world.intent(10_000_000n);
    const mine = world.utxos([6_000_000n])[0]!;
    const built = world.build(intent, { utxos: [mine, ...world.utxos([6_000_000n])] });
    // Swap the second input's derivation data for another organization's wallet.
    const theirs = buildPsbt({
      wallet: otherWallet,
      utxos: utxosOf([{ w: otherWallet, branch: 0, index: 0, value: 6_000_000n }], 77),
      to: COLD_STORAGE,
      amount: 1_000_000n,
      feeRate: 5n,
      changeIndex: 0,
    });
    if (!theirs.ok) throw new Error(theirs.message);
    const theirInput = RawPSBTV0.decode(theirs.value.psbt).inputs[0]!;
    const theirTxIn = RawPSBTV0.decode(theirs.value.psbt).global.unsignedTx!.inputs[0]!;
    const tampered = editPsbt(built.psbt, (p) => {
      p.inputs[1] = theirInput as Record<string, unknown>;
      p.global.unsignedTx.inputs[1] = theirTxIn as never;
    });
    const job = world.job(intent, world.approve(intent), tampered);
    expectRefused(await signer.handle(job, source), 'FOREIGN_INPUT');
  });
});

describe('signer: hostile input', () => {
  it.each([
    ['null', null],
    ['a string', 'sign everything'],
    ['an empty object', {}],
    ['a job with an unknown field', { v: 1, id: 'x', admin: true }],
  ])('refuses %s with a code and never throws', async (_name, raw) => {
    const result = await signer.handle(raw, source);
    expect(result.receipt.outcome).toBe('refused');
    expect(result.receipt.code).toMatch(/^[A-Z_]+$/);
    expect(store.ledgerCount()).toBe(0);
  });

  it('refuses a PSBT that is not base64 with a code', async () => {
    const w = world.withdrawal(10_000_000n);
    const result = await signer.handle({ ...w.job, psbt: '!!!!' }, source);
    expectRefused(result, 'INVALID_VALUE');
  });
});

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
