/**
 * Issue 8, item 4, through a real `custos signer run` process: a hostile
 * coordinator serves PSBTs that pay the destination exactly and send change
 * to the wallet's own change branch, but at `/1/100000` or `/1/2147483647`,
 * where a wallet restored from the descriptor never looks. The signer
 * refuses CHANGE_BEYOND_GAP with a critical alert and signs nothing. Its
 * bound is its own ledger: the highest change index it signed, plus the gap
 * limit of 20. The ledger file is one from before change indexes were
 * recorded, so the migration is tested too: it reads the change index of the
 * old signed row back from its PSBT and the signer keeps signing honest
 * withdrawals, however many, each at the next change index.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHANGE_GAP_LIMIT, psbtToBase64 } from '@custos/bitcoin';
import { intentDigest } from '@custos/core';
import type { FakeCoordinator } from '@custos/test-support/fake-coordinator';
import {
  initKeystore,
  type KeystoreInfo,
  type RunningSigner,
  waitForOutput,
} from '@custos/test-support/signer-process';
import { makeWorld, type World } from '@custos/test-support/world';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignerStore } from '../src/store.js';
import { startStand, stopStand } from './support/stand.js';

/** The ledger table as the signer created it before change indexes were recorded. */
const OLD_LEDGER = `
CREATE TABLE ledger (
  intent TEXT PRIMARY KEY,
  txid TEXT NOT NULL UNIQUE,
  wallet TEXT NOT NULL,
  asset TEXT NOT NULL,
  amount TEXT NOT NULL,
  destination TEXT NOT NULL,
  requester TEXT NOT NULL,
  at INTEGER NOT NULL,
  job TEXT NOT NULL,
  result TEXT NOT NULL
) STRICT;
CREATE INDEX ledger_at ON ledger (at);
`;
const OLD_CHANGE = 30;

let dir: string;
let keystore: KeystoreInfo;
let world: World;
let coordinator: FakeCoordinator;
let signer: RunningSigner;
let answered = 0;

/** Pushes a fully approved withdrawal of `amount` with change at `changeIndex`; returns the signer's answer. */
async function withdraw(id: string, changeIndex: number, amount = 100_000n) {
  world.clock.now = Date.now();
  const intent = world.intent(amount);
  const built = world.build(intent, { changeIndex });
  expect(built.change?.index).toBe(changeIndex);
  coordinator.push(world.job(intent, world.approve(intent), built.psbt, { id }));
  const results = await coordinator.waitForResults(++answered);
  const result = results[answered - 1]!;
  expect(result.receipt.job).toBe(id);
  return result;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custos-signer-gap-'));
  keystore = await initKeystore(dir, 'signer-1');
  world = makeWorld({ firstKey: keystore.descriptorKey });
  world.clock.now = Date.now();

  // A ledger file from an older signer: one withdrawal signed two days ago with change at 30.
  const old = new Database(join(dir, 'signer-1.db'));
  old.exec(OLD_LEDGER);
  const intent = world.intent(200_000n, { createdAt: world.clock.now - 2 * 86_400_000 });
  const built = world.build(intent, { changeIndex: OLD_CHANGE });
  old
    .prepare('INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
    .run(
      intentDigest(intent.intent),
      built.txid,
      'btc-main',
      'BTC',
      '200000',
      intent.intent.to,
      intent.intent.requester,
      world.clock.now - 2 * 86_400_000,
      'job-old',
      JSON.stringify({ receipt: {}, signature: '', psbt: psbtToBase64(built.psbt) }),
    );
  old.close();

  ({ coordinator, signer } = await startStand(dir, keystore, world));
});

afterAll(() => stopStand(signer, coordinator, dir));

describe('change beyond the gap limit (issue 8, item 4)', () => {
  it('the upgraded ledger keeps its change history: change at 30 + 20 is signed, at 30 + 21 refused', async () => {
    const beyond = await withdraw('job-51', OLD_CHANGE + CHANGE_GAP_LIMIT + 1);
    expect(beyond.receipt).toMatchObject({ outcome: 'refused', code: 'CHANGE_BEYOND_GAP' });
    const edge = await withdraw('job-50', OLD_CHANGE + CHANGE_GAP_LIMIT);
    expect(edge.receipt).toMatchObject({ outcome: 'signed', code: null });
  });

  for (const index of [100_000, 2_147_483_647]) {
    it(`a hostile coordinator's change at /1/${index} is refused CHANGE_BEYOND_GAP, critical, nothing signed`, async () => {
      const result = await withdraw(`job-far-${index}`, index);
      expect(result.receipt).toMatchObject({ outcome: 'refused', code: 'CHANGE_BEYOND_GAP', txid: null });
      expect(result.psbt).toBeUndefined();
      expect(result.alert).toEqual({ severity: 'critical', code: 'CHANGE_BEYOND_GAP' });
      expect((result as { message?: string }).message).toContain(`index ${index}`);
      await waitForOutput(signer, `"job":"job-far-${index}"`);
      expect(signer.output()).toMatch(
        new RegExp(`"job":"job-far-${index}".*"code":"CHANGE_BEYOND_GAP".*"severity":"critical"`),
      );
    });
  }

  it('an honest sequence of many withdrawals, each at the next change index, never trips it', async () => {
    const first = OLD_CHANGE + CHANGE_GAP_LIMIT + 1;
    for (let i = 0; i < 45; i++) {
      const result = await withdraw(`job-honest-${i}`, first + i, 10_000n);
      expect(result.receipt).toMatchObject({ outcome: 'signed', code: null });
    }
  }, 120_000);

  it('its ledger: the honest withdrawals with their change indexes, nothing for the refused ones', async () => {
    signer.child.kill('SIGTERM');
    expect(await signer.exited).toBe(0);
    const store = new SignerStore(join(dir, 'signer-1.db'));
    try {
      expect(store.highestChangeIndex('btc-main')).toBe(OLD_CHANGE + CHANGE_GAP_LIMIT + 45);
      // Read raw: the old row's result is a stand-in, not a receipt signed by this signer's key.
      const ledger = store.db.prepare('SELECT job, change_index FROM ledger ORDER BY at, job').all() as {
        job: string;
        change_index: number | null;
      }[];
      expect(ledger).toHaveLength(1 + 1 + 45);
      expect(ledger.map((r) => r.job)).not.toContain('job-51');
      expect(ledger.some((r) => r.job.startsWith('job-far'))).toBe(false);
      expect(ledger.find((r) => r.job === 'job-old')?.change_index).toBe(OLD_CHANGE);
      expect(ledger.find((r) => r.job === 'job-honest-44')?.change_index).toBe(
        OLD_CHANGE + CHANGE_GAP_LIMIT + 45,
      );
      const refused = store
        .decisions()
        .filter((d) => d.outcome === 'refused')
        .map((d) => [d.job, d.code]);
      expect(refused).toEqual([
        ['job-51', 'CHANGE_BEYOND_GAP'],
        ['job-far-100000', 'CHANGE_BEYOND_GAP'],
        ['job-far-2147483647', 'CHANGE_BEYOND_GAP'],
      ]);
    } finally {
      store.close();
    }
  });
});
