/**
 * Fee bumping (issue 13, BIP 125) on a real regtest node with two real
 * signer processes: a withdrawal signed and broadcast is not mined; a signed
 * bump at a higher fee rate gets a replacement signed by both, the node takes
 * it in place of the original (its mempool drops the original), and it is
 * mined; the original can then never confirm. Each signer's ledger counts the
 * amount once: a rolling limit that counting twice would exceed still allows
 * the next withdrawal.
 *
 * The coordinator here is the test's, so it plays the hostile one too
 * (THREATS 6-7: a job rewritten in the relay): replacements that change a
 * payee output or spend none of the original's inputs are refused
 * NOT_A_REPLACEMENT, one over the fee cap FEE_TOO_HIGH, a bump of an intent
 * a signer never signed NOT_A_REPLACEMENT, one signed by someone else than
 * the requester NOT_AUTHORIZED; each by both signers, with nothing signed,
 * the refusal in each signer's own decisions and, for the tampering, a
 * critical alert.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  analyzePsbt,
  buildPsbt,
  buildReplacement,
  combinePsbts,
  deriveAddress,
  finalizePsbt,
  psbtFromBase64,
  syncChain,
  UtxoTracker,
  type WalletUtxo,
} from '@custos/bitcoin';
import { type RegtestNode, startRegtestNode } from '@custos/bitcoin/regtest';
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
  toHex,
} from '@custos/core';
import { type FakeCoordinator, startFakeCoordinator } from '@custos/test-support/fake-coordinator';
import {
  initKeystore,
  type RunningSigner,
  runSigner,
  waitForOutput,
  writeConfig,
} from '@custos/test-support/signer-process';
import { makeWorld, type World } from '@custos/test-support/world';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

let dir: string;
let node: RegtestNode;
let coordinator: FakeCoordinator;
let world: World;
let tracker: UtxoTracker;
const signers: RunningSigner[] = [];
const SIGNERS = ['signer-1', 'signer-2'] as const;
let received = 0;
let jobs = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custos-regtest-bump-'));
  const [k1, k2] = await Promise.all([initKeystore(dir, 'signer-1'), initKeystore(dir, 'signer-2')]);
  world = makeWorld({ firstKey: k1.descriptorKey, secondKey: k2.descriptorKey });
  world.clock.now = Date.now();
  node = await startRegtestNode();
  await node.activateSegwit();
  coordinator = await startFakeCoordinator(
    new Map([
      ['signer-1', k1.identityKey],
      ['signer-2', k2.identityKey],
    ]),
  );
  coordinator.setGovernance(world.governance);
  for (const id of SIGNERS) {
    const s = runSigner(writeConfig(dir, id, coordinator.url, world.org.orgId));
    signers.push(s);
    await waitForOutput(s, 'signer.started');
  }
  // Three coins of 0.5 BTC at receive indexes 0 to 2: the original spends one, a non-conflicting
  // "replacement" another, the later withdrawals the rest.
  for (const index of [0, 1, 2])
    await node.fund(deriveAddress(world.descriptor, 0, index).script, 50_000_000n);
  await node.mine(1);
  const watch = new Map<string, { wallet: string; branch: 0 | 1; index: number }>();
  for (const branch of [0, 1] as const) {
    for (let index = 0; index < 3; index++) {
      watch.set(toHex(deriveAddress(world.descriptor, branch, index).script), {
        wallet: 'btc-main',
        branch,
        index,
      });
    }
  }
  tracker = new UtxoTracker((script) => watch.get(toHex(script)) ?? null);
  await syncChain(node.rpc, tracker);
}, 120_000);

afterAll(async () => {
  for (const s of signers) s.child.kill('SIGTERM');
  await Promise.all(signers.map((s) => s.exited));
  await coordinator?.close();
  await node?.close();
  rmSync(dir, { recursive: true, force: true });
});

function coins(): WalletUtxo[] {
  return tracker.utxos('btc-main').map((u) => ({
    txid: u.txid,
    vout: u.vout,
    value: u.value,
    branch: u.branch,
    index: u.index,
    prevTx: u.prevTx,
  }));
}

function build(intent: SignedIntent, utxos: readonly WalletUtxo[], feeRate: bigint, amount?: bigint) {
  const built = buildPsbt({
    wallet: world.descriptor,
    utxos,
    to: intent.intent.to,
    amount: amount ?? BigInt(intent.intent.amount),
    feeRate,
    changeIndex: 0,
  });
  if (!built.ok) throw new Error(built.message);
  return built.value;
}

let bumpNonce = 0;
function bumpOf(
  intent: SignedIntent,
  feeRate: bigint,
  by = world.org.requester,
  o: Partial<Bump> = {},
): SignedBump {
  const b: Bump = {
    v: 1,
    org: world.org.orgId,
    intent: intentDigest(intent.intent),
    feeRate: feeRate.toString() as Amount,
    requester: by.id,
    device: by.device.id,
    nonce: (bumpNonce++).toString(16).padStart(32, '0') as Hex,
    createdAt: Date.now() - 1000,
    expiresAt: Date.now() + 3_600_000,
    ...o,
  };
  return { bump: b, signature: signDigest(by.device.secretKey, bumpDigest(b)) };
}

/** Hands one job per signer (the same body), waits for both answers, returns them by signer. */
async function toBoth(
  intent: SignedIntent,
  psbt: Uint8Array,
  bump?: SignedBump,
): Promise<Map<string, SignerResult>> {
  const approvals = world.approve(intent);
  const prefix = `job-${jobs++}`;
  for (const signer of SIGNERS) {
    const job: SignerJob = world.job(intent, approvals, psbt, { id: `${prefix}-${signer}`, signer });
    coordinator.push(bump === undefined ? job : { ...job, bump });
  }
  received += 2;
  // The answers to these two jobs (a repeat carries the stored receipt of the first job).
  const all = await coordinator.waitForResults(received, 60_000);
  return new Map(all.slice(received - 2, received).map((r) => [r.receipt.signer, r] as const));
}

function finalize(results: Map<string, SignerResult>) {
  const combined = combinePsbts(
    [...results.values()].map((r) => {
      const p = psbtFromBase64(r.psbt as string);
      if (!p.ok) throw new Error(p.message);
      return p.value;
    }),
  );
  if (!combined.ok) throw new Error(combined.message);
  const final = finalizePsbt(combined.value);
  if (!final.ok) throw new Error(final.message);
  return final.value;
}

/** Both signers refused with `code`, signed nothing, and recorded the refusal in their own decisions. */
function expectRefusedByBoth(results: Map<string, SignerResult>, code: string, alert: boolean): void {
  expect(results.size).toBe(2);
  for (const signer of SIGNERS) {
    const r = results.get(signer)!;
    expect(r.receipt).toMatchObject({ outcome: 'refused', code, txid: null });
    expect(r.psbt).toBeUndefined();
    expect(r.alert?.code).toBe(alert ? code : undefined);
    const db = new Database(join(dir, `${signer}.db`), { readonly: true });
    try {
      const row = db.prepare('SELECT outcome, code FROM decisions WHERE job = ?').get(r.receipt.job);
      expect(row).toEqual({ outcome: 'refused', code });
    } finally {
      db.close();
    }
  }
}

function ledgerOf(signer: string) {
  const db = new Database(join(dir, `${signer}.db`), { readonly: true });
  try {
    return {
      ledger: db.prepare('SELECT intent, txid, amount FROM ledger ORDER BY at').all() as {
        intent: string;
        txid: string;
        amount: string;
      }[],
      replacements: db.prepare('SELECT txid, intent, replaces FROM replacements ORDER BY at').all() as {
        txid: string;
        intent: string;
        replaces: string;
      }[],
    };
  } finally {
    db.close();
  }
}

describe('a fee bump on a real regtest node, two signer processes', () => {
  let original: SignedIntent;
  let originalPsbt: Uint8Array;
  let originalTxid: string;
  let originalHex: string;
  let spent: WalletUtxo;

  it('signs and broadcasts a withdrawal that is not mined (RBF-signalling)', async () => {
    // 0.4 BTC of the 1 BTC daily limit; counted twice, the next 0.4 BTC would exceed it.
    original = world.intent(40_000_000n);
    const available = coins();
    spent = available[0]!;
    const built = build(original, [spent], 2n);
    originalPsbt = built.psbt;
    // BIP 125: every input's sequence below 0xfffffffe, so a node lets a replacement take its place.
    const analyzed = analyzePsbt(built.psbt, world.descriptor);
    if (!analyzed.ok) throw new Error(analyzed.message);
    for (const i of analyzed.value.inputs) expect(i.sequence).toBeLessThan(0xfffffffe);
    const results = await toBoth(original, built.psbt);
    expect([...results.values()].map((r) => r.receipt.outcome)).toEqual(['signed', 'signed']);
    const final = finalize(results);
    originalTxid = await node.rpc.sendRawTransaction(final.hex);
    originalHex = final.hex;
    expect(originalTxid).toBe(built.txid);
    expect(await node.rpc.getRawMempool()).toContain(originalTxid);
  });

  it('refuses a replacement that changes a payee output (NOT_A_REPLACEMENT), nothing signed', async () => {
    // The same coin, a higher fee, but 1000 sat less to the payee: another withdrawal, not a bump.
    const tampered = build(original, [spent], 10n, 40_000_000n - 1000n);
    const results = await toBoth(original, tampered.psbt, bumpOf(original, 10n));
    expectRefusedByBoth(results, 'NOT_A_REPLACEMENT', true);
    expect(results.get('signer-1')?.message).toMatch(/payee output/);
  });

  it('refuses a "replacement" that spends none of the original inputs (NOT_A_REPLACEMENT)', async () => {
    // The other coin: both could confirm, paying the payee twice.
    const other = coins().find((c) => c.txid !== spent.txid || c.vout !== spent.vout)!;
    const twin = build(original, [other], 10n);
    const results = await toBoth(original, twin.psbt, bumpOf(original, 10n));
    expectRefusedByBoth(results, 'NOT_A_REPLACEMENT', true);
    expect(results.get('signer-2')?.message).toMatch(/spends none of the inputs/);
  });

  it('refuses a replacement over the fee cap (FEE_TOO_HIGH) and one costlier than the bump asks', async () => {
    // The policy caps the fee rate at 100 sat/vB.
    const over = buildReplacement(originalPsbt, world.descriptor, 150n);
    if (!over.ok) throw new Error(over.message);
    expectRefusedByBoth(
      await toBoth(original, over.value.psbt, bumpOf(original, 150n)),
      'FEE_TOO_HIGH',
      false,
    );
    // The requester asked for 5 sat/vB; a coordinator spending 50 sat/vB of the change is refused.
    const costlier = buildReplacement(originalPsbt, world.descriptor, 50n);
    if (!costlier.ok) throw new Error(costlier.message);
    expectRefusedByBoth(
      await toBoth(original, costlier.value.psbt, bumpOf(original, 5n)),
      'FEE_TOO_HIGH',
      false,
    );
  });

  it('refuses a bump signed by anyone but the requester (NOT_AUTHORIZED)', async () => {
    const r = buildReplacement(originalPsbt, world.descriptor, 10n);
    if (!r.ok) throw new Error(r.message);
    const results = await toBoth(original, r.value.psbt, bumpOf(original, 10n, world.org.approvers[0]));
    expectRefusedByBoth(results, 'NOT_AUTHORIZED', false);
  });

  it('refuses a bump of an intent the signer never signed (NOT_A_REPLACEMENT)', async () => {
    const never = world.intent(1_000_000n);
    const built = build(never, [spent], 10n);
    const results = await toBoth(never, built.psbt, bumpOf(never, 10n));
    expectRefusedByBoth(results, 'NOT_A_REPLACEMENT', true);
    expect(results.get('signer-1')?.message).toMatch(/never signed/);
  });

  it('signs the bump, the node replaces the original, and the replacement is mined', async () => {
    const r = buildReplacement(originalPsbt, world.descriptor, 10n);
    if (!r.ok) throw new Error(r.message);
    const bump = bumpOf(original, 10n);
    const results = await toBoth(original, r.value.psbt, bump);
    for (const signer of SIGNERS) {
      expect(results.get(signer)?.receipt).toMatchObject({ outcome: 'signed', txid: r.value.txid });
    }
    const final = finalize(results);
    expect(await node.rpc.sendRawTransaction(final.hex)).toBe(r.value.txid);
    const mempool = await node.rpc.getRawMempool();
    expect(mempool).toContain(r.value.txid);
    expect(mempool).not.toContain(originalTxid);

    // The same bump again gets the same answer; the original again is refused by the node.
    const again = await toBoth(original, r.value.psbt, bump);
    expect(again.get('signer-1')).toEqual(results.get('signer-1'));
    await expect(node.rpc.sendRawTransaction(originalHex)).rejects.toMatchObject({ code: 'CHAIN_REJECTED' });

    await node.mine(1);
    await syncChain(node.rpc, tracker);
    expect(await node.rpc.getRawMempool()).toEqual([]);
    // The change came back from the replacement; the original never confirms: its coin is spent.
    const change = tracker.utxos('btc-main').find((u) => u.branch === 1);
    expect(change).toMatchObject({ txid: r.value.txid, index: 0 });
    expect(change!.value).toBe(spent.value - 40_000_000n - r.value.fee);
    await expect(node.rpc.sendRawTransaction(originalHex)).rejects.toMatchObject({ code: 'CHAIN_REJECTED' });

    for (const signer of SIGNERS) {
      const { ledger, replacements } = ledgerOf(signer);
      expect(ledger).toEqual([
        { intent: intentDigest(original.intent), txid: originalTxid, amount: '40000000' },
      ]);
      expect(replacements).toEqual([
        { txid: r.value.txid, intent: intentDigest(original.intent), replaces: originalTxid },
      ]);
    }
  });

  it('still refuses another transaction for the bumped intent without a bump (DUPLICATE_INTENT)', async () => {
    const other = coins().find((c) => c.branch === 0)!;
    const results = await toBoth(original, build(original, [other], 3n).psbt);
    expectRefusedByBoth(results, 'DUPLICATE_INTENT', true);
  });

  it('counts the amount once: the next 0.4 BTC fits the 1 BTC daily limit', async () => {
    const next = world.intent(40_000_000n);
    const built = build(
      next,
      coins().filter((c) => c.branch === 0),
      2n,
    );
    const results = await toBoth(next, built.psbt);
    for (const signer of SIGNERS) expect(results.get(signer)?.receipt.outcome).toBe('signed');
    const final = finalize(results);
    expect(await node.rpc.sendRawTransaction(final.hex)).toBe(built.txid);
    await node.mine(1);
    // Counted twice (0.4 + 0.4 + 0.4) it would have been LIMIT_EXCEEDED; a third 0.4 BTC now is.
    const third = world.intent(40_000_000n);
    await syncChain(node.rpc, tracker);
    const refused = await toBoth(third, build(third, coins(), 2n).psbt);
    expectRefusedByBoth(refused, 'LIMIT_EXCEEDED', false);
    for (const signer of SIGNERS) expect(ledgerOf(signer).ledger).toHaveLength(2);
  });
});
